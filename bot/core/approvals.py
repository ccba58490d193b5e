"""Approvals: a state machine in SQLite where every transition is a compare-and-set.

    pending --approve (enough distinct approvers)--> approved --claim--> running --> done | failed
    pending --deny--> denied      pending --cancel--> cancelled      pending --(time)--> expired
    approved/running --(plan changed)--> stale        running --(process died)--> interrupted

Each transition runs in one ``BEGIN IMMEDIATE`` transaction that reads the row and writes it only if
it is still in the state it read, so two clicks, a retry, a command-line approval racing a Slack one,
or two bot processes on one database can never take the same transition twice. Only ``claim`` moves
an approval to ``running``, and only the one caller that wins it runs the change.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from adapters.errors import AccessDenied, ApprovalError
from bot.core.db import Database, Db, immediate

PENDING, APPROVED, RUNNING = "pending", "approved", "running"
DENIED, CANCELLED, EXPIRED = "denied", "cancelled", "expired"
DONE, FAILED, INTERRUPTED, STALE = "done", "failed", "interrupted", "stale"
FINAL = frozenset({DENIED, CANCELLED, EXPIRED, DONE, FAILED, INTERRUPTED, STALE})
#: a running approval whose runner has not beaten its heart for this long is interrupted
HEARTBEAT_STALE = 60.0

#: this process, as a runner: host, pid, and a token so that a reused pid is not mistaken for us
RUNNER = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass
class Approval:
    """One approval request and where it stands."""

    id: str
    command: str
    words: list[str]
    environment: str | None
    requester: str
    door: str
    plan: dict[str, Any]
    plan_hash: str
    required: int
    state: str
    created_at: float
    expires_at: float
    updated_at: float
    approvers: list[str] = field(default_factory=list)
    channel: str | None = None
    message_ts: str | None = None
    reason: str | None = None
    decided_by: str | None = None
    runner: str | None = None
    outcome: str | None = None
    request_id: str | None = None
    version: int = 0

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Approval:
        """From a database row."""
        data = dict(row)
        data["words"] = json.loads(data["words"])
        data["plan"] = json.loads(data["plan"])
        data["approvers"] = json.loads(data["approvers"])
        return cls(**data)

    def summary(self) -> dict[str, Any]:
        """The contract's ``approval`` object: id, state, required, expires_at (and more)."""
        return {
            "id": self.id,
            "state": self.state,
            "required": self.required,
            "expires_at": _iso(self.expires_at),
            "requester": self.requester,
            "approvers": list(self.approvers),
            "command": self.command,
            "environment": self.environment,
        }


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Approvals:
    """The approvals table; every method is one atomic transition (or a read)."""

    def __init__(self, db: Database, *, runner: str = RUNNER) -> None:
        self.db = db
        self.runner = runner

    # ------------------------------------------------------------------ plumbing

    async def _tx(self, approval_id: str, change: Any) -> Any:
        """Run ``change(approval, conn)`` on the current row inside one write transaction."""

        def _run(db: Db) -> Any:
            with immediate(db.conn) as conn:
                row = next(db.query("SELECT * FROM approvals WHERE id = ?", [approval_id]), None)
                if row is None:
                    raise ApprovalError(f"no approval {approval_id!r}")
                return change(Approval.from_row(row), conn)

        return await self.db.call(_run)

    @staticmethod
    def _write(conn: Any, a: Approval, **changes: Any) -> Approval:
        """Compare-and-set: write ``changes`` only if the row is still at the version read."""
        changes["updated_at"] = time.time()
        for key in ("approvers", "plan", "words"):
            if key in changes:
                changes[key] = json.dumps(changes[key])
        sets = ", ".join(f"{k} = ?" for k in changes)
        cur = conn.execute(
            f"UPDATE approvals SET {sets}, version = version + 1 WHERE id = ? AND version = ?",  # noqa: S608
            (*changes.values(), a.id, a.version),
        )
        if cur.rowcount != 1:  # cannot happen inside BEGIN IMMEDIATE, but never write blind
            raise ApprovalError(f"approval {a.id} changed meanwhile; try again")
        for key, value in changes.items():
            setattr(a, key, json.loads(value) if key in ("approvers", "plan", "words") else value)
        a.version += 1
        return a

    @staticmethod
    def _check_open(a: Approval, now: float) -> None:
        if a.state == PENDING and now >= a.expires_at:
            raise ApprovalError(f"approval {a.id} has expired; request the change again")
        if a.state != PENDING:
            raise ApprovalError(f"approval {a.id} is already {a.state}")

    # ------------------------------------------------------------------ transitions

    async def create(
        self,
        *,
        command: str,
        words: list[str],
        environment: str | None,
        requester: str,
        door: str,
        plan: dict[str, Any],
        plan_hash: str,
        required: int,
        expires_in: float,
        channel: str | None = None,
        request_id: str | None = None,
    ) -> Approval:
        """A new pending approval."""
        now = time.time()
        a = Approval(
            id=secrets.token_hex(4), command=command, words=list(words), environment=environment,
            requester=requester, door=door, plan=plan, plan_hash=plan_hash, required=required, state=PENDING,
            created_at=now, expires_at=now + expires_in, updated_at=now, channel=channel, request_id=request_id,
        )  # fmt: skip
        row = {k: v for k, v in a.__dict__.items()}
        for key in ("approvers", "plan", "words"):
            row[key] = json.dumps(row[key])

        def _insert(db: Db) -> None:
            db.conn.execute(
                f"INSERT INTO approvals ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})",  # noqa: S608
                tuple(row.values()),
            )

        await self.db.call(_insert)
        return a

    async def approve(self, approval_id: str, user: str) -> tuple[Approval, bool]:
        """Record ``user``'s approval; (approval, True when this approval completed it)."""
        now = time.time()

        def change(a: Approval, conn: Any) -> tuple[Approval, bool]:
            if a.state == PENDING and now >= a.expires_at:
                self._write(conn, a, state=EXPIRED)
            self._check_open(a, now)
            if user == a.requester and a.required > 0:
                raise AccessDenied("you requested this change: someone else must approve it")
            if user != a.requester and a.required == 0:
                raise AccessDenied("this change needs no approver: only its requester confirms it")
            if user in a.approvers:
                raise ApprovalError(f"you already approved {a.id}")
            approvers = [*a.approvers, user]
            needed = max(a.required, 1)
            state = APPROVED if len(approvers) >= needed else PENDING
            self._write(conn, a, approvers=approvers, state=state, decided_by=user if state == APPROVED else None)
            return a, state == APPROVED

        result: tuple[Approval, bool] = await self._tx(approval_id, change)
        return result

    async def deny(self, approval_id: str, user: str, reason: str | None = None) -> Approval:
        """End it: denied by ``user``."""
        now = time.time()

        def change(a: Approval, conn: Any) -> Approval:
            self._check_open(a, now)
            return self._write(conn, a, state=DENIED, decided_by=user, reason=reason)

        result: Approval = await self._tx(approval_id, change)
        return result

    async def cancel(self, approval_id: str, user: str) -> Approval:
        """End it: cancelled by its requester."""
        now = time.time()

        def change(a: Approval, conn: Any) -> Approval:
            if user != a.requester:
                raise AccessDenied("only the requester can cancel a request; approvers can deny it")
            self._check_open(a, now)
            return self._write(conn, a, state=CANCELLED, decided_by=user)

        result: Approval = await self._tx(approval_id, change)
        return result

    async def claim(self, approval_id: str) -> Approval | None:
        """approved -> running for this process; None when someone else already has it."""

        def change(a: Approval, conn: Any) -> Approval | None:
            if a.state != APPROVED or len(a.approvers) < max(a.required, 1):
                return None
            return self._write(conn, a, state=RUNNING, runner=self.runner)

        result: Approval | None = await self._tx(approval_id, change)
        return result

    async def finish(self, approval_id: str, state: str, outcome: str) -> Approval:
        """running -> done / failed / stale, by the runner that claimed it."""
        if state not in (DONE, FAILED, STALE):
            raise ValueError(state)

        def change(a: Approval, conn: Any) -> Approval:
            if a.state != RUNNING or a.runner != self.runner:
                raise ApprovalError(f"approval {a.id} is {a.state}, not running here")
            return self._write(conn, a, state=state, outcome=outcome[:2000])

        result: Approval = await self._tx(approval_id, change)
        return result

    async def set_message(self, approval_id: str, channel: str, ts: str) -> None:
        """Remember the Slack message that shows this approval."""

        def _set(db: Db) -> None:
            db.conn.execute("UPDATE approvals SET channel = ?, message_ts = ? WHERE id = ?", (channel, ts, approval_id))

        await self.db.call(_set)

    async def heartbeat(self, approval_id: str) -> None:
        """The runner is alive."""

        def _beat(db: Db) -> None:
            db.conn.execute(
                "UPDATE approvals SET updated_at = ? WHERE id = ? AND state = ? AND runner = ?",
                (time.time(), approval_id, RUNNING, self.runner),
            )

        await self.db.call(_beat)

    async def expire_due(self) -> list[Approval]:
        """pending -> expired for every approval past its time; the ones this call expired."""
        now = time.time()

        def _expire(db: Db) -> list[Approval]:
            with immediate(db.conn) as conn:
                query = "SELECT * FROM approvals WHERE state = ? AND expires_at <= ?"
                rows = [Approval.from_row(r) for r in db.query(query, [PENDING, now])]
                return [self._write(conn, a, state=EXPIRED) for a in rows]

        result: list[Approval] = await self.db.call(_expire)
        return result

    async def interrupt_orphans(self) -> list[Approval]:
        """running -> interrupted for runs whose process is gone (same host: dead pid; else no heartbeat)."""
        now = time.time()
        host = socket.gethostname()

        def _orphans(db: Db) -> list[Approval]:
            found = []
            with immediate(db.conn) as conn:
                for r in db.query("SELECT * FROM approvals WHERE state = ?", [RUNNING]):
                    a = Approval.from_row(r)
                    if a.runner == self.runner:
                        continue
                    if runner_gone(a.runner, a.updated_at, now, host):
                        found.append(self._write(conn, a, state=INTERRUPTED, outcome="the bot stopped during the run"))
            return found

        result: list[Approval] = await self.db.call(_orphans)
        return result

    # ------------------------------------------------------------------ reads

    async def get(self, approval_id: str) -> Approval:
        """One approval; ApprovalError when there is none."""

        def _get(db: Db) -> Approval | None:
            row = next(db.query("SELECT * FROM approvals WHERE id = ?", [approval_id]), None)
            return Approval.from_row(row) if row else None

        a = await self.db.call(_get)
        if a is None:
            raise ApprovalError(f"no approval {approval_id!r}")
        return a

    async def pending(self, env: str | None = None) -> list[Approval]:
        """Pending approvals (not yet expired), oldest first."""
        now = time.time()

        def _pending(db: Db) -> list[Approval]:
            sql = "SELECT * FROM approvals WHERE state = ? AND expires_at > ?"
            params: list[Any] = [PENDING, now]
            if env:
                sql += " AND environment = ?"
                params.append(env)
            return [Approval.from_row(r) for r in db.query(sql + " ORDER BY created_at", params)]

        result: list[Approval] = await self.db.call(_pending)
        return result

    async def count_pending(self) -> int:
        """How many wait (for the metrics)."""
        return len(await self.pending())


def runner_gone(runner: str | None, heartbeat: float, now: float, host: str) -> bool:
    """True when the process of ``runner`` (``host:pid:token``) is gone: a dead pid on this host, or no
    heartbeat for ``HEARTBEAT_STALE`` seconds (any host)."""
    r_host, _, rest = (runner or "::").partition(":")
    pid = rest.partition(":")[0]
    if r_host == host and pid.isdigit() and not _alive(int(pid)):
        return True
    return now - heartbeat > HEARTBEAT_STALE


def _alive(pid: int) -> bool:
    """The process runs (a zombie, dead but not yet reaped by its parent, does not: a back process killed
    with its front is one until init reaps it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            state = stat.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (not Linux): what kill(0) said
    return state not in (b"Z", b"X")
