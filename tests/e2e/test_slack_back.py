"""``opsbot serve``'s back process: procedures run there, below the front; it never outlives the front."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import time
from pathlib import Path

import httpx

from bot.doors.back import NICE
from tests.e2e.botproc import SECRET, BotProcess, engine_free_config, start_bot
from tests.helpers.http_servers import health_app, serve
from tests.helpers.slack import SlackStandIn, post_signed, slash_command_body


async def back_of(bot: BotProcess, timeout: float = 30) -> int:
    """The pid of the bot's back process (once it runs)."""
    deadline = time.monotonic() + timeout
    while True:
        for task in Path(f"/proc/{bot.proc.pid}/task").iterdir():
            for pid in (task / "children").read_text().split():
                if b"bot.doors.back" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return int(pid)
        assert time.monotonic() < deadline, "no back process"
        await asyncio.sleep(0.1)


async def until(check, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)


def checking(slack: SlackStandIn) -> list[str]:
    return [c.response["ts"] for c in slack.calls_to("chat.postMessage") if "Checking prod" in c.args.get("text", "")]


def results(slack: SlackStandIn) -> list[str]:
    return [c.args["text"] for c in slack.calls_to("chat.update") if "prod: " in c.args.get("text", "")]


async def test_procedures_run_in_the_back_and_the_front_takes_over_when_it_dies(tmp_path):
    # every health check answers after 2 s: a procedure is still running when the back is killed
    async with SlackStandIn() as slack, serve(health_app(delay=2)) as base:
        bot = await start_bot(tmp_path, engine_free_config(tmp_path, base), slack.url, OPSBOT_SCHEDULER="off")
        try:
            back = await back_of(bot)
            front = os.getpriority(os.PRIO_PROCESS, bot.proc.pid)
            await until(lambda: os.getpriority(os.PRIO_PROCESS, back) == front + NICE)  # set as it starts
            # a procedure run by the back, counted in the front's /metrics
            status, body, _ = await post_signed(f"{bot.url}/slack/events", slash_command_body("health prod"), SECRET)
            assert (status, body) == (200, "")
            await until(lambda: len(results(slack)) == 1)
            async with httpx.AsyncClient() as client:
                metrics = (await client.get(f"{bot.url}/metrics")).text
            outcome = "critical" if "CRITICAL" in results(slack)[0] else "warning"  # 2 s is over the threshold
            assert f'opsbot_requests_total{{command="health",outcome="{outcome}"}} 1.0' in metrics, results(slack)
            assert "opsbot_run_seconds_count{command=\"health\"} 1.0" in metrics

            # the back dies mid-procedure: that run dies with it; the front runs the next one itself
            await post_signed(f"{bot.url}/slack/events", slash_command_body("health prod"), SECRET)
            await until(lambda: len(checking(slack)) == 2)
            os.kill(back, signal.SIGKILL)
            await until(lambda: "the back process exited" in bot.logs())
            status, _, _ = await post_signed(f"{bot.url}/slack/events", slash_command_body("health prod"), SECRET)
            assert status == 200
            await until(lambda: len(checking(slack)) == 3)
            third = checking(slack)[2]
            await until(lambda: any(c.args.get("ts") == third and "prod: " in c.args["text"]
                                    for c in slack.calls_to("chat.update")))  # fmt: skip
            # the second run started 2 s before the third: it would have ended first, had it not died; the front
            # took its job back, and knew by its delivery key that it had begun: not run twice
            assert len(results(slack)) == 2
            assert "already taken by another bot process: not run again" in bot.logs()
        finally:
            assert await bot.stop() == 0
        bot.assert_clean()


async def test_the_back_never_outlives_the_front(tmp_path):
    async with SlackStandIn() as slack, serve(health_app(delay=2)) as base:
        bot = await start_bot(tmp_path, engine_free_config(tmp_path, base), slack.url, OPSBOT_SCHEDULER="off")
        back = await back_of(bot)
        await post_signed(f"{bot.url}/slack/events", slash_command_body("health prod"), SECRET)
        await until(lambda: len(checking(slack)) == 1)
        bot.proc.kill()  # SIGKILL: the front cannot tell the back anything
        await bot.proc.wait()
        await until(lambda: not Path(f"/proc/{back}").exists() or b"Z" in _state(back))
        # killed with the front, not left to finish: the running procedure (2 s of checks) neither ended in the
        # audit log nor posted a result
        events = sqlite3.connect(tmp_path / "opsbot.db").execute(
            "SELECT event FROM audit WHERE command = 'health prod'"
        ).fetchall()
        assert ("succeeded",) not in events and results(slack) == []


def _state(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except FileNotFoundError:
        return b"Z"
