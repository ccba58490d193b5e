"""Streams between a process and a store: dump -> compress -> store, store -> decompress -> restore, and checks.

No temporary file and bounded memory whatever the size: a reader task reads the dump's stdout into one
of ``BUFFERS`` buffers of 1 MiB, reused over the whole stream (no allocation per chunk: on a dump of a
GiB, fresh chunks cost more in page faults than the copies), a compressor (zstd or gzip, in a worker
thread, so the dump keeps writing meanwhile) takes them in turn and feeds a small queue of compressed
chunks, and the store uploads from that. A dump that
exits non-zero or writes nothing makes the stream fail before its end, so the store leaves no object.
The way back decompresses in pieces of at most 1 MiB (``adapters.stores.codecs``): a bomb cannot fill memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from adapters.errors import AdapterError
from adapters.procstream import CHUNK, ProcessStream
from adapters.store import BackupStore, PutResult, StoredObject
from adapters.stores.codecs import Compression, DecodeError, Decoder, decoder, encoder, of_bytes, of_name

#: raw chunks are gathered to about this size before they are compressed (fewer thread hops)
GATHER = 512 * 1024
#: raw buffers of ``CHUNK`` bytes: one being read, one waiting, one being compressed
BUFFERS = 3
#: chunks waiting in each queue: memory stays under a few MiB besides the store's part buffer
QUEUE = 2
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
    compression: Compression = "zstd",
) -> PutResult:
    """Stream ``proc``'s stdout, compressed, into ``store`` under ``key``; ``DumpFailed`` leaves no object."""
    free: asyncio.Queue[bytearray] = asyncio.Queue()
    for _ in range(BUFFERS):
        free.put_nowait(bytearray(CHUNK))
    raw_q: asyncio.Queue[tuple[bytearray, int] | Exception | None] = asyncio.Queue()  # bounded by the buffers
    gz_q: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(QUEUE)
    compressor = encoder(compression)
    fill = _filler(proc)

    async def read() -> None:
        try:
            while size := await fill(buffer := await free.get()):
                meter.raw += size
                raw_q.put_nowait((buffer, size))
        except Exception as exc:
            raw_q.put_nowait(exc)
            return
        raw_q.put_nowait(None)

    async def compress() -> None:
        loop = asyncio.get_running_loop()
        try:
            while (item := await raw_q.get()) is not None:
                if isinstance(item, Exception):
                    raise item
                buffer, size = item
                out = await loop.run_in_executor(None, compressor.compress, memoryview(buffer)[:size])
                free.put_nowait(buffer)  # the compressor copied what it keeps
                if out:
                    await gz_q.put(out)
            code = await proc.wait()
            if code != 0:
                raise DumpFailed(failure(proc, f"{proc.description} exited with {code}"))
            if meter.raw == 0:
                raise DumpFailed(failure(proc, f"{proc.description} wrote nothing"))
            await gz_q.put(await loop.run_in_executor(None, compressor.flush))
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


def _filler(proc: ProcessStream) -> Callable[[bytearray], Awaitable[int]]:
    """``fill(buffer)``: the next stdout bytes into ``buffer``, how many (0: the end). The process's own
    ``readinto`` where it has one (``HostProcess``); else its chunks copied in until ``GATHER`` bytes."""
    readinto: Callable[[bytearray], Awaitable[int]] | None = getattr(proc, "readinto", None)
    if readinto is not None:
        return readinto
    left, ended = memoryview(b""), False

    async def fill(buffer: bytearray) -> int:
        nonlocal left, ended
        size = 0
        while size < GATHER and not ended:
            if not left:
                left = memoryview(await proc.read())
                ended = not left
            n = min(len(left), len(buffer) - size)
            buffer[size : size + n], left = left[:n], left[n:]
            size += n
            if size == len(buffer):
                break
        return size

    return fill


def offer(queue: asyncio.Queue[Any], item: Any) -> None:
    """Put ``item`` now, dropping the oldest items if the queue is full (the stream is failing anyway)."""
    while True:
        try:
            queue.put_nowait(item)
            return
        except asyncio.QueueFull:
            queue.get_nowait()


def compression_of(o: StoredObject) -> Compression | None:
    """What the backup's name (``.sql.zst``, ``.sql.gz``) or metadata says; None: look at its first bytes."""
    said = of_name(o.key) or o.metadata.get("compression")
    return said if said in ("zstd", "gzip") else None  # type: ignore[return-value]


class _Unpacker:
    """The decoder of a stream (chosen from its first bytes when not known) and the sha256 of what it was fed."""

    def __init__(self, compression: Compression | None) -> None:
        self.compression = compression
        self.sha = hashlib.sha256()
        self.fed = 0
        self._decoder: Decoder | None = None

    def push(self, chunk: bytes) -> None:
        """Hash and hand over stored bytes; ``DecodeError`` when the stream's kind cannot be told."""
        self.sha.update(chunk)
        self.fed += len(chunk)
        if self._decoder is None:
            self.compression = self.compression or of_bytes(chunk)
            if self.compression is None:
                raise DecodeError("neither zstd nor gzip (unknown first bytes)")
            self._decoder = decoder(self.compression)
        self._decoder.push(chunk)

    def pull(self) -> bytes:
        """The next piece of at most 1 MiB (``b""``: push more)."""
        return self._decoder.pull() if self._decoder is not None else b""

    def complete(self) -> bool:
        """The stream ended whole."""
        return self._decoder is not None and self._decoder.complete()

    def name(self) -> str:
        """``zstd``, ``gzip``, or ``compressed`` when not known yet."""
        return self.compression or "compressed"


async def store_to_process(
    store: BackupStore,
    key: str,
    proc: ProcessStream,
    meter: Meter,
    *,
    sha256: str | None = None,
    compression: Compression | None = None,
) -> None:
    """Stream the object, decompressed, into ``proc``'s stdin; ``DumpFailed`` when it fails (says how far).

    ``compression`` None: told from the object's first bytes. With ``sha256`` (what a check of the object
    found just before), the bytes streamed are hashed too: an object replaced in between is said
    (``DumpFailed``) at the end, never passed over as the checked one. Reading and decompressing run
    ahead of the restore by a few pieces (a small queue), so the store and the restore both keep busy.
    """
    unpack = _Unpacker(compression)
    pieces: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(QUEUE)

    def feed(chunk: bytes) -> bytes:
        unpack.push(chunk)
        return unpack.pull()

    async def produce() -> None:
        try:
            async for chunk in store.get(key):
                meter.stored += len(chunk)
                try:
                    piece = await asyncio.to_thread(feed, chunk)
                    while piece:
                        await pieces.put(piece)
                        piece = await asyncio.to_thread(unpack.pull)
                except DecodeError as exc:
                    raise DumpFailed(
                        f"the backup is not valid {unpack.name()} after {meter.stored} bytes ({exc})"
                    ) from exc
            if not unpack.complete():
                raise DumpFailed(f"the backup's {unpack.name()} stream is incomplete (cut after {meter.stored} bytes)")
            if sha256 is not None and unpack.sha.hexdigest() != sha256:
                raise DumpFailed(
                    f"the backup changed while it was restored: its bytes have sha256 {unpack.sha.hexdigest()}, "
                    f"not the {sha256} checked before"
                )
            await pieces.put(None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            offer(pieces, exc)

    async def drain_stdout() -> None:  # whatever the restore prints must not block it
        while await proc.read():
            pass

    reader = asyncio.create_task(drain_stdout())
    producer = asyncio.create_task(produce())
    try:
        while (item := await pieces.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            try:
                await proc.write(item)
            except AdapterError as exc:  # it stopped reading: its exit code and stderr say why
                raise DumpFailed(await _why_it_stopped(proc, exc)) from exc
            meter.raw += len(item)
            await meter.tick()
        await proc.close_stdin()
        reader.cancel()  # wait() reads stdout to its end itself
        with contextlib.suppress(BaseException):
            await reader
        code = await proc.wait()
        if code != 0:
            raise DumpFailed(failure(proc, f"{proc.description} exited with {code}"))
    finally:
        for task in (producer, reader):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
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
    #: the stream's compression (``zstd``, ``gzip``), None when its first bytes are neither
    compression: Compression | None
    #: the stream decompresses whole and ends where it should
    stream_ok: bool
    stream_problem: str | None
    raw_size: int


async def check_object(
    store: BackupStore, key: str, meter: Meter, compression: Compression | None = None
) -> ObjectCheck:
    """Read the object once: its size, sha256, and whether it is one complete compressed stream."""
    unpack = _Unpacker(compression)
    problem: str | None = None

    def feed(chunk: bytes) -> int:
        if problem is not None:
            unpack.sha.update(chunk)
            return 0
        unpack.push(chunk)
        n = 0
        while piece := unpack.pull():  # counted and dropped: memory stays bounded
            n += len(piece)
        return n

    async for chunk in store.get(key):
        meter.stored += len(chunk)
        try:
            meter.raw += await asyncio.to_thread(feed, chunk)
        except DecodeError as exc:
            problem = f"not valid {unpack.name()} after {meter.stored} bytes ({exc})"
        await meter.tick()
    if problem is None and meter.stored == 0:
        problem = "the object is empty"
    if problem is None and not unpack.complete():
        problem = f"the {unpack.name()} stream is incomplete (the object was cut short)"
    return ObjectCheck(meter.stored, unpack.sha.hexdigest(), unpack.compression, problem is None, problem, meter.raw)
