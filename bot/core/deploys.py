"""Deploy history (guide 5.3): every deploy, rollback and flag change, with images before and after.

``rollback`` reads it: the images that ran before the newest successful deploy.
"""

from __future__ import annotations

import json
import time
from typing import Any

from bot.core.db import Database, Db


class Deploys:
    """The deploys table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(self, entry: dict[str, Any]) -> int:
        """Store one deploy / rollback / flag change; returns its id."""
        row = {**entry, "finished_at": time.time()}
        for key in ("services", "before", "after", "approvers"):
            row[key] = json.dumps(row.get(key) or ([] if key in ("services", "approvers") else {}))

        def _insert(db: Db) -> int:
            cur = db.conn.execute(
                f"INSERT INTO deploys ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})",  # noqa: S608
                tuple(row.values()),
            )
            return int(cur.lastrowid or 0)

        return await self.db.call(_insert)

    async def list(self, env: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """Newest first."""

        def _read(db: Db) -> list[dict[str, Any]]:
            sql, params = "SELECT * FROM deploys", []
            if env:
                sql += " WHERE environment = ?"
                params.append(env)
            rows = [dict(r) for r in db.query(sql + " ORDER BY id DESC LIMIT ?", [*params, limit])]
            for r in rows:
                for key in ("services", "before", "after", "approvers"):
                    r[key] = json.loads(r[key])
            return rows

        result: list[dict[str, Any]] = await self.db.call(_read)
        return result

    async def last_successful_deploy(self, env: str) -> dict[str, Any] | None:
        """The newest deploy of ``env`` that succeeded (its ``before`` is what rollback puts back)."""
        for row in await self.list(env, limit=200):
            if row["kind"] == "deploy" and row["outcome"] == "succeeded":
                return row
        return None
