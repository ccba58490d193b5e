"""``alerts``, ``ack`` and ``silence`` through the one request path; escalation; holds (on fakes, simulated time)."""

from __future__ import annotations

import pytest

from tests.helpers.alert_world import REFUSED, text_of


def replies(world) -> list[str]:
    return [text_of(r) for r in world.posts(replies=True)]


def message(world, inc):
    return world.slack.messages[(inc.channel, inc.message_ts)]


async def test_alerts_lists_open_alerts_with_the_contracts_keys(world):
    await world.run({"Check 1": REFUSED, "Check 2": "timed out"})
    reply = await world.handle(["alerts", "prod"], actor="U0SOMEONE")
    data = reply.to_json()
    assert reply.exit_code == 0 and data["kind"] == "alerts" and len(data["alerts"]) == 2
    for a in data["alerts"]:
        assert {"id", "environment", "source", "severity", "state", "summary", "opened_at", "acked_by",
                "level"} <= set(a)  # fmt: skip
        assert a["state"] == "firing" and a["environment"] == "prod" and a["level"] == "L1"
    assert (await world.handle(["alerts"])).to_json()["alerts"] == data["alerts"]


async def test_ack_stops_escalation_edits_the_message_and_acknowledges_the_page(world):
    await world.run({"Check 1": REFUSED})
    [inc] = await world.incidents.open()
    reply = await world.handle(["ack", inc.id])
    assert reply.exit_code == 0 and reply.to_json()["alert"]["state"] == "acknowledged"
    await world.deliver()
    [inc] = await world.incidents.open()
    assert inc.acked_by == "U0OPERATOR"
    assert "Acknowledged by <@U0OPERATOR> at 12:00" in text_of(message(world, inc))
    assert [b["text"]["text"] for blk in message(world, inc)["blocks"] if blk["type"] == "actions"
            for b in blk["elements"]] == ["Silence 1h", "Troubleshoot"]  # fmt: skip
    assert any("Acknowledged by <@U0OPERATOR>" in r for r in replies(world))
    assert [e["event_action"] for e in world.pagerduty.events] == ["trigger", "acknowledge"]
    for _ in range(30):  # 30 minutes on: no escalation
        await world.run({"Check 1": REFUSED}, advance=60)
    assert not any("escalating" in r for r in replies(world))
    events = [(e["event"], e["actor"]) for e in await world.engine.audit.entries(limit=100)
              if e["command"].startswith("ack")]  # fmt: skip
    assert ("succeeded", "U0OPERATOR") in events


async def test_ack_refuses_unknown_resolved_twice_garbage_and_non_operators(world):
    await world.run({"Check 1": REFUSED})
    [inc] = await world.incidents.open()
    viewer = await world.handle(["ack", inc.id], actor="U0VIEWER")
    assert viewer.exit_code == 2 and "needs the admins or operators role" in viewer.error
    unknown = await world.handle(["ack", "0badc0de"])
    assert unknown.exit_code == 2 and "alert 0badc0de is unknown or not yours" in unknown.error
    garbage = await world.handle(["ack", "x; rm -rf /"])
    assert garbage.exit_code == 2 and "invalid alert id" in garbage.error
    assert (await world.handle(["ack", inc.id])).exit_code == 0
    twice = await world.handle(["ack", inc.id], actor="U0ADMIN")
    assert twice.exit_code == 2 and "already acknowledged by U0OPERATOR" in twice.error
    await world.run({}, advance=60)
    resolved = await world.handle(["ack", inc.id])
    assert resolved.exit_code == 2 and "is resolved" in resolved.error


async def test_not_acknowledged_in_time_escalates_level_by_level_audited(world):
    await world.run({"Check 1": REFUSED})
    for _ in range(20):
        await world.run({"Check 1": REFUSED}, advance=60)
    said = [r for r in replies(world) if "escalating" in r]
    assert said == [
        ":rotating_light: Not acknowledged in time: escalating to *L2* <@U0SENIOR> (Complex issues).",
        ":rotating_light: Not acknowledged in time: escalating to *L3* <@U0TECHLEAD> (Critical/Architecture).",
    ]  # at 5 and 10 minutes; L3 is the last level
    [inc] = await world.incidents.open()
    assert inc.level == 3 and "Escalated to: *L3* <@U0TECHLEAD>" in text_of(message(world, inc))
    audited = [e["outcome"] for e in await world.engine.audit.entries(limit=200) if e["event"] == "alert-escalated"]
    assert len(audited) == 2 and "L2 <@U0SENIOR>" in audited[-1]


@pytest.mark.parametrize("duration", ["0s", "99y", "-1h", "garbage", "8d", "1h-", ""])
async def test_silence_refuses_bad_durations_and_records_nothing(world, duration):
    reply = await world.handle(["silence", "prod", "Check 1", duration])
    assert reply.exit_code == 2 and reply.error.startswith("silence:"), reply.error
    assert await world.incidents.silences(None, world.clock.now) == []


async def test_silence_refuses_what_the_environment_does_not_have(world):
    reply = await world.handle(["silence", "prod", "Check 99", "1h"])
    assert reply.exit_code == 2 and "not a check, service, metric or task of prod" in reply.error
    assert "Check 1" in reply.error


async def test_a_silence_holds_one_check_never_another_and_ends_by_itself(world):
    await world.run({"Check 1": REFUSED})
    [inc] = await world.incidents.open()
    dry = await world.handle(["silence", "prod", "Check 1", "1h", "--dry-run"])
    assert dry.to_json()["kind"] == "plan" and await world.incidents.silences(None, world.clock.now) == []
    reply = await world.handle(["silence", "prod", "Check 1", "1h", "--reason", "db migration"])
    assert reply.exit_code == 0 and [a["id"] for a in reply.to_json()["alerts"]] == [inc.id]
    await world.deliver()
    [inc] = await world.incidents.open()
    assert inc.state == "silenced" and "Held until 13:00" in text_of(message(world, inc))
    assert "db migration" in text_of(message(world, inc))
    before = len(world.slack.calls), len(world.pagerduty.events)
    for _ in range(30):  # half an hour silenced: no escalation, no repeats...
        await world.run({"Check 1": REFUSED}, advance=60)
    assert not any("escalating" in r for r in replies(world))
    await world.run({"Check 1": REFUSED, "Check 2": "HTTP 503"}, advance=60)  # ...but another check alerts
    other = [i for i in await world.incidents.open() if i.what == "Check 2"]
    assert other[0].state == "firing" and len(world.posts()) == 2
    listed = (await world.handle(["alerts", "prod"])).to_json()
    assert {a["what"]: a["state"] for a in listed["alerts"]} == {"Check 1": "silenced", "Check 2": "firing"}
    assert listed["silences"][0]["what"] == "Check 1" and listed["silences"][0]["reason"] == "db migration"
    for _ in range(30):  # the silence ends at 13:00: still failing, so it is told again
        await world.run({"Check 1": REFUSED, "Check 2": "HTTP 503"}, advance=60)
    [inc] = [i for i in await world.incidents.open() if i.what == "Check 1"]
    assert inc.state == "firing" and any("The hold ended: still failing since 12:00" in r for r in replies(world))
    assert world.pagerduty.state["prod/health/Check 1"] == "triggered"
    assert len(world.slack.calls) > before[0]


async def test_a_failure_that_starts_silenced_posts_nothing_until_the_silence_ends(world):
    assert (await world.handle(["silence", "prod", "Check 2", "10m"])).exit_code == 0
    await world.run({"Check 2": REFUSED})
    [inc] = await world.incidents.open()
    assert inc.state == "silenced" and world.posts() == [] and world.pagerduty.events == []
    for _ in range(11):
        await world.run({"Check 2": REFUSED}, advance=60)
    [inc] = await world.incidents.open()
    assert inc.state == "firing" and len(world.posts()) == 1 and len(world.pagerduty.events) == 1


async def test_ack_and_silence_work_while_a_change_holds_the_environment(world):
    await world.run({"Check 1": REFUSED})
    [inc] = await world.incidents.open()
    async with world.engine.changes.locks.hold("prod", "`deploy prod 1.2` (by U0OPERATOR)"):
        assert (await world.handle(["ack", inc.id])).exit_code == 0
        assert (await world.handle(["silence", "prod", "Check 2", "30m"])).exit_code == 0
