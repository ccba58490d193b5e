"""The two peers of ``bench/ack_latency.py``, each a process of its own on 127.0.0.1:PORT.

- ``bolt``: a plain Bolt ``AsyncApp`` on aiohttp (Bolt's own ``web_app()``), whose ``/ops`` listener
  only calls ``ack()``; authorization returns the bot's identity without a network call.
- ``bare``: aiohttp alone: checks the ``v0`` signature and the timestamp window, answers 200.

    python bench/ack_peers.py bolt|bare PORT SIGNING_SECRET

Prints ``ready`` once listening; runs until SIGTERM.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import signal
import sys
import time
from typing import Any

from aiohttp import web


def bare_app(secret: str) -> web.Application:
    """aiohttp and the v0 signature check (timestamp within 5 minutes, HMAC-SHA256), answering 200."""
    key = secret.encode()

    async def events(request: web.Request) -> web.Response:
        body = await request.read()
        ts = request.headers.get("X-Slack-Request-Timestamp", "")
        signature = request.headers.get("X-Slack-Signature", "")
        if not ts.isdigit() or abs(time.time() - int(ts)) > 300:
            return web.Response(status=401)
        expected = "v0=" + hmac.new(key, b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            return web.Response(status=401)
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/slack/events", events)
    return app


def bolt_app(secret: str) -> web.Application:
    """A plain Bolt app whose ``/ops`` listener only acknowledges."""
    from slack_bolt.async_app import AsyncApp
    from slack_bolt.authorization import AuthorizeResult

    async def authorize(**_: Any) -> AuthorizeResult:
        return AuthorizeResult(
            enterprise_id=None, team_id="T0BENCH", bot_token="xoxb-bench", bot_user_id="U0BOT", bot_id="B0BOT"
        )

    app = AsyncApp(signing_secret=secret, authorize=authorize)

    @app.command("/ops")
    async def ops(ack: Any) -> None:
        await ack()

    return app.web_app()


async def main(kind: str, port: int, secret: str) -> None:
    """Serve ``kind`` until SIGTERM."""
    web_app = bolt_app(secret) if kind == "bolt" else bare_app(secret)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
