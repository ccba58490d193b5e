"""Every Slack message escapes every user- or engine-supplied string (issue 11, finding 8).

The walk builds every result type the Slack renderers know with a hostile string in every text
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
from bot.doors.scheduler import Scheduler
from bot.slack.blocks import RENDERERS, notice_message, progress_message, render_message
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
