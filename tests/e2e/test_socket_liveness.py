"""Socket Mode liveness from the ``opsbot serve`` process: a silent socket is reopened; Slack gone is a 503."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import yaml

from tests.e2e.botproc import start_bot
from tests.helpers.configs import example_config
from tests.helpers.slack import SlackStandIn

APP_TOKEN = "xapp-1-A0OPSBOT-1-test"


def quiet_config(path):
    config = example_config()
    config["environments"]["prod"]["runtime"]["docker_host"] = "unix:///nonexistent.sock"
    config["schedules"] = []
    # no email digest: the example's SMTP server is not there (a weekday's first start would warn of it)
    for key in ("info", "email"):
        config.get("alerting", {}).pop(key, None)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


async def until(check, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not seen within {timeout} s")
        await asyncio.sleep(0.2)


@pytest.mark.asyncio
async def test_a_silent_socket_is_reopened_and_slack_gone_is_a_503_with_the_reason(tmp_path):
    async with SlackStandIn() as slack:
        bot = await start_bot(tmp_path, quiet_config(tmp_path / "ops.yml"), slack.url, SLACK_APP_TOKEN=APP_TOKEN,
                              SLACK_SIGNING_SECRET="", OPSBOT_SLACK_SILENT_AFTER="3",
                              OPSBOT_SLACK_UNREACHABLE_AFTER="6")  # fmt: skip
        try:
            async with httpx.AsyncClient(base_url=bot.url, timeout=5) as http:
                await slack.socket_connected(timeout=15)
                assert (await http.get("/health")).json() == {"status": "ok"}
                metrics = (await http.get("/metrics")).text
                assert "opsbot_slack_seconds_since_last_event" in metrics
                started = bot.logs()  # Socket Mode starts as quietly as HTTP mode: no warning, no traceback
                assert "connected to Slack in Socket Mode" in started, started
                assert "WARNING" not in started and "Traceback" not in started, started
                # the connection stays open but nothing comes through it: reopened
                slack.socket_silent = True
                before = slack.socket_connections
                await until(lambda: asyncio.sleep(0, slack.socket_connections > before), 30, "a new connection")
                slack.socket_silent = False
                await slack.socket_connected(count=before + 1, timeout=15)
                assert (await http.get("/health")).status_code == 200

                # Slack gone: no new connection can be made, the open one says nothing
                slack.down, slack.socket_silent = True, True

                async def unavailable():
                    r = await http.get("/health")
                    return r if r.status_code == 503 else None

                answer = await until(unavailable, 40, "/health 503")
                body = answer.json()
                assert body["status"] == "slack unreachable"
                assert body["reason"].startswith("nothing from Slack's Socket Mode for ")
                seconds = [float(line.split()[-1]) for line in (await http.get("/metrics")).text.splitlines()
                           if line.startswith("opsbot_slack_seconds_since_last_event")]  # fmt: skip
                assert seconds and seconds[0] > 6
                # Slack back: the bot reconnects by itself and is healthy again
                slack.down, slack.socket_silent = False, False

                async def healthy():
                    return (await http.get("/health")).status_code == 200

                await until(healthy, 40, "/health 200 again")
        finally:
            assert await bot.stop() == 0
        assert "reconnecting" in bot.logs()
