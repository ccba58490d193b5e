"""Playing Slack's part in tests: a Web API stand-in on loopback, and requests signed as Slack signs them.

``SlackStandIn`` is a real aiohttp server on 127.0.0.1 that answers the Web API methods opsbot uses
with the shapes Slack returns, records every call, checks tokens, enforces a few real limits
(Block Kit sizes, ``msg_too_long``), can fail on demand (429 with ``Retry-After``, 5xx, ``ok: false``;
``down = True``: every call 503, an outage; ``lose_answer``: a call that lands but whose answer never
reaches the client, a timeout or a reset connection), reads history back (``conversations.history``,
``conversations.replies``: newest first / thread order, ``oldest``/``latest``/``limit``/``cursor``,
metadata only with ``include_all_metadata``, the ``*:history`` scope and channel membership checked),
serves the file upload v2 flow, ``response_url`` posts, and
Socket Mode (``apps.connections.open`` plus a websocket that greets with ``hello``, carries envelopes
and records acknowledgements)::

    async with SlackStandIn() as slack:
        client = AsyncWebClient(token="xoxb-test", base_url=slack.url)
        ...
        call = await slack.wait_for("chat.postMessage")

What Slack sends to the bot (slash command and button click bodies, Socket Mode envelopes, signed)
is built in ``tests/helpers/slack_payloads.py``, Block Kit's limits are ``tests/helpers/slack_limits.py``;
both are re-exported here.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

from tests.helpers.slack_limits import block_errors
from tests.helpers.slack_payloads import (  # noqa: F401 - re-exported: tests import them from here
    APP_ID,
    BOT_ID,
    BOT_USER_ID,
    TEAM_DOMAIN,
    TEAM_ID,
    TEAM_NAME,
    VERIFICATION_TOKEN,
    block_actions_body,
    block_actions_payload,
    envelope,
    post_signed,
    sign,
    slash_command_body,
    slash_command_payload,
)

BOT_SCOPES = ("commands", "chat:write", "chat:write.public", "files:write", "users:read", "usergroups:read",
              "channels:history", "groups:history")  # fmt: skip
#: methods that take the app-level token (``xapp-``) instead of the bot token
APP_TOKEN_METHODS = frozenset({"apps.connections.open"})
#: argument names whose form-encoded value is JSON text; ``Call.args`` holds them decoded
JSON_ARGS = frozenset({"blocks", "attachments", "files", "metadata"})
#: read methods: Slack takes their arguments from the query string or a form, never from a JSON body
FORM_ONLY_METHODS = frozenset({"conversations.history", "conversations.replies"})
RESPONSE_URL_USES = 5
_T = TypeVar("_T")


@dataclass(frozen=True)
class Call:
    """One request the stand-in received.

    ``args`` merges the query string, a JSON body and a form body (JSON-text fields in ``JSON_ARGS``
    decoded); the token is not in it (see ``headers["Authorization"]``). ``time`` is
    ``time.monotonic()``. Pseudo-methods: ``"upload"`` (the POST to an upload URL) and
    ``"response_url"`` (a post to a slash command's or click's ``response_url``).
    """

    method: str
    args: dict[str, Any]
    headers: dict[str, str]
    time: float
    status: int = 200
    response: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether the stand-in answered HTTP 200 with ``ok: true``."""
        return self.status == 200 and self.response.get("ok") is True


@dataclass
class UploadedFile:
    """A file that went through the upload v2 flow (``getUploadURLExternal``, upload, ``complete``)."""

    file_id: str
    filename: str
    title: str | None
    channel: str | None
    content: bytes
    initial_comment: str | None = None
    thread_ts: str | None = None


@dataclass
class _Fault:
    status: int
    error: str
    retry_after: int | None
    times: int


class _Reply(Exception):
    """Raised inside a method handler to answer ``{"ok": false, "error": ...}`` (plus extra fields)."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.body: dict[str, Any] = {"ok": False, "error": error, **extra}


class SlackStandIn:
    """The Slack Web API (and Socket Mode, uploads, response_urls) on 127.0.0.1, for tests.

    Attributes tests set: ``groups`` (user group id -> member ids, for ``usergroups.users.list``),
    ``users`` (user id -> fields merged over the generated ``users.info`` user), ``channels``
    (channel id -> fields merged over the generated ``conversations.info`` channel),
    ``valid_tokens`` (``None``: any ``xoxb-`` bot token and any ``xapp-`` app token), ``scopes`` (what
    the ``x-oauth-scopes`` header of a bot token's answers lists, and what ``conversations.history`` /
    ``replies`` check; ``BOT_SCOPES`` by default), ``clock`` (where message ts come from: a test's
    simulated clock, so that ``oldest`` means the same to the bot and the stand-in).
    Attributes tests read: ``calls``, ``messages`` ((channel, ts) -> the message as it stands after
    updates and deletes), ``socket_acks``, ``socket_connections``.
    """

    def __init__(self, *, valid_tokens: Iterable[str] | None = None) -> None:
        self.valid_tokens: set[str] | None = set(valid_tokens) if valid_tokens is not None else None
        self.groups: dict[str, list[str]] = {}
        self.scopes: list[str] = list(BOT_SCOPES)
        self.users: dict[str, dict[str, Any]] = {}
        self.channels: dict[str, dict[str, Any]] = {"C0OPS": {"name": "ops"}}
        self.calls: list[Call] = []
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self.socket_acks: list[dict[str, Any]] = []
        self.socket_connections = 0
        self.port = 0
        #: the outage switch: while True, every Web API call is answered HTTP 503 (and recorded)
        self.down = False
        #: True: chat.update of a message never posted (or deleted) is ``message_not_found``, as in Slack
        self.strict_updates = False
        #: True: open sockets stop reading, so the client's pings go unanswered (a half-open connection)
        self.socket_silent = False
        #: where message timestamps come from (a test's simulated clock; real time by default)
        self.clock: Callable[[], float] = time.time
        self._lost: dict[str, list[str]] = {}
        self._hold = asyncio.Event()
        self._last_us = 0
        self._faults: dict[str, list[_Fault]] = {}
        self._fixed: dict[str, dict[str, Any]] = {}
        self._uploads: dict[str, dict[str, Any]] = {}
        self._completed: list[UploadedFile] = []
        self._tickets: set[str] = set()
        self._sockets: list[web.WebSocketResponse] = []
        self._hook_uses: dict[str, int] = {}
        self._ids = itertools.count(1)
        self._ts_base_us = int(time.time()) * 1_000_000
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._methods: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "api.test": lambda args: {"ok": True, "args": args},
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.delete": self._chat_delete,
            "users.info": self._users_info,
            "usergroups.users.list": self._usergroups_users_list,
            "conversations.info": self._conversations_info,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "apps.connections.open": self._apps_connections_open,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
        }

    # ------------------------------------------------------------------ lifecycle

    @property
    def base(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The Web API base URL, ``http://127.0.0.1:PORT/api/``: ``SLACK_API_URL`` / slack_sdk ``base_url``."""
        return f"{self.base}/api/"

    async def start(self) -> SlackStandIn:
        """Listen on a free loopback port."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_get("/socket", self._socket)
        app.router.add_post("/hooks/{hook:.*}", self._hook)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = int(sock.getsockname()[1])
        await web.SockSite(self._runner, sock).start()
        return self

    async def stop(self) -> None:
        """Close the websockets and the server."""
        self._hold.set()
        for ws in list(self._sockets):
            await ws.close(code=aiohttp.WSCloseCode.GOING_AWAY)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SlackStandIn:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # ------------------------------------------------------------------ what tests call

    def calls_to(self, method: str) -> list[Call]:
        """The recorded calls of one method, in order."""
        return [c for c in self.calls if c.method == method]

    def fail_next(
        self,
        method: str,
        *,
        status: int | None = None,
        error: str | None = None,
        retry_after: int = 1,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail (after the token check).

        ``status=429`` (the default when no ``error`` is given): HTTP 429, ``Retry-After: retry_after``,
        body ``{"ok": false, "error": "ratelimited"}``. ``status=500`` etc.: that status with
        ``{"ok": false, "error": "internal_error"}``. ``error="msg_too_long"`` alone: HTTP 200 with
        ``{"ok": false, "error": "msg_too_long"}``, as Slack reports API errors.
        """
        if status is None:
            status = 429 if error is None else 200
        if error is None:
            error = "ratelimited" if status == 429 else "internal_error"
        fault = _Fault(status, error, retry_after if status == 429 else None, times)
        self._faults.setdefault(method, []).append(fault)

    def lose_answer(self, method: str, *, how: str = "reset", times: int = 1) -> None:
        """The next ``times`` calls of ``method`` are carried out (a post lands) but the client never hears.

        ``how="reset"``: the connection is closed without an answer; ``"timeout"``: the answer is held
        until the stand-in stops, so the client's own timeout ends the call. Recorded with status 0.
        """
        if how not in ("reset", "timeout"):
            raise ValueError(f"how must be 'reset' or 'timeout', not {how!r}")
        self._lost.setdefault(method, []).extend([how] * times)

    def set_response(self, method: str, body: dict[str, Any]) -> None:
        """Answer ``method`` (known or not, e.g. ``views.open``) with ``body`` from now on."""
        self._fixed[method] = body

    def uploaded_files(self) -> list[UploadedFile]:
        """Files completed with ``files.completeUploadExternal``, in order."""
        return list(self._completed)

    def message(self, channel: str, ts: str) -> dict[str, Any] | None:
        """The message at (channel, ts) as it stands now, or None if never posted or deleted."""
        return self.messages.get((channel, ts))

    def response_url(self, name: str | None = None) -> str:
        """A fresh ``response_url`` served by the stand-in; posts to it are recorded as ``"response_url"``.

        Slack allows 5 responses per response_url; the stand-in answers the 6th with HTTP 404 ``used_url``
        (the exact status and text of Slack's refusal are an approximation).
        """
        return f"{self.base}/hooks/commands/{TEAM_ID}/{name or next(self._ids)}/{uuid.uuid4().hex[:24]}"

    async def wait_for(
        self, method: str, predicate: Callable[[Call], bool] | None = None, timeout: float = 5.0
    ) -> Call:
        """The first call of ``method`` (already recorded or still to come) for which ``predicate`` holds."""

        def find() -> Call | None:
            return next((c for c in self.calls if c.method == method and (predicate is None or predicate(c))), None)

        found = await self._wait_until(find, timeout)
        if found is None:
            seen = "\n  ".join(f"{c.method} {c.status} {c.response.get('error') or ''} {c.args}" for c in self.calls)
            raise AssertionError(
                f"no {method} call{' matching the predicate' if predicate else ''} within {timeout}s; "
                f"calls seen:\n  {seen or '(none)'}"
            )
        return found

    async def socket_send(self, message: dict[str, Any], timeout: float = 5.0) -> str:
        """Push a Socket Mode envelope to the newest connection (waiting for one); returns its envelope_id."""
        framed = {"envelope_id": str(uuid.uuid4()), **message}
        ws = await self._wait_until(lambda: self._sockets[-1] if self._sockets else None, timeout)
        if ws is None:
            raise AssertionError(
                f"no Socket Mode connection within {timeout}s (apps.connections.open calls: "
                f"{len(self.calls_to('apps.connections.open'))})"
            )
        await ws.send_str(json.dumps(framed))
        return str(framed["envelope_id"])

    async def socket_connected(self, count: int = 1, timeout: float = 5.0) -> None:
        """Wait until ``count`` Socket Mode connections have been made in all and one is open."""
        if not await self._wait_until(
            lambda: (self.socket_connections >= count and bool(self._sockets)) or None, timeout
        ):
            raise AssertionError(
                f"{self.socket_connections} Socket Mode connection(s) within {timeout}s, expected {count}"
            )

    async def socket_disconnect(self, reason: str = "refresh_requested") -> None:
        """Send Slack's ``disconnect`` message to every open connection (the client should reconnect)."""
        message = {"type": "disconnect", "reason": reason, "debug_info": {"host": "standin-applink"}}
        for ws in list(self._sockets):
            await ws.send_str(json.dumps(message))

    async def wait_for_ack(self, envelope_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """The client's acknowledgement of ``envelope_id``: ``{"envelope_id": ..., "payload": ...?}``."""

        def find() -> dict[str, Any] | None:
            return next((a for a in self.socket_acks if a.get("envelope_id") == envelope_id), None)

        ack = await self._wait_until(find, timeout)
        if ack is None:
            raise AssertionError(f"no ack for envelope {envelope_id} within {timeout}s; acks: {self.socket_acks}")
        return ack

    # ------------------------------------------------------------------ plumbing

    async def _wait_until(self, find: Callable[[], _T | None], timeout: float) -> _T | None:
        """What ``find`` returns once it returns something, or None after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with self._changed:
            while (found := find()) is None:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return None
                try:
                    await asyncio.wait_for(self._changed.wait(), remaining)
                except TimeoutError:
                    pass
            return found

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _record(self, call: Call) -> None:
        self.calls.append(call)
        await self._notify()

    def _next_ts(self) -> str:
        if self.clock is time.time:
            micros = self._ts_base_us + next(self._ids) * 100
        else:  # a test's clock: ts follow it, each still later than the one before
            micros = max(int(self.clock() * 1_000_000), self._last_us + 100)
        self._last_us = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    @staticmethod
    async def _read_args(request: web.Request) -> dict[str, Any]:
        args: dict[str, Any] = dict(request.query)
        ctype = request.content_type if request.can_read_body else ""
        if ctype == "application/json" and request.match_info["method"] in FORM_ONLY_METHODS:
            await request.read()  # Slack ignores a JSON body here: the method sees no arguments
        elif ctype == "application/json":
            raw = await request.read()
            try:
                body = json.loads(raw or b"{}")
            except ValueError as exc:
                raise _Reply("invalid_json") from exc
            if isinstance(body, dict):
                args.update(body)
        elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            for key, value in (await request.post()).items():
                args[key] = value.file.read() if isinstance(value, web.FileField) else value
        elif ctype:
            args["_body"] = await request.read()
        for key in JSON_ARGS & args.keys():
            if isinstance(args[key], str):
                try:
                    args[key] = json.loads(args[key])
                except ValueError as exc:
                    raise _Reply("invalid_arguments") from exc
        return args

    def _token_error(self, method: str, token: str | None) -> str | None:
        if not token:
            return "not_authed"
        if self.valid_tokens is not None and token not in self.valid_tokens:
            return "invalid_auth"
        if not token.startswith(("xoxb-", "xapp-")):
            return "invalid_auth"
        if (method in APP_TOKEN_METHODS) != token.startswith("xapp-"):
            return "not_allowed_token_type"
        return None

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        headers = dict(request.headers)
        status, extra_headers = 200, {}
        args: dict[str, Any] = {}
        token: str | None = None
        try:
            args = await self._read_args(request)
            auth = request.headers.get("Authorization", "")
            token = auth[7:].strip() if auth.startswith("Bearer ") else args.get("token")
            args.pop("token", None)
            if self.down:
                status, body = 503, {"ok": False, "error": "service_unavailable"}
            elif method not in self._methods and method not in self._fixed:
                body: dict[str, Any] = {"ok": False, "error": "unknown_method", "req_method": method}
            elif error := self._token_error(method, token):
                body = {"ok": False, "error": error}
            elif faults := self._faults.get(method):
                fault = faults[0]
                fault.times -= 1
                if fault.times <= 0:
                    faults.pop(0)
                status, body = fault.status, {"ok": False, "error": fault.error}
                if fault.retry_after is not None:
                    extra_headers["Retry-After"] = str(fault.retry_after)
            elif method in self._fixed:
                body = self._fixed[method]
            else:
                body = self._methods[method](args)
        except _Reply as reply:
            body = reply.body
        if self._lost.get(method) and body.get("ok"):
            how = self._lost[method].pop(0)
            await self._record(Call(method, args, headers, time.monotonic(), 0, body))
            if how == "timeout":
                await self._hold.wait()
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=500)  # never reaches the client: the connection is closed
        if body.get("ok") and str(token or "").startswith("xoxb-"):
            extra_headers["x-oauth-scopes"] = ",".join(self.scopes)
        await self._record(Call(method, args, headers, time.monotonic(), status, body))
        return web.json_response(body, status=status, headers=extra_headers)

    # ------------------------------------------------------------------ Web API methods

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": f"https://{TEAM_DOMAIN}.slack.com/",
            "team": TEAM_NAME,
            "user": "opsbot",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _check_message(self, args: dict[str, Any], *, text_limit: int | None) -> None:
        if not args.get("channel"):
            raise _Reply("channel_not_found")
        if not (args.get("text") or args.get("blocks") or args.get("attachments")):
            raise _Reply("no_text")
        if "blocks" in args and (errors := block_errors(args["blocks"])):
            raise _Reply("invalid_blocks", errors=errors, response_metadata={"messages": errors})
        if text_limit is not None and len(str(args.get("text") or "")) > text_limit:
            raise _Reply("msg_too_long")

    def _message(self, args: dict[str, Any], ts: str) -> dict[str, Any]:
        message: dict[str, Any] = {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "team": TEAM_ID,
            "text": str(args.get("text") or ""),
            "ts": ts,
        }
        for key in ("blocks", "attachments", "thread_ts", "metadata"):
            if args.get(key):
                message[key] = args[key]
        return message

    def _channel_id(self, channel: str) -> str:
        if channel.startswith("#"):
            for cid, info in self.channels.items():
                if info.get("name") == channel[1:]:
                    return cid
            raise _Reply("channel_not_found")
        return channel

    def _chat_post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        self._check_message(args, text_limit=None)
        channel, ts = self._channel_id(str(args["channel"])), self._next_ts()
        message = self._message({**args, "text": str(args.get("text") or "")[:40_000]}, ts)
        self.messages[(channel, ts)] = message
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("ts"):
            raise _Reply("message_not_found")
        self._check_message(args, text_limit=4000)
        channel, ts = self._channel_id(str(args["channel"])), str(args["ts"])
        if self.strict_updates and (channel, ts) not in self.messages:
            raise _Reply("message_not_found")
        message = {**self.messages.get((channel, ts), {}), **self._message(args, ts)}
        if "blocks" not in args:
            message.pop("blocks", None)
        self.messages[(channel, ts)] = message
        return {"ok": True, "channel": channel, "ts": ts, "text": message["text"], "message": message}

    def _chat_post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        self._check_message(args, text_limit=None)
        if not args.get("user"):
            raise _Reply("invalid_arguments")
        return {"ok": True, "message_ts": self._next_ts()}

    def _chat_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = str(args.get("channel") or ""), str(args.get("ts") or "")
        if not channel:
            raise _Reply("channel_not_found")
        if not ts:
            raise _Reply("message_not_found")
        self.messages.pop((channel, ts), None)
        return {"ok": True, "channel": channel, "ts": ts}

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user_id = str(args.get("user") or "")
        if not user_id:
            raise _Reply("user_not_found")
        name = user_id.lower()
        user: dict[str, Any] = {
            "id": user_id,
            "team_id": TEAM_ID,
            "name": name,
            "deleted": False,
            "real_name": f"User {user_id}",
            "tz": "Europe/Paris",
            "tz_label": "Central European Time",
            "tz_offset": 3600,
            "profile": {"real_name": f"User {user_id}", "display_name": name, "team": TEAM_ID},
            "is_admin": False,
            "is_owner": False,
            "is_bot": False,
            "is_app_user": False,
            "updated": 1700000000,
        }
        return {"ok": True, "user": {**user, **self.users.get(user_id, {})}}

    def _usergroups_users_list(self, args: dict[str, Any]) -> dict[str, Any]:
        group = str(args.get("usergroup") or "")
        if group not in self.groups:
            raise _Reply("no_such_subteam")
        return {"ok": True, "users": list(self.groups[group])}

    def _conversations_info(self, args: dict[str, Any]) -> dict[str, Any]:
        cid = str(args.get("channel") or "")
        if cid[:1] not in ("C", "G", "D"):
            raise _Reply("channel_not_found")
        extra = self.channels.get(cid, {})
        name = str(extra.get("name") or f"channel-{cid.lower()}")
        channel = {
            "id": cid,
            "name": name,
            "name_normalized": name,
            "is_channel": cid.startswith("C"),
            "is_group": False,
            "is_im": cid.startswith("D"),
            "is_private": cid.startswith("G"),
            "is_archived": False,
            "is_general": False,
            "is_member": True,
            "created": 1700000000,
            "creator": "U0ADMIN",
            "topic": {"value": "", "creator": "", "last_set": 0},
            "purpose": {"value": "", "creator": "", "last_set": 0},
        }
        return {"ok": True, "channel": {**channel, **extra}}

    def _history_check(self, args: dict[str, Any]) -> str:
        cid = str(args.get("channel") or "")
        if cid[:1] not in ("C", "G", "D"):
            raise _Reply("channel_not_found")
        needed = {"G": "groups:history", "D": "im:history"}.get(cid[:1], "channels:history")
        if needed not in self.scopes:
            raise _Reply("missing_scope", needed=needed, provided=",".join(self.scopes))
        if self.channels.get(cid, {}).get("is_member") is False:
            raise _Reply("not_in_channel")
        return cid

    @staticmethod
    def _window(args: dict[str, Any]) -> tuple[float, float, bool, int, int]:
        """``oldest``, ``latest``, ``inclusive``, ``limit`` (Slack: default 100, at most 999) and the cursor."""
        try:
            oldest = float(args.get("oldest") or 0)
            latest = float(args.get("latest") or "inf")
            limit = max(1, min(int(args.get("limit") or 100), 999))
            start = int(str(args.get("cursor") or "0").removeprefix("bmV4dF90czo"))
        except ValueError as exc:
            raise _Reply("invalid_arguments") from exc
        inclusive = str(args.get("inclusive") or "").lower() in ("1", "true")
        return oldest, latest, inclusive, limit, start

    def _page(self, found: list[dict[str, Any]], args: dict[str, Any], start: int, limit: int) -> dict[str, Any]:
        with_meta = str(args.get("include_all_metadata") or "").lower() in ("1", "true")
        chosen = found[start : start + limit]
        page = [m if with_meta else {k: v for k, v in m.items() if k != "metadata"} for m in chosen]
        more = start + limit < len(found)
        return {"ok": True, "messages": page, "has_more": more,
                "response_metadata": {"next_cursor": f"bmV4dF90czo{start + limit}" if more else ""}}  # fmt: skip

    def _conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        """A channel's messages, newest first; thread replies are not among them (as in Slack)."""
        cid = self._history_check(args)
        oldest, latest, inclusive, limit, start = self._window(args)

        def inside(ts: float) -> bool:
            return (oldest <= ts <= latest) if inclusive else (oldest < ts < latest)

        found = [m for (c, ts), m in self.messages.items()
                 if c == cid and m.get("thread_ts", ts) == ts and inside(float(ts))]  # fmt: skip
        found.sort(key=lambda m: float(m["ts"]), reverse=True)
        return {**self._page(found, args, start, limit), "pin_count": 0, "channel_actions_ts": None,
                "channel_actions_count": 0}  # fmt: skip

    def _conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        """A thread: its parent first, then its replies oldest first (within ``oldest``/``latest``)."""
        cid = self._history_check(args)
        parent_ts = str(args.get("ts") or "")
        parent = self.messages.get((cid, parent_ts))
        if parent is None:
            raise _Reply("thread_not_found")
        oldest, latest, _, limit, start = self._window(args)
        replies = sorted((m for (c, ts), m in self.messages.items()
                          if c == cid and ts != parent_ts and m.get("thread_ts") == parent_ts
                          and oldest < float(ts) < latest), key=lambda m: float(m["ts"]))  # fmt: skip
        shown = {**parent, "thread_ts": parent_ts, "reply_count": len(replies)}
        return self._page([shown, *replies], args, start, limit)

    def _apps_connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        ticket = uuid.uuid4().hex
        self._tickets.add(ticket)
        return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/socket?ticket={ticket}&app_id={APP_ID}"}

    def _files_get_upload_url(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("filename") or not str(args.get("length") or "").isdigit():
            raise _Reply("invalid_arguments")
        file_id = f"F0{next(self._ids):08d}"
        self._uploads[file_id] = {"filename": str(args["filename"]), "length": int(args["length"]), "content": None}
        return {"ok": True, "upload_url": f"{self.base}/upload/{file_id}", "file_id": file_id}

    def _files_complete_upload(self, args: dict[str, Any]) -> dict[str, Any]:
        items = args.get("files")
        if not isinstance(items, list) or not items:
            raise _Reply("invalid_arguments")
        if any(self._uploads.get(str(item.get("id")), {}).get("content") is None for item in items):
            raise _Reply("file_not_found")
        channels: list[str | None] = [str(args["channel_id"])] if args.get("channel_id") else []
        channels += [c for c in str(args.get("channels") or "").split(",") if c]
        done = []
        for item in items:
            upload = self._uploads.pop(str(item["id"]))
            title = item.get("title") or upload["filename"]
            for channel in channels or [None]:
                self._completed.append(
                    UploadedFile(
                        file_id=str(item["id"]),
                        filename=upload["filename"],
                        title=title,
                        channel=channel,
                        content=upload["content"],
                        initial_comment=args.get("initial_comment"),
                        thread_ts=args.get("thread_ts"),
                    )
                )
            done.append({"id": item["id"], "title": title, "name": upload["filename"], "size": len(upload["content"])})
        return {"ok": True, "files": done}

    # ------------------------------------------------------------------ other endpoints

    async def _upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        if request.content_type == "multipart/form-data":
            form = await request.post()
            part = form.get("file")
            content = part.file.read() if isinstance(part, web.FileField) else str(part or "").encode()
        else:
            content = await request.read()
        upload = self._uploads.get(file_id)
        status, text = (200, f"OK - {len(content)}") if upload is not None else (404, "file not found")
        if upload is not None:
            upload["content"] = content
        response = {"ok": status == 200, "length": len(content)}
        await self._record(
            Call(
                "upload",
                {"file_id": file_id, "length": len(content)},
                dict(request.headers),
                time.monotonic(),
                status,
                response,
            )
        )
        return web.Response(status=status, text=text, content_type="text/plain")

    async def _hook(self, request: web.Request) -> web.Response:
        hook = request.match_info["hook"]
        raw = await request.read()
        try:
            args = json.loads(raw or b"{}")
        except ValueError:
            args = {"_body": raw}
        self._hook_uses[hook] = self._hook_uses.get(hook, 0) + 1
        status = 200 if self._hook_uses[hook] <= RESPONSE_URL_USES else 404
        args = {**args, "_hook": hook} if isinstance(args, dict) else {"_body": args, "_hook": hook}
        await self._record(
            Call("response_url", args, dict(request.headers), time.monotonic(), status, {"ok": status == 200})
        )
        return web.Response(status=status, text="ok" if status == 200 else "used_url", content_type="text/plain")

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            raise web.HTTPUnauthorized(text="invalid ticket")
        self._tickets.discard(ticket)
        ws = web.WebSocketResponse(autoping=True)  # answers the client's "sdk-ping-pong" pings with pongs
        await ws.prepare(request)
        self.socket_connections += 1
        self._sockets.append(ws)
        await ws.send_str(
            json.dumps(
                {
                    "type": "hello",
                    "num_connections": len(self._sockets),
                    "debug_info": {
                        "host": "standin-applink",
                        "build_number": 1,
                        "approximate_connection_time": 18060,
                    },
                    "connection_info": {"app_id": APP_ID},
                }
            )
        )
        await self._notify()
        try:
            while True:
                while self.socket_silent and not ws.closed:
                    await asyncio.sleep(0.05)
                msg = await ws.receive()
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                    break
                if msg.type == aiohttp.WSMsgType.TEXT:
                    try:
                        ack = json.loads(msg.data)
                    except ValueError:
                        ack = {"_raw": msg.data}
                    self.socket_acks.append(ack)
                    await self._notify()
        finally:
            self._sockets.remove(ws)
            await self._notify()
        return ws
