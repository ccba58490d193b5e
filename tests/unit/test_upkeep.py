"""The upkeep door on fakes: maintenance tasks only inside their windows, claimed once by two bot processes,
reported by severity; security duty reminders posted once, edited at most daily, closed when done."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest

from adapters.fakes import FakeBackends, FakeProbe, FakeRuntime
from bot.config.redact import Redactor
from bot.core.db import Database
from bot.core.engine import Engine
from bot.doors.upkeep import Upkeep
from tests.unit.conftest import BASE, make_config

CHANNELS = {"critical": "C0CRITICAL", "warning": "C0WARNING", "info": "C0INFO"}
THURSDAY = datetime(2026, 12, 3, 9, 0, tzinfo=UTC).timestamp()
SUNDAY = datetime(2026, 12, 6, 2, 30, tzinfo=UTC).timestamp()
MAINTENANCE = {
    "windows": {"prod": [{"days": ["sun"], "from": "02:00", "to": "04:00"}]},
    "tasks": [{"task": "image_age", "env": "prod", "every": "7d", "warning_days": 30, "critical_days": 90}],
}
DUTIES = [
    {"item": "rotate_secrets", "title": "Rotate secrets", "every": "90d"},
    {"item": "access_review", "title": "Review access logs", "every": "30d"},
]


class Clock:
    """A wall clock the test moves; the engine's change path reads the same time."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def at(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)


class Alerts:
    """What the door would post for task runs: (channel severity, headline, reply)."""

    def __init__(self) -> None:
        self.posted: list[tuple[str, str, object]] = []

    async def __call__(self, severity, text, reply):
        self.posted.append((severity, text, reply))


class Poster:
    """A stand-in for the Slack door's notices: every post and edit, with a ts per message."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, str, str | None]] = []
        self.edits: list[tuple[str, str, str]] = []

    async def post_notice(self, severity, text, thread_ts=None):
        self.posts.append((severity, text, thread_ts))
        return CHANNELS[severity], f"17000.{len(self.posts):04d}"

    async def edit_notice(self, channel, ts, text):
        self.edits.append((channel, ts, text))
        return True


@pytest.fixture
def world(tmp_path):
    made: list[Engine] = []
    clock = Clock(THURSDAY)
    rt = FakeRuntime()
    rt.add("api")
    rt.image_dates = {"shop/api:1.0": datetime.fromtimestamp(SUNDAY, UTC) - timedelta(days=100)}

    def engine(duties=(), maintenance=MAINTENANCE) -> Engine:
        envs = copy.deepcopy(BASE["environments"])
        config = make_config(environments=envs, slack={"alert_channels": CHANNELS}, maintenance=maintenance,
                             security_maintenance=list(duties))  # fmt: skip
        made.append(Engine(config, FakeBackends({"prod": rt}, FakeProbe()), Database(tmp_path / "u.db"), Redactor()))
        made[-1].changes.clock = clock.at
        return made[-1]

    yield engine, clock, rt
    for e in made:
        e.db.close()


async def tick(upkeep: Upkeep) -> int:
    started = await upkeep.tick_once()
    await upkeep.wait_idle()
    return started


async def test_tasks_run_only_inside_their_window_and_report_by_severity(world):
    make, clock, rt = world
    engine, alerts = make(), Alerts()
    upkeep = Upkeep(engine, alert=alerts, clock=clock)
    assert await tick(upkeep) == 0  # due (never run), but Thursday: the window is closed
    assert not [c for c in rt.calls if c.startswith("image_created")]
    clock.now = SUNDAY
    assert await tick(upkeep) == 1
    [(channel, headline, reply)] = alerts.posted
    assert channel == "critical" and headline.endswith("Maintenance `maintenance prod image_age`: CRITICAL")
    assert reply.result.rows[0].detail.endswith("100 days ago")
    entry = next(e for e in await engine.audit.entries(limit=20) if e["event"] == "succeeded")
    assert entry["actor"] == "scheduler" and entry["source"] == "scheduler"
    clock.now = SUNDAY + 600
    assert await tick(upkeep) == 0  # done for this week
    clock.now = SUNDAY + 7 * 86400
    rt.image_dates = {"shop/api:1.0": datetime.fromtimestamp(SUNDAY, UTC)}
    assert await tick(upkeep) == 1
    assert alerts.posted[-1][0] == "info" and "OK" in alerts.posted[-1][1]  # an ok run is reported too


async def test_two_processes_run_each_task_once(world):
    make, clock, rt = world
    clock.now = SUNDAY
    first, second = Upkeep(make(), clock=clock), Upkeep(make(), clock=clock)
    assert await first.tick_once() + await second.tick_once() == 1
    await first.wait_idle()
    await second.wait_idle()
    assert len([c for c in rt.calls if c.startswith("image_created")]) == 1


async def test_a_due_duty_is_reminded_once_a_day_in_one_message_until_done(world):
    make, clock, _ = world
    engine, poster = make(duties=DUTIES[:1], maintenance=None), Poster()
    upkeep = Upkeep(engine, poster=poster, clock=clock)
    await tick(upkeep)  # never done: due from now
    [(severity, text, thread)] = poster.posts
    assert severity == "warning" and thread is None
    assert "Security duty due: Rotate secrets (rotate_secrets, every 90 days). Never recorded as done." in text
    assert "/ops security done rotate_secrets" in text
    clock.now += 3600
    await tick(upkeep)
    assert len(poster.posts) == 1 and poster.edits == []  # at most daily
    clock.now += 2 * 86400
    await tick(upkeep)
    [(channel, ts, edited)] = poster.edits
    assert (channel, ts) == ("C0WARNING", "17000.0001") and "Overdue by 2 days" in edited
    assert poster.posts[-1] == ("warning", "Still due: Rotate secrets (rotate_secrets), overdue by 2 days.",
                                "17000.0001")  # fmt: skip
    await engine.duties.done("rotate_secrets", "U0OPERATOR", "rotated", clock.now)
    clock.now += 60
    await tick(upkeep)
    assert poster.edits[-1][:2] == ("C0WARNING", "17000.0001")
    assert poster.edits[-1][2].startswith(":white_check_mark: Security duty done: Rotate secrets (rotate_secrets) by "
                                          "U0OPERATOR")  # fmt: skip
    count = (len(poster.posts), len(poster.edits))
    clock.now += 86400
    await tick(upkeep)
    assert (len(poster.posts), len(poster.edits)) == count  # done: quiet until due again
    clock.now += 90 * 86400
    await tick(upkeep)
    assert len(poster.posts) == count[0] + 1 and "Last done" in poster.posts[-1][1]  # a new message for a new period


async def test_two_processes_remind_once(world):
    make, clock, _ = world
    poster = Poster()
    first = Upkeep(make(duties=DUTIES[:1], maintenance=None), poster=poster, clock=clock)
    second = Upkeep(make(duties=DUTIES[:1], maintenance=None), poster=poster, clock=clock)
    await tick(first)
    await tick(second)
    assert len(poster.posts) == 1


async def test_the_access_review_reminder_carries_the_report(world):
    make, clock, _ = world
    engine, poster = make(duties=DUTIES[1:], maintenance=None), Poster()
    await engine.audit.append(actor="U0NEWBIE", source="slack", command="restart prod api", event="refused",
                              outcome="U0NEWBIE may not run restart")  # fmt: skip
    clock.now = datetime.now(UTC).timestamp() + 60  # the audit log is written in real time
    await tick(Upkeep(engine, poster=poster, clock=clock))
    [(_, text, _)] = poster.posts
    assert "Access report since" in text and "1 refusal" in text and "new actors: U0NEWBIE" in text


async def test_a_reminder_is_claimed_once_even_when_two_processes_race(world):
    make, clock, _ = world
    first, second = make(duties=DUTIES[:1], maintenance=None), make(duties=DUTIES[:1], maintenance=None)
    await first.duties.rows(["rotate_secrets"], clock.now)
    claims = [await e.duties.claim_reminder("rotate_secrets", clock.now, clock.now, 86400) for e in (first, second)]
    assert sum(c is not None for c in claims) == 1
    assert await first.duties.claim_reminder("rotate_secrets", clock.now, clock.now + 86401, 86400) is not None
