"""List the approvals that wait, with their plan, requester, approvals so far and expiry.

Only the approvals of the environments in which you may run `pending` are listed (each
environment's own `access` applies).

Guide: -
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from commands.base import Args, CommandSpec, Ctx, EnvName, Result, visible_to_actor


class PendingArgs(Args):
    """Arguments of ``pending``."""

    env: EnvName | None = None


class PendingResult(Result):
    """The approvals waiting, oldest first."""

    kind = "pending"
    environment: str | None = None
    approvals: list[dict[str, Any]] = Field(default_factory=list)


async def run(ctx: Ctx, args: PendingArgs) -> PendingResult:
    """Read them."""
    approvals = ctx.extras["approvals"]
    hidden, known = await visible_to_actor(ctx)  # each environment's own access rules apply to its approvals
    waiting = [
        a
        for a in await approvals.pending(args.env)
        if a.environment is None or (a.environment not in hidden and (known is None or a.environment in known))
    ]
    return PendingResult(environment=args.env, approvals=[{**a.summary(), "plan": a.plan} for a in waiting])


SPEC = CommandSpec(
    name="pending",
    summary="approvals waiting, with plan, requester, approvals so far, expiry",
    help=__doc__ or "",
    args=PendingArgs,
    run=run,
    usage="pending [env]",
    positionals=("env",),
    verb="Listing approvals",
    examples=("pending prod",),
    results=(PendingResult,),
    learns_secrets="never",  # only opsbot's own records
)
