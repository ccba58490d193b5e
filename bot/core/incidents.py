"""The incidents table: one alert state machine fed by every check, every transition a compare-and-set.

``observe`` takes what one run saw (``Observation`` per check, metric, container...) and, in one
``BEGIN IMMEDIATE`` transaction, opens, updates, reopens (flapping) or resolves incidents and writes what
each change must tell to the outbox (``bot.core.tell``): committed together or not at all. ``ack``,
``silence`` and ``sweep`` (holds that end, escalations that are due) work the same way. Several bot
processes on one database see one state: each transition reads and writes its rows inside the lock.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlite_utils

from adapters.errors import UserError
from bot.config import OpsConfig
from bot.core.db import Database, immediate
from bot.core.incident import (
    ACKNOWLEDGED,
    EDIT_EVERY,
    FIRING,
    FLAP_WINDOW,
    OPEN_STATES,
    RESOLVED,
    SILENCED,
    STORM_AT,
    STORM_SECONDS,
    Hold,
    Incident,
    Observation,
    fingerprint,
    iso,
    level_name,
    repeat_after,
    route_of,
    window_hold,
)  # fmt: skip
from bot.core.tell import Tell

T = TypeVar("T")
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True)
class Change:
    """One transition, for the audit log: the incident after it and what happened."""

    incident: Incident
    event: str
    detail: str = ""


def _rows(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> list[Incident]:
    cur = conn.execute(sql, tuple(params))
    names = [d[0] for d in cur.description]
    return [Incident.from_row(dict(zip(names, r, strict=True))) for r in cur.fetchall()]


class Incidents:
    """Transitions and reads of ``incidents`` and ``silences`` for one config."""

    def __init__(self, db: Database, config: OpsConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.config = config
        #: the time of transitions people ask for (``ack``, ``silence``); tests and the benchmark simulate it
        self.clock = clock

    # ---------------------------------------------------------------- plumbing

    async def _tx(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def go(db: sqlite_utils.Database) -> T:
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

    def _hold(self, conn: sqlite3.Connection, env: str, what: str, now: float) -> Hold | None:
        row = conn.execute(
            "SELECT id, until, reason, created_by FROM silences WHERE environment = ? AND what = ? AND until > ? "
            "ORDER BY until DESC LIMIT 1", (env, what, now),
        ).fetchone()  # fmt: skip
        if row is not None:
            reason = f"silenced by {row[3]}" + (f": {row[2]}" if row[2] else "")
            return Hold(until=row[1], reason=reason, silence_id=row[0])
        return window_hold(self.config, env, now)

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

    # ---------------------------------------------------------------- what the checks saw

    async def observe(self, env: str, scope: Sequence[str], seen: Sequence[Observation], now: float) -> list[Change]:
        """Apply one run's observations of ``env``; open incidents of ``scope``'s sources not seen are resolved."""

        def go(conn: sqlite3.Connection) -> list[Change]:
            tell = Tell(conn, self.config, now)
            marks = ",".join("?" for _ in scope) or "''"
            open_rows = _rows(conn, f"SELECT * FROM incidents WHERE environment = ? AND state != ? "  # noqa: S608
                                    f"AND source IN ({marks})", (env, RESOLVED, *scope))  # fmt: skip
            by_fp = {i.fingerprint: i for i in open_rows}
            changes: list[Change] = []
            for obs in seen:
                fp = fingerprint(env, obs.source, obs.what)
                inc = by_fp.pop(fp, None)
                if obs.severity == "ok":
                    if inc is not None:
                        changes.append(self._resolve(conn, tell, inc, "recovered"))
                    continue
                if inc is not None:
                    changes += self._still(conn, tell, inc, obs)
                    continue
                last = _rows(conn, "SELECT * FROM incidents WHERE fingerprint = ? AND state = ? AND resolved_at >= ? "
                                   "ORDER BY resolved_at DESC LIMIT 1", (fp, RESOLVED, now - FLAP_WINDOW))  # fmt: skip
                changes.append(self._reopen(conn, tell, last[0], obs) if last else self._open(conn, tell, env, obs))
            for inc in by_fp.values():
                changes.append(self._resolve(conn, tell, inc, "no longer checked"))
            return changes

        return await self._tx(go)

    def _open(self, conn: sqlite3.Connection, tell: Tell, env: str, obs: Observation) -> Change:
        now = tell.now
        hold = self._hold(conn, env, obs.what, now)
        inc = Incident(
            id=secrets.token_hex(4), fingerprint=fingerprint(env, obs.source, obs.what), environment=env,
            source=obs.source, what=obs.what, severity=obs.severity, state=SILENCED if hold else FIRING,
            summary=obs.summary[:500], symptoms=obs.symptoms[:200], opened_at=now, failing_since=now, last_seen=now,
        )  # fmt: skip
        if hold is not None:
            inc.set(held_until=hold.until, held_reason=hold.reason, silence_id=hold.silence_id)
        else:
            tell.announce(inc, storm=self._storm(conn, env, route_of(self.config, inc.severity).slack_channel, now))
        self._insert(conn, inc)
        return Change(inc, "opened" if hold is None else "opened-held", hold.reason if hold else obs.summary)

    def _still(self, conn: sqlite3.Connection, tell: Tell, inc: Incident, obs: Observation) -> list[Change]:
        now = tell.now
        out: list[Change] = []
        inc.set(count=inc.count + 1, last_seen=now, summary=obs.summary[:500], symptoms=obs.symptoms[:200])
        told = inc.state in (FIRING, ACKNOWLEDGED)
        if obs.severity != inc.severity:
            before, after = route_of(self.config, inc.severity), route_of(self.config, obs.severity)
            out.append(Change(inc, "severity", f"{inc.severity} -> {obs.severity}"))
            tell.reply(inc, {"kind": "severity", "from": inc.severity, "to": obs.severity})
            inc.set(severity=obs.severity)
            if told:
                if inc.channel is None and inc.storm_id is None and after.slack_channel:
                    tell.post(inc, after.slack_channel)
                else:
                    tell.update(inc)
                    raised = SEVERITY_RANK.get(obs.severity, 0) > SEVERITY_RANK.get(before.severity, 0)
                    if raised and after.slack_channel and after.slack_channel != inc.channel:
                        tell.pointer(inc, after.slack_channel)
                if after.pagerduty and inc.state == FIRING:
                    tell.page(inc, "trigger")
                elif before.pagerduty and not after.pagerduty and inc.paged:
                    tell.page(inc, "resolve")
        elif told and now - (inc.edited_at or 0) >= EDIT_EVERY:
            tell.update(inc)
        if told and now - (inc.repeated_at or inc.failing_since) >= repeat_after(self.config):
            inc.set(repeated_at=now)
            tell.reply(inc, {"kind": "repeat", "since": inc.failing_since, "count": inc.count})
            tell.update(inc)
        self._save(conn, inc)
        return out

    def _resolve(self, conn: sqlite3.Connection, tell: Tell, inc: Incident, why: str) -> Change:
        now = tell.now
        was_told = inc.state in (FIRING, ACKNOWLEDGED) or inc.channel is not None
        inc.set(state=RESOLVED, resolved_at=now)
        if was_told:
            tell.update(inc)
            quiet = inc.flaps > 0 and now - (inc.repeated_at or 0) < repeat_after(self.config)
            if not quiet:
                tell.reply(inc, {"kind": "resolved", "after": now - inc.failing_since, "why": why})
        if inc.paged:
            tell.page(inc, "resolve")
        self._save(conn, inc)
        return Change(inc, "resolved", f"{why} after {round(now - inc.failing_since)} s")

    def _reopen(self, conn: sqlite3.Connection, tell: Tell, inc: Incident, obs: Observation) -> Change:
        now = tell.now
        hold = self._hold(conn, inc.environment, inc.what, now)
        state = SILENCED if hold else (ACKNOWLEDGED if inc.acked_by else FIRING)
        inc.set(state=state, resolved_at=None, flaps=inc.flaps + 1, failing_since=now, last_seen=now,
                count=inc.count + 1, severity=obs.severity, summary=obs.summary[:500], symptoms=obs.symptoms[:200],
                held_until=hold.until if hold else None, held_reason=hold.reason if hold else None,
                silence_id=hold.silence_id if hold else None)  # fmt: skip
        if hold is None:
            if inc.channel is None and inc.storm_id is None:
                tell.announce(inc)
            else:
                tell.update(inc)
                if inc.flaps == 1 or now - (inc.repeated_at or 0) >= repeat_after(self.config):
                    inc.set(repeated_at=now)
                    tell.reply(inc, {"kind": "reopened", "flaps": inc.flaps})
                if state == FIRING and route_of(self.config, inc.severity).pagerduty:
                    tell.page(inc, "trigger")
                if state == FIRING:
                    inc.set(escalated_at=now)
        self._save(conn, inc)
        return Change(inc, "reopened", f"failing again ({inc.flaps} flaps)")

    # ---------------------------------------------------------------- what people do

    def _one(self, conn: sqlite3.Connection, alert_id: str) -> Incident:
        rows = _rows(conn, "SELECT * FROM incidents WHERE id = ?", (alert_id,))
        if not rows:
            raise UserError(f"no alert {alert_id!r}: `alerts` lists the open ones")
        return rows[0]

    async def ack(self, alert_id: str, actor: str, now: float | None = None) -> Incident:
        """firing/silenced -> acknowledged by ``actor``: escalation stops, the page is acknowledged."""
        now = self.clock() if now is None else now

        def go(conn: sqlite3.Connection) -> Incident:
            inc = self._one(conn, alert_id)
            if inc.state == RESOLVED:
                when = iso(inc.resolved_at or 0)
                raise UserError(f"alert {alert_id} is resolved (at {when}): nothing to acknowledge")
            if inc.state == ACKNOWLEDGED:
                when = iso(inc.acked_at or 0)
                raise UserError(f"alert {alert_id} is already acknowledged by {inc.acked_by} at {when}")
            tell = Tell(conn, self.config, now)
            inc.set(state=ACKNOWLEDGED, acked_by=actor, acked_at=now)
            tell.update(inc)
            tell.reply(inc, {"kind": "acked", "by": actor})
            if inc.paged:
                tell.page(inc, "acknowledge")
            self._save(conn, inc)
            return inc

        return await self._tx(go)

    async def silence(self, env: str, what: str, seconds: float, reason: str | None, actor: str,
                      now: float | None = None) -> tuple[dict[str, Any], list[Incident]]:  # fmt: skip
        """Hold ``what``'s alerts in ``env`` for ``seconds``; its open incidents show as silenced."""
        now = self.clock() if now is None else now

        def go(conn: sqlite3.Connection) -> tuple[dict[str, Any], list[Incident]]:
            silence = {"id": secrets.token_hex(4), "environment": env, "what": what, "created_at": now,
                       "until": now + seconds, "reason": reason, "created_by": actor}  # fmt: skip
            conn.execute(f"INSERT INTO silences ({', '.join(silence)}) VALUES ({', '.join('?' for _ in silence)})",  # noqa: S608
                         tuple(silence.values()))  # fmt: skip
            tell = Tell(conn, self.config, now)
            held = _rows(conn, "SELECT * FROM incidents WHERE environment = ? AND what = ? AND state IN (?, ?, ?)",
                         (env, what, FIRING, ACKNOWLEDGED, SILENCED))  # fmt: skip
            why = f"silenced by {actor}" + (f": {reason}" if reason else "")
            for inc in held:
                inc.set(state=SILENCED, held_until=now + seconds, held_reason=why, silence_id=silence["id"])
                tell.update(inc)
                tell.reply(inc, {"kind": "silenced", "by": actor, "until": now + seconds, "reason": reason})
                if inc.paged:
                    tell.page(inc, "acknowledge")
                self._save(conn, inc)
            return silence, held

        return await self._tx(go)

    async def sweep(self, now: float) -> list[Change]:
        """Holds that ended (still failing: told now) and escalations that are due."""

        def go(conn: sqlite3.Connection) -> list[Change]:
            tell = Tell(conn, self.config, now)
            out: list[Change] = []
            for inc in _rows(conn, "SELECT * FROM incidents WHERE state = ? AND held_until <= ?", (SILENCED, now)):
                hold = self._hold(conn, inc.environment, inc.what, now)
                if hold is not None:
                    inc.set(held_until=hold.until, held_reason=hold.reason, silence_id=hold.silence_id)
                else:
                    inc.set(state=ACKNOWLEDGED if inc.acked_by else FIRING, held_until=None, held_reason=None,
                            silence_id=None)  # fmt: skip
                    if inc.storm_id is None and inc.channel is None:
                        tell.announce(inc, storm=self._storm(conn, inc.environment,
                                                             route_of(self.config, inc.severity).slack_channel, now))
                    else:
                        tell.update(inc)
                        tell.reply(inc, {"kind": "unheld", "since": inc.failing_since})
                        if inc.state == FIRING and route_of(self.config, inc.severity).pagerduty:
                            tell.page(inc, "trigger")
                        inc.set(escalated_at=now)
                    out.append(Change(inc, "unheld", "the hold ended; still failing"))
                self._save(conn, inc)
            out += self._escalate(conn, tell, now)
            return out

        return await self._tx(go)

    def _escalate(self, conn: sqlite3.Connection, tell: Tell, now: float) -> list[Change]:
        path = self.config.escalation
        out: list[Change] = []
        if not path:
            return out
        for inc in _rows(conn, "SELECT * FROM incidents WHERE state = ? AND level < ?", (FIRING, len(path))):
            after = route_of(self.config, inc.severity).escalate_after
            if after is None or now - (inc.escalated_at or inc.failing_since) < after:
                continue
            inc.set(level=inc.level + 1, escalated_at=now)
            step = path[inc.level - 1]
            event = {"kind": "escalated", "level": step.level, "contact": step.contact, "when": step.when}
            if inc.storm_id:
                tell.storm_reply(inc.storm_id, tell_channel(conn, inc.storm_id), event,
                                 dedupe=f"storm:{inc.storm_id}:level:{inc.level}")  # fmt: skip
            else:
                tell.reply(inc, event)
                tell.update(inc)
            self._save(conn, inc)
            out.append(Change(inc, "escalated", f"not acknowledged: {step.level} {step.contact}"))
        return out

    # ---------------------------------------------------------------- reads and delivery results

    async def get(self, alert_id: str) -> Incident:
        """One incident (``UserError`` when unknown)."""
        return await self._tx(lambda conn: self._one(conn, alert_id))

    async def open(self, env: str | None = None) -> list[Incident]:
        """Open incidents (firing, acknowledged, silenced), newest first."""
        where = "state IN (?, ?, ?)" + (" AND environment = ?" if env else "")
        params = (*OPEN_STATES, *((env,) if env else ()))
        return await self._tx(lambda c: _rows(c, f"SELECT * FROM incidents WHERE {where} ORDER BY opened_at DESC",  # noqa: S608
                                               params))  # fmt: skip

    async def all(self) -> list[Incident]:
        """Every incident, oldest first (tests, the benchmark)."""
        return await self._tx(lambda c: _rows(c, "SELECT * FROM incidents ORDER BY opened_at", ()))

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
