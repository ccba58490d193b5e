"""The read-only procedures through the whole engine, on the real Docker engine and real HTTP checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from bot.config.settings import Settings
from bot.core.app import App
from bot.core.engine import Request
from bot.render.text import render_text
from tests.helpers.configs import example_config

ROOT = Path(__file__).resolve().parents[2]
STATUS_KEYS = {"environment", "overall", "services", "checks"}
SERVICE_KEYS = {"name", "state", "version", "image", "health", "severity"}
CHECK_KEYS = {"name", "url", "ok", "status_code", "latency_ms", "error", "severity"}
pytestmark = pytest.mark.docker


@pytest.fixture
async def app(shop, tmp_path):
    config = example_config()
    prod = config["environments"]["prod"]
    prod["url"] = shop.url
    prod["runtime"].update(docker_host=shop.host, project=shop.project)
    path = tmp_path / "ops.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    app = App.build(Settings(opsbot_config=str(path), opsbot_db=str(tmp_path / "opsbot.db")))
    yield app
    await app.close()


async def run(app, *words, actor="U0OPERATOR"):
    reply = await app.engine.handle(Request(actor=actor, door="cli", words=list(words)))
    data = reply.to_json()
    text = render_text(reply)
    return reply, data, text


def no_secret(shop, *texts):
    for t in texts:
        assert shop.secret not in (t if isinstance(t, str) else json.dumps(t))


async def test_status(app, shop):
    reply, data, text = await run(app, "status", "prod")
    assert STATUS_KEYS <= set(data)
    by = {s["name"]: s for s in data["services"]}
    assert [s["name"] for s in data["services"]] == ["api", "worker", "postgres", "redis"]
    assert all(SERVICE_KEYS <= set(s) for s in data["services"])
    assert by["api"]["state"] == "running" and by["api"]["health"] == "healthy" and by["api"]["version"] == "1.0"
    assert by["api"]["severity"] == "ok" and by["api"]["cpu_percent"] is not None
    assert by["redis"]["state"] == "exited" and by["redis"]["severity"] == "critical"
    assert [c["name"] for c in data["checks"]] == ["API Health", "Database", "Cache"]
    assert all(CHECK_KEYS <= set(c) and c["ok"] and c["severity"] == "ok" for c in data["checks"])
    assert data["overall"] == "critical" and reply.exit_code == 1
    assert "CRIT" in text and "redis" in text and "exited (exit code 1)" in text
    no_secret(shop, data, text)


async def test_status_reports_a_missing_service(app, shop, docker_engine):
    shop.containers["postgres"].stop(timeout=1)
    try:
        _, data, _ = await run(app, "status", "prod")
        pg = next(s for s in data["services"] if s["name"] == "postgres")
        assert pg["state"] == "exited" and pg["severity"] == "critical"
    finally:
        shop.containers["postgres"].start()


async def test_health(app, shop):
    reply, data, text = await run(app, "health", "prod")
    assert reply.exit_code == 0 and data["overall"] == "ok" and len(data["checks"]) == 3
    assert all(c["status_code"] == 200 for c in data["checks"])
    assert "API Health" in text


async def test_logs_are_redacted(app, shop):
    reply, data, text = await run(app, "logs", "prod", "worker", "--grep", "password")
    assert reply.exit_code == 0
    assert data["lines"] and "[REDACTED]" in data["lines"][0]
    no_secret(shop, data, text)
    reply, data, _ = await run(app, "logs", "prod", "worker", "--lines", "3")
    assert len(data["lines"]) == 3
    reply, data, _ = await run(app, "logs", "prod", "worker", "--since", "1h", "--grep", "ERROR")
    assert data["lines"] == ["ERROR timeout talking to db"]
    audit = await app.engine.audit.entries(limit=50)
    no_secret(shop, audit)


async def test_troubleshoot_504(app, shop):
    _, data, text = await run(app, "troubleshoot", "504")
    [match] = data["matches"]
    assert match["issue"] == "API Timeout" and match["how"] == "exact" and match["matched"] == ["504"]
    assert match["resolution"] == "Check DB connections, increase timeout"
    findings = {f["name"]: f for f in match["diagnostics"]}
    assert list(findings) == ["containers", "health", "logs", "db_connections"]
    assert findings["containers"]["severity"] == "critical" and "redis" in findings["containers"]["summary"]
    assert findings["health"]["severity"] == "ok" and findings["health"]["summary"] == "3 of 3 checks pass"
    assert any("ERROR timeout talking to db" in line for line in findings["logs"]["lines"])
    assert findings["db_connections"]["summary"] == "3"
    assert [e["level"] for e in data["escalation"]] == ["L1", "L2", "L3", "L4"]
    assert "Resolution: Check DB connections" in text and "Escalation: L1" in text
    no_secret(shop, data, text)


async def test_troubleshoot_phrases_fuzzy_and_no_match(app):
    _, data, _ = await run(app, "troubleshoot", "Gateway", "Timeout")
    assert data["matches"][0]["issue"] == "API Timeout"
    _, data, _ = await run(app, "troubleshoot", "out", "of", "memroy")
    assert data["matches"][0]["issue"] == "Out of Memory" and data["matches"][0]["how"] == "fuzzy"
    assert {f["name"] for f in data["matches"][0]["diagnostics"]} == {"containers", "stats"}
    reply, data, text = await run(app, "troubleshoot", "printer", "on", "fire")
    assert data["matches"] == [] and len(data["known_issues"]) == 4
    assert "No guide entry matches" in text and reply.exit_code == 0
    _, data, _ = await run(app, "troubleshoot", "5040")  # numbers match exactly, never by prefix
    assert data["matches"] == []


@pytest.mark.parametrize("diagnose", [["logs"], ["health", "logs"]], ids=["logs", "health-logs"])
async def test_a_fresh_bot_redacts_troubleshoot_first(shop, tmp_path, diagnose):
    """Issue 11, finding 2: nothing has listed the containers before; the worker logs its own secret."""
    config = yaml.safe_load((ROOT / "examples" / "ops.yml").read_text())
    prod = config["environments"]["prod"]
    prod["url"] = shop.url
    prod["runtime"].update(docker_host=shop.host, project=shop.project)
    config["troubleshooting"] = [{"issue": "Worker cannot connect", "symptoms": ["connecting"],
                                  "resolution": "Check the password", "diagnose": diagnose}]  # fmt: skip
    path = tmp_path / "ops.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    fresh = App.build(Settings(opsbot_config=str(path), opsbot_db=str(tmp_path / "fresh.db")))
    try:
        _, data, text = await run(fresh, "troubleshoot", "connecting", actor="U0NOBODY")
        [finding] = [f for f in data["matches"][0]["diagnostics"] if f["name"] == "logs"]
        # the diagnostic keeps the newest error or matching lines: the worker's first line may have left the window
        # on a long-running shop; where it is shown, it is redacted
        shown = [line for line in finding["lines"] if "connecting with password" in line]
        assert all("connecting with password [REDACTED]" in line for line in shown), finding
        no_secret(shop, data, text)
        no_secret(shop, await fresh.engine.audit.entries(limit=50))
    finally:
        await fresh.close()
