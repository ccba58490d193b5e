"""The one SQLite database (WAL), its schema migrations, and a single thread that talks to it.

All access goes through ``Database.call``: the connection lives in one worker thread, so the event
loop never blocks on SQLite and no connection is shared across threads.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import sqlite_utils

from adapters.errors import OpsError

T = TypeVar("T")

#: schema migrations; index + 1 is the schema version after it ran. Never edit one that shipped.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        ts TEXT NOT NULL,
        actor TEXT NOT NULL,
        source TEXT NOT NULL,
        environment TEXT,
        command TEXT NOT NULL,
        event TEXT NOT NULL,
        outcome TEXT NOT NULL,
        details TEXT NOT NULL,
        request_id TEXT,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE INDEX audit_env ON audit(environment, id);
    CREATE INDEX audit_actor ON audit(actor, id);
    CREATE TABLE audit_head (one INTEGER PRIMARY KEY CHECK (one = 1), last_id INTEGER, hash TEXT);
    """,
    """
    CREATE TABLE deliveries (key TEXT PRIMARY KEY, seen_at REAL NOT NULL);
    CREATE INDEX deliveries_seen ON deliveries(seen_at);
    """,
    """
    CREATE TABLE approvals (
        id TEXT PRIMARY KEY,
        command TEXT NOT NULL,
        words TEXT NOT NULL,
        environment TEXT,
        requester TEXT NOT NULL,
        door TEXT NOT NULL,
        channel TEXT,
        message_ts TEXT,
        plan TEXT NOT NULL,
        plan_hash TEXT NOT NULL,
        required INTEGER NOT NULL,
        approvers TEXT NOT NULL DEFAULT '[]',
        state TEXT NOT NULL,
        reason TEXT,
        decided_by TEXT,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        runner TEXT,
        outcome TEXT,
        request_id TEXT,
        version INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX approvals_state ON approvals(state, expires_at);
    """,
    """
    CREATE TABLE deploys (
        id INTEGER PRIMARY KEY,
        environment TEXT NOT NULL,
        kind TEXT NOT NULL,
        version TEXT,
        services TEXT NOT NULL,
        before TEXT NOT NULL,
        after TEXT NOT NULL,
        requester TEXT NOT NULL,
        approvers TEXT NOT NULL,
        outcome TEXT NOT NULL,
        detail TEXT,
        started_at REAL NOT NULL,
        finished_at REAL NOT NULL,
        approval_id TEXT
    );
    CREATE INDEX deploys_env ON deploys(environment, id);
    """,
    """
    CREATE TABLE backups (
        id INTEGER PRIMARY KEY,
        backup_id TEXT NOT NULL,
        environment TEXT NOT NULL,
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        location TEXT NOT NULL,
        size INTEGER,
        sha256 TEXT,
        command TEXT NOT NULL,
        requester TEXT NOT NULL,
        outcome TEXT NOT NULL,
        detail TEXT,
        started_at REAL NOT NULL,
        duration REAL NOT NULL,
        request_id TEXT
    );
    CREATE INDEX backups_env ON backups(environment, backup_id)
    """,
    """
    CREATE TABLE schedule_state (
        key TEXT PRIMARY KEY,
        task TEXT NOT NULL,
        environment TEXT NOT NULL,
        every REAL NOT NULL,
        next_due REAL NOT NULL,
        last_run REAL,
        last_severity TEXT,
        alerted TEXT,
        running_by TEXT,
        claimed_at REAL,
        lease_until REAL,
        request_id TEXT,
        version INTEGER NOT NULL DEFAULT 0
    )
    """,
    # 7: one change at a time per environment (bot/locks.py)
    """
    CREATE TABLE env_locks (
        environment TEXT PRIMARY KEY,
        token TEXT NOT NULL,
        holder TEXT NOT NULL,
        runner TEXT NOT NULL,
        since REAL NOT NULL,
        heartbeat REAL NOT NULL
    )
    """,
    # 8: `audit --env E --user U` reads its newest rows directly: with an index on one of the two columns a
    # rare user's rows in a busy environment were found by scanning all of that environment's (a million-row log)
    "CREATE INDEX audit_env_actor ON audit(environment, actor, id)",
)


class DatabaseError(OpsError):
    """The SQLite database cannot be opened or used."""


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction, taken at once (``BEGIN IMMEDIATE``): committed, or rolled back on error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _migrate(conn: sqlite3.Connection) -> None:
    if conn.execute("PRAGMA user_version").fetchone()[0] >= len(MIGRATIONS):
        return
    # another process may be migrating the same file: read the version inside the write lock
    with immediate(conn):
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            # executescript would commit first; run statement by statement inside the transaction
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")


def connect(path: str | Path) -> sqlite_utils.Database:
    """Open (and migrate) the database at ``path``; for use from one thread only."""
    try:
        conn = sqlite3.connect(str(path), timeout=10.0, isolation_level=None, check_same_thread=True)
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        _migrate(conn)
    except sqlite3.Error as exc:
        raise DatabaseError(f"cannot open the database {path}: {exc}") from exc
    return sqlite_utils.Database(conn)


class Database:
    """The bot's database, used from async code through one dedicated thread."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="opsbot-db")
        self._db: sqlite_utils.Database | None = None

    def _get(self) -> sqlite_utils.Database:
        if self._db is None:
            self._db = connect(self.path)
        return self._db

    def run_sync(self, fn: Callable[[sqlite_utils.Database], T]) -> T:
        """Run ``fn(db)`` on the database thread and wait for it (for synchronous callers)."""
        return self._executor.submit(lambda: fn(self._get())).result()

    async def call(self, fn: Callable[[sqlite_utils.Database], T]) -> T:
        """Run ``fn(db)`` on the database thread."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, lambda: fn(self._get()))
        except sqlite3.Error as exc:
            raise DatabaseError(f"database {self.path}: {exc}") from exc

    async def ping(self) -> bool:
        """True when the database answers a query."""
        await self.call(lambda db: db.execute("SELECT 1").fetchone())
        return True

    def close(self) -> None:
        """Close the connection and stop the thread."""

        def _close() -> None:
            if self._db is not None:
                self._db.conn.close()
                self._db = None

        self._executor.submit(_close).result()
        self._executor.shutdown(wait=True)
