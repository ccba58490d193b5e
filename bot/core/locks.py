"""One change at a time per environment: a lease row in SQLite that every change (and backup) holds.

Approvals make each change run once; this makes two different changes never run at once in one
environment: two restores feeding one database, a backup dumping a half-restored database, a deploy
starting services a restore has stopped. Any number of opsbot processes share the lease through the
database file. The holder beats a heartbeat; a lease whose process is gone (same host: its pid is dead;
any host: no heartbeat for ``STALE`` seconds) is taken over.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from adapters.errors import UserError
from bot.core.approvals import RUNNER, runner_gone
from bot.core.db import Database, Db, immediate

#: seconds between two heartbeats of a held lease
BEAT = 10.0


class EnvironmentBusy(UserError):
    """Another change holds the environment; nothing was run."""


class EnvLocks:
    """Leases on environments, in the ``env_locks`` table."""

    def __init__(self, db: Database, *, runner: str = RUNNER, beat: float = BEAT) -> None:
        self.db = db
        self.runner = runner
        self.beat = beat

    @contextlib.asynccontextmanager
    async def hold(self, env: str, holder: str) -> AsyncIterator[None]:
        """Hold ``env`` while the block runs; ``EnvironmentBusy`` (saying who holds it) when taken."""
        token = secrets.token_hex(8)
        await self._take(env, holder, token)
        beat = asyncio.create_task(self._beat(env, token))
        try:
            yield
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            await asyncio.shield(self._release(env, token))

    async def _take(self, env: str, holder: str, token: str) -> None:
        now = time.time()
        host = socket.gethostname()

        def take(db: Db) -> dict[str, object] | None:
            with immediate(db.conn) as conn:
                row = conn.execute(
                    "SELECT holder, runner, since, heartbeat FROM env_locks WHERE environment = ?", [env]
                ).fetchone()
                if row is not None and not runner_gone(row[1], row[3], now, host):
                    return {"holder": row[0], "since": row[2]}
                conn.execute(
                    "INSERT OR REPLACE INTO env_locks (environment, token, holder, runner, since, heartbeat)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    [env, token, holder, self.runner, now, now],
                )
                return None

        busy = await self.db.call(take)
        if busy is not None:
            since = datetime.fromtimestamp(float(busy["since"]), UTC).strftime("%H:%M:%S UTC")  # type: ignore[arg-type]
            raise EnvironmentBusy(
                f"another change is running in {env}: {busy['holder']} (since {since}); nothing was run."
                " Try again when it has finished (`history` and `audit` show it)."
            )

    async def _beat(self, env: str, token: str) -> None:
        def beat(db: Db) -> None:
            db.conn.execute(
                "UPDATE env_locks SET heartbeat = ? WHERE environment = ? AND token = ?", [time.time(), env, token]
            )

        while True:
            await asyncio.sleep(self.beat)
            await self.db.call(beat)

    async def _release(self, env: str, token: str) -> None:
        def release(db: Db) -> None:
            with immediate(db.conn) as conn:
                conn.execute("DELETE FROM env_locks WHERE environment = ? AND token = ?", [env, token])

        await self.db.call(release)
