"""`make run` without ./ops.yml: the demo world, as a newcomer meets it (console) and as Slack does.

No Docker, no database server: these tests run everywhere, as the demo does.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.botproc import SECRET, start_bot
from tests.helpers.slack import SlackStandIn, block_actions_body, post_signed, slash_command_body

ROOT = Path(__file__).resolve().parents[2]
#: Slack's markup, which a console must never print
MARKUP = re.compile(r"<[@#!][^>]*>")


class Console:
    """``opsbot serve --demo`` at a prompt: send lines, wait for what it prints."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.out = ""
        self.mark = 0

    async def expect(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        """Read until ``pattern`` appears after the last mark; move the mark past it."""
        deadline = time.monotonic() + timeout
        while True:
            found = re.compile(pattern).search(self.out, self.mark)
            if found:
                self.mark = found.end()
                return found
            left = deadline - time.monotonic()
            assert left > 0 and self.proc.returncode is None, f"no {pattern!r} in:\n{self.out[self.mark:][-3000:]}"
            assert self.proc.stdout is not None
            try:
                chunk = await asyncio.wait_for(self.proc.stdout.read(65536), left)
            except TimeoutError:
                continue
            assert chunk, f"the console ended before {pattern!r}:\n{self.out[-3000:]}"
            self.out += chunk.decode()

    async def send(self, line: str) -> None:
        """Type a line."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()


def clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPSBOT_"))}
    env.update(OPSBOT_HISTORY=str(tmp_path / "history"), OPSBOT_DB=str(tmp_path / "real.db"), LOG_LEVEL="info",
               PYTHONPATH=str(ROOT))  # fmt: skip
    return env


async def test_the_newcomers_first_minute_in_the_console(tmp_path):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "serve", "--demo", stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=clean_env(tmp_path), cwd=str(tmp_path),
    )  # fmt: skip
    console = Console(proc)
    try:
        root = Path((await console.expect(r"database and backups: (\S+) \(removed at exit\)"))[1])
        await console.expect(r"Three things to try at the prompt below:\n  status demo .*\n  troubleshoot 504 .*\n"
                             r"  deploy demo 1\.1 .*approve it as U0ALICE")  # fmt: skip
        await console.expect(r"opsbot console: shop-demo, environments demo")
        assert root.is_dir() and (root / "ops.yml").is_file()

        await console.send("status demo")
        await console.expect(r"demo: (OK|WARNING)\n")  # a warning only when this machine answers loopback slowly
        await console.expect(r"(OK|WARN) +Cache +HTTP 200")
        await console.send("troubleshoot 504")
        await console.expect(r"Issue: API Timeout")
        await console.expect(r"worker: ERROR payment gateway refused key \[REDACTED\]")
        await console.expect(r"Escalation: L1 @oncall \(First response\) -> L2 @U0SENIOR")

        await console.send("deploy demo 1.1")
        await console.expect(r"Approver's Slack user id \(needs 1, not you; approvers: U0ALICE, U0BOB\)")
        await console.send("U0ALICE")
        await console.expect(r"deploy 1\.1 in demo: OK")
        await console.send("deploy demo 1.2")
        await console.expect(r"Approver's Slack user id")
        await console.send("U0BOB")
        await console.expect(r"Failed \(service 'api' did not come up: .*health unhealthy")
        await console.expect(r"deploy 1\.2 in demo: ROLLED BACK")
        await console.expect(r"Rolled back automatically: the previous version runs and verifies again")

        await console.send("backup demo")
        backup_id = (await console.expect(r"backup of demo: stored (\S+)"))[1]
        await console.send(f"restore demo {backup_id}")
        await console.expect(r"Approver's Slack user id")
        await console.send("U0ALICE")
        await console.expect(rf"restore demo from {re.escape(backup_id)}: OK", timeout=90)
        await console.send("history")
        await console.expect(r"deploy 1\.2 +rolled-back .*\n.*deploy 1\.1 +succeeded")
        await console.send("audit verify")
        await console.expect(r"audit log intact: \d+ entries, chain verified")
        assert proc.stdin is not None
        proc.stdin.close()
        await console.expect(r"bye")
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert "Traceback" not in console.out and "WARNING" not in console.out
    assert not MARKUP.search(console.out), MARKUP.search(console.out)
    assert not root.exists(), "the demo's directory is removed at exit"
    assert not (tmp_path / "real.db").exists() and not (tmp_path / "opsbot.db").exists()


def test_make_run_chooses_the_demo_only_without_ops_yml(tmp_path):
    def planned() -> str:
        out = subprocess.run(["make", "-n", "-f", str(ROOT / "Makefile"), "run"], cwd=tmp_path, capture_output=True,
                             text=True, check=True).stdout  # fmt: skip
        return next(line for line in out.splitlines() if "opsbot serve" in line)

    (tmp_path / "pyproject.toml").touch()  # what the Makefile's set-up step depends on
    assert planned().endswith("opsbot serve --demo")
    (tmp_path / "ops.yml").write_text("project: mine\n")
    assert planned().endswith("opsbot serve --config ops.yml")


async def test_serve_without_ops_yml_points_at_the_demo(tmp_path):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "serve", stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=clean_env(tmp_path), cwd=str(tmp_path),
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2 and out == b""
    assert err.decode().strip() == (
        "error: ./ops.yml: no such file (set OPSBOT_CONFIG or --config; examples/ops.yml shows the format); or try the"
        " demo world: opsbot serve --demo"
    )


async def test_the_demo_answers_in_slack_and_starts_without_warnings(tmp_path):
    async with SlackStandIn() as slack:
        bot = await start_bot(tmp_path, None, slack.url, args=("--demo",), OPSBOT_DEMO_USERS="U0DEMOA,U0DEMOB")
        try:
            since = time.monotonic()
            body = slash_command_body("status demo", user_id="U0STRANGER")
            status, _, _ = await post_signed(f"{bot.url}/slack/events", body, SECRET)
            assert status == 200
            update = await slack.wait_for("chat.update", lambda c: c.time >= since and "demo: " in c.args["text"], 30)
            shown = json.dumps(update.args["blocks"])
            assert "demo: CRITICAL" not in update.args["text"] and shown.count("HTTP 200") == 3, shown

            since = time.monotonic()
            body = slash_command_body("deploy demo 1.1", user_id="U0DEMOA")
            assert (await post_signed(f"{bot.url}/slack/events", body, SECRET))[0] == 200
            asked = await slack.wait_for("chat.update", lambda c: c.time >= since and any(
                b["type"] == "actions" for b in c.args.get("blocks", [])), 30)  # fmt: skip
            [actions] = [b for b in asked.args["blocks"] if b["type"] == "actions"]
            approval_id, ts = actions["elements"][0]["value"], asked.args["ts"]
            since = time.monotonic()
            click = block_actions_body("approval:approve", approval_id, user_id="U0DEMOB", message_ts=ts,
                                       text="Approve")  # fmt: skip
            assert (await post_signed(f"{bot.url}/slack/events", click, SECRET))[0] == 200
            await slack.wait_for("chat.update", lambda c: c.time >= since and c.args.get("ts") == ts
                                 and "Done" in c.args.get("text", ""), 60)  # fmt: skip
        finally:
            assert await bot.stop() == 0
        bot.assert_clean()
        log = bot.logs()
        assert "opsbot DEMO world" in log and "/ops status demo" in log
        assert "[WARNING]" not in log and "[ERROR]" not in log, log
        assert not (tmp_path / "opsbot.db").exists(), "the demo keeps its state in its own directory"
