"""A command in a container as a ``ProcessStream``: the Docker exec attach socket, both ways.

``exec_create`` with stdin/stdout/stderr attached, then ``POST /exec/{id}/start`` upgraded to a raw
connection (as ``docker exec -i`` does). A reader thread splits the engine's multiplexed frames:
stdout goes to a small bounded queue (the thread waits when it is full, so memory stays bounded),
stderr into a tail. Writes go to the socket from worker threads; closing stdin is a half-close of
the connection, which the engine passes on as end of file. The exit code comes from
``exec_inspect`` once the stream ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from adapters.docker.io import frames
from adapters.errors import AdapterError, AdapterTimeout
from adapters.procstream import IDLE_TIMEOUT, StderrTail

#: stdout chunks waiting for the reader of the stream (each at most 64 KiB)
QUEUE_CHUNKS = 32


class DockerExecStream:
    """A ``ProcessStream`` over an exec's hijacked connection."""

    def __init__(self, api: Any, exec_id: str, response: Any, description: str) -> None:
        self.api, self.exec_id, self.description = api, exec_id, description
        self._response = response
        self._fp = response.raw._fp.fp  # the buffered reader over the raw connection (may hold early bytes)
        raw = self._fp.raw
        self._sock: socket.socket = getattr(raw, "_sock", raw)
        self._sock.settimeout(IDLE_TIMEOUT)
        self._tail = StderrTail()
        self._queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(QUEUE_CHUNKS)
        self._stop = threading.Event()
        self._loop = asyncio.get_running_loop()
        self._ended = False
        self._thread = threading.Thread(target=self._reader, name="opsbot-exec-stream", daemon=True)
        self._thread.start()

    def _put(self, item: bytes | BaseException | None) -> None:
        future = asyncio.run_coroutine_threadsafe(self._queue.put(item), self._loop)
        while not self._stop.is_set():
            try:
                future.result(timeout=0.5)
                return
            except TimeoutError:
                continue
        future.cancel()

    def _reader(self) -> None:
        try:
            for stream, payload in frames(self._fp, tty=False, stop=self._stop):
                if stream == 2:
                    self._tail.feed(payload)
                elif payload:
                    self._put(payload)
            self._put(None)
        except TimeoutError:
            self._put(AdapterTimeout(f"{self.description} wrote nothing for {IDLE_TIMEOUT:g}s"))
        except Exception as exc:
            if not self._stop.is_set():
                self._put(AdapterError(f"the stream of {self.description} broke: {exc}"))

    async def read(self) -> bytes:
        """Next stdout chunk; ``b""`` at the end (for every reader, also one already waiting)."""
        if self._ended:
            return b""
        item = await self._queue.get()
        if item is None or isinstance(item, BaseException):
            self._ended = True
            self._queue.put_nowait(item)  # the end stays in the queue: a concurrent reader sees it too
            if item is not None:
                raise item
            return b""
        return item

    async def write(self, data: bytes) -> None:
        """Into the process's stdin."""
        try:
            await asyncio.to_thread(self._sock.sendall, data)
        except TimeoutError as exc:
            raise AdapterTimeout(f"{self.description} took no input for {IDLE_TIMEOUT:g}s") from exc
        except OSError as exc:
            raise AdapterError(f"{self.description} stopped reading its input ({exc.strerror or exc})") from exc

    async def close_stdin(self) -> None:
        """Half-close: the process reads end of file."""
        with contextlib.suppress(OSError):
            await asyncio.to_thread(self._sock.shutdown, socket.SHUT_WR)

    async def wait(self) -> int:
        """Drain stdout to its end, then the exit code the engine recorded."""
        while await self.read():
            pass

        def inspect() -> int:
            state = self.api.exec_inspect(self.exec_id)
            for _ in range(40):  # the engine may need a moment to record the exit code
                if not state.get("Running"):
                    break
                time.sleep(0.05)
                state = self.api.exec_inspect(self.exec_id)
            code = state.get("ExitCode")
            return -1 if code is None else int(code)

        return await asyncio.to_thread(inspect)

    def stderr(self) -> str:
        """The tail of stderr."""
        return self._tail.text()

    async def kill(self) -> None:
        """Close the connection (the engine cannot kill an exec: the process gets a broken pipe)."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(Exception):
            self._response.close()
        await asyncio.to_thread(self._thread.join, 5.0)


class DockerStreams:
    """``exec_stream`` for both runtimes; each says which container runs a service's commands."""

    if TYPE_CHECKING:
        description: str

        def _api(self) -> Any: ...
        async def _call(self, fn: Any, *, timeout: float | None = None, what: str = "") -> Any: ...

    async def _exec_target(self, service: str) -> dict[str, Any]:
        """The inspect data of the container that runs ``service``'s commands."""
        raise NotImplementedError

    @asynccontextmanager
    async def exec_stream(
        self, service: str, argv: list[str], *, stdin: bool = False
    ) -> AsyncIterator[DockerExecStream]:
        """``argv`` (never a shell) in the service's first running container, streamed both ways."""
        if isinstance(argv, str) or not argv or not all(isinstance(a, str) for a in argv):
            raise AdapterError("exec takes a non-empty list of arguments (argv), never a shell string")
        container = await self._exec_target(service)

        def start() -> tuple[Any, str, Any]:
            api = self._api()
            exec_id = api.exec_create(container["Id"], argv, stdin=stdin, stdout=True, stderr=True)["Id"]
            response = api._post_json(  # the SDK's own hijack, keeping the response (and its buffer)
                api._url("/exec/{0}/start", exec_id), headers={"Connection": "Upgrade", "Upgrade": "tcp"},
                data={"Tty": False, "Detach": False}, stream=True,
            )  # fmt: skip
            api._raise_for_status(response)
            return api, exec_id, response

        api, exec_id, response = await self._call(start, what=f" (exec {argv[0]} in {service})")
        stream = DockerExecStream(api, exec_id, response, f"{argv[0]} in service {service}")
        try:
            yield stream
        finally:
            await asyncio.shield(stream.kill())
