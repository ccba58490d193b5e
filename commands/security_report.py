"""The access review's report (guide 7.4 "review access logs"): what the audit log says about a period.

Who did what (requests by actor and command), refusals, break-glass uses, approvals and denials, and
the actors seen for the first time. Made by ``bot.core.duties.Duties.access_report``; shown by
``security`` and attached to the access review's reminder.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class AuditLine(BaseModel):
    """One audit entry, as the report quotes it."""

    ts: str
    actor: str
    command: str
    outcome: str
    environment: str | None = None


class ActorActivity(BaseModel):
    """What one actor asked for in the period: command -> number of requests."""

    actor: str
    total: int
    commands: dict[str, int] = Field(default_factory=dict)


class AccessReport(BaseModel):
    """The audit log of one period, for the person reviewing access."""

    since: datetime
    until: datetime
    entries: int = 0
    activity: list[ActorActivity] = Field(default_factory=list)
    refusals: int = 0
    #: the newest refusals (at most 20)
    refused: list[AuditLine] = Field(default_factory=list)
    break_glass: list[AuditLine] = Field(default_factory=list)
    approvals: list[AuditLine] = Field(default_factory=list)
    new_actors: list[str] = Field(default_factory=list)

    def summary(self) -> str:
        """One line: ``12 requests by 3 actors, 2 refusals, 1 break-glass, 4 approvals, new actors: U0NEW``."""
        requests = sum(a.total for a in self.activity)
        new = ", ".join(self.new_actors) or "none"
        return (f"{requests} request{'s' if requests != 1 else ''} by {len(self.activity)} "
                f"actor{'s' if len(self.activity) != 1 else ''}, {self.refusals} refusal"
                f"{'s' if self.refusals != 1 else ''}, {len(self.break_glass)} break-glass, "
                f"{len(self.approvals)} approval decision{'s' if len(self.approvals) != 1 else ''}, "
                f"new actors: {new}")  # fmt: skip


def _lines(rows: list[Any]) -> list[AuditLine]:
    return [AuditLine(ts=r[0], actor=r[1], command=r[2], outcome=r[3], environment=r[4]) for r in rows]


def report_from(since: datetime, until: datetime, found: dict[str, Any]) -> AccessReport:
    """The report from the rows ``Duties.access_report`` read."""
    by_actor: dict[str, ActorActivity] = {}
    for actor, what, count in found["activity"]:
        entry = by_actor.setdefault(actor, ActorActivity(actor=actor, total=0))
        entry.commands[str(what)] = int(count)
        entry.total += int(count)
    return AccessReport(
        since=since, until=until, entries=int(found["entries"]),
        activity=sorted(by_actor.values(), key=lambda a: (-a.total, a.actor)),
        refusals=int(found["refusals"]), refused=_lines(found["refused"]),
        break_glass=_lines(found["break_glass"]), approvals=_lines(found["approvals"]),
        new_actors=list(found["new_actors"]),
    )  # fmt: skip
