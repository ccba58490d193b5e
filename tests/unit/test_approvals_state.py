"""The approval state machine: transitions, and (hypothesis) no interleaving runs a change twice
or runs one without the approvals its environment requires."""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.errors import AccessDenied, ApprovalError
from bot.core.approvals import Approvals, runner_gone
from bot.core.db import Database

REQUESTER = "U0REQUESTER"
USERS = [REQUESTER, "U0APPROVER1", "U0APPROVER2", "U0APPROVER3"]


async def new(approvals: Approvals, required: int, expires_in: float = 900.0):
    return await approvals.create(
        command="restart prod api", words=["restart", "prod", "api"], environment="prod", requester=REQUESTER,
        door="slack", plan={"summary": "x", "steps": []}, plan_hash="h", required=required, expires_in=expires_in,
    )  # fmt: skip


@pytest.fixture
async def approvals(tmp_path):
    db = Database(tmp_path / "a.db")
    yield Approvals(db, runner="host:1:a")
    db.close()


async def test_self_approval_refused_and_two_distinct_approvers(approvals):
    a = await new(approvals, 2)
    with pytest.raises(AccessDenied, match="someone else must approve"):
        await approvals.approve(a.id, REQUESTER)
    a, complete = await approvals.approve(a.id, "U0APPROVER1")
    assert not complete and a.state == "pending"
    with pytest.raises(ApprovalError, match="already approved"):
        await approvals.approve(a.id, "U0APPROVER1")
    a, complete = await approvals.approve(a.id, "U0APPROVER2")
    assert complete and a.state == "approved" and a.approvers == ["U0APPROVER1", "U0APPROVER2"]
    assert (await approvals.claim(a.id)).state == "running"
    assert await approvals.claim(a.id) is None
    assert (await approvals.finish(a.id, "done", "ok")).state == "done"


async def test_required_zero_is_the_requesters_confirmation(approvals):
    a = await new(approvals, 0)
    with pytest.raises(AccessDenied, match="only its requester confirms"):
        await approvals.approve(a.id, "U0APPROVER1")
    a, complete = await approvals.approve(a.id, REQUESTER)
    assert complete and a.state == "approved"


async def test_deny_cancel_expire(approvals):
    a = await new(approvals, 1)
    with pytest.raises(AccessDenied, match="only the requester can cancel"):
        await approvals.cancel(a.id, "U0APPROVER1")
    assert (await approvals.cancel(a.id, REQUESTER)).state == "cancelled"
    with pytest.raises(ApprovalError, match="already cancelled"):
        await approvals.approve(a.id, "U0APPROVER1")
    b = await new(approvals, 1)
    assert (await approvals.deny(b.id, "U0APPROVER1", "not now")).state == "denied"
    c = await new(approvals, 1, expires_in=0)  # past its time from the start: no need to wait for it
    with pytest.raises(ApprovalError, match="expired"):
        await approvals.approve(c.id, "U0APPROVER1")
    with pytest.raises(ApprovalError, match="has expired; request the change again"):
        await approvals.deny(c.id, "U0APPROVER1")
    with pytest.raises(ApprovalError, match="has expired; request the change again"):
        await approvals.cancel(c.id, REQUESTER)
    assert [x.id for x in await approvals.pending()] == []


async def test_two_processes_eight_concurrent_approvals_one_claim(tmp_path):
    path = tmp_path / "shared.db"
    dbs = [Database(path) for _ in range(2)]
    procs = [Approvals(dbs[0], runner="h:1:a"), Approvals(dbs[1], runner="h:2:b")]
    a = await new(procs[0], 1)

    async def click(i: int):
        p = procs[i % 2]
        try:
            _, complete = await p.approve(a.id, f"U0APPROVER{i}")
        except ApprovalError:
            return None
        return await p.claim(a.id) if complete else None

    results = await asyncio.gather(*(click(i) for i in range(8)))
    assert sum(r is not None for r in results) == 1
    for db in dbs:
        db.close()


async def test_orphaned_runs_are_interrupted(tmp_path):
    db = Database(tmp_path / "o.db")
    dead = Approvals(db, runner="thishost:999999999:x")
    alive = Approvals(db)
    a = await new(dead, 1)
    await dead.approve(a.id, "U0APPROVER1")
    await dead.claim(a.id)
    sqlite3.connect(db.path).execute("UPDATE approvals SET updated_at = 0 WHERE id = ?", (a.id,)).connection.commit()
    [interrupted] = await alive.interrupt_orphans()
    assert interrupted.id == a.id and interrupted.state == "interrupted"
    assert (await alive.get(a.id)).state == "interrupted"
    db.close()


def test_a_runner_that_is_a_zombie_is_gone():
    # a back process killed with its front is a zombie until init reaps it: its run must count as orphaned
    child = subprocess.Popen(["true"])  # a fixed argv, no shell
    host, now = socket.gethostname(), time.time()
    try:
        deadline = time.monotonic() + 30
        while Path(f"/proc/{child.pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0] != b"Z":
            assert time.monotonic() < deadline, "the child did not exit"
            time.sleep(0.01)
        assert runner_gone(f"{host}:{child.pid}:x", now, now, host)  # exited, not reaped yet
        assert not runner_gone(f"{host}:{os.getpid()}:x", now, now, host)  # this process runs
    finally:
        child.wait()


OPS = st.lists(
    st.tuples(
        st.sampled_from(["approve", "deny", "cancel", "expire", "claim"]),
        st.sampled_from(USERS),
        st.integers(min_value=0, max_value=1),  # which of two bot processes
    ),
    min_size=1,
    max_size=14,
)


class Model:
    """What the approval state machine must do, written plainly: the test compares every step with it."""

    def __init__(self, required: int) -> None:
        self.required = required
        self.state = "pending"
        self.approvers: list[str] = []

    def step(self, op: str, user: str) -> tuple[type[Exception] | None, object]:
        """(the error expected, or None; the result expected) of ``op`` by ``user``, and move on."""
        if op == "approve":
            if self.state != "pending":
                return ApprovalError, None
            if (user == REQUESTER) != (self.required == 0):
                return AccessDenied, None
            if user in self.approvers:
                return ApprovalError, None
            self.approvers.append(user)
            if len(self.approvers) >= max(self.required, 1):
                self.state = "approved"
                return None, True
            return None, False
        if op in ("deny", "cancel"):
            if op == "cancel" and user != REQUESTER:
                return AccessDenied, None
            if self.state != "pending":
                return ApprovalError, None
            self.state = "denied" if op == "deny" else "cancelled"
            return None, None
        if op == "expire":
            was_pending = self.state == "pending"
            if was_pending:
                self.state = "expired"
            return None, was_pending
        assert op == "claim"
        if self.state != "approved":
            return None, False
        self.state = "running"
        return None, True


async def _do(p: Approvals, path: Path, approval_id: str, op: str, user: str) -> object:
    if op == "approve":
        return (await p.approve(approval_id, user))[1]
    if op == "deny":
        return await p.deny(approval_id, user) and None
    if op == "cancel":
        return await p.cancel(approval_id, user) and None
    if op == "expire":
        conn = sqlite3.connect(path)
        conn.execute("UPDATE approvals SET expires_at = 0 WHERE id = ?", (approval_id,))
        conn.commit()
        conn.close()
        return [x.id for x in await p.expire_due()] == [approval_id]
    claimed = await p.claim(approval_id)
    if claimed is not None:
        assert claimed.state == "running" and claimed.runner == p.runner
    return claimed is not None


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(required=st.integers(min_value=0, max_value=3), ops=OPS)
def test_no_interleaving_runs_twice_or_without_enough_approvals(required, ops):
    """Every step of two processes' interleaved clicks does exactly what the model says: the right
    refusal, the right result, the right state and approvers; so a claim comes only after enough
    distinct approvers (or the requester's own confirmation), once, and a final state stays final."""

    async def scenario() -> None:
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "p.db"
            dbs = [Database(path), Database(path)]
            try:
                procs = [Approvals(dbs[0], runner="h:1:a"), Approvals(dbs[1], runner="h:2:b")]
                a = await new(procs[0], required)
                model = Model(required)
                claims = 0
                for step, (op, user, which) in enumerate(ops):
                    p = procs[which]
                    error, expected = model.step(op, user)
                    where = f"step {step}: {op} by {user} on process {which}"
                    if error is None:
                        assert await _do(p, path, a.id, op, user) == expected, where
                    else:
                        with pytest.raises(error):
                            await _do(p, path, a.id, op, user)
                    claims += op == "claim" and expected is True
                    after = await procs[1 - which].get(a.id)  # as the other process sees it
                    assert (after.state, after.approvers) == (model.state, model.approvers), where
                    if model.state == "running":
                        assert len(set(after.approvers)) == len(after.approvers) >= required
                        assert after.approvers == [REQUESTER] if required == 0 else REQUESTER not in after.approvers
                assert claims <= 1
            finally:
                for db in dbs:
                    db.close()

    asyncio.run(scenario())
