"""``CloudWatchMetrics``: metrics through boto3's ``GetMetricData``.

boto3 is synchronous: a call runs in a worker thread, bounded by the client's connect/read timeouts and
by ``timeout`` overall. All queries of one call go in one ``GetMetricData`` request; each gives the newest
datapoint of its statistic over the last three periods. No datapoint, an error of that query, an AWS
error (credentials, throttling, endpoint down) is a measurement with its error, never an exception.
``AWS_ENDPOINT_URL``, the keys and the region are read by boto3 as usual.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import botocore.config
import botocore.exceptions

from adapters.metrics.base import Measurement, MetricQuery, measured

SOURCE = "cloudwatch"
#: how many periods back a datapoint is looked for
LOOKBACK_PERIODS = 3
_STATS = ("Average", "Sum", "Minimum", "Maximum", "SampleCount")


def _request(queries: Sequence[MetricQuery]) -> list[dict[str, Any]]:
    return [
        {
            "Id": f"m{i}",
            "MetricStat": {
                "Metric": {
                    "Namespace": q.namespace,
                    "MetricName": q.metric,
                    "Dimensions": [{"Name": k, "Value": v} for k, v in sorted(q.dimensions.items())],
                },
                "Period": q.period,
                "Stat": q.stat,
            },
            "ReturnData": True,
        }
        for i, q in enumerate(queries)
    ]


def _aws_error(exc: BaseException) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        return f"CloudWatch refused the request ({error.get('Code', 'error')}: {str(error.get('Message', ''))[:200]})"
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return "no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile"
    if isinstance(exc, botocore.exceptions.EndpointConnectionError | botocore.exceptions.ConnectTimeoutError):
        return f"CloudWatch cannot be reached ({type(exc).__name__})"
    if isinstance(exc, botocore.exceptions.ReadTimeoutError):
        return "CloudWatch did not answer in time"
    return f"CloudWatch failed: {type(exc).__name__}"


class CloudWatchMetrics:
    """``GetMetricData`` in ``region`` (default: boto3's), bounded by ``timeout`` seconds."""

    def __init__(self, region: str | None = None, *, timeout: float = 10.0) -> None:
        self.region = region
        self.timeout = timeout
        self._client: Any = None
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="opsbot-cloudwatch")

    def _get_client(self) -> Any:
        if self._client is None:
            config = botocore.config.Config(
                connect_timeout=min(self.timeout, 5.0), read_timeout=self.timeout, retries={"max_attempts": 2}
            )
            self._client = boto3.session.Session().client("cloudwatch", region_name=self.region, config=config)
        return self._client

    def _fetch(
        self, queries: Sequence[MetricQuery], now: datetime
    ) -> tuple[dict[str, list[tuple[datetime, float]]], dict[str, str]]:
        longest = max(q.period for q in queries)
        # periods aligned on their boundaries, the newest still open (CloudWatch buckets them so)
        end = datetime.fromtimestamp(math.ceil(now.timestamp() / longest) * longest, UTC)
        points: dict[str, list[tuple[datetime, float]]] = {f"m{i}": [] for i in range(len(queries))}
        kwargs: dict[str, Any] = {
            "MetricDataQueries": _request(queries),
            "StartTime": end - timedelta(seconds=longest * LOOKBACK_PERIODS),
            "EndTime": end,
            "ScanBy": "TimestampDescending",
        }
        errors: dict[str, str] = {}
        for _ in range(20):  # pages; a handful of queries fit in one
            answer = self._get_client().get_metric_data(**kwargs)
            for item in answer.get("MetricDataResults", []):
                qid = str(item.get("Id"))
                points.setdefault(qid, []).extend(zip(item.get("Timestamps", []), item.get("Values", []), strict=False))
                if item.get("StatusCode") not in (None, "Complete", "PartialData"):
                    errors[qid] = str(item.get("StatusCode"))
            token = answer.get("NextToken")
            if not token:
                break
            kwargs["NextToken"] = token
        return points, errors

    async def measure(self, queries: Sequence[MetricQuery]) -> list[Measurement]:
        """All queries in one request; one measurement per query, in order."""
        if not queries:
            return []
        bad = [q for q in queries if q.stat not in _STATS and not q.stat.startswith("p")]
        if bad:
            return [Measurement(name=q.name, source=SOURCE, error=f"unknown statistic {q.stat!r}") for q in queries]
        loop = asyncio.get_running_loop()
        now = datetime.now(UTC)
        try:
            async with asyncio.timeout(self.timeout + 1):
                points, errors = await loop.run_in_executor(self._pool, self._fetch, list(queries), now)
        except TimeoutError:
            why = f"CloudWatch did not answer within {self.timeout:g} s"
            return [Measurement(name=q.name, source=SOURCE, error=why) for q in queries]
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            why = _aws_error(exc)
            return [Measurement(name=q.name, source=SOURCE, error=why) for q in queries]
        out = []
        for i, q in enumerate(queries):
            status = errors.get(f"m{i}")
            series = sorted(points.get(f"m{i}", []), key=lambda p: p[0], reverse=True)
            if status is not None and not series:
                out.append(Measurement(name=q.name, source=SOURCE, error=f"CloudWatch could not answer ({status})"))
            elif not series:
                out.append(Measurement(name=q.name, source=SOURCE,
                                       error=f"no data: {q.namespace}/{q.metric} has no datapoint in the last "
                                             f"{LOOKBACK_PERIODS * q.period // 60 or 1} min"))  # fmt: skip
            else:
                out.append(measured(q.name, SOURCE, float(series[0][1])))
        return out

    async def close(self) -> None:
        """Stop the worker thread."""
        self._pool.shutdown(wait=False)
