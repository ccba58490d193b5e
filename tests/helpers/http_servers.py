"""Real HTTP servers on loopback for probe tests: healthy, failing, slow, hanging, odd."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web


def free_port() -> int:
    """A TCP port nothing listens on (bound and released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: app keys of the /gate route: set GATE_OPEN to let its requests through; GATE_ENTERED is set when one waits
GATE_OPEN = web.AppKey("gate_open", asyncio.Event)
GATE_ENTERED = web.AppKey("gate_entered", asyncio.Event)
#: app key of the /together route: the most requests it held at one time
TOGETHER_MOST = web.AppKey("together_most", list)


def health_app(*, delay: float = 0.0) -> web.Application:
    """An app with the routes the probe tests need; ``delay`` slows every /health answer.

    ``/gate`` holds each request until the test sets ``app[GATE_OPEN]`` (a check that takes as long as
    the test wants, no longer), then answers 503 ``{"status": "down"}``. ``/together?n=N`` answers no
    request until N of them are waiting at once (a barrier): checks made one after another never pass.
    """
    app = web.Application()
    hits: dict[str, int] = {}
    app[GATE_OPEN] = asyncio.Event()
    app[GATE_ENTERED] = asyncio.Event()
    app[TOGETHER_MOST] = [0]
    waiting = [0]
    arrived = asyncio.Condition()

    async def ok(request: web.Request) -> web.Response:
        hits[request.path] = hits.get(request.path, 0) + 1
        if delay:
            await asyncio.sleep(delay)  # timing: a peer that answers slowly
        return web.json_response({"status": "ok"})

    async def status_500(request: web.Request) -> web.Response:
        return web.json_response({"status": "down"}, status=500)

    async def wrong(request: web.Request) -> web.Response:
        return web.json_response({"status": "degraded", "db": "down"})

    async def not_json(request: web.Request) -> web.Response:
        return web.Response(text="<html>ok</html>", content_type="text/html")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("s", "0.3")))  # timing: a peer that answers slowly
        return web.json_response({"status": "ok"})

    async def gate(request: web.Request) -> web.Response:
        app[GATE_ENTERED].set()
        await app[GATE_OPEN].wait()
        return web.json_response({"status": "down"}, status=503)

    async def together(request: web.Request) -> web.Response:
        needed = int(request.query["n"])
        async with arrived:
            waiting[0] += 1
            app[TOGETHER_MOST][0] = max(app[TOGETHER_MOST][0], waiting[0])
            arrived.notify_all()
            await arrived.wait_for(lambda: app[TOGETHER_MOST][0] >= needed)
        return web.json_response({"status": "ok"})

    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(3600)  # timing: a peer that never answers
        return web.Response()

    async def slow_body(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(b'{"status":')
        await asyncio.sleep(3600)  # timing: a peer that stops half-way
        return response

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("/health")

    async def big(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        chunk = b"x" * 65536
        for _ in range(160):  # 10 MiB
            await response.write(chunk)
        return response

    for path in ("/health", "/health/db", "/health/cache"):
        app.router.add_get(path, ok)
    app.router.add_get("/500", status_500)
    app.router.add_get("/wrong", wrong)
    app.router.add_get("/html", not_json)
    app.router.add_get("/slow", slow)
    app.router.add_get("/hang", hang)
    app.router.add_get("/gate", gate)
    app.router.add_get("/together", together)
    app.router.add_get("/slow-body", slow_body)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/big", big)
    return app


@asynccontextmanager
async def serve(app: web.Application, port: int | None = None) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1; yields its base URL."""
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port or 0)
    await site.start()
    sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
    bound = sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{bound}"
    finally:
        await runner.cleanup()


class SwitchedHealth:
    """A /health endpoint a test turns bad (503 ``down``) and good (``ok``) again; counts its hits."""

    def __init__(self) -> None:
        self.ok = False
        self.hits = 0
        self.url = ""
        self.app = web.Application()
        self.app.router.add_get("/health", self.health)

    async def health(self, request: web.Request) -> web.Response:
        """The answer of now."""
        self.hits += 1
        if self.ok:
            return web.json_response({"status": "ok"})
        return web.json_response({"status": "down"}, status=503)
