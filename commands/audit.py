"""Show the newest entries of the audit log.

Every request, refusal, start, success and failure is an entry, with its time, who, through which
door (slack, console, cli, scheduler), the environment, the command and its outcome. `--env` and
`--user` filter; `--limit` (default 20, at most 500) bounds the list. Only the entries of the
environments in which you may run `audit` are listed (each environment's own `access` applies). The
log is hash-chained: `audit verify` (or `opsbot audit verify`) walks the whole chain and names the
first entry that was altered, deleted or inserted.

Guide: 7.4 Records.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from commands.base import Args, CommandSpec, Ctx, EnvName, Result, Severity, UserId, visible_to_actor


class AuditArgs(Args):
    """Arguments of ``audit``."""

    action: Literal["verify"] | None = None
    env: EnvName | None = None
    user: UserId | None = None
    limit: int = Field(20, ge=1, le=500)

    @model_validator(mode="after")
    def _verify_alone(self) -> AuditArgs:
        if self.action == "verify" and self.model_fields_set & {"env", "user", "limit"}:
            raise ValueError("audit verify walks the whole log: it takes no --env, --user or --limit")
        return self


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


class ChainCheck(BaseModel):
    """What walking the hash chain found: intact, or the first entry that does not match and why."""

    ok: bool
    rows: int
    bad_id: int | None = None
    reason: str = ""


class AuditResult(Result):
    """The newest entries, newest first; with ``verify``, what walking the chain found."""

    kind = "audit"
    environment: str | None = None
    user: str | None = None
    entries: list[AuditEntry] = Field(default_factory=list)
    verification: ChainCheck | None = None

    def severity(self) -> Severity:
        """Critical when the chain is broken."""
        return "critical" if self.verification is not None and not self.verification.ok else "ok"


async def run(ctx: Ctx, args: AuditArgs) -> AuditResult:
    """Read the entries (those of the environments the caller may see), or walk the chain."""
    if args.action == "verify":
        found = await ctx.audit.verify()
        check = ChainCheck(ok=found.ok, rows=found.rows, bad_id=found.bad_id, reason=found.reason)
        return AuditResult(verification=check)
    hidden, known = await visible_to_actor(ctx)  # each environment's own access rules apply to its rows
    rows = await ctx.audit.entries(env=args.env, user=args.user, limit=args.limit, hidden=hidden, known=known)
    return AuditResult(environment=args.env, user=args.user, entries=[AuditEntry(**r) for r in rows])


SPEC = CommandSpec(
    name="audit",
    summary="the newest audit entries",
    help=__doc__ or "",
    args=AuditArgs,
    run=run,
    usage="audit [verify] [--env E] [--user U] [--limit N]",
    positionals=("action",),
    guide="7.4",
    verb="Reading the audit log",
    examples=("audit --env prod --limit 10", "audit verify"),
    results=(AuditResult,),
    learns_secrets="never",  # only opsbot's own records
)
