"""What one logs request may hold in memory is bounded (issue 11, finding 5); its lines go to a private spool."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

from adapters.docker.io import MAX_LINE, MAX_LOG_TEXT, LineReader
from adapters.fakes import FakeBackends, FakeProbe, FakeRuntime
from adapters.swarm.runtime import NewestLines
from bot.config.redact import MASK, Redactor
from bot.core.db import Database
from bot.core.engine import Engine, Request
from bot.doors.cli import _print_reply_json
from bot.render.text import render_text, text_lines
from bot.slack.blocks import render_message
from commands.logs import TAIL_LINES, TAIL_TEXT
from tests.unit.conftest import make_config

LINE = "token" * 800  # the adversarial shape, 4 KB


def test_the_readers_keep_the_newest_lines_within_the_budget():
    for reader in (LineReader(5000, None), NewestLines(5000, None, {})):
        for i in range(5000):
            reader.feed(1, f"2024-05-01T10:00:{i // 100:02d}.{i:06d}Z {i:05d} {LINE}\n".encode())
        lines = [t for _, t in reader.close()] if isinstance(reader, LineReader) and not isinstance(
            reader, NewestLines) else reader.lines()  # fmt: skip
        assert sum(map(len, lines)) <= MAX_LOG_TEXT < sum(map(len, lines)) + MAX_LINE + 7
        assert lines[-1].startswith("04999 ") and int(lines[0][:5]) == 5000 - len(lines)


async def test_logs_of_5000_long_lines_keep_every_line_redacted_in_a_private_spool(tmp_path, capsys):
    rt = FakeRuntime()
    start = datetime.now(UTC) - timedelta(minutes=5)
    rt.add("worker", env={"DB_PASSWORD": "hunter2-secret"})
    rt.log_lines["shop-worker-1"] = [
        (start + timedelta(milliseconds=i), f"{i:05d} {LINE} hunter2-secret end") for i in range(5000)
    ]
    engine = Engine(make_config(), FakeBackends({"prod": rt}, FakeProbe()), Database(tmp_path / "l.db"), Redactor())
    try:
        reply = await engine.handle(Request(actor="U0X", door="slack", text="logs prod worker --lines 5000"))
        result = reply.result
        assert result.total == 5000 and 1 < len(result.lines) < TAIL_LINES
        assert sum(map(len, result.lines)) <= TAIL_TEXT < sum(map(len, result.lines)) + len(result.lines[0])
        spool = result._spool
        directory = Path(spool.directory)
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in directory.iterdir())
        lines = list(text_lines(reply, engine.redactor.text))
        assert lines[0].startswith("prod/worker: 5000 lines") and len(lines) == 5001
        assert [int(line[:5]) for line in lines[1:]] == list(range(5000))
        assert all(line.endswith(f" {MASK} end") for line in lines[1:])
        assert all("hunter2" not in f.read_text() for f in directory.iterdir())  # never written unredacted
        assert f"the newest {len(result.lines)} below" in render_text(reply)
        _print_reply_json(reply, engine.redactor.data)  # opsbot run --json: every line too
        data = json.loads(capsys.readouterr().out)
        assert data["count"] == 5000 and len(data["lines"]) == 5000 and data["lines"][-1].startswith("04999 ")
        result.close()
        assert not directory.exists()
        result.close()  # twice: harmless
    finally:
        engine.db.close()


async def test_a_log_shorter_than_asked_but_over_2_mib_is_not_said_to_be_cut(tmp_path):
    # 600 lines of 4 KB (2.4 MB) for --lines 5000: every line is delivered, so nothing may claim otherwise
    rt = FakeRuntime()
    start = datetime.now(UTC) - timedelta(minutes=5)
    rt.add("worker")
    rt.log_lines["shop-worker-1"] = [(start + timedelta(milliseconds=i), f"{i:05d} {LINE}") for i in range(600)]
    engine = Engine(make_config(), FakeBackends({"prod": rt}, FakeProbe()), Database(tmp_path / "l.db"), Redactor())
    try:
        reply = await engine.handle(Request(actor="U0X", door="slack", text="logs prod worker --lines 5000"))
        assert reply.result.total == 600 and len(list(reply.result.all_lines())) == 600
        assert "left out" not in render_text(reply) and "left out" not in json.dumps(render_message(reply).blocks)
        reply.result.close()
    finally:
        engine.db.close()
