"""The one request path on fakes: parse, authorize, run, redact, audit; refusals and bugs."""

from __future__ import annotations

import json

import pytest

from adapters.errors import EngineUnavailable
from adapters.fakes import FakeBackends, FakeProbe, FakeRuntime
from bot.config.redact import Redactor
from bot.core.audit import AuditLog
from bot.core.db import Database
from bot.core.engine import Engine, Request
from bot.render.text import render_text
from commands.base import Args, CommandSpec, Result
from tests.unit.conftest import make_config

SECRET = "hunter2-very-secret"


@pytest.fixture
def backends():
    rt = FakeRuntime()
    rt.add("api", health="healthy")
    rt.add("worker", env={"DB_PASSWORD": SECRET}, logs=[f"connecting with {SECRET}", "ERROR timeout"])
    rt.add("postgres")
    rt.add("redis", state="exited", exit_code=1)
    probe = FakeProbe()
    probe.answer("http://127.0.0.1:18080/health", latency=12)
    probe.answer("http://127.0.0.1:18080/health/db", latency=700)
    return FakeBackends({"prod": rt}, probe)


@pytest.fixture
async def engine(tmp_path, backends):
    db = Database(tmp_path / "t.db")
    engine = Engine(make_config(), backends, db, Redactor(["xoxb-bot-token-123456"]))
    yield engine
    db.close()


async def handle(engine, text, actor="U0OPERATOR", door="slack"):
    return await engine.handle(Request(actor=actor, door=door, text=text))


async def events(engine):
    return [(e["event"], e["command"], e["outcome"]) for e in reversed(await engine.audit.entries(limit=100))]


async def test_status_on_fakes_judges_every_row(engine):
    reply = await handle(engine, "/ops status prod")
    assert reply.command == "status" and reply.environment == "prod"
    data = reply.to_json()
    by = {s["name"]: s for s in data["services"]}
    assert by["api"]["severity"] == "ok" and by["redis"]["severity"] == "critical"
    checks = {c["name"]: c for c in data["checks"]}
    assert checks["Database"]["severity"] == "warning"  # 700 ms >= 500 ms warning threshold
    assert data["overall"] == "critical" and reply.exit_code == 1
    assert await events(engine) == [("requested", "status prod", "accepted"), ("succeeded", "status prod", "critical")]


async def test_thresholds_drive_severity(engine, backends):
    rt = backends.runtime("prod")
    rt.items = [rt.items[0].model_copy(update={"cpu_percent": 95.0, "memory_percent": 85.0})]
    reply = await handle(engine, "status prod")
    api = next(s for s in reply.to_json()["services"] if s["name"] == "api")
    assert (
        api["severity"] == "critical" and "cpu 95% >= 90%" in api["reasons"] and "memory 85% >= 80%" in api["reasons"]
    )
    missing = {s["name"]: s for s in reply.to_json()["services"] if s["state"] == "missing"}
    assert set(missing) == {"worker", "postgres", "redis"} and missing["worker"]["severity"] == "critical"


async def test_secrets_never_leave_the_engine(engine):
    reply = await handle(engine, "logs prod worker")
    assert reply.exit_code == 0
    out = json.dumps(reply.to_json()) + render_text(reply)
    assert SECRET not in out and "[REDACTED]" in out
    reply = await handle(engine, "troubleshoot 504")
    assert SECRET not in json.dumps(reply.to_json()) + render_text(reply)
    assert SECRET not in json.dumps(await engine.audit.entries(limit=100))


async def test_every_result_is_redacted_by_the_engine_itself(engine, backends):
    # a health check's error is nobody's log and no command redacts it: only the one redaction of every
    # result on the request path masks the secret the engine learnt from the containers
    backends.probe.answer("http://127.0.0.1:18080/health/db", ok=False, status=500,
                          error=f"password authentication failed: {SECRET}")  # fmt: skip
    reply = await handle(engine, "health prod")
    out = json.dumps(reply.to_json()) + render_text(reply)
    assert "password authentication failed" in out and SECRET not in out and "[REDACTED]" in out


async def test_engine_down_is_one_clear_line(engine, backends):
    backends.runtime("prod").fail = EngineUnavailable(
        "Docker engine at unix:///x.sock does not answer (no such socket)"
    )
    reply = await handle(engine, "status prod")
    data = reply.to_json()
    assert data["errors"] == ["Docker engine at unix:///x.sock does not answer (no such socket)"]
    assert data["overall"] == "critical" and len(data["checks"]) == 2
    reply = await handle(engine, "logs prod api")
    assert reply.error == "Docker engine at unix:///x.sock does not answer (no such socket)" and reply.exit_code == 1
    assert (await events(engine))[-1][0] == "failed"


HOSTILE = [
    "status '1.1;rm -rf /'",
    "logs prod '$(reboot)'",
    "logs prod `reboot`",
    "status ../../etc/passwd",
    "logs prod api --lines 1;reboot",
    "status " + "x" * 3000,
    "status pr\u043ed",
    "deploy prod '1.0;reboot'",
    "deploy prod ../1.0",
    "flag prod FEATURE_X maybe",
]


@pytest.mark.parametrize("text", HOSTILE)
async def test_hostile_input_is_refused_and_nothing_runs(engine, backends, text):
    reply = await handle(engine, text)
    assert reply.exit_code == 2 and reply.result is None and reply.error
    assert "Traceback" not in reply.error and len(reply.error) < 400
    assert backends.runtime("prod").calls == [] and backends.probe.requests == []
    [(event, _, _)] = await events(engine)
    assert event == "refused"


async def test_access_by_role(tmp_path, backends):
    access = {"viewers": ["U0VIEWER"], "operators": ["U0OPERATOR"], "approvers": ["U0APPROVER1"], "admins": ["U0ADMIN"]}
    db = Database(tmp_path / "a.db")
    engine = Engine(make_config(access=access), backends, db, Redactor())
    for actor in ("U0VIEWER", "U0OPERATOR", "U0APPROVER1", "U0ADMIN", "local:alice"):
        reply = await handle(engine, "health prod", actor=actor)
        assert reply.error is None and reply.result is not None, actor
    reply = await handle(engine, "health prod", actor="U0STRANGER")
    assert reply.exit_code == 2 and "may not run health in prod" in reply.error
    db.close()


async def test_user_group_resolution(tmp_path, backends):
    class Groups:
        def __init__(self, members=None, fail=False):
            self.members_ = members or {}
            self.fail = fail

        async def members(self, group):
            if self.fail:
                from adapters.errors import AdapterError

                raise AdapterError("Slack did not answer")
            return self.members_.get(group, set())

    access = {"viewers": ["S0VIEWERS"], "operators": [], "approvers": [], "admins": []}
    db = Database(tmp_path / "g.db")
    engine = Engine(make_config(access=access), backends, db, Redactor(), groups=Groups({"S0VIEWERS": {"U0MEMBER"}}))
    assert (await handle(engine, "health", actor="U0MEMBER")).result is not None
    assert (await handle(engine, "health", actor="U0OTHER")).exit_code == 2
    engine.access.groups = Groups(fail=True)
    reply = await handle(engine, "health", actor="U0MEMBER")
    assert reply.exit_code == 2 and "could not be resolved" in reply.error  # Slack cannot answer: the answer is no
    db.close()


async def test_a_bug_is_an_unexpected_error_with_a_reference(engine, caplog):
    class BoomArgs(Args):
        pass

    async def boom(ctx, args) -> Result:
        raise ZeroDivisionError(f"secret {SECRET}")

    engine.registry = {"boom": CommandSpec(name="boom", summary="", help="", args=BoomArgs, run=boom, usage="boom")}
    reply = await handle(engine, "boom")
    assert reply.error == f"unexpected error (ref {reply.ref})" and reply.exit_code == 1
    assert reply.to_json() == {"error": reply.error, "exit_code": 1, "ref": reply.ref}
    assert any(reply.ref in r.getMessage() for r in caplog.records)
    assert (await events(engine))[-1] == ("failed", "boom", reply.error)


async def test_audit_command_and_chain(engine):
    await handle(engine, "health prod", actor="U0OPERATOR")
    await handle(engine, "escalate L2", actor="U0APPROVER1")
    reply = await handle(engine, "audit --user U0APPROVER1 --limit 5")
    entries = reply.to_json()["entries"]
    assert entries and {e["actor"] for e in entries} == {"U0APPROVER1"}
    assert (await engine.audit.verify()).ok
    assert isinstance(engine.audit, AuditLog)


async def test_help(engine):
    reply = await handle(engine, "help")
    names = [c["name"] for c in reply.to_json()["commands"]]
    assert names == [
        "help", "status", "health", "logs", "troubleshoot", "escalate", "history", "pending", "audit", "config",
        "deploy", "rollback", "restart", "startup", "shutdown", "flag", "backup", "backups", "verify-backup",
        "restore", "maintenance", "security", "alerts", "ack", "silence",
    ]  # fmt: skip
    detail = (await handle(engine, "help logs")).to_json()["detail"]
    assert detail["usage"].startswith("logs <env> <service>") and "[REDACTED]" in detail["description"]
    reply = await handle(engine, "help lgs")
    assert reply.exit_code == 2 and "Did you mean 'logs'" in reply.error


async def test_troubleshoot_logs_show_errors_before_warnings(engine, backends):
    rt = backends.runtime("prod")
    worker = next(c for c in rt.items if c.service == "worker")
    for i in range(30):
        rt.log(worker.name, f"WARN slow query {i}")
    reply = await handle(engine, "troubleshoot 504")
    [match] = reply.to_json()["matches"]
    logs = next(f for f in match["diagnostics"] if f["name"] == "logs")
    assert logs["lines"][0] == "worker: ERROR timeout"  # older than every warning, still shown, first
    assert len(logs["lines"]) == 8 and logs["lines"][-1] == "worker: WARN slow query 29"


async def test_troubleshoot_never_says_no_errors_when_it_could_not_read_the_logs(engine, backends):
    backends.runtime("prod").fail = EngineUnavailable("Docker engine at unix:///x.sock does not answer")
    reply = await handle(engine, "troubleshoot 504")
    findings = {f["name"]: f for f in reply.to_json()["matches"][0]["diagnostics"]}
    assert findings["logs"]["severity"] == "critical"
    assert findings["logs"]["summary"] == "could not run: Docker engine at unix:///x.sock does not answer"


async def test_config_shows_flags_and_redacts_secrets(engine, backends):
    rt = backends.runtime("prod")
    worker = next(c for c in rt.items if c.service == "worker")
    env = {**worker.env, "FEATURE_CHECKOUT": "on", "PLAIN": "visible", "API_URL": "https://u:pw123456@h/x"}
    rt.items[rt.items.index(worker)] = worker.model_copy(update={"env": env})
    reply = await handle(engine, "config prod worker")
    [view] = reply.to_json()["services"]
    assert view["flags"] == {"FEATURE_CHECKOUT": "on"}
    assert view["environment"]["DB_PASSWORD"] == "[REDACTED]" and view["environment"]["PLAIN"] == "visible"
    assert "pw123456" not in view["environment"]["API_URL"]
    assert SECRET not in json.dumps(reply.to_json()) + render_text(reply)
