"""Stored text is printed escaped: no forged rows, no terminal escapes (issue 11, finding 7, text half)."""

from __future__ import annotations

import asyncio

from adapters.fakes import FakeBackends, FakeProbe, FakeRuntime
from bot.config.redact import Redactor
from bot.core.db import Database
from bot.core.engine import Engine, Request
from bot.doors import cli
from bot.render.text import printable, render_text
from tests.unit.conftest import make_config

FORGED = "\n9999  2026-01-01T00:00:00Z  U0ADMIN  slack  prod  succeeded  ok  deploy prod 9.9"
HOSTILE = f"x\x1b[2K\r\u202e\x85{FORGED}\u2028"


def visible_lines(text: str) -> list[str]:
    """The lines a terminal would show (it breaks at \\n, \\r, U+2028, U+2029 and NEL)."""
    for sep in ("\r", "\u2028", "\u2029", "\x85"):
        text = text.replace(sep, "\n")
    return text.split("\n")


async def _plant(path):
    db = Database(path)
    engine = Engine(make_config(), FakeBackends({"prod": FakeRuntime()}, FakeProbe()), db, Redactor())
    refused = await engine.handle(Request(actor="U0NOBODY", door="slack", text=HOSTILE))
    assert refused.exit_code == 2
    reply = await engine.handle(Request(actor="U0ADMIN", door="slack", text="audit"))
    db.close()
    return reply


def test_audit_rows_cannot_be_forged_in_text_or_on_the_command_line(tmp_path, monkeypatch, capsys):
    path = tmp_path / "opsbot.db"
    reply = asyncio.run(_plant(path))
    text = render_text(reply)

    monkeypatch.setenv("OPSBOT_DB", str(path))
    assert cli.main(["audit", "list"]) == 0
    printed = capsys.readouterr().out
    for out in (text, printed):
        rows = [line for line in visible_lines(out) if line.strip()]
        ids = [line.split()[0] for line in rows[1:]]  # every line after the header starts with a real entry's id
        assert rows[0].startswith("ID") and ids and all(i in {"1", "2", "3"} for i in ids), out
        assert "\x1b" not in out and "\u202e" not in out and "\\x1b[2K" in out and "\\n9999" in out


def test_printable_escapes_controls_and_separators_but_keeps_tabs():
    assert printable("a\tb") == "a\tb"
    assert printable("a\nb\r\x1b[0m\x7f\x9b\u2028\u2029\u202e\u2066") == (
        "a\\nb\\r\\x1b[0m\\x7f\\x9b\\u2028\\u2029\\u202e\\u2066"
    )
