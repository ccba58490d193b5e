"""The listening socket of ``opsbot serve``, accepting a few connections at a time.

asyncio's own server (``loop.create_server``) accepts up to a backlog's worth of connections in one
go, and the protocols see them a few turns of the loop later: under a flood, hundreds of file
descriptors exist before the connection guard can close any, and ``accept()`` fails with EMFILE for
everyone (the bot's own outgoing calls too). Accepting at most ``BATCH`` at once, all handed to the
guard before the next are taken, keeps the open connections within the guard's limit; connections
waiting to be accepted wait in the kernel's queue (``backlog``), which costs no file descriptor.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import Callable

from bot.core.logs import Throttled

log = logging.getLogger("opsbot.http")

#: accept() errors that mean "out of resources for now": wait a moment and try again
_TRANSIENT = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.ECONNABORTED, errno.EPROTO}
RETRY_SECONDS = 0.1
#: connections accepted in one go at most (``bot.slack.guard.IN_FLIGHT`` leaves room for them)
BATCH = 16


class Listener:
    """Accepts connections on ``host:port`` and gives each to ``factory``'s protocol."""

    def __init__(self, factory: Callable[[], asyncio.Protocol], *, backlog: int = 128) -> None:
        self.factory = factory
        self.backlog = backlog
        self._sock: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None
        self._told = Throttled(
            log,
            lambda why: f"could not accept an HTTP connection: {why}; retrying every {RETRY_SECONDS:g} s",
            lambda total, parts, seconds: f"could not accept {total:,} times in the last {seconds:g} s: {parts}",
        )

    @property
    def port(self) -> int:
        """The port listened on (useful when asked for port 0)."""
        assert self._sock is not None
        return int(self._sock.getsockname()[1])

    async def start(self, host: str, port: int) -> None:
        """Bind, listen, and start accepting."""
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(self.backlog)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self._task = asyncio.create_task(self._accept_forever(sock), name="http-accept")

    async def close(self) -> None:
        """Stop accepting and close the listening socket (the connections are the server's to close)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._sock is not None:
            self._sock.close()
        self._told.close()

    async def _accept_forever(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                first, _ = await loop.sock_accept(sock)
            except OSError as exc:
                await self._failed(exc)
                continue
            # what else is waiting, up to BATCH, handed over together (one turn of the loop for all)
            batch = [first]
            while len(batch) < BATCH:
                try:
                    conn, _ = sock.accept()
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as exc:
                    await self._failed(exc)
                    break
                conn.setblocking(False)
                batch.append(conn)
            await asyncio.gather(*(self._hand_over(conn) for conn in batch))

    async def _hand_over(self, conn: socket.socket) -> None:
        try:
            await asyncio.get_running_loop().connect_accepted_socket(self.factory, conn)
        except OSError:  # the client left already
            conn.close()

    async def _failed(self, exc: OSError) -> None:
        if exc.errno in _TRANSIENT:
            self._told.note(exc.strerror or str(exc))
            await asyncio.sleep(RETRY_SECONDS)
        else:  # not seen so far; said, and tried again rather than never accepting again
            log.error("accept() on the HTTP port failed: %s", exc)
            await asyncio.sleep(1)
