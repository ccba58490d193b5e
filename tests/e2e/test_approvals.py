"""Approvals end to end: `opsbot serve` over HTTP, the Slack stand-in, a real Docker engine.

Changes wait for the right people, run exactly once (counted from the engine's own start events),
survive a restart of the bot, and a run cut off by kill -9 is reported interrupted, never re-run.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import signal
import sqlite3
import time

import pytest
import pytest_asyncio
import yaml

from tests.e2e.botproc import SECRET, start_bot
from tests.helpers.configs import example_config
from tests.helpers.docker_engine import API_SCRIPT, WORKER_SCRIPT, build_image, run_service
from tests.helpers.http_servers import free_port
from tests.helpers.slack import SlackStandIn, block_actions_body, post_signed, slash_command_body

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.docker]
APPROVERS = [f"U0APPROVER{i}" for i in range(1, 9)]
#: a worker that takes its time to stop (traps SIGTERM), for the kill -9 test
SLOW_STOP = "trap 'sleep 8; exit 0' TERM; while true; do sleep 1; done"


@pytest.fixture(scope="module")
def stage(docker_engine):
    """A project of its own, so that restarting it disturbs no other test."""
    client = docker_engine.client
    for repo in ("shop/api", "shop/worker"):
        build_image(client, repo, "1.0")  # never let the engine try to pull from a registry
    project = f"stage{secrets.token_hex(3)}"
    port = free_port()
    made = [
        run_service(client, project, "api", "shop/api:1.0", ["sh", "-c", API_SCRIPT], env={"PORT": str(port)},
                    healthcheck={"test": ["CMD", "wget", "-q", "-O-", f"http://127.0.0.1:{port}/health"],
                                 "interval": 300_000_000, "timeout": 2_000_000_000, "retries": 3}),
        run_service(client, project, "worker", "shop/worker:1.0", ["sh", "-c", WORKER_SCRIPT],
                    env={"DB_PASSWORD": "stage-secret-123"}),
        run_service(client, project, "slow", "shop/worker:1.0", ["sh", "-c", SLOW_STOP]),
    ]  # fmt: skip
    deadline = time.monotonic() + 30
    while (client.containers.get(made[0].id).attrs["State"].get("Health") or {}).get("Status") != "healthy":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    yield {"project": project, "port": port, "host": docker_engine.host, "client": client,
           "ids": {c.name.split("-")[1]: c.id for c in made}}  # fmt: skip
    for c in made:
        c.remove(force=True)


def stage_config(path, stage) -> None:
    config = example_config()
    config["access"] = {"viewers": [], "operators": ["U0OPERATOR", "U0ADMIN"], "approvers": APPROVERS,
                        "admins": ["U0ADMIN"]}  # fmt: skip
    config["slack"] = {"alert_channels": {"critical": "C0CRITICAL"}}
    runtime = {"kind": "compose", "project": stage["project"], "docker_host": stage["host"]}
    base = {
        "url": f"http://127.0.0.1:{stage['port']}",
        "runtime": runtime,
        # busybox as PID 1 ignores SIGTERM: a short grace keeps restarts quick
        "services": {"api": {"stop_timeout": "1s"}, "worker": {"stop_timeout": "1s"}, "slow": {"stop_timeout": "20s"}},
        "health_checks": [{"name": "API Health", "url": "{url}/health", "expect": {"status": "ok"}}],
    }
    config["environments"] = {
        "stage": {**base, "approval": {"required": 1, "expires_in": "15m"}},
        "vault": {**base, "approval": {"required": 2, "expires_in": "15m"}},
        "brief": {**base, "approval": {"required": 1, "expires_in": "2s"}},
        "solo": {**base, "approval": {"required": 0, "expires_in": "15m"}},
    }
    config["default_environment"] = "stage"
    config["troubleshooting"] = []
    config["schedules"] = []
    for section in ("requirements", "monitoring", "alerting", "maintenance", "security_maintenance"):
        config.pop(section, None)  # they name prod's services and channels, which this config has not
    path.write_text(yaml.safe_dump(config, sort_keys=False))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def slack():
    async with SlackStandIn() as standin:
        yield standin


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bot(slack, stage, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("approvals")
    stage_config(tmp / "ops.yml", stage)
    process = await start_bot(tmp, tmp / "ops.yml", slack.url)
    process.tmp = tmp
    yield process
    await process.stop()
    process.assert_clean()
    # every step of every approval of this module is in the audit log, and the chain holds
    from bot.config.redact import Redactor
    from bot.core.audit import AuditLog
    from bot.core.db import Database

    db = Database(tmp / "opsbot.db")
    verification = await AuditLog(db, Redactor()).verify()
    db.close()
    assert verification.ok and verification.rows > 0, verification


def starts(stage, service: str, since: float) -> int:
    """How many times the engine started the service's container since ``since`` (time.time(); the engine
    takes fractions of a second, so a start of the test before in the same second is not counted)."""
    events = stage["client"].events(since=f"{since:.9f}", until=f"{time.time():.9f}", decode=True,
                                    filters={"container": stage["ids"][service], "event": "start"})  # fmt: skip
    return len(list(events))


async def audit_row(bot, event: str, approval_id: str, timeout: float = 30) -> None:
    """Wait until the audit log has ``event`` for the approval."""
    deadline = time.monotonic() + timeout
    sql = "SELECT id FROM audit WHERE event = ? AND details LIKE ?"
    while not db_rows(bot, sql, event, f"%{approval_id}%"):
        assert time.monotonic() < deadline, f"no {event!r} audit row for {approval_id}"
        await asyncio.sleep(0.05)


async def request_change(bot, slack, text, user="U0OPERATOR"):
    """/ops <text>; returns (approval id, message ts) from the approval message with its buttons."""
    since = time.monotonic()
    status, body, _ = await post_signed(f"{bot.url}/slack/events", slash_command_body(text, user_id=user), SECRET)
    assert status == 200, body
    update = await slack.wait_for(
        "chat.update", lambda c: c.time >= since and any(b["type"] == "actions" for b in c.args.get("blocks", [])), 20
    )
    [actions] = [b for b in update.args["blocks"] if b["type"] == "actions"]
    assert [e["text"]["text"] for e in actions["elements"]] == ["Approve", "Deny", "Cancel"]
    return actions["elements"][0]["value"], update.args["ts"]


async def click(bot, approval_id, ts, user, action="approve"):
    body = block_actions_body(f"approval:{action}", approval_id, user_id=user, message_ts=ts,
                              text=action.capitalize())  # fmt: skip
    status, _, _ = await post_signed(f"{bot.url}/slack/events", body, SECRET)
    assert status == 200  # how fast: bench/ack_latency.py


async def final_update(slack, ts, words, since, timeout=60):
    return await slack.wait_for(
        "chat.update", lambda c: c.time >= since and c.args.get("ts") == ts and words in c.args.get("text", ""), timeout
    )


def db_rows(bot, sql, *params):
    return sqlite3.connect(bot.tmp / "opsbot.db").execute(sql, params).fetchall()


async def test_restart_waits_for_another_approver_and_runs_once(bot, slack, stage):
    t0 = time.time()
    approval_id, ts = await request_change(bot, slack, "restart stage worker")
    # the requester cannot approve; someone who is not an approver cannot either
    since = time.monotonic()
    await click(bot, approval_id, ts, "U0OPERATOR")
    refusal = await slack.wait_for("chat.postEphemeral", lambda c: c.time >= since, 10)
    assert "someone else must approve" in refusal.args["text"] and refusal.args["user"] == "U0OPERATOR"
    since = time.monotonic()
    await click(bot, approval_id, ts, "U0STRANGER")
    refusal = await slack.wait_for("chat.postEphemeral", lambda c: c.time >= since and c.args["user"] == "U0STRANGER")
    assert "needs the approvers or admins role" in refusal.args["text"]
    assert starts(stage, "worker", t0) == 0

    since = time.monotonic()
    await click(bot, approval_id, ts, "U0APPROVER1")
    done = await final_update(slack, ts, "Done", since)
    text = json.dumps(done.args["blocks"])
    assert "<@U0APPROVER1>" in text and "Restart of worker in stage: done" in text
    # while it ran, the message said what it was doing, for how long, under which approval
    shown = [c.args.get("text", "") for c in slack.calls_to("chat.update") if c.time >= since and c.args["ts"] == ts]
    assert any(re.search(rf"\(\d+ s, approval {approval_id}\)", t) for t in shown), shown
    assert not any(b["type"] == "actions" for b in done.args["blocks"])  # no buttons once decided
    assert starts(stage, "worker", t0) == 1
    events = [e for (e,) in db_rows(bot, "SELECT event FROM audit WHERE details LIKE ? ORDER BY id",
                                    f'%"{approval_id}"%')]  # fmt: skip
    assert events == ["approved", "started", "succeeded"]


async def test_eight_concurrent_approvals_restart_once(bot, slack, stage):
    t0 = time.time()
    approval_id, ts = await request_change(bot, slack, "restart stage worker")
    since = time.monotonic()
    await asyncio.gather(*(click(bot, approval_id, ts, user) for user in APPROVERS))
    await final_update(slack, ts, "Done", since)
    [(state, approvers)] = db_rows(bot, "SELECT state, approvers FROM approvals WHERE id = ?", approval_id)
    assert state == "done" and len(json.loads(approvers)) == 1
    # every other click was decided too (told it was too late): nothing is left to run
    for user in set(APPROVERS) - set(json.loads(approvers)):
        told = await slack.wait_for("chat.postEphemeral", lambda c, u=user: c.time >= since and c.args["user"] == u, 20)
        assert "already" in told.args["text"], told.args
    assert starts(stage, "worker", t0) == 1
    # the same click delivered twice is one decision
    assert len(db_rows(bot, "SELECT id FROM audit WHERE event = 'started' AND details LIKE ?", f"%{approval_id}%")) == 1


async def test_two_approvers_deny_cancel_and_dry_run(bot, slack, stage):
    t0 = time.time()
    approval_id, ts = await request_change(bot, slack, "restart vault api")
    since = time.monotonic()
    await click(bot, approval_id, ts, "U0APPROVER1")
    waiting = await final_update(slack, ts, "Waiting", since, 20)
    assert "waiting for 1 more" in json.dumps(waiting.args["blocks"])
    await click(bot, approval_id, ts, "U0APPROVER1")  # the same approver again changes nothing
    assert starts(stage, "api", t0) == 0
    since = time.monotonic()
    await click(bot, approval_id, ts, "U0APPROVER2")
    await final_update(slack, ts, "Done", since)
    assert starts(stage, "api", t0) == 1

    approval_id, ts = await request_change(bot, slack, "restart stage worker")
    since = time.monotonic()
    await click(bot, approval_id, ts, "U0APPROVER3", "deny")
    await final_update(slack, ts, "Denied", since, 20)
    approval_id, ts = await request_change(bot, slack, "restart stage worker")
    since = time.monotonic()
    await click(bot, approval_id, ts, "U0OPERATOR", "cancel")
    await final_update(slack, ts, "Cancelled", since, 20)
    assert starts(stage, "api", t0) == 1 and starts(stage, "worker", t0) == 0

    dry = slash_command_body("restart stage worker --dry-run")
    status, _, _ = await post_signed(f"{bot.url}/slack/events", dry, SECRET)
    assert status == 200
    await slack.wait_for("chat.update", lambda c: "Dry run" in c.args.get("text", ""), 20)
    assert db_rows(bot, "SELECT count(*) FROM approvals WHERE state = 'pending'") == [(0,)]


async def test_expiry_updates_the_message_without_a_click(bot, slack):
    approval_id, ts = await request_change(bot, slack, "restart brief worker")
    since = time.monotonic()
    expired = await final_update(slack, ts, "Expired", since, 20)
    assert not any(b["type"] == "actions" for b in expired.args["blocks"])
    since = time.monotonic()
    await click(bot, approval_id, ts, "U0APPROVER1")
    refusal = await slack.wait_for("chat.postEphemeral", lambda c: c.time >= since, 10)
    assert "expired" in refusal.args["text"]


async def test_break_glass_is_for_admins_and_loud(bot, slack, stage):
    t0 = time.time()
    since = time.monotonic()
    await post_signed(
        f"{bot.url}/slack/events", slash_command_body('restart stage worker --break-glass "db is on fire"'), SECRET
    )
    refusal = await slack.wait_for("chat.update", lambda c: c.time >= since and "admins only" in c.args["text"], 20)
    assert refusal.args["channel"] == "C0OPS"
    assert starts(stage, "worker", t0) == 0
    since = time.monotonic()
    body = slash_command_body('restart stage worker --break-glass "db is on fire"', user_id="U0ADMIN")
    await post_signed(f"{bot.url}/slack/events", body, SECRET)
    notice = await slack.wait_for("chat.postMessage", lambda c: c.args.get("channel") == "C0CRITICAL", 20)
    assert "BREAK-GLASS" in notice.args["text"] and "db is on fire" in notice.args["text"]
    await slack.wait_for(
        "chat.update", lambda c: c.time >= since and "worker in stage: done" in json.dumps(c.args["blocks"]), 30
    )
    assert starts(stage, "worker", t0) == 1
    assert db_rows(bot, "SELECT outcome FROM audit WHERE event = 'break-glass'")[-1][0] == "reason: db is on fire"


async def test_pending_survives_a_restart_and_a_killed_run_is_interrupted(bot, slack, stage):
    approval_id, ts = await request_change(bot, slack, "restart stage worker")
    slow_id, slow_ts = await request_change(bot, slack, "restart stage slow")
    assert await bot.stop() == 0
    bot.assert_clean()
    restarted = await start_bot(bot.tmp, bot.tmp / "ops.yml", slack.url)
    bot.proc, bot.url, bot.log = restarted.proc, restarted.url, restarted.log
    t0 = time.time()
    since = time.monotonic()
    await click(bot, approval_id, ts, "U0APPROVER1")
    await final_update(slack, ts, "Done", since)
    assert starts(stage, "worker", t0) == 1

    # kill -9 while the slow service is stopping (it takes 8 s to stop)
    since = time.monotonic()
    await click(bot, slow_id, slow_ts, "U0APPROVER2")
    await slack.wait_for("chat.update", lambda c: c.time >= since and c.args.get("ts") == slow_ts
                         and "hourglass" in c.args.get("text", ""), 20)  # fmt: skip
    await audit_row(bot, "started", slow_id)  # the run is under way
    bot.proc.send_signal(signal.SIGKILL)
    await bot.proc.wait()
    assert db_rows(bot, "SELECT state FROM approvals WHERE id = ?", slow_id) == [("running",)]
    since = time.monotonic()
    restarted = await start_bot(bot.tmp, bot.tmp / "ops.yml", slack.url)
    bot.proc, bot.url, bot.log = restarted.proc, restarted.url, restarted.log
    await final_update(slack, slow_ts, "Interrupted", since, 20)
    assert db_rows(bot, "SELECT state FROM approvals WHERE id = ?", slow_id) == [("interrupted",)]
    assert db_rows(bot, "SELECT count(*) FROM audit WHERE event = 'interrupted'") == [(1,)]
    # recovery (done before the bot serves) was its only chance to act on it, and a claim needs 'approved'
    events = [e for (e,) in db_rows(bot, "SELECT event FROM audit WHERE details LIKE ? ORDER BY id", f"%{slow_id}%")]
    assert events[-2:] == ["started", "interrupted"]  # never re-run


async def test_command_line_approvals(stage, tmp_path):
    from tests.e2e.test_cli import opsbot

    config = tmp_path / "ops.yml"
    stage_config(config, stage)
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith(("SLACK_", "OPSBOT_"))}
    env.update(OPSBOT_DB=str(tmp_path / "cli.db"), OPSBOT_CONFIG=str(config))
    code, out, _ = await opsbot("run", "--as", "U0OPERATOR", "--json", "restart", "stage", "worker", env=env)
    data = json.loads(out)
    assert code == 0 and {"id", "state", "required", "expires_at"} <= set(data["approval"])
    assert data["approval"]["state"] == "pending" and data["plan"]["steps"]
    approval_id = data["approval"]["id"]
    code, out, _ = await opsbot("run", "--json", "pending", env=env)
    assert [a["id"] for a in json.loads(out)["approvals"]] == [approval_id]
    code, _, err = await opsbot("approve", approval_id, "--as", "U0OPERATOR", env=env)
    assert code == 2 and "someone else must approve" in err
    code, _, err = await opsbot("approve", approval_id, "--as", "U0STRANGER", env=env)
    assert code == 2 and "approvers or admins role" in err
    t0 = time.time()
    code, out, _ = await opsbot("approve", approval_id, "--as", "U0APPROVER1", env=env)
    assert code == 0 and "done" in out and "restart worker in stage: OK" in out
    assert starts(stage, "worker", t0) == 1
    code, _, err = await opsbot("approve", approval_id, "--as", "U0APPROVER2", env=env)
    assert code == 2 and "already done" in err

    code, out, _ = await opsbot("run", "--as", "U0OPERATOR", "--json", "restart", "stage", "api", env=env)
    other = json.loads(out)["approval"]["id"]
    code, out, _ = await opsbot("deny", other, "--as", "U0APPROVER2", "--reason", "not during the sale", env=env)
    assert code == 0 and "denied by U0APPROVER2: not during the sale" in out
    code, out, _ = await opsbot("run", "--as", "U0OPERATOR", "--json", "restart", "stage", "api", env=env)
    mine = json.loads(out)["approval"]["id"]
    code, _, err = await opsbot("cancel", mine, "--as", "U0APPROVER2", env=env)
    assert code == 2 and "only the requester can cancel" in err
    code, out, _ = await opsbot("cancel", mine, "--as", "U0OPERATOR", env=env)
    assert code == 0 and "cancelled" in out
    code, _, err = await opsbot("approve", mine, "--as", "U0APPROVER2", env=env)
    assert code == 2 and "already cancelled" in err
    code, out, _ = await opsbot("run", "--json", "restart", "stage", "api", "--dry-run", env=env)
    assert json.loads(out)["kind"] == "plan" and code == 0
    code, out, _ = await opsbot("audit", "verify", env=env)
    assert code == 0
    code, out, _ = await opsbot("audit", "list", "--json", "--limit", "50", env=env)
    events = [r["event"] for r in reversed(json.loads(out))]
    for event in ("awaiting-approval", "refused", "approved", "started", "succeeded", "denied", "cancelled", "planned"):
        assert event in events, event


async def test_console_asks_for_the_approval(stage, tmp_path):
    from tests.e2e.test_cli import opsbot

    config = tmp_path / "ops.yml"
    stage_config(config, stage)
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith(("SLACK_", "OPSBOT_"))}
    env.update(OPSBOT_DB=str(tmp_path / "console.db"), OPSBOT_HISTORY=str(tmp_path / "history"))
    t0 = time.time()
    script = b"restart stage worker\nnot-an-id\nU0APPROVER1\nrestart solo worker\ny\nrestart stage api\n\n"
    code, out, _ = await opsbot("serve", "--config", str(config), stdin=script, env=env, timeout=90)
    assert code == 0 and out.rstrip().endswith("bye")
    assert "Approver's Slack user id" in out and "not a Slack user id: 'not-an-id'" in out
    assert "restart worker in stage: OK" in out  # approved by U0APPROVER1
    assert "restart worker in solo: OK" in out  # required 0: confirmed by the requester
    assert "Confirm restart solo worker? [y/N]" in out
    assert "is pending; approve later with: opsbot approve" in out
    assert starts(stage, "worker", t0) == 2 and starts(stage, "api", t0) == 0
    code, out, _ = await opsbot("audit", "verify", env=env)
    assert code == 0


async def test_a_command_line_approval_racing_a_slack_click_runs_once(bot, slack, stage):
    from tests.e2e.test_cli import opsbot

    approval_id, ts = await request_change(bot, slack, "restart stage worker")
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith(("SLACK_", "OPSBOT_"))}
    env.update(OPSBOT_DB=str(bot.tmp / "opsbot.db"), OPSBOT_CONFIG=str(bot.tmp / "ops.yml"))
    t0 = time.time()
    since = time.monotonic()
    (code, out, err), _ = await asyncio.gather(
        opsbot("approve", approval_id, "--as", "U0APPROVER4", env=env),
        click(bot, approval_id, ts, "U0APPROVER5"),
    )
    if code == 0:  # the command line won and ran it; the click is told it came too late
        assert "restart worker in stage: OK" in out
        told = await slack.wait_for("chat.postEphemeral", lambda c: c.time >= since and c.args["user"] == "U0APPROVER5",
                                    20)  # fmt: skip
        assert "already" in told.args["text"]
        winner = "U0APPROVER4"
    else:  # the click won and runs it; the command line was told it came too late
        assert code == 2 and "already" in err, (code, out, err)
        await final_update(slack, ts, "Done", since)
        winner = "U0APPROVER5"
    [(state, approvers)] = db_rows(bot, "SELECT state, approvers FROM approvals WHERE id = ?", approval_id)
    assert state == "done" and json.loads(approvers) == [winner]
    assert starts(stage, "worker", t0) == 1
