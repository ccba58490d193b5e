"""``SlackNotifier``: alerts through Slack's Web API (chat.postMessage, chat.update), on httpx.

The body is ``{"method": "chat.postMessage", "args": {...}}``. A 429 is a ``DeliveryError`` with the
Retry-After Slack sent; a 5xx, a timeout or a refused connection is worth trying again; an API error
that will not change by itself (``channel_not_found``, ``invalid_auth``, ``invalid_blocks``...) is
permanent. ``message_not_found`` on an edit is answered as done (``{"gone": true}``): the message was
deleted in Slack, there is nothing left to edit.
"""

from __future__ import annotations

from typing import Any

import httpx

from adapters.notify.base import DeliveryError, Outgoing

#: API errors that retrying will not cure
PERMANENT = frozenset({
    "channel_not_found", "not_in_channel", "is_archived", "invalid_auth", "not_authed", "account_inactive",
    "token_revoked", "missing_scope", "invalid_blocks", "invalid_blocks_format", "msg_too_long", "no_text",
    "cant_update_message", "edit_window_closed", "restricted_action", "invalid_arguments",
})  # fmt: skip
METHODS = frozenset({"chat.postMessage", "chat.update"})


class SlackNotifier:
    """One bot token, one Web API base URL (``SLACK_API_URL``)."""

    name = "slack"

    def __init__(self, token: str, base_url: str = "https://slack.com/api/", *, timeout: float = 15.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:  # fmt: skip
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self._client = httpx.AsyncClient(
            transport=transport, timeout=timeout,
            headers={"Authorization": f"Bearer {token}", "User-Agent": "opsbot-alerts"},
        )  # fmt: skip

    async def send(self, out: Outgoing) -> dict[str, Any]:
        """Call the method; Slack's answer (``ts``, ``channel``)."""
        method, args = str(out.body.get("method")), dict(out.body.get("args") or {})
        if method not in METHODS:
            raise DeliveryError(f"not a Slack method for alerts: {method!r}", permanent=True, code="bad_method")
        try:
            response = await self._client.post(self.base_url + method, json=args)
        except httpx.TimeoutException as exc:
            raise DeliveryError(f"Slack {method} timed out", code="timeout") from exc
        except httpx.HTTPError as exc:
            raise DeliveryError(f"Slack cannot be reached ({type(exc).__name__})", code="unreachable") from exc
        if response.status_code == 429:
            wait = _seconds(response.headers.get("Retry-After"))
            raise DeliveryError(f"Slack rate limit on {method}: retry after {wait:g} s", retry_after=wait,
                                code="ratelimited")  # fmt: skip
        if response.status_code >= 500:
            raise DeliveryError(f"Slack answered HTTP {response.status_code} to {method}", code="http_5xx")
        try:
            answer = response.json()
        except ValueError as exc:
            raise DeliveryError(f"Slack answered HTTP {response.status_code} without JSON", code="bad_answer") from exc
        if not isinstance(answer, dict):
            raise DeliveryError("Slack answered JSON that is not an object", code="bad_answer")
        if answer.get("ok"):
            return {"ts": answer.get("ts"), "channel": answer.get("channel")}
        error = str(answer.get("error") or "unknown_error")
        if method == "chat.update" and error == "message_not_found":
            return {"gone": True}
        if error == "ratelimited":
            raise DeliveryError(f"Slack rate limit on {method}", retry_after=1.0, code=error)
        raise DeliveryError(f"Slack refused {method}: {error}", permanent=error in PERMANENT, code=error)

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()


def _seconds(value: str | None) -> float:
    try:
        return max(1.0, min(float(value or 1), 3600.0))
    except ValueError:
        return 1.0
