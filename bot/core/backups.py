"""Backups as opsbot made them (guide 7.1): id, object, size, sha256, command, requester, outcome, times.

The store is the truth about what exists (``backups`` lists the store); this table is what opsbot
did, and the checksum it recorded, which ``verify-backup`` also compares against.
"""

from __future__ import annotations

from typing import Any

from bot.core.db import Database, Db

COLUMNS = ("backup_id", "environment", "kind", "key", "location", "size", "sha256", "command", "requester",
           "outcome", "detail", "started_at", "duration", "request_id")  # fmt: skip


class Backups:
    """The backups table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(self, entry: dict[str, Any]) -> int:
        """Store one backup attempt (stored or failed); returns its row id."""
        row = {k: entry.get(k) for k in COLUMNS}

        def _insert(db: Db) -> int:
            cur = db.conn.execute(
                f"INSERT INTO backups ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})",  # noqa: S608
                tuple(row.values()),
            )
            return int(cur.lastrowid or 0)

        return await self.db.call(_insert)

    async def list(self, env: str, limit: int = 50) -> list[dict[str, Any]]:
        """Newest first."""

        def _read(db: Db) -> list[dict[str, Any]]:
            sql = "SELECT * FROM backups WHERE environment = ? ORDER BY id DESC LIMIT ?"
            return [dict(r) for r in db.query(sql, [env, limit])]

        rows: list[dict[str, Any]] = await self.db.call(_read)
        return rows

    async def get(self, env: str, backup_id: str) -> dict[str, Any] | None:
        """The stored record of ``backup_id`` in ``env``, if opsbot made it."""

        def _read(db: Db) -> dict[str, Any] | None:
            sql = (
                "SELECT * FROM backups WHERE environment = ? AND backup_id = ? AND outcome = 'stored' ORDER BY id DESC"
            )
            rows = [dict(r) for r in db.query(sql, [env, backup_id])]
            return rows[0] if rows else None

        found: dict[str, Any] | None = await self.db.call(_read)
        return found
