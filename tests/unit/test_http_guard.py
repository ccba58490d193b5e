"""The connection guard in front of a real aiohttp server on loopback: the cap, eviction, refusal, timeouts."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from aiohttp import web

from bot.slack.guard import IN_FLIGHT, ConnectionGuard, connection_limit, middleware
from bot.slack.listener import Listener


class Served:
    """An aiohttp app behind a ConnectionGuard; ``/hold`` answers only when ``release`` is set."""

    def __init__(self, limit: int, read_timeout: float) -> None:
        self.release = asyncio.Event()
        self.closed: list[str] = []
        self.guard = ConnectionGuard(
            lambda: self.runner.server(), limit=limit, read_timeout=read_timeout, on_close=self.closed.append
        )
        app = web.Application(middlewares=[middleware(self.guard)])
        app.router.add_get("/hold", self.hold)
        app.router.add_get("/", self.hello)
        self.runner = web.AppRunner(app, access_log=None)

    async def hold(self, request: web.Request) -> web.Response:
        await self.release.wait()
        return web.Response(text="released")

    async def hello(self, request: web.Request) -> web.Response:
        return web.Response(text="hello")

    async def __aenter__(self) -> Served:
        await self.runner.setup()
        self.listener = Listener(self.guard)
        await self.listener.start("127.0.0.1", 0)
        self.port = self.listener.port
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release.set()
        await self.listener.close()
        await self.runner.cleanup()

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)


async def get(served: Served, path: str) -> bytes:
    reader, writer = await served.connect()
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    try:
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


async def closed_by_server(reader: asyncio.StreamReader, timeout: float = 10) -> bool:
    with contextlib.suppress(ConnectionResetError):
        return await asyncio.wait_for(reader.read(), timeout) == b""
    return True


async def wait_until(check, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)


async def test_the_oldest_idle_connection_makes_room_for_a_new_one():
    async with Served(limit=3, read_timeout=30) as served:
        idle = [await served.connect() for _ in range(3)]
        await wait_until(lambda: len(served.guard) == 3)
        assert (await get(served, "/")).endswith(b"hello")  # the fourth gets served...
        assert await closed_by_server(idle[0][0])  # ...and the oldest idle one made room
        assert served.closed == ["evicted"]
        for _, writer in idle:
            writer.close()


async def test_connections_busy_with_a_request_are_never_evicted():
    async with Served(limit=2, read_timeout=30) as served:
        holding = [asyncio.create_task(get(served, "/hold")) for _ in range(2)]
        await wait_until(lambda: len(served.guard) == 2 and served.guard.idle == 0)
        reader, writer = await served.connect()  # every connection is busy: this one is refused
        assert await closed_by_server(reader)
        assert served.closed == ["refused"]
        served.release.set()
        assert all(answer.endswith(b"released") for answer in await asyncio.gather(*holding))
        writer.close()


async def test_a_request_head_not_sent_in_time_is_cut_and_an_idle_one_too():
    async with Served(limit=10, read_timeout=0.3) as served:
        slow_reader, slow_writer = await served.connect()
        slow_writer.write(b"GET / HTTP/1.1\r\nHost: ")  # and never more
        idle_reader, _ = await served.connect()  # says nothing at all
        assert await closed_by_server(slow_reader) and await closed_by_server(idle_reader)
        assert sorted(served.closed) == ["idle", "slow"]
        assert len(served.guard) == 0


async def test_a_kept_alive_connection_gets_the_read_timeout_again_after_each_answer():
    async with Served(limit=10, read_timeout=0.5) as served:
        reader, writer = await served.connect()
        for _ in range(3):
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"hello"), 10)
            assert head.startswith(b"HTTP/1.1 200")
        assert await closed_by_server(reader)  # then idle: closed after the timeout
        assert served.closed == ["idle"]
        writer.close()


@pytest.mark.parametrize(("soft", "connections"), [(1024, 512), (256, 160), (20000, 512), (128, 32)])
def test_the_cap_leaves_room_for_the_bots_own_files(monkeypatch, soft, connections):
    import resource

    monkeypatch.setattr(resource, "getrlimit", lambda _: (soft, soft))
    assert connection_limit(512) == connections
    assert connections + IN_FLIGHT <= soft - max(64, soft // 4)
