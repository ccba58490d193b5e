"""The change path on fakes: dry run, approval, plan binding, break glass, failure to verify."""

from __future__ import annotations

import asyncio
import os
import socket
import time

import pytest

from adapters.fakes import FakeBackends, FakeProbe, FakeRuntime
from bot.config.redact import Redactor
from bot.core.db import Database
from bot.core.engine import Engine, Request
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


async def test_one_change_at_a_time_per_environment(engine, backends):
    first = (await handle(engine, "restart prod worker")).to_json()["approval"]["id"]
    second = (await handle(engine, "restart prod api")).to_json()["approval"]["id"]
    backends.runtime("prod").delay = 0.3  # every engine call takes a while: the two runs overlap
    a, b = await asyncio.gather(decide(engine, first, "U0APPROVER1"), decide(engine, second, "U0APPROVER2"))
    by_state = {r.to_json()["approval"]["state"]: r.to_json() for r in (a, b)}
    assert sorted(by_state) == ["done", "failed"]
    message = by_state["failed"]["message"]
    assert message.startswith("not run: another change is running in prod: `restart prod ")
    assert "nothing was run" in message
    assert len(restarts(backends)) == 1  # the second never touched the engine
    backends.runtime("prod").delay = 0
    # the environment is free again once the first has finished
    third = (await handle(engine, "restart prod api")).to_json()["approval"]["id"]
    assert (await decide(engine, third, "U0APPROVER1")).to_json()["approval"]["state"] == "done"
    events = [e["event"] for e in await engine.audit.entries(limit=50)]
    assert "refused" in events and (await engine.audit.verify()).ok


async def test_a_lease_left_by_a_dead_process_is_taken_over(engine, backends, tmp_path):
    from bot.core.locks import EnvironmentBusy, EnvLocks

    other = EnvLocks(engine.db, runner=f"{socket.gethostname()}:{dead_pid()}:x")
    async with other.hold("prod", "`restart prod api` (approval 1234abcd of U0OTHER)"):
        pass  # released: free
    live = EnvLocks(engine.db, runner=f"{socket.gethostname()}:{os.getpid()}:y")
    async with live.hold("prod", "`deploy prod 1.1` (approval 5678abcd of U0OTHER)"):
        with pytest.raises(EnvironmentBusy, match=r"another change is running in prod: `deploy prod 1\.1`"):
            async with EnvLocks(engine.db).hold("prod", "me"):
                pass
        async with EnvLocks(engine.db).hold("stage", "me"):  # another environment is not held
            pass

    # a process that died holding prod: its lease is taken over at once (same host, dead pid)
    def orphan(db):
        db.conn.execute("INSERT INTO env_locks VALUES ('prod', 't', '`restore prod x`', ?, 0, ?)",
                        [f"{socket.gethostname()}:{dead_pid()}:z", time.time()])  # fmt: skip

    await engine.db.call(orphan)
    async with EnvLocks(engine.db).hold("prod", "me"):
        pass


def dead_pid() -> int:
    """A pid that no process has now."""
    import subprocess

    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


async def test_a_failing_stage_is_reported_after_every_service_of_it_has_finished(engine, backends):
    from adapters.errors import AdapterError
    from commands.stages import run_stages

    rt = backends.runtime("prod")
    finished: list[str] = []
    api_failed, worker_stopping, worker_may_finish = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def stop(service, *, timeout=None):
        if service == "api":
            await worker_stopping.wait()
            api_failed.set()
            raise AdapterError("api would not stop")
        worker_stopping.set()
        await worker_may_finish.wait()  # worker drains its requests meanwhile, as long as the test says
        finished.append(service)
        return []

    rt.stop = stop
    ctx = engine.make_ctx(Request(actor="U0OPERATOR", door="cli", text="shutdown prod"))
    running = asyncio.create_task(run_stages(ctx, "prod", "shutdown", [["api", "worker"], ["postgres"]]))
    await api_failed.wait()
    for _ in range(50):  # every step the loop can take without the worker: the stage does not end without it
        await asyncio.sleep(0)
    assert not running.done()
    worker_may_finish.set()
    outcomes, problem = await running
    assert problem.startswith("stage 1 (api, worker) failed: api would not stop")
    assert finished == ["worker"] and [o.ok for o in outcomes] == [False]  # stage 2 never started
