"""Rendering of maintenance, security duties and gates: valid Block Kit within Slack's limits, escaped, and
plain text that says the same."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from bot.core.changes import PlanResult
from bot.render.text import render_text
from bot.slack.blocks import render_message
from commands.base import Plan
from commands.gates import GateRow
from commands.maintenance import MaintenanceResult, TaskInfo
from commands.maintenance_tasks import TaskResult, TaskRow
from commands.rollout import RolloutResult, ServiceChange
from commands.security import DutyRow, SecurityDoneResult, SecurityResult
from commands.security_report import AccessReport, ActorActivity, AuditLine
from tests.unit.test_blocks import assert_valid, reply_for

NOW = datetime(2026, 12, 6, 2, 30, tzinfo=UTC)
HOSTILE = "<!channel> `x` & <@U0EVIL>"
REPORT = AccessReport(
    since=NOW - timedelta(days=30), until=NOW, entries=9,
    activity=[ActorActivity(actor="U0OPERATOR", total=3, commands={"restart": 2, "status": 1})],
    refusals=1, refused=[AuditLine(ts="2026-12-01T10:00:00.000Z", actor="U0NEWBIE", command="restart prod api",
                                   outcome=f"may not run restart {HOSTILE}")],
    break_glass=[AuditLine(ts="2026-12-02T10:00:00.000Z", actor="U0ADMIN", command="restart prod worker",
                           outcome="reason: stuck")],
    new_actors=["U0NEWBIE"],
)  # fmt: skip
SAMPLES = {
    "maintenance": MaintenanceResult(
        environment="prod", timezone="Europe/Berlin", now=NOW, windows=["sun 02:00-04:00"], open=True,
        closes_at=NOW + timedelta(minutes=90), next_start=NOW + timedelta(days=7),
        tasks=[TaskInfo(task="db_maintenance", every="7d", last_run=NOW - timedelta(days=7), last_severity="ok",
                        last_summary=f"done {HOSTILE}", last_actor="scheduler", next_run=NOW),
               TaskInfo(task="cert_check", every="1d", running=True, next_run=NOW)]),
    "maintenance_task": TaskResult(
        environment="prod", task="cert_check", outcome="critical", summary="2 certificate(s): 1 critical, 1 ok",
        rows=[TaskRow(name="shop.example:443", severity="critical", detail=f"expired {HOSTILE}"),
              TaskRow(name="admin.example:8443", severity="ok", detail="valid for 80 days")],
        output="line\n" * 2000, duration_s=1.5),
    "security": SecurityResult(environment="prod", now=NOW, report=REPORT, duties=[
        DutyRow(item="rotate_secrets", title=f"Rotate {HOSTILE}", every="90d", state="due", overdue_days=3,
                severity="warning", due_at=NOW - timedelta(days=3), note=HOSTILE),
        DutyRow(item="security_scan", title="Scan", gate="/usr/local/bin/scan --fail-on high", state="gate",
                gate_outcome="passed", gate_image="shop/api:2.0")]),
    "security_done": SecurityDoneResult(environment="prod", item="access_review", title="Review access logs",
                                        done_at=NOW, done_by="U0ADMIN", note="reviewed", report=REPORT,
                                        next_due=NOW + timedelta(days=30)),
    "rollout": RolloutResult(action="deploy", environment="prod", version="2.0", ok=False,
                             changes=[ServiceChange(service="api", image_before="shop/api:1.0",
                                                    image_after="shop/api:2.0")],
                             gates=[GateRow(item="security_scan", title="Scan", service="api", image="shop/api:2.0",
                                            command=["scan"], passed=False, exit_code=1,
                                            detail="security gate security_scan exited with 1 on shop/api:2.0")],
                             problem="security gate security_scan exited with 1", output=f"HIGH {HOSTILE}"),
    "plan": PlanResult(command="restart prod worker", environment="prod", note=f"prod is outside {HOSTILE}",
                       plan=Plan(summary="restart worker", steps=["stop, start"])),
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_valid_blocks_and_nothing_mentions_anyone(kind):
    message = render_message(reply_for(SAMPLES[kind], command=kind))
    assert_valid(message)
    blocks = json.dumps(message.blocks)
    assert "<!channel>" not in blocks and "<@U0EVIL>" not in blocks
    assert render_text(reply_for(SAMPLES[kind], command=kind)).strip()


def test_what_each_says():
    text = render_text(reply_for(SAMPLES["maintenance"], command="maintenance"))
    assert "OPEN now, closes Sun 2026-12-06 05:00 CET" in text and "running now" in text
    blocks = json.dumps(render_message(reply_for(SAMPLES["security"], command="security")).blocks)
    assert "3 d overdue" in blocks and "Access report" in blocks and "1 refusal" in blocks
    text = render_text(reply_for(SAMPLES["rollout"], command="deploy"))
    assert "security gate security_scan on shop/api:2.0: security gate security_scan exited with 1" in text
    assert "Note: prod is outside" in render_text(reply_for(SAMPLES["plan"], command="restart"))
