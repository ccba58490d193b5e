"""Notifiers: the same cases against the fakes and against the real receivers' stand-ins.

Slack: the Web API stand-in (tests/helpers/slack.py); PagerDuty: the Events API v2 stand-in
(tests/helpers/pagerduty.py); email: a real SMTP server (aiosmtpd, tests/helpers/smtp.py).
"""

from __future__ import annotations

import pytest

from adapters.fakes import FakeEmail, FakePagerDuty, FakeSlackNotifier
from adapters.notify.base import DeliveryError, Notifier, Outgoing
from adapters.notify.pagerduty import PagerDutyNotifier
from adapters.notify.slack import SlackNotifier
from adapters.notify.smtp import SmtpNotifier
from tests.helpers.pagerduty import PagerDutyStandIn
from tests.helpers.slack import SlackStandIn
from tests.helpers.smtp import SmtpServer

KEY = "R0UTINGKEY0000000000000000000000"
TRIGGER = {"event_action": "trigger", "dedup_key": "prod/health/API Health", "payload": {
    "summary": "[prod] API Health: HTTP 503", "source": "shop/prod", "severity": "critical"}}  # fmt: skip


def out(body, delivery_id="d1"):
    return Outgoing(delivery_id=delivery_id, body=body)


def post(channel="C0CRITICAL", text="API Health is failing"):
    return out({"method": "chat.postMessage", "args": {"channel": channel, "text": text,
                "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}})  # fmt: skip


def update(channel, ts, text="Resolved after 12 min"):
    return out({"method": "chat.update", "args": {"channel": channel, "ts": ts, "text": text}})


# ---------------------------------------------------------------- Slack


@pytest.fixture(params=["fake", "standin"])
async def slack(request):
    if request.param == "fake":
        notifier = FakeSlackNotifier()
        notifier.fail_429 = lambda: notifier.fail_next(DeliveryError("Slack rate limit on chat.postMessage: retry "
                                                                     "after 7 s", retry_after=7, code="ratelimited"))
        notifier.fail_error = lambda error: notifier.fail_next(DeliveryError(f"Slack refused chat.postMessage: {error}",
                                                                             permanent=True, code=error))
        yield notifier
        return
    async with SlackStandIn() as standin:
        standin.strict_updates = True
        notifier = SlackNotifier("xoxb-test-token", standin.url)
        notifier.fail_429 = lambda: standin.fail_next("chat.postMessage", status=429, retry_after=7)
        notifier.fail_error = lambda error: standin.fail_next("chat.postMessage", error=error)
        notifier.standin = standin
        yield notifier
        await notifier.close()


async def test_slack_notifiers_are_notifiers(slack):
    assert isinstance(slack, Notifier) and slack.name == "slack"


async def test_a_post_gives_its_ts_and_an_edit_of_it_lands(slack):
    posted = await slack.send(post())
    assert posted["channel"] == "C0CRITICAL" and posted["ts"]
    edited = await slack.send(update("C0CRITICAL", posted["ts"]))
    assert edited["ts"] == posted["ts"]
    if hasattr(slack, "standin"):
        assert slack.standin.message("C0CRITICAL", posted["ts"])["text"] == "Resolved after 12 min"


async def test_an_edit_of_a_deleted_message_is_done_not_retried(slack):
    assert await slack.send(update("C0CRITICAL", "1600000000.000001")) == {"gone": True}


async def test_a_429_carries_slacks_retry_after(slack):
    slack.fail_429()
    with pytest.raises(DeliveryError) as caught:
        await slack.send(post())
    assert caught.value.retry_after == 7 and not caught.value.permanent and caught.value.code == "ratelimited"
    assert (await slack.send(post()))["ts"]  # the next one goes through


async def test_a_channel_that_does_not_exist_is_permanent(slack):
    slack.fail_error("channel_not_found")
    with pytest.raises(DeliveryError) as caught:
        await slack.send(post())
    assert caught.value.permanent and caught.value.code == "channel_not_found"


def tagged(delivery_id, find=False, **extra):
    body = post().body
    body["args"].update(metadata={"event_type": "opsbot_alert", "event_payload": {"delivery_id": delivery_id}},
                        **extra)  # fmt: skip
    if find:
        body["find"] = {"oldest": 1_000_000_000.0}
    return out(body, delivery_id)


async def test_a_post_that_may_have_landed_is_found_by_its_delivery_id_not_posted_twice(slack):
    first = await slack.send(tagged("d7"))
    again = await slack.send(tagged("d7", find=True))
    assert again["ts"] == first["ts"] and again["channel"] == "C0CRITICAL"
    other = await slack.send(tagged("d8", find=True))  # another delivery: posted
    assert other["ts"] != first["ts"]
    reply = await slack.send(tagged("d9", thread_ts=first["ts"]))
    assert (await slack.send(tagged("d9", find=True, thread_ts=first["ts"])))["ts"] == reply["ts"]
    messages = slack.standin.messages if hasattr(slack, "standin") else slack.messages
    assert sorted(ts for (_, ts) in messages) == sorted([first["ts"], other["ts"], reply["ts"]])


async def test_slack_down_is_worth_trying_again():
    async with SlackStandIn() as standin:
        notifier = SlackNotifier("xoxb-test-token", standin.url)
        standin.down = True
        try:
            with pytest.raises(DeliveryError) as caught:
                await notifier.send(post())
            assert not caught.value.permanent and caught.value.retry_after is None
            standin.down = False
            assert (await notifier.send(post()))["ts"]
        finally:
            await notifier.close()


# ---------------------------------------------------------------- PagerDuty


@pytest.fixture(params=["fake", "standin"])
async def pagerduty(request):
    if request.param == "fake":
        fake = FakePagerDuty(KEY)
        fake.accepted = lambda: fake.events
        fake.with_key = lambda key: FakePagerDuty(key)
        yield fake
        return
    async with PagerDutyStandIn() as standin:
        notifier = PagerDutyNotifier(KEY, standin.url)
        notifier.accepted = lambda: standin.events
        notifier.with_key = lambda key: PagerDutyNotifier(key, standin.url)
        notifier.standin = standin
        yield notifier
        await notifier.close()


async def test_pagerduty_notifiers_are_notifiers(pagerduty):
    assert isinstance(pagerduty, Notifier) and pagerduty.name == "pagerduty"


async def test_trigger_acknowledge_resolve_share_the_dedup_key(pagerduty):
    for action in ("trigger", "acknowledge", "resolve"):
        body = TRIGGER if action == "trigger" else {"event_action": action, "dedup_key": TRIGGER["dedup_key"]}
        answer = await pagerduty.send(out(body))
        assert answer["dedup_key"] == TRIGGER["dedup_key"]
    events = pagerduty.accepted()
    assert [e["event_action"] for e in events] == ["trigger", "acknowledge", "resolve"]
    assert all(e["routing_key"] == KEY and e["dedup_key"] == TRIGGER["dedup_key"] for e in events)


@pytest.mark.parametrize("broken", [
    {"payload": {"summary": "x", "source": "shop/prod", "severity": "fatal"}},
    {"payload": {"summary": "", "source": "shop/prod", "severity": "critical"}},
    {"payload": {"summary": "x" * 1025, "source": "shop/prod", "severity": "critical"}},
    {"event_action": "escalate"},
])  # fmt: skip
async def test_a_malformed_event_is_a_permanent_400(pagerduty, broken):
    with pytest.raises(DeliveryError) as caught:
        await pagerduty.send(out({**TRIGGER, **broken}))
    assert caught.value.permanent and "400" in str(caught.value)
    assert pagerduty.accepted() == []


async def test_a_bad_routing_key_is_a_permanent_400(pagerduty):
    bad = pagerduty.with_key("too-short")
    with pytest.raises(DeliveryError) as caught:
        await bad.send(out(TRIGGER))
    assert caught.value.permanent and caught.value.code == "http_400"


async def test_no_routing_key_is_said_and_permanent(pagerduty):
    missing = pagerduty.with_key(None)
    with pytest.raises(DeliveryError) as caught:
        await missing.send(out(TRIGGER))
    assert caught.value.permanent and "PAGERDUTY_ROUTING_KEY is not set" in str(caught.value)


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_pagerduty_429_and_5xx_are_worth_trying_again(status):
    async with PagerDutyStandIn() as standin:
        notifier = PagerDutyNotifier(KEY, standin.url)
        standin.fail_next(status)
        try:
            with pytest.raises(DeliveryError) as caught:
                await notifier.send(out(TRIGGER))
            assert not caught.value.permanent
            assert caught.value.retry_after == (1 if status == 429 else None)
            await notifier.send(out(TRIGGER))
        finally:
            await notifier.close()
    assert [s for s, _ in standin.requests] == [status, 202] and len(standin.events) == 1


# ---------------------------------------------------------------- email


@pytest.fixture(params=["fake", "smtp"])
async def mail(request):
    if request.param == "fake":
        fake = FakeEmail()
        fake.received = lambda: [(m["subject"], m["text"], m["message_id"]) for m in fake.sent]
        fake.wrong_password = lambda: setattr(fake, "password_ok", False)
        yield fake
        return
    server = SmtpServer().start()
    notifier = SmtpNotifier(server.url, "opsbot@example.com", password=server.password, timeout=10)
    notifier.received = lambda: [(m["Subject"], m.get_content().replace("\r\n", "\n").rstrip("\n"),
                                    m["Message-ID"]) for m in server.messages]
    notifier.wrong_password = lambda: setattr(notifier, "password", "not-it")
    notifier.server = server
    yield notifier
    server.stop()


DIGEST = {"to": ["ops@example.com", "oncall@example.com"], "subject": "opsbot digest: 2 alerts",
          "text": "line 1\nline 2"}


async def test_email_notifiers_are_notifiers(mail):
    assert isinstance(mail, Notifier) and mail.name == "email"


async def test_an_email_arrives_with_its_delivery_id_as_message_id(mail):
    answer = await mail.send(out(DIGEST, delivery_id="abc123"))
    assert answer["message_id"] == "<abc123@opsbot>" and answer["refused"] == []
    assert mail.received() == [("opsbot digest: 2 alerts", "line 1\nline 2", "<abc123@opsbot>")]
    if hasattr(mail, "server"):
        assert mail.server.envelopes == [{"from": "opsbot@example.com", "to": DIGEST["to"]}]


async def test_a_refused_login_is_permanent_and_nothing_is_sent(mail):
    mail.wrong_password()
    with pytest.raises(DeliveryError) as caught:
        await mail.send(out(DIGEST))
    assert caught.value.permanent and caught.value.code == "auth" and "SMTP_PASSWORD" in str(caught.value)
    assert mail.received() == []


async def test_an_smtp_server_that_does_not_answer_is_worth_trying_again():
    from tests.helpers.http_servers import free_port

    notifier = SmtpNotifier(f"smtp://127.0.0.1:{free_port()}", "opsbot@example.com", timeout=3)
    with pytest.raises(DeliveryError) as caught:
        await notifier.send(out(DIGEST))
    assert not caught.value.permanent and "cannot be reached" in str(caught.value)
