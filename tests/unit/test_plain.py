"""The console and the command line speak plain text: Slack's markup shown as Slack would show it."""

from __future__ import annotations

import pytest

from adapters.fakes import FakeBackends
from bot.config.redact import Redactor
from bot.core.db import Database
from bot.core.engine import Engine, Request
from bot.render.plain import plain
from bot.render.text import render_text
from tests.unit.conftest import make_config


@pytest.mark.parametrize(
    ("markup", "text"),
    [
        ("<!subteam^S0ONCALL>", "@S0ONCALL"),
        ("<!subteam^S0ONCALL|@oncall>", "@oncall"),
        ("<!subteam^S0ONCALL|oncall>", "@oncall"),
        ("<@U0SENIOR>", "@U0SENIOR"),
        ("<@U0SENIOR|ana>", "@ana"),
        ("<#C0CRITICAL>", "#C0CRITICAL"),
        ("<#C0CRITICAL|incidents>", "#incidents"),
        ("<!here>", "@here"),
        ("<!channel|channel>", "@channel"),
        ("<!date^1392734382^{date_short}|Feb 18, 2014>", "Feb 18, 2014"),
        ("<https://runbooks.example.com/db>", "https://runbooks.example.com/db"),
        ("<https://runbooks.example.com/db|the runbook>", "the runbook (https://runbooks.example.com/db)"),
        ("<mailto:ops@example.com|ops@example.com>", "ops@example.com"),
        ("call <@U0SENIOR> then <!subteam^S0DBA|dba>", "call @U0SENIOR then @dba"),
    ],
)
def test_markup_becomes_what_slack_shows(markup, text):
    assert plain(markup) == text


@pytest.mark.parametrize(
    "text",
    ["Usage: deploy <env> <version> [--services a,b]", "image <image>:<version>", "a < b > c", "<>", "x <@ y>",
     "Approve with: opsbot approve 1a2b --as <approver id>", "no markup at all"],
)  # fmt: skip
def test_text_that_only_looks_alike_is_left_alone(text):
    assert plain(text) == text


async def test_the_escalation_path_prints_names_not_markup(tmp_path):
    escalation = [
        {"level": "L1", "contact": "<!subteam^S0ONCALL>", "when": "First response"},
        {"level": "L2", "contact": "<@U0SENIOR|ana>", "when": "Complex issues"},
        {"level": "L3", "contact": "Vendor support <https://vendor.example.com/help|portal>", "when": "External"},
    ]
    db = Database(tmp_path / "t.db")
    try:
        engine = Engine(make_config(escalation=escalation), FakeBackends(), db, Redactor())
        for text in ("escalate", "escalate L2", "troubleshoot oom"):
            reply = await engine.handle(Request(actor="local:me", door="console", text=text))
            out = render_text(reply)
            assert "<" not in out and ">" not in out.replace("->", ""), out
        out = render_text(await engine.handle(Request(actor="local:me", door="console", text="escalate")))
        assert "L1: @S0ONCALL (First response)" in out and "L2: @ana" in out
        assert "L3: Vendor support portal (https://vendor.example.com/help)" in out
        error = render_text(await engine.handle(Request(actor="local:me", door="console", text="escalate L9")))
        assert error.startswith("error: unknown escalation level")
    finally:
        db.close()
