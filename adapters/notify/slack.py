"""``SlackNotifier``: alerts through Slack's Web API (chat.postMessage, chat.update), on httpx.

The body is ``{"method": "chat.postMessage", "args": {...}}``. A 429 is a ``DeliveryError`` with the
Retry-After Slack sent; a 5xx, a timeout or a refused connection is worth trying again; an API error
that will not change by itself (``channel_not_found``, ``invalid_auth``, ``invalid_blocks``...) is
permanent. ``message_not_found`` on an edit is answered as done (``{"gone": true}``): the message was
deleted in Slack, there is nothing left to edit.

A post whose body carries ``"find": {"oldest": <unix time>}`` may already have landed unheard (an
earlier attempt timed out, or the bot died before marking it sent): it is first looked for by its
delivery id (``metadata.event_payload.delivery_id``) in the channel (``conversations.history``) or its
thread (``conversations.replies``), newer than ``oldest``; found, its ``ts`` is the answer and nothing
is posted. A lookup Slack refuses (a missing ``channels:history``/``groups:history`` scope,
``not_in_channel``, a rate limit, an outage) posts anyway: a duplicate beats a lost alert; each reason
is logged once per process.
"""

from __future__ import annotations

import logging
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
#: messages per page of a lookup, and pages read at most (a post is looked for among the newest ones)
LOOKUP_LIMIT = 200
LOOKUP_PAGES = 3
#: what to do about a lookup Slack refuses
HINTS = {"missing_scope": " (add the channels:history and groups:history scopes, as in app-manifest.yml, and "
                          "reinstall the app)",
         "not_in_channel": " (invite the bot to the alert channel)"}  # fmt: skip
log = logging.getLogger("opsbot.alerts")


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
        #: lookup failures already logged (one warning per reason per process)
        self._told: set[str] = set()

    async def send(self, out: Outgoing) -> dict[str, Any]:
        """Call the method (a post that may have landed is looked for first); Slack's answer (``ts``, ``channel``)."""
        method, args = str(out.body.get("method")), dict(out.body.get("args") or {})
        if method not in METHODS:
            raise DeliveryError(f"not a Slack method for alerts: {method!r}", permanent=True, code="bad_method")
        find = out.body.get("find")
        if method == "chat.postMessage" and isinstance(find, dict):
            found = await self._find(out.delivery_id, args, float(find.get("oldest") or 0))
            if found is not None:
                return found
        answer = await self._call(method, json=args)
        if answer.get("gone"):
            return {"gone": True}
        return {"ts": answer.get("ts"), "channel": answer.get("channel")}

    async def _find(self, delivery_id: str, args: dict[str, Any], oldest: float) -> dict[str, Any] | None:
        """The post of ``delivery_id`` if it is in its channel (or thread) already; None if not, or not known."""
        channel, thread = str(args.get("channel") or ""), args.get("thread_ts")
        method = "conversations.replies" if thread else "conversations.history"
        form: dict[str, Any] = {"channel": channel, "oldest": f"{max(0.0, oldest):.6f}", "limit": str(LOOKUP_LIMIT),
                                "include_all_metadata": "true"}  # fmt: skip
        if thread:
            form["ts"] = str(thread)
        for _ in range(LOOKUP_PAGES):
            try:
                answer = await self._call(method, data=form)
            except DeliveryError as exc:
                if exc.code not in self._told:
                    self._told.add(exc.code)
                    log.warning("cannot look in Slack for an alert that may already be posted: %s%s; posting it "
                                "again (a duplicate rather than a lost alert; said once per reason)", exc,
                                HINTS.get(exc.code, ""))  # fmt: skip
                return None
            for message in answer.get("messages") or []:
                meta = message.get("metadata") if isinstance(message, dict) else None
                payload = meta.get("event_payload") if isinstance(meta, dict) else None
                if isinstance(payload, dict) and payload.get("delivery_id") == delivery_id and message.get("ts"):
                    log.info("alert delivery %s was already posted (ts %s): not posted again", delivery_id,
                             message["ts"])  # fmt: skip
                    return {"ts": str(message["ts"]), "channel": channel, "found": True}
            cursor = (answer.get("response_metadata") or {}).get("next_cursor")
            if not answer.get("has_more") or not cursor:
                return None
            form["cursor"] = str(cursor)
        return None

    async def _call(self, method: str, *, json: dict[str, Any] | None = None,
                    data: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
        """One Web API call (a JSON body, or a form: Slack's read methods take no JSON); its ``ok`` answer."""
        try:
            response = await self._client.post(self.base_url + method, json=json, data=data)
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
            return answer
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
