"""The ``/ops`` slash command on Bolt: acknowledge at once, run in the background, edit in place.

A request is parsed and authorized before the acknowledgement (that takes milliseconds). Refusals
and help are answered in the acknowledgement itself, ephemeral to the user. Procedures are
acknowledged empty, announced in the channel ("Checking prod..."), and that message is edited with
progress and then the result. Everything the door sends goes through the redactor once more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, fields
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from adapters.errors import OpsError
from bot.config.redact import off_loop_if_big
from bot.core.app import App
from bot.core.changes import ApprovalResult, approval_result
from bot.core.dedupe import Deliveries, RecentKeys
from bot.core.engine import Reply, Request, new_request_id
from bot.core.grammar import Parsed
from bot.core.logs import request_id as request_id_var
from bot.core.metrics import Metrics
from bot.core.tasks import TaskSet
from bot.slack.alert_clicks import AlertClick, alert_click, alert_words
from bot.slack.blocks import notice_message, progress_message, render_message
from bot.slack.groups import SlackGroupResolver
from bot.slack.liveness import SlackLiveness
from bot.slack.mrkdwn import MAX_FALLBACK_TEXT, MAX_SECTION, Message, cut, esc
from bot.slack.upload import upload_lines

log = logging.getLogger("opsbot.slack")
#: how long the acknowledgement may wait for parse + authorize before answering empty
ACK_BUDGET = 1.5
#: at most one progress edit per this many seconds per message (chat.update is Tier 3)
PROGRESS_INTERVAL = 1.0
EPHEMERAL_COMMANDS = frozenset({"help"})
#: the slash commands the app registers; app-manifest.yml must declare exactly these
SLASH_COMMANDS = ("/ops",)
#: the bot token scopes opsbot uses (the door; the alert worker reads history to find a post whose answer was
#: lost); app-manifest.yml must request exactly these
BOT_SCOPES = ("commands", "chat:write", "chat:write.public", "files:write", "users:read", "usergroups:read",
              "channels:history", "groups:history")  # fmt: skip


async def update_approval_message(app: App, reply: Reply, door: SlackDoor | None = None) -> None:
    """Show an approval's new state on its Slack message (from the door, or from the command line)."""
    if not isinstance(reply.result, ApprovalResult):
        return
    a = await app.engine.changes.approvals.get(reply.result.approval["id"])
    if not a.channel or not a.message_ts:
        return
    message = await off_loop_if_big(reply.size, render_message, reply)
    text, blocks = redacted(app, message)
    client = (
        door._client() if door is not None else web_client(app.settings.slack_bot_token, app.settings.slack_api_url)
    )
    try:
        await client.chat_update(channel=a.channel, ts=a.message_ts, text=text, blocks=blocks)
    except (TimeoutError, SlackApiError, OSError) as exc:
        log.error("chat.update of approval %s failed: %s; the audit log has every step", a.id, exc)
        return
    if message.file is not None and door is not None:
        await door.upload(a.channel, a.message_ts, *message.file)


def redacted(app: App, message: Message) -> tuple[str, list[dict[str, Any]]]:
    """The message's text and blocks redacted once more (a message is bounded: at most 30,000 characters)."""
    return app.redactor.text(message.text), app.redactor.data(message.blocks)


def web_client(token: str | None, base_url: str, session: aiohttp.ClientSession | None = None) -> AsyncWebClient:
    """A Web API client that retries on 429 (honouring Retry-After), 5xx and connection errors."""
    return tuned(AsyncWebClient(token=token, base_url=base_url, timeout=15, session=session), base_url)


def tuned(client: AsyncWebClient, base_url: str) -> AsyncWebClient:
    """``client`` on ``base_url`` (``SLACK_API_URL``), with a 15 s timeout and our retries."""
    client.base_url = base_url
    client.timeout = 15
    client.retry_handlers = [
        AsyncConnectionErrorRetryHandler(max_retry_count=3),
        AsyncRateLimitErrorRetryHandler(max_retry_count=3),
        AsyncServerErrorRetryHandler(max_retry_count=2),
    ]
    return client


class SlackDoor:
    """The Bolt app and everything the Slack door does with requests."""

    def __init__(self, app: App, metrics: Metrics, tasks: TaskSet) -> None:
        settings = app.settings
        self.app = app
        self.metrics = metrics
        self.tasks = tasks
        # Bolt makes its client from the token (given a client too, it warns at start-up that the token,
        # which it also reads from SLACK_BOT_TOKEN, goes unused); it is tuned like ours. It serves the front
        # loop and opens a session per call, which is fine for the few calls there.
        self.bolt = AsyncApp(
            token=settings.slack_bot_token,
            signing_secret=settings.slack_signing_secret or "",
            process_before_response=True,
            raise_error_for_unhandled_request=False,
        )
        self.client = tuned(self.bolt.client, settings.slack_api_url)
        # one client with a kept session per event loop for the many calls procedures make: a new session
        # per call costs a TLS context each time (tens of milliseconds of CPU)
        self._clients: dict[int, tuple[AsyncWebClient, aiohttp.ClientSession]] = {}
        self.deliveries = Deliveries(app.db)
        self.recent = RecentKeys()
        #: hands what runs after an acknowledgement (a procedure, a click's decision) to the back process
        #: (``bot.doors.back``) and says whether it took it; without it, or when it refuses (stopping,
        #: gone), the work runs in this process
        self.offload: Callable[[dict[str, Any]], bool] | None = None
        #: around each request answered (``opsbot serve`` with a back: jobs made meanwhile wait for the answers)
        self.answering: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext
        #: what the door hears from Slack (``opsbot serve`` sets it): Web API outcomes count
        self.liveness: SlackLiveness | None = None
        self.app.engine.access.groups = SlackGroupResolver(self.client)
        #: answered by ``on_command`` (over HTTP the server calls it without Bolt's dispatch)
        self.slash_commands = SLASH_COMMANDS
        for name in SLASH_COMMANDS:
            self.bolt.command(name)(self.on_command)
        self.bolt.action(re.compile(r"^approval:(approve|deny|cancel)$"))(self.on_approval_click)
        self.bolt.action(re.compile(r"^alert:(ack|silence|troubleshoot)$"))(self.on_alert_click)
        self.app.engine.changes.notify = self.notify
        self.bolt.error(self.on_error)

    # ------------------------------------------------------------------ slash command

    async def on_command(self, ack: Any, body: dict[str, Any]) -> None:
        """``/ops ...``: answer within the acknowledgement budget, then work in the background."""
        with self.answering():  # for Socket Mode; over HTTP the server holds around the request too
            await self._on_command(ack, body)

    async def _on_command(self, ack: Any, body: dict[str, Any]) -> None:
        start = time.perf_counter()
        rid = new_request_id()
        request_id_var.set(rid)
        user = str(body.get("user_id") or "")
        channel = str(body.get("channel_id") or "")
        text = str(body.get("text") or "")
        trigger = body.get("trigger_id")
        key = f"slash:{body.get('team_id')}:{trigger}" if trigger else None
        # duplicates seen by this process are dropped before anything else; the database (shared by
        # every bot process) is asked after the acknowledgement, before anything runs
        if key and not self.recent.first(key):
            log.info("duplicate delivery of trigger %s: not run again", trigger)
            await ack()
            self.metrics.inc("opsbot_duplicates_total", kind="slash_command")
            return
        if not self.tasks.accepting:
            await ack(response_type="ephemeral", text="opsbot is restarting; try again in a minute.")
            return
        log.info("/ops %r from %s in %s", text[:200], user, channel)
        request = Request(actor=user, door="slack", text=text, channel=channel, request_id=rid)
        preparing = asyncio.ensure_future(self.app.engine.prepare(request))
        done, _ = await asyncio.wait({preparing}, timeout=ACK_BUDGET)
        if not done:
            await ack()
            self._acked(start, "late")
            self.tasks.spawn_here(self._finish_late(request, preparing, body, key), name=f"ops-{rid}")
            return
        prepared = preparing.result()
        if isinstance(prepared, Reply):
            await self._ack_message(ack, render_message(prepared))
            self._acked(start, "refused")
            self.metrics.inc("opsbot_requests_total", command=prepared.command or "unknown", outcome="refused")
            return
        if prepared.spec.name in EPHEMERAL_COMMANDS:
            reply = await self.app.engine.execute(request, prepared)
            await self._ack_message(ack, render_message(reply))
            self._acked(start, "answered")
            self._count(reply)
            return
        await ack()
        self._acked(start, "accepted")
        self._start(request, prepared, body, key)

    def _acked(self, start: float, how: str) -> None:
        self.metrics.observe("opsbot_ack_seconds", time.perf_counter() - start)
        log.debug("acknowledged (%s) in %.1f ms", how, (time.perf_counter() - start) * 1000)

    def _count(self, reply: Reply) -> None:
        outcome = "error" if reply.error else reply.severity
        self.metrics.inc("opsbot_requests_total", command=reply.command or "unknown", outcome=outcome)
        self.metrics.observe("opsbot_run_seconds", reply.duration_ms / 1000, command=reply.command or "unknown")

    async def _ack_message(self, ack: Any, message: Message) -> None:
        text, blocks = redacted(self.app, message)
        await ack(response_type="ephemeral", text=text, blocks=blocks)

    async def _finish_late(
        self, request: Request, preparing: asyncio.Future[Parsed | Reply], body: dict[str, Any], key: str | None
    ) -> None:
        prepared = await preparing
        if isinstance(prepared, Reply) or prepared.spec.name in EPHEMERAL_COMMANDS:
            reply = prepared if isinstance(prepared, Reply) else await self.app.engine.execute(request, prepared)
            await self._ephemeral(body, render_message(reply))
            return
        self._start(request, prepared, body, key)

    def _start(self, request: Request, prepared: Parsed, body: dict[str, Any], key: str | None) -> None:
        """Run an accepted procedure in the back process, or on this process's worker loop."""
        job = {"op": "command", "actor": request.actor, "text": request.text, "channel": request.channel,
               "request_id": request.request_id, "body": body, "key": key}  # fmt: skip
        if self.offload is None or not self.offload(job):
            self.tasks.spawn(self._run_in_channel(request, prepared, body, key), name=f"ops-{request.request_id}")

    async def run_command(self, job: dict[str, Any]) -> None:
        """``_start``'s job where it runs (the back, or the front taking it back): parse and authorize
        again (the same config; a refusal now, say a Slack group changed since, is audited and told to
        the user), then run it once (its delivery key is checked in the shared database)."""
        request = Request(actor=job["actor"], door="slack", text=job["text"], channel=job["channel"],
                          request_id=job["request_id"])  # fmt: skip
        request_id_var.set(request.request_id)
        prepared = await self.app.engine.prepare(request)
        if isinstance(prepared, Reply):
            self.metrics.inc("opsbot_requests_total", command=prepared.command or "unknown", outcome="refused")
            await self._ephemeral(job["body"], render_message(prepared))
            return
        await self._run_in_channel(request, prepared, job["body"], job["key"])

    async def _run_in_channel(
        self, request: Request, prepared: Parsed, body: dict[str, Any], key: str | None = None
    ) -> None:
        request_id_var.set(request.request_id)
        if key and not await self.deliveries.first(key):
            log.info("delivery %s already taken by another bot process: not run again", key)
            self.metrics.inc("opsbot_duplicates_total", kind="slash_command")
            return
        channel = request.channel or ""
        env = getattr(prepared.args, "env", None)
        what = f"{prepared.spec.verb} {env}..." if env else f"{prepared.spec.verb}..."
        ts = await self.post(channel, progress_message(f"{what} (asked by {request.actor})"))
        last = 0.0
        started = time.perf_counter()

        async def progress(message: str) -> None:
            nonlocal last
            now = time.perf_counter()
            if ts is None or now - last < PROGRESS_INTERVAL:
                return
            last = now
            await self.update(channel, ts, progress_message(f"{message} ({now - started:.0f} s)"))

        request.progress = progress
        reply = await self.app.engine.execute(request, prepared)
        try:
            self._count(reply)
            message = await off_loop_if_big(reply.size, render_message, reply)  # a big log: off the loop
            if ts is not None:
                ok = await self.update(channel, ts, message)
            else:
                ok = await self.post(channel, message) is not None
            if not ok:
                await self._ephemeral(body, message)
            if message.file is not None:
                await self.upload(channel, ts, *message.file)
            if message.lines is not None:
                await self.upload_lines(channel, ts, *message.lines)
        finally:
            if reply.result is not None:
                reply.result.close()  # a logs spool: removed, also when this task is cancelled
        if ts is not None and isinstance(reply.result, ApprovalResult):
            await self.app.engine.changes.approvals.set_message(reply.result.approval["id"], channel, ts)

    # ------------------------------------------------------------------ approvals

    async def on_approval_click(self, ack: Any, body: dict[str, Any]) -> None:
        """Approve / Deny / Cancel: acknowledge, then decide in the background (exactly once per click)."""
        with self.answering():
            await self._on_approval_click(ack, body)

    async def _on_approval_click(self, ack: Any, body: dict[str, Any]) -> None:
        await ack()
        action = (body.get("actions") or [{}])[0]
        user = str((body.get("user") or {}).get("id") or "")
        approval_id = str(action.get("value") or "")
        verb = str(action.get("action_id", "")).partition(":")[2]
        container = body.get("container") or {}
        channel = str(container.get("channel_id") or (body.get("channel") or {}).get("id") or "")
        message_ts = str(container.get("message_ts") or "")
        team = (body.get("team") or {}).get("id")
        key = f"click:{team}:{user}:{action.get('action_id')}:{message_ts}:{action.get('action_ts')}"
        if not user or not approval_id or not self.recent.first(key):
            self.metrics.inc("opsbot_duplicates_total", kind="click")
            return
        job = {"op": "click", "key": key, "user": user, "verb": verb, "approval_id": approval_id, "channel": channel,
               "message_ts": message_ts}  # fmt: skip
        if self.offload is None or not self.offload(job):
            self.tasks.spawn(self.run_job(job), name=f"click-{approval_id}")

    async def run_job(self, job: dict[str, Any]) -> None:
        """Run a job this door made (``offload``'s argument), in the process that takes it."""
        if job["op"] == "command":
            await self.run_command(job)
        elif job["op"] == "click":
            await self._decide(job["key"], job["user"], job["verb"], job["approval_id"], job["channel"],
                               job["message_ts"])  # fmt: skip
        elif job["op"] == "alert_click":
            await self._alert_action(AlertClick(**{f.name: str(job[f.name]) for f in fields(AlertClick)}))
        else:
            log.error("unknown job %r: ignored", job.get("op"))

    async def _decide(self, key: str, user: str, verb: str, approval_id: str, channel: str, message_ts: str) -> None:
        if not await self.deliveries.first(key):
            self.metrics.inc("opsbot_duplicates_total", kind="click")
            return
        rid = new_request_id()
        request_id_var.set(rid)
        last = 0.0
        started = time.perf_counter()

        async def progress(text: str) -> None:
            nonlocal last
            now = time.perf_counter()
            if now - last >= PROGRESS_INTERVAL and channel and message_ts:
                last = now
                shown = f"{text} ({now - started:.0f} s, approval {approval_id})"
                await self.update(channel, message_ts, progress_message(shown))

        request = Request(actor=user, door="slack", text=f"{verb} {approval_id}", channel=channel, request_id=rid,
                          progress=progress)  # fmt: skip
        reply = await self.app.engine.decide(request, approval_id, verb)
        if reply.result is None:
            await self._ephemeral({"channel_id": channel, "user_id": user}, render_message(reply))
            return
        self._count(reply)
        await update_approval_message(self.app, reply, door=self)

    async def on_alert_click(self, ack: Any, body: dict[str, Any]) -> None:
        """Acknowledge / Silence 1h / Troubleshoot on an alert: acknowledge, then run it as the clicking user."""
        with self.answering():
            await self._on_alert_click(ack, body)

    async def _on_alert_click(self, ack: Any, body: dict[str, Any]) -> None:
        await ack()
        click = alert_click(body)
        if click is None or not self.recent.first(click.key):
            self.metrics.inc("opsbot_duplicates_total", kind="click")
            return
        job = {"op": "alert_click", **asdict(click)}
        if self.offload is None or not self.offload(job):
            self.tasks.spawn(self._alert_action(click), name=f"alert-{click.verb}-{click.alert_id}")

    async def _alert_action(self, click: AlertClick) -> None:
        if not await self.deliveries.first(click.key):
            self.metrics.inc("opsbot_duplicates_total", kind="click")
            return
        rid = new_request_id()
        request_id_var.set(rid)
        where = {"channel_id": click.channel, "user_id": click.user}
        try:
            words = await alert_words(self.app.engine.incidents, click, self.app.engine.access)
        except OpsError as exc:  # unknown, or of an environment the user may not read: refused alike, audited
            refused = Request(actor=click.user, door="slack", channel=click.channel, request_id=rid)
            await self.app.engine.audit_event(refused, "refused", f"{click.verb} button of alert {click.alert_id}",
                                              str(exc), None)  # fmt: skip
            await self._ephemeral(where, render_message(Reply(request_id=rid, error=str(exc), exit_code=2)))
            return
        request = Request(actor=click.user, door="slack", words=words, channel=click.channel, request_id=rid)
        reply = await self.app.engine.handle(request)
        self._count(reply)
        message = render_message(reply)
        if reply.result is None or click.verb != "troubleshoot":
            await self._ephemeral(where, message)  # the alert's own message is edited by the outbox
            return
        await self.post(click.channel, message, thread_ts=click.message_ts or None)
        if message.file is not None:
            await self.upload(click.channel, click.message_ts or None, *message.file)

    async def notify(self, severity: str, text: str, reply: Reply | None = None) -> None:
        """Post to the alert channel of ``severity`` (ops.yml slack.alert_channels).

        ``text`` is plain text (a command, a reason, an error): it is escaped for Slack here. With
        ``reply`` (the scheduler's alerts), ``text`` heads the rendered reply, and long output is
        attached as a file in the alert's thread.
        """
        channel = self.app.config.slack.alert_channels.get(severity)  # type: ignore[call-overload]
        if not channel:
            log.info("no slack.alert_channels.%s: the %s notice is only in the log and the audit", severity, severity)
            return
        size = reply.size if reply is not None else 0
        message = await off_loop_if_big(size, notice_message, text, reply)  # text is plain: escaped there
        ts = await self.post(channel, message)
        if ts is not None and message.file is not None:
            await self.upload(channel, ts, *message.file)
        if ts is not None and message.lines is not None:
            await self.upload_lines(channel, ts, *message.lines)

    async def post_notice(self, severity: str, text: str, thread_ts: str | None = None) -> tuple[str, str] | None:
        """Post plain ``text`` (escaped here, once) to the alert channel of ``severity``, in ``thread_ts``'s
        thread when given; (channel, ts), or None when there is no such channel or Slack refused it."""
        channel = self.app.config.slack.alert_channels.get(severity)  # type: ignore[call-overload]
        if not channel:
            log.info("no slack.alert_channels.%s: the notice is only in the log", severity)
            return None
        shown = esc(self.app.redactor.text(text))
        try:
            response = await self._client().chat_postMessage(
                channel=channel, text=cut(shown, MAX_FALLBACK_TEXT), thread_ts=thread_ts,
                blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": cut(shown, MAX_SECTION)}}],
            )  # fmt: skip
        except (TimeoutError, SlackApiError, OSError) as exc:
            self._failed("chat.postMessage", exc)
            return None
        return str(channel), str(response.get("ts"))

    async def edit_notice(self, channel: str, ts: str, text: str) -> bool:
        """Replace a notice's text (escaped here, once); False when Slack refused it."""
        shown = esc(self.app.redactor.text(text))
        section = {"type": "section", "text": {"type": "mrkdwn", "text": cut(shown, MAX_SECTION)}}
        return await self.update(channel, ts, Message(text=cut(shown, MAX_FALLBACK_TEXT), blocks=[section]))

    async def sweep_forever(self, every: float = 5.0) -> None:
        """Expire approvals past their time and say so on their messages, until cancelled."""
        while True:
            try:
                for a in await self.app.engine.sweep():
                    await self._show_final(a, "expired: nobody decided in time; request it again")
            except Exception:
                log.exception("sweeping expired approvals failed")
            await asyncio.sleep(every)

    async def recover(self) -> None:
        """At start: runs cut off by a crash are marked interrupted, on their messages too."""
        for a in await self.app.engine.recover():
            await self._show_final(a, "interrupted: the bot stopped during the run; it was not re-run")

    async def _show_final(self, a: Any, message: str) -> None:
        if a.channel and a.message_ts:
            reply = Reply(request_id=a.request_id or "-", command=a.command, environment=a.environment,
                          result=approval_result(a, message), actor=a.requester)  # fmt: skip
            await self.update(a.channel, a.message_ts, render_message(reply))

    # ------------------------------------------------------------------ Web API, never raising

    def _client(self) -> AsyncWebClient:
        """The Web API client of the running event loop, with a session kept for the loop's life."""
        loop = asyncio.get_running_loop()
        kept = self._clients.get(id(loop))
        if kept is None:
            session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
            settings = self.app.settings
            kept = (web_client(settings.slack_bot_token, settings.slack_api_url, session), session)
            self._clients[id(loop)] = kept
        return kept[0]

    async def close(self) -> None:
        """Close the kept session of the running loop (call it on each loop that used the door)."""
        kept = self._clients.pop(id(asyncio.get_running_loop()), None)
        if kept is not None:
            await kept[1].close()

    async def post(self, channel: str, message: Message, thread_ts: str | None = None) -> str | None:
        """chat.postMessage (in ``thread_ts``'s thread when given); the message's ts, or None (logged) when refused."""
        text, blocks = redacted(self.app, message)
        try:
            response = await self._client().chat_postMessage(
                channel=channel, text=text, blocks=blocks, thread_ts=thread_ts
            )
        except (TimeoutError, SlackApiError, OSError) as exc:
            self._failed("chat.postMessage", exc)
            return None
        if self.liveness is not None:
            self.liveness.api_ok()
        return str(response.get("ts"))

    async def update(self, channel: str, ts: str, message: Message) -> bool:
        """chat.update of a message the bot posted; False (logged) when Slack refused it."""
        text, blocks = redacted(self.app, message)
        try:
            await self._client().chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
        except (TimeoutError, SlackApiError, OSError) as exc:
            self._failed("chat.update", exc)
            return False
        return True

    async def upload(self, channel: str, ts: str | None, filename: str, content: str) -> None:
        """Attach the whole output, redacted, as a file in the message's thread."""
        content = await off_loop_if_big(len(content), self.app.redactor.text, content)
        try:
            await self._client().files_upload_v2(
                channel=channel,
                thread_ts=ts,
                content=content,
                filename=filename,
                title=filename,
            )
        except (TimeoutError, SlackApiError, OSError) as exc:
            self._failed("files_upload_v2", exc)

    async def upload_lines(
        self, channel: str, ts: str | None, filename: str, lines: Callable[[Callable[[str], str]], Iterator[str]]
    ) -> None:
        """Attach a file too big to hold (``lines``, given the redactor), written and sent from disk."""
        client = self._client()
        session = self._clients[id(asyncio.get_running_loop())][1]
        try:
            await upload_lines(client, session, channel, ts, filename, lines(self.app.redactor.text))
        except (TimeoutError, SlackApiError, OSError, aiohttp.ClientError) as exc:
            self._failed("files.completeUploadExternal", exc)

    async def _ephemeral(self, body: dict[str, Any], message: Message) -> None:
        """Tell only the user (chat.postEphemeral): for refusals, or when the channel refused us."""
        channel, user = body.get("channel_id"), body.get("user_id")
        if not channel or not user:
            return
        text, blocks = redacted(self.app, message)
        try:
            await self._client().chat_postEphemeral(channel=channel, user=user, text=text, blocks=blocks)
        except (TimeoutError, SlackApiError, OSError) as exc:
            self._failed("chat.postEphemeral", exc)

    def _failed(self, method: str, exc: BaseException) -> None:
        self.metrics.inc("opsbot_slack_errors_total", method=method)
        if isinstance(exc, SlackApiError):
            error = exc.response.get("error") if exc.response is not None else None
            slack_req = exc.response.headers.get("x-slack-req-id") if exc.response is not None else None
            log.error("%s failed: %s (slack request id %s); the result is in the audit log", method, error, slack_req)
        else:
            log.error("%s failed: %s; the result is in the audit log", method, type(exc).__name__)
            if self.liveness is not None:  # Slack did not answer at all
                self.liveness.api_failed(f"{method}: {type(exc).__name__}")

    async def on_error(self, error: Exception, body: dict[str, Any]) -> None:
        """Bolt's global error handler: log with a reference, never crash."""
        log.error("unhandled error in a Slack listener", exc_info=error)
