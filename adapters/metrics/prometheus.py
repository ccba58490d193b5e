"""``PrometheusMetrics``: instant queries on Prometheus's HTTP API (``GET /api/v1/query``), on httpx.

Each query must give one number: a scalar, or a vector of exactly one series. An empty vector (no
data), several series, a range vector, NaN, an error status (bad PromQL, a timeout inside
Prometheus), an answer that is not Prometheus's JSON, a timeout or a refused connection is a
measurement with its error, never an exception.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import httpx

from adapters.metrics.base import Measurement, MetricQuery, measured

SOURCE = "prometheus"
#: bodies larger than this are not read (an instant query that gives one number answers small)
MAX_BODY = 1024 * 1024


def _connect_error(exc: BaseException) -> str:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError) or "refused" in str(cause).lower():
            return "connection refused"
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        cause = cause.__cause__ or cause.__context__
    return str(exc) or type(exc).__name__


def _series(metric: dict[str, Any]) -> str:
    labels = ",".join(f'{k}="{v}"' for k, v in sorted(metric.items()) if k != "__name__")
    return f"{metric.get('__name__', '')}{{{labels}}}"


def read_answer(name: str, body: bytes) -> Measurement:
    """One number from an instant query's JSON answer, or why there is none."""

    def fail(why: str) -> Measurement:
        return Measurement(name=name, source=SOURCE, error=why)

    try:
        doc = json.loads(body)
    except ValueError:
        return fail("Prometheus answered something that is not JSON")
    if not isinstance(doc, dict):
        return fail("Prometheus answered JSON that is not a query result")
    if doc.get("status") != "success":
        kind, error = doc.get("errorType") or "error", str(doc.get("error") or "no reason given")
        return fail(f"Prometheus refused the query ({kind}: {error[:300]})")
    data = doc.get("data")
    if not isinstance(data, dict):
        return fail("Prometheus answered without data")
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar" and isinstance(result, list) and len(result) == 2:
        return _number(name, result[1])
    if kind == "vector" and isinstance(result, list):
        if not result:
            return fail("no data: the query matched no series")
        if len(result) > 1:
            shown = ", ".join(_series(s.get("metric") or {}) for s in result[:3] if isinstance(s, dict))
            more = f" and {len(result) - 3} more" if len(result) > 3 else ""
            return fail(f"the query gave {len(result)} series ({shown}{more}), not one number: aggregate it")
        sample = result[0]
        if isinstance(sample, dict) and isinstance(sample.get("value"), list) and len(sample["value"]) == 2:
            return _number(name, sample["value"][1])
        return fail("Prometheus answered a sample without a value")
    if kind == "matrix":
        return fail("the query gave a range vector, not one number: use an instant query (rate(...[5m]), not x[5m])")
    return fail(f"the query gave a {kind or 'missing'} result, not one number")


def _number(name: str, text: Any) -> Measurement:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return Measurement(name=name, source=SOURCE, error=f"Prometheus answered {str(text)[:40]!r}, not a number")
    return measured(name, SOURCE, value)


class PrometheusMetrics:
    """Instant queries against one Prometheus server (``url``), each bounded by ``timeout`` seconds."""

    def __init__(self, url: str, *, timeout: float = 5.0, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._client = httpx.AsyncClient(
            transport=transport,
            headers={"User-Agent": "opsbot-metrics", "Accept": "application/json"},
            limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
        )

    async def measure(self, queries: Sequence[MetricQuery]) -> list[Measurement]:
        """Every query concurrently; one measurement per query, in order."""
        return list(await asyncio.gather(*(self._one(q) for q in queries)))

    async def _one(self, query: MetricQuery) -> Measurement:
        where = f"Prometheus at {self.url}"

        def fail(why: str) -> Measurement:
            return Measurement(name=query.name, source=SOURCE, error=why)

        try:
            async with asyncio.timeout(self.timeout):
                response = await self._client.get(
                    f"{self.url}/api/v1/query",
                    params={"query": query.expr, "timeout": f"{max(int(self.timeout * 1000) - 500, 500)}ms"},
                    timeout=self.timeout,
                )
                body = response.content[:MAX_BODY]
        except (httpx.TimeoutException, TimeoutError):
            return fail(f"{where} did not answer within {self.timeout:g} s")
        except httpx.ConnectError as exc:
            return fail(f"{where} cannot be reached: {_connect_error(exc)}")
        except (httpx.HTTPError, OSError) as exc:
            return fail(f"{where} failed: {type(exc).__name__}")
        if response.status_code >= 400 and not body.lstrip().startswith(b"{"):
            return fail(f"{where} answered HTTP {response.status_code}")
        return read_answer(query.name, body)

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()
