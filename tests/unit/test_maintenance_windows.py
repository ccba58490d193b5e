"""Changes and maintenance windows on fakes: refused outside (with the next start), break glass, inside a
window the approval rules, an approval that outlives its window, maintenance tasks without approvers inside."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from adapters.fakes import FakeBackends, FakeProbe, FakeRuntime
from bot.config.redact import Redactor
from bot.core.db import Database
from bot.core.engine import Engine, Request
from commands import REGISTRY
from tests.unit.conftest import make_config

ACCESS = {"viewers": ["U0VIEWER"], "operators": ["U0OPERATOR"], "approvers": ["U0APPROVER1"], "admins": ["U0ADMIN"]}
#: Thursday 3 December 2026, 09:00 UTC: outside the Sunday 02:00-04:00 window
THURSDAY = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
#: Sunday 6 December 2026, 02:30 UTC: inside it
SUNDAY = datetime(2026, 12, 6, 2, 30, tzinfo=UTC)
MAINTENANCE = {
    "windows": {"prod": [{"days": ["sun"], "from": "02:00", "to": "04:00"}]},
    "tasks": [
        {"task": "image_age", "env": "prod", "every": "7d", "warning_days": 30, "critical_days": 90},
        {"task": "image_age", "env": "staging", "every": "7d"},
    ],
}


@pytest.fixture
def backends():
    rt = FakeRuntime()
    rt.add("api", health="healthy")
    rt.add("worker")
    rt.image_dates = {"shop/api:1.0": SUNDAY - timedelta(days=3), "shop/worker:1.0": SUNDAY - timedelta(days=40)}
    staging = FakeRuntime(project="shop-staging")
    staging.add("api")
    staging.image_dates = {"shop/api:1.0": SUNDAY - timedelta(days=1)}
    probe = FakeProbe()
    probe.answer("http://127.0.0.1:18080/health")
    probe.answer("http://127.0.0.1:18080/health/db")
    return FakeBackends({"prod": rt, "staging": staging}, probe)


@pytest.fixture
async def engine(tmp_path, backends):
    db = Database(tmp_path / "w.db")
    engine = Engine(make_config(access=ACCESS, maintenance=MAINTENANCE), backends, db, Redactor())
    engine.changes.clock = lambda: THURSDAY
    notices: list[tuple[str, str]] = []

    async def notify(severity: str, text: str) -> None:
        notices.append((severity, text))

    engine.changes.notify = notify
    engine.notices = notices  # type: ignore[attr-defined]
    yield engine
    db.close()


async def handle(engine, text, actor="U0OPERATOR", door="cli"):
    return await engine.handle(Request(actor=actor, door=door, text=text))


def restarts(backends, env="prod") -> list[str]:
    return [c for c in backends.runtime(env).calls if c.startswith("restart")]


async def test_a_change_outside_the_window_is_refused_with_the_next_start(engine, backends):
    reply = await handle(engine, "restart prod worker")
    assert reply.exit_code == 2 and reply.result is None
    assert "prod is outside its maintenance windows (sun 02:00-04:00 UTC)" in reply.error
    assert "the next opens Sun 2026-12-06 02:00 UTC (in 2 d 17 h)" in reply.error and "--break-glass" in reply.error
    assert await engine.changes.approvals.pending() == [] and restarts(backends) == []
    last = (await engine.audit.entries(limit=1))[0]
    assert last["event"] == "refused" and "outside its maintenance windows" in last["outcome"]


@pytest.mark.parametrize("text", ["deploy prod 1.1", "rollback prod --to 1.0", "flag prod FEATURE_X on",
                                  "startup prod", "shutdown prod", "restore prod 20261201-abc",
                                  "maintenance prod image_age"])  # fmt: skip
async def test_every_kind_of_change_is_bound_to_the_window(engine, backends, text):
    reply = await handle(engine, text)
    assert reply.exit_code == 2 and "outside its maintenance windows" in (reply.error or ""), reply.error
    assert [c for c in backends.runtime("prod").calls if c != "containers"] == []


async def test_a_backup_only_adds_and_is_not_bound(engine):
    assert engine.changes.window(REGISTRY["backup"], "prod") is None
    assert engine.changes.window(REGISTRY["restart"], "prod") is not None


async def test_break_glass_outside_the_window_runs_loudly(engine, backends):
    reply = await handle(engine, 'restart prod worker --break-glass "database down"', actor="U0ADMIN")
    assert reply.exit_code == 0 and reply.to_json()["ok"] is True
    assert restarts(backends) == ["restart worker"]
    [(severity, text)] = engine.notices
    assert severity == "critical" and "BREAK-GLASS by U0ADMIN" in text and "outside the maintenance windows" in text
    glass = [e for e in await engine.audit.entries(limit=20) if e["event"] == "break-glass"]
    assert glass and glass[0]["details"]["outside_window"] is True and glass[0]["details"]["reason"] == "database down"


async def test_break_glass_is_for_admins_only(engine, backends):
    reply = await handle(engine, 'restart prod worker --break-glass "in a hurry"')
    assert reply.exit_code == 2 and "admins only" in reply.error and restarts(backends) == []


async def test_a_dry_run_outside_the_window_shows_the_plan_and_says_so(engine, backends):
    data = (await handle(engine, "restart prod worker --dry-run")).to_json()
    assert data["kind"] == "plan" and "would be refused until then" in data["note"]
    assert "Sun 2026-12-06 02:00 UTC" in data["note"] and restarts(backends) == []


async def test_inside_the_window_the_approval_rules_apply(engine, backends):
    engine.changes.clock = lambda: SUNDAY
    reply = await handle(engine, "restart prod worker")
    approval = reply.to_json()["approval"]
    assert approval["state"] == "pending" and restarts(backends) == []
    done = await engine.decide(Request(actor="U0APPROVER1", door="cli", text="approve"), approval["id"], "approve")
    assert done.result.approval["state"] == "done" and restarts(backends) == ["restart worker"]


async def test_an_approval_that_outlives_its_window_does_not_run(engine, backends):
    engine.changes.clock = lambda: SUNDAY
    approval = (await handle(engine, "restart prod worker")).to_json()["approval"]
    engine.changes.clock = lambda: SUNDAY + timedelta(hours=2)  # 04:30: closed
    reply = await engine.decide(Request(actor="U0APPROVER1", door="cli", text="approve"), approval["id"], "approve")
    assert reply.result.approval["state"] == "stale" and restarts(backends) == []
    assert "the next opens Sun 2026-12-13 02:00 UTC" in reply.result.message and "not run" in reply.result.message


async def test_an_environment_without_windows_is_not_bound(engine, backends):
    backends.runtime("staging").add("worker")
    reply = await handle(engine, "restart staging api")
    assert reply.to_json()["approval"]["state"] == "pending"


async def test_a_maintenance_task_inside_its_window_runs_without_approvers(engine, backends):
    engine.changes.clock = lambda: SUNDAY
    reply = await handle(engine, "maintenance prod image_age")
    data = reply.to_json()
    assert data["kind"] == "maintenance_task" and data["outcome"] == "warning" and reply.exit_code == 1
    rows = {r["name"]: r for r in data["rows"]}
    assert rows["api"]["severity"] == "ok" and rows["worker"]["severity"] == "warning"
    assert "40 days ago" in rows["worker"]["detail"]
    started = [e for e in await engine.audit.entries(limit=20) if e["event"] == "started"]
    assert "inside the maintenance window (sun 02:00-04:00): no approval needed" in started[0]["outcome"]
    last = await engine.maintenance.last("prod", "image_age")
    assert last["severity"] == "warning" and last["actor"] == "U0OPERATOR"


async def test_a_maintenance_task_without_windows_needs_approval_unless_scheduled(engine, backends):
    reply = await handle(engine, "maintenance staging image_age")
    assert reply.to_json()["approval"]["state"] == "pending"
    reply = await handle(engine, "maintenance staging image_age", actor="scheduler", door="scheduler")
    assert reply.to_json()["kind"] == "maintenance_task" and reply.to_json()["outcome"] == "ok"
    assert "image_created shop/api:1.0" in backends.runtime("staging").calls


async def test_the_listing_is_read_only_for_viewers(engine, backends):
    engine.changes.clock = lambda: SUNDAY
    await handle(engine, "maintenance prod image_age")
    reply = await handle(engine, "maintenance prod", actor="U0VIEWER")
    data = reply.to_json()
    assert reply.exit_code == 0 and data["kind"] == "maintenance" and data["open"] is True
    assert data["windows"] == ["sun 02:00-04:00"] and data["closes_at"].startswith("2026-12-06T04:00")
    [task] = data["tasks"]
    assert task["task"] == "image_age" and task["every"] == "7d" and task["last_severity"] == "warning"
    assert task["next_run"].startswith("2026-12-06T02:30")  # due now, the window is open
    engine.changes.clock = lambda: THURSDAY
    data = (await handle(engine, "maintenance prod", actor="U0VIEWER")).to_json()
    assert data["open"] is False and data["next_start"].startswith("2026-12-06T02:00")
    assert data["tasks"][0]["next_run"].startswith("2026-12-06T02:00")  # due, but waits for the window
    reply = await handle(engine, "maintenance prod image_age", actor="U0VIEWER")
    assert reply.exit_code == 2 and "needs the admins or operators role" in reply.error


async def test_a_task_not_configured_for_the_environment_is_refused(engine):
    reply = await handle(engine, "maintenance prod db_maintenance")
    assert reply.exit_code == 2 and "prod has no maintenance task db_maintenance" in reply.error
    assert "image_age" in reply.error
    reply = await handle(engine, "maintenance prod defrag")
    assert reply.exit_code == 2 and "<task>" in reply.error
