"""The incidents' rows: reads, compare-and-set writes, holds and storms, for ``bot.core.incidents``.

Every write happens inside one ``BEGIN IMMEDIATE`` transaction (``_tx``) and is a compare-and-set on the
row's version (``_save``), as approvals are.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from adapters.errors import UserError
from bot.config import OpsConfig
from bot.core.db import Database, Db, immediate
from bot.core.incident import (
    OPEN_STATES,
    SILENCED,
    STORM_AT,
    STORM_SECONDS,
    TASK_HELD_SOURCES,
    Hold,
    Incident,
    level_name,
    task_hold,
)
from bot.core.maintenance_runs import running

T = TypeVar("T")


def rows_of(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[Incident]:
    """The incidents a query selects (``SELECT * FROM incidents ...``)."""
    cur = conn.execute(sql, tuple(params))
    names = [d[0] for d in cur.description]
    return [Incident.from_row(dict(zip(names, r, strict=True))) for r in cur.fetchall()]


class IncidentStore:
    """Reads and writes of ``incidents``, ``silences`` and ``storms``."""

    def __init__(self, db: Database, config: OpsConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.config = config
        #: the time of transitions people ask for (``ack``, ``silence``); tests and the benchmark simulate it
        self.clock = clock

    # ---------------------------------------------------------------- plumbing

    async def _tx(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def go(db: Db) -> T:
            with immediate(db.conn) as conn:
                return fn(conn)

        return await self.db.call(go)

    @staticmethod
    def _save(conn: sqlite3.Connection, inc: Incident) -> None:
        if not inc.dirty:
            return
        cols = sorted(inc.dirty)
        sets = ", ".join(f"{c} = ?" for c in cols)
        changed = conn.execute(
            f"UPDATE incidents SET {sets}, version = version + 1 WHERE id = ? AND version = ?",  # noqa: S608
            (*(getattr(inc, c) for c in cols), inc.id, inc.version),
        ).rowcount
        if changed != 1:  # cannot happen inside BEGIN IMMEDIATE, but never write blind
            raise UserError(f"alert {inc.id} changed meanwhile; try again")
        inc.version += 1
        inc.dirty.clear()

    @staticmethod
    def _insert(conn: sqlite3.Connection, inc: Incident) -> None:
        row = inc.row()
        conn.execute(f"INSERT INTO incidents ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})",  # noqa: S608
                     tuple(row.values()))  # fmt: skip
        inc.dirty.clear()

    def _hold(self, conn: sqlite3.Connection, env: str, source: str, what: str, now: float) -> Hold | None:
        """What holds the alerts of ``what`` now: a silence of it, or a running maintenance task touching it."""
        row = conn.execute(
            "SELECT id, until, reason, created_by FROM silences WHERE environment = ? AND what = ? AND until > ? "
            "ORDER BY until DESC LIMIT 1", (env, what, now),
        ).fetchone()  # fmt: skip
        if row is not None:
            reason = f"silenced by {row[3]}" + (f": {row[2]}" if row[2] else "")
            return Hold(until=row[1], reason=reason, silence_id=row[0])
        if source not in TASK_HELD_SOURCES:
            return None
        return task_hold(running(conn, env), source, what, now)

    def _storm(
        self, conn: sqlite3.Connection, env: str, channel: str | None, now: float
    ) -> tuple[str, str, bool] | None:
        if channel is None:
            return None
        recent = conn.execute(
            "SELECT COUNT(*) FROM incidents WHERE environment = ? AND failing_since >= ? AND state != ?",
            (env, now - STORM_SECONDS, SILENCED),
        ).fetchone()[0]
        if recent < STORM_AT:
            return None
        row = conn.execute("SELECT id, channel FROM storms WHERE environment = ? AND last_join >= ? "
                           "ORDER BY opened_at DESC LIMIT 1", (env, now - STORM_SECONDS)).fetchone()  # fmt: skip
        if row is not None:
            conn.execute("UPDATE storms SET last_join = ?, version = version + 1 WHERE id = ?", (now, row[0]))
            return str(row[0]), str(row[1]), False
        storm_id = secrets.token_hex(4)
        conn.execute("INSERT INTO storms (id, environment, channel, opened_at, last_join) VALUES (?, ?, ?, ?, ?)",
                     (storm_id, env, channel, now, now))  # fmt: skip
        return storm_id, channel, True

    def _one(self, conn: sqlite3.Connection, alert_id: str) -> Incident:
        rows = rows_of(conn, "SELECT * FROM incidents WHERE id = ?", (alert_id,))
        if not rows:
            raise UserError(f"no alert {alert_id!r}: `alerts` lists the open ones")
        return rows[0]

    # ---------------------------------------------------------------- reads and delivery results

    async def get(self, alert_id: str) -> Incident:
        """One incident (``UserError`` when unknown)."""
        return await self._tx(lambda conn: self._one(conn, alert_id))

    async def env_of(self, alert_id: str) -> str | None:
        """The environment of an incident (None: no such incident)."""

        def go(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT environment FROM incidents WHERE id = ?", (alert_id,)).fetchone()
            return None if row is None else str(row[0])

        return await self._tx(go)

    async def open(self, env: str | None = None) -> list[Incident]:
        """Open incidents (firing, acknowledged, silenced), newest first."""
        where = "state IN (?, ?, ?)" + (" AND environment = ?" if env else "")
        params = (*OPEN_STATES, *((env,) if env else ()))
        return await self._tx(lambda c: rows_of(c, f"SELECT * FROM incidents WHERE {where} ORDER BY opened_at DESC",  # noqa: S608
                                               params))  # fmt: skip

    async def all(self) -> list[Incident]:
        """Every incident, oldest first (tests, the benchmark)."""
        return await self._tx(lambda c: rows_of(c, "SELECT * FROM incidents ORDER BY opened_at", ()))

    async def silences(self, env: str | None, now: float | None = None) -> list[dict[str, Any]]:
        """Silences still running, soonest to end first."""
        now = self.clock() if now is None else now

        def go(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            sql = "SELECT id, environment, what, created_at, until, reason, created_by FROM silences WHERE until > ?"
            params: tuple[Any, ...] = (now,)
            if env:
                sql, params = sql + " AND environment = ?", (now, env)
            cur = conn.execute(sql + " ORDER BY until", params)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

        return await self._tx(go)

    async def set_message(self, alert_id: str | None, storm_id: str | None, channel: str, ts: str) -> None:
        """Remember the Slack message of an incident (or a storm) once it is posted."""

        def go(conn: sqlite3.Connection) -> None:
            if storm_id:
                conn.execute("UPDATE storms SET message_ts = ?, channel = ? WHERE id = ?", (ts, channel, storm_id))
            elif alert_id:
                conn.execute("UPDATE incidents SET message_ts = ?, channel = ?, version = version + 1 WHERE id = ?",
                             (ts, channel, alert_id))  # fmt: skip

        await self._tx(go)

    def level_name(self, inc: Incident) -> str | None:
        """The incident's escalation level (``L2``)."""
        return level_name(self.config, inc.level)


def tell_channel(conn: sqlite3.Connection, storm_id: str) -> str:
    """The channel of a storm's summary message."""
    row = conn.execute("SELECT channel FROM storms WHERE id = ?", (storm_id,)).fetchone()
    return str(row[0]) if row else ""
