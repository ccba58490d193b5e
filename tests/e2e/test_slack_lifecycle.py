"""``opsbot serve`` beyond one request: Socket Mode, SIGTERM drain, Slack refusing or rate-limiting calls."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time

import httpx
import pytest

from tests.e2e.botproc import SECRET, shop_config, start_bot
from tests.helpers.http_servers import GATE_ENTERED, GATE_OPEN, health_app, serve
from tests.helpers.slack import (
    SlackStandIn,
    block_errors,
    envelope,
    post_signed,
    slash_command_body,
    slash_command_payload,
)

pytestmark = pytest.mark.docker


def slow_env(shop, base: str) -> dict:
    return {
        "slow": {
            "url": base,
            "runtime": {"kind": "compose", "project": "slowproj", "docker_host": shop.host},
            "services": {"api": {}},
            # held at the gate until the test opens it: a procedure that runs as long as the test needs
            "health_checks": [{"name": "Slow", "url": "{url}/gate", "timeout": "120s"}],
        }
    }


async def test_socket_mode(shop, tmp_path):
    async with SlackStandIn() as slack:
        config = shop_config(tmp_path / "ops.yml", shop)
        bot = await start_bot(
            tmp_path, config, slack.url, SLACK_APP_TOKEN="xapp-1-A0OPSBOT-1-test", SLACK_SIGNING_SECRET=""
        )
        try:
            await slack.socket_connected(timeout=15)
            envelope_id = await slack.socket_send(envelope("slash_commands", slash_command_payload("health prod")))
            await slack.wait_for_ack(envelope_id, timeout=20)  # how fast: bench/ack_latency.py
            update = await slack.wait_for("chat.update", lambda c: "prod: OK" in c.args.get("text", ""), timeout=20)
            assert block_errors(update.args["blocks"]) == []
            envelope_id = await slack.socket_send(envelope("slash_commands", slash_command_payload("help logs")))
            ack = await slack.wait_for_ack(envelope_id, timeout=3)
            assert ack["payload"]["response_type"] == "ephemeral" and "logs" in json.dumps(ack["payload"]["blocks"])
            # the same command delivered twice (a new envelope, the same trigger): acknowledged twice, run once
            dropped = await bot.metric("opsbot_duplicates_total", kind="slash_command")
            twice = slash_command_payload("health prod", channel_id="C0TWICE", trigger_id="777.888.socket-duplicate")
            for _ in range(2):
                await slack.wait_for_ack(await slack.socket_send(envelope("slash_commands", twice)), timeout=20)
            answered = lambda c: c.args["channel"] == "C0TWICE" and "prod: OK" in c.args["text"]  # noqa: E731
            await slack.wait_for("chat.update", answered, timeout=20)
            assert await bot.metric("opsbot_duplicates_total", kind="slash_command") == dropped + 1
            assert len([c for c in slack.calls_to("chat.postMessage") if c.args["channel"] == "C0TWICE"]) == 1
            async with httpx.AsyncClient() as client:  # health and metrics are served in Socket Mode too
                assert (await client.get(f"{bot.url}/health")).json() == {"status": "ok"}
                assert (await client.post(f"{bot.url}/slack/events", content="x")).status_code in (404, 405)
        finally:
            assert await bot.stop() == 0
        bot.assert_clean()


async def draining(bot) -> httpx.Response:
    """/health once it says the bot is draining (polled: the signal is handled when the loop gets to it)."""
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient() as client:
        while (r := await client.get(f"{bot.url}/health")).status_code != 503:
            assert time.monotonic() < deadline, f"/health still says {r.status_code} {r.text}"
            await asyncio.sleep(0.05)
    return r


async def test_sigterm_drains_running_procedures(shop, tmp_path):
    app = health_app()
    async with SlackStandIn() as slack, serve(app) as base:
        config = shop_config(tmp_path / "ops.yml", shop, extra_envs=slow_env(shop, base))
        bot = await start_bot(tmp_path, config, slack.url)
        status, _, _ = await post_signed(f"{bot.url}/slack/events", slash_command_body("health slow"), SECRET)
        assert status == 200
        await slack.wait_for("chat.postMessage", lambda c: "Checking slow" in c.args.get("text", ""), timeout=10)
        await asyncio.wait_for(app[GATE_ENTERED].wait(), 30)  # the check is running, held at the gate
        stopping = asyncio.create_task(bot.stop(timeout=60))
        # while draining: no new work is taken, and /health says so
        assert (await draining(bot)).json() == {"status": "draining"}
        status, body, _ = await post_signed(f"{bot.url}/slack/events", slash_command_body("health prod"), SECRET)
        assert status == 200 and "restarting" in body
        assert not stopping.done()  # the check is still held: the process waits for it
        app[GATE_OPEN].set()
        assert await stopping == 0
        # the procedure finished and its result was posted before the process exited
        update = await slack.wait_for("chat.update", lambda c: "slow: CRITICAL" in c.args.get("text", ""), timeout=5)
        assert "*Slow*: HTTP 503" in json.dumps(update.args["blocks"])
        assert not [c for c in slack.calls_to("chat.postMessage") if "Checking prod" in c.args.get("text", "")]
        bot.assert_clean()
        assert "stopped" in bot.logs() and "cut off" not in bot.logs()


async def test_a_procedure_that_outlives_the_drain_seconds_is_cut_off(shop, tmp_path):
    app = health_app()
    async with SlackStandIn() as slack, serve(app) as base:
        config = shop_config(tmp_path / "ops.yml", shop, extra_envs=slow_env(shop, base))
        bot = await start_bot(tmp_path, config, slack.url, OPSBOT_DRAIN_SECONDS="1")
        status, _, _ = await post_signed(f"{bot.url}/slack/events", slash_command_body("health slow"), SECRET)
        assert status == 200
        await asyncio.wait_for(app[GATE_ENTERED].wait(), 30)  # held at the gate, never let through
        assert await bot.stop(timeout=60) == 0  # exits after its drain seconds, without the check's answer
        assert "cut 1 procedure(s) that did not finish within 1 s" in bot.logs()
        assert "stopped; 1 procedure(s) were cut off" in bot.logs()
        assert not [c for c in slack.calls_to("chat.update") if "slow: " in c.args.get("text", "")]
        assert bot.audit("command = 'health slow'") == [("requested", "health slow", "accepted")]
        app[GATE_OPEN].set()


async def test_rate_limits_are_retried_and_refusals_are_not_lost(shop, tmp_path):
    async with SlackStandIn() as slack:
        config = shop_config(tmp_path / "ops.yml", shop)
        bot = await start_bot(tmp_path, config, slack.url)
        try:
            # 429 with Retry-After on the result's chat.update: retried, the result still arrives
            slack.fail_next("chat.update", status=429, retry_after=1)
            await post_signed(f"{bot.url}/slack/events", slash_command_body("health prod"), SECRET)
            update = await slack.wait_for("chat.update", lambda c: c.ok and "prod: OK" in c.args.get("text", ""), 20)
            failed = [c for c in slack.calls_to("chat.update") if c.status == 429]
            assert failed and update.time - failed[0].time >= 1.0  # honoured Retry-After

            # the channel refuses the bot: logged with the request id, told to the user, kept in the audit log
            slack.fail_next("chat.postMessage", error="channel_not_found", times=2)
            await post_signed(f"{bot.url}/slack/events", slash_command_body("escalate L2", channel_id="C0GONE"),
                              SECRET)  # fmt: skip
            ephemeral = await slack.wait_for("chat.postEphemeral", timeout=15)
            assert ephemeral.args["user"] == "U0OPERATOR" and "Escalating to L2" in ephemeral.args["text"]
        finally:
            assert await bot.stop() == 0
        logs = bot.logs()
        assert "chat.postMessage failed: channel_not_found" in logs and "Traceback" not in logs
        line = next(x for x in logs.splitlines() if "chat.postMessage failed" in x)
        request_id = line.split("] [")[2]
        rows = (
            sqlite3.connect(tmp_path / "opsbot.db")
            .execute("SELECT event, command FROM audit WHERE request_id = ? ORDER BY id", (request_id,))
            .fetchall()
        )
        assert rows == [("requested", "escalate L2"), ("succeeded", "escalate L2")]


async def test_log_lines_follow_the_guide_format(shop, tmp_path):
    async with SlackStandIn() as slack:
        bot = await start_bot(tmp_path, shop_config(tmp_path / "ops.yml", shop), slack.url)
        await post_signed(f"{bot.url}/slack/events", slash_command_body("help"), SECRET)
        assert await bot.stop() == 0
    import re

    pattern = re.compile(
        r"^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\] \[(INFO|WARNING|ERROR|DEBUG)\] \[[^\]]+\] \[.*\]$"
    )
    lines = [x for x in bot.logs().splitlines() if x.strip()]
    assert lines and all(pattern.match(x) for x in lines), [x for x in lines if not pattern.match(x)][:5]
    assert any("/ops 'help' from U0OPERATOR" in x and "[-]" not in x for x in lines)
