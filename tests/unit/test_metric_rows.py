"""``status`` and ``health`` measure ``monitoring``'s metrics and judge them by ``thresholds`` (on fakes)."""

from __future__ import annotations

import pytest

from adapters.fakes import FakeBackends, FakeProbe, FakeRuntime
from bot.config.redact import Redactor
from bot.core.db import Database
from bot.core.engine import Engine, Request
from bot.render.text import render_text
from bot.slack.blocks import render_message
from commands.measure import expand, metric_queries
from tests.unit.conftest import make_config

ERRORS = ('100 * sum(rate(http_requests_total{env="{env}",code=~"5.."}[5m]))'
          ' / sum(rate(http_requests_total{env="{env}"}[5m]))')
LATENCY = '1000 * histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{env="{env}"}[5m])))'
MONITORING = {"prometheus": {"url": "http://127.0.0.1:9090",
                             "queries": {"error_rate_percent": ERRORS, "response_time_ms": LATENCY}}}  # fmt: skip


def prod(expr: str) -> str:
    return expand(expr, "prod", "shop")


@pytest.fixture
def backends():
    probe = FakeProbe()
    probe.answer("http://127.0.0.1:18080/health", latency=12)
    probe.answer("http://127.0.0.1:18080/health/db", latency=20)
    rt = FakeRuntime()
    for service in ("api", "worker", "postgres", "redis"):
        rt.add(service)
    return FakeBackends({"prod": rt}, probe)


@pytest.fixture
async def engine(tmp_path, backends):
    db = Database(tmp_path / "t.db")
    yield Engine(make_config(monitoring=MONITORING), backends, db, Redactor([]))
    db.close()


def test_env_and_project_expand_and_promql_braces_stay():
    queries = metric_queries(make_config(monitoring=MONITORING), "staging")["prometheus"]
    assert queries[0].expr == ('100 * sum(rate(http_requests_total{env="staging",code=~"5.."}[5m])) '
                               '/ sum(rate(http_requests_total{env="staging"}[5m]))')  # fmt: skip


@pytest.mark.parametrize(
    ("errors", "latency", "want"),
    [(0.2, 120.0, ("ok", "ok", "ok")), (1.0, 120.0, ("warning", "ok", "warning")),
     (7.5, 2500.0, ("critical", "critical", "critical")), (0.0, 499.9, ("ok", "ok", "ok"))],
)  # fmt: skip
async def test_health_judges_each_metric_by_its_threshold(engine, backends, errors, latency, want):
    backends.metrics("prometheus").set(prod(ERRORS), errors)
    backends.metrics("prometheus").set(prod(LATENCY), latency)
    reply = await engine.handle(Request(actor="U0OPERATOR", door="cli", words=["health", "prod"]))
    rows = {m["name"]: m for m in reply.to_json()["metrics"]}
    assert (rows["error_rate_percent"]["severity"], rows["response_time_ms"]["severity"], reply.severity) == want
    assert rows["error_rate_percent"]["value"] == errors and rows["error_rate_percent"]["unit"] == "%"
    assert reply.exit_code == (0 if want[2] == "ok" else 1)


async def test_status_shows_metric_rows_and_could_not_measure_is_a_warning_never_ok(engine, backends):
    backends.metrics("prometheus").set(prod(LATENCY), 80.0)  # the error rate gives no data
    reply = await engine.handle(Request(actor="U0OPERATOR", door="cli", words=["status", "prod"]))
    rows = {m["name"]: m for m in reply.to_json()["metrics"]}
    assert rows["error_rate_percent"] == {
        "name": "error_rate_percent", "value": None, "unit": "%", "severity": "warning",
        "error": "could not measure: no data: the query matched no series", "source": "prometheus",
        "warning": 1.0, "critical": 5.0,
    }  # fmt: skip
    assert rows["response_time_ms"]["severity"] == "ok" and reply.severity == "warning"
    text = render_text(reply)
    assert "error_rate_percent" in text and "could not measure: no data" in text and "80 ms" in text
    blocks = str(render_message(reply).blocks)
    assert "*Metrics*" in blocks and "could not measure" in blocks


async def test_a_source_that_is_down_is_said_on_every_row(engine, backends):
    backends.metrics("prometheus").down = "Prometheus at http://127.0.0.1:9090 cannot be reached: connection refused"
    reply = await engine.handle(Request(actor="U0OPERATOR", door="cli", words=["health", "prod"]))
    rows = reply.to_json()["metrics"]
    assert [r["severity"] for r in rows] == ["warning", "warning"]
    assert all("cannot be reached: connection refused" in r["error"] for r in rows)


async def test_without_monitoring_there_are_no_metric_rows(tmp_path, backends):
    db = Database(tmp_path / "t.db")
    engine = Engine(make_config(), backends, db, Redactor([]))
    try:
        reply = await engine.handle(Request(actor="U0OPERATOR", door="cli", words=["health", "prod"]))
    finally:
        db.close()
    assert reply.to_json()["metrics"] == [] and reply.severity == "ok"
    assert backends.metrics_sources == {}
