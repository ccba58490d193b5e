"""List the approvals that wait, with their plan, requester, approvals so far and expiry.

Guide: -
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from commands.base import Args, CommandSpec, Ctx, EnvName, Result


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
    waiting = await approvals.pending(args.env)
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
)
