"""Deploys, rollbacks and flag changes of an environment, newest first, with who requested and approved.

Guide: 5.3 Rollback procedure (the record it reads).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from commands.base import Args, CommandSpec, Ctx, EnvName, Result, env_field


class HistoryArgs(Args):
    """Arguments of ``history``."""

    env: EnvName = env_field()
    limit: int = Field(20, ge=1, le=200)


class HistoryResult(Result):
    """The deploy history."""

    kind = "history"
    environment: str
    deploys: list[dict[str, Any]] = Field(default_factory=list)


async def run(ctx: Ctx, args: HistoryArgs) -> HistoryResult:
    """Read it."""
    assert args.env is not None
    rows = await ctx.extras["deploys"].list(args.env, limit=args.limit)
    return HistoryResult(environment=args.env, deploys=rows)


SPEC = CommandSpec(
    name="history",
    summary="deploys and rollbacks of the environment, newest first, with who requested and approved",
    help=__doc__ or "",
    args=HistoryArgs,
    run=run,
    usage="history [env] [--limit N]",
    positionals=("env",),
    guide="5.3",
    verb="Reading the history of",
    examples=("history prod",),
    results=(HistoryResult,),
    learns_secrets="never",  # only opsbot's own records
)
