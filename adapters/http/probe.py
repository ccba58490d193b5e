"""``HttpProbe``: HTTP health checks on httpx, all checks of a call concurrently."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any

import httpx

from adapters.models import CheckResult, ProbeRequest

#: bodies larger than this are not parsed for ``expect`` (a health endpoint answers small)
MAX_BODY = 256 * 1024
#: requests in flight at once (the client's connection limit); the others wait their turn here
MAX_IN_FLIGHT = 100


def _describe(exc: BaseException) -> str:
    """One short line for a failed request, without the library's internals."""
    if isinstance(exc, httpx.TimeoutException | asyncio.TimeoutError):
        return "timed out"
    if isinstance(exc, httpx.ConnectError):
        cause: BaseException | None = exc
        while cause is not None:  # httpx wraps the OS error; name the real reason
            if isinstance(cause, ConnectionRefusedError) or "refused" in str(cause).lower():
                return "connection refused"
            if isinstance(cause, OSError) and cause.strerror:
                return f"cannot connect: {cause.strerror}"
            cause = cause.__cause__ or cause.__context__
        return f"cannot connect: {exc}" if str(exc) else "cannot connect"
    if isinstance(exc, httpx.TooManyRedirects):
        return "too many redirects"
    if isinstance(exc, httpx.HTTPError):
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return type(exc).__name__


def _mismatch(expect: dict[str, Any], body: bytes) -> str | None:
    """Why ``body`` does not satisfy ``expect`` (JSON keys with those values), or None."""
    try:
        data = json.loads(body)
    except ValueError:
        return "body is not JSON"
    if not isinstance(data, dict):
        return "body is not a JSON object"
    for key, want in expect.items():
        if key not in data:
            return f"body has no key {key!r}"
        if data[key] != want:
            return f"{key} is {data[key]!r}, expected {want!r}"
    return None


class HttpProbe:
    """Runs health checks with one shared ``httpx.AsyncClient`` (redirects followed)."""

    def __init__(self, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._client = httpx.AsyncClient(
            follow_redirects=True,
            transport=transport,
            headers={"User-Agent": "opsbot-health"},
            limits=httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=20),
        )
        # httpcore's pool scans every queued request against every connection on each request that
        # starts or ends: hundreds of checks at once (200 `health` runs) cost seconds of CPU there. They
        # queue on a semaphore instead (one per event loop), so the pool never holds a queue.
        self._slots: dict[int, asyncio.Semaphore] = {}

    def _slot(self) -> asyncio.Semaphore:
        key = id(asyncio.get_running_loop())
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = asyncio.Semaphore(MAX_IN_FLIGHT)
        return slot

    async def check(self, requests: Sequence[ProbeRequest]) -> list[CheckResult]:
        """Run every check concurrently; one result per request, in request order."""
        return list(await asyncio.gather(*(self._one(r) for r in requests)))

    async def _one(self, req: ProbeRequest) -> CheckResult:
        start = time.perf_counter()
        status: int | None = None
        try:
            # the overall bound covers connect, headers and body, whatever the server does
            async with asyncio.timeout(req.timeout), self._slot():
                async with self._client.stream("GET", req.url, timeout=req.timeout) as response:
                    status = response.status_code
                    body = b""
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) >= MAX_BODY:
                            break
        except (httpx.HTTPError, TimeoutError, OSError) as exc:
            return CheckResult(
                name=req.name,
                url=req.url,
                ok=False,
                status_code=status,
                latency_ms=round((time.perf_counter() - start) * 1000, 1),
                error=_describe(exc),
            )
        latency = round((time.perf_counter() - start) * 1000, 1)
        error: str | None = None
        if not 200 <= status < 300:
            error = f"HTTP {status}"
        elif req.expect:
            error = _mismatch(req.expect, body)
        return CheckResult(
            name=req.name, url=req.url, ok=error is None, status_code=status, latency_ms=latency, error=error
        )

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()
