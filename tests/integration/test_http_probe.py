"""HttpProbe against real HTTP servers on loopback: healthy, failing, slow, hanging, odd."""

from __future__ import annotations

import asyncio

import pytest

from adapters.http.probe import HttpProbe
from adapters.models import ProbeRequest
from tests.helpers.http_servers import TOGETHER_MOST, free_port, health_app, serve


@pytest.fixture
async def probe():
    p = HttpProbe()
    yield p
    await p.close()


async def test_healthy_check_with_expect(probe):
    async with serve(health_app()) as base:
        [r] = await probe.check([ProbeRequest(name="api", url=f"{base}/health", expect={"status": "ok"})])
    assert r.ok and r.status_code == 200 and r.error is None
    assert r.latency_ms is not None and r.latency_ms >= 0


async def test_failures_are_results_not_exceptions(probe):
    refused = f"http://127.0.0.1:{free_port()}/health"
    async with serve(health_app()) as base:
        results = await probe.check(
            [
                ProbeRequest(name="500", url=f"{base}/500"),
                ProbeRequest(name="wrong", url=f"{base}/wrong", expect={"status": "ok"}),
                ProbeRequest(name="missing key", url=f"{base}/health", expect={"db": "ok"}),
                ProbeRequest(name="html", url=f"{base}/html", expect={"status": "ok"}),
                ProbeRequest(name="refused", url=refused, timeout=2),
                ProbeRequest(name="any 2xx", url=f"{base}/html"),
            ]
        )
    by = {r.name: r for r in results}
    assert [r.name for r in results] == ["500", "wrong", "missing key", "html", "refused", "any 2xx"]
    assert not by["500"].ok and by["500"].status_code == 500 and by["500"].error == "HTTP 500"
    assert not by["wrong"].ok and "status is 'degraded'" in by["wrong"].error
    assert not by["missing key"].ok and "no key 'db'" in by["missing key"].error
    assert not by["html"].ok and by["html"].error == "body is not JSON"
    assert not by["refused"].ok and by["refused"].status_code is None and "refused" in by["refused"].error
    assert by["any 2xx"].ok


async def test_hanging_servers_are_bounded_by_the_timeout(probe):
    async with serve(health_app()) as base:
        checks = probe.check(
            [
                ProbeRequest(name="hang", url=f"{base}/hang", timeout=0.5),
                ProbeRequest(name="slow body", url=f"{base}/slow-body", timeout=0.5),
                ProbeRequest(name="fine", url=f"{base}/health", timeout=0.5),
            ]
        )
        results = await asyncio.wait_for(checks, 60)  # a backstop: without the timeouts they would hang for an hour
    assert [r.ok for r in results] == [False, False, True]
    assert results[0].error == "timed out" and results[1].error == "timed out"


async def test_checks_run_concurrently(probe):
    app = health_app()
    async with serve(app) as base:
        # the server answers none of them until all 20 wait at once: one after another, each would time out
        reqs = [ProbeRequest(name=f"c{i}", url=f"{base}/together?n=20", timeout=30) for i in range(20)]
        results = await asyncio.wait_for(probe.check(reqs), 90)  # a backstop
    assert [r.error for r in results] == [None] * 20 and app[TOGETHER_MOST] == [20]


async def test_redirect_followed_and_big_body_bounded(probe):
    async with serve(health_app()) as base:
        redirect, big = await probe.check(
            [
                ProbeRequest(name="r", url=f"{base}/redirect", expect={"status": "ok"}),
                ProbeRequest(name="big", url=f"{base}/big", expect={"status": "ok"}),
            ]
        )
    assert redirect.ok
    assert not big.ok and big.error == "body is not JSON"
