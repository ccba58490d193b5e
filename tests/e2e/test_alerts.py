"""Alerts as Slack, PagerDuty and Prometheus see them, from the ``opsbot serve`` process.

The bot runs its schedules against a health endpoint and a real Prometheus the tests drive; Slack is the
Web API stand-in, PagerDuty the Events API v2 stand-in; buttons are clicked with signed requests. It is
killed with SIGKILL between an alert's state change and its delivery, and run twice on one database.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import time

import pytest
import pytest_asyncio
import yaml

from tests.e2e.botproc import SECRET, start_bot
from tests.helpers.configs import scheduled_health
from tests.helpers.http_servers import SwitchedHealth, serve
from tests.helpers.pagerduty import PagerDutyStandIn
from tests.helpers.slack import SlackStandIn, block_actions_body, post_signed

pytestmark = pytest.mark.asyncio(loop_scope="module")
KEY = "R0UTINGKEY0000000000000000000000"



@pytest_asyncio.fixture(loop_scope="module")
async def slack():
    async with SlackStandIn() as standin:
        standin.strict_updates = True
        yield standin


@pytest_asyncio.fixture(loop_scope="module")
async def pagerduty():
    async with PagerDutyStandIn() as standin:
        yield standin


@pytest_asyncio.fixture(loop_scope="module")
async def health():
    h = SwitchedHealth()
    async with serve(h.app) as url:
        h.url = url
        yield h


def alert_config(path, url, *, monitoring=None, every="1s"):
    config = scheduled_health(url)
    config["access"] = {"viewers": [], "operators": ["U0OPERATOR"], "approvers": ["U0APPROVER1"], "admins": []}
    config["troubleshooting"] = [{"issue": "API down", "symptoms": ["503"], "resolution": "Restart the api",
                                  "diagnose": ["health"]}]  # fmt: skip
    config["schedules"] = [{"task": "health_check", "env": "prod", "every": every}]
    config["alerting"] = {"critical": {"to": ["pagerduty", "slack"], "escalate_after": "1h"},
                          "warning": {"to": ["slack"]}, "info": {"to": ["slack"]},
                          "pagerduty": {"routing_key_env": "PAGERDUTY_ROUTING_KEY"}}  # fmt: skip
    if monitoring:
        config["monitoring"] = monitoring
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def top(slack, what):
    return [c for c in slack.calls_to("chat.postMessage") if c.ok and not c.args.get("thread_ts")
            and what in json.dumps(c.args.get("blocks"))]  # fmt: skip


def db_rows(tmp_path, sql):
    with sqlite3.connect(tmp_path / "opsbot.db") as db:
        return db.execute(sql).fetchall()


async def until(check, timeout=60.0, what="the condition"):
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        await asyncio.sleep(0.1)


def api_pages(pagerduty):
    return [e for e in pagerduty.events if e["dedup_key"] == "prod/health/API Health"]


def bot_env(pagerduty):
    return {"PAGERDUTY_EVENTS_URL": pagerduty.url, "PAGERDUTY_ROUTING_KEY": KEY}


async def test_acknowledge_and_troubleshoot_buttons_take_the_one_request_path(slack, pagerduty, health, tmp_path):
    health.ok = False
    bot = await start_bot(tmp_path, alert_config(tmp_path / "ops.yml", health.url), slack.url, **bot_env(pagerduty))
    try:
        post = await slack.wait_for("chat.postMessage", lambda c: c.ok and not c.args.get("thread_ts")
                                    and "API Health" in json.dumps(c.args.get("blocks")), 20)  # fmt: skip
        ts, alert_id = post.response["ts"], post.args["blocks"][1]["elements"][0]["value"]
        await pagerduty.wait_for(1)
        diagnosis = await slack.wait_for("chat.postMessage", lambda c: c.args.get("thread_ts") == ts
                                         and "Troubleshooting: API down" in json.dumps(c.args["blocks"]), 20)
        assert diagnosis.ok
        # a viewer clicks Acknowledge: refused, only to them
        click = block_actions_body("alert:ack", alert_id, user_id="U0VIEWER", channel_id="C0CRITICAL",
                                   message_ts=ts, block_id=f"alert-{alert_id}", text="Acknowledge")  # fmt: skip
        assert (await post_signed(f"{bot.url}/slack/events", click, SECRET))[0] == 200
        refused = await slack.wait_for("chat.postEphemeral", lambda c: c.args.get("user") == "U0VIEWER", 15)
        assert "needs the admins or operators role" in refused.args["text"]
        # an operator clicks it: acknowledged, the message says who, PagerDuty is acknowledged
        click = block_actions_body("alert:ack", alert_id, user_id="U0OPERATOR", channel_id="C0CRITICAL",
                                   message_ts=ts, block_id=f"alert-{alert_id}", text="Acknowledge")  # fmt: skip
        assert (await post_signed(f"{bot.url}/slack/events", click, SECRET))[0] == 200
        await slack.wait_for("chat.update", lambda c: c.args.get("ts") == ts
                             and "Acknowledged by <@U0OPERATOR>" in json.dumps(c.args["blocks"]), 15)  # fmt: skip
        await pagerduty.wait_for(2)
        assert pagerduty.state("prod/health/API Health") == "acknowledged"
        # Troubleshoot: the guide's entry for this alert, in its thread
        before = len(slack.calls_to("chat.postMessage"))
        click = block_actions_body("alert:troubleshoot", alert_id, user_id="U0VIEWER", channel_id="C0CRITICAL",
                                   message_ts=ts, block_id=f"alert-{alert_id}", text="Troubleshoot")  # fmt: skip
        assert (await post_signed(f"{bot.url}/slack/events", click, SECRET))[0] == 200
        answer = await slack.wait_for("chat.postMessage", lambda c: c.args.get("thread_ts") == ts
                                      and slack.calls.index(c) >= before and "Troubleshooting" in c.args["text"], 15)
        assert "asked by <@U0VIEWER>" in json.dumps(answer.args["blocks"])
        health.ok = True
        await slack.wait_for("chat.update", lambda c: c.args.get("ts") == ts and "RESOLVED" in json.dumps(
            c.args["blocks"]), 15)  # fmt: skip
        await pagerduty.wait_for(3)
        assert pagerduty.state("prod/health/API Health") == "resolved"
    finally:
        assert await bot.stop() == 0
    bot.assert_clean()
    audited = db_rows(tmp_path, "SELECT actor, command, event FROM audit WHERE command LIKE 'ack %' "
                                "OR command LIKE 'troubleshoot %'")  # fmt: skip
    assert ("U0OPERATOR", f"ack {alert_id}", "succeeded") in audited
    assert ("U0VIEWER", f"ack {alert_id}", "refused") in audited
    assert any(a == "U0VIEWER" and c.startswith("troubleshoot") and e == "succeeded" for a, c, e in audited)


async def test_the_silence_button_holds_that_alert_recorded_and_audited(slack, pagerduty, health, tmp_path):
    health.ok = False
    before, pages = len(slack.calls), len(api_pages(pagerduty))

    def new(c):
        return slack.calls.index(c) >= before

    bot = await start_bot(tmp_path, alert_config(tmp_path / "ops.yml", health.url), slack.url, **bot_env(pagerduty))
    try:
        post = await slack.wait_for("chat.postMessage", lambda c: new(c) and c.ok and not c.args.get("thread_ts")
                                    and "API Health" in json.dumps(c.args.get("blocks")), 20)  # fmt: skip
        ts, alert_id = post.response["ts"], post.args["blocks"][1]["elements"][0]["value"]
        await until(lambda: len(api_pages(pagerduty)) > pages, 20, "the page")
        # a viewer clicks Silence 1h: refused, only to them, nothing recorded
        click = block_actions_body("alert:silence", alert_id, user_id="U0VIEWER", channel_id="C0CRITICAL",
                                   message_ts=ts, block_id=f"alert-{alert_id}", text="Silence 1h")  # fmt: skip
        assert (await post_signed(f"{bot.url}/slack/events", click, SECRET))[0] == 200
        refused = await slack.wait_for("chat.postEphemeral", lambda c: new(c) and c.args.get("user") == "U0VIEWER",
                                       15)  # fmt: skip
        assert "needs the admins or operators role" in refused.args["text"]
        assert db_rows(tmp_path, "SELECT 1 FROM silences") == []
        # an operator clicks it: that alert is held for an hour, the message and PagerDuty say so
        click = block_actions_body("alert:silence", alert_id, user_id="U0OPERATOR", channel_id="C0CRITICAL",
                                   message_ts=ts, block_id=f"alert-{alert_id}", text="Silence 1h")  # fmt: skip
        assert (await post_signed(f"{bot.url}/slack/events", click, SECRET))[0] == 200
        told = await slack.wait_for("chat.postEphemeral", lambda c: new(c) and c.args.get("user") == "U0OPERATOR",
                                    15)  # fmt: skip
        shown = json.dumps(told.args.get("blocks"))
        assert told.args["text"] == "Silenced prod/API Health" and "until" in shown and alert_id in shown
        await slack.wait_for("chat.update", lambda c: new(c) and c.args.get("ts") == ts and "Held until" in
                             json.dumps(c.args["blocks"]) and "Silence 1h button" in json.dumps(c.args["blocks"]),
                             15)  # fmt: skip
        await until(lambda: pagerduty.state("prod/health/API Health") == "acknowledged", 15, "the page acknowledged")
        [(sid, env, what, created_at, until_, reason, by)] = db_rows(
            tmp_path, "SELECT id, environment, what, created_at, until, reason, created_by FROM silences")
        assert (env, what, reason, by) == ("prod", "API Health", "Silence 1h button", "U0OPERATOR")
        assert until_ - created_at == 3600
        assert ("silenced", sid, alert_id) in db_rows(tmp_path, "SELECT state, silence_id, id FROM incidents")
        # it keeps failing, held: nothing new is posted about it
        hits = health.hits
        await until(lambda: health.hits >= hits + 3, 30, "three more runs")
        assert len([c for c in top(slack, "API Health") if new(c)]) == 1
        health.ok = True
        await until(lambda: db_rows(tmp_path, "SELECT 1 FROM incidents WHERE what = 'API Health' "
                                              "AND state = 'resolved'"), 30, "the recovery")  # fmt: skip
    finally:
        assert await bot.stop() == 0
    bot.assert_clean()
    audited = db_rows(tmp_path, "SELECT actor, command, event FROM audit WHERE command LIKE 'silence %'")
    words = "silence prod 'API Health' 1h --reason 'Silence 1h button'"
    assert ("U0VIEWER", words, "refused") in audited and ("U0OPERATOR", words, "succeeded") in audited
    assert {a for a, _, _ in audited} == {"U0VIEWER", "U0OPERATOR"} and {c for _, c, _ in audited} == {words}


async def test_killed_between_the_state_change_and_the_delivery_it_delivers_once_after_restart(
    slack, pagerduty, health, tmp_path
):
    health.ok, slack.down = False, True
    pages = len(api_pages(pagerduty))
    posts = len(top(slack, "API Health"))
    bot = await start_bot(tmp_path, alert_config(tmp_path / "ops.yml", health.url), slack.url, **bot_env(pagerduty))
    try:
        # the incident is open and its Slack post waits in the outbox, between two attempts
        await until(lambda: db_rows(tmp_path, "SELECT 1 FROM outbox WHERE notifier = 'slack' AND op = 'post' "
                                              "AND state = 'pending' AND attempts >= 1"), 30, "a post waiting")
        await until(lambda: db_rows(tmp_path, "SELECT 1 FROM outbox o JOIN incidents i ON i.id = o.incident "
                                              "WHERE o.notifier = 'pagerduty' AND o.state = 'sent' "
                                              "AND i.what = 'API Health'"), 30, "the page sent and recorded")
    finally:
        bot.proc.send_signal(signal.SIGKILL)
        await bot.proc.wait()
    assert len(top(slack, "API Health")) == posts  # nothing reached Slack
    slack.down = False
    again = await start_bot(tmp_path, tmp_path / "ops.yml", slack.url, **bot_env(pagerduty))
    try:
        await until(lambda: len(top(slack, "API Health")) > posts, 60, "the post after the restart")
        await until(lambda: not db_rows(tmp_path, "SELECT 1 FROM outbox WHERE state IN ('pending', 'sending') "
                                                  "AND notifier = 'slack' AND op = 'post'"), 30, "the outbox sent")
        assert len(top(slack, "API Health")) == posts + 1  # once
        assert len(api_pages(pagerduty)) == pages + 1  # the page that went before the kill is not sent again
        health.ok = True
        await until(lambda: db_rows(tmp_path, "SELECT 1 FROM incidents WHERE what = 'API Health' "
                                              "AND state = 'resolved'"), 200, "the recovery")
    finally:
        assert await again.stop() == 0
    again.assert_clean()


async def test_two_bot_processes_on_one_database_alert_once(slack, pagerduty, health, tmp_path):
    health.ok = False
    posts, pages = len(top(slack, "API Health")), len(pagerduty.events)
    config = alert_config(tmp_path / "ops.yml", health.url)
    first = await start_bot(tmp_path, config, slack.url, **bot_env(pagerduty))
    second = await start_bot(tmp_path, config, slack.url, **bot_env(pagerduty))
    try:
        await until(lambda: len(top(slack, "API Health")) > posts, 30, "the alert")
        hits = health.hits
        await until(lambda: health.hits >= hits + 4, 30, "four more runs")
        health.ok = True
        await until(lambda: db_rows(tmp_path, "SELECT 1 FROM incidents WHERE what = 'API Health' "
                                              "AND state = 'resolved'"), 30, "the recovery")
        await until(lambda: not db_rows(tmp_path, "SELECT 1 FROM outbox WHERE state IN ('pending', 'sending') "
                                                  "AND notifier IN ('slack', 'pagerduty') AND incident IN "
                                                  "(SELECT id FROM incidents WHERE what = 'API Health')"), 30, "sent")
    finally:
        assert await first.stop() == 0
        assert await second.stop() == 0
    assert len(top(slack, "API Health")) == posts + 1
    actions = [e["event_action"] for e in pagerduty.events[pages:] if e["dedup_key"] == "prod/health/API Health"]
    assert actions == ["trigger", "resolve"]
    owners = {r[0] for r in db_rows(tmp_path, "SELECT running_by FROM schedule_state")}
    assert owners == {None}
    first.assert_clean()
    second.assert_clean()


async def test_the_error_rate_measured_by_prometheus_opens_and_resolves_an_alert(
    slack, pagerduty, health, prometheus, tmp_path
):
    health.ok = True
    traffic = prometheus.exporter.traffic["prod"]
    traffic.error_percent = 0
    monitoring = {"prometheus": {"url": prometheus.url, "timeout": "3s", "queries": {
        "error_rate_percent": '100 * sum(rate(http_requests_total{env="{env}",code=~"5.."}[3s])) '
                              '/ sum(rate(http_requests_total{env="{env}"}[3s]))',
        "response_time_ms": '1000 * histogram_quantile(0.95, sum by (le) '
                            '(rate(http_request_duration_seconds_bucket{env="{env}"}[3s])))'}}}  # fmt: skip
    config = alert_config(tmp_path / "ops.yml", health.url, monitoring=monitoring)
    bot = await start_bot(tmp_path, config, slack.url, **bot_env(pagerduty))
    try:
        traffic.error_percent = 20
        post = await slack.wait_for("chat.postMessage", lambda c: c.ok and not c.args.get("thread_ts")
                                    and "error_rate_percent" in json.dumps(c.args.get("blocks")), 40)  # fmt: skip
        ts = post.response["ts"]
        if "CRITICAL" not in post.args["text"]:  # it rose through the warning level first: the same message
            await slack.wait_for("chat.update", lambda c: c.args.get("ts") == ts
                                 and "*CRITICAL*" in json.dumps(c.args["blocks"]), 40)  # fmt: skip
        traffic.error_percent = 0
        await slack.wait_for("chat.update", lambda c: c.args.get("ts") == post.response["ts"]
                             and "RESOLVED" in json.dumps(c.args["blocks"]), 40)  # fmt: skip
        assert len([c for c in top(slack, "error_rate_percent") if c.args["channel"] == post.args["channel"]]) == 1
    finally:
        traffic.error_percent = 0
        assert await bot.stop() == 0
    bot.assert_clean()
    opened = db_rows(tmp_path, "SELECT source, severity, state FROM incidents WHERE what = 'error_rate_percent'")
    # it was critical (seen above); falling back to 0 % the 3 s rate may pass through the warning band first
    [(source, severity, state)] = opened
    assert source == "metric" and state == "resolved" and severity in ("critical", "warning"), opened
