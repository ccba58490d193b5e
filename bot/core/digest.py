"""The email digest of ``alerting.info`` (guide 6.3, "Info -> Email, next business day").

At ``digest_at`` on Monday to Friday, in ``alerting.timezone``, one email lists the info-severity
incidents open now and those resolved since the last digest (a Monday digest covers the weekend); warning
and critical ones are not in it (``bot.render.alerts.digest_email``). Taking the digest is a compare-and-set
of ``alert_meta['digest:last']`` written with its outbox row in one transaction: of several bot
processes, one sends it, once per day; a bot that was down at ``digest_at`` sends it when it is back.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime

from bot.config import OpsConfig
from bot.config.guide import clock_minutes
from bot.config.windows import timezone_of
from bot.core import outbox
from bot.core.db import Database, Db, immediate

KEY = "digest:last"
#: the first digest looks back this far
FIRST_LOOKBACK = 86400.0


def digest_route(config: OpsConfig) -> str | None:
    """``alerting.info.digest_at`` when info goes to email, else None."""
    alerting = config.alerting
    route = alerting.info if alerting is not None else None
    if alerting is None or route is None or "email" not in route.to or alerting.email is None:
        return None
    return route.digest_at or "09:00"


def due_date(config: OpsConfig, now: float, last: str | None) -> str | None:
    """Today's local date (``2026-05-04``) when a digest is due at ``now``, else None."""
    at = digest_route(config)
    if at is None:
        return None
    local = datetime.fromtimestamp(now, UTC).astimezone(timezone_of(config))
    if local.weekday() >= 5 or local.hour * 60 + local.minute < clock_minutes(at):
        return None
    today = local.date().isoformat()
    return today if last is None or json.loads(last)["date"] < today else None


class Digests:
    """Takes the digest when it is due (one process, once a day)."""

    def __init__(self, db: Database, config: OpsConfig) -> None:
        self.db = db
        self.config = config

    async def take(self, now: float) -> str | None:
        """Write the digest's email to the outbox when due; the date taken, or None."""
        if digest_route(self.config) is None:
            return None

        def go(db: Db) -> str | None:
            with immediate(db.conn) as conn:
                return self._take(conn, now)

        return await self.db.call(go)

    def _take(self, conn: sqlite3.Connection, now: float) -> str | None:
        row = conn.execute("SELECT value FROM alert_meta WHERE key = ?", (KEY,)).fetchone()
        last = row[0] if row else None
        date = due_date(self.config, now, last)
        if date is None:
            return None
        since = json.loads(last)["until"] if last else now - FIRST_LOOKBACK
        conn.execute("INSERT INTO alert_meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = ?",
                     (KEY, json.dumps({"date": date, "until": now}), json.dumps({"date": date, "until": now})))
        outbox.add(conn, grp="email:digest", notifier="email", op="digest", now=now, dedupe=f"digest:{date}",
                   payload={"date": date, "since": since, "until": now})  # fmt: skip
        return date
