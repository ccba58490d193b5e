"""A stand-in of PagerDuty's Events API v2 (``POST /v2/enqueue``) on loopback, for tests.

It checks the request as PagerDuty documents it (https://developer.pagerduty.com/docs/events-api-v2/
trigger-events/): a JSON object with a 32-character ``routing_key``, ``event_action`` trigger,
acknowledge or resolve; a trigger needs ``payload.summary`` (at most 1024 characters), ``payload.source``
and ``payload.severity`` (critical, error, warning, info); acknowledge and resolve need ``dedup_key``.
Valid: 202 ``{"status": "success", "message": "Event processed", "dedup_key": ...}``; invalid: 400
``{"status": "invalid event", "message": "Event object is invalid", "errors": [...]}``. Tests can make
it answer 429 or 500 (``fail_next``) and read ``events`` (accepted) and ``requests`` (all).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.helpers.http_servers import free_port

SEVERITIES = ("critical", "error", "warning", "info")


@dataclass
class PagerDutyStandIn:
    """``url`` is the enqueue endpoint (``PAGERDUTY_EVENTS_URL``)."""

    valid_keys: set[str] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[int, Any]] = field(default_factory=list)
    port: int = 0
    _faults: list[int] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _changed: asyncio.Condition | None = None

    @property
    def url(self) -> str:
        """The enqueue endpoint."""
        return f"http://127.0.0.1:{self.port}/v2/enqueue"

    def fail_next(self, status: int, times: int = 1) -> None:
        """Answer the next ``times`` requests with ``status`` (429: with Retry-After: 1)."""
        self._faults += [status] * times

    def state(self, dedup_key: str) -> str | None:
        """triggered, acknowledged or resolved: the last accepted action on ``dedup_key``."""
        last = [e for e in self.events if e["dedup_key"] == dedup_key]
        return {"trigger": "triggered", "acknowledge": "acknowledged", "resolve": "resolved"}[
            last[-1]["event_action"]] if last else None  # fmt: skip

    async def wait_for(self, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        """Wait until ``count`` events were accepted."""
        assert self._changed is not None
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(self.events) >= count), timeout)
        return self.events

    def _problems(self, event: Any) -> list[str]:
        if not isinstance(event, dict):
            return ["Event object is invalid"]
        errors = []
        key = event.get("routing_key")
        if not isinstance(key, str) or len(key) != 32 or (self.valid_keys is not None and key not in self.valid_keys):
            errors.append("Invalid routing key")
        action = event.get("event_action")
        if action not in ("trigger", "acknowledge", "resolve"):
            errors.append("'event_action' is invalid (must be one of trigger, acknowledge, resolve)")
        elif action == "trigger":
            payload = event.get("payload")
            if not isinstance(payload, dict):
                errors.append("'payload' is missing or not an object")
            else:
                for name in ("summary", "source", "severity"):
                    if not isinstance(payload.get(name), str) or not payload[name].strip():
                        errors.append(f"'payload.{name}' is missing or blank")
                if payload.get("severity") not in SEVERITIES:
                    errors.append("'payload.severity' must be critical, error, warning or info")
                if len(str(payload.get("summary", ""))) > 1024:
                    errors.append("'payload.summary' is longer than 1024 characters")
        elif not event.get("dedup_key"):
            errors.append("'dedup_key' is required for acknowledge and resolve")
        return errors

    async def _enqueue(self, request: web.Request) -> web.Response:
        assert self._changed is not None
        raw = await request.read()
        try:
            event = json.loads(raw)
        except ValueError:
            event = None
        if self._faults:
            status = self._faults.pop(0)
            self.requests.append((status, event))
            headers = {"Retry-After": "1"} if status == 429 else {}
            return web.json_response({"status": "throttled" if status == 429 else "error"}, status=status,
                                     headers=headers)  # fmt: skip
        errors = self._problems(event)
        if errors:
            self.requests.append((400, event))
            return web.json_response({"status": "invalid event", "message": "Event object is invalid",
                                      "errors": errors}, status=400)  # fmt: skip
        assert isinstance(event, dict)
        dedup = event.get("dedup_key") or uuid.uuid4().hex
        self.requests.append((202, event))
        async with self._changed:
            self.events.append({**event, "dedup_key": dedup})
            self._changed.notify_all()
        return web.json_response({"status": "success", "message": "Event processed", "dedup_key": dedup}, status=202)

    async def __aenter__(self) -> PagerDutyStandIn:
        self._changed = asyncio.Condition()
        app = web.Application()
        app.router.add_post("/v2/enqueue", self._enqueue)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await self._runner.setup()
        self.port = self.port or free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
