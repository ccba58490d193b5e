"""The outbox on fakes, in simulated time: receivers failing, Retry-After, outages, restarts, two workers."""

from __future__ import annotations

import asyncio

import pytest

from adapters.fakes import FakePagerDuty
from adapters.notify.base import DeliveryError
from bot.core.db import Database
from tests.helpers.alert_world import REFUSED, AlertWorld, text_of


async def test_a_slack_429_is_retried_after_its_retry_after_and_delivered_once(world):
    world.slack.fail_next(DeliveryError("Slack rate limit", retry_after=30, code="ratelimited"))
    await world.run({"Check 1": REFUSED})
    assert world.posts() == [] and len(world.slack.attempts) == 1
    await world.run({"Check 1": REFUSED, "Check 2": REFUSED}, advance=5)  # a new alert waits for Slack too
    await world.run({"Check 1": REFUSED, "Check 2": REFUSED}, advance=24)  # still inside Retry-After
    assert len(world.slack.attempts) == 1 and world.posts() == []
    assert world.pagerduty.events  # PagerDuty does not wait for Slack
    await world.run({"Check 1": REFUSED, "Check 2": REFUSED}, advance=2)
    assert len(world.posts()) == 2
    await world.run({"Check 1": REFUSED, "Check 2": REFUSED}, advance=2)
    rows = await world.worker.outbox.rows()
    assert all(r["state"] in ("sent", "skipped") for r in rows)
    post = next(r for r in rows if r["notifier"] == "slack" and r["op"] == "post")
    assert post["attempts"] == 2 and "rate limit" in post["last_error"]


async def test_slack_down_during_an_incident_everything_arrives_after_in_order_once(world):
    down = DeliveryError("Slack cannot be reached (ConnectError)", code="unreachable")
    world.slack.queue = [down] * 1000
    await world.run({"Check 1": REFUSED})
    await world.handle(["ack", (await world.incidents.open())[0].id])
    for _ in range(4):  # two minutes of Slack being down, while the incident goes on and recovers
        await world.run({"Check 1": REFUSED}, advance=30)
    await world.run({}, advance=1)
    assert world.posts() == []
    world.slack.queue = []
    for _ in range(12):  # backoff: each row is tried again within a few minutes
        await world.run({}, advance=30)
    [inc] = await world.incidents.all()
    ops = [(m, a.get("thread_ts") is not None) for m, a in world.slack.calls]
    assert ops[0] == ("chat.postMessage", False) and sum(1 for m, t in ops if m == "chat.postMessage" and not t) == 1
    said = [text_of(a) for m, a in world.slack.calls if a.get("thread_ts")]
    acked = next(i for i, t in enumerate(said) if "Acknowledged by" in t)
    resolved = next(i for i, t in enumerate(said) if "Resolved after" in t)
    assert acked < resolved  # in order
    assert sum("Acknowledged by" in t for t in said) == 1 and sum("Resolved after" in t for t in said) == 1  # once
    assert "RESOLVED" in text_of(world.slack.messages[(inc.channel, inc.message_ts)])
    assert all(r["state"] in ("sent", "skipped") for r in await world.worker.outbox.rows())


async def test_pagerduty_400_is_said_once_in_the_critical_channel_not_per_alert(world):
    world.worker.notifiers["pagerduty"] = bad = FakePagerDuty("not-a-32-character-key")
    await world.run({"Check 1": REFUSED, "Check 2": REFUSED})
    for _ in range(3):
        await world.run({"Check 1": REFUSED, "Check 2": REFUSED}, advance=60)
    notices = [text_of(p) for p in world.posts("C0CRITICAL") if "Alerts to pagerduty are kept" in text_of(p)]
    assert len(notices) == 1 and "Invalid routing key" in notices[0]
    assert len(bad.attempts) >= 2 and bad.events == []  # tried for each alert; nothing dropped
    waiting = [r for r in await world.worker.outbox.rows() if r["notifier"] == "pagerduty"]
    assert waiting and all(r["state"] == "pending" for r in waiting)
    world.worker.notifiers["pagerduty"] = good = FakePagerDuty()
    await world.run({"Check 1": REFUSED, "Check 2": REFUSED}, advance=3600)  # fixed: the pages go out
    assert {e["dedup_key"] for e in good.events} == {"prod/health/Check 1", "prod/health/Check 2"}


async def test_a_bot_killed_between_the_state_change_and_the_delivery_delivers_once_after(world, tmp_path):
    await world.run({"Check 1": REFUSED}, deliver=False)  # state changed, outbox written, nothing sent: "killed"
    assert world.slack.calls == [] and world.pagerduty.events == []
    world.close()
    restarted = AlertWorld(str(tmp_path / "a.db"), owner="w2")
    restarted.clock.now = world.clock.now + 5
    try:
        await restarted.deliver()
        await restarted.deliver()
        assert len(restarted.posts()) == 1 and len(restarted.pagerduty.events) == 1
    finally:
        restarted.close()


async def test_a_worker_that_died_holding_a_delivery_is_replaced_after_its_lease(world, tmp_path):
    await world.run({"Check 1": REFUSED}, deliver=False)
    claimed = await world.worker.outbox.claim(world.clock.now)  # claimed, then the process dies
    assert claimed
    other = AlertWorld(str(tmp_path / "a.db"), owner="w2")
    other.clock.now = world.clock.now + 10
    try:
        await other.deliver()
        assert not any(r["state"] == "sent" and r["id"] in [c.id for c in claimed]
                       for r in await other.worker.outbox.rows())  # fmt: skip
        other.clock.now += 61  # the lease ran out
        await other.deliver()
        await other.deliver()
        assert len(other.posts()) == 1
    finally:
        other.close()


async def test_a_worker_known_gone_is_replaced_at_once(tmp_path):
    path = str(tmp_path / "a.db")
    dead, other = AlertWorld(path, owner="host:41:aa"), AlertWorld(path, owner="host:7:bb")
    try:
        await dead.run({"Check 1": REFUSED}, deliver=False)
        claimed = await dead.worker.outbox.claim(dead.clock.now)  # claimed, then the process dies
        assert claimed
        other.clock.now = dead.clock.now + 1
        assert await other.worker.outbox.expire("host:4:") == 0  # another process's prefix: nothing
        await other.deliver()
        assert other.posts() == []  # its lease holds
        assert await other.worker.outbox.expire("host:41:") == len(claimed)  # (the front saw its back exit)
        await other.deliver()
        await other.deliver()
        assert len(other.posts()) == 1
        assert {r["state"] for r in await other.worker.outbox.rows()} == {"sent"}
    finally:
        dead.close()
        other.close()


async def test_two_bot_processes_on_one_database_deliver_each_notification_once(tmp_path):
    path = str(tmp_path / "a.db")
    a, b = AlertWorld(path, checks=12, owner="a"), AlertWorld(path, checks=12, owner="b")
    try:
        b.clock = a.clock
        b.worker.clock = a.clock
        b.worker.alerting.clock = a.clock
        failing = {name: REFUSED for name in a.checks}
        await a.run(failing, deliver=False)
        for _ in range(5):
            await asyncio.gather(a.worker.step(), b.worker.step())
        a.clock.now += 1
        for _ in range(5):
            await asyncio.gather(a.worker.step(), b.worker.step())
        rows = await a.worker.outbox.rows()
        sent = [r for r in rows if r["state"] == "sent"]
        assert len(sent) == len(rows)
        slack_calls = len(a.slack.calls) + len(b.slack.calls)
        pages = len(a.pagerduty.events) + len(b.pagerduty.events)
        assert pages == 12 and slack_calls == len([r for r in sent if r["notifier"] in ("slack", "opsbot")])
        assert a.slack.calls and b.slack.calls  # both worked
    finally:
        a.close()
        b.close()


async def test_an_outbox_row_is_never_dropped_even_after_many_failures(world):
    world.slack.queue = [DeliveryError("Slack refused chat.postMessage: channel_not_found", permanent=True,
                                       code="channel_not_found")] * 12  # fmt: skip
    await world.run({"Check 1": REFUSED})
    for _ in range(12):
        await world.run({"Check 1": REFUSED}, advance=3600)
    assert len(world.posts("C0CRITICAL")) >= 1
    assert any(p for p in world.posts("C0CRITICAL") if "Check 1" in text_of(p))


async def test_rows_wait_for_the_earlier_ones_of_their_incident(tmp_path):
    db = Database(tmp_path / "o.db")
    try:
        from bot.core.db import immediate
        from bot.core.outbox import Outbox, add

        def write(sqlite_db):
            with immediate(sqlite_db.conn) as conn:
                for op in ("post", "reply", "reply"):
                    add(conn, grp="slack:x", notifier="slack", op=op, payload={}, now=100.0)
                add(conn, grp="slack:y", notifier="slack", op="post", payload={}, now=100.0)

        await db.call(write)
        box = Outbox(db, "me")
        first = await box.claim(100.0)
        assert [(d.grp, d.op) for d in first] == [("slack:x", "post"), ("slack:y", "post")]
        await box.retry(first[0], 100.0, "down", after=10)
        await box.sent(first[1], 100.0)
        assert await box.claim(105.0) == []  # x's replies wait for x's post
        again = await box.claim(111.0)
        assert [(d.grp, d.op) for d in again] == [("slack:x", "post")]
    finally:
        db.close()


@pytest.mark.parametrize(("error", "looked"), [
    (DeliveryError("Slack rate limit on chat.postMessage", retry_after=1, code="ratelimited"), False),
    (DeliveryError("Slack refused chat.postMessage: invalid_blocks", permanent=True, code="invalid_blocks"), False),
    (DeliveryError("Slack chat.postMessage timed out", code="timeout"), True),
    (DeliveryError("Slack cannot be reached (ReadError)", code="unreachable"), True),
    (DeliveryError("Slack answered HTTP 502 to chat.postMessage", code="http_5xx"), True),
])  # fmt: skip
async def test_a_post_is_looked_for_before_posting_again_only_if_an_attempt_may_have_landed(world, error, looked):
    world.slack.fail_next(error)
    await world.run({"Check 1": REFUSED})
    for _ in range(3):
        await world.run({"Check 1": REFUSED}, advance=5)
    [row] = [r for r in await world.worker.outbox.rows() if r["op"] == "post"]
    tries = [a.body for a in world.slack.attempts if a.delivery_id == row["delivery_id"]]
    assert [("find" in body) for body in tries] == [False, looked] and row["state"] == "sent"
    assert all(b["args"]["metadata"]["event_payload"]["delivery_id"] == row["delivery_id"] for b in tries)
    if looked:
        assert tries[1]["find"]["oldest"] < row["created_at"]


async def test_the_worker_stops_when_it_is_cancelled_in_the_step_that_wakes_it(world):
    """A wake and a cancel in one loop step: the worker stops (Python 3.11's ``asyncio.wait_for`` returned the
    wake and lost the cancel; ``serve``'s shutdown then waited for the worker forever, the back was killed)."""
    task = asyncio.create_task(world.worker.run_forever())
    for _ in range(1000):  # until it waits to be woken
        await asyncio.sleep(0.01)
        event = world.worker._event
        if event is not None and event._waiters:  # type: ignore[attr-defined]
            break
    assert event is not None and event._waiters, "the worker never waited to be woken"  # type: ignore[attr-defined]
    event.set()
    task.cancel()
    await asyncio.wait({task}, timeout=10)
    assert task.done() and task.cancelled()
