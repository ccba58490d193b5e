"""Alerts through the real receivers' stand-ins, in simulated time: the Slack Web API stand-in, the PagerDuty
Events API v2 stand-in and a real SMTP server (aiosmtpd), with the real notifiers."""

from __future__ import annotations

import pytest

from adapters.notify.pagerduty import PagerDutyNotifier
from adapters.notify.slack import SlackNotifier
from adapters.notify.smtp import SmtpNotifier
from bot.core.incident import Observation
from tests.helpers.alert_world import REFUSED, T0, AlertWorld, world_config
from tests.helpers.pagerduty import PagerDutyStandIn
from tests.helpers.slack import SlackStandIn
from tests.helpers.smtp import SmtpServer

KEY = "R0UTINGKEY0000000000000000000000"


@pytest.fixture
async def real(tmp_path):
    smtp = SmtpServer().start()
    async with SlackStandIn() as slack, PagerDutyStandIn() as pd:
        slack.strict_updates = True
        alerting = world_config().alerting.model_dump(by_alias=True, exclude_none=True)
        alerting["email"]["smtp_url"] = smtp.url
        world = AlertWorld(str(tmp_path / "r.db"), config=world_config(alerting=alerting))
        notifiers = {"slack": SlackNotifier("xoxb-test", slack.url), "pagerduty": PagerDutyNotifier(KEY, pd.url),
                     "email": SmtpNotifier(smtp.url, "opsbot@example.com", password=smtp.password, timeout=5)}
        world.worker.notifiers = notifiers
        world.standin, world.pd, world.smtp = slack, pd, smtp
        try:
            yield world
        finally:
            await world.worker.close()
            world.close()
            smtp.stop()


def top_level(slack, channel):
    return [c for c in slack.calls_to("chat.postMessage") if c.args.get("channel") == channel
            and not c.args.get("thread_ts") and c.ok]  # fmt: skip


async def test_an_incident_through_slack_and_pagerduty_as_they_answer(real):
    await real.run({"Check 1": REFUSED})
    [post] = top_level(real.standin, "C0CRITICAL")
    ts = post.response["ts"]
    assert real.pd.state("prod/health/Check 1") == "triggered"
    trigger = real.pd.events[0]
    assert trigger["routing_key"] == KEY and trigger["payload"]["severity"] == "critical"
    assert trigger["payload"]["source"] == "shop/prod" and "Check 1" in trigger["payload"]["summary"]
    [inc] = await real.incidents.open()
    assert (await real.handle(["ack", inc.id])).exit_code == 0
    await real.deliver()
    assert real.pd.state("prod/health/Check 1") == "acknowledged"
    assert "Acknowledged by <@U0OPERATOR>" in str(real.standin.message("C0CRITICAL", ts)["blocks"])
    await real.run({}, advance=720)
    assert real.pd.state("prod/health/Check 1") == "resolved"
    shown = real.standin.message("C0CRITICAL", ts)
    assert "Resolved after 12 min" in str(shown["blocks"]) and shown["text"].startswith(":large_green_circle:")
    assert len(top_level(real.standin, "C0CRITICAL")) == 1
    thread = [c.args["text"] for c in real.standin.calls_to("chat.postMessage") if c.args.get("thread_ts") == ts]
    assert any("Resolved after 12 min" in t for t in thread)


async def test_the_digest_is_an_email_parsed_from_what_the_smtp_server_received(real):
    async def note(what, severity, summary=""):  # info: no built-in check gives it; its route is email only
        await real.incidents.observe("prod", [], [Observation("schedule", what, severity, summary)], real.clock.now)

    real.clock.now = T0 - 3 * 3600 - 600  # Monday 08:50 in Berlin
    await real.run({"Check 1": REFUSED})  # critical: told in Slack and PagerDuty, not in the digest
    await note("verify_backup", "info", "the newest backup is 26 h old")
    await real.run({}, advance=300)
    await note("verify_backup", "ok")
    await real.run({"Check 2": "HTTP 503"}, advance=60)
    await note("image_age", "info", "api's image is 40 days old")
    assert real.smtp.messages == []
    real.clock.now = T0 - 3 * 3600 + 5  # 09:00:05
    await real.deliver()
    [mail] = real.smtp.wait_for(1)
    assert mail["From"] == "opsbot@example.com" and mail["To"] == "ops@example.com"
    assert mail["Subject"] == "[shop] opsbot digest 2026-05-04: 1 open, 1 resolved"
    body = mail.get_content()
    assert body.startswith("Info alerts of shop from ")
    assert "Open now (1):" in body and "prod image_age: api's image is 40 days old" in body
    assert "Resolved (1):" in body and "prod verify_backup: the newest backup is 26 h old" in body
    assert "Check 1" not in body and "Check 2" not in body
    assert real.smtp.logins == [("opsbot", True)]


async def test_an_smtp_login_refused_is_said_once_retried_and_delivered_when_fixed(real):
    real.worker.notifiers["email"].password = "wrong"
    real.clock.now = T0 - 3 * 3600 + 5
    await real.deliver()
    for _ in range(3):
        await real.run({}, advance=3600)
    notices = [c for c in top_level(real.standin, "C0CRITICAL") if "refused the login" in c.args["text"]]
    assert len(notices) == 1 and "SMTP_PASSWORD" in notices[0].args["text"]
    assert real.smtp.messages == [] and len(real.smtp.logins) >= 2
    real.worker.notifiers["email"].password = real.smtp.password
    await real.run({}, advance=3600)
    assert len(real.smtp.wait_for(1)) == 1


async def test_pagerduty_answering_429_and_500_is_retried_and_delivered_once(real):
    real.pd.fail_next(429)
    real.pd.fail_next(500)
    await real.run({"Check 1": REFUSED})
    for _ in range(4):
        await real.run({"Check 1": REFUSED}, advance=5)
    assert [s for s, _ in real.pd.requests] == [429, 500, 202] and len(real.pd.events) == 1


async def test_slack_down_for_two_minutes_everything_arrives_after_in_order_once(real):
    real.standin.down = True
    await real.run({"Check 1": REFUSED})
    [inc] = await real.incidents.open()
    await real.handle(["ack", inc.id])
    for _ in range(4):
        await real.run({"Check 1": REFUSED}, advance=30)
    await real.run({}, advance=1)
    assert real.pd.state("prod/health/Check 1") == "resolved"  # PagerDuty did not wait for Slack
    real.standin.down = False
    for _ in range(10):
        await real.run({}, advance=30)
    [post] = top_level(real.standin, "C0CRITICAL")
    ts = post.response["ts"]
    thread = [c.args["text"] for c in real.standin.calls_to("chat.postMessage") if c.args.get("thread_ts") == ts]
    acked = [i for i, t in enumerate(thread) if "Acknowledged by" in t]
    resolved = [i for i, t in enumerate(thread) if "Resolved after" in t]
    assert len(acked) == 1 and len(resolved) == 1 and acked[0] < resolved[0]
    assert "Resolved after 2 min" in str(real.standin.message("C0CRITICAL", ts)["blocks"])
    assert all(r["state"] in ("sent", "skipped") for r in await real.worker.outbox.rows())


async def test_pagerduty_400_for_a_bad_routing_key_is_said_once_in_the_critical_channel(real):
    real.worker.notifiers["pagerduty"] = PagerDutyNotifier("not-a-valid-key", real.pd.url)
    await real.run({"Check 1": REFUSED, "Check 2": REFUSED})
    for _ in range(3):
        await real.run({"Check 1": REFUSED, "Check 2": REFUSED}, advance=1800)
    notices = [c for c in top_level(real.standin, "C0CRITICAL") if "Alerts to pagerduty are kept" in c.args["text"]]
    assert len(notices) == 1 and "HTTP 400: Invalid routing key" in notices[0].args["text"]
    assert [s for s, _ in real.pd.requests].count(400) >= 3 and real.pd.events == []  # retried, never accepted
    real.worker.notifiers["pagerduty"] = PagerDutyNotifier(KEY, real.pd.url)  # the key fixed: the pages go out
    await real.run({"Check 1": REFUSED, "Check 2": REFUSED}, advance=3600)
    assert {e["dedup_key"] for e in real.pd.events} == {"prod/health/Check 1", "prod/health/Check 2"}


# ---------------------------------------------------------------- a post that landed but whose answer was lost


def landed(slack, channel):
    """The top-level messages in ``channel`` as Slack holds them (whatever the bot heard of them)."""
    return [m for (c, _), m in slack.messages.items() if c == channel and not m.get("thread_ts")]


@pytest.mark.parametrize("how", ["reset", "timeout"])
async def test_a_post_that_landed_unheard_is_found_not_posted_again(real, how, caplog):
    real.standin.clock = real.clock  # Slack's ts in the world's simulated time, as oldest= is
    if how == "timeout":
        await real.worker.notifiers["slack"].close()
        real.worker.notifiers["slack"] = SlackNotifier("xoxb-test", real.standin.url, timeout=0.5)
    real.standin.lose_answer("chat.postMessage", how=how)
    await real.run({"Check 1": REFUSED})
    [message] = landed(real.standin, "C0CRITICAL")  # it landed; the bot did not hear
    [row] = [r for r in await real.worker.outbox.rows() if r["op"] == "post"]
    assert row["state"] == "pending" and row["maybe_sent"] == 1, row
    for _ in range(3):
        await real.run({"Check 1": REFUSED}, advance=5)
    assert [m["ts"] for m in landed(real.standin, "C0CRITICAL")] == [message["ts"]]  # found, not posted again
    [lookup] = real.standin.calls_to("conversations.history")
    assert lookup.args["channel"] == "C0CRITICAL" and lookup.args["include_all_metadata"] == "true"
    assert float(lookup.args["oldest"]) < float(message["ts"])
    [row] = [r for r in await real.worker.outbox.rows() if r["op"] == "post"]
    assert row["state"] == "sent" and '"found": true' in row["result"], row
    assert [c.status for c in real.standin.calls_to("chat.postMessage") if not c.args.get("thread_ts")] == [0]
    [inc] = await real.incidents.open()
    assert (await real.handle(["ack", inc.id])).exit_code == 0
    await real.deliver()
    assert "Acknowledged by <@U0OPERATOR>" in str(real.standin.message("C0CRITICAL", message["ts"])["blocks"])
    thread = [m for (c, _), m in real.standin.messages.items() if m.get("thread_ts") == message["ts"]]
    assert any("Acknowledged by" in m["text"] for m in thread)
    assert "posting it again" not in caplog.text


async def test_a_post_of_a_bot_killed_before_marking_it_sent_is_found_after_the_lease(real):
    real.standin.clock = real.clock
    marked = real.worker.outbox.sent

    async def killed(d, now, result=None):  # the process dies after Slack answered, before the row is marked
        return True

    real.worker.outbox.sent = killed
    await real.run({"Check 1": REFUSED})
    real.worker.outbox.sent = marked
    [message] = landed(real.standin, "C0CRITICAL")
    [row] = [r for r in await real.worker.outbox.rows() if r["op"] == "post"]
    assert row["state"] == "sending", row
    await real.run({"Check 1": REFUSED}, advance=61)  # the lease ran out: another worker takes the row
    assert [m["ts"] for m in landed(real.standin, "C0CRITICAL")] == [message["ts"]]
    [row] = [r for r in await real.worker.outbox.rows() if r["op"] == "post"]
    assert row["state"] == "sent" and row["attempts"] == 2 and '"found": true' in row["result"], row


async def test_a_thread_reply_that_landed_unheard_is_found_in_its_thread(real):
    real.standin.clock = real.clock
    await real.run({"Check 1": REFUSED})
    [message] = landed(real.standin, "C0CRITICAL")
    [inc] = await real.incidents.open()
    real.standin.lose_answer("chat.postMessage")
    await real.handle(["ack", inc.id])
    for _ in range(3):
        await real.run({"Check 1": REFUSED}, advance=5)
    thread = [m for (c, _), m in real.standin.messages.items() if m.get("thread_ts") == message["ts"]]
    acks = [m for m in thread if "Acknowledged by" in m["text"]]
    assert len(acks) == 1 and acks[0]["metadata"]["event_type"] == "opsbot_alert", thread
    [lookup] = real.standin.calls_to("conversations.replies")
    assert lookup.args["ts"] == message["ts"]


async def test_a_lookup_slack_refuses_posts_again_and_says_so_once(real, caplog):
    real.standin.clock = real.clock
    real.standin.scopes = [s for s in real.standin.scopes if s not in ("channels:history", "groups:history")]
    real.standin.lose_answer("chat.postMessage")
    await real.run({"Check 1": REFUSED})
    for _ in range(3):
        await real.run({"Check 1": REFUSED}, advance=5)
    [refused] = real.standin.calls_to("conversations.history")
    assert refused.response == {"ok": False, "error": "missing_scope", "needed": "channels:history",
                                "provided": ",".join(real.standin.scopes)}  # fmt: skip
    first, second = landed(real.standin, "C0CRITICAL")  # a duplicate beats a lost alert
    assert first["metadata"] == second["metadata"]
    warnings = [r.getMessage() for r in caplog.records if "posting it again" in r.getMessage()]
    assert len(warnings) == 1 and "missing_scope" in warnings[0] and "channels:history" in warnings[0]
    [row] = [r for r in await real.worker.outbox.rows() if r["op"] == "post"]
    assert row["state"] == "sent" and f'"ts": "{second["ts"]}"' in row["result"]
