"""One incident through its life on fakes, in simulated time: one message, edited; repeats, flaps, recovery."""

from __future__ import annotations

from bot.core.request import Reply
from tests.helpers.alert_world import REFUSED, text_of


async def test_a_failing_check_is_one_message_edited_until_it_recovers(world):
    await world.run({"Check 1": REFUSED})
    [incident] = await world.incidents.open()
    assert (incident.state, incident.severity, incident.what, incident.source) == ("firing", "critical", "Check 1",
                                                                                      "health")
    [post] = world.posts("C0CRITICAL")
    assert "CRITICAL" in text_of(post) and "Check 1" in text_of(post) and "connection refused" in text_of(post)
    buttons = [e["text"]["text"] for b in post["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert buttons == ["Acknowledge", "Silence 1h", "Troubleshoot"]
    assert [e["event_action"] for e in world.pagerduty.events] == ["trigger"]
    assert world.pagerduty.events[0]["dedup_key"] == "prod/health/Check 1"
    for _ in range(30):  # 30 more failing runs a minute apart: nothing new is posted, the count is edited in
        await world.run({"Check 1": REFUSED}, advance=60)
    assert len(world.posts()) == 1
    [last] = [m for m in world.slack.messages.values() if not m.get("thread_ts")]
    assert "failed 31 times" in text_of(last) and "Still failing since 12:00" in text_of(last)
    assert len(world.pagerduty.events) == 1
    await world.run({}, advance=60 * 2)  # recovered at 12:32
    [edited] = [m for m in world.slack.messages.values() if not m.get("thread_ts")]
    assert "RESOLVED" in text_of(edited) and "Resolved after 32 min" in text_of(edited)
    assert not any(b["type"] == "actions" for b in edited["blocks"])  # no buttons once resolved
    replies = [text_of(r) for r in world.posts(replies=True)]
    assert any("Resolved after 32 min" in r for r in replies)
    assert [e["event_action"] for e in world.pagerduty.events] == ["trigger", "resolve"]
    assert await world.incidents.open() == []
    assert len(world.posts()) == 1


async def test_still_failing_is_said_in_the_thread_at_most_every_repeat_after(world):
    await world.run({"Check 1": REFUSED})
    for _ in range(9 * 6):  # 9 hours, every 10 minutes
        await world.run({"Check 1": REFUSED}, advance=600)
    repeats = [text_of(r) for r in world.posts(replies=True) if "Still failing since" in text_of(r)]
    assert len(repeats) == 2  # at 4 h and 8 h
    assert len(world.posts()) == 1


async def test_a_check_that_flaps_stays_one_incident_and_one_message(world):
    for i in range(10):
        await world.run({"Check 1": REFUSED} if i % 2 == 0 else {}, advance=60)
    incidents = await world.incidents.all()
    assert len(incidents) == 1 and incidents[0].flaps == 4
    assert len(world.posts()) == 1
    replies = [text_of(r) for r in world.posts(replies=True)]
    assert sum("Failing again" in r for r in replies) == 1  # the first flap is said, then quiet
    assert sum("Resolved after" in r for r in replies) == 1  # only the first recovery, before it flapped
    msg = next(m for m in world.slack.messages.values() if not m.get("thread_ts"))
    assert "RESOLVED" in text_of(msg)  # it ended passing
    # PagerDuty: paged, resolved, paged again once; not once per flap; resolved once it stays resolved
    assert [e["event_action"] for e in world.pagerduty.events] == ["trigger", "resolve", "trigger"]
    for _ in range(11):
        await world.run({}, advance=60)
    assert [e["event_action"] for e in world.pagerduty.events] == ["trigger", "resolve", "trigger", "resolve"]


async def test_a_failure_long_after_recovery_is_a_new_incident(world):
    await world.run({"Check 1": REFUSED})
    await world.run({}, advance=60)
    await world.run({"Check 1": REFUSED}, advance=3600)
    assert len(await world.incidents.all()) == 2 and len(world.posts()) == 2


async def test_a_severity_change_edits_the_same_message_and_routes_as_the_new_severity(world):
    await world.run(slow={"Check 1": 700})  # latency warning
    [inc] = await world.incidents.open()
    assert inc.severity == "warning" and len(world.posts("C0WARNING")) == 1 and world.pagerduty.events == []
    await world.run({"Check 1": REFUSED}, advance=60)  # now critical
    [inc] = await world.incidents.open()
    assert inc.severity == "critical" and inc.id == (await world.incidents.all())[0].id
    assert len(world.posts("C0WARNING")) == 1  # the same message...
    assert "CRITICAL" in text_of(world.slack.messages[("C0WARNING", inc.message_ts)])  # ...edited
    [pointer] = world.posts("C0CRITICAL")  # and the critical channel is told where it is
    assert f"Its alert (`{inc.id}`) is in <#C0WARNING>" in text_of(pointer)
    assert [e["event_action"] for e in world.pagerduty.events] == ["trigger"]  # and paged as critical
    assert any("Severity raised from warning to *critical*" in text_of(r) for r in world.posts(replies=True))
    await world.run(slow={"Check 1": 700}, advance=60)  # back to warning: the page resolves
    assert [e["event_action"] for e in world.pagerduty.events] == ["trigger", "resolve"]


async def test_every_transition_is_audited_as_the_scheduler(world):
    await world.run({"Check 1": REFUSED})
    await world.run({}, advance=60)
    events = [(e["event"], e["source"], e["actor"]) for e in await world.engine.audit.entries(limit=50)
              if e["event"].startswith("alert-")]  # fmt: skip
    assert events == [("alert-resolved", "scheduler", "scheduler"), ("alert-opened", "scheduler", "scheduler")]
    assert (await world.engine.audit.verify()).ok


async def test_a_status_run_feeds_each_service_and_the_engine_as_incidents_of_their_own(world):
    world.runtime.set_state("worker", "exited")
    await world.run(command="status")  # the scheduler's health_check runs `status`
    [inc] = await world.incidents.open()
    assert (inc.source, inc.what, inc.severity, inc.fingerprint) == ("container", "worker", "critical",
                                                                     "prod/container/worker")  # fmt: skip
    assert inc.summary.startswith("exited")
    [post] = world.posts("C0CRITICAL")
    assert "worker" in text_of(post) and "exited" in text_of(post)
    world.runtime.go_away()  # the engine stops answering
    await world.run(command="status", advance=60)
    by_what = {i.what: i for i in await world.incidents.open()}
    assert set(by_what) == {"worker", "engine"}  # a service that cannot be seen is not "recovered"
    assert by_what["engine"].source == "runtime" and "does not answer" in by_what["engine"].summary
    assert by_what["worker"].count == 1  # and not seen again either
    world.runtime.fail = None  # the engine is back, the worker running again
    world.runtime.set_state("worker", "running")
    await world.run(command="status", advance=60)
    assert await world.incidents.open() == []
    resolved = {i.what: i.resolved_at for i in await world.incidents.all()}
    assert resolved == {"worker": world.clock.now, "engine": world.clock.now}
    assert len(world.posts()) == 2  # one message each, edited to RESOLVED
    assert all("RESOLVED" in text_of(m) for m in world.slack.messages.values() if not m.get("thread_ts"))


async def test_a_scheduled_task_is_an_incident_that_only_its_own_runs_resolve(world):
    def reply(command: str, error: str | None = None) -> Reply:
        return Reply(request_id="r", command=command, error=error, severity="critical" if error else "ok",
                     exit_code=1 if error else 0)  # fmt: skip

    await world.alerting.observe_run("verify_backup", "prod", reply("verify-backup", "no backup younger than 24h"))
    [inc] = await world.incidents.open()
    assert (inc.source, inc.what, inc.severity, inc.summary) == ("schedule", "verify_backup", "critical",
                                                                 "no backup younger than 24h")  # fmt: skip
    await world.alerting.observe_run("backup", "prod", reply("backup"))  # another task went well
    await world.run(command="status")  # and a status run covers other sources
    assert [i.what for i in await world.incidents.open()] == ["verify_backup"]
    await world.alerting.observe_run("verify_backup", "prod", reply("verify-backup"))
    assert await world.incidents.open() == []
