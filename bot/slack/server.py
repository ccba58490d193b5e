"""One aiohttp server: ``POST /slack/events`` (HTTP mode), ``/health``, ``/health/db``, ``/metrics``.

Requests to ``/slack/events`` are verified before anything is parsed: both signature headers
present, a numeric timestamp within 5 minutes, a valid HMAC. Only then is the body's shape checked
(a 400 when malformed), and only then does Bolt see it. Nothing a client sends can make it a 500.
A refusal is counted in ``opsbot_http_rejected_total``; the log gets the first one at once and the
rest summed up once a minute, so that a flood of forged requests cannot flood the log.

The connections are bounded by ``bot.slack.guard``: how many are open, how long one may take to
send its request head; the body must arrive within the same time (``OPSBOT_HTTP_READ_TIMEOUT``).
"""

from __future__ import annotations

import asyncio
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
from bot.core.logs import Throttled
from bot.core.metrics import CONTENT_TYPE, Metrics
from bot.core.tasks import TaskSet
from bot.slack.guard import ConnectionGuard, connection_limit, middleware
from bot.slack.listener import Listener
from bot.slack.liveness import SlackLiveness

if TYPE_CHECKING:
    from bot.slack.door import SlackDoor

log = logging.getLogger("opsbot.http")
MAX_BODY = 1024 * 1024
MAX_SKEW = 300
#: why a request was refused, by the reason label of ``opsbot_http_rejected_total`` (fixed texts only:
#: what a client sent never reaches the log or a label)
REASONS = {
    "unsigned": "missing signature headers",
    "bad_timestamp": "bad timestamp",
    "stale": "timestamp outside the 5-minute window",
    "bad_signature": "invalid signature",
    "too_large": "body too large",
    "slow_body": "body not received in time",
    "malformed": "signed, but not something Slack sends",
}


class Server:
    """The HTTP side of ``opsbot serve``."""

    def __init__(self, app: App, metrics: Metrics, tasks: TaskSet, door: SlackDoor | None) -> None:
        self.app = app
        self.metrics = metrics
        self.tasks = tasks
        self.door = door
        secret = app.settings.slack_signing_secret
        self.verifier = SignatureVerifier(secret) if secret else None
        self.read_timeout = app.settings.opsbot_http_read_timeout
        self.guard = ConnectionGuard(
            lambda: self._protocol(),
            limit=connection_limit(app.settings.opsbot_http_max_connections),
            read_timeout=self.read_timeout,
            on_close=lambda reason: metrics.inc("opsbot_http_connections_closed_total", reason=reason),
        )
        metrics.gauge("opsbot_http_connections", lambda: float(len(self.guard)))
        metrics.set("opsbot_http_connection_limit", self.guard.limit)
        for reason in REASONS:
            metrics.inc("opsbot_http_rejected_total", 0, reason=reason)
        self.refusals = Throttled(
            log,
            lambda why: (
                f"rejected a /slack/events request: {why} (more are counted in opsbot_http_rejected_total "
                "and summed up here every 60 s)"
            ),
            lambda total, parts, seconds: (
                f"rejected {total:,} /slack/events requests in the last {seconds:g} s: {parts}"
            ),
        )
        #: set by ``opsbot serve``: /health answers 503 with the reason when Slack cannot be reached
        self.liveness: SlackLiveness | None = None
        self._runner: web.AppRunner | None = None
        self._listener = Listener(self.guard)

    def _protocol(self) -> asyncio.Protocol:
        assert self._runner is not None and self._runner.server is not None
        return self._runner.server()

    async def start(self, host: str, port: int) -> None:
        """Listen on ``host:port`` behind the connection guard."""
        # aiohttp's own idle close stays as a backstop, after the guard's; what is left of a refused body is
        # read for at most a second (so that the client sees the answer), then the connection is closed
        self._runner = web.AppRunner(
            self.web_app(), access_log=None, keepalive_timeout=2 * self.read_timeout,
            lingering_time=min(1.0, self.read_timeout / 2),
        )  # fmt: skip
        await self._runner.setup()
        await self._listener.start(host, port)

    async def stop(self) -> None:
        """Stop listening, close the connections, log what is still counted."""
        await self._listener.close()
        if self._runner is not None:
            await self._runner.cleanup()
        self.refusals.close()
        self.guard.close_log()

    def _reject(self, status: int, code: str, detail: str | None = None) -> web.Response:
        self.metrics.inc("opsbot_http_rejected_total", reason=code)
        if code == "malformed":  # it was signed: Slack's (or the secret's holder's) doing, rare and worth a line
            log.warning("rejected a signed /slack/events request: %s", detail)
        else:
            self.refusals.note(REASONS[code])
        response = web.json_response({"ok": False, "error": detail or REASONS[code]}, status=status)
        if code in ("too_large", "slow_body"):
            response.force_close()  # what is left of the body is not read
        return response

    def web_app(self) -> web.Application:
        """The aiohttp application with every route."""
        web_app = web.Application(client_max_size=MAX_BODY, middlewares=[middleware(self.guard)])
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
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    async def slack_events(self, request: web.Request) -> web.Response:
        """Verify, check the shape, then let Bolt dispatch; the jobs for the back wait while a verified
        request is answered (``SlackDoor.answering``: not while a client sends its body, nor for a
        request that is refused, so that neither a slow client nor junk can hold them)."""
        assert self.door is not None
        checked = await self._checked(request)
        if isinstance(checked, web.Response):
            return checked
        with self.door.answering():
            return await self._answer(request, checked)

    async def _checked(self, request: web.Request) -> dict[str, Any] | web.Response:
        """The body of a verified request, as Slack's fields; or the refusal."""
        assert self.verifier is not None
        try:
            body = await asyncio.wait_for(request.read(), self.read_timeout)
        except web.HTTPRequestEntityTooLarge:
            return self._reject(413, "too_large")
        except TimeoutError:
            return self._reject(408, "slow_body")
        ts = request.headers.get("X-Slack-Request-Timestamp", "")
        signature = request.headers.get("X-Slack-Signature", "")
        if not ts or not signature:
            return self._reject(401, "unsigned")
        if not ts.isdigit() or len(ts) > 12:
            return self._reject(401, "bad_timestamp")
        if abs(time.time() - int(ts)) > MAX_SKEW:
            return self._reject(401, "stale")
        if not self.verifier.is_valid(body=body, timestamp=ts, signature=signature):
            return self._reject(401, "bad_signature")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return self._reject(400, "malformed", "body is not UTF-8")
        parsed = _parse(request.content_type, text)
        if isinstance(parsed, str):
            return self._reject(400, "malformed", parsed)
        return parsed

    async def _answer(self, request: web.Request, parsed: dict[str, Any]) -> web.Response:
        assert self.door is not None
        self.metrics.inc("opsbot_http_requests_total", route="slack_events")
        if parsed.get("command") in self.door.slash_commands:
            return await self._slash_command(parsed)
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

    async def _slash_command(self, body: dict[str, Any]) -> web.Response:
        """A verified ``/ops``, straight to the door's listener: what Bolt's dispatch would do for it (a
        single workspace's token, no middleware of ours) without the middleware chain's cost on the loop
        that acknowledges. The answer is what Bolt's ``ack`` makes: an empty 200, or the message as JSON."""
        assert self.door is not None
        answer: dict[str, Any] = {}

        async def ack(text: str = "", *, blocks: list[dict[str, Any]] | None = None,
                      response_type: str | None = None) -> None:  # fmt: skip
            answer.update({"text": text, **({"response_type": response_type} if response_type else {}),
                           **({"blocks": blocks} if blocks else {})})  # fmt: skip

        try:
            await self.door.on_command(ack, body)
        except Exception:
            log.exception("the /ops listener failed on a verified request")
            return web.json_response({"ok": False, "error": "internal"}, status=200)
        if set(answer) <= {"text"}:
            return web.Response(text=answer.get("text", ""))
        return web.json_response(answer)


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
