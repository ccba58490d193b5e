"""Streamed processes: stdout read chunk by chunk, stdin written chunk by chunk, stderr's tail kept.

A dump or restore runs either on the bot's host (``HostProcess``: ``asyncio`` subprocess, argv only,
never a shell) or inside a service's container (``StreamingRuntime.exec_stream``, the Docker exec
stream). Both are a ``ProcessStream``; memory stays bounded whatever the size of the data.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol, runtime_checkable

from adapters.errors import AdapterError, AdapterTimeout

#: stdout is read this many bytes at a time (at most)
CHUNK = 1 * 2**20
#: this many bytes of stderr are kept (its tail), for error messages
STDERR_TAIL = 4096
#: a process silent (no output, no room for input) this long is given up
IDLE_TIMEOUT = 600.0


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
    """A ``ProcessStream`` on the bot's own host."""

    def __init__(self, proc: asyncio.subprocess.Process, argv: list[str]) -> None:
        self.proc = proc
        self.description = f"{os.path.basename(argv[0])} on the bot's host"
        self._tail = StderrTail()
        assert proc.stderr is not None
        self._stderr_task = asyncio.create_task(self._drain(proc.stderr))

    async def _drain(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(65536):
            self._tail.feed(chunk)

    async def read(self) -> bytes:
        """Next stdout chunk."""
        assert self.proc.stdout is not None
        try:
            return await asyncio.wait_for(self.proc.stdout.read(CHUNK), IDLE_TIMEOUT)
        except TimeoutError as exc:
            raise AdapterTimeout(f"{self.description} wrote nothing for {IDLE_TIMEOUT:g}s") from exc

    async def write(self, data: bytes) -> None:
        """Into stdin."""
        assert self.proc.stdin is not None, "started without stdin"
        try:
            self.proc.stdin.write(data)
            await asyncio.wait_for(self.proc.stdin.drain(), IDLE_TIMEOUT)
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise AdapterError(f"{self.description} stopped reading its input") from exc
        except TimeoutError as exc:
            raise AdapterTimeout(f"{self.description} took no input for {IDLE_TIMEOUT:g}s") from exc

    async def close_stdin(self) -> None:
        """EOF on stdin."""
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.close()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                await self.proc.stdin.wait_closed()

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
        """SIGKILL if still running."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()
        self._stderr_task.cancel()


@asynccontextmanager
async def host_process(argv: list[str], *, stdin: bool = False) -> AsyncIterator[HostProcess]:
    """Start ``argv`` on the bot's host (no shell); killed if still running when the block exits."""
    if isinstance(argv, str) or not argv or not all(isinstance(a, str) for a in argv):
        raise AdapterError("a command is a non-empty list of arguments (argv), never a shell string")
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=CHUNK,
        )
    except FileNotFoundError as exc:
        raise AdapterError(f"{argv[0]} is not installed on the bot's host") from exc
    except OSError as exc:
        raise AdapterError(f"cannot start {argv[0]} on the bot's host: {exc.strerror or exc}") from exc
    process = HostProcess(proc, argv)
    try:
        yield process
    finally:
        await asyncio.shield(process.kill())
