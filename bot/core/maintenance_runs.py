"""The ``maintenance_runs`` table: every maintenance task run (guide 7.3), and which ones run right now.

A run is a row from its start: while ``finished_at`` is NULL and its process beats (``heartbeat``, every
``BEAT`` seconds) it is running, and it *holds* the services named in ``holds`` (``db_maintenance``
holds ``backup.database.service``). Every bot process on the database file sees it.

For alerting (guide 6.3, "a window's tasks hold alerts of what they touch"): before raising an alert
about a service of an environment, ask ``await MaintenanceRuns(db).holding(env, service)``; a run (its
row as a dict: task, started_at, actor, ...) means "maintenance is running on it: hold the alert";
None means "release": no task holds it any more (it finished, or its process died: a run whose process
is gone holds nothing). ``holding(env)`` without a service answers for any task of the environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sqlite3
import time
from collections.abc import AsyncIterator
from typing import Any

from bot.core.approvals import RUNNER, runner_gone
from bot.core.db import Database, Db

#: seconds between two heartbeats of a running task
BEAT = 10.0


class MaintenanceRuns:
    """Starts, beats, finishes and reads maintenance task runs."""

    def __init__(self, db: Database, *, runner: str = RUNNER, beat: float = BEAT) -> None:
        self.db = db
        self.runner = runner
        self.beat = beat

    async def start(self, env: str, task: str, *, holds: list[str], actor: str, door: str, request_id: str) -> int:
        """Record a run that starts now; its id."""
        now = time.time()

        def go(db: Db) -> int:
            cur = db.conn.execute(
                "INSERT INTO maintenance_runs (environment, task, holds, actor, door, request_id, runner, started_at,"
                " heartbeat) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (env, task, json.dumps(holds), actor, door, request_id, self.runner, now, now),
            )
            return int(cur.lastrowid or 0)

        return await self.db.call(go)

    async def heartbeat(self, run_id: int) -> None:
        """The run goes on."""
        await self.db.call(
            lambda db: db.conn.execute(
                "UPDATE maintenance_runs SET heartbeat = ? WHERE id = ? AND finished_at IS NULL", (time.time(), run_id)
            )
        )

    async def finish(self, run_id: int, severity: str, summary: str) -> None:
        """The run ended with ``severity`` (ok, warning, critical) and a one-line summary."""
        await self.db.call(
            lambda db: db.conn.execute(
                "UPDATE maintenance_runs SET finished_at = ?, severity = ?, summary = ? WHERE id = ?",
                (time.time(), severity, summary[:500], run_id),
            )
        )

    @contextlib.asynccontextmanager
    async def running(
        self, env: str, task: str, *, holds: list[str], actor: str, door: str, request_id: str
    ) -> AsyncIterator[RunHandle]:
        """A run for the block's duration, beating; the block sets ``handle.severity`` and ``handle.summary``.

        A block that raises finishes the run as critical with the error's text.
        """
        handle = RunHandle(await self.start(env, task, holds=holds, actor=actor, door=door, request_id=request_id))
        beat = asyncio.create_task(self._beat(handle.id))
        try:
            yield handle
        except BaseException as exc:
            handle.severity, handle.summary = "critical", str(exc) or type(exc).__name__
            raise
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            await asyncio.shield(self.finish(handle.id, handle.severity, handle.summary))

    async def _beat(self, run_id: int) -> None:
        while True:
            await asyncio.sleep(self.beat)
            await self.heartbeat(run_id)

    async def active(self, env: str | None = None) -> list[dict[str, Any]]:
        """The runs going on now (of ``env``), oldest first; a run whose process is gone is left out."""
        return await self.db.call(lambda db: running(db.conn, env))

    async def holding(self, env: str, service: str | None = None) -> dict[str, Any] | None:
        """The run that holds ``service`` of ``env`` now (any task of ``env`` without a service), or None."""
        for row in await self.active(env):
            if service is None or service in row["holds"]:
                return row
        return None

    async def last(self, env: str, task: str) -> dict[str, Any] | None:
        """The newest finished run of ``task`` in ``env``."""

        def go(db: Db) -> dict[str, Any] | None:
            found = db.query(
                "SELECT * FROM maintenance_runs WHERE environment = ? AND task = ? AND finished_at IS NOT NULL"
                " ORDER BY id DESC LIMIT 1",
                [env, task],
            )
            row = next(found, None)
            return dict(row) if row is not None else None

        return await self.db.call(go)

    async def schedule(self, env: str) -> dict[str, dict[str, Any]]:
        """The scheduler's rows (``schedule_state``) of ``env``, by task: next due, last run."""

        def go(db: Db) -> dict[str, dict[str, Any]]:
            rows = db.query("SELECT * FROM schedule_state WHERE environment = ? ORDER BY key", [env])
            return {r["task"]: dict(r) for r in rows}

        return await self.db.call(go)


def running(conn: sqlite3.Connection, env: str | None = None) -> list[dict[str, Any]]:
    """The runs going on now (of ``env``), oldest first, read on ``conn`` (inside the caller's transaction:
    the incidents ask it while they decide whether to hold an alert); a run whose process is gone is left out."""
    now, host = time.time(), socket.gethostname()  # heartbeats are wall-clock time, whatever the caller's clock
    sql, params = "SELECT * FROM maintenance_runs WHERE finished_at IS NULL", []
    if env is not None:
        sql += " AND environment = ?"
        params.append(env)
    cur = conn.execute(sql + " ORDER BY id", params)
    names = [d[0] for d in cur.description]
    out = []
    for values in cur.fetchall():
        row = dict(zip(names, values, strict=True))
        if not runner_gone(row["runner"], row["heartbeat"], now, host):
            row["holds"] = json.loads(row["holds"])
            out.append(row)
    return out


class RunHandle:
    """A run in progress: its id, and the outcome the block sets."""

    def __init__(self, run_id: int) -> None:
        self.id = run_id
        self.severity = "critical"
        self.summary = "ended without an outcome"
