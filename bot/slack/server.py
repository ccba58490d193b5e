"""One aiohttp server: ``POST /slack/events`` (HTTP mode), ``/health``, ``/health/db``, ``/metrics``.

Requests to ``/slack/events`` are verified before anything is parsed: both signature headers
present, a numeric timestamp within 5 minutes, a valid HMAC. Only then is the body's shape checked
(a 400 when malformed), and only then does Bolt see it. Nothing a client sends can make it a 500.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier

from bot.core.app import App
from bot.core.metrics import Metrics
from bot.core.tasks import TaskSet
from bot.slack.liveness import SlackLiveness

if TYPE_CHECKING:
    from bot.slack.door import SlackDoor

log = logging.getLogger("opsbot.http")
MAX_BODY = 1024 * 1024
MAX_SKEW = 300


def _reject(status: int, reason: str) -> web.Response:
    log.warning("rejected a /slack/events request: %s", reason)
    return web.json_response({"ok": False, "error": reason}, status=status)


class Server:
    """The HTTP side of ``opsbot serve``."""

    def __init__(self, app: App, metrics: Metrics, tasks: TaskSet, door: SlackDoor | None) -> None:
        self.app = app
        self.metrics = metrics
        self.tasks = tasks
        self.door = door
        secret = app.settings.slack_signing_secret
        self.verifier = SignatureVerifier(secret) if secret else None
        #: set by ``opsbot serve``: /health answers 503 with the reason when Slack cannot be reached
        self.liveness: SlackLiveness | None = None

    def web_app(self) -> web.Application:
        """The aiohttp application with every route."""
        web_app = web.Application(client_max_size=MAX_BODY)
        web_app.router.add_get("/health", self.health)
        web_app.router.add_get("/health/db", self.health_db)
        web_app.router.add_get("/metrics", self.metrics_route)
        if self.door is not None and self.verifier is not None:
            web_app.router.add_post("/slack/events", self.slack_events)
        return web_app

    async def health(self, request: web.Request) -> web.Response:
        """The process answers (503 while draining, so a load balancer stops sending)."""
        if not self.tasks.accepting:
            return web.json_response({"status": "draining"}, status=503)
        problem = self.liveness.problem() if self.liveness is not None else None
        if problem is not None:
            return web.json_response({"status": "slack unreachable", "reason": problem}, status=503)
        return web.json_response({"status": "ok"})

    async def health_db(self, request: web.Request) -> web.Response:
        """The SQLite database answers a query."""
        try:
            await self.app.db.ping()
        except Exception as exc:
            log.error("database check failed: %s", exc)
            return web.json_response({"status": "error", "error": "database does not answer"}, status=503)
        return web.json_response({"status": "ok"})

    async def metrics_route(self, request: web.Request) -> web.Response:
        """Prometheus text format."""
        try:
            self.metrics.set("opsbot_pending_approvals", await self.app.engine.changes.approvals.count_pending())
        except Exception:
            log.exception("could not count pending approvals")
        return web.Response(text=self.metrics.render(), content_type="text/plain", charset="utf-8")

    async def slack_events(self, request: web.Request) -> web.Response:
        """Verify, check the shape, then let Bolt dispatch."""
        assert self.verifier is not None and self.door is not None
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _reject(413, "body too large")
        ts = request.headers.get("X-Slack-Request-Timestamp", "")
        signature = request.headers.get("X-Slack-Signature", "")
        if not ts or not signature:
            return _reject(401, "missing signature headers")
        if not ts.isdigit() or len(ts) > 12:
            return _reject(401, "bad timestamp")
        if abs(time.time() - int(ts)) > MAX_SKEW:
            return _reject(401, "timestamp outside the 5-minute window")
        if not self.verifier.is_valid(body=body, timestamp=ts, signature=signature):
            return _reject(401, "invalid signature")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return _reject(400, "body is not UTF-8")
        parsed = _parse(request.content_type, text)
        if isinstance(parsed, str):
            return _reject(400, parsed)
        self.metrics.inc("opsbot_http_requests_total", route="slack_events")
        # Bolt is handed the already verified, already parsed body: its own text parser reads any form
        # body that contains the word "payload" (say, `/ops troubleshoot payload`) as an empty one.
        # mode="socket_mode" is how Bolt takes a parsed body; it skips the check we just made.
        bolt_request = AsyncBoltRequest(
            body=parsed, query=request.query_string, headers=dict(request.headers), mode="socket_mode"
        )
        try:
            response = await self.door.bolt.async_dispatch(bolt_request)
        except Exception:
            log.exception("Bolt failed to dispatch a verified request")
            return web.json_response({"ok": False, "error": "internal"}, status=200)
        if response.status >= 500:
            log.error("Bolt answered %s to a verified request; answering 200 so Slack does not retry", response.status)
            return web.Response(status=200)
        return await to_aiohttp_response(response)


def _parse(content_type: str, text: str) -> dict[str, Any] | str:
    """The body of an authentic request as Slack's fields, or why it is not something Slack sends."""
    if not text.strip():
        return "empty body"
    if content_type == "application/json":
        try:
            data = json.loads(text)
        except ValueError:
            return "broken JSON"
        return data if isinstance(data, dict) else "JSON body is not an object"
    if content_type != "application/x-www-form-urlencoded":
        return f"unsupported content type {content_type!r}"
    form = dict(parse_qsl(text, keep_blank_values=True))
    if "payload" in form:
        try:
            payload = json.loads(form["payload"])
        except ValueError:
            return "broken JSON in payload"
        if not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
            return "payload is not an interaction"
        return payload
    if "command" in form:
        for field in ("user_id", "channel_id"):
            if not form.get(field):
                return f"slash command without {field}"
        return form
    return "neither a slash command nor an interaction"
