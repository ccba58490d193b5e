"""Stored backups of the environment, newest first, read from the store itself.

A backup put in the store by hand (under `<prefix><env>/db/`) is listed too; its sha256 is shown
when opsbot recorded one (with the object, or in its own database).

Guide: 6.1 Daily operations, 7.1 Backup procedure.
"""

from __future__ import annotations

from pydantic import Field

from adapters.store import db_prefix
from commands.base import Args, CommandSpec, Ctx, EnvName, Result
from commands.dbstream import BackupRow, backup_config


class BackupsArgs(Args):
    """Arguments of ``backups``."""

    env: EnvName


class BackupsResult(Result):
    """The backups, newest first."""

    kind = "backups"
    environment: str
    store: str = ""
    backups: list[BackupRow] = Field(default_factory=list)


async def run(ctx: Ctx, args: BackupsArgs) -> BackupsResult:
    """List the store."""
    assert args.env is not None
    backup_config(ctx, args.env)
    store = ctx.backends.store(args.env)
    rows = [BackupRow.of(o) for o in await store.list(db_prefix(store.prefix, args.env))]
    records = ctx.extras.get("backups")
    for i, row in enumerate(rows):
        if row.sha256 is None and records is not None:
            known = await records.get(args.env, row.id)
            if known and known.get("size") == row.size:
                rows[i] = row.model_copy(update={"sha256": known["sha256"], "requester": known["requester"]})
    return BackupsResult(environment=args.env, store=store.url, backups=rows)


SPEC = CommandSpec(
    name="backups",
    summary="stored backups, newest first",
    help=__doc__ or "",
    args=BackupsArgs,
    run=run,
    usage="backups <env>",
    positionals=("env",),
    guide="6.1, 7.1",
    verb="Listing the backups of",
    examples=("backups prod",),
    results=(BackupsResult,),
)
