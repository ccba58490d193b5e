"""Streams between a process and a store: dump -> gzip -> store, store -> gunzip -> restore, and checks.

No temporary file and bounded memory whatever the size: a reader task takes the dump's stdout into a
small queue of raw chunks, a compressor (zlib in a worker thread, so the dump keeps writing meanwhile)
feeds a small queue of gzip chunks, and the store uploads from that. A dump that exits non-zero or
writes nothing makes the stream fail before its end, so the store leaves no object.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from adapters.errors import AdapterError
from adapters.procstream import CHUNK, ProcessStream
from adapters.store import BackupStore, PutResult

#: raw chunks are gathered to about this size before they are compressed (fewer thread hops)
GATHER = 512 * 1024
#: chunks waiting in each queue: memory stays under a few MiB besides the store's part buffer
QUEUE = 8
#: gzip level (gzip's own default)
LEVEL = 6
#: progress is reported at most this often (seconds)
PROGRESS_EVERY = 2.0

#: ``progress(raw_bytes, stored_bytes)``
Progress = Callable[[int, int], Awaitable[None]]


class DumpFailed(AdapterError):
    """The dump (or restore) command failed; the message has its exit code and stderr tail."""


@dataclass
class Meter:
    """Bytes through a stream, and a throttled progress report."""

    progress: Progress | None = None
    raw: int = 0
    stored: int = 0
    started: float = 0.0
    _last: float = 0.0

    def __post_init__(self) -> None:
        self.started = self._last = time.monotonic()

    async def tick(self, *, force: bool = False) -> None:
        """Report, if it is time."""
        now = time.monotonic()
        if self.progress is not None and (force or now - self._last >= PROGRESS_EVERY):
            self._last = now
            await self.progress(self.raw, self.stored)

    def rate(self) -> float:
        """Raw bytes per second so far."""
        return self.raw / max(time.monotonic() - self.started, 1e-6)


def failure(proc: ProcessStream, what: str) -> str:
    """``<what>; stderr: <tail>`` (or without stderr when it wrote none)."""
    tail = proc.stderr()
    return f"{what}; stderr: {tail[-1500:]}" if tail else what


async def dump_to_store(
    proc: ProcessStream,
    store: BackupStore,
    key: str,
    metadata: dict[str, str],
    final: Callable[[], dict[str, str]],
    meter: Meter,
) -> PutResult:
    """Stream ``proc``'s stdout through gzip into ``store`` under ``key``; ``DumpFailed`` leaves no object."""
    raw_q: asyncio.Queue[bytes | Exception | None] = asyncio.Queue(QUEUE)
    gz_q: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(QUEUE)
    compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, 31)

    async def read() -> None:
        pending = bytearray()
        try:
            while chunk := await proc.read():
                meter.raw += len(chunk)
                pending += chunk
                if len(pending) >= GATHER:
                    await raw_q.put(bytes(pending))
                    pending.clear()
        except Exception as exc:
            offer(raw_q, exc)
            return
        if pending:
            await raw_q.put(bytes(pending))
        await raw_q.put(None)

    async def compress() -> None:
        try:
            while (chunk := await raw_q.get()) is not None:
                if isinstance(chunk, Exception):
                    raise chunk
                out = await asyncio.to_thread(compressor.compress, chunk)
                if out:
                    await gz_q.put(out)
            code = await proc.wait()
            if code != 0:
                raise DumpFailed(failure(proc, f"{proc.description} exited with {code}"))
            if meter.raw == 0:
                raise DumpFailed(failure(proc, f"{proc.description} wrote nothing"))
            await gz_q.put(compressor.flush())
            await gz_q.put(None)
        except asyncio.CancelledError:
            raise  # the store gave up: nobody reads the queue any more
        except Exception as exc:
            offer(gz_q, exc)
            raise

    async def chunks() -> AsyncIterator[bytes]:
        while (item := await gz_q.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            meter.stored += len(item)
            yield item
            await meter.tick()

    tasks = [asyncio.create_task(read()), asyncio.create_task(compress())]
    try:
        result = await store.put(key, chunks(), metadata, final)
    except BaseException:
        for task in tasks:
            task.cancel()
        raise
    finally:
        # bounded: a task that does not end (it never should) is left, not waited for forever
        await asyncio.wait(tasks, timeout=10)
        for task in tasks:
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: its error is the one the store raised, or was shown to it
    await meter.tick(force=True)
    return result


def offer(queue: asyncio.Queue[Any], item: Any) -> None:
    """Put ``item`` now, dropping the oldest items if the queue is full (the stream is failing anyway)."""
    while True:
        try:
            queue.put_nowait(item)
            return
        except asyncio.QueueFull:
            queue.get_nowait()


class Gunzip:
    """Decompresses gzip (several members too) in pieces of at most 1 MiB: a bomb cannot fill memory."""

    def __init__(self) -> None:
        self._d = zlib.decompressobj(31)
        self.started = False

    def feed(self, data: bytes) -> list[bytes]:
        """The raw pieces ``data`` completes; ``zlib.error`` for data that is not gzip."""
        out: list[bytes] = []
        while data:
            self.started = True
            piece = self._d.decompress(data, CHUNK)
            if piece:
                out.append(piece)
            if self._d.eof:
                data = self._d.unused_data
                self._d = zlib.decompressobj(31)
                self.started = False
            else:
                data = self._d.unconsumed_tail
        return out

    def complete(self) -> bool:
        """True when the stream ended at the end of a gzip member."""
        return not self.started


async def store_to_process(
    store: BackupStore, key: str, proc: ProcessStream, meter: Meter, *, sha256: str | None = None
) -> None:
    """Stream the object through gunzip into ``proc``'s stdin; ``DumpFailed`` when it fails (says how far).

    With ``sha256`` (what a check of the object found just before), the bytes streamed are hashed too:
    an object replaced in between is said (``DumpFailed``) at the end, never passed over as the checked one.
    """
    gunzip = Gunzip()
    digest = hashlib.sha256()

    async def drain_stdout() -> None:  # whatever the restore prints must not block it
        while await proc.read():
            pass

    reader = asyncio.create_task(drain_stdout())
    try:
        async for chunk in store.get(key):
            meter.stored += len(chunk)
            digest.update(chunk)
            try:
                pieces = await asyncio.to_thread(gunzip.feed, chunk)
            except zlib.error as exc:
                raise DumpFailed(f"the backup is not valid gzip after {meter.stored} bytes ({exc})") from exc
            for piece in pieces:
                try:
                    await proc.write(piece)
                except AdapterError as exc:  # it stopped reading: its exit code and stderr say why
                    raise DumpFailed(await _why_it_stopped(proc, exc)) from exc
                meter.raw += len(piece)
            await meter.tick()
        if not gunzip.complete():
            raise DumpFailed(f"the backup's gzip stream is incomplete (cut after {meter.stored} bytes)")
        if sha256 is not None and digest.hexdigest() != sha256:
            raise DumpFailed(
                f"the backup changed while it was restored: its bytes have sha256 {digest.hexdigest()}, "
                f"not the {sha256} checked before"
            )
        await proc.close_stdin()
        reader.cancel()  # wait() reads stdout to its end itself
        with contextlib.suppress(BaseException):
            await reader
        code = await proc.wait()
        if code != 0:
            raise DumpFailed(failure(proc, f"{proc.description} exited with {code}"))
    finally:
        reader.cancel()
        with contextlib.suppress(BaseException):
            await reader
    await meter.tick(force=True)


async def _why_it_stopped(proc: ProcessStream, exc: AdapterError) -> str:
    """``<cmd> exited with N; stderr: ...`` for a process that stopped taking input (else ``exc``)."""
    reader = asyncio.create_task(proc.wait())
    done, _ = await asyncio.wait([reader], timeout=10)
    if not done:
        reader.cancel()
        return failure(proc, str(exc))
    code = reader.result() if not reader.exception() else None
    return failure(proc, f"{proc.description} exited with {code} before the end of the backup" if code else str(exc))


@dataclass
class ObjectCheck:
    """What reading a whole object found."""

    size: int
    sha256: str
    gzip_ok: bool
    gzip_problem: str | None
    raw_size: int


async def check_object(store: BackupStore, key: str, meter: Meter) -> ObjectCheck:
    """Read the object once: its size, sha256, and whether it is one complete gzip stream."""
    sha, gunzip = hashlib.sha256(), Gunzip()
    problem: str | None = None

    def feed(chunk: bytes) -> int:
        sha.update(chunk)
        if problem is not None:
            return 0
        return sum(len(p) for p in gunzip.feed(chunk))

    async for chunk in store.get(key):
        meter.stored += len(chunk)
        try:
            meter.raw += await asyncio.to_thread(feed, chunk)
        except zlib.error as exc:
            problem = f"not valid gzip after {meter.stored} bytes ({exc})"
        await meter.tick()
    if problem is None and not gunzip.complete():
        problem = "the gzip stream is incomplete (the object was cut short)"
    if problem is None and meter.stored == 0:
        problem = "the object is empty"
    return ObjectCheck(meter.stored, sha.hexdigest(), problem is None, problem, meter.raw)
