"""Streamed processes: stdout read chunk by chunk, stdin written chunk by chunk, stderr's tail kept.

A dump or restore runs either on the bot's host (``HostProcess``: ``asyncio`` subprocess, argv only,
never a shell) or inside a service's container (``StreamingRuntime.exec_stream``, the Docker exec
stream). Both are a ``ProcessStream``; memory stays bounded whatever the size of the data.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import os
import select
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Protocol, runtime_checkable

from adapters.errors import AdapterError, AdapterTimeout

#: stdout is read this many bytes at a time (at most)
CHUNK = 1 * 2**20
#: this many bytes of stderr are kept (its tail), for error messages
STDERR_TAIL = 4096
#: a process silent (no output, no room for input) this long is given up
IDLE_TIMEOUT = 600.0
#: a read of a host process's stdout gathers what comes within this many seconds of its first byte
GATHER_WAIT = 0.005
#: while it gathers, a read looks at the pipe this often (the pipe holds 1 MiB: a writer of 1 GB/s does not wait)
GATHER_STEP = 0.001
#: waits on a host process's pipes look at whether it was killed this often (seconds)
POLL_STEP = 0.2


class StderrTail:
    """The last ``STDERR_TAIL`` bytes of a stream, as text."""

    def __init__(self, limit: int = STDERR_TAIL) -> None:
        self.limit = limit
        self._parts: collections.deque[bytes] = collections.deque()
        self._size = 0

    def feed(self, data: bytes) -> None:
        """Keep ``data`` (dropping the oldest bytes past the limit)."""
        self._parts.append(data)
        self._size += len(data)
        while self._size - len(self._parts[0]) >= self.limit:
            self._size -= len(self._parts.popleft())

    def text(self) -> str:
        """The tail, decoded (invalid UTF-8 replaced), stripped."""
        return b"".join(self._parts)[-self.limit :].decode("utf-8", errors="replace").strip()


@runtime_checkable
class ProcessStream(Protocol):
    """A running command whose stdout is read and stdin written as streams."""

    #: what runs where, for messages ("pg_dump in service postgres", "pg_dump on the bot's host")
    description: str

    async def read(self) -> bytes:
        """The next chunk of stdout (at most 1 MiB); ``b""`` once stdout ended."""
        ...

    async def write(self, data: bytes) -> None:
        """Send ``data`` to stdin (waits while the process does not take it)."""
        ...

    async def close_stdin(self) -> None:
        """End stdin: the process sees end of file."""
        ...

    async def wait(self) -> int:
        """Its exit code, once it ended."""
        ...

    def stderr(self) -> str:
        """The tail of what it wrote on stderr."""
        ...

    async def kill(self) -> None:
        """Stop it if it still runs (best effort; idempotent)."""
        ...


@runtime_checkable
class StreamingRuntime(Protocol):
    """A runtime that can run a command in a service's container as a ``ProcessStream``."""

    def exec_stream(
        self, service: str, argv: list[str], *, stdin: bool = False
    ) -> contextlib.AbstractAsyncContextManager[ProcessStream]:
        """``argv`` (never a shell) in the service's first running container; ended when the block exits."""
        ...


class HostProcess:
    """A ``ProcessStream`` on the bot's own host.

    stdout and stdin are plain pipes of 1 MiB (``F_SETPIPE_SZ``) read and written with blocking calls
    in two threads of the process's own, so a dump's gigabytes cross in about a thousand hops rather
    than one event-loop turn per 64 KiB. A read gathers what comes within ``GATHER_WAIT`` of its first
    byte, up to ``CHUNK``, into a buffer the caller may reuse (``readinto``), looking at the pipe every
    ``GATHER_STEP`` rather than waking at each of the process's writes (pg_dump writes 4 KiB at a time:
    a wake-up for each cost more CPU than the sha256 of the backup). Every wait polls in short steps,
    so ``kill`` ends them promptly.
    """

    def __init__(self, proc: asyncio.subprocess.Process, argv: list[str], stdout: int, stdin: int | None) -> None:
        self.proc = proc
        self.description = f"{os.path.basename(argv[0])} on the bot's host"
        self._tail = StderrTail()
        assert proc.stderr is not None
        self._stderr_task = asyncio.create_task(self._drain(proc.stderr))
        self._out, self._in = stdout, stdin
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="opsbot-proc")
        self._eof = False

    async def _drain(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(65536):
            self._tail.feed(chunk)

    def _wait_for(self, fd: int, event: int, what: str) -> None:
        """Block until ``fd`` is ready (``AdapterTimeout`` after ``IDLE_TIMEOUT``; ``AdapterError`` once killed)."""
        poller = select.poll()
        poller.register(fd, event | select.POLLHUP | select.POLLERR)
        deadline = time.monotonic() + IDLE_TIMEOUT
        while not poller.poll(POLL_STEP * 1000):
            if self._stop.is_set():
                raise AdapterError(f"{self.description} was stopped")
            if time.monotonic() >= deadline:
                raise AdapterTimeout(f"{self.description} {what} for {IDLE_TIMEOUT:g}s")

    def _readinto(self, buffer: memoryview) -> int:
        size, until = 0, 0.0
        while size < len(buffer):
            try:
                n = os.readv(self._out, [buffer[size:]])
            except BlockingIOError:  # nothing there now
                if not size:
                    self._wait_for(self._out, select.POLLIN, "wrote nothing")
                    continue
                left = until - time.monotonic()
                if left <= 0:
                    break
                time.sleep(min(GATHER_STEP, left))  # not a wake-up per write of the process (pg_dump's are 4 KiB)
                continue
            if not n:
                self._eof = True
                break
            if not size:
                until = time.monotonic() + GATHER_WAIT
            size += n
        return size

    async def read(self) -> bytes:
        """Next stdout chunk (at most 1 MiB)."""
        buffer = bytearray(CHUNK)
        return bytes(memoryview(buffer)[: await self.readinto(buffer)])

    async def readinto(self, buffer: bytearray) -> int:
        """Fill ``buffer`` with the next stdout bytes (what comes within ``GATHER_WAIT`` of the first); how many
        (0: stdout ended). A stream reads into buffers it reuses: no allocation per chunk."""
        if self._eof or self._stop.is_set():
            return 0
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._readinto, memoryview(buffer))

    def _write(self, data: bytes) -> None:
        assert self._in is not None, "started without stdin"
        view = memoryview(data)
        while view:
            self._wait_for(self._in, select.POLLOUT, "took no input")
            try:
                view = view[os.write(self._in, view) :]
            except BlockingIOError:  # full again meanwhile: wait for room
                continue
            except (BrokenPipeError, ConnectionResetError) as exc:
                raise AdapterError(f"{self.description} stopped reading its input") from exc

    async def write(self, data: bytes) -> None:
        """Into stdin."""
        await asyncio.get_running_loop().run_in_executor(self._pool, self._write, data)

    async def close_stdin(self) -> None:
        """EOF on stdin."""
        if self._in is not None:
            fd, self._in = self._in, None
            os.close(fd)

    async def wait(self) -> int:
        """Exit code (stderr read to its end first)."""
        code = await self.proc.wait()
        with contextlib.suppress(asyncio.CancelledError):
            await self._stderr_task
        return code

    def stderr(self) -> str:
        """The tail of stderr."""
        return self._tail.text()

    async def kill(self) -> None:
        """SIGKILL if still running; the pipes closed once no thread uses them."""
        self._stop.set()
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()
        self._stderr_task.cancel()
        await asyncio.to_thread(self._pool.shutdown, wait=True)  # its threads end within POLL_STEP
        for fd in (self._out, self._in):
            if fd is not None and fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._out, self._in = -1, None


def _pipe() -> tuple[int, int]:
    """A pipe of 1 MiB where the system allows it (fewer, larger reads and writes)."""
    read, write = os.pipe()
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(write, fcntl.F_SETPIPE_SZ, CHUNK)
    return read, write


@asynccontextmanager
async def host_process(argv: list[str], *, stdin: bool = False) -> AsyncIterator[HostProcess]:
    """Start ``argv`` on the bot's host (no shell); killed if still running when the block exits."""
    if isinstance(argv, str) or not argv or not all(isinstance(a, str) for a in argv):
        raise AdapterError("a command is a non-empty list of arguments (argv), never a shell string")
    out_r, out_w = _pipe()
    os.set_blocking(out_r, False)  # reads take what is there; the wait for more is ours (gathering, timeout, kill)
    in_r, in_w = _pipe() if stdin else (-1, -1)
    if stdin:
        os.set_blocking(in_w, False)  # writes take what fits; the wait for room is ours (timeout, kill)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=in_r if stdin else asyncio.subprocess.DEVNULL, stdout=out_w, stderr=asyncio.subprocess.PIPE
        )
    except OSError as exc:
        for fd in (out_r, in_w):
            if fd >= 0:
                os.close(fd)
        if isinstance(exc, FileNotFoundError):
            raise AdapterError(f"{argv[0]} is not installed on the bot's host") from exc
        raise AdapterError(f"cannot start {argv[0]} on the bot's host: {exc.strerror or exc}") from exc
    finally:
        for fd in (out_w, in_r):  # the child's ends: only the child holds them now
            if fd >= 0:
                os.close(fd)
    process = HostProcess(proc, argv, out_r, in_w if stdin else None)
    try:
        yield process
    finally:
        await asyncio.shield(process.kill())
