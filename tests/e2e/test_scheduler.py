"""``opsbot serve`` runs ops.yml's schedules: a failing health check is one alert, edited when it recovers."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time

import pytest
import pytest_asyncio

from tests.e2e.botproc import start_bot
from tests.helpers.configs import ALERT_CHANNELS as CHANNELS
from tests.helpers.configs import schedule_config
from tests.helpers.http_servers import SwitchedHealth, serve
from tests.helpers.slack import SlackStandIn

pytestmark = pytest.mark.asyncio(loop_scope="module")



@pytest_asyncio.fixture(loop_scope="module")
async def slack():
    async with SlackStandIn() as standin:
        yield standin


@pytest_asyncio.fixture(loop_scope="module")
async def health():
    h = SwitchedHealth()
    async with serve(h.app) as url:
        h.url = url
        yield h


async def eventually(check, what: str, timeout: float = 30) -> None:
    """Poll ``check()`` until it is true."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


def scheduled_runs(bot) -> int:
    """How many scheduled health runs the bot finished (its audit log)."""
    return len(bot.audit("source = 'scheduler' AND command = 'status prod' AND event = 'succeeded'"))


def alerts(slack):
    return [c for c in slack.calls_to("chat.postMessage") if c.args.get("channel") in CHANNELS.values()
            and not c.args.get("thread_ts")]  # fmt: skip


def about(call, what):
    return what in json.dumps(call.args.get("blocks"))


async def test_a_failing_health_check_is_one_message_edited_when_it_recovers(slack, health, tmp_path):
    bot = await start_bot(tmp_path, schedule_config(tmp_path / "ops.yml", health.url), slack.url)
    try:
        first = await slack.wait_for("chat.postMessage", lambda c: c.args.get("channel") == "C0CRITICAL"
                                     and about(c, "API Health"), 15)  # fmt: skip
        assert first.args["text"].startswith(":red_circle: CRITICAL prod: API Health: HTTP 503")
        buttons = [e["text"]["text"] for b in first.args["blocks"] if b["type"] == "actions" for e in b["elements"]]
        assert buttons == ["Acknowledge", "Silence 1h", "Troubleshoot"]
        ts = first.response["ts"]
        hits = health.hits
        while health.hits < hits + 3:  # still failing, run after run...
            await asyncio.sleep(0.1)
        assert len([c for c in alerts(slack) if about(c, "API Health")]) == 1  # ...and still one message
        health.ok = True
        await slack.wait_for("chat.update", lambda c: c.args.get("ts") == ts and "RESOLVED" in json.dumps(
            c.args.get("blocks")), 15)  # fmt: skip
        said = await slack.wait_for("chat.postMessage", lambda c: c.args.get("thread_ts") == ts
                                    and "Resolved after" in c.args["text"], 15)  # fmt: skip
        assert said.ok
        settled = len(alerts(slack))
        runs = scheduled_runs(bot)
        # still running every second (three more runs finished, each with its alert decided)...
        await eventually(lambda: scheduled_runs(bot) >= runs + 3, "the schedule stopped running")
        assert len(alerts(slack)) == settled  # ...and quiet while ok
        assert len([c for c in alerts(slack) if about(c, "API Health")]) == 1
    finally:
        assert await bot.stop() == 0
    bot.assert_clean()
    assert "scheduler: 1 schedule(s): health_check:prod:1s" in bot.logs()
    with sqlite3.connect(tmp_path / "opsbot.db") as db:
        rows = db.execute("SELECT DISTINCT source, actor FROM audit WHERE command = 'status prod'").fetchall()
        state = db.execute("SELECT last_severity, running_by FROM schedule_state").fetchall()
        incidents = db.execute("SELECT what, state, count >= 4 FROM incidents WHERE what = 'API Health'").fetchall()
        events = {r[0] for r in db.execute("SELECT event FROM audit WHERE event LIKE 'alert-%'")}
    assert rows == [("scheduler", "scheduler")]
    assert state == [("critical", None)]  # the engine of this config is not there: critical, an alert of its own
    assert incidents == [("API Health", "resolved", 1)]
    assert {"alert-opened", "alert-resolved"} <= events


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
