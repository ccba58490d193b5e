"""Socket Mode: the door's Bolt app on Slack's WebSocket, so that no public URL is needed.

A watchdog keeps the connection honest: every message the socket receives (events, ``hello``, the
answers to the client's pings) is heard by ``SlackLiveness``; a socket silent for longer than it should
be is closed and opened again (``SocketWatchdog``), and ``/health`` says when Slack cannot be reached.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

from bot.core.tasks import stop_task
from bot.slack.door import SlackDoor
from bot.slack.liveness import SlackLiveness

log = logging.getLogger("opsbot.socket")
#: how often the watchdog looks
WATCH_EVERY = 2.0


class SocketConnection:
    """An open Socket Mode connection of a door, watched."""

    def __init__(self, handler: AsyncSocketModeHandler, liveness: SlackLiveness | None = None) -> None:
        self._handler = handler
        self.liveness = liveness
        self._watch: asyncio.Task[None] | None = None
        if liveness is not None:
            self._watch = asyncio.create_task(self._watchdog(liveness), name="socket-watchdog")

    async def _watchdog(self, liveness: SlackLiveness) -> None:
        client: Any = self._handler.client
        while True:
            await asyncio.sleep(WATCH_EVERY)
            pong = getattr(client, "last_ping_pong_time", None)
            if isinstance(pong, float):
                liveness.heard(pong)
            if not liveness.silent():
                continue
            liveness.reconnects += 1
            log.warning("nothing from Slack's Socket Mode for %.0f s: reconnecting (reconnect %d)",
                        liveness.seconds_since_last_event(), liveness.reconnects)  # fmt: skip
            try:
                async with asyncio.timeout(liveness.silent_after):  # (wait_for could lose a cancel on 3.11)
                    await client.connect_to_new_endpoint(force=True)
            except Exception as exc:  # Slack may be unreachable: /health says so; try again later
                log.error("reconnecting to Slack's Socket Mode failed: %s", type(exc).__name__)

    async def close(self) -> None:
        """Close the connection (nothing more is received)."""
        if self._watch is not None:
            await stop_task(self._watch, "the Socket Mode watchdog")
        await self._handler.close_async()  # type: ignore[no-untyped-call]


async def connect_socket_mode(
    door: SlackDoor, app_token: str, liveness: SlackLiveness | None = None
) -> SocketConnection:
    """Connect ``door``'s Bolt app to Slack in Socket Mode with the app-level token (``xapp-``)."""
    handler = AsyncSocketModeHandler(door.bolt, app_token, web_client=door.client)
    if liveness is not None:

        async def heard(message: Any) -> None:
            liveness.heard()

        handler.client.on_message_listeners.append(heard)
    await handler.connect_async()  # type: ignore[no-untyped-call]
    return SocketConnection(handler, liveness)
