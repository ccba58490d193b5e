"""``opsbot serve`` does upkeep by itself: a scheduled maintenance task is run and reported, a due security
duty is reminded in the warning channel (escaped), and once recorded as done (by another process, the
command line, on the same database) its reminder is edited to say so."""

from __future__ import annotations

import asyncio
import sqlite3
import sys

import pytest
import pytest_asyncio
import yaml

from tests.e2e.botproc import ROOT, start_bot
from tests.helpers.configs import example_config
from tests.helpers.slack import SlackStandIn

pytestmark = pytest.mark.asyncio(loop_scope="module")
CHANNELS = {"critical": "C0CRITICAL", "warning": "C0WARNING", "info": "C0INFO"}


@pytest_asyncio.fixture(loop_scope="module")
async def slack():
    async with SlackStandIn() as standin:
        yield standin


def upkeep_config(path):
    config = example_config()
    config["slack"] = {"alert_channels": CHANNELS}
    config["environments"] = {"prod": {
        "url": "http://127.0.0.1:9",
        "runtime": {"kind": "compose", "project": "nothing-here", "docker_host": "unix:///nonexistent.sock"},
        "services": {"api": {}},
    }}  # fmt: skip
    config["troubleshooting"] = []
    config["schedules"] = []
    config["maintenance"] = {"tasks": [{"task": "cert_check", "env": "prod", "every": "1h"}]}
    config["security_maintenance"] = [{"item": "rotate_secrets", "title": "Rotate <!channel> secrets", "every": "90d"}]
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


async def test_tasks_are_reported_and_duties_reminded_then_closed(slack, tmp_path):
    config = upkeep_config(tmp_path / "ops.yml")
    bot = await start_bot(tmp_path, config, slack.url)
    try:
        report = await slack.wait_for("chat.postMessage", lambda c: "Maintenance `maintenance prod cert_check`"
                                      in c.args.get("text", ""), 15)  # fmt: skip
        assert report.args["channel"] == "C0WARNING"  # no https URL to check: a warning, said so
        assert report.args["text"].endswith("Maintenance `maintenance prod cert_check`: WARNING")
        reminder = await slack.wait_for("chat.postMessage", lambda c: "Security duty due" in c.args.get("text", ""),
                                        15)  # fmt: skip
        assert reminder.args["channel"] == "C0WARNING"
        assert "Rotate &lt;!channel&gt; secrets (rotate_secrets" in reminder.args["text"]  # escaped once: no mention
        assert "<!channel>" not in str(reminder.args["blocks"])
        ts = reminder.response["ts"]
        done = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", "--config", str(config), "security", "done", "rotate_secrets",
            "--note", "rotated", cwd=str(ROOT), env={"OPSBOT_DB": str(tmp_path / "opsbot.db"), "PATH": "/usr/bin:/bin"},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await done.communicate()
        assert done.returncode == 0, out
        edited = await slack.wait_for("chat.update", lambda c: c.args.get("ts") == ts, 15)
        assert edited.args["text"].startswith(":white_check_mark: Security duty done: Rotate &lt;!channel&gt; secrets")
        reminders = [c for c in slack.calls_to("chat.postMessage") if "Security duty due" in c.args.get("text", "")]
        assert len(reminders) == 1
    finally:
        assert await bot.stop() == 0
    bot.assert_clean()
    with sqlite3.connect(tmp_path / "opsbot.db") as db:
        runs = db.execute("SELECT task, actor, severity FROM maintenance_runs").fetchall()
        done_by = db.execute("SELECT last_done_by, note, message_ts FROM security_duties").fetchall()
    assert runs == [("cert_check", "scheduler", "warning")]
    assert done_by[0][1:] == ("rotated", None) and done_by[0][0].startswith("local:")
