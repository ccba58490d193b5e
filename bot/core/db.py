"""The one SQLite database (WAL), its schema migrations, and a single thread that talks to it.

All access goes through ``Database.call``: the connection lives in one worker thread, so the event
loop never blocks on SQLite and no connection is shared across threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

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
    # 7: one change at a time per environment (bot/core/locks.py)
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
    # 8: the audit log by event (the guide's Document History: config changes, deploys)
    """
    CREATE INDEX audit_event ON audit(event, id)
    """,
    # 9: maintenance task runs (bot/core/maintenance_runs.py) and the 7.4 security duties (bot/core/duties.py)
    """
    CREATE TABLE maintenance_runs (
        id INTEGER PRIMARY KEY,
        environment TEXT NOT NULL,
        task TEXT NOT NULL,
        holds TEXT NOT NULL DEFAULT '[]',
        actor TEXT NOT NULL,
        door TEXT,
        request_id TEXT,
        runner TEXT NOT NULL,
        started_at REAL NOT NULL,
        heartbeat REAL NOT NULL,
        finished_at REAL,
        severity TEXT,
        summary TEXT
    );
    CREATE INDEX maintenance_runs_env ON maintenance_runs(environment, task, id);
    CREATE TABLE security_duties (
        item TEXT PRIMARY KEY,
        first_seen REAL NOT NULL,
        last_done_at REAL,
        last_done_by TEXT,
        note TEXT,
        reminded_at REAL,
        channel TEXT,
        message_ts TEXT,
        gate_at REAL,
        gate_outcome TEXT,
        gate_image TEXT,
        version INTEGER NOT NULL DEFAULT 0
    )
    """,
    # 10: alerts (bot/core/incidents.py): incidents, silences, and the outbox of their notifications
    """
    CREATE TABLE incidents (
        id TEXT PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        environment TEXT NOT NULL,
        source TEXT NOT NULL,
        what TEXT NOT NULL,
        severity TEXT NOT NULL,
        state TEXT NOT NULL,
        summary TEXT NOT NULL,
        symptoms TEXT NOT NULL DEFAULT '',
        opened_at REAL NOT NULL,
        failing_since REAL NOT NULL,
        last_seen REAL NOT NULL,
        resolved_at REAL,
        count INTEGER NOT NULL DEFAULT 1,
        flaps INTEGER NOT NULL DEFAULT 0,
        acked_by TEXT,
        acked_at REAL,
        silence_id TEXT,
        held_until REAL,
        held_reason TEXT,
        level INTEGER NOT NULL DEFAULT 0,
        escalated_at REAL,
        repeated_at REAL,
        edited_at REAL,
        diagnosed_at REAL,
        paged INTEGER NOT NULL DEFAULT 0,
        channel TEXT,
        message_ts TEXT,
        storm_id TEXT,
        version INTEGER NOT NULL DEFAULT 0
    );
    CREATE UNIQUE INDEX incidents_open ON incidents(fingerprint) WHERE state != 'resolved';
    CREATE INDEX incidents_env ON incidents(environment, state);
    CREATE INDEX incidents_fingerprint ON incidents(fingerprint, resolved_at);
    CREATE TABLE silences (
        id TEXT PRIMARY KEY,
        environment TEXT NOT NULL,
        what TEXT NOT NULL,
        created_at REAL NOT NULL,
        until REAL NOT NULL,
        reason TEXT,
        created_by TEXT NOT NULL
    );
    CREATE INDEX silences_env ON silences(environment, what, until);
    CREATE TABLE storms (
        id TEXT PRIMARY KEY,
        environment TEXT NOT NULL,
        channel TEXT,
        message_ts TEXT,
        opened_at REAL NOT NULL,
        last_join REAL NOT NULL,
        version INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        delivery_id TEXT NOT NULL UNIQUE,
        dedupe TEXT UNIQUE,
        grp TEXT NOT NULL,
        notifier TEXT NOT NULL,
        op TEXT NOT NULL,
        incident TEXT,
        payload TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        next_at REAL NOT NULL,
        owner TEXT,
        lease_until REAL,
        sent_at REAL,
        last_error TEXT,
        result TEXT
    );
    CREATE INDEX outbox_due ON outbox(state, next_at);
    CREATE INDEX outbox_grp ON outbox(grp, id);
    CREATE TABLE alert_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)
    """,
    # 11: `audit --env E --user U` reads its newest rows directly: with an index on one of the two columns a
    # rare user's rows in a busy environment were found by scanning all of that environment's (a million-row log)
    "CREATE INDEX audit_env_actor ON audit(environment, actor, id)",
    # 12: an outbox row whose earlier attempt may have reached the receiver unheard (a timeout, a lost
    # connection, a worker killed while holding it): its next Slack post looks for it in Slack first
    "ALTER TABLE outbox ADD COLUMN maybe_sent INTEGER NOT NULL DEFAULT 0",
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


#: the database and its -wal and -shm files: readable by the bot's own user only (SQLite gives the
#: -wal and -shm files the database file's mode)
FILE_MODE = 0o600


def private_file(path: str | Path) -> None:
    """Create ``path`` (and tighten its -wal/-shm companions) with mode 0600 before SQLite opens it.

    An existing file of ours that is more open (an older opsbot made it 0644) is tightened too.
    """
    path = str(path)
    if path == ":memory:" or path.startswith("file:"):
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        if os.fstat(fd).st_mode & 0o777 != FILE_MODE:
            os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path + suffix).st_mode & 0o777 != FILE_MODE:
                os.chmod(path + suffix, FILE_MODE)


#: how long opening waits for other processes opening (or migrating) the same file
OPEN_TIMEOUT = 10.0


def _busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


def _use_wal(conn: sqlite3.Connection, path: str | Path) -> None:
    """Switch the file to WAL, retrying while other processes hold it.

    The switch needs the file to itself, and SQLite answers "database is locked" at once, without
    waiting the busy timeout, when another connection is opening the same new file at that moment.
    """
    deadline = time.monotonic() + OPEN_TIMEOUT
    while True:
        try:
            mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0])
            if mode.lower() != "wal":
                mode = str(conn.execute("PRAGMA journal_mode=WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if not _busy(exc) or time.monotonic() > deadline:
                raise
            time.sleep(random.uniform(0.002, 0.02))  # back off (jittered) and try again
            continue
        if mode.lower() != "wal":
            raise DatabaseError(f"cannot open the database {path}: it cannot use WAL (journal mode {mode})")
        return


class Db:
    """One connection, with the two calls the bot makes on it: ``execute`` and ``query`` (rows as dicts).

    The standard library's sqlite3 and nothing else: no plugin installed beside the bot is handed the
    audit's connection (sqlite-utils ran its entry points' hooks on every connection it wrapped), and
    nothing more to import when a command starts (sqlite-utils and its imports: 45-65 ms).
    """

    __slots__ = ("conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, parameters: Sequence[Any] | Mapping[str, Any] | None = None) -> sqlite3.Cursor:
        """``sql`` run with its ``?`` / ``:name`` parameters."""
        return self.conn.execute(sql, parameters or ())

    def query(self, sql: str, parameters: Sequence[Any] | Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """The rows of ``sql``, each a dict keyed by column name."""
        cursor = self.conn.execute(sql, parameters or ())
        keys = [column[0] for column in cursor.description]
        for row in cursor:
            yield dict(zip(keys, row, strict=True))


def connect(path: str | Path) -> Db:
    """Open (and migrate) the database at ``path``; for use from one thread only.

    Safe when several processes open (and migrate) the same new file at the same moment.
    """
    try:
        private_file(path)
        conn = sqlite3.connect(str(path), timeout=OPEN_TIMEOUT, isolation_level=None, check_same_thread=True)
        conn.execute(f"PRAGMA busy_timeout={int(OPEN_TIMEOUT * 1000)}")  # before anything that may wait
        _use_wal(conn, path)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        _migrate(conn)
    except sqlite3.Error as exc:
        raise DatabaseError(f"cannot open the database {path}: {exc}") from exc
    except OSError as exc:
        raise DatabaseError(f"cannot open the database {path}: {exc.strerror or exc}") from exc
    return Db(conn)


class Database:
    """The bot's database, used from async code through one dedicated thread."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="opsbot-db")
        self._db: Db | None = None

    def _get(self) -> Db:
        if self._db is None:
            self._db = connect(self.path)
        return self._db

    def run_sync(self, fn: Callable[[Db], T]) -> T:
        """Run ``fn(db)`` on the database thread and wait for it (for synchronous callers)."""
        return self._executor.submit(lambda: fn(self._get())).result()

    async def call(self, fn: Callable[[Db], T]) -> T:
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
