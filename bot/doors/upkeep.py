"""Upkeep without a person: maintenance tasks inside their windows (guide 7.3), security duty reminders (7.4).

``Upkeep`` is the scheduler door for ``maintenance.tasks``: each task is due every ``every`` (claimed
through ``schedule_state`` like a schedule: exactly one bot process runs each run) but only while a
maintenance window of its environment is open (an environment without windows: whenever due). A run
is the request ``maintenance <env> <task>`` through ``Engine.handle`` as ``scheduler``: parsed,
authorized, run (inside a window a maintenance task needs no approvers), redacted and audited like a
person's. Every run is reported in the alert channel of its severity (``ok`` in ``info``).

Each tick it also reminds the security duties that are due (``security_maintenance`` items with
``every``): one message in ``slack.alert_channels.warning`` per due item, edited at most once per
``remind_every`` (a day) while it stays overdue and said again in its thread; once the item is
recorded as done, the message is edited to say by whom and when. The access review's reminder
carries the audit log's report of its period.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Protocol

from bot.config.guide import SecurityDuty
from bot.config.windows import window_state
from bot.core.engine import Engine, Reply, new_request_id
from bot.core.schedule_state import Claim, schedule_key
from bot.doors.scheduler import ICON, Alert, Scheduler
from commands.security import ACCESS_REVIEW, due_at
from commands.security_report import AccessReport

log = logging.getLogger("opsbot.upkeep")
#: a still-due duty is reminded again after this many seconds
REMIND_EVERY = 86400.0


class Poster(Protocol):
    """Posts and edits notices in the alert channels (the Slack door); the text is escaped there."""

    async def post_notice(self, severity: str, text: str, thread_ts: str | None = None) -> tuple[str, str] | None:
        """Post ``text`` to the channel of ``severity`` (in a thread when given); (channel, ts) or None."""
        ...

    async def edit_notice(self, channel: str, ts: str, text: str) -> bool:
        """Replace the text of a notice posted before; False when Slack refused it."""
        ...


def _day(moment: float | None) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d") if moment is not None else "never"


def reminder_text(duty: SecurityDuty, row: dict[str, Any], due: float, now: float,
                  report: AccessReport | None) -> str:  # fmt: skip
    """The reminder of a due duty: what, since when, last done, how to record it, the access report."""
    every = f"every {duty.every / 86400:g} days" if duty.every else ""
    done = (f"Last done {_day(row.get('last_done_at'))} by {row.get('last_done_by')}."
            if row.get("last_done_at") else "Never recorded as done.")  # fmt: skip
    late = int((now - due) // 86400)
    overdue = f" Overdue by {late} day{'s' if late != 1 else ''}." if late >= 1 else " Due now."
    text = (f":warning: Security duty due: {duty.title} ({duty.item}, {every}). {done}{overdue} "
            f"When it is done: /ops security done {duty.item} --note \"what was done\"")  # fmt: skip
    if report is not None:
        text += f"\nAccess report since {report.since:%Y-%m-%d}: {report.summary()}. `/ops security` shows it."
    return text


def done_text(duty: SecurityDuty, row: dict[str, Any]) -> str:
    """What a reminder's message becomes once the duty is recorded as done."""
    note = f": {row['note']}" if row.get("note") else ""
    return (f":white_check_mark: Security duty done: {duty.title} ({duty.item}) by {row.get('last_done_by')} on "
            f"{_day(row.get('last_done_at'))}{note}")  # fmt: skip


class Upkeep(Scheduler):
    """Maintenance tasks inside windows, and security duty reminders; one per bot process."""

    def __init__(self, engine: Engine, *, alert: Alert | None = None, poster: Poster | None = None,
                 remind_every: float = REMIND_EVERY, **options: Any) -> None:  # fmt: skip
        tasks = list(engine.config.maintenance.tasks) if engine.config.maintenance else []
        super().__init__(engine, tasks, alert=alert, **options)
        self.poster = poster
        self.remind_every = remind_every

    def words_for(self, claim: Claim) -> list[str]:
        """``maintenance <env> <task>``."""
        return ["maintenance", claim.environment, claim.task]

    async def claim_due(self) -> list[Claim]:
        """Claim every task that is due while a window of its environment is open."""
        if not self._started:
            await self.start()
        now = self.clock()
        at = datetime.fromtimestamp(now, UTC)
        claims = []
        for key in dict.fromkeys(schedule_key(t) for t in self.schedules):
            env = key.split(":")[1]
            state = window_state(self.engine.config, env, at)
            if state.bound and not state.open:
                continue
            claim = await self.state.claim(key, now, new_request_id())
            if claim is not None:
                claims.append(claim)
        return claims

    async def _alert(self, claim: Claim, words: list[str], reply: Reply, severity: str) -> str | None:
        """Every run is reported: in the channel of its severity, ``ok`` in ``info``."""
        channel = severity if severity in ("warning", "critical") else "info"
        if self.alert is None:
            return channel
        headline = f"{ICON.get(severity, '')} Maintenance `{' '.join(words)}`: {severity.upper()}"
        if reply.error:
            headline += f": {reply.error}"
        try:
            await self.alert(channel, headline, reply)
        except Exception:
            log.exception("[%s] could not post the report of %s", claim.request_id, " ".join(words))
        return channel

    async def tick_once(self) -> int:
        """Run what is due, then remind the duties that are due; how many task runs started."""
        started = await super().tick_once()
        if self.accepting():
            await self.remind()
        return started

    async def remind(self) -> int:
        """Post or edit the reminder of every duty that is due (at most once per ``remind_every``); how many."""
        if self.poster is None:
            return 0
        duties = [d for d in self.engine.config.security_maintenance if d.every is not None]
        book = self.engine.duties
        now, sent = self.clock(), 0
        rows = await book.rows((d.item for d in duties), now)
        for duty in duties:
            row = rows[duty.item]
            due = due_at(duty, row, now)
            assert due is not None
            if due > now:
                if row.get("message_ts") and await book.take_message(duty.item, row["message_ts"]):
                    await self.poster.edit_notice(row["channel"], row["message_ts"], done_text(duty, row))
                continue
            if row.get("reminded_at") is not None and now - row["reminded_at"] < self.remind_every:
                continue  # reminded lately (checked again, under the write lock, by the claim)
            claimed = await book.claim_reminder(duty.item, due, now, self.remind_every)
            if claimed is None:
                continue
            report = None
            if duty.item == ACCESS_REVIEW:
                last = claimed.get("last_done_at")
                since = datetime.fromtimestamp(last if last is not None else now - (duty.every or 0), UTC)
                report = await book.access_report(since, datetime.fromtimestamp(now, UTC))
            text = reminder_text(duty, claimed, due, now, report)
            try:
                await self._send(duty, claimed, text, due, now)
                sent += 1
            except Exception:
                log.exception("could not remind the security duty %s", duty.item)
        return sent

    async def _send(self, duty: SecurityDuty, row: dict[str, Any], text: str, due: float, now: float) -> None:
        assert self.poster is not None
        if row.get("channel") and row.get("message_ts"):
            if await self.poster.edit_notice(row["channel"], row["message_ts"], text):
                late = int((now - due) // 86400)
                await self.poster.post_notice("warning", f"Still due: {duty.title} ({duty.item}), overdue by "
                                              f"{late} day{'s' if late != 1 else ''}.", row["message_ts"])  # fmt: skip
                return
        posted = await self.poster.post_notice("warning", text)
        if posted is not None:
            await self.engine.duties.set_message(duty.item, *posted)
