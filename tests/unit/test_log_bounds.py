"""What one logs request may hold is bounded (issue 11, finding 5): the newest 2 MiB of lines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from adapters.docker.io import MAX_LINE, MAX_LOG_TEXT, LineReader
from adapters.fakes import FakeBackends, FakeProbe, FakeRuntime
from adapters.swarm.runtime import NewestLines
from bot.config.redact import MASK, Redactor
from bot.core.db import Database
from bot.core.engine import Engine, Request
from bot.render.text import render_text
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


async def test_logs_of_5000_long_lines_are_cut_to_the_newest_2_mib_and_say_so(tmp_path):
    rt = FakeRuntime()
    start = datetime.now(UTC) - timedelta(minutes=5)
    rt.add("worker", env={"DB_PASSWORD": "hunter2-secret"})
    rt.log_lines["shop-worker-1"] = [
        (start + timedelta(milliseconds=i), f"{i:05d} {LINE}=hunter2x") for i in range(5000)
    ]
    engine = Engine(make_config(), FakeBackends({"prod": rt}, FakeProbe()), Database(tmp_path / "l.db"), Redactor())
    try:
        reply = await engine.handle(Request(actor="U0X", door="slack", text="logs prod worker --lines 5000"))
        lines = reply.result.lines
        assert reply.result.limited and 400 < len(lines) < 5000
        assert lines[-1].startswith("04999 ") and lines[-1].endswith(f"={MASK}")
        assert "older lines left out" in render_text(reply)
    finally:
        engine.db.close()
