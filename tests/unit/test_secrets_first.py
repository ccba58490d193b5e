"""Every output path is redacted with the environment's secrets known, whatever ran before (issue 11, finding 2).

Each test builds a fresh engine (a fresh redactor that has learnt nothing) and runs one output path
FIRST: nothing listed the containers before, so only the engine's own learning can mask the secret.
"""

from __future__ import annotations

import json

import pytest

from adapters.fakes import FakeBackends, FakeProbe, FakeRuntime
from adapters.models import ExecResult
from bot.config.redact import Redactor
from bot.core.db import Database
from bot.core.engine import Engine, Reply, Request
from bot.doors.scheduler import Scheduler
from bot.render.text import render_text
from bot.slack.blocks import render_message
from tests.unit.conftest import make_config

SECRET = "Zq8-hunter2-prod-db"
URL = "http://127.0.0.1:18080"
GUIDE = [
    {"issue": "Auth logs", "symptoms": ["auth"], "resolution": "Rotate", "diagnose": ["logs"]},
    {"issue": "Auth health", "symptoms": ["login"], "resolution": "Check", "diagnose": ["health", "logs"]},
    {"issue": "Auth query", "symptoms": ["query"], "resolution": "Look", "diagnose": ["db_connections"]},
]


def fresh_engine(tmp_path, *, health_error: str | None = None) -> Engine:
    rt = FakeRuntime()
    rt.add("api", env={"PORT": "8080"})
    many = [f"INFO tick {i}" for i in range(60)]
    rt.add("worker", env={"DB_PASSWORD": SECRET}, logs=[*many, f"ERROR auth failed for app using {SECRET}"])
    rt.add("postgres")
    rt.add("redis")
    rt.exec_results[("postgres", "psql", "-tA", "-c", "SELECT 1")] = ExecResult(exit_code=0, output=f"as {SECRET}\n1")
    probe = FakeProbe()
    probe.answer(f"{URL}/health", ok=health_error is None, status=500 if health_error else 200, error=health_error)
    probe.answer(f"{URL}/health/db")
    config = make_config(troubleshooting=GUIDE, slack={"alert_channels": {"critical": "C0CRIT"}},
                         schedules=[{"task": "health_check", "env": "prod", "every": "1h"}])  # fmt: skip
    return Engine(config, FakeBackends({"prod": rt}, probe), Database(tmp_path / "fresh.db"), Redactor())


def shown(reply: Reply) -> str:
    """Everything any door would show of ``reply``: JSON, text, Slack blocks, the attached file."""
    message = render_message(reply)
    return "\n".join([json.dumps(reply.to_json()), render_text(reply), message.text, json.dumps(message.blocks),
                      message.file[1] if message.file else ""])  # fmt: skip


@pytest.mark.parametrize(
    "text",
    ["troubleshoot auth", "troubleshoot login", "troubleshoot query", "logs prod worker --lines 100"],
    ids=["diagnose-logs", "diagnose-health-logs", "diagnose-custom-exec", "logs-with-upload"],
)
async def test_a_fresh_bot_never_shows_the_secret(tmp_path, text):
    engine = fresh_engine(tmp_path)
    try:
        reply = await engine.handle(Request(actor="U0NOBODY", door="slack", text=text))
        assert reply.error is None, reply.error
        out = shown(reply)
        assert SECRET in json.dumps(engine.backends.runtime("prod").items[1].env)  # the secret is really there
        assert SECRET not in out and "[REDACTED]" in out, out[-2000:]
        audit = json.dumps(await engine.audit.entries(limit=50))
        assert SECRET not in audit
    finally:
        engine.db.close()


@pytest.mark.parametrize("command", ["health prod", "status prod"])
async def test_a_health_check_error_holding_the_secret_is_redacted_first(tmp_path, command):
    # status learns the secrets from its own container listing (no second listing first): still redacted
    engine = fresh_engine(tmp_path, health_error=f"upstream says: bad credential {SECRET}")
    try:
        reply = await engine.handle(Request(actor="U0NOBODY", door="slack", text=command))
        assert reply.severity == "critical" and SECRET not in shown(reply) and "[REDACTED]" in shown(reply)
        calls = [c for c in engine.backends.runtime("prod").calls if c == "containers"]
        assert len(calls) == 1, calls  # one listing of the containers per request
    finally:
        engine.db.close()


async def test_a_scheduled_alert_is_redacted_on_the_first_run(tmp_path):
    engine = fresh_engine(tmp_path, health_error=f"upstream says: bad credential {SECRET}")
    posted: list[tuple[str, str, Reply]] = []

    async def alert(severity: str, headline: str, reply: Reply) -> None:
        posted.append((severity, headline, reply))

    try:
        scheduler = Scheduler(engine, alert=alert)
        [claim] = await scheduler.claim_due()
        await scheduler.run(claim)
        [(severity, headline, reply)] = posted
        assert severity == "critical" and SECRET not in headline + shown(reply)
    finally:
        engine.db.close()
