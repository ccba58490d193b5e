"""The outbox: every notification of an alert, written in the transaction that changed the alert's state.

A notification is a row (``pending``) written by ``add`` inside the caller's ``BEGIN IMMEDIATE``
transaction, so a state change and what it must tell are committed together or not at all. A worker
(``bot.doors.alerts``) claims due rows (a compare-and-set lease: of several bot processes on one
database, one holds each row), delivers them and marks them ``sent``; a failure puts the row back with
a backoff (or the receiver's Retry-After), never dropping it. Rows of one group (one incident's Slack
message, one incident's pages) are delivered strictly in order: a row waits until the ones before it in
its group are sent (a diagnosis also waits for its incident's message). An ``update`` (an edit rendered
from the incident as it stands when delivered) that has a later ``update`` of its group waiting is
skipped, since the later one shows the same and more.

A row remembers whether an attempt of it may have reached the receiver unheard (``maybe_sent``: it was
claimed, so it may have been sent; the attempt ended in a timeout, a lost connection, a 5xx or an
unexpected error; or its worker died holding it): the next attempt of such a Slack post looks for it in
Slack first (``bot.doors.alerts``), so that a post that landed is not posted twice.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from dataclasses import dataclass
from typing import Any

from bot.core.db import Database, Db, immediate

PENDING, SENDING, SENT, SKIPPED = "pending", "sending", "sent", "skipped"
#: how long a claim holds; a worker that died holding one is replaced after this
LEASE_SECONDS = 60.0
#: the longest wait between two attempts of one row (permanent-looking failures wait longer)
MAX_BACKOFF = 300.0
MAX_BACKOFF_PERMANENT = 3600.0
#: sent rows are kept this long (for tests, the benchmark and a look back), then pruned
KEEP_SENT = 7 * 86400.0


@dataclass
class Delivery:
    """One claimed row of the outbox."""

    id: int
    delivery_id: str
    grp: str
    notifier: str
    op: str
    incident: str | None
    payload: dict[str, Any]
    attempts: int
    created_at: float
    owner: str
    #: an earlier attempt may have reached the receiver without its answer being heard
    maybe_sent: bool = False

    @classmethod
    def from_row(cls, row: sqlite3.Row | dict[str, Any], owner: str) -> Delivery:
        """From a database row."""
        r = dict(row)
        return cls(id=r["id"], delivery_id=r["delivery_id"], grp=r["grp"], notifier=r["notifier"], op=r["op"],
                   incident=r["incident"], payload=json.loads(r["payload"]), attempts=r["attempts"],
                   created_at=r["created_at"], owner=owner,
                   maybe_sent=bool(r.get("maybe_sent")) or r["state"] == SENDING)  # fmt: skip


def add(conn: sqlite3.Connection, *, grp: str, notifier: str, op: str, payload: dict[str, Any], now: float,
        incident: str | None = None, dedupe: str | None = None, delay: float = 0.0) -> bool:  # fmt: skip
    """Write one notification inside the caller's transaction; False when ``dedupe`` is already there."""
    cur = conn.execute(
        "INSERT OR IGNORE INTO outbox (delivery_id, dedupe, grp, notifier, op, incident, payload, state, created_at, "
        "next_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (secrets.token_hex(8), dedupe, grp, notifier, op, incident, json.dumps(payload, sort_keys=True), PENDING,
         now, now + delay),
    )  # fmt: skip
    return bool(cur.rowcount == 1)


def backoff(attempts: int, *, permanent: bool = False) -> float:
    """Seconds to wait before attempt ``attempts + 1``: 1, 2, 4, ... up to the cap."""
    cap = MAX_BACKOFF_PERMANENT if permanent else MAX_BACKOFF
    return float(min(cap, 2 ** max(0, attempts - 1)))


class Outbox:
    """Claims, outcomes and reads of the ``outbox`` table."""

    def __init__(self, db: Database, owner: str, *, lease: float = LEASE_SECONDS) -> None:
        self.db = db
        self.owner = owner
        self.lease = lease

    async def claim(self, now: float, *, limit: int = 20, paused: tuple[str, ...] = ()) -> list[Delivery]:
        """Take up to ``limit`` due rows, each the first unsent of its group; skip superseded edits."""

        def go(db: Db) -> list[Delivery]:
            with immediate(db.conn) as conn:
                # an edit with a later edit of its group waiting shows nothing the later one will not
                conn.execute(
                    "UPDATE outbox SET state = ?, sent_at = ? WHERE op = 'update' AND state = 'pending' AND EXISTS "
                    "(SELECT 1 FROM outbox l WHERE l.grp = outbox.grp AND l.id > outbox.id AND l.op = 'update' "
                    "AND l.state = 'pending')", (SKIPPED, now),
                )  # fmt: skip
                conn.row_factory = sqlite3.Row
                marks = ", ".join("?" for _ in paused)
                try:
                    rows = conn.execute(
                        "SELECT o.* FROM outbox o WHERE o.state IN ('pending', 'sending') AND o.next_at <= ? "  # noqa: S608
                        f"AND o.notifier NOT IN ({marks}) AND (o.state = 'pending' OR o.lease_until < ?) "
                        "AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.id < o.id "
                        "AND p.state IN ('pending', 'sending') "
                        "AND (p.grp = o.grp OR (o.op = 'diagnose' AND p.grp = 'slack:' || o.incident))) "
                        "ORDER BY o.id LIMIT ?",
                        (now, *paused, now, limit * 4 + 50),
                    ).fetchall()
                finally:
                    conn.row_factory = None
                out: list[Delivery] = []
                for row in rows:
                    changed = conn.execute(
                        "UPDATE outbox SET state = ?, owner = ?, lease_until = ?, attempts = attempts + 1, "
                        "maybe_sent = 1 WHERE id = ? AND state = ? AND attempts = ?",
                        (SENDING, self.owner, now + self.lease, row["id"], row["state"], row["attempts"]),
                    ).rowcount
                    if changed == 1:
                        delivery = Delivery.from_row(row, self.owner)
                        delivery.attempts += 1
                        out.append(delivery)
                    if len(out) >= limit:
                        break
                return out

        return await self.db.call(go)

    async def sent(self, d: Delivery, now: float, result: dict[str, Any] | None = None) -> bool:
        """Mark ``d`` delivered (only by its owner); False if it was not ours any more."""

        def go(db: Db) -> bool:
            return bool(db.conn.execute(
                "UPDATE outbox SET state = ?, sent_at = ?, result = ?, lease_until = NULL WHERE id = ? AND owner = ? "
                "AND state = ?", (SENT, now, json.dumps(result or {}), d.id, d.owner, SENDING),
            ).rowcount == 1)  # fmt: skip

        return await self.db.call(go)

    async def retry(self, d: Delivery, now: float, error: str, *, after: float, maybe_sent: bool = True) -> None:
        """Put ``d`` back, due again in ``after`` seconds, with the error of this attempt.

        ``maybe_sent``: this attempt may have reached the receiver (False only when it surely did not: it
        was not sent, or the receiver refused it); an earlier attempt that may have stays remembered.
        """

        def go(db: Db) -> None:
            db.conn.execute(
                "UPDATE outbox SET state = ?, next_at = ?, last_error = ?, owner = NULL, lease_until = NULL, "
                "maybe_sent = ? WHERE id = ? AND owner = ? AND state = ?",
                (PENDING, now + after, error[:500], int(d.maybe_sent or maybe_sent), d.id, d.owner, SENDING),
            )

        await self.db.call(go)

    async def expire(self, owner_prefix: str) -> int:
        """End now the leases of a process known to be gone (``owner_prefix``: ``host:pid:``): what it was
        sending is due again at once (as when its lease runs out); how many."""

        def go(db: Db) -> int:
            return int(db.conn.execute(
                "UPDATE outbox SET lease_until = 0 WHERE state = ? AND substr(owner, 1, ?) = ?",
                (SENDING, len(owner_prefix), owner_prefix),
            ).rowcount)  # fmt: skip

        return await self.db.call(go)

    async def renew(self, d: Delivery, now: float) -> None:
        """Extend the lease of a delivery that is still going on."""

        def go(db: Db) -> None:
            db.conn.execute("UPDATE outbox SET lease_until = ? WHERE id = ? AND owner = ?",
                            (now + self.lease, d.id, d.owner))  # fmt: skip

        await self.db.call(go)

    async def next_due(self) -> float | None:
        """When the earliest waiting row is due (None when nothing waits)."""

        def go(db: Db) -> float | None:
            row = db.conn.execute("SELECT MIN(next_at) FROM outbox WHERE state IN ('pending', 'sending')").fetchone()
            return float(row[0]) if row and row[0] is not None else None

        return await self.db.call(go)

    async def rows(self, *, state: str | None = None) -> list[dict[str, Any]]:
        """Every row (with its payload decoded), oldest first: for tests, the benchmark and a look back."""

        def go(db: Db) -> list[dict[str, Any]]:
            where, params = ("WHERE state = ?", [state]) if state else ("", [])
            out = []
            for row in db.query(f"SELECT * FROM outbox {where} ORDER BY id", params):  # noqa: S608 (a literal)
                row["payload"] = json.loads(row["payload"])
                out.append(row)
            return out

        return await self.db.call(go)

    async def prune(self, now: float) -> int:
        """Delete rows sent or skipped longer than ``KEEP_SENT`` ago; how many."""

        def go(db: Db) -> int:
            return int(db.conn.execute("DELETE FROM outbox WHERE state IN ('sent', 'skipped') AND sent_at < ?",
                                       (now - KEEP_SENT,)).rowcount)  # fmt: skip

        return await self.db.call(go)
