"""What the README promises and no other test showed: the disk diagnostic and ``disk_percent``,
``/health/db`` failing, an audit write that fails, the ``expired`` audit event, and heartbeats keeping
a long run (and its environment's lease) from being taken over by another bot process."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time

import httpx
import pytest

import bot.core.changes
from adapters.fakes import FakeBackends, FakeProbe, FakeRuntime
from bot.config.redact import Redactor
from bot.core.approvals import Approvals
from bot.core.db import Database
from bot.core.engine import Engine, Request
from bot.core.locks import EnvironmentBusy, EnvLocks
from tests.helpers.http_servers import serve
from tests.unit.conftest import make_config

ACCESS = {"viewers": [], "operators": ["U0OPERATOR"], "approvers": ["U0APPROVER1"], "admins": ["U0ADMIN"]}
DISK = [{"issue": "Disk Full", "symptoms": ["disk full"], "resolution": "Clean up", "diagnose": ["disk"]}]
#: a bot process on another host: only its heartbeat says it is alive
ELSEWHERE = "otherhost:4242:feedbeef"


def fake_backends() -> FakeBackends:
    rt = FakeRuntime()
    rt.add("api", health="healthy")
    rt.add("worker")
    rt.add("postgres")
    rt.add("redis", state="exited", exit_code=1)
    probe = FakeProbe()
    probe.answer("http://127.0.0.1:18080/health")
    probe.answer("http://127.0.0.1:18080/health/db")
    return FakeBackends({"prod": rt}, probe)


@pytest.fixture
async def make_engine(tmp_path):
    made: list[Database] = []

    def make(**config) -> Engine:
        db = Database(tmp_path / f"r{len(made)}.db")
        made.append(db)
        return Engine(make_config(access=ACCESS, **config), fake_backends(), db, Redactor())

    yield make
    for db in made:
        db.close()


async def handle(engine, text, actor="U0OPERATOR"):
    return await engine.handle(Request(actor=actor, door="cli", text=text))


# ---------------------------------------------------------------------- disk


@pytest.mark.parametrize(
    ("thresholds", "expected"),
    [
        ({}, {"api": "CRITICAL", "worker": "OK", "postgres": "WARNING"}),  # defaults: 70% warning, 90% critical
        ({"disk_percent": {"warning": 40, "critical": 60}}, {"api": "CRITICAL", "worker": "WARNING",
                                                             "postgres": "CRITICAL"}),
    ],
)
async def test_the_disk_diagnostic_judges_each_running_service_by_disk_percent(make_engine, thresholds, expected):
    engine = make_engine(troubleshooting=DISK, thresholds=thresholds)
    engine.backends.runtime("prod").disk_percent = {"api": 95.0, "worker": 50.0, "postgres": 75.0}
    reply = await handle(engine, "troubleshoot disk full")
    [disk] = [f for f in reply.to_json()["matches"][0]["diagnostics"] if f["name"] == "disk"]
    judged = {line.split()[1].rstrip(":"): line.split()[0] for line in disk["lines"]}
    assert judged == expected  # redis is not running: not looked at
    filling = [s for s, level in expected.items() if level != "OK"]
    assert disk["severity"] == "critical" and disk["summary"] == f"{len(filling)} filesystems filling up"
    assert "api: 95% of" in " ".join(disk["lines"])


async def test_a_disk_that_cannot_be_read_is_unknown_and_never_ok(make_engine):
    engine = make_engine(troubleshooting=DISK)
    rt = engine.backends.runtime("prod")
    rt.disk_percent = {"api": 10.0, "worker": 10.0, "postgres": 10.0}
    from adapters.errors import AdapterError

    real_disk = rt.disk

    async def disk(service):
        if service == "worker":
            raise AdapterError("df in service 'worker' exited with 1")
        return await real_disk(service)

    rt.disk = disk
    reply = await handle(engine, "troubleshoot disk full")
    [finding] = [f for f in reply.to_json()["matches"][0]["diagnostics"] if f["name"] == "disk"]
    assert "worker: unknown (df in service 'worker' exited with 1)" in finding["lines"]
    assert finding["severity"] == "warning" and len(finding["lines"]) == 3
    assert finding["summary"] == "disk use within thresholds; could not read: worker"


# ---------------------------------------------------------------------- /health/db


async def test_health_db_says_503_when_the_database_does_not_answer(tmp_path, caplog):
    from bot.config.settings import Settings
    from bot.core.app import App
    from bot.core.metrics import Metrics
    from bot.core.tasks import TaskSet
    from bot.slack.server import Server
    from tests.unit.test_config import SPEC_LOCAL

    app = App.build(Settings(opsbot_config=str(SPEC_LOCAL), opsbot_db=str(tmp_path / "h.db")))
    server = Server(app, Metrics(), TaskSet(), None)
    async with serve(server.web_app()) as base, httpx.AsyncClient() as client:
        ok = await client.get(f"{base}/health/db")
        assert (ok.status_code, ok.json()) == (200, {"status": "ok"})
        app.db.close()  # the database is gone from under the process
        with caplog.at_level(logging.ERROR, logger="opsbot.http"):
            down = await client.get(f"{base}/health/db")
        assert (down.status_code, down.json()) == (503, {"status": "error", "error": "database does not answer"})
        assert any("database check failed" in r.getMessage() for r in caplog.records)
        assert (await client.get(f"{base}/health")).json() == {"status": "ok"}  # the process itself answers


# ---------------------------------------------------------------------- audit


async def test_an_audit_write_that_fails_is_logged_and_the_answer_still_given(make_engine, caplog):
    engine = make_engine()

    async def broken(**entry):
        raise sqlite3.OperationalError("disk I/O error")

    engine.audit.append = broken
    with caplog.at_level(logging.ERROR, logger="opsbot"):
        reply = await handle(engine, "status prod")
    assert reply.result is not None and reply.exit_code == 1 and reply.audit_id is None  # redis exited: critical
    failures = [r for r in caplog.records if "could not write the audit entry" in r.getMessage()]
    assert [r.getMessage().rsplit(" ", 1)[-1] for r in failures] == ["'requested'", "'succeeded'"]
    assert all(r.exc_info and "disk I/O error" in str(r.exc_info[1]) for r in failures)


async def test_an_approval_past_its_time_is_expired_and_audited(make_engine):
    engine = make_engine()
    pending = await handle(engine, "restart prod worker")
    approval_id = pending.to_json()["approval"]["id"]
    conn = sqlite3.connect(engine.db.path)
    conn.execute("UPDATE approvals SET expires_at = 0 WHERE id = ?", (approval_id,))
    conn.commit()
    conn.close()
    [expired] = await engine.sweep()
    assert expired.id == approval_id and expired.state == "expired"
    [row] = [r for r in await engine.audit.entries(limit=20) if r["event"] == "expired"]
    assert (row["actor"], row["source"], row["command"], row["outcome"]) == (
        "opsbot", "scheduler", "restart prod worker", f"approval {approval_id} expired"
    )  # fmt: skip
    assert await engine.sweep() == []  # once
    assert (await engine.audit.verify()).ok


# ---------------------------------------------------------------------- heartbeats


@pytest.mark.parametrize("beating", [True, False], ids=["heartbeats", "no-heartbeats"])
async def test_heartbeats_keep_a_long_run_from_being_taken_over(make_engine, monkeypatch, beating):
    engine = make_engine()
    changes = engine.changes
    # the run belongs to a process on another host: whether it is alive, only its heartbeats say
    changes.approvals.runner = changes.locks.runner = ELSEWHERE
    monkeypatch.setattr(bot.core.changes, "HEARTBEAT_SECONDS", 0.02 if beating else 3600)
    changes.locks.beat = 0.02 if beating else 3600
    rt = engine.backends.runtime("prod")
    restarting, release = asyncio.Event(), asyncio.Event()
    real_restart = rt.restart

    async def long_restart(service, **kw):
        restarting.set()
        await release.wait()
        return await real_restart(service, **kw)

    rt.restart = long_restart
    pending = await handle(engine, "restart prod worker")
    approval_id = pending.to_json()["approval"]["id"]
    run = asyncio.create_task(engine.decide(Request(actor="U0APPROVER1", door="cli"), approval_id, "approve"))
    await asyncio.wait_for(restarting.wait(), 30)
    # as if the run had started two minutes ago (past HEARTBEAT_STALE) and given no sign since
    conn = sqlite3.connect(engine.db.path, isolation_level=None)
    long_ago = time.time() - 120
    conn.execute("UPDATE approvals SET updated_at = ? WHERE id = ?", (long_ago, approval_id))
    conn.execute("UPDATE env_locks SET heartbeat = ? WHERE environment = 'prod'", (long_ago,))
    if beating:  # a positive sign that it beat since: both timestamps are fresh again
        deadline = time.monotonic() + 30
        while True:
            fresh = conn.execute(
                "SELECT (SELECT updated_at FROM approvals WHERE id = ?) > ? AND"
                " (SELECT heartbeat FROM env_locks WHERE environment = 'prod') > ?", (approval_id, long_ago, long_ago)
            ).fetchone()[0]  # fmt: skip
            if fresh:
                break
            assert time.monotonic() < deadline, "no heartbeat"
            await asyncio.sleep(0.02)
    conn.close()
    here = Approvals(engine.db)  # this process, sweeping up after dead ones
    taken = await here.interrupt_orphans()
    other = EnvLocks(engine.db)
    try:
        if beating:
            assert taken == []
            with pytest.raises(EnvironmentBusy, match="another change is running in prod"):
                async with other.hold("prod", "`restart prod api`"):
                    pass
            release.set()
            done = await run
            assert done.to_json()["approval"]["state"] == "done"
        else:  # the control: without heartbeats the same run is taken for dead
            assert [a.id for a in taken] == [approval_id]
            async with other.hold("prod", "`restart prod api`"):
                pass
    finally:
        release.set()
        if not run.done():
            run.cancel()
            await asyncio.gather(run, return_exceptions=True)
