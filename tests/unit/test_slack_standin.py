"""The Slack stand-in answers the way slack_sdk and Bolt need, and signed requests pass Bolt's checks.

Every test here drives the stand-in with the real ``AsyncWebClient`` / ``AsyncApp`` /
``AsyncSocketModeHandler``, so the stand-in cannot drift from what the SDK expects.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import pytest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from tests.helpers.http_servers import serve
from tests.helpers.slack import (
    BOT_ID,
    BOT_USER_ID,
    TEAM_ID,
    SlackStandIn,
    block_actions_body,
    block_actions_payload,
    envelope,
    post_signed,
    sign,
    slash_command_body,
    slash_command_payload,
)

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TRICKY_TEXTS = [
    "status prod",
    "",
    'troubleshoot "504 gateway" & more',
    "a+b=c; 100% d'accord?",
    "déploiement 🚀 über — 日本語",
    "  leading and trailing  ",
    "<@U123|bob> <#C123|ops> <!here>",
    "line1\nline2",
    "key=value&token=xoxb-fake&x=%41",
]


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as standin:
        yield standin


def client_for(slack: SlackStandIn, token: str | None = "xoxb-test") -> AsyncWebClient:
    return AsyncWebClient(token=token, base_url=slack.url)


async def api_error(coro: Any) -> SlackApiError:
    with pytest.raises(SlackApiError) as info:
        await coro
    return info.value


# ---------------------------------------------------------------------- Web API shapes


async def test_url_is_the_sdk_base_url_form(slack: SlackStandIn) -> None:
    assert slack.url.startswith("http://127.0.0.1:") and slack.url.endswith("/api/")
    assert slack.url == f"http://127.0.0.1:{slack.port}/api/"


async def test_auth_test_has_what_bolt_reads(slack: SlackStandIn) -> None:
    response = await client_for(slack).auth_test()
    assert response.status_code == 200
    assert response["ok"] is True
    for key in ("url", "team", "user", "team_id", "user_id", "bot_id"):
        assert response[key], key
    assert response["team_id"] == TEAM_ID and response["user_id"] == BOT_USER_ID and response["bot_id"] == BOT_ID
    assert response["is_enterprise_install"] is False
    assert "chat:write" in response.headers["x-oauth-scopes"].split(",")
    call = slack.calls_to("auth.test")[0]
    assert call.headers["Authorization"] == "Bearer xoxb-test" and call.ok


async def test_tokens_are_checked(slack: SlackStandIn) -> None:
    assert (await api_error(client_for(slack, None).auth_test())).response["error"] == "not_authed"
    assert (await api_error(client_for(slack, "xoxp-user").auth_test())).response["error"] == "invalid_auth"
    wrong_kind = await api_error(client_for(slack, "xapp-1-test").chat_postMessage(channel="C0OPS", text="x"))
    assert wrong_kind.response["error"] == "not_allowed_token_type"
    bot_for_app = await api_error(client_for(slack).apps_connections_open(app_token="xoxb-test"))
    assert bot_for_app.response["error"] == "not_allowed_token_type"
    slack.valid_tokens = {"xoxb-only-this"}
    assert (await api_error(client_for(slack).auth_test())).response["error"] == "invalid_auth"
    assert (await client_for(slack, "xoxb-only-this").auth_test())["ok"]
    assert all(c.status == 200 for c in slack.calls), "auth errors are HTTP 200 with ok false, as on Slack"


async def test_chat_post_update_ephemeral_delete(slack: SlackStandIn) -> None:
    client = client_for(slack)
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*Checking prod...*"}}]
    first = await client.chat_postMessage(channel="C0OPS", text="Checking prod...", blocks=blocks)
    second = await client.chat_postMessage(channel="#ops", text="again", thread_ts=first["ts"])
    assert first["channel"] == "C0OPS" and second["channel"] == "C0OPS"
    assert float(second["ts"]) > float(first["ts"]) and len(first["ts"].split(".")[1]) == 6
    assert first["message"]["text"] == "Checking prod..." and first["message"]["blocks"] == blocks
    assert first["message"]["bot_id"] == BOT_ID and first["message"]["ts"] == first["ts"]
    assert second["message"]["thread_ts"] == first["ts"]
    assert slack.calls_to("chat.postMessage")[0].args["blocks"] == blocks  # JSON body, decoded

    updated = await client.chat_update(channel="C0OPS", ts=first["ts"], text="prod: healthy")
    assert (updated["channel"], updated["ts"], updated["text"]) == ("C0OPS", first["ts"], "prod: healthy")
    assert slack.message("C0OPS", first["ts"])["text"] == "prod: healthy"  # type: ignore[index]

    ephemeral = await client.chat_postEphemeral(channel="C0OPS", user="U0OPERATOR", text="only you")
    assert float(ephemeral["message_ts"]) > float(second["ts"])

    deleted = await client.chat_delete(channel="C0OPS", ts=second["ts"])
    assert deleted["ts"] == second["ts"] and slack.message("C0OPS", second["ts"]) is None

    with pytest.warns(UserWarning, match="text"):  # slack_sdk warns too
        assert (await api_error(client.chat_postMessage(channel="C0OPS"))).response["error"] == "no_text"
    assert (await api_error(client.chat_postMessage(channel="#nowhere", text="x"))).response[
        "error"
    ] == "channel_not_found"


async def test_history_and_replies_as_the_sdk_asks_for_them(slack: SlackStandIn) -> None:
    client = client_for(slack)
    meta = {"event_type": "opsbot_alert", "event_payload": {"delivery_id": "d1"}}
    first = await client.chat_postMessage(channel="C0OPS", text="one", metadata=meta)
    second = await client.chat_postMessage(channel="C0OPS", text="two")
    reply = await client.chat_postMessage(channel="C0OPS", text="in the thread", thread_ts=first["ts"], metadata=meta)
    history = await client.conversations_history(channel="C0OPS", oldest="0", limit=10, include_all_metadata=True)
    assert [m["text"] for m in history["messages"]] == ["two", "one"]  # newest first, no thread replies
    assert history["messages"][1]["metadata"] == meta and history["has_more"] is False
    bare = await client.conversations_history(channel="C0OPS", limit=1)
    assert "metadata" not in bare["messages"][0] and bare["has_more"] is True
    rest = await client.conversations_history(channel="C0OPS", limit=1, cursor=bare["response_metadata"]["next_cursor"])
    assert [m["ts"] for m in rest["messages"]] == [first["ts"]]
    after = await client.conversations_history(channel="C0OPS", oldest=first["ts"])
    assert [m["ts"] for m in after["messages"]] == [second["ts"]]  # oldest is exclusive
    thread = await client.conversations_replies(channel="C0OPS", ts=first["ts"], include_all_metadata=True)
    assert [m["ts"] for m in thread["messages"]] == [first["ts"], reply["ts"]]
    assert thread["messages"][1]["metadata"] == meta and thread["messages"][0]["reply_count"] == 1
    assert (await api_error(client.conversations_replies(channel="C0OPS", ts="1.000001"))).response["error"] == (
        "thread_not_found")  # fmt: skip
    slack.scopes = [s for s in slack.scopes if s != "channels:history"]
    refused = await api_error(client.conversations_history(channel="C0OPS"))
    assert refused.response["error"] == "missing_scope" and refused.response["needed"] == "channels:history"
    slack.scopes.append("channels:history")
    slack.channels["C0OPS"]["is_member"] = False
    assert (await api_error(client.conversations_history(channel="C0OPS"))).response["error"] == "not_in_channel"


async def test_form_encoded_blocks_are_decoded_and_checked(slack: SlackStandIn) -> None:
    blocks = [{"type": "section", "text": {"type": "plain_text", "text": "hi"}}]
    form = {"channel": "C0OPS", "blocks": json.dumps(blocks)}
    await client_for(slack).api_call("chat.postMessage", data=form)
    assert slack.calls[-1].args["blocks"] == blocks and slack.calls[-1].ok


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def button_block(label: str) -> dict[str, Any]:
    button = {"type": "button", "action_id": "approve", "value": "1", "text": {"type": "plain_text", "text": label}}
    return {"type": "actions", "elements": [button]}


@pytest.mark.parametrize(
    ("blocks", "ok"),
    [
        ([section("x")] * 50, True),
        ([section("x")] * 51, False),
        ([section("x" * 3000)], True),
        ([section("x" * 3001)], False),
        ([section("")], False),
        ([button_block("a" * 75)], True),
        ([button_block("a" * 76)], False),
        ([{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}], False),
        ([{"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11}], False),
    ],
)
async def test_block_kit_limits(slack: SlackStandIn, blocks: list[dict[str, Any]], ok: bool) -> None:
    client = client_for(slack)
    for call in (
        client.chat_postMessage(channel="C0OPS", text="t", blocks=blocks),
        client.chat_update(channel="C0OPS", ts="1700000000.000100", text="t", blocks=blocks),
    ):
        if ok:
            assert (await call)["ok"]
        else:
            error = await api_error(call)
            assert error.response.status_code == 200 and error.response["error"] == "invalid_blocks"
            assert any("json-pointer:/blocks" in e for e in error.response["errors"])


async def test_chat_update_text_limit(slack: SlackStandIn) -> None:
    client = client_for(slack)
    assert (await client.chat_update(channel="C0OPS", ts="1700000000.000100", text="x" * 4000))["ok"]
    error = await api_error(client.chat_update(channel="C0OPS", ts="1700000000.000100", text="x" * 4001))
    assert error.response["error"] == "msg_too_long"
    assert (await client.chat_postMessage(channel="C0OPS", text="x" * 39_000))["ok"]  # long posts are fine


async def test_users_groups_conversations(slack: SlackStandIn) -> None:
    client = client_for(slack)
    user = (await client.users_info(user="W0GRIDUSER"))["user"]
    assert user["id"] == "W0GRIDUSER" and user["team_id"] == TEAM_ID and "real_name" in user["profile"]
    slack.users["U1"] = {"real_name": "Ada", "is_admin": True}
    assert (await client.users_info(user="U1"))["user"]["real_name"] == "Ada"

    slack.groups = {"S0OPS": ["U1", "U2"]}
    assert (await client.usergroups_users_list(usergroup="S0OPS"))["users"] == ["U1", "U2"]
    missing = await api_error(client.usergroups_users_list(usergroup="S0NONE"))
    assert missing.response["error"] == "no_such_subteam"
    assert slack.calls_to("usergroups.users.list")[0].args["usergroup"] == "S0OPS"  # sent as query parameters

    channel = (await client.conversations_info(channel="C0OPS"))["channel"]
    assert channel["id"] == "C0OPS" and channel["name"] == "ops" and channel["is_channel"] is True


async def test_unknown_method_and_fixed_responses(slack: SlackStandIn) -> None:
    client = client_for(slack)
    error = await api_error(client.api_call("no.such.method"))
    assert error.response.status_code == 200 and error.response["error"] == "unknown_method"
    slack.set_response("views.open", {"ok": True, "view": {"id": "V1"}})
    assert (await client.views_open(trigger_id="1.2.3", view={"type": "modal"}))["view"]["id"] == "V1"


# ---------------------------------------------------------------------- faults


async def test_429_reaches_the_caller_without_a_retry_handler(slack: SlackStandIn) -> None:
    slack.fail_next("chat.postMessage", status=429, retry_after=7)
    error = await api_error(client_for(slack).chat_postMessage(channel="C0OPS", text="x"))
    assert error.response.status_code == 429
    assert error.response["error"] == "ratelimited" and error.response.headers["Retry-After"] == "7"
    assert (await client_for(slack).chat_postMessage(channel="C0OPS", text="x"))["ok"], "only the next call fails"


async def test_429_is_retried_after_retry_after(slack: SlackStandIn) -> None:
    client = client_for(slack)
    client.retry_handlers = [AsyncRateLimitErrorRetryHandler(max_retry_count=2)]
    slack.fail_next("chat.update", status=429, retry_after=1)
    response = await client.chat_update(channel="C0OPS", ts="1700000000.000100", text="done")
    assert response["ok"]
    failed, retried = slack.calls_to("chat.update")
    assert failed.status == 429 and retried.ok
    assert retried.time - failed.time >= 1.0, "the SDK waits Retry-After seconds"


async def test_5xx_and_api_errors(slack: SlackStandIn) -> None:
    client = client_for(slack)
    slack.fail_next("users.info", status=500)
    error = await api_error(client.users_info(user="U1"))
    assert error.response.status_code == 500 and error.response["error"] == "internal_error"

    client.retry_handlers = [AsyncServerErrorRetryHandler(max_retry_count=1)]
    slack.fail_next("users.info", status=503)
    assert (await client.users_info(user="U1"))["ok"]
    assert [c.status for c in slack.calls_to("users.info")] == [500, 503, 200]

    slack.fail_next("chat.update", error="msg_too_long", times=2)
    for _ in range(2):
        error = await api_error(client.chat_update(channel="C0OPS", ts="1.2", text="x"))
        assert error.response.status_code == 200 and error.response["error"] == "msg_too_long"
    assert (await client.chat_update(channel="C0OPS", ts="1.2", text="x"))["ok"]


async def test_wait_for_sees_past_and_future_calls(slack: SlackStandIn) -> None:
    client = client_for(slack)
    await client.chat_postMessage(channel="C0OPS", text="one")
    assert (await slack.wait_for("chat.postMessage")).args["text"] == "one"

    later = asyncio.create_task(slack.wait_for("chat.postMessage", lambda c: c.args.get("text") == "two", 30))
    await asyncio.sleep(0)  # one step of the loop: the task is waiting, before the call exists
    assert not later.done()
    await client.chat_postMessage(channel="C0OPS", text="two")
    assert (await later).args["text"] == "two"

    with pytest.raises(AssertionError, match=r"no chat\.update call within 0\.1s; calls seen:\n.*chat\.postMessage"):
        await slack.wait_for("chat.update", timeout=0.1)


# ---------------------------------------------------------------------- files


async def test_files_upload_v2_through_the_sdk(slack: SlackStandIn) -> None:
    client = client_for(slack)
    response = await client.files_upload_v2(
        channel="C0OPS", content="line 1\nline 2 é\n", filename="logs.txt", title="api logs", initial_comment="here"
    )
    assert response["ok"] and response["file"]["title"] == "api logs"
    await client.files_upload_v2(channel="C0OPS", content=b"\x00\x01binary", filename="dump.bin")
    first, second = slack.uploaded_files()
    assert (first.filename, first.title, first.channel, first.initial_comment) == (
        "logs.txt",
        "api logs",
        "C0OPS",
        "here",
    )
    assert first.content == "line 1\nline 2 é\n".encode()
    assert second.content == b"\x00\x01binary" and second.title == "dump.bin"
    get_url = slack.calls_to("files.getUploadURLExternal")[0]
    assert get_url.args["filename"] == "logs.txt" and int(get_url.args["length"]) == len(first.content)
    assert get_url.response["upload_url"].startswith(f"http://127.0.0.1:{slack.port}/upload/")
    assert [c.method for c in slack.calls] == [
        "files.getUploadURLExternal",
        "upload",
        "files.completeUploadExternal",
    ] * 2


async def test_complete_without_upload_fails(slack: SlackStandIn) -> None:
    client = client_for(slack)
    url = await client.files_getUploadURLExternal(filename="x.txt", length=3)
    error = await api_error(client.files_completeUploadExternal(files=[{"id": url["file_id"]}], channel_id="C0OPS"))
    assert error.response["error"] == "file_not_found" and slack.uploaded_files() == []


async def test_response_url_posts_are_recorded_and_limited(slack: SlackStandIn) -> None:
    url = slack.response_url("cmd1")
    webhook = AsyncWebhookClient(url)
    for i in range(5):
        assert (await webhook.send(text=f"update {i}", replace_original=True)).status_code == 200
    assert (await webhook.send(text="sixth")).status_code == 404
    calls = slack.calls_to("response_url")
    assert [c.args["text"] for c in calls[:2]] == ["update 0", "update 1"] and calls[0].args["replace_original"]


# ---------------------------------------------------------------------- what Slack sends


def test_sign_matches_slack_sdk() -> None:
    verifier = SignatureVerifier(SECRET)
    for body in (slash_command_body("status prod 🚀"), b'{"type":"event_callback"}', ""):
        headers = sign(SECRET, body)
        assert verifier.is_valid_request(body, headers)
        raw = body if isinstance(body, str) else body.decode()
        expected = verifier.generate_signature(timestamp=headers["X-Slack-Request-Timestamp"], body=raw)
        assert headers["X-Slack-Signature"] == expected
    old = sign(SECRET, "x", timestamp=int(time.time()) - 301)
    assert not verifier.is_valid_request("x", old), "more than 5 minutes off"
    assert not verifier.is_valid_request("x", sign("other-secret", "x"))


def test_slash_command_body_has_every_field_and_round_trips_text() -> None:
    for text in TRICKY_TEXTS:
        fields = parse_qs(slash_command_body(text, user_id="W0GRID"), keep_blank_values=True)
        assert fields["text"] == [text]
        assert fields["user_id"] == ["W0GRID"] and fields["command"] == ["/ops"]
    fields = parse_qs(slash_command_body("help", trigger_id="1.2.3", response_url="https://x/y"))
    assert set(fields) == {
        "token",
        "team_id",
        "team_domain",
        "channel_id",
        "channel_name",
        "user_id",
        "user_name",
        "command",
        "text",
        "api_app_id",
        "is_enterprise_install",
        "response_url",
        "trigger_id",
    }
    assert fields["is_enterprise_install"] == ["false"] and fields["trigger_id"] == ["1.2.3"]


def test_block_actions_body_shape() -> None:
    body = block_actions_body("approve", "42", user_id="U0APPROVER2", message_ts="1700000000.000200")
    (raw,) = parse_qs(body)["payload"]
    payload = json.loads(raw)
    assert payload["type"] == "block_actions" and payload["enterprise"] is None
    assert payload["user"]["id"] == "U0APPROVER2" and payload["user"]["team_id"] == TEAM_ID
    assert payload["container"] == {
        "type": "message",
        "message_ts": "1700000000.000200",
        "channel_id": "C0OPS",
        "is_ephemeral": False,
    }
    assert payload["message"]["ts"] == "1700000000.000200" and payload["message"]["blocks"]
    (action,) = payload["actions"]
    assert (action["action_id"], action["value"], action["type"]) == ("approve", "42", "button")
    assert action["text"] == {"type": "plain_text", "text": "Approve", "emoji": True} and action["action_ts"]
    for key in ("api_app_id", "token", "trigger_id", "team", "is_enterprise_install", "channel", "state"):
        assert key in payload, key
    assert payload["response_url"].startswith("https://hooks.slack.com/actions/")


# ---------------------------------------------------------------------- a real Bolt app, HTTP mode


def http_app(slack: SlackStandIn, seen: list[dict[str, Any]]) -> AsyncApp:
    app = AsyncApp(client=client_for(slack), signing_secret=SECRET, raise_error_for_unhandled_request=False)

    @app.command("/ops")
    async def on_ops(ack: Any, command: dict[str, Any]) -> None:
        seen.append(command)
        await ack(f"got {command.get('text')!r}")

    @app.action("approve")
    async def on_approve(ack: Any, body: dict[str, Any]) -> None:
        seen.append(body)
        await ack()

    return app


async def test_bolt_http_accepts_signed_requests_and_rejects_forged_ones(slack: SlackStandIn) -> None:
    seen: list[dict[str, Any]] = []
    async with serve(http_app(slack, seen).web_app()) as base:
        url = f"{base}/slack/events"
        for text in TRICKY_TEXTS:
            status, body, _ = await post_signed(url, slash_command_body(text), SECRET)
            assert status == 200, (text, body)
            assert seen[-1]["text"] == text and body == f"got {text!r}"  # ack(text): a plain-text body
        assert seen[-1]["user_id"] == "U0OPERATOR" and seen[-1]["is_enterprise_install"] == "false"

        status, _, _ = await post_signed(url, block_actions_body("approve", "7"), SECRET)
        assert status == 200 and seen[-1]["actions"][0]["value"] == "7"

        forged = slash_command_body("deploy prod")
        assert (await post_signed(url, forged, "wrong-secret"))[0] == 401
        stale = int(time.time()) - 6 * 60
        assert (await post_signed(url, forged, SECRET, timestamp=stale))[0] == 401
        tampered = {**sign(SECRET, slash_command_body("status prod")), "X-Slack-Retry-Num": "1"}
        status, _, _ = await post_signed(url, forged, SECRET, extra_headers=tampered)
        assert status == 401, "a signature for another body is refused"
    assert not any(c.get("text") == "deploy prod" for c in seen)
    assert len(slack.calls_to("auth.test")) == 1, "Bolt authorizes once with auth.test, then caches"


@pytest.mark.xfail(
    strict=True,
    reason="Bolt 1.30 parse_body: a form body containing the word 'payload' anywhere (here in the text) "
    "is read as an interactivity payload and comes out empty, so the command never reaches the listener",
)
async def test_bolt_http_slash_command_mentioning_payload(slack: SlackStandIn) -> None:
    seen: list[dict[str, Any]] = []
    async with serve(http_app(slack, seen).web_app()) as base:
        status, _, _ = await post_signed(f"{base}/slack/events", slash_command_body("troubleshoot payload"), SECRET)
    assert status == 200 and seen and seen[-1]["text"] == "troubleshoot payload"


# ---------------------------------------------------------------------- a real Bolt app, Socket Mode


async def test_bolt_socket_mode_receives_envelopes_and_acks(slack: SlackStandIn) -> None:
    seen: list[dict[str, Any]] = []
    app = AsyncApp(client=client_for(slack))

    @app.command("/ops")
    async def on_ops(ack: Any, command: dict[str, Any]) -> None:
        seen.append(command)
        await ack(f"on it: {command['text']}")

    @app.action("approve")
    async def on_approve(ack: Any) -> None:
        await ack()

    handler = AsyncSocketModeHandler(app, "xapp-1-test")  # its web client is app.client: the stand-in
    await handler.connect_async()
    try:
        opened = await slack.wait_for("apps.connections.open")
        assert opened.headers["Authorization"] == "Bearer xapp-1-test"
        assert opened.response["url"].startswith(f"ws://127.0.0.1:{slack.port}/socket?ticket=")

        payload = slash_command_payload("status prod", user_id="W0GRID")
        eid = await slack.socket_send(envelope("slash_commands", payload))
        ack = await slack.wait_for_ack(eid)
        assert ack == {"envelope_id": eid, "payload": {"text": "on it: status prod"}}
        assert seen[-1]["user_id"] == "W0GRID" and seen[-1]["text"] == "status prod"

        click = await slack.socket_send(envelope("interactive", block_actions_payload("approve", "1")))
        assert await slack.wait_for_ack(click) == {"envelope_id": click}

        await slack.socket_disconnect("refresh_requested")  # Slack refreshes connections every few hours
        await slack.socket_connected(2)
        again = await slack.socket_send(
            {"envelope_id": "e-after-refresh", "type": "slash_commands", "payload": slash_command_payload("help")}
        )
        assert (await slack.wait_for_ack(again))["payload"] == {"text": "on it: help"}
        assert len(slack.calls_to("apps.connections.open")) == 2
    finally:
        await handler.close_async()


async def test_group_resolver_caches_and_refuses_when_slack_cannot_answer(slack: SlackStandIn) -> None:
    from adapters.errors import AdapterError
    from bot.slack.groups import SlackGroupResolver

    slack.groups = {"S0OPS": ["U0A", "U0B"]}
    resolver = SlackGroupResolver(client_for(slack), ttl=60)
    assert await resolver.members("S0OPS") == {"U0A", "U0B"}
    assert await resolver.members("S0OPS") == {"U0A", "U0B"}
    assert len(slack.calls_to("usergroups.users.list")) == 1  # cached
    with pytest.raises(AdapterError, match="no_such_subteam"):
        await resolver.members("S0NOPE")
    slack.fail_next("usergroups.users.list", error="plan_upgrade_required")
    with pytest.raises(AdapterError, match="plan_upgrade_required"):
        await SlackGroupResolver(client_for(slack)).members("S0OPS")
