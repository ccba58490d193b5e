"""Every Slack message escapes every user- or engine-supplied string (issue 11, finding 8).

The walk builds every result type the Slack renderers know, and every incident message of
bot/slack/blocks_alert.py (in every state, with every thread event), with a hostile string in every text
field, renders it, and checks that nothing Slack would parse as markup survives in any mrkdwn text
or top-level ``text``: no mention, broadcast or link that we did not build ourselves.
"""

from __future__ import annotations

import json
import re
import types
import typing
from datetime import UTC, datetime
from typing import Any, Literal, Union, get_args, get_origin

import pytest
from pydantic import BaseModel

from adapters.fakes import FakeBackends, FakeProbe, FakeRuntime
from bot.config.redact import Redactor
from bot.core.db import Database
from bot.core.engine import Engine, Reply, Request
from bot.core.incident import ACKNOWLEDGED, FIRING, RESOLVED, SILENCED, Incident
from bot.doors.scheduler import Scheduler
from bot.slack import blocks_alert
from bot.slack.blocks import RENDERERS, notice_message, progress_message, render_message
from bot.slack.blocks_alert import incident_message, pointer_message, reply_message, reply_text, storm_message
from bot.slack.blocks_alert import notice_message as alert_notice_message
from bot.slack.mrkdwn import Message
from tests.helpers.alert_world import T0, world_config
from tests.unit.conftest import make_config

HOSTILE = "<!channel> <http://evil.example|runbook> <@U0VICTIM> & <!subteam^S0ALL> x"
#: the markup we build on purpose: mentions of checked user ids; the config's own escalation contacts
OURS = re.compile(r"<@U0(?:ADMIN|OPERATOR|SENIOR)>|<!subteam\^S0ONCALL>|<!date\^\d+\^[^|<>]*\|\d+>")
APPROVAL = {"id": "a1b2c3d4", "state": "pending", "requester": "U0OPERATOR", "approvers": ["U0ADMIN"],
            "required": 1, "expires_at": HOSTILE, "environment": HOSTILE, "command": HOSTILE}  # fmt: skip
DEPLOY = {"id": 1, "kind": HOSTILE, "version": HOSTILE, "outcome": HOSTILE, "requester": "U0OPERATOR",
          "approvers": ["U0ADMIN"], "after": {HOSTILE: HOSTILE}, "services": [HOSTILE], "finished_at": 0.0}  # fmt: skip
ALERT = {"id": HOSTILE, "environment": HOSTILE, "source": HOSTILE, "what": HOSTILE, "severity": "critical",
         "state": HOSTILE, "summary": HOSTILE, "failing_since": HOSTILE, "opened_at": HOSTILE,
         "acked_by": "U0ADMIN", "level": HOSTILE}  # fmt: skip
SILENCE = {"id": HOSTILE, "environment": HOSTILE, "what": HOSTILE, "until": 1767225600, "created_by": "U0ADMIN",
           "reason": HOSTILE}  # fmt: skip
WINDOW = {"environment": HOSTILE, "window": HOSTILE, "open": False, "until": HOSTILE, "next_start": HOSTILE}
RUN = {"environment": HOSTILE, "task": HOSTILE, "started_at": HOSTILE, "actor": HOSTILE, "holds": [HOSTILE]}
#: dict fields the renderers read by key, and fields that are not user- or engine-supplied
FIELDS: dict[str, Any] = {"approval": APPROVAL, "deploys": [DEPLOY], "result": None,
                          "result_kind": None, "migration": {"exit_code": 1}, "contact": "<@U0SENIOR>",
                          "mention": False, "timezone": "UTC"}  # fmt: skip
#: fields whose meaning depends on the model (``lines`` of logs are text; of an access report, entries)
BY_MODEL: dict[str, dict[str, Any]] = {"LogsResult": {"lines": [HOSTILE] * 3},
                                        "PendingResult": {"approvals": [APPROVAL]},
                                        "AlertsResult": {"alerts": [ALERT], "silences": [{**SILENCE, "until": HOSTILE}],
                                                         "windows": [WINDOW], "maintenance": [RUN]},
                                        "AckResult": {"alert": ALERT},
                                        "SilenceResult": {"silence": SILENCE, "alerts": [ALERT]}}


def hostile(annotation: Any) -> Any:
    """A value of ``annotation`` with the hostile string in every text."""
    origin = get_origin(annotation)
    if annotation is str or annotation is Any:
        return HOSTILE
    if annotation is bool:
        return True
    if annotation in (int, float):
        return 1
    if annotation is datetime:
        return datetime(2026, 1, 1, tzinfo=UTC)
    if origin is Literal:
        return get_args(annotation)[0]
    if origin in (Union, types.UnionType):
        return hostile(next(a for a in get_args(annotation) if a is not type(None)))
    if origin is typing.Annotated:
        return hostile(get_args(annotation)[0])
    if origin in (list, tuple):
        return [hostile(get_args(annotation)[0])]
    if origin is dict:
        key, value = get_args(annotation)
        return {hostile(key): hostile(value)}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return build(annotation)
    raise AssertionError(f"no hostile value for {annotation!r}")


def build(model: type[BaseModel]) -> BaseModel:
    """``model`` with hostile values, constructed without validation (renderers only read it)."""
    fixed = {**FIELDS, **BY_MODEL.get(model.__name__, {})}
    values = {name: fixed[name] if name in fixed else hostile(f.annotation) for name, f in model.model_fields.items()}
    return model.model_construct(**values)


def markup_left(message_text: str, blocks: list[dict[str, Any]]) -> list[str]:
    """Every mrkdwn text and the top-level text, with our own markup removed, that still holds markup."""
    texts = [message_text]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn":
                texts.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(blocks)
    bad = []
    for text in texts:
        rest = OURS.sub("", text)
        if "<" in rest or ">" in rest or re.search(r"&(?!amp;|lt;|gt;)", rest):
            bad.append(text)
    return bad


@pytest.mark.parametrize("result_type", sorted(RENDERERS, key=lambda t: t.__name__), ids=lambda t: t.__name__)
def test_every_renderer_escapes_hostile_strings(result_type):
    result = build(result_type)
    reply = Reply(request_id="r1", command=result_type.kind, environment=HOSTILE, result=result, actor="U0ADMIN")
    message = render_message(reply)
    assert markup_left(message.text, message.blocks) == [], result_type.__name__


def test_errors_progress_and_notices_are_escaped():
    error = render_message(Reply(request_id="r1", error=HOSTILE, exit_code=2))
    progress = progress_message(HOSTILE)
    notice = notice_message(HOSTILE)
    for message in (error, progress, notice):
        assert markup_left(message.text, message.blocks) == []
        assert "&lt;!channel&gt;" in message.text


async def test_the_break_glass_notice_and_the_alert_headline_are_escaped(tmp_path):
    rt = FakeRuntime()
    for service in ("api", "worker", "postgres", "redis"):
        rt.add(service)
    probe = FakeProbe()
    probe.answer("http://127.0.0.1:18080/health", ok=False, status=500, error=HOSTILE)
    config = make_config(slack={"alert_channels": {"critical": "C0CRIT"}},
                         schedules=[{"task": "health_check", "env": "prod", "every": "1h"}])  # fmt: skip
    engine = Engine(config, FakeBackends({"prod": rt}, probe), Database(tmp_path / "e.db"), Redactor())
    notices: list[Any] = []

    async def notify(severity: str, text: str, reply: Reply | None = None) -> None:
        notices.append(notice_message(text, reply))  # what the Slack door posts

    engine.changes.notify = notify
    try:
        reason = "db on fire <!channel> see <http://evil.example|runbook>"
        reply = await engine.handle(Request(actor="U0ADMIN", door="slack", words=[
            "restart", "prod", "api", "--break-glass", reason]))  # fmt: skip
        assert reply.error is None, reply.error
        scheduler = Scheduler(engine, alert=notify)
        [claim] = await scheduler.claim_due()
        await scheduler.run(claim)
        assert len(notices) == 2
        for message in notices:
            assert "&lt;!channel&gt;" in json.dumps(message.blocks)
            assert markup_left(message.text, message.blocks) == [], message
    finally:
        engine.db.close()


# ---------------------------------------------------------------- the incident messages (bot/slack/blocks_alert.py)

#: the channel of an incident's first message, which the pointer links to (ours: from slack.alert_channels)
OUR_CHANNEL = re.compile(r"<#C0CRITICAL>")
#: every event a thread reply tells, with hostile text wherever a person or a check supplied it
EVENTS: list[dict[str, Any]] = [
    {"kind": "repeat", "since": T0, "count": 3},
    {"kind": "resolved", "after": 90.0, "why": HOSTILE},
    {"kind": "resolved", "after": 90.0, "why": "no longer checked"},
    {"kind": "acked", "by": HOSTILE},
    {"kind": "acked", "by": "U0OPERATOR"},
    {"kind": "silenced", "by": HOSTILE, "until": T0 + 3600, "reason": HOSTILE},
    {"kind": "unheld", "since": T0},
    {"kind": "severity", "from": "warning", "to": "critical"},
    {"kind": "reopened", "flaps": 2, "at": T0},
    {"kind": "escalated", "level": HOSTILE, "contact": "<@U0SENIOR>", "when": HOSTILE},
    {"kind": HOSTILE, "by": HOSTILE, "reason": HOSTILE},
]


def hostile_incident(state: str, severity: str = "critical", **more: Any) -> Incident:
    """An incident whose every text a check, a service or a person could have supplied is hostile."""
    values: dict[str, Any] = {
        "id": HOSTILE, "fingerprint": HOSTILE, "environment": HOSTILE, "source": HOSTILE, "what": HOSTILE,
        "severity": severity, "state": state, "summary": HOSTILE, "symptoms": HOSTILE, "opened_at": T0,
        "failing_since": T0, "last_seen": T0 + 60, "acked_by": HOSTILE, "acked_at": T0 + 30,
        "held_until": T0 + 3600, "held_reason": HOSTILE, "level": 2, "count": 4, "flaps": 1,
        "channel": "C0CRITICAL", "message_ts": "1.0", "resolved_at": T0 + 600,
    }  # fmt: skip
    return Incident(**{**values, **more})


def incident_messages() -> list[tuple[str, Message]]:
    """Every message blocks_alert builds, in every state, with hostile incidents."""
    config = world_config()
    now = T0 + 120
    incidents = [hostile_incident(s) for s in (FIRING, ACKNOWLEDGED, SILENCED, RESOLVED)]
    incidents += [hostile_incident(FIRING, acked_by=None), hostile_incident(HOSTILE, HOSTILE, acked_by=None)]
    out: list[tuple[str, Message]] = []
    for inc in incidents:
        out.append((f"incident_message {inc.state}", incident_message(config, inc, now)))
        out.append((f"pointer_message {inc.state}", pointer_message(config, inc)))
        out += [(f"reply_message {e['kind']} {inc.state}", reply_message(config, inc, e)) for e in EVENTS]
    out.append(("storm_message", storm_message(config, HOSTILE, incidents, now)))
    out.append(("storm_message many", storm_message(config, HOSTILE, incidents * 5, now)))
    out.append(("notice_message", alert_notice_message(HOSTILE)))
    return out


def test_every_incident_message_escapes_hostile_strings():
    made = incident_messages()
    assert {name.split()[0] for name, _ in made} == {
        name for name in dir(blocks_alert) if name.endswith("_message") and callable(getattr(blocks_alert, name))
    }, "a message function of blocks_alert is missing from the walk"
    for name, message in made:
        assert markup_left(OUR_CHANNEL.sub("", message.text), json.loads(OUR_CHANNEL.sub("", json.dumps(
            message.blocks)))) == [], name  # fmt: skip
        if not name.startswith("reply_message"):  # the hostile text did reach it (escaped)
            assert "&lt;!channel&gt;" in json.dumps(message.blocks), name
    assert sum("&lt;!channel&gt;" in json.dumps(m.blocks) for n, m in made if n.startswith("reply_message")) >= 12
    # the thread replies' text alone (reply_text) is what the outbox edits into threads
    inc = hostile_incident(FIRING)
    for event in EVENTS:
        assert markup_left(reply_text(world_config(), inc, event), []) == [], event
    # the contacts of the escalation path are ops.yml's mentions, kept as such
    escalated = incident_message(world_config(), hostile_incident(FIRING, acked_by=None), T0)
    assert "<@U0SENIOR>" in json.dumps(escalated.blocks)
