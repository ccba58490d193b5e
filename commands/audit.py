"""Show the newest entries of the audit log.

Every request, refusal, start, success and failure is an entry, with its time, who, through which
door (slack, console, cli, scheduler), the environment, the command and its outcome. `--env` and
`--user` filter; `--limit` (default 20, at most 500) bounds the list. Only the entries of the
environments in which you may run `audit` are listed (each environment's own `access` applies). The log is hash-chained:
`opsbot audit verify` checks that no entry was altered, deleted or inserted.

Guide: 7.4 Records.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from commands.base import Args, CommandSpec, Ctx, EnvName, Result, UserId, visible_to_actor


class AuditArgs(Args):
    """Arguments of ``audit``."""

    env: EnvName | None = None
    user: UserId | None = None
    limit: int = Field(20, ge=1, le=500)


class AuditEntry(Result):
    """One audit entry."""

    id: int
    ts: str
    actor: str
    source: str
    environment: str | None
    command: str
    event: str
    outcome: str
    details: dict[str, Any] = Field(default_factory=dict)
    request_id: str | None = None
    prev_hash: str
    hash: str


class AuditResult(Result):
    """The newest entries, newest first."""

    kind = "audit"
    environment: str | None = None
    user: str | None = None
    entries: list[AuditEntry] = Field(default_factory=list)


async def run(ctx: Ctx, args: AuditArgs) -> AuditResult:
    """Read the entries."""
    hidden, known = await visible_to_actor(ctx)  # each environment's own access rules apply to its rows
    rows = await ctx.audit.entries(env=args.env, user=args.user, limit=args.limit, hidden=hidden, known=known)
    return AuditResult(environment=args.env, user=args.user, entries=[AuditEntry(**r) for r in rows])


SPEC = CommandSpec(
    name="audit",
    summary="the newest audit entries",
    help=__doc__ or "",
    args=AuditArgs,
    run=run,
    usage="audit [--env E] [--user U] [--limit N]",
    guide="7.4",
    verb="Reading the audit log",
    examples=("audit --env prod --limit 10",),
    results=(AuditResult,),
)
