"""The scheduler door on fakes: due times, claims raced by two schedulers, restarts, alerts, audit."""

from __future__ import annotations

import asyncio
import copy
from collections import Counter

import pytest

from adapters.fakes import FakeBackends, FakeProbe, FakeRuntime
from bot.config.redact import Redactor
from bot.core.access import SCHEDULER_ACTOR
from bot.core.db import Database
from bot.core.engine import Engine, Request
from bot.core.schedule_state import next_due
from bot.doors.scheduler import Scheduler, alert_for
from tests.unit.conftest import BASE, make_config
from tests.unit.test_backup_fakes import DUMP, RESTORE, FakeDatabase

URL = "http://127.0.0.1:18080"
CHANNELS = {"critical": "C0CRITICAL", "warning": "C0WARNING", "info": "C0INFO"}
T0 = 1_800_000_000.0


class Clock:
    """A wall clock the test moves."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def healthy_probe() -> FakeProbe:
    probe = FakeProbe()
    probe.answer(f"{URL}/health")
    probe.answer(f"{URL}/health/db")
    return probe


def build_engine(path, schedules, probe=None, **config):
    envs = copy.deepcopy(BASE["environments"])
    envs["prod"]["approval"] = {"required": 1}
    envs["prod"]["backup"] = {"store": "s3://fake-bucket/backups/", "retention_days": 30,
                              "database": {"service": "postgres", "dump": DUMP, "restore": RESTORE}}  # fmt: skip
    rt = FakeRuntime()
    for service in ("api", "worker", "postgres", "redis"):
        rt.add(service)
    rt.stream_handler = FakeDatabase()
    cfg = make_config(environments=envs, schedules=schedules, slack={"alert_channels": CHANNELS}, **config)
    return Engine(cfg, FakeBackends({"prod": rt}, probe or healthy_probe()), Database(path), Redactor())


@pytest.fixture
def engines(tmp_path):
    made = []

    def make(schedules, probe=None, name="s.db"):
        engine = build_engine(tmp_path / name, schedules, probe)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.db.close()


class Alerts:
    """Records what the scheduler would post: (channel severity, headline, reply)."""

    def __init__(self) -> None:
        self.posted: list[tuple[str, str, object]] = []

    async def __call__(self, severity, text, reply):
        self.posted.append((severity, text, reply))


def test_next_due_keeps_the_grid_and_skips_missed_runs():
    assert next_due(100.0, 10.0, 95.0) == 100.0  # not due yet: unchanged
    assert next_due(100.0, 10.0, 100.0) == 110.0
    assert next_due(100.0, 10.0, 109.9) == 110.0
    assert next_due(100.0, 10.0, 135.0) == 140.0  # three missed runs are not caught up
    assert next_due(100.0, 0.5, 100.2) == 100.5


def test_alert_only_on_warning_critical_and_recovery():
    assert alert_for(None, None, "ok") == (None, None)
    assert alert_for("ok", None, "ok") == (None, None)
    assert alert_for("ok", None, "critical") == ("critical", "critical")
    assert alert_for("critical", "critical", "warning") == ("warning", "warning")
    assert alert_for("critical", "critical", "ok") == ("critical", None)  # recovered: where the last alert went
    assert alert_for("warning", None, "ok") == ("info", None)  # no alert known: info


async def test_first_run_is_due_at_start_and_a_restart_keeps_next_due(engines, tmp_path):
    schedules = [{"task": "health_check", "env": "prod", "every": "1h"}]
    clock = Clock()
    first = Scheduler(engines(schedules), clock=clock)
    [claim] = await first.claim_due()
    reply = await first.run(claim)
    assert reply.exit_code == 0 and reply.command == "status"
    clock.now += 10
    assert await first.claim_due() == []
    # a new process on the same file (the first one is gone)
    clock.now += 60
    again = Scheduler(engines(schedules), clock=clock)
    assert await again.claim_due() == []
    [row] = await again.state.rows()
    assert row["next_due"] == T0 + 3600 and row["last_run"] == T0 and row["last_severity"] == "ok"
    assert row["running_by"] is None
    clock.now = T0 + 3600
    assert [c.key for c in await again.claim_due()] == ["health_check:prod:3600s"]


async def test_two_schedulers_on_one_file_claim_each_due_run_once(engines):
    schedules = [{"task": "health_check", "env": "prod", "every": "10s"},
                 {"task": "health_check", "env": "prod", "every": "20s"},
                 {"task": "verify_backup", "env": "prod", "every": "10s"}]  # fmt: skip
    clock = Clock()
    # two engines, two connections on two threads: as two bot processes on one database file
    a = Scheduler(engines(schedules), clock=clock, owner="a")
    b = Scheduler(engines(schedules), clock=clock, owner="b")
    await asyncio.gather(a.start(), b.start())
    rounds = 40
    claimed: Counter[str] = Counter()
    owners: set[str] = set()
    for _ in range(rounds):
        got_a, got_b = await asyncio.gather(a.claim_due(), b.claim_due())
        per_round = Counter(c.key for c in got_a + got_b)
        assert all(n == 1 for n in per_round.values()), per_round
        claimed.update(per_round)
        owners |= {c.owner for c in got_a + got_b}
        # a run still going is not claimed again, even when due
        clock.now += 10
        again_a, again_b = await asyncio.gather(a.claim_due(), b.claim_due())
        assert not {c.key for c in again_a + again_b} & set(per_round)
        assert len(again_a + again_b) == len({c.key for c in again_a + again_b})
        claimed.update(c.key for c in again_a + again_b)
        for s, claims in ((a, got_a + again_a), (b, got_b + again_b)):
            for c in claims:
                assert await s.state.finish(c, "ok", None)
    assert claimed == {
        "health_check:prod:10s": rounds,
        "verify_backup:prod:10s": rounds,
        "health_check:prod:20s": rounds // 2 + 1,
    }  # fmt: skip  (0, 20, ..., 400 s)
    assert owners == {"a", "b"}  # both won some


async def test_a_crashed_runner_s_claim_is_taken_over_after_its_lease(engines):
    schedules = [{"task": "health_check", "env": "prod", "every": "10s"}]
    clock = Clock()
    a = Scheduler(engines(schedules), clock=clock, owner="a", lease=30)
    b = Scheduler(engines(schedules), clock=clock, owner="b", lease=30)
    [lost] = await a.claim_due()  # a "dies" holding it
    clock.now += 20
    assert await b.claim_due() == []
    clock.now += 15
    [taken] = await b.claim_due()
    assert taken.owner == "b"
    assert not await a.state.finish(lost, "ok", None)  # a late finish of the dead claim changes nothing


async def test_the_claims_of_a_process_known_gone_are_released_at_once(engines):
    schedules = [{"task": "health_check", "env": "prod", "every": "10s"}]
    clock = Clock()
    a = Scheduler(engines(schedules), clock=clock, owner="host:41:aa", lease=30)
    b = Scheduler(engines(schedules), clock=clock, owner="host:7:bb", lease=30)
    [lost] = await a.claim_due()  # a dies holding it; the next run is due in 10 s
    clock.now += 10
    assert await b.claim_due() == []  # its lease holds
    assert await b.state.expire("host:4:") == 0  # another process's prefix (4 is not 41) releases nothing
    assert await b.state.expire("host:41:") == 1
    [taken] = await b.claim_due()
    assert taken.owner == "host:7:bb" and taken.due == lost.due + 10  # the next run, not the lost one again
    assert not await a.state.finish(lost, "ok", None)


async def test_alerts_ok_critical_critical_ok_then_warning_ok(engines):
    probe = healthy_probe()
    clock = Clock()
    alerts = Alerts()
    s = Scheduler(engines([{"task": "health_check", "env": "prod", "every": "1m"}], probe), clock=clock,
                  alert=alerts)  # fmt: skip

    async def run_once(db_ok=True, latency=5.0):
        probe.answer(f"{URL}/health/db", ok=db_ok, status=200 if db_ok else 500, latency=latency)
        [claim] = await s.claim_due()
        clock.now += 60
        return await s.run(claim)

    assert (await run_once()).severity == "ok"
    assert (await run_once(db_ok=False)).severity == "critical"
    assert (await run_once(db_ok=False)).severity == "critical"
    assert (await run_once()).severity == "ok"
    assert (await run_once()).severity == "ok"
    assert (await run_once(latency=700)).severity == "warning"
    assert (await run_once()).severity == "ok"
    assert [(sev, text) for sev, text, _ in alerts.posted] == [
        ("critical", ":red_circle: Scheduled `status prod`: CRITICAL"),
        ("critical", ":red_circle: Scheduled `status prod`: CRITICAL"),
        ("critical", ":large_green_circle: Scheduled `status prod` recovered: OK (was CRITICAL)"),
        ("warning", ":warning: Scheduled `status prod`: WARNING"),
        ("warning", ":large_green_circle: Scheduled `status prod` recovered: OK (was WARNING)"),
    ]
    critical_reply = alerts.posted[0][2]
    assert critical_reply.result.kind == "status" and critical_reply.environment == "prod"


async def test_an_error_is_critical_and_the_loop_goes_on(engines, caplog):
    schedules = [{"task": "health_check", "env": "prod", "every": "50ms"}]
    engine = engines(schedules)
    alerts = Alerts()
    calls = []
    real_handle = engine.handle

    async def flaky_handle(request):
        calls.append(request)
        if len(calls) == 1:
            raise RuntimeError("engine exploded")
        return await real_handle(request)

    engine.handle = flaky_handle
    s = Scheduler(engine, alert=alerts, tick=0.01)
    real_claim = s.state.claim
    failed_claims = []

    async def flaky_claim(*args):
        if len(calls) == 1 and not failed_claims:
            failed_claims.append(args)
            raise OSError("database is locked")
        return await real_claim(*args)

    s.state.claim = flaky_claim
    loop = asyncio.create_task(s.run_forever())
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while not (len(calls) >= 3 and len(alerts.posted) >= 2):
            assert asyncio.get_running_loop().time() < deadline, (calls, alerts.posted)
            await asyncio.sleep(0.01)
    finally:
        loop.cancel()
        with pytest.raises(asyncio.CancelledError):
            await loop
        await s.stop()
    assert len(calls) >= 3 and failed_claims
    first = alerts.posted[0]
    assert first[0] == "critical" and "unexpected error" in first[1]
    assert alerts.posted[1][0] == "critical" and "recovered" in alerts.posted[1][1]
    assert "scheduler tick failed" in caplog.text and "engine exploded" in caplog.text


async def test_runs_are_audited_as_the_scheduler_door(engines):
    s = Scheduler(engines([{"task": "health_check", "env": "prod", "every": "1h"}]), clock=Clock())
    [claim] = await s.claim_due()
    await s.run(claim)
    rows = await s.engine.audit.entries(limit=10)
    assert {(r["source"], r["actor"]) for r in rows} == {("scheduler", SCHEDULER_ACTOR)}
    assert sorted(r["event"] for r in rows) == ["requested", "succeeded"]
    assert all(r["request_id"] == claim.request_id for r in rows)
    assert (await s.engine.audit.verify()).ok


async def test_a_scheduled_backup_runs_without_approval_but_the_scheduler_cannot_skip_approvals(engines):
    engine = engines([{"task": "backup", "env": "prod", "every": "24h"}])
    s = Scheduler(engine, clock=Clock())
    [claim] = await s.claim_due()
    reply = await s.run(claim)
    assert reply.error is None and reply.result.kind == "backup" and reply.exit_code == 0
    assert len(engine.backends.store("prod").objects) == 1
    events = [(r["event"], r["outcome"]) for r in await engine.audit.entries(limit=20)]
    assert ("started", "no approval needed") in events
    # the same identity asking for a change that needs approval waits like anyone else
    restart = await engine.handle(Request(actor=SCHEDULER_ACTOR, door="scheduler", words=["restart", "prod", "api"]))
    assert restart.result.kind == "approval" and restart.result.approval["state"] == "pending"
    roles, _ = await engine.access.roles(SCHEDULER_ACTOR, "prod")
    assert roles == {"viewers", "operators"}  # cannot approve, cannot break glass
    glass = await engine.handle(Request(actor=SCHEDULER_ACTOR, door="scheduler",
                                        words=["restart", "prod", "api", "--break-glass", "why"]))  # fmt: skip
    assert glass.error and "admins" in glass.error
