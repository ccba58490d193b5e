"""The approval state machine: transitions, and (hypothesis) no interleaving runs a change twice
or runs one without the approvals its environment requires."""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.errors import AccessDenied, ApprovalError
from bot.core.approvals import FINAL, Approvals
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
    c = await new(approvals, 1, expires_in=0.05)
    await asyncio.sleep(0.1)
    with pytest.raises(ApprovalError, match="expired"):
        await approvals.approve(c.id, "U0APPROVER1")
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


OPS = st.lists(
    st.tuples(
        st.sampled_from(["approve", "deny", "cancel", "expire", "claim"]),
        st.sampled_from(USERS),
        st.integers(min_value=0, max_value=1),  # which of two bot processes
    ),
    min_size=1,
    max_size=14,
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(required=st.integers(min_value=0, max_value=3), ops=OPS)
def test_no_interleaving_runs_twice_or_without_enough_approvals(required, ops):
    async def scenario() -> None:
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "p.db"
            dbs = [Database(path), Database(path)]
            procs = [Approvals(dbs[0], runner="h:1:a"), Approvals(dbs[1], runner="h:2:b")]
            a = await new(procs[0], required)
            claims = 0
            for op, user, which in ops:
                p = procs[which]
                before = await p.get(a.id)
                try:
                    if op == "approve":
                        await p.approve(a.id, user)
                    elif op == "deny":
                        await p.deny(a.id, user)
                    elif op == "cancel":
                        await p.cancel(a.id, user)
                    elif op == "expire":
                        conn = sqlite3.connect(path)
                        conn.execute("UPDATE approvals SET expires_at = 0 WHERE id = ?", (a.id,))
                        conn.commit()
                        conn.close()
                        await p.expire_due()
                    elif op == "claim":
                        claimed = await p.claim(a.id)
                        if claimed is not None:
                            claims += 1
                            approvers = claimed.approvers
                            if required == 0:
                                assert approvers == [REQUESTER]
                            else:
                                assert REQUESTER not in approvers
                                assert len(set(approvers)) == len(approvers) >= required
                except (ApprovalError, AccessDenied):
                    pass
                after = await p.get(a.id)
                if before.state in FINAL:
                    assert after.state == before.state and after.version == before.version  # final is final
                assert claims <= 1
            for db in dbs:
                db.close()

    asyncio.run(scenario())
