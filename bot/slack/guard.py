"""Limits on the HTTP server's connections: how many stay open, and how long each may take to send a request.

aiohttp alone keeps a connection that trickles in a request's headers for as long as the client likes,
and accepts connections until the process runs out of file descriptors (then ``accept()`` fails and
nobody is served, ``/health`` included). ``ConnectionGuard`` sits between the listening socket and
aiohttp's protocol (``bot.slack.listener`` accepts the connections one at a time and hands each to it):

- a connection must deliver a complete request head within ``read_timeout`` seconds of opening, and
  of its previous response (the same bound is the keep-alive idle time); the body is bounded by the
  route (``Server.slack_events`` reads it within the same time);
- at most ``limit`` connections are open; a new one beyond it takes the place of the oldest idle one
  (still sending its head, or between requests). Only when every open connection is busy with a
  complete request is the new one refused. Slack sends a request whole, so its connections are busy
  for milliseconds; slow or idle ones cannot crowd it out.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from bot.core.logs import Throttled

log = logging.getLogger("opsbot.http")

#: file descriptors kept for the bot's own needs (database, Docker, Slack, health checks, S3)
MIN_RESERVE = 64
#: connections accepted and not seen by the guard yet (``listener.BATCH``), and as many closing
IN_FLIGHT = 32


def connection_limit(wanted: int) -> int:
    """``wanted``, lowered to fit the open-file limit with room for the bot's own calls.

    A quarter of the limit (at least 64) is kept for the database, Docker, Slack, health checks and
    S3, and a few for connections being closed; the connections get what is left, at most ``wanted``.
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - max(MIN_RESERVE, soft // 4) - IN_FLIGHT))


@dataclass(eq=False)
class _Conn:
    transport: asyncio.Transport
    busy: int = 0
    #: bytes arrived since the last complete request head (a request is being sent)
    sending: bool = False
    timer: asyncio.TimerHandle | None = None


class ConnectionGuard:
    """A protocol factory for ``loop.create_server`` wrapping aiohttp's, with the limits above."""

    def __init__(
        self,
        factory: Callable[[], asyncio.Protocol],
        *,
        limit: int,
        read_timeout: float,
        on_close: Callable[[str], None],
        summary_interval: float = 60.0,
    ) -> None:
        self._factory = factory
        self.limit = limit
        self.read_timeout = read_timeout
        self._on_close = on_close
        self._conns: dict[asyncio.BaseTransport, _Conn] = {}
        #: the connections not busy with a request, oldest first (the first to make room)
        self._idle: dict[asyncio.BaseTransport, _Conn] = {}
        self._told = Throttled(
            log,
            lambda why: f"closed an HTTP connection: {why} (limits: {limit} connections, {read_timeout:g} s to send "
            "a request; more are counted in opsbot_http_connections_closed_total and summed up here every "
            f"{summary_interval:g} s)",
            lambda total, parts, seconds: f"closed {total:,} HTTP connections in the last {seconds:g} s: {parts}",
            summary_interval,
        )

    def __call__(self) -> asyncio.Protocol:
        """A protocol for one new connection."""
        return _Guarded(self, self._factory())

    def __len__(self) -> int:
        return len(self._conns)

    @property
    def idle(self) -> int:
        """Open connections not busy with a request (sending a head, or between requests)."""
        return len(self._idle)

    # ---------------------------------------------------------------- the connection's life

    def opened(self, transport: asyncio.Transport) -> bool:
        """Admit a new connection (making room if need be); False when it must be refused."""
        if len(self._conns) >= self.limit:
            if not self._idle:
                self._count("refused")
                return False
            self.close(next(iter(self._idle.values())), "evicted")
        conn = _Conn(transport)
        self._conns[transport] = conn
        self._idle[transport] = conn
        self._arm(conn)
        return True

    def received(self, transport: asyncio.BaseTransport) -> None:
        """Bytes arrived on a connection."""
        conn = self._conns.get(transport)
        if conn is not None and not conn.busy:
            conn.sending = True

    def lost(self, transport: asyncio.BaseTransport) -> None:
        """The connection is gone (whoever closed it)."""
        conn = self._conns.pop(transport, None)
        if conn is not None:
            self._idle.pop(transport, None)
            if conn.timer is not None:
                conn.timer.cancel()

    def begin(self, transport: asyncio.BaseTransport | None) -> None:
        """A complete request head arrived: the connection is busy until ``end``."""
        conn = self._conns.get(transport) if transport is not None else None
        if conn is None:
            return
        conn.busy += 1
        conn.sending = False
        self._idle.pop(conn.transport, None)
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None

    def end(self, transport: asyncio.BaseTransport | None) -> None:
        """The request was answered: the connection has ``read_timeout`` to send the next one."""
        conn = self._conns.get(transport) if transport is not None else None
        if conn is None:
            return
        conn.busy -= 1
        if not conn.busy:
            self._idle[conn.transport] = conn
            self._arm(conn)

    def close(self, conn: _Conn, reason: str) -> None:
        """Close ``conn`` now (nothing it was sent is worth waiting for) and count why."""
        self.lost(conn.transport)
        conn.transport.abort()
        self._count(reason)

    def _arm(self, conn: _Conn) -> None:
        loop = asyncio.get_running_loop()
        conn.timer = loop.call_later(self.read_timeout, self._expire, conn)

    def _expire(self, conn: _Conn) -> None:
        conn.timer = None
        if conn.busy or self._conns.get(conn.transport) is not conn:
            return
        self.close(conn, "slow" if conn.sending else "idle")

    # ---------------------------------------------------------------- counting and telling

    def _count(self, reason: str) -> None:
        self._on_close(reason)
        if reason != "idle":  # closing an idle keep-alive connection is routine, not worth a line
            self._told.note(_WHY[reason])

    def close_log(self) -> None:
        """Log what is still counted (shutting down)."""
        self._told.close()


_WHY = {
    "slow": "did not send a complete request in time",
    "evicted": "closed to make room for a new one",
    "refused": "refused at the limit, every connection busy",
}


def middleware(guard: ConnectionGuard) -> Callable[..., Awaitable[web.StreamResponse]]:
    """An aiohttp middleware telling ``guard`` when a connection is busy with a request."""

    @web.middleware
    async def busy(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        transport = request.transport
        guard.begin(transport)
        try:
            return await handler(request)
        finally:
            guard.end(transport)

    return busy


class _Guarded(asyncio.Protocol):
    """aiohttp's protocol for one connection, with the guard told of its life."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self._guard = guard
        self._inner = inner
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        if not self._guard.opened(transport):
            transport.abort()
            return
        self._transport = transport
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._transport is None:
            return
        self._guard.received(self._transport)
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._transport is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is None:
            return
        self._guard.lost(self._transport)
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._transport is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._transport is not None:
            self._inner.resume_writing()
