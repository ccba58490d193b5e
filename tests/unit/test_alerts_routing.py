"""Storms, the email digest, diagnostics in the thread, maintenance windows (on fakes, simulated time)."""

from __future__ import annotations

from bot.core.incident import Observation
from bot.render.alerts import alerts_text
from tests.helpers.alert_world import REFUSED, T0, AlertWorld, text_of, world_config


async def test_many_incidents_within_a_minute_share_one_summary_message(tmp_path):
    world = AlertWorld(str(tmp_path / "s.db"), checks=40)
    try:
        failing = {name: REFUSED for name in world.checks}
        await world.run(failing)
        assert len(await world.incidents.open()) == 40
        posts = world.posts("C0CRITICAL")
        assert len(posts) == 11  # ten alerts of their own, then one summary for the other 30
        summary = next(p for p in posts if "alerts in prod within a minute" in text_of(p))
        assert "30 alerts in prod within a minute" in text_of(summary)
        assert len(world.pagerduty.events) == 40  # every one is paged (PagerDuty groups them its own way)
        await world.run({}, advance=60)  # all recover
        ts = next(ts for (ch, ts), m in world.slack.messages.items() if "within a minute" in text_of(m))
        assert "0 still open, 30 resolved" in text_of(world.slack.messages[("C0CRITICAL", ts)])
        assert len(world.posts("C0CRITICAL")) == 11
    finally:
        world.close()


async def note(world: AlertWorld, what: str, severity: str, summary: str = "") -> None:
    """An info-severity observation (no built-in check gives one: its route is email only), as the scheduler
    would feed it."""
    await world.alerting.incidents.observe("prod", [], [Observation("schedule", what, severity, summary)],
                                           world.clock.now)


async def test_the_digest_goes_once_at_digest_at_on_weekdays_in_the_time_zone(tmp_path):
    world = AlertWorld(str(tmp_path / "d.db"))
    try:
        world.clock.now = T0 - 4 * 3600  # Monday 08:00 in Berlin: not yet
        await world.run({"Check 1": REFUSED})  # critical: paged and posted at once, never in the digest
        await note(world, "verify_backup", "info", "the newest backup is 26 h old")
        assert world.email.sent == []
        await world.run({}, advance=600)  # Check 1 resolved at 08:10
        await note(world, "verify_backup", "ok")  # resolved at 08:10
        await world.run({"Check 2": "HTTP 503"}, advance=600)
        await note(world, "image_age", "info", "api's image is 40 days old")
        world.clock.now = T0 - 3 * 3600 + 1  # 09:00:01 Berlin
        await world.deliver()
        [digest] = world.email.sent
        assert digest["to"] == ["ops@example.com"]
        assert digest["subject"] == "[shop] opsbot digest 2026-05-04: 1 open, 1 resolved"
        still, done = digest["text"].split("Resolved")
        assert "prod image_age: api's image is 40 days old" in still and "verify_backup" not in still
        assert "prod verify_backup: the newest backup is 26 h old" in done and "image_age" not in done
        assert "Check 1" not in digest["text"] and "Check 2" not in digest["text"]  # critical: told in Slack
        for _ in range(10):  # the rest of Monday: no second digest
            await world.run({}, advance=3600)
        assert len(world.email.sent) == 1
        world.clock.now = T0 + 4 * 86400 + 3600  # Friday 13:00: Tuesday to Friday each had one
        await world.deliver()
        assert len(world.email.sent) == 2  # missed days are not caught up one by one: one digest now
        world.clock.now = T0 + 5 * 86400 + 3600  # Saturday 13:00: none
        await world.deliver()
        assert len(world.email.sent) == 2
    finally:
        world.close()


async def test_an_incident_opens_with_the_matching_diagnosis_in_its_thread_once(world):
    world.probe.answer("http://127.0.0.1:18080/c1", ok=False, status=504, error="HTTP 504")
    await world.run({"Check 2": "timed out"})
    diagnosis = [a for m, a in world.slack.calls if a.get("thread_ts") and "API Timeout" in str(a.get("blocks"))]
    assert len(diagnosis) == 1 and "Troubleshooting: API Timeout" in str(diagnosis[0]["blocks"])
    assert "xoxb-secret-token" not in str(world.slack.calls)
    await world.run({}, advance=60)
    await world.run({"Check 2": "timed out"}, advance=60)  # flapped: no second diagnosis within repeat_after
    assert len([a for m, a in world.slack.calls if "Troubleshooting: API Timeout" in str(a.get("blocks"))]) == 1


async def test_a_failure_without_a_matching_entry_is_not_diagnosed(world):
    await world.run({"Check 1": "body has no key 'status'"})
    assert [a for m, a in world.slack.calls if a.get("thread_ts")] == []


async def test_a_running_maintenance_task_holds_the_alerts_of_what_it_touches_and_nothing_else(tmp_path):
    config = world_config(maintenance={"windows": {"prod": [{"days": ["mon"], "from": "11:00", "to": "13:00"}]}})
    world = AlertWorld(str(tmp_path / "w.db"), config=config)
    try:
        book = world.engine.maintenance  # db_maintenance records its run so, holding the database's service
        run_id = await book.start("prod", "db_maintenance", holds=["worker"], actor="scheduler", door="scheduler",
                                  request_id="r-maint")  # fmt: skip
        world.runtime.set_state("worker", "exited")
        await world.run({"Check 1": REFUSED}, command="status")  # Monday 12:00 Berlin: inside the window
        by_what = {i.what: i for i in await world.incidents.open()}
        assert set(by_what) == {"worker", "Check 1"}
        worker, check = by_what["worker"], by_what["Check 1"]
        assert worker.state == "silenced" and worker.held_reason.startswith("maintenance: db_maintenance runs on it")
        assert check.state == "firing"  # the window is open, but nothing holds an unrelated check: told at once
        [post] = world.posts()
        assert "Check 1" in text_of(post) and "worker" not in text_of(post)
        assert [e["dedup_key"] for e in world.pagerduty.events] == ["prod/health/Check 1"]
        reply = await world.handle(["alerts", "prod"])
        assert "  prod: db_maintenance since " in "\n".join(alerts_text(reply.result))
        assert "by scheduler: holds worker" in "\n".join(alerts_text(reply.result))
        listed = reply.to_json()
        assert listed["maintenance"] == [{"environment": "prod", "task": "db_maintenance", "actor": "scheduler",
                                          "holds": ["worker"], "started_at": listed["maintenance"][0]["started_at"]}]
        assert listed["windows"][0]["open"] is True
        for _ in range(5):  # still running five minutes later: still held, however often it is looked at
            await world.run({"Check 1": REFUSED}, command="status", advance=60)
        assert (await world.incidents.get(worker.id)).state == "silenced" and len(world.posts()) == 1
        await book.finish(run_id, "ok", "vacuumdb exited 0")
        await world.run({"Check 1": REFUSED}, command="status", advance=60)  # the task ended, the worker is down
        assert (await world.incidents.get(worker.id)).state == "firing"
        assert len(world.posts()) == 2 and "worker" in text_of(world.posts()[1])
        assert (await world.handle(["alerts", "prod"])).to_json()["maintenance"] == []
    finally:
        world.close()


async def test_without_alerting_each_severity_goes_to_its_slack_channel_only(tmp_path):
    config = world_config(alerting=None)
    world = AlertWorld(str(tmp_path / "n.db"), config=config)
    try:
        await world.run({"Check 1": REFUSED}, slow={"Check 2": 900})
        assert len(world.posts("C0CRITICAL")) == 1 and len(world.posts("C0WARNING")) == 1
        assert world.pagerduty.events == [] and world.email.sent == []
        for _ in range(20):  # no escalate_after without alerting: nobody is escalated to
            await world.run({"Check 1": REFUSED}, slow={"Check 2": 900}, advance=600)
        assert not any("escalating" in text_of(r) for r in world.posts(replies=True))
    finally:
        world.close()
