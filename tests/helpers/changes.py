"""Running a change through the engine as a requester and an approver (the integration tests' way)."""

from __future__ import annotations

from typing import Any

from bot.core.engine import Reply, Request

REQUESTER = "U0OPERATOR"
APPROVER = "U0APPROVER1"


async def change(app: Any, text: str, progress: Any = None) -> Reply:
    """Request ``text`` as the operator, approve it as the approver (with ``progress``); the approval's reply."""
    reply = await app.engine.handle(Request(actor=REQUESTER, door="cli", text=text))
    assert reply.error is None, reply.error
    approval_id = reply.to_json()["approval"]["id"]
    approve = Request(actor=APPROVER, door="cli", text="approve")
    if progress is not None:
        approve.progress = progress
    return await app.engine.decide(approve, approval_id, "approve")
