"""Metrics sources: the same cases against a real Prometheus and against FakeMetrics; CloudWatch on moto.

Prometheus is Debian's, started by the session (tests/conftest.py ``prometheus``), scraping the test
exporter every second; the faults (down, slow, nonsense) are real servers on loopback.
"""

from __future__ import annotations

import asyncio
import math
import time
from datetime import UTC, datetime

import pytest
from aiohttp import web

from adapters.fakes import FakeMetrics
from adapters.metrics.base import Measurement, MetricQuery, Metrics
from adapters.metrics.cloudwatch import CloudWatchMetrics
from adapters.metrics.prometheus import PrometheusMetrics
from tests.helpers.http_servers import free_port, serve

SEVERAL = 'vector(1) or label_replace(vector(2), "x", "y", "", "")'
ERROR_RATE = ('100 * sum(rate(http_requests_total{env="staging",code=~"5.."}[3s]))'
              ' / sum(rate(http_requests_total{env="staging"}[3s]))')  # fmt: skip
#: the fake set up to answer what Prometheus answers for these queries
FAKE_ANSWERS = {"vector(42)": 42.0, "scalar(vector(7))": 7.0, SEVERAL: [1.0, 2.0], "vector(0) / 0": math.nan}


@pytest.fixture(params=["fake", "prometheus"])
async def source(request):
    if request.param == "fake":
        metrics: Metrics = FakeMetrics(FAKE_ANSWERS)
    else:
        metrics = PrometheusMetrics(request.getfixturevalue("prometheus").url, timeout=5)
    yield metrics
    await metrics.close()


async def one(metrics: Metrics, expr: str) -> Measurement:
    [m] = await metrics.measure([MetricQuery(name="error_rate_percent", expr=expr)])
    return m


async def test_both_are_metrics_sources(source):
    assert isinstance(source, Metrics)


async def test_one_series_is_its_number(source):
    m = await one(source, "vector(42)")
    assert (m.value, m.error, m.ok, m.name) == (42.0, None, True, "error_rate_percent")


async def test_a_scalar_is_its_number(source):
    assert (await one(source, "scalar(vector(7))")).value == 7.0


async def test_no_data_is_could_not_measure_never_ok(source):
    m = await one(source, "opsbot_no_such_metric_anywhere")
    assert m.value is None and not m.ok and m.error.startswith("no data")


async def test_several_series_are_not_one_number(source):
    m = await one(source, SEVERAL)
    assert m.value is None and "2 series" in m.error and "aggregate" in m.error


async def test_nan_is_not_a_number(source):
    m = await one(source, "vector(0) / 0")
    assert m.value is None and "not a number" in m.error


async def test_answers_come_back_in_query_order(source):
    got = await source.measure([MetricQuery(name=n, expr=e) for n, e in
                                (("a", "scalar(vector(7))"), ("b", SEVERAL), ("c", "vector(42)"))])  # fmt: skip
    assert [(m.name, m.value) for m in got] == [("a", 7.0), ("b", None), ("c", 42.0)]


# ---------------------------------------------------------------- the real Prometheus only


async def test_bad_promql_is_said(prometheus):
    metrics = PrometheusMetrics(prometheus.url)
    try:
        m = await one(metrics, "sum(")
    finally:
        await metrics.close()
    assert m.value is None and m.error.startswith("Prometheus refused the query (bad_data")


async def test_a_range_vector_is_not_one_number(prometheus):
    metrics = PrometheusMetrics(prometheus.url)
    try:
        m = await one(metrics, "http_requests_total[5s]")
    finally:
        await metrics.close()
    assert m.value is None and "range vector" in m.error


async def test_the_error_rate_follows_the_apps_traffic(prometheus):
    """The exporter's error share goes up and down; the measured error rate follows within seconds."""
    traffic = prometheus.exporter.traffic["staging"]
    metrics = PrometheusMetrics(prometheus.url)

    async def settles_near(want: float) -> float:
        deadline = time.monotonic() + 30
        value = None
        while time.monotonic() < deadline:
            value = (await one(metrics, ERROR_RATE)).value
            if value is not None and abs(value - want) < 2:
                return value
            await asyncio.sleep(0.3)
        raise AssertionError(f"the error rate did not settle near {want}: last {value}")

    try:
        traffic.error_percent = 0
        assert await settles_near(0) < 2
        traffic.error_percent = 20
        assert 18 < await settles_near(20) < 22
        traffic.error_percent = 0
        assert await settles_near(0) < 2
    finally:
        traffic.error_percent = 0
        await metrics.close()


async def test_prometheus_down_is_could_not_measure():
    port = free_port()  # nothing listens there
    metrics = PrometheusMetrics(f"http://127.0.0.1:{port}", timeout=2)
    try:
        m = await one(metrics, "vector(1)")
    finally:
        await metrics.close()
    assert m.value is None and m.error == f"Prometheus at http://127.0.0.1:{port} cannot be reached: connection refused"


async def test_prometheus_slower_than_its_timeout_is_could_not_measure():
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(10)  # timing: a peer that answers too slowly
        return web.json_response({"status": "success", "data": {"resultType": "scalar", "result": [0, "1"]}})

    app = web.Application()
    app.router.add_get("/api/v1/query", slow)
    async with serve(app) as url:
        metrics = PrometheusMetrics(url, timeout=0.5)
        try:
            m = await one(metrics, "vector(1)")
        finally:
            await metrics.close()
    assert m.value is None and m.error == f"Prometheus at {url} did not answer within 0.5 s"


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (200, "<html>hello</html>", "not JSON"),
        (200, '["a", "list"]', "not a query result"),
        (200, '{"status": "success", "data": {"resultType": "string", "result": [0, "x"]}}', "string result"),
        (200, '{"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [0, "hi"]}]}}',
         "'hi', not a number"),
        (404, "404 page not found", "answered HTTP 404"),
        (503, '{"status": "error", "errorType": "unavailable", "error": "starting up"}',
         "refused the query (unavailable: starting up)"),
    ],
)
async def test_nonsense_from_prometheus_is_could_not_measure(status, body, error):
    async def nonsense(request: web.Request) -> web.Response:
        return web.Response(text=body, status=status, content_type="application/json")

    app = web.Application()
    app.router.add_get("/api/v1/query", nonsense)
    async with serve(app) as url:
        metrics = PrometheusMetrics(url)
        try:
            m = await one(metrics, "vector(1)")
        finally:
            await metrics.close()
    assert m.value is None and error in m.error


# ---------------------------------------------------------------- CloudWatch on moto's server


def cw_query(metric: str, **kw) -> MetricQuery:
    return MetricQuery(name="error_rate_percent", namespace="Shop", metric=metric,
                       dimensions={"Environment": "prod"}, stat=kw.get("stat", "Average"), period=60)  # fmt: skip


async def test_cloudwatch_gives_the_newest_datapoint_and_says_no_data(moto_s3):
    import boto3

    client = boto3.client("cloudwatch", endpoint_url=moto_s3.url, region_name="us-east-1")
    now = datetime.now(UTC)
    client.put_metric_data(Namespace="Shop", MetricData=[
        {"MetricName": "ErrorRate", "Dimensions": [{"Name": "Environment", "Value": "prod"}], "Timestamp": now,
         "Value": 3.5, "Unit": "Percent"},
    ])  # fmt: skip
    metrics = CloudWatchMetrics("us-east-1", timeout=10)
    try:
        got = await metrics.measure([cw_query("ErrorRate"), cw_query("NothingHere")])
    finally:
        await metrics.close()
    assert got[0].value == 3.5 and got[0].source == "cloudwatch"
    assert got[1].value is None and got[1].error.startswith("no data: Shop/NothingHere has no datapoint")


async def test_cloudwatch_down_is_could_not_measure(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    metrics = CloudWatchMetrics("us-east-1", timeout=2)
    try:
        [m] = await metrics.measure([cw_query("ErrorRate")])
    finally:
        await metrics.close()
    assert m.value is None and m.error.startswith("CloudWatch cannot be reached")
