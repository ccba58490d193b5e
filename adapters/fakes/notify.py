"""Fake notifiers that answer as the real receivers do: Slack's Web API, PagerDuty's Events API v2, SMTP.

Held honest by ``tests/integration/test_notify_contract.py``, which runs the same cases against the
Slack stand-in, the PagerDuty stand-in and a real SMTP server (aiosmtpd).
"""

from __future__ import annotations

import itertools
from typing import Any

from adapters.notify.base import DeliveryError, Outgoing
from adapters.notify.pagerduty import ACTIONS
from adapters.notify.slack import METHODS, PERMANENT


class _Faults:
    """Failures queued by tests: each is raised once, in order."""

    def __init__(self) -> None:
        self.queue: list[DeliveryError] = []
        #: every delivery attempted (also the failed ones)
        self.attempts: list[Outgoing] = []

    def fail_next(self, error: DeliveryError, times: int = 1) -> None:
        """Raise ``error`` on the next ``times`` sends."""
        self.queue += [error] * times

    def _attempt(self, out: Outgoing) -> None:
        self.attempts.append(out)
        if self.queue:
            raise self.queue.pop(0)


class FakeSlackNotifier(_Faults):
    """Slack's chat.postMessage / chat.update: messages kept by (channel, ts), edits of unknown ones gone.

    A post with ``"find"`` that is already in its channel (or thread), by its delivery id in the
    metadata, is answered with that message's ts and not posted again, as ``SlackNotifier`` does.
    """

    name = "slack"

    def __init__(self) -> None:
        super().__init__()
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._ids = itertools.count(1)

    async def send(self, out: Outgoing) -> dict[str, Any]:
        """Post or edit, as Slack would answer."""
        self._attempt(out)
        method, args = str(out.body.get("method")), dict(out.body.get("args") or {})
        if method not in METHODS:
            raise DeliveryError(f"not a Slack method for alerts: {method!r}", permanent=True, code="bad_method")
        channel = str(args.get("channel") or "")
        if not channel:
            raise DeliveryError(f"Slack refused {method}: channel_not_found", permanent=True, code="channel_not_found")
        if not (args.get("text") or args.get("blocks")):
            raise DeliveryError(f"Slack refused {method}: no_text", permanent="no_text" in PERMANENT, code="no_text")
        find = out.body.get("find")
        if method == "chat.postMessage" and isinstance(find, dict):
            for (c, ts), message in self.messages.items():
                meta = message.get("metadata") or {}
                if (c == channel and message.get("thread_ts") == args.get("thread_ts")
                        and float(ts) > float(find.get("oldest") or 0)
                        and (meta.get("event_payload") or {}).get("delivery_id") == out.delivery_id):  # fmt: skip
                    return {"ts": ts, "channel": channel, "found": True}
        self.calls.append((method, args))
        if method == "chat.update":
            key = (channel, str(args.get("ts") or ""))
            if key not in self.messages:
                return {"gone": True}
            self.messages[key] = {**self.messages[key], **args}
            return {"ts": key[1], "channel": channel}
        ts = f"1700000000.{next(self._ids):06d}"
        self.messages[(channel, ts)] = dict(args)
        return {"ts": ts, "channel": channel}

    async def close(self) -> None:
        """Nothing to release."""


class FakePagerDuty(_Faults):
    """The Events API v2: checks the documented body, keeps the events and each dedup_key's state."""

    name = "pagerduty"

    def __init__(self, routing_key: str | None = "R0UTINGKEY0000000000000000000000") -> None:
        super().__init__()
        self.routing_key = routing_key
        self.events: list[dict[str, Any]] = []
        self.state: dict[str, str] = {}

    async def send(self, out: Outgoing) -> dict[str, Any]:
        """Enqueue the event as PagerDuty would (400 for a malformed one)."""
        self._attempt(out)
        if not self.routing_key:
            raise DeliveryError("PAGERDUTY_ROUTING_KEY is not set: PagerDuty needs its routing key", permanent=True,
                                code="no_routing_key")  # fmt: skip
        event = {"routing_key": self.routing_key, **out.body}
        problem = event_problem(event)
        if problem:
            raise DeliveryError(f"PagerDuty refused the event (HTTP 400: {problem})", permanent=True, code="http_400")
        self.events.append(event)
        self.state[event["dedup_key"]] = {"trigger": "triggered", "acknowledge": "acknowledged",
                                          "resolve": "resolved"}[event["event_action"]]  # fmt: skip
        return {"dedup_key": event["dedup_key"], "status": "success"}

    async def close(self) -> None:
        """Nothing to release."""


def event_problem(event: dict[str, Any]) -> str | None:
    """What is wrong with an Events API v2 event, as PagerDuty checks it (None when it is valid)."""
    if not isinstance(event.get("routing_key"), str) or len(event["routing_key"]) != 32:
        return "Invalid routing key"
    if event.get("event_action") not in ACTIONS:
        return "Event object is invalid: 'event_action' is invalid"
    if event["event_action"] != "trigger":
        return None if event.get("dedup_key") else "'dedup_key' is missing"
    payload = event.get("payload")
    if not isinstance(payload, dict):
        return "'payload' is missing"
    for key in ("summary", "source", "severity"):
        if not payload.get(key):
            return f"'payload.{key}' is missing or blank"
    if payload["severity"] not in ("critical", "error", "warning", "info"):
        return "'payload.severity' is invalid"
    if len(str(payload["summary"])) > 1024:
        return "'payload.summary' is longer than 1024 characters"
    return None


class FakeEmail(_Faults):
    """An SMTP server that accepts every message (or refuses the login, with ``password_ok = False``)."""

    name = "email"

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[dict[str, Any]] = []
        self.password_ok = True

    async def send(self, out: Outgoing) -> dict[str, Any]:
        """Accept the message."""
        self._attempt(out)
        if not self.password_ok:
            raise DeliveryError("SMTP server refused the login (535); check SMTP_PASSWORD", permanent=True, code="auth")
        self.sent.append({**out.body, "message_id": f"<{out.delivery_id}@opsbot>"})
        return {"message_id": f"<{out.delivery_id}@opsbot>", "refused": []}

    async def close(self) -> None:
        """Nothing to release."""
