"""The change path on fakes: dry run, approval, plan binding, break glass, failure to verify."""

from __future__ import annotations

import pytest

from adapters.fakes import FakeBackends, FakeProbe, FakeRuntime
from bot.db import Database
from bot.engine import Engine, Request
from bot.redact import Redactor
from tests.unit.conftest import make_config

ACCESS = {"viewers": [], "operators": ["U0OPERATOR"], "approvers": ["U0APPROVER1", "U0APPROVER2"],
          "admins": ["U0ADMIN"]}  # fmt: skip


@pytest.fixture
def backends():
    rt = FakeRuntime()
    rt.add("api", health="healthy")
    rt.add("worker")
    probe = FakeProbe()
    probe.answer("http://127.0.0.1:18080/health")
    probe.answer("http://127.0.0.1:18080/health/db")
    return FakeBackends({"prod": rt}, probe)


@pytest.fixture
async def engine(tmp_path, backends):
    db = Database(tmp_path / "c.db")
    engine = Engine(make_config(access=ACCESS), backends, db, Redactor())
    yield engine
    db.close()


async def handle(engine, text, actor="U0OPERATOR"):
    return await engine.handle(Request(actor=actor, door="cli", text=text))


async def decide(engine, approval_id, actor, action="approve"):
    return await engine.decide(Request(actor=actor, door="cli", text=f"{action} {approval_id}"), approval_id, action)


def restarts(backends) -> list[str]:
    return [c for c in backends.runtime("prod").calls if c.startswith("restart")]


async def test_dry_run_shows_the_plan_and_creates_nothing(engine, backends):
    reply = await handle(engine, "restart prod worker --dry-run")
    data = reply.to_json()
    assert reply.exit_code == 0 and data["kind"] == "plan"
    assert data["plan"]["targets"] == [{"container": "shop-worker-1", "image": "shop/worker:1.0", "state": "running"}]
    assert await engine.changes.approvals.pending() == [] and restarts(backends) == []


async def test_approval_then_run_and_verify(engine, backends):
    reply = await handle(engine, "restart prod worker")
    approval = reply.to_json()["approval"]
    assert approval["state"] == "pending" and approval["required"] == 1 and restarts(backends) == []
    reply = await decide(engine, approval["id"], "U0APPROVER1")
    data = reply.to_json()
    assert data["approval"]["state"] == "done" and data["result"]["ok"] is True
    assert restarts(backends) == ["restart worker"]
    assert reply.exit_code == 0
    assert (await engine.audit.verify()).ok


async def test_plan_changed_means_not_run(engine, backends):
    reply = await handle(engine, "restart prod worker")
    approval_id = reply.to_json()["approval"]["id"]
    rt = backends.runtime("prod")
    worker = next(c for c in rt.items if c.service == "worker")
    rt.items[rt.items.index(worker)] = worker.model_copy(update={"image": "shop/worker:6.6.6", "version": "6.6.6"})
    reply = await decide(engine, approval_id, "U0APPROVER1")
    data = reply.to_json()
    assert data["approval"]["state"] == "stale" and "plan changed" in data["message"]
    assert restarts(backends) == [] and reply.exit_code == 1


async def test_break_glass(engine, backends):
    notices = []

    async def notify(severity, text):
        notices.append((severity, text))

    engine.changes.notify = notify
    reply = await handle(engine, 'restart prod worker --break-glass "pager storm"')
    assert reply.exit_code == 2 and "admins only" in reply.error and restarts(backends) == []
    reply = await handle(engine, 'restart prod worker --break-glass "pager storm"', actor="U0ADMIN")
    assert reply.to_json()["kind"] == "restart" and restarts(backends) == ["restart worker"]
    assert notices and notices[0][0] == "critical" and "pager storm" in notices[0][1]
    events = [e["event"] for e in await engine.audit.entries(limit=20)]
    assert "break-glass" in events


async def test_a_restart_that_does_not_verify_fails(engine, backends):
    backends.probe.answer("http://127.0.0.1:18080/health/db", ok=False, status=503, error="HTTP 503")
    reply = await handle(engine, "restart prod worker", actor="U0ADMIN")
    reply = await decide(engine, reply.to_json()["approval"]["id"], "U0APPROVER2")
    data = reply.to_json()
    assert data["approval"]["state"] == "failed" and data["result"]["ok"] is False
    assert "health checks failing after the restart: Database" == data["result"]["problem"]
    assert reply.exit_code == 1


async def test_operators_request_viewers_do_not(tmp_path, backends):
    db = Database(tmp_path / "v.db")
    engine = Engine(make_config(access={**ACCESS, "viewers": ["U0VIEWER"]}), backends, db, Redactor())
    reply = await handle(engine, "restart prod worker", actor="U0VIEWER")
    assert reply.exit_code == 2 and "admins or operators role" in reply.error
    reply = await handle(engine, "restart prod worker", actor="U0APPROVER1")
    assert reply.exit_code == 2  # approvers approve; they do not request
    db.close()
