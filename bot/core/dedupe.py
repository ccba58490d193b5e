"""Deliveries seen: so that a request Slack delivers twice never runs twice.

Keys live in SQLite, so the answer holds across a restart and across bot processes that share the
database (the first ``INSERT`` wins).
"""

from __future__ import annotations

import time
from collections import OrderedDict

from bot.core.db import Database, Db

#: Slack retries within minutes; keep keys for a day
TTL_SECONDS = 24 * 3600


class Deliveries:
    """Records delivery keys; ``first(key)`` is True exactly once per key."""

    def __init__(self, db: Database, ttl: float = TTL_SECONDS) -> None:
        self.db = db
        self.ttl = ttl
        self._last_sweep = 0.0

    async def first(self, key: str) -> bool:
        """True when ``key`` was never seen before (and records it)."""
        now = time.time()
        sweep = now - self._last_sweep > 600
        if sweep:
            self._last_sweep = now

        def _claim(db: Db) -> bool:
            conn = db.conn
            if sweep:
                conn.execute("DELETE FROM deliveries WHERE seen_at < ?", (now - self.ttl,))
            cur = conn.execute("INSERT OR IGNORE INTO deliveries (key, seen_at) VALUES (?, ?)", (key, now))
            return cur.rowcount == 1

        return await self.db.call(_claim)


class RecentKeys:
    """The keys this process saw lately, in memory: a duplicate is known without any I/O."""

    def __init__(self, ttl: float = 3600.0, size: int = 100_000) -> None:
        self.ttl = ttl
        self.size = size
        self._seen: OrderedDict[str, float] = OrderedDict()

    def first(self, key: str) -> bool:
        """True when ``key`` was not seen within ``ttl`` (and records it)."""
        now = time.monotonic()
        while self._seen and next(iter(self._seen.values())) < now - self.ttl:
            self._seen.popitem(last=False)
        if key in self._seen:  # (before making room: a key seen is never forgotten to make room for itself)
            return False
        while len(self._seen) >= self.size:
            self._seen.popitem(last=False)
        self._seen[key] = now
        return True
