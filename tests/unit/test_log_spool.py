"""The spool of a ``logs`` request: private, bounded on disk by ``keep``, removed on close or when forgotten."""

from __future__ import annotations

import asyncio
import gc
import stat
import tempfile
from pathlib import Path

import pytest

from adapters.docker.io import LineReader
from adapters.docker.spool import LineSpool, spool_each


def test_a_spool_is_private_keeps_the_newest_lines_and_is_removed():
    with LineSpool(3, lambda batch: [line.replace("s3cret", "[REDACTED]") for line in batch]) as spool:
        directory = Path(spool.directory)
        for i in range(10):
            spool.add(f"t{i:02d}", f"line {i} s3cret")
        assert list(spool.lines()) == [f"line {i} [REDACTED]" for i in (7, 8, 9)]
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        files = list(directory.iterdir())
        assert files and len(files) <= 2  # rotated: at most two segments of ``keep`` lines
        assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
        assert all("s3cret" not in f.read_text() for f in files)
    assert not directory.exists()


def test_a_forgotten_spool_is_removed_and_a_failed_read_leaves_nothing():
    spool = LineSpool(5)
    spool.add("t", "x")
    directory = Path(spool.directory)
    del spool
    gc.collect()
    assert not directory.exists()

    def broken(batch: list[str]) -> list[str]:
        raise RuntimeError("redaction failed")

    spool = LineSpool(5, broken)
    reader = LineReader(5, None, spool=spool)
    reader.feed(1, b"2024-05-01T10:00:00Z one\n")
    with pytest.raises(RuntimeError):
        reader.close()
    spool.close()
    assert not Path(spool.directory).exists()


def test_the_newest_lines_of_several_sources_merge_by_time():
    a, b = LineSpool(10), LineSpool(10)
    for i in range(0, 10, 2):
        a.add(f"{i:02d}", f"a{i}")
        b.add(f"{i + 1:02d}", f"b{i + 1}")
    with LineSpool(4) as merged:
        merged.merge([a, b])
        assert list(merged.lines()) == ["a6", "b7", "a8", "b9"]
    assert not Path(a.directory).exists() and not Path(b.directory).exists()


def test_lines_given_after_close_are_dropped_and_write_nothing():
    spool = LineSpool(5)
    spool.close()
    spool.add("t", "late line from a reader thread")
    spool.finish()
    assert not Path(spool.directory).exists() and len(spool) == 0


def _writer(tag: str, stamps: range):
    async def read(part: LineSpool) -> None:
        for i in stamps:
            part.add(f"{i:04d}", f"{tag}{i} secret")
        await asyncio.to_thread(part.finish)

    return read


async def test_spool_each_reads_each_source_into_its_own_spool_and_merges_the_newest(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    redact = lambda batch: [line.replace("secret", "[REDACTED]") for line in batch]  # noqa: E731
    with LineSpool(5, redact) as spool:
        await spool_each(spool, 5, [_writer("a", range(0, 20, 2)), _writer("b", range(1, 20, 2))], parallel=1)
        assert list(spool.lines()) == [f"{'ab'[i % 2]}{i} [REDACTED]" for i in range(15, 20)]
        assert [p.name for p in tmp_path.iterdir()] == [Path(spool.directory).name]  # the parts are gone
    with LineSpool(5, redact) as spool:  # one source: read into the spool itself
        await spool_each(spool, 5, [_writer("a", range(3))])
        assert list(spool.lines()) == ["a0 [REDACTED]", "a1 [REDACTED]", "a2 [REDACTED]"]
    with LineSpool(5) as spool:
        await spool_each(spool, 5, [])
        assert len(spool) == 0
    assert list(tmp_path.iterdir()) == []


async def test_spool_each_that_fails_or_is_cancelled_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    waiting, cancelled = asyncio.Event(), asyncio.Event()

    async def stuck(part: LineSpool) -> None:
        part.add("0001", "a line")
        part.flush()
        waiting.set()
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    async def broken(part: LineSpool) -> None:
        await waiting.wait()
        raise RuntimeError("the engine broke")

    with LineSpool(5) as spool:
        with pytest.raises(RuntimeError, match="the engine broke"):
            await spool_each(spool, 5, [stuck, broken])
        assert cancelled.is_set() and [p.name for p in tmp_path.iterdir()] == [Path(spool.directory).name]
        waiting.clear()
        cancelled.clear()
        call = asyncio.ensure_future(spool_each(spool, 5, [stuck, _writer("b", range(3))]))
        await waiting.wait()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert cancelled.is_set() and [p.name for p in tmp_path.iterdir()] == [Path(spool.directory).name]
    assert list(tmp_path.iterdir()) == []
