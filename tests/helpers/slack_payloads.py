"""What Slack sends to the bot, signed as Slack signs it: slash commands, button clicks, envelopes.

``slash_command_body`` / ``block_actions_body`` build the form bodies (field for field as Slack sends
them, see ``spec/slack-payloads.md``), ``sign`` makes ``X-Slack-Signature`` and its timestamp,
``envelope`` wraps a payload for Socket Mode, ``post_signed`` posts a body and times the answer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any
from urllib.parse import urlencode

import aiohttp

TEAM_ID = "T0TEAM"
TEAM_DOMAIN = "opsteam"
TEAM_NAME = "Ops Team"
APP_ID = "A0OPSBOT"
BOT_ID = "B0OPSBOT"
BOT_USER_ID = "U0OPSBOT"
#: the deprecated verification token Slack still puts in payloads (never to be trusted)
VERIFICATION_TOKEN = "verification-token-deprecated"


def sign(secret: str, body: bytes | str, timestamp: int | None = None) -> dict[str, str]:
    """The two headers Slack signs a request with: ``v0=`` HMAC-SHA256 of ``v0:{timestamp}:{body}``."""
    ts = int(time.time()) if timestamp is None else timestamp
    raw = body.encode("utf-8") if isinstance(body, str) else body
    digest = hmac.new(secret.encode("utf-8"), b"v0:%d:" % ts + raw, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": f"v0={digest}"}


def _trigger_id() -> str:
    return f"{int(time.time() * 1000)}.{uuid.uuid4().int % 10**10}.{uuid.uuid4().hex}"


def slash_command_payload(
    text: str,
    *,
    user_id: str = "U0OPERATOR",
    channel_id: str = "C0OPS",
    command: str = "/ops",
    team_id: str = TEAM_ID,
    trigger_id: str | None = None,
    response_url: str | None = None,
    user_name: str | None = None,
    channel_name: str = "ops",
) -> dict[str, str]:
    """The fields of a slash command, in Slack's order, all strings (the Socket Mode ``payload``)."""
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "team_domain": TEAM_DOMAIN,
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name or user_id.lower(),
        "command": command,
        "text": text,
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": response_url or f"https://hooks.slack.com/commands/{team_id}/1234567890/{uuid.uuid4().hex}",
        "trigger_id": trigger_id or _trigger_id(),
    }


def slash_command_body(
    text: str,
    *,
    user_id: str = "U0OPERATOR",
    channel_id: str = "C0OPS",
    command: str = "/ops",
    team_id: str = TEAM_ID,
    trigger_id: str | None = None,
    response_url: str | None = None,
    user_name: str | None = None,
    channel_name: str = "ops",
) -> str:
    """A slash command as Slack POSTs it: ``application/x-www-form-urlencoded``, text exactly as typed."""
    return urlencode(
        slash_command_payload(
            text,
            user_id=user_id,
            channel_id=channel_id,
            command=command,
            team_id=team_id,
            trigger_id=trigger_id,
            response_url=response_url,
            user_name=user_name,
            channel_name=channel_name,
        )
    )


def block_actions_payload(
    action_id: str,
    value: str,
    *,
    user_id: str = "U0APPROVER1",
    channel_id: str = "C0OPS",
    message_ts: str = "1700000000.000100",
    action_ts: str | None = None,
    block_id: str = "approval",
    text: str = "Approve",
    team_id: str = TEAM_ID,
    message_blocks: list[dict[str, Any]] | None = None,
    response_url: str | None = None,
    user_name: str | None = None,
) -> dict[str, Any]:
    """A button click (``block_actions``) on a message the bot posted, as a dict."""
    button = {
        "type": "button",
        "action_id": action_id,
        "block_id": block_id,
        "value": value,
        "text": {"type": "plain_text", "text": text, "emoji": True},
        "action_ts": action_ts or f"{time.time():.6f}",
    }
    blocks = message_blocks
    if blocks is None:
        element = {k: button[k] for k in ("type", "action_id", "value", "text")}
        blocks = [{"type": "actions", "block_id": block_id, "elements": [element]}]
    name = user_name or user_id.lower()
    return {
        "type": "block_actions",
        "user": {"id": user_id, "username": name, "name": name, "team_id": team_id},
        "api_app_id": APP_ID,
        "token": VERIFICATION_TOKEN,
        "trigger_id": _trigger_id(),
        "team": {"id": team_id, "domain": TEAM_DOMAIN},
        "enterprise": None,
        "is_enterprise_install": False,
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel_id, "is_ephemeral": False},
        "channel": {"id": channel_id, "name": "ops" if channel_id == "C0OPS" else channel_id.lower()},
        "message": {
            "type": "message",
            "ts": message_ts,
            "text": "This content can't be displayed.",
            "blocks": blocks,
            "bot_id": BOT_ID,
            "user": BOT_USER_ID,
            "team": team_id,
        },
        "state": {"values": {}},
        "response_url": response_url or f"https://hooks.slack.com/actions/{team_id}/1234567890/{uuid.uuid4().hex}",
        "actions": [button],
    }


def block_actions_body(
    action_id: str,
    value: str,
    *,
    user_id: str = "U0APPROVER1",
    channel_id: str = "C0OPS",
    message_ts: str = "1700000000.000100",
    action_ts: str | None = None,
    block_id: str = "approval",
    text: str = "Approve",
    team_id: str = TEAM_ID,
    message_blocks: list[dict[str, Any]] | None = None,
    response_url: str | None = None,
    user_name: str | None = None,
) -> str:
    """A button click as Slack POSTs it: the form body ``payload=<json>``."""
    payload = block_actions_payload(
        action_id,
        value,
        user_id=user_id,
        channel_id=channel_id,
        message_ts=message_ts,
        action_ts=action_ts,
        block_id=block_id,
        text=text,
        team_id=team_id,
        message_blocks=message_blocks,
        response_url=response_url,
        user_name=user_name,
    )
    return urlencode({"payload": json.dumps(payload, separators=(",", ":"))})


def envelope(
    kind: str, payload: dict[str, Any], *, envelope_id: str | None = None, accepts_response_payload: bool | None = None
) -> dict[str, Any]:
    """A Socket Mode envelope: ``kind`` is ``slash_commands``, ``interactive`` or ``events_api``."""
    accepts = kind != "events_api" if accepts_response_payload is None else accepts_response_payload
    result: dict[str, Any] = {
        "envelope_id": envelope_id or str(uuid.uuid4()),
        "payload": payload,
        "type": kind,
        "accepts_response_payload": accepts,
    }
    if kind == "events_api":
        result.update(retry_attempt=0, retry_reason="")
    return result


async def post_signed(
    url: str,
    body: bytes | str,
    secret: str,
    *,
    content_type: str = "application/x-www-form-urlencoded",
    timestamp: int | None = None,
    extra_headers: dict[str, str] | None = None,
) -> tuple[int, str, float]:
    """POST ``body`` to ``url`` signed with ``secret`` as Slack does; returns (status, text, elapsed seconds)."""
    raw = body.encode("utf-8") if isinstance(body, str) else body
    headers = {"Content-Type": content_type, **sign(secret, raw, timestamp), **(extra_headers or {})}
    start = time.perf_counter()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        async with session.post(url, data=raw, headers=headers) as response:
            text = await response.text()
            return response.status, text, time.perf_counter() - start
