"""Block Kit rendering: every result type, checked with slack_sdk's block models and Slack's limits."""

from __future__ import annotations

import json

import pytest
from slack_sdk.models.blocks import Block

from bot.core.changes import ApprovalResult, PlanResult
from bot.core.engine import Reply
from bot.slack.blocks import render_message
from bot.slack.mrkdwn import MAX_BLOCKS, MAX_SECTION, esc
from commands import REGISTRY
from commands.audit import AuditEntry, AuditResult
from commands.base import Plan
from commands.config import ConfigResult, ServiceConfigView
from commands.diagnostics import Finding
from commands.escalate import EscalateResult
from commands.health import HealthResult
from commands.help import HelpResult, describe
from commands.inspect import CheckRow, ServiceRow
from commands.logs import LogsResult
from commands.pending import PendingResult
from commands.restart import RestartResult
from commands.status import StatusResult
from commands.troubleshoot import Contact, Match, TroubleshootResult


def reply_for(result, command="status", env="prod"):
    return Reply(
        request_id="abc123",
        command=command,
        environment=env,
        result=result,
        severity=result.severity(),
        audit_id=7,
        duration_ms=1234,
        actor="U0OPERATOR",
    )


def service(name="api", **kw):
    return ServiceRow(
        **{
            "name": name,
            "state": "running",
            "version": "1.0",
            "image": "shop/api:1.0",
            "health": "healthy",
            "severity": "ok",
            **kw,
        }
    )


def check(name="API Health", **kw):
    return CheckRow(
        **{
            "name": name,
            "url": "http://x/health",
            "ok": True,
            "status_code": 200,
            "latency_ms": 12.0,
            "severity": "ok",
            **kw,
        }
    )


SAMPLES = {
    "status": StatusResult(
        environment="prod",
        overall="critical",
        services=[service(), service("redis", state="exited", severity="critical", reasons=["exited (exit code 1)"])],
        checks=[check(), check("DB", ok=False, status_code=None, error="timed out", severity="critical")],
        errors=[],
    ),
    "health": HealthResult(environment="prod", overall="ok", checks=[check()]),
    "logs": LogsResult(environment="prod", service="worker", lines=["a <b> & c", "line 2"], requested=200),
    "troubleshoot": TroubleshootResult(
        environment="prod",
        query="504",
        matches=[
            Match(
                issue="API Timeout",
                symptoms=["504"],
                matched=["504"],
                how="exact",
                resolution="Check DB",
                diagnostics=[Finding(name="containers", severity="ok", summary="4 of 4 ok", lines=["x"])],
            )
        ],
        escalation=[Contact(level="L1", contact="<!subteam^S0ONCALL>", when="First response")],
    ),
    "escalate": EscalateResult(
        path=[Contact(level="L2", contact="<@U0SENIOR>", when="Complex")], level="L2", mention="<@U0SENIOR>"
    ),
    "help": HelpResult(commands=[describe(s, full=False) for s in REGISTRY.values()]),
    "audit": AuditResult(
        entries=[
            AuditEntry(
                id=1,
                ts="t",
                actor="U0A",
                source="slack",
                environment="prod",
                command="status prod",
                event="succeeded",
                outcome="ok",
                prev_hash="0",
                hash="1",
            )
        ]
    ),
}


PLAN = Plan(
    summary="restart worker in prod (1 container)",
    steps=["stop prod-worker-1, start it again"],
    targets=[{"container": "prod-worker-1", "image": "shop/worker:1.0"}],
    verify=["worker running"],
)
APPROVAL = {
    "id": "a1b2c3d4",
    "state": "pending",
    "required": 1,
    "expires_at": "2026-11-26T20:00:00Z",
    "requester": "U0OPERATOR",
    "approvers": [],
    "command": "restart prod worker",
    "environment": "prod",
}
RESTART = RestartResult(environment="prod", service="worker", ok=True, containers=[service("worker")], checks=[check()])
SAMPLES.update({
    "plan": PlanResult(command="restart prod worker", environment="prod", plan=PLAN),
    "approval": ApprovalResult(approval=APPROVAL, plan=PLAN, message="waiting for 1 approver"),
    "approval-done": ApprovalResult(approval={**APPROVAL, "state": "done", "approvers": ["U0APPROVER1"]}, plan=PLAN,
                                    result=RESTART.model_dump(mode="json"), result_kind="restart", message="done"),
    "restart": RESTART,
    "pending": PendingResult(approvals=[{**APPROVAL, "plan": PLAN.model_dump()}]),
    "config": ConfigResult(environment="prod", services=[ServiceConfigView(
        service="worker", container="prod-worker-1", image="shop/worker:1.0",
        environment={"FEATURE_X": "on", "DB_PASSWORD": "[REDACTED]"}, flags={"FEATURE_X": "on"})]),
})  # fmt: skip


def test_pending_approval_has_its_buttons_and_decided_ones_none():
    message = render_message(reply_for(SAMPLES["approval"], command="restart"))
    [actions] = [b for b in message.blocks if b["type"] == "actions"]
    assert [e["text"]["text"] for e in actions["elements"]] == ["Approve", "Deny", "Cancel"]
    assert {e["value"] for e in actions["elements"]} == {"a1b2c3d4"}
    done = render_message(reply_for(SAMPLES["approval-done"], command="restart"))
    assert not [b for b in done.blocks if b["type"] == "actions"]
    assert "Restart of worker in prod: done" in json.dumps(done.blocks) and "<@U0APPROVER1>" in json.dumps(done.blocks)


def assert_valid(message):
    assert 1 <= len(message.blocks) <= MAX_BLOCKS
    for block in message.blocks:
        parsed = Block.parse(block)
        assert parsed is not None
        parsed.validate_json()  # raises SlackObjectFormationError when a limit is broken
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= MAX_SECTION
    assert len(message.text) <= 3000
    assert len(json.dumps(message.blocks)) < 40000


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_every_result_type_renders_valid_blocks(kind):
    message = render_message(reply_for(SAMPLES[kind], command=kind))
    assert_valid(message)
    assert message.blocks[0]["type"] == "header"
    context = message.blocks[-1]["elements"][0]["text"]
    assert "<@U0OPERATOR>" in context and "audit #7" in context and "prod" in context and "1.2 s" in context


def test_every_registered_result_type_has_a_block_renderer():
    from bot.render.text import RENDERERS as TEXT
    from bot.slack.blocks import RENDERERS as BLOCKS

    for spec in REGISTRY.values():
        for result in spec.results:
            assert result in BLOCKS and result in TEXT, result


def test_log_text_is_escaped_and_cannot_mention_anyone():
    result = LogsResult(environment="prod", service="worker", lines=["<!channel> ping <@U123> & more"], requested=10)
    text = json.dumps(render_message(reply_for(result, "logs")).blocks)
    assert "<!channel>" not in text and "<@U123>" not in text
    assert esc("<!channel>") in text


def test_long_logs_are_summarised_and_attached_whole():
    lines = [f"line {i} " + "x" * 200 for i in range(3000)]
    result = LogsResult(environment="prod", service="worker", lines=lines, requested=5000)
    message = render_message(reply_for(result, "logs"))
    assert_valid(message)
    assert message.file is not None
    name, content = message.file
    assert name.endswith(".txt") and "line 2999" in content and "line 0 " in content


def test_many_services_stay_within_fifty_blocks():
    services = [service(f"svc{i}", reasons=["r" * 100]) for i in range(300)]
    result = StatusResult(environment="prod", overall="ok", services=services, checks=[check()] * 60)
    message = render_message(reply_for(result))
    assert_valid(message)
    assert message.file is not None  # what was cut is attached


def test_errors_render_as_one_line():
    reply = Reply(request_id="r", error="unknown environment 'x' (known: prod)", exit_code=2)
    message = render_message(reply)
    assert_valid(message)
    assert "unknown environment" in message.text


def test_audit_verify_says_intact_or_where_it_breaks():
    from commands.audit import ChainCheck

    intact = render_message(reply_for(AuditResult(verification=ChainCheck(ok=True, rows=12)), command="audit"))
    assert_valid(intact)
    assert "intact: 12 entries, chain verified" in json.dumps(intact.blocks)
    check = ChainCheck(ok=False, rows=3, bad_id=3, reason="its content does not match its hash <@U0X>")
    broken = render_message(reply_for(AuditResult(verification=check), command="audit"))
    assert_valid(broken)
    text = json.dumps(broken.blocks)
    assert "*broken at entry 3*" in text and "&lt;@U0X&gt;" in text and "<@U0X>" not in text
    assert intact.text == "Audit log: chain intact" and broken.text == "Audit log: chain BROKEN"


@pytest.mark.parametrize("offset", range(5))
def test_long_escaped_text_is_never_cut_inside_an_entity(offset):
    from bot.slack.blocks import notice_message, progress_message

    hostile = "x" * offset + "<&>" * 2000  # escaped it is far longer than any limit, entities everywhere
    messages = [
        render_message(Reply(request_id="r", error=hostile, exit_code=1)),
        notice_message(hostile),
        progress_message(hostile),
    ]
    for message in messages:
        texts = [message.text] + [b["text"]["text"] for b in message.blocks if b["type"] == "section"]
        for text in texts:
            # what is shown ends with a whole entity (or plain text), never a broken "&am" or "&l"
            tail = text[text.rfind("&"):]
            assert tail in ("&amp;", "&lt;", "&gt;") or "&" not in text, tail
