"""``opsbot serve`` runs ops.yml's schedules: a failing health check alerts, its recovery says so; off is off."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time

import pytest
import pytest_asyncio
import yaml
from aiohttp import web

from tests.e2e.botproc import ROOT, start_bot
from tests.helpers.http_servers import serve
from tests.helpers.slack import SlackStandIn

pytestmark = pytest.mark.asyncio(loop_scope="module")
CHANNELS = {"critical": "C0CRITICAL", "warning": "C0WARNING", "info": "C0INFO"}


class Health:
    """A /health endpoint the test turns bad and good again; counts its hits."""

    def __init__(self) -> None:
        self.ok = False
        self.hits = 0
        self.app = web.Application()
        self.app.router.add_get("/health", self.health)

    async def health(self, request: web.Request) -> web.Response:
        self.hits += 1
        if self.ok:
            return web.json_response({"status": "ok"})
        return web.json_response({"status": "down"}, status=503)


@pytest_asyncio.fixture(loop_scope="module")
async def slack():
    async with SlackStandIn() as standin:
        yield standin


@pytest_asyncio.fixture(loop_scope="module")
async def health():
    h = Health()
    async with serve(h.app) as url:
        h.url = url
        yield h


def schedule_config(path, url):
    config = yaml.safe_load((ROOT / "examples" / "ops.yml").read_text())
    config["slack"] = {"alert_channels": CHANNELS}
    config["environments"] = {"prod": {
        "url": url,
        "runtime": {"kind": "compose", "project": "nothing-here", "docker_host": "unix:///nonexistent.sock"},
        "services": {"api": {}},
        "health_checks": [{"name": "API Health", "url": "{url}/health", "expect": {"status": "ok"}, "timeout": "2s"}],
    }}  # fmt: skip
    config["troubleshooting"] = [
        {"issue": "Down", "symptoms": ["down"], "resolution": "Restart", "diagnose": ["health"]}
    ]
    config["schedules"] = [{"task": "health_check", "env": "prod", "every": "1s"}]
    for section in ("requirements", "monitoring", "alerting", "maintenance", "security_maintenance"):
        config.pop(section, None)  # they name services and a backup this config has not
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


async def eventually(check, what: str, timeout: float = 30) -> None:
    """Poll ``check()`` until it is true."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


def scheduled_runs(bot) -> int:
    """How many scheduled health runs the bot finished (its audit log)."""
    return len(bot.audit("source = 'scheduler' AND command = 'health prod' AND event = 'succeeded'"))


def alerts(slack):
    return [c for c in slack.calls_to("chat.postMessage") if c.args.get("channel") in CHANNELS.values()]


async def test_a_failing_health_check_alerts_and_its_recovery_is_posted(slack, health, tmp_path):
    bot = await start_bot(tmp_path, schedule_config(tmp_path / "ops.yml", health.url), slack.url)
    try:
        first = await slack.wait_for("chat.postMessage", lambda c: c.args.get("channel") == "C0CRITICAL", 15)
        assert first.args["text"].startswith(":red_circle: Scheduled `health prod`: CRITICAL")
        assert "API Health" in json.dumps(first.args["blocks"])
        health.ok = True
        recovered = await slack.wait_for(
            "chat.postMessage", lambda c: c.args.get("channel") == "C0CRITICAL" and "recovered" in c.args["text"], 15
        )
        assert recovered.args["text"] == ":large_green_circle: Scheduled `health prod` recovered: OK (was CRITICAL)"
        settled = len(alerts(slack))
        runs = scheduled_runs(bot)
        # still running every second (three more runs finished, each with its alert decided)...
        await eventually(lambda: scheduled_runs(bot) >= runs + 3, "the schedule stopped running")
        assert len(alerts(slack)) == settled  # ...and quiet while ok
    finally:
        assert await bot.stop() == 0
    bot.assert_clean()
    assert "scheduler: 1 schedule(s): health_check:prod:1s" in bot.logs()
    with sqlite3.connect(tmp_path / "opsbot.db") as db:
        rows = db.execute("SELECT DISTINCT source, actor FROM audit WHERE command = 'health prod'").fetchall()
        state = db.execute("SELECT last_severity, running_by FROM schedule_state").fetchall()
    assert rows == [("scheduler", "scheduler")]
    assert state == [("ok", None)]


async def test_opsbot_scheduler_off_runs_nothing(slack, health, tmp_path):
    health.ok, health.hits = False, 0
    bot = await start_bot(tmp_path, schedule_config(tmp_path / "ops.yml", health.url), slack.url,
                          OPSBOT_SCHEDULER="off")  # fmt: skip
    try:
        # the bot decided not to schedule anything (a positive sign, not a pause)
        await eventually(lambda: "scheduler off" in bot.logs(), "the bot did not say the scheduler is off")
        assert health.hits == 0 and alerts(slack) == []
    finally:
        assert await bot.stop() == 0
    bot.assert_clean()
    assert "scheduler off" in bot.logs() and "scheduler: " not in bot.logs()
