"""Socket Mode: the door's Bolt app on Slack's WebSocket, so that no public URL is needed."""

from __future__ import annotations

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

from bot.slack.door import SlackDoor


class SocketConnection:
    """An open Socket Mode connection of a door."""

    def __init__(self, handler: AsyncSocketModeHandler) -> None:
        self._handler = handler

    async def close(self) -> None:
        """Close the connection (nothing more is received)."""
        await self._handler.close_async()  # type: ignore[no-untyped-call]


async def connect_socket_mode(door: SlackDoor, app_token: str) -> SocketConnection:
    """Connect ``door``'s Bolt app to Slack in Socket Mode with the app-level token (``xapp-``)."""
    handler = AsyncSocketModeHandler(door.bolt, app_token, web_client=door.client)
    await handler.connect_async()  # type: ignore[no-untyped-call]
    return SocketConnection(handler)
