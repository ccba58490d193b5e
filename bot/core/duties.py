"""The ``security_duties`` table: the 7.4 duties, when each was last done and by whom, and its reminder.

One row per ``security_maintenance`` item, made the first time opsbot sees it (``first_seen``: an item
never recorded as done is due from then). ``done`` records who and when (the audit log keeps every
one); a reminder is claimed with a compare-and-set (of several bot processes exactly one posts it, at
most once per ``interval``), and the message it posted is kept so that the next reminder edits it, and
once the duty is done, the scheduler edits it to say so (``take_message``). A
deploy gate's last result is kept too. ``access_report`` reads the audit log for a period.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.core.db import Database, Db, immediate

if TYPE_CHECKING:
    from commands.security_report import AccessReport

#: identities that are not people: left out of the report's new actors
SYSTEM_ACTORS = ("opsbot", "scheduler")
# the access report's queries: fixed texts, the period (and the system actors) bound as parameters
_ACTIVITY = (
    "SELECT actor, CASE WHEN instr(command, ' ') > 0 THEN substr(command, 1, instr(command, ' ') - 1)"
    " ELSE command END AS what, count(*) FROM audit WHERE ts >= ? AND ts < ? AND event = 'requested'"
    " GROUP BY actor, what ORDER BY actor, what"
)
_REFUSED = (
    "SELECT ts, actor, command, outcome, environment FROM audit WHERE ts >= ? AND ts < ? AND event = 'refused'"
    " ORDER BY id DESC LIMIT 20"
)
_BREAK_GLASS = (
    "SELECT ts, actor, command, outcome, environment FROM audit WHERE ts >= ? AND ts < ? AND event = 'break-glass'"
    " ORDER BY id DESC LIMIT 50"
)
_DECISIONS = (
    "SELECT ts, actor, command, outcome, environment FROM audit WHERE ts >= ? AND ts < ?"
    " AND event IN ('approved', 'denied') ORDER BY id DESC LIMIT 50"
)
_COUNT = "SELECT count(*) FROM audit WHERE ts >= ? AND ts < ?"
_COUNT_REFUSED = "SELECT count(*) FROM audit WHERE ts >= ? AND ts < ? AND event = 'refused'"
_NEW_ACTORS = (
    "SELECT actor FROM audit WHERE actor NOT IN (?, ?) GROUP BY actor HAVING min(ts) >= ? AND min(ts) < ?"
    " ORDER BY min(ts)"
)

class Duties:
    """Reads and compare-and-set writes of ``security_duties``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def rows(self, items: Iterable[str], now: float | None = None) -> dict[str, dict[str, Any]]:
        """The row of each item (made at ``now``, default the current time, for an item not seen before)."""
        wanted, now = list(items), time.time() if now is None else now

        marks = ", ".join("?" for _ in wanted)
        select = f"SELECT * FROM security_duties WHERE item IN ({marks})"  # noqa: S608 - placeholders only

        def go(db: Db) -> dict[str, dict[str, Any]]:
            found = {r["item"]: dict(r) for r in db.query(select, wanted)}
            if len(found) < len(set(wanted)):  # a write only the first time an item is seen
                with immediate(db.conn) as conn:
                    for item in wanted:
                        conn.execute("INSERT OR IGNORE INTO security_duties (item, first_seen) VALUES (?, ?)",
                                     (item, now))  # fmt: skip
                found = {r["item"]: dict(r) for r in db.query(select, wanted)}
            return found

        return await self.db.call(go) if wanted else {}

    async def done(self, item: str, actor: str, note: str | None, at: float) -> dict[str, Any]:
        """Record ``item`` as done by ``actor`` at ``at``; returns the row as it was before (its reminder)."""
        await self.rows([item])

        def go(db: Db) -> dict[str, Any]:
            with immediate(db.conn) as conn:
                before = dict(next(db.query("SELECT * FROM security_duties WHERE item = ?", [item])))
                conn.execute(
                    "UPDATE security_duties SET last_done_at = ?, last_done_by = ?, note = ?, reminded_at = NULL,"
                    " version = version + 1 WHERE item = ?",
                    (at, actor, note, item),
                )
            return before

        return await self.db.call(go)

    async def claim_reminder(self, item: str, due_at: float, now: float, interval: float) -> dict[str, Any] | None:
        """Take the reminder of ``item`` if it is due and none went out in the last ``interval`` seconds.

        Returns the row as it was (with the message of the last reminder, to edit), or None when it is
        not this process's to send.
        """

        def go(db: Db) -> dict[str, Any] | None:
            with immediate(db.conn) as conn:
                row = next(db.query("SELECT * FROM security_duties WHERE item = ?", [item]), None)
                if row is None or due_at > now:
                    return None
                if row["reminded_at"] is not None and now - row["reminded_at"] < interval:
                    return None
                changed = conn.execute(
                    "UPDATE security_duties SET reminded_at = ?, version = version + 1 WHERE item = ? AND version = ?",
                    (now, item, row["version"]),
                ).rowcount
                return dict(row) if changed == 1 else None

        return await self.db.call(go)

    async def set_message(self, item: str, channel: str, ts: str) -> None:
        """Keep the reminder's message, so that the next reminder (and ``done``) edits it."""
        await self.db.call(
            lambda db: db.conn.execute(
                "UPDATE security_duties SET channel = ?, message_ts = ? WHERE item = ?", (channel, ts, item)
            )
        )

    async def take_message(self, item: str, ts: str) -> bool:
        """Forget the reminder message ``ts`` of ``item`` (it is edited to "done"); False if another process did."""

        def go(db: Db) -> bool:
            with immediate(db.conn) as conn:
                changed = conn.execute(
                    "UPDATE security_duties SET channel = NULL, message_ts = NULL, version = version + 1"
                    " WHERE item = ? AND message_ts = ?",
                    (item, ts),
                ).rowcount
            return bool(changed == 1)

        return await self.db.call(go)

    async def record_gate(self, item: str, outcome: str, image: str, at: float) -> None:
        """Keep the last result of a deploy gate (``passed``, ``refused: ...``) and the image it ran on."""
        await self.rows([item])
        await self.db.call(
            lambda db: db.conn.execute(
                "UPDATE security_duties SET gate_at = ?, gate_outcome = ?, gate_image = ? WHERE item = ?",
                (at, outcome[:300], image, item),
            )
        )

    async def access_report(self, since: datetime, until: datetime) -> AccessReport:
        """What the audit log says about access from ``since`` to ``until`` (guide 7.4, access review).

        The audit log writes times to the millisecond, so a period's bounds are rounded up to the
        next millisecond: an entry written in the same millisecond as the report, just before it, is
        in the period, and periods that meet (one review's ``until``, the next one's ``since``) share
        no entry and miss none.
        """
        start, end = _iso(since), _iso(until)

        def go(db: Db) -> dict[str, Any]:
            period = [start, end]
            return {
                "activity": db.execute(_ACTIVITY, period).fetchall(),
                "refused": db.execute(_REFUSED, period).fetchall(),
                "refusals": db.execute(_COUNT_REFUSED, period).fetchone()[0],
                "break_glass": db.execute(_BREAK_GLASS, period).fetchall(),
                "approvals": db.execute(_DECISIONS, period).fetchall(),
                "new_actors": [r[0] for r in db.execute(_NEW_ACTORS, [*SYSTEM_ACTORS, *period]).fetchall()],
                "entries": db.execute(_COUNT, period).fetchone()[0],
            }

        from commands.security_report import report_from  # the report's models: only when one is made

        return report_from(since, until, await self.db.call(go))


def _iso(moment: datetime) -> str:
    """A period's bound as the audit log writes times (``2026-12-03T09:50:48.124Z``), rounded up to the
    millisecond: every entry written up to ``moment`` (in its millisecond, truncated) is before it."""
    moment = moment.astimezone(UTC)  # first: arithmetic on a local time in a repeated hour would lose the fold
    if rest := moment.microsecond % 1000:
        moment += timedelta(microseconds=1000 - rest)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
