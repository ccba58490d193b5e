"""Log lines kept on disk instead of in memory: what lets ``logs --lines 5000`` of long lines reach its reader
whole while a request holds a bounded amount of memory.

A ``LineSpool`` keeps the newest ``keep`` lines it is given in a private temporary directory (0700, its
files 0600, both removed by ``close``, which a finalizer also calls when the spool is forgotten). Lines are
buffered up to ``BATCH`` characters, passed through ``transform`` a batch at a time (the redactor: nothing
unredacted is ever written when one is given) and appended to the current segment file; a segment that
reaches ``keep`` lines is closed and a new one begun, and only the last two are kept, so the disk used is
bounded by ``keep`` too, however long the log that is read through it (``--grep`` over a whole log).

``spool_each`` reads several logs (a service's containers or tasks) each into a spool of its own and merges
them by time into the caller's: the newest ``keep`` lines of them all, whatever their length.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import os
import shutil
import tempfile
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import IO, Any

#: lines are transformed and written this many characters at a time (the memory a spool holds)
BATCH = 256 * 1024

Transform = Callable[[list[str]], list[str]]


def _remove(directory: str) -> None:
    shutil.rmtree(directory, ignore_errors=True)


class LineSpool:
    """The newest ``keep`` (timestamp, line) pairs given to ``add``, on disk, oldest first."""

    def __init__(self, keep: int, transform: Transform | None = None, *, parent: str | None = None) -> None:
        self.keep = max(int(keep), 0)
        self.transform = transform
        #: a private directory of its own (``mkdtemp`` creates it 0700)
        self.directory = tempfile.mkdtemp(prefix="opsbot-logs-", dir=parent)
        self._finalizer = weakref.finalize(self, _remove, self.directory)
        self._lock = threading.Lock()
        self._pending: list[tuple[str, str]] = []
        self._pending_size = 0
        #: (path, lines written) of each kept segment, oldest first
        self._segments: list[tuple[Path, int]] = []
        self._file: IO[str] | None = None
        self._made = 0
        #: closed: lines still given (a reader thread that outlived a cancelled request) are dropped
        self._closed = False

    # ------------------------------------------------------------------ writing

    def add(self, stamp: str, line: str) -> None:
        """Take one line (``stamp`` sorts lines of several sources by time; it holds no space)."""
        if self.keep <= 0 or self._closed:
            return
        self._pending.append((stamp, line))
        self._pending_size += len(line) + len(stamp)
        if self._pending_size >= BATCH:
            self.flush()

    def extend(self, items: Iterable[tuple[str, str]]) -> None:
        """``add`` each pair."""
        for stamp, line in items:
            self.add(stamp, line)

    def flush(self) -> None:
        """Transform and write the buffered lines."""
        if not self._pending:
            return
        pending, self._pending, self._pending_size = self._pending, [], 0
        lines = [line for _, line in pending]
        if self.transform is not None:
            lines = self.transform(lines)
        with self._lock:
            if self._closed:
                return
            for (stamp, _), line in zip(pending, lines, strict=True):
                self._write(f"{stamp} {line}\n")

    def _write(self, record: str) -> None:
        if self._file is None or self._segments[-1][1] >= self.keep:
            self._rotate()
        assert self._file is not None
        self._file.write(record)
        path, count = self._segments[-1]
        self._segments[-1] = (path, count + 1)

    def _rotate(self) -> None:
        if self._file is not None:
            self._file.close()
        self._made += 1
        path = Path(self.directory) / f"segment-{self._made}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._file = open(fd, "w", encoding="utf-8", errors="surrogatepass", newline="\n")
        self._segments.append((path, 0))
        while len(self._segments) > 2:  # the newest ``keep`` lines are in the last two
            old, _ = self._segments.pop(0)
            old.unlink(missing_ok=True)

    def finish(self) -> None:
        """Write what is buffered and close the current segment (reading may begin)."""
        self.flush()
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    # ------------------------------------------------------------------ reading

    def __len__(self) -> int:
        """How many lines the spool holds (at most ``keep``)."""
        return min(sum(count for _, count in self._segments) + len(self._pending), self.keep)

    def items(self) -> Iterator[tuple[str, str]]:
        """The kept (timestamp, line) pairs, oldest first, read from disk as they are used."""
        self.finish()
        skip = max(sum(count for _, count in self._segments) - self.keep, 0)
        return islice(self._records(), skip, None)

    def _records(self) -> Iterator[tuple[str, str]]:
        for path, _ in list(self._segments):
            with open(path, encoding="utf-8", errors="surrogatepass", newline="\n") as f:
                for record in f:
                    stamp, _, line = record[:-1].partition(" ")
                    yield stamp, line

    def lines(self) -> Iterator[str]:
        """The kept lines, oldest first."""
        return (line for _, line in self.items())

    def tail(self, count: int, budget: int | None = None) -> list[str]:
        """The newest ``count`` kept lines, and only as many of them as fit in ``budget`` characters (at least
        one); read through once, holding no more than that."""
        skip = max(len(self) - max(count, 0), 0)
        kept: collections.deque[str] = collections.deque()
        size = 0
        for _, line in islice(self.items(), skip, None):
            kept.append(line)
            size += len(line)
            while budget is not None and size > budget and len(kept) > 1:
                size -= len(kept.popleft())
        return list(kept)

    def merge(self, parts: list[LineSpool], key: Callable[[str], Any] = str) -> None:
        """Add the lines of ``parts`` merged by ``key`` of their timestamps (their newest ``keep`` in all),
        untransformed (each part was transformed as it was written); the parts are closed."""
        try:
            total = sum(len(p) for p in parts)
            merged = heapq.merge(*(p.items() for p in parts), key=lambda item: key(item[0]))
            transform, self.transform = self.transform, None
            try:
                self.extend(islice(merged, max(total - self.keep, 0), None))
                self.finish()
            finally:
                self.transform = transform
        finally:
            for p in parts:
                p.close()

    def close(self) -> None:
        """Remove the spool's files and directory (also done when the spool is garbage-collected)."""
        with self._lock:
            self._closed = True
            if self._file is not None:
                self._file.close()
                self._file = None
            self._segments = []
        self._pending = []
        self._finalizer()

    def __enter__(self) -> LineSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def spool_each(
    spool: LineSpool,
    keep: int,
    reads: Sequence[Callable[[LineSpool], Awaitable[object]]],
    key: Callable[[str], Any] = str,
    *,
    parallel: int = 8,
) -> None:
    """Run each of ``reads`` with a spool of its own (``keep`` lines, ``spool``'s transform), at most
    ``parallel`` at a time, then merge them by ``key`` of their timestamps into ``spool`` (its newest ``keep``
    lines of them all). One read writes into ``spool`` itself. When a read fails or the call is cancelled,
    the others are cancelled and every spool of its own is closed (its files removed) before the error goes
    on; ``spool`` is the caller's to close.
    """
    parts = [spool] if len(reads) == 1 else [LineSpool(keep, spool.transform) for _ in reads]
    gate = asyncio.Semaphore(max(parallel, 1))

    async def one(read: Callable[[LineSpool], Awaitable[object]], part: LineSpool) -> None:
        async with gate:
            await read(part)

    running = [asyncio.ensure_future(one(read, part)) for read, part in zip(reads, parts, strict=True)]
    try:
        await asyncio.gather(*running)
    except BaseException:
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running)  # (their threads stop at their next block; the parts drop late lines)
        for part in parts:
            if part is not spool:
                part.close()
        raise
    if len(reads) != 1:
        await asyncio.to_thread(spool.merge, parts, key)
