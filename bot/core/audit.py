"""The tamper-evident audit log: one row per event, each carrying the hash of the one before.

``hash = sha256(prev_hash + canonical JSON of the row)``, where the row includes its id. Verifying
walks the chain from the first row: an altered row fails its own hash, a deleted or inserted row
breaks the link of the row after it, and the head record (written in the same transaction as every
append) catches rows cut from the end. Someone who can rewrite the whole file can rewrite the whole
chain; ship the head hash elsewhere (the log line of every append carries it) to catch that too.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import sqlite3
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.config.redact import Redactor
from bot.core.audit_chain import GENESIS, canonical, tail_and_head, walk_upto
from bot.core.db import Database, Db, immediate

#: every this many entries, the appender that wrote one checkpoints the WAL into the database and restarts it
CHECKPOINT_EVERY = 200
log = logging.getLogger("opsbot.audit")


def row_hash(row: dict[str, Any]) -> str:
    """The hash a row must carry."""
    return hashlib.sha256((row["prev_hash"] + canonical(row)).encode()).hexdigest()


def append_row(conn: sqlite3.Connection, row: dict[str, Any]) -> tuple[int, str]:
    """Chain ``row`` (already redacted; without id and hashes) to the log; its id and hash.

    The caller holds the write transaction (``immediate``), so the row before it cannot change meanwhile.
    """
    last = conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    row["id"] = (last[0] + 1) if last else 1
    row["prev_hash"] = last[1] if last else GENESIS
    row["hash"] = row_hash(row)
    columns = ", ".join(row)
    conn.execute(
        f"INSERT INTO audit ({columns}) VALUES ({', '.join('?' for _ in row)})",  # noqa: S608
        tuple(row.values()),
    )
    conn.execute("INSERT OR REPLACE INTO audit_head (one, last_id, hash) VALUES (1, ?, ?)", (row["id"], row["hash"]))
    return row["id"], row["hash"]


@dataclass(frozen=True)
class Verification:
    """The outcome of walking the chain."""

    ok: bool
    rows: int
    bad_id: int | None = None
    reason: str = ""


class AuditLog:
    """Appends and reads audit entries. Every detail is redacted before it is stored."""

    def __init__(self, db: Database, redactor: Redactor) -> None:
        self.db = db
        self.redactor = redactor

    async def append(
        self,
        *,
        actor: str,
        source: str,
        command: str,
        event: str,
        outcome: str,
        environment: str | None = None,
        details: dict[str, Any] | None = None,
        request_id: str | None = None,
    ) -> int:
        """Append one event; returns its id. Atomic across processes sharing the database."""
        row: dict[str, Any] = {
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "actor": actor,
            "source": source,
            "environment": environment,
            "command": self.redactor.text(command),
            "event": event,
            "outcome": self.redactor.text(outcome),
            "details": json.dumps(self.redactor.data(details or {}), sort_keys=True, ensure_ascii=False),
            "request_id": request_id,
        }

        def _append(db: Db) -> tuple[int, str]:
            with immediate(db.conn) as conn:
                appended = append_row(conn, row)
            if appended[0] % CHECKPOINT_EVERY == 0:
                # Under a steady stream of appends from several processes SQLite's own (passive) checkpoints
                # never catch up, and the WAL (and every page lookup in it) grows without end: bound it here.
                conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()  # busy: the next one will
            return appended

        entry_id, digest = await self.db.call(_append)
        log.debug("audit %s %s %s head=%s", entry_id, event, command, digest)
        return entry_id

    async def entries(
        self,
        *,
        env: str | None = None,
        user: str | None = None,
        limit: int = 20,
        hidden: Collection[str] = (),
        known: Collection[str] | None = None,
    ) -> list[dict[str, Any]]:
        """The newest entries (optionally of one environment / actor), newest first.

        Rows of the ``hidden`` environments are left out, and, when ``known`` is given, rows of
        environments not in it; rows of no environment are always kept.
        """

        def _read(db: Db) -> list[dict[str, Any]]:
            where: list[str] = []
            params: list[Any] = []
            if env:
                where.append("environment = ?")
                params.append(env)
            if hidden:
                where.append(f"(environment IS NULL OR environment NOT IN ({', '.join('?' * len(hidden))}))")
                params += list(hidden)
            if known is not None:
                where.append(f"(environment IS NULL OR environment IN ({', '.join('?' * len(known))}))")
                params += list(known)
            if user:
                where.append("actor = ?")
                params.append(user)
            sql = "SELECT * FROM audit"
            if where:
                sql += " WHERE " + " AND ".join(where)
            sql += " ORDER BY id DESC LIMIT ?"
            rows = [dict(r) for r in db.query(sql, [*params, limit])]
            for r in rows:
                r["details"] = json.loads(r["details"])
            return rows

        return await self.db.call(_read)

    async def verify(self) -> Verification:
        """Walk the whole chain; the first row that does not match, and why.

        The rows up to the head record's (as it was when the walk began) are walked by
        ``bot.core.audit_chain`` (streamed; in parallel for a long log); the rows appended meanwhile, and the
        head record, are then read in one snapshot: a log cut at its end, or grown without its head
        record, is caught, and appends by the running bot during the walk are not mistaken for either.
        """

        def _head(db: Db) -> tuple[int, str] | None:
            found = db.execute("SELECT last_id, hash FROM audit_head WHERE one = 1").fetchone()
            return (found[0], found[1]) if found else None

        head = await self.db.call(_head)
        count, last_id, last_hash = 0, 0, GENESIS
        if head is not None:
            walked = await asyncio.to_thread(walk_upto, self.db.path, head[0], GENESIS)
            if walked.bad_id is not None:
                return Verification(False, walked.count, walked.bad_id, walked.reason)
            end = (walked.last_id, walked.last_hash) if walked.count else None
            if end != head:
                return Verification(False, walked.count, head[0], _end_problem(end, head))
            count, last_id, last_hash = walked.count, head[0], head[1]
        tail, now = await asyncio.to_thread(tail_and_head, self.db.path, last_id, last_hash)
        if tail.bad_id is not None:
            return Verification(False, count + tail.count, tail.bad_id, tail.reason)
        count += tail.count
        end = (tail.last_id, tail.last_hash) if tail.count else ((last_id, last_hash) if head else None)
        if now is None and end is not None:
            return Verification(False, count, end[0], "the head record is missing")
        if now is not None and now != end:
            return Verification(False, count, now[0], _end_problem(end, now))
        return Verification(True, count)


def _end_problem(end: tuple[int | None, str | None] | None, head: tuple[int, str]) -> str:
    """Why the log's last row and its head record disagree."""
    if end is not None and end[0] == head[0]:
        return f"its head record does not match row {head[0]}, the last one (the head record was altered)"
    ends = f"ends at row {end[0]}" if end is not None else "is empty"
    return f"the log {ends} but its head record names row {head[0]} (rows were cut from the end)"
