"""``opsbot serve``'s back process: procedures run there, below the front; it never outlives the front."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path
from urllib.parse import parse_qsl

import httpx
from aiohttp import web

from bot.doors.back import NICE
from tests.e2e.botproc import ROOT, SECRET, BotProcess, bot_environ, engine_free_config, start_bot
from tests.helpers.configs import schedule_config
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
            assert f"the back process (pid {back}) runs procedures" in bot.logs()
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
            # its job was made while its request was answered: it waited for the answer to go out
            assert "opsbot_back_held_jobs_total 1.0" in metrics

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


class Health:
    """A /health endpoint the test turns bad and good again."""

    def __init__(self) -> None:
        self.ok = False
        self.app = web.Application()
        self.app.router.add_get("/health", self.health)

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok" if self.ok else "down"}, status=200 if self.ok else 503)


def sent_by(db: Path) -> set[int]:
    """The pids of the processes that delivered alert notifications (the outbox's owners)."""
    with sqlite3.connect(db) as conn:
        owners = conn.execute("SELECT owner FROM outbox WHERE state = 'sent'").fetchall()
    return {int(owner.split(":")[1]) for (owner,) in owners}


async def test_schedules_and_alerts_run_in_the_back_and_in_the_front_once_it_is_gone(tmp_path):
    health = Health()
    async with SlackStandIn() as slack, serve(health.app) as url:
        bot = await start_bot(tmp_path, schedule_config(tmp_path / "ops.yml", url), slack.url)
        try:
            back = await back_of(bot)
            # the schedule (every second) fails: one alert, delivered by the back's outbox worker
            await until(lambda: alerts(slack) != [])
            await until(lambda: sent_by(bot.db) != set())  # (marked sent once Slack answered)
            assert sent_by(bot.db) == {back}
            runs = len(bot.audit("source = 'scheduler' AND event = 'succeeded'"))
            os.kill(back, signal.SIGKILL)
            await until(lambda: "the back process exited" in bot.logs())
            # the front runs the schedule now, and its outbox worker edits the same alert when it recovers
            health.ok = True
            ts = alerts(slack)[0].response["ts"]
            await slack.wait_for("chat.update", lambda c: c.args.get("ts") == ts
                                 and "RESOLVED" in json.dumps(c.args.get("blocks")), 30)  # fmt: skip
            assert len(bot.audit("source = 'scheduler' AND event = 'succeeded'")) > runs
            await until(lambda: bot.proc.pid in sent_by(bot.db))
            assert sent_by(bot.db) == {back, bot.proc.pid}
            assert len(alerts(slack)) == 1  # one message for the incident, whoever delivered
        finally:
            assert await bot.stop() == 0
        bot.assert_clean()


def alerts(slack: SlackStandIn) -> list:  # type: ignore[type-arg]
    """The top-level messages about API Health in the critical channel."""
    return [c for c in slack.calls_to("chat.postMessage") if c.args.get("channel") == "C0CRITICAL"
            and not c.args.get("thread_ts") and "API Health" in json.dumps(c.args.get("blocks"))]  # fmt: skip


async def test_a_back_signalled_with_the_front_still_runs_the_jobs_the_front_hands_over_before_drain(tmp_path):
    """Ctrl-C or a service manager signals the whole group: the back must not stop reading before the
    front has handed over the jobs it held for its answers (they come just before its drain)."""
    async with SlackStandIn() as slack, serve(health_app()) as base:
        environ = bot_environ(tmp_path, engine_free_config(tmp_path, base), slack.url, OPSBOT_SCHEDULER="off",
                              OPSBOT_FRONT_PID=str(os.getpid()))  # its front: this test  # fmt: skip
        back = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.doors.back", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=environ, cwd=str(ROOT),
        )  # fmt: skip
        assert back.stdin is not None and back.stdout is not None and back.stderr is not None
        try:
            ops = [json.loads(await asyncio.wait_for(back.stdout.readline(), 60))["op"]]
            assert ops == ["ready"]
            back.send_signal(signal.SIGTERM)
            while True:
                line = await asyncio.wait_for(back.stderr.readline(), 30)
                assert line, "the back exited on its signal"
                if b"signalled: taking the front's last jobs" in line:
                    break
            rest = asyncio.ensure_future(back.stderr.read())  # its log, read on (a full pipe would stop it)
            body = dict(parse_qsl(slash_command_body("health prod")))
            job = {"op": "command", "actor": "U0OPERATOR", "text": "health prod", "channel": "C0OPS",
                   "request_id": "r-held", "body": body, "key": None, "id": 1}  # fmt: skip
            back.stdin.write(b"".join(json.dumps(m).encode() + b"\n" for m in (job, {"op": "drain", "timeout": 30})))
            await back.stdin.drain()
            while ops[-1] != "drained":
                ops.append(json.loads(await asyncio.wait_for(back.stdout.readline(), 60))["op"])
            assert "done" in ops  # the job ran to its end before the back drained
            assert [u for u in slack.calls_to("chat.update") if "prod: " in u.args.get("text", "")]
            assert await asyncio.wait_for(back.wait(), 30) == 0
            assert b"Traceback" not in await rest
        finally:
            if back.returncode is None:
                back.kill()
                await back.wait()
