"""A slow-client flood on loopback: many connections that send a request a byte now and then.

Each client opens a TCP connection, sends the start of a request (``head``: the request line and then
one header byte at a time; ``body``: complete headers announcing a body, then one body byte at a
time) and keeps trickling until the server closes the connection; with ``reconnect`` it then opens a
new one, as an attacker would. Bounded: ``count`` clients, for as long as the ``async with`` lasts.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field


@dataclass
class Closed:
    """One connection the server closed: after how long, and what it answered first (if anything)."""

    seconds: float
    answer: bytes


@dataclass
class SlowClients:
    """``count`` slow clients against ``host:port`` (loopback only)."""

    host: str
    port: int
    count: int
    kind: str = "head"
    interval: float = 0.5
    reconnect: bool = False
    path: str = "/slack/events"
    #: connections made so far
    opened: int = 0
    #: connections the server closed (whatever it answered first)
    closed: list[Closed] = field(default_factory=list)
    #: connect attempts the server did not accept (refused, reset, timed out)
    failed: int = 0
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _stop: bool = False

    async def __aenter__(self) -> SlowClients:
        assert self.host in ("127.0.0.1", "::1", "localhost"), "loopback only"
        self._tasks = [asyncio.create_task(self._client()) for _ in range(self.count)]
        return self

    async def __aexit__(self, *exc: object) -> None:
        # a flag as well as cancel(): on Python 3.11 asyncio.wait_for can swallow a cancellation
        self._stop = True
        while pending := [task for task in self._tasks if not task.done()]:
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=1)
        for task in self._tasks:
            if not task.cancelled() and (error := task.exception()) is not None:
                raise error

    @property
    def open_now(self) -> int:
        """Connections made and not closed by the server yet."""
        return self.opened - len(self.closed)

    def _start(self) -> bytes:
        head = f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        if self.kind == "body":
            return (head + "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\n").encode()
        return head.encode()

    async def _client(self) -> None:
        while not self._stop:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), 10)
            except (OSError, TimeoutError):
                self.failed += 1
                await asyncio.sleep(self.interval)
                continue
            self.opened += 1
            start = time.monotonic()
            answer = await self._trickle(reader, writer)
            self.closed.append(Closed(time.monotonic() - start, answer))
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            if not self.reconnect:
                return
            await asyncio.sleep(self.interval)

    async def _trickle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
        """Send a byte now and then until the server closes; returns what it answered."""
        try:
            writer.write(self._start())
            while not self._stop:
                writer.write(b"x")
                await writer.drain()
                try:
                    data = await asyncio.wait_for(reader.read(65536), self.interval)
                except TimeoutError:
                    continue
                if not data:
                    return b""
                return data + await _rest(reader)
        except OSError:
            return b""
        return b""


async def _rest(reader: asyncio.StreamReader) -> bytes:
    try:
        return await asyncio.wait_for(reader.read(), 5)
    except (OSError, TimeoutError):
        return b""
