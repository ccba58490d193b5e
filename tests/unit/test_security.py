"""Security duties (guide 7.4) on fakes: due dates, `security done` (who, when, audited), the access review's
report from the audit log, and deploy gates in a one-off container of the new image."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from adapters.fakes import FakeBackends, FakeProbe, FakeRuntime
from adapters.models import ExecResult
from bot.config.redact import Redactor
from bot.core.db import Database
from bot.core.duties import _iso
from bot.core.engine import Engine, Request
from tests.unit.conftest import make_config

ACCESS = {"viewers": ["U0VIEWER"], "operators": ["U0OPERATOR"], "approvers": ["U0APPROVER1"], "admins": ["U0ADMIN"]}
DUTIES = [
    {"item": "rotate_secrets", "title": "Rotate secrets", "every": "90d"},
    {"item": "access_review", "title": "Review access logs", "every": "30d"},
    {"item": "security_scan", "title": "Run security scans before release", "before": "deploy",
     "command": ["/usr/local/bin/scan", "--fail-on", "high"], "timeout": "2s"},
]  # fmt: skip
TOKEN = "sk_live_abcdefghijklmnop1234"


@pytest.fixture
def backends():
    rt = FakeRuntime()
    rt.add("api", health="healthy")
    rt.add("worker")
    rt.images |= {"shop/api:2.0", "shop/worker:2.0"}
    probe = FakeProbe()
    probe.answer("http://127.0.0.1:18080/health")
    probe.answer("http://127.0.0.1:18080/health/db")
    return FakeBackends({"prod": rt}, probe)


@pytest.fixture
async def engine(tmp_path, backends):
    db = Database(tmp_path / "s.db")
    config = make_config(access=ACCESS, security_maintenance=DUTIES)
    engine = Engine(config, backends, db, Redactor())
    yield engine
    db.close()


async def handle(engine, text, actor="U0OPERATOR"):
    return await engine.handle(Request(actor=actor, door="cli", text=text))


async def test_duties_are_listed_with_due_dates(engine):
    reply = await handle(engine, "security", actor="U0VIEWER")
    data = reply.to_json()
    duties = {d["item"]: d for d in data["duties"]}
    assert duties["rotate_secrets"]["state"] == "due" and duties["rotate_secrets"]["every"] == "90d"
    assert duties["rotate_secrets"]["last_done_by"] is None and reply.exit_code == 1  # never done: due, warning
    assert duties["security_scan"]["state"] == "gate" and duties["security_scan"]["gate"].startswith("/usr/local")
    assert data["report"] is not None  # the access review's report of its period


async def test_done_records_who_and_when_and_is_audited(engine):
    before = time.time()
    reply = await handle(engine, 'security done rotate_secrets --note "rotated DB and API keys"')
    data = reply.to_json()
    assert reply.exit_code == 0 and data["done_by"] == "U0OPERATOR" and data["note"] == "rotated DB and API keys"
    listed = {d["item"]: d for d in (await handle(engine, "security prod")).to_json()["duties"]}
    rotated = listed["rotate_secrets"]
    assert rotated["state"] == "ok" and rotated["last_done_by"] == "U0OPERATOR"
    assert rotated["note"] == "rotated DB and API keys"
    row = (await engine.duties.rows(["rotate_secrets"]))["rotate_secrets"]
    assert row["last_done_at"] >= before and row["last_done_by"] == "U0OPERATOR"
    assert rotated["due_at"] == data["next_due"]  # 90 days after it was done
    done = [e for e in await engine.audit.entries(limit=20) if e["event"] == "security-done"]
    assert done and done[0]["actor"] == "U0OPERATOR" and "rotated DB and API keys" in done[0]["outcome"]


async def test_done_needs_an_operator_and_a_known_item(engine):
    reply = await handle(engine, "security done rotate_secrets", actor="U0VIEWER")
    assert reply.exit_code == 2 and "needs the admins or operators role" in reply.error
    reply = await handle(engine, "security done rotate_passwords")
    assert reply.exit_code == 2 and reply.error == (
        "unknown security item 'rotate_passwords' (items: rotate_secrets, access_review, security_scan)"
    )
    reply = await handle(engine, "security done")
    assert reply.exit_code == 2 and "needs an item" in reply.error
    reply = await handle(engine, "security done security_scan")
    assert reply.exit_code == 2 and "is a deploy gate" in reply.error
    assert (await engine.duties.rows(["rotate_secrets"]))["rotate_secrets"]["last_done_by"] is None


async def test_done_dry_run_records_nothing(engine):
    reply = await handle(engine, "security done rotate_secrets --dry-run")
    assert reply.to_json()["dry_run"] is True
    assert (await engine.duties.rows(["rotate_secrets"]))["rotate_secrets"]["last_done_at"] is None


async def test_the_access_review_report_comes_from_the_audit_log(engine):
    await handle(engine, "status prod", actor="U0VIEWER")
    await handle(engine, "restart prod worker", actor="U0VIEWER")  # refused: not an operator
    await handle(engine, 'restart prod worker --break-glass "worker stuck"', actor="U0ADMIN")
    approval = (await handle(engine, "restart prod api")).to_json()["approval"]
    await engine.decide(Request(actor="U0APPROVER1", door="cli", text="approve"), approval["id"], "approve")
    await handle(engine, "health", actor="U0NEWBIE")  # viewers are listed: refused, but a new actor
    reply = await handle(engine, 'security done access_review --note "reviewed"', actor="U0ADMIN")
    report = reply.to_json()["report"]
    activity = {a["actor"]: a["commands"] for a in report["activity"]}
    assert activity["U0VIEWER"] == {"status": 1} and activity["U0OPERATOR"] == {"restart": 1}
    assert report["refusals"] >= 2 and any(r["actor"] == "U0NEWBIE" for r in report["refused"])
    assert [g["actor"] for g in report["break_glass"]] == ["U0ADMIN"] and "worker stuck" in report["break_glass"][0][
        "outcome"]
    assert [(a["actor"], a["command"]) for a in report["approvals"]] == [("U0APPROVER1", "restart prod api")]
    assert {"U0VIEWER", "U0ADMIN", "U0OPERATOR", "U0APPROVER1", "U0NEWBIE"} <= set(report["new_actors"])
    # the next period starts at this review: nobody is new any more, and nothing happened yet
    later = (await handle(engine, "security", actor="U0VIEWER")).to_json()["report"]
    assert later["new_actors"] == [] and later["refusals"] == 0 and later["break_glass"] == []


async def test_a_refusal_in_the_reviews_own_millisecond_is_in_its_period_and_not_the_next(engine):
    """The audit log writes times to the millisecond: an entry written just before the review, in the
    same millisecond, belongs to the period the review closes, and the next period does not count it again."""
    await engine.audit.append(actor="U0NEWBIE", source="cli", command="health", event="refused", outcome="no")
    ts = (await engine.audit.entries(limit=1))[0]["ts"]
    until = datetime.fromisoformat(ts.replace("Z", "+00:00")) + timedelta(microseconds=500)
    closed = await engine.duties.access_report(until - timedelta(days=30), until)
    assert closed.refusals == 1 and [r.actor for r in closed.refused] == ["U0NEWBIE"]
    assert "U0NEWBIE" in closed.new_actors
    following = await engine.duties.access_report(until, until + timedelta(days=30))
    assert following.refusals == 0 and following.new_actors == []


async def test_a_failing_gate_refuses_the_deploy_before_anything_changes(engine, backends):
    rt = backends.runtime("prod")
    rt.oneoff_handler = lambda service, image, argv: ExecResult(
        exit_code=1, output=f"HIGH: CVE-2026-0001 in libssl (token {TOKEN})\n")
    engine.redactor = Redactor([TOKEN])
    plan = (await handle(engine, "deploy prod 2.0 --dry-run")).to_json()["plan"]
    assert any("security gate security_scan" in s and "shop/api:2.0" in s for s in plan["steps"])
    reply = await handle(engine, 'deploy prod 2.0 --break-glass "release"', actor="U0ADMIN")
    data = reply.to_json()
    assert data["ok"] is False and reply.exit_code == 1
    assert "security gate security_scan (Run security scans before release) exited with 1" in data["problem"]
    assert "the deploy is refused" in data["problem"] and "CVE-2026-0001" in data["output"]
    assert TOKEN not in str(data) and len(data["gates"]) == 1 and data["gates"][0]["passed"] is False
    assert [c for c in rt.calls if c.startswith(("replace", "run_oneoff"))] == [
        "run_oneoff api shop/api:2.0 ['/usr/local/bin/scan', '--fail-on', 'high']"]
    gate = [e for e in await engine.audit.entries(limit=30) if e["event"] == "gate"]
    assert gate and gate[0]["details"]["exit_code"] == 1 and TOKEN not in str(gate[0])
    history = await engine.deploys.list("prod")
    assert history[0]["outcome"] == "refused"
    row = (await engine.duties.rows(["security_scan"]))["security_scan"]
    assert row["gate_outcome"].startswith("refused") and row["gate_image"] == "shop/api:2.0"


async def test_a_passing_gate_runs_on_every_new_image_then_the_deploy_goes_on(engine, backends):
    rt = backends.runtime("prod")
    rt.oneoff_handler = lambda service, image, argv: ExecResult(exit_code=0, output="no findings\n")
    reply = await handle(engine, 'deploy prod 2.0 --break-glass "release"', actor="U0ADMIN")
    data = reply.to_json()
    assert data["ok"] is True, data["problem"]
    assert [(g["image"], g["passed"]) for g in data["gates"]] == [("shop/api:2.0", True), ("shop/worker:2.0", True)]
    first_replace = next(i for i, c in enumerate(rt.calls) if c.startswith("replace"))
    assert all(i < first_replace for i, c in enumerate(rt.calls) if c.startswith("run_oneoff"))


async def test_a_gate_that_hangs_is_bounded_and_refuses_the_deploy(engine, backends):
    rt = backends.runtime("prod")
    rt.oneoff_handler = lambda service, image, argv: ExecResult(exit_code=0, output="")
    enter = rt._enter

    async def slow_oneoffs(what, timeout=None):  # the gate's container never ends: longer than its 2 s
        rt.delay = 30.0 if what.startswith("run_oneoff") else 0.0
        try:
            await enter(what, timeout)
        finally:
            rt.delay = 0.0

    rt._enter = slow_oneoffs
    data = (await handle(engine, 'deploy prod 2.0 --break-glass "release"', actor="U0ADMIN")).to_json()
    assert data["ok"] is False and "did not finish within 2 s" in data["problem"]
    assert "the deploy is refused" in data["problem"]
    assert not [c for c in rt.calls if c.startswith("replace")]


def test_a_period_bound_in_local_time_is_the_same_instant_in_the_audit_logs_utc():
    # the repeated hour at the end of summer time in Berlin: the first 02:30 (fold=0, CEST) is 00:30 UTC,
    # the second (fold=1, CET) 01:30 UTC
    second = datetime(2026, 10, 25, 2, 30, 0, 123456, tzinfo=ZoneInfo("Europe/Berlin"), fold=1)
    assert _iso(second) == "2026-10-25T01:30:00.124Z"
    assert _iso(second.replace(fold=0)) == "2026-10-25T00:30:00.124Z"
