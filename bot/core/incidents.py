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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from adapters.errors import UserError
from bot.core.incident import (
    ACKNOWLEDGED,
    EDIT_EVERY,
    FIRING,
    FLAP_WINDOW,
    RESOLVED,
    SILENCED,
    Incident,
    Observation,
    fingerprint,
    iso,
    repeat_after,
    route_of,
)  # fmt: skip
from bot.core.incident_store import IncidentStore, rows_of, tell_channel
from bot.core.tell import Tell

T = TypeVar("T")
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True)
class Change:
    """One transition, for the audit log: the incident after it and what happened."""

    incident: Incident
    event: str
    detail: str = ""


class Incidents(IncidentStore):
    """The transitions of incidents and silences, for one config."""

    # ---------------------------------------------------------------- what the checks saw

    async def observe(self, env: str, scope: Sequence[str], seen: Sequence[Observation], now: float) -> list[Change]:
        """Apply one run's observations of ``env``; open incidents of ``scope``'s sources not seen are resolved
        (those of other sources only by an observation of their own)."""

        def go(conn: sqlite3.Connection) -> list[Change]:
            tell = Tell(conn, self.config, now)
            marks = ",".join("?" for _ in scope) or "''"
            # and the incidents of what was seen outside the scope (a task reports on itself only)
            alone = sorted({fingerprint(env, o.source, o.what) for o in seen if o.source not in scope})
            fps = ",".join("?" for _ in alone) or "''"
            open_rows = rows_of(conn, f"SELECT * FROM incidents WHERE environment = ? AND state != ? "  # noqa: S608
                                    f"AND (source IN ({marks}) OR fingerprint IN ({fps}))",
                                (env, RESOLVED, *scope, *alone))  # fmt: skip
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
                last = rows_of(conn, "SELECT * FROM incidents WHERE fingerprint = ? AND state = ? AND resolved_at >= ? "
                                   "ORDER BY resolved_at DESC LIMIT 1", (fp, RESOLVED, now - FLAP_WINDOW))  # fmt: skip
                changes.append(self._reopen(conn, tell, last[0], obs) if last else self._open(conn, tell, env, obs))
            for inc in by_fp.values():
                changes.append(self._resolve(conn, tell, inc, "no longer checked"))
            return changes

        return await self._tx(go)

    def _open(self, conn: sqlite3.Connection, tell: Tell, env: str, obs: Observation) -> Change:
        now = tell.now
        hold = self._hold(conn, env, obs.source, obs.what, now)
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
        if inc.paged and inc.flaps == 0:  # a flapping one is resolved in PagerDuty once it stays resolved
            tell.page(inc, "resolve")
        self._save(conn, inc)
        return Change(inc, "resolved", f"{why} after {round(now - inc.failing_since)} s")

    def _reopen(self, conn: sqlite3.Connection, tell: Tell, inc: Incident, obs: Observation) -> Change:
        now = tell.now
        hold = self._hold(conn, inc.environment, inc.source, inc.what, now)
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
                if state == FIRING and route_of(self.config, inc.severity).pagerduty and not inc.paged:
                    tell.page(inc, "trigger")
                if state == FIRING:
                    inc.set(escalated_at=now)
        self._save(conn, inc)
        return Change(inc, "reopened", f"failing again ({inc.flaps} flaps)")

    # ---------------------------------------------------------------- what people do

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
            held = rows_of(conn, "SELECT * FROM incidents WHERE environment = ? AND what = ? AND state IN (?, ?, ?)",
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
            for inc in rows_of(conn, "SELECT * FROM incidents WHERE state = ? AND held_until <= ?", (SILENCED, now)):
                hold = self._hold(conn, inc.environment, inc.source, inc.what, now)
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
            for inc in rows_of(conn, "SELECT * FROM incidents WHERE state = ? AND paged = 1 AND resolved_at <= ?",
                               (RESOLVED, now - FLAP_WINDOW)):  # fmt: skip
                tell.page(inc, "resolve")  # a flapping incident that stayed resolved
                self._save(conn, inc)
            return out

        return await self._tx(go)

    def _escalate(self, conn: sqlite3.Connection, tell: Tell, now: float) -> list[Change]:
        path = self.config.escalation
        out: list[Change] = []
        if not path:
            return out
        for inc in rows_of(conn, "SELECT * FROM incidents WHERE state = ? AND level < ?", (FIRING, len(path))):
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


