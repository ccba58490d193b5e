"""The ``schedule_state`` table: when each schedule is due, who runs it now, how its last run went.

A due run is claimed with a compare-and-set inside one ``BEGIN IMMEDIATE`` transaction, which also
moves ``next_due`` on: of several bot processes on one database file, exactly one gets each run, and a
restarted bot does not run a schedule again before it is due. A claim is a lease, renewed while the
run goes on; a process that died holding one is replaced once the lease has run out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bot.core.db import Database, Db, immediate

#: how long a claim holds without a heartbeat (a crashed runner's claim is taken over after this)
LEASE_SECONDS = 120.0

#: the commands each scheduled task runs (the same words a person types)
#: (``health_check`` runs ``status``: health checks, metrics and containers, each an alert of its own)
TASK_WORDS: dict[str, str] = {"health_check": "status", "verify_backup": "verify-backup", "backup": "backup",
                              "backup_files": "backup"}
#: the options a scheduled task adds after its environment
TASK_FLAGS: dict[str, tuple[str, ...]] = {"backup_files": ("--files",)}


def task_words(task: str, env: str) -> list[str]:
    """The request a scheduled task makes, as a person would type it (``backup prod --files``)."""
    return [TASK_WORDS[task], env, *TASK_FLAGS.get(task, ())]


class Periodic(Protocol):
    """Something run every so often in an environment: a schedule (6.1), a maintenance task (7.3)."""

    @property
    def task(self) -> str:
        """What runs (``health_check``, ``db_maintenance``, ...)."""
        ...

    @property
    def env(self) -> str:
        """The environment it runs in."""
        ...

    @property
    def every(self) -> float:
        """Its period, in seconds."""
        ...


def schedule_key(schedule: Periodic) -> str:
    """The schedule's identity in the table: task, environment and period (``health_check:prod:3600s``)."""
    return f"{schedule.task}:{schedule.env}:{schedule.every:g}s"


def next_due(due: float, every: float, now: float) -> float:
    """The first time after ``now`` on the grid ``due + k * every``; runs missed meanwhile are skipped."""
    if due > now:
        return due
    return due + (math.floor((now - due) / every) + 1) * every


@dataclass(frozen=True)
class Claim:
    """A run of one schedule, claimed by this process; ``previous`` is how the last run went."""

    key: str
    task: str
    environment: str
    every: float
    due: float
    claimed_at: float
    owner: str
    request_id: str
    previous: str | None
    alerted: str | None


class ScheduleState:
    """Reads and compare-and-set writes of ``schedule_state``."""

    def __init__(self, db: Database, owner: str, *, lease: float = LEASE_SECONDS) -> None:
        self.db = db
        self.owner = owner
        self.lease = lease

    async def ensure(self, schedules: Sequence[Periodic], now: float) -> None:
        """Add a row for every schedule not yet known, due at once (a known one keeps its ``next_due``)."""

        def go(db: Db) -> None:
            with immediate(db.conn) as conn:
                for s in schedules:
                    conn.execute(
                        "INSERT OR IGNORE INTO schedule_state (key, task, environment, every, next_due) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (schedule_key(s), s.task, s.env, s.every, now),
                    )

        await self.db.call(go)

    async def claim(self, key: str, now: float, request_id: str) -> Claim | None:
        """Take the run of ``key`` if it is due and nobody holds it; None when it is not ours."""

        def go(db: Db) -> Claim | None:
            with immediate(db.conn) as conn:
                row = conn.execute(
                    "SELECT task, environment, every, next_due, running_by, lease_until, last_severity, alerted, "
                    "version FROM schedule_state WHERE key = ?",
                    (key,),
                ).fetchone()
                if row is None:
                    return None
                task, env, every, due, running_by, lease_until, last, alerted, version = row
                if due > now or (running_by is not None and (lease_until or 0) > now):
                    return None
                changed = conn.execute(
                    "UPDATE schedule_state SET running_by = ?, claimed_at = ?, lease_until = ?, next_due = ?, "
                    "request_id = ?, version = version + 1 WHERE key = ? AND version = ?",
                    (self.owner, now, now + self.lease, next_due(due, every, now), request_id, key, version),
                ).rowcount
                if changed != 1:
                    return None
                return Claim(key=key, task=task, environment=env, every=every, due=due, claimed_at=now,
                             owner=self.owner, request_id=request_id, previous=last, alerted=alerted)  # fmt: skip

        return await self.db.call(go)

    async def heartbeat(self, claim: Claim, now: float) -> None:
        """Renew the lease of a run that goes on."""

        def go(db: Db) -> None:
            db.conn.execute(
                "UPDATE schedule_state SET lease_until = ? WHERE key = ? AND running_by = ? AND request_id = ?",
                (now + self.lease, claim.key, claim.owner, claim.request_id),
            )

        await self.db.call(go)

    async def expire(self, owner_prefix: str) -> int:
        """End now the leases of a process known to be gone (``owner_prefix``: ``host:pid:``); how many."""

        def go(db: Db) -> int:
            return int(db.conn.execute(
                "UPDATE schedule_state SET lease_until = 0 WHERE substr(running_by, 1, ?) = ? AND lease_until > 0",
                (len(owner_prefix), owner_prefix),
            ).rowcount)  # fmt: skip

        return await self.db.call(go)

    async def finish(self, claim: Claim, severity: str | None, alerted: str | None) -> bool:
        """Record the run's outcome and release it; ``severity`` None only releases. False if it was not ours."""

        def go(db: Db) -> bool:
            with immediate(db.conn) as conn:
                params: tuple[Any, ...] = ()
                if severity is None:
                    sql = "running_by = NULL, lease_until = NULL"
                else:
                    sql = "running_by = NULL, lease_until = NULL, last_run = ?, last_severity = ?, alerted = ?"
                    params = (claim.claimed_at, severity, alerted)
                changed = conn.execute(
                    f"UPDATE schedule_state SET {sql}, version = version + 1 "  # noqa: S608 - fixed column lists
                    "WHERE key = ? AND running_by = ? AND request_id = ?",
                    (*params, claim.key, claim.owner, claim.request_id),
                ).rowcount
                return bool(changed == 1)

        return await self.db.call(go)

    async def rows(self) -> list[dict[str, Any]]:
        """Every row, for ``status``-like views and tests."""

        def go(db: Db) -> list[dict[str, Any]]:
            return list(db.query("SELECT * FROM schedule_state ORDER BY key"))

        return await self.db.call(go)
