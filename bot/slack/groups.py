"""User groups (``S...``) resolved with ``usergroups.users.list``, cached with a time limit."""

from __future__ import annotations

import asyncio
import time

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.errors import AdapterError

TTL_SECONDS = 300.0
TIMEOUT_SECONDS = 2.0


class SlackGroupResolver:
    """Members of user groups, cached for ``ttl`` seconds; failures are ``AdapterError``, never a yes."""

    def __init__(self, client: AsyncWebClient, ttl: float = TTL_SECONDS) -> None:
        self.client = client
        self.ttl = ttl
        self._cache: dict[str, tuple[float, set[str]]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def members(self, group_id: str) -> set[str]:
        """The user ids in ``group_id``."""
        cached = self._cache.get(group_id)
        if cached and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        lock = self._locks.setdefault(group_id, asyncio.Lock())
        async with lock:
            cached = self._cache.get(group_id)
            if cached and time.monotonic() - cached[0] < self.ttl:
                return cached[1]
            try:
                async with asyncio.timeout(TIMEOUT_SECONDS):
                    response = await self.client.usergroups_users_list(usergroup=group_id)
            except SlackApiError as exc:
                error = exc.response.get("error") if exc.response is not None else "error"
                raise AdapterError(f"Slack did not list user group {group_id}: {error}") from exc
            except (TimeoutError, OSError) as exc:
                raise AdapterError(f"Slack did not answer for user group {group_id}") from exc
            users = {str(u) for u in response.get("users") or []}
            self._cache[group_id] = (time.monotonic(), users)
            return users
