"""Back up the environment's database: dump, compress (zstd, or gzip), store, with size and sha256.

Runs `backup.database.dump` (argv, never a shell) inside the `backup.database.service` container
through the Docker exec stream, or on the bot's host when no service is named, and streams its
output through zstd (`backup.compression: gzip`: gzip) into `backup.store` (`s3://bucket/prefix/`
by multipart upload, or `file:///path/`): no temporary file, memory bounded whatever the size. The
object is `<prefix><env>/db/<UTC timestamp>-<short id>.sql.zst` (`.sql.gz`); its size, sha256,
compression, the dump command, the duration and the requester are kept with it and in opsbot's
database. A dump that exits non-zero or writes nothing leaves no object, and the answer shows the
tail of its stderr. Afterwards, backups older than `retention_days` are deleted (never the newest).
An operator runs it at once: it only adds a backup, so it needs no approval; `--dry-run` shows the plan.

Guide: 7.1 Backup procedure.
"""

from __future__ import annotations

from pydantic import Field

from adapters.stores.codecs import suffix
from commands.base import ChangeArgs, CommandSpec, Ctx, EnvName, Plan, Result
from commands.dbstream import BackupRow, backup_config, retention, take_backup, where


class BackupArgs(ChangeArgs):
    """Arguments of ``backup``."""

    env: EnvName


class BackupResult(Result):
    """The stored backup and the old ones deleted by retention."""

    kind = "backup"
    environment: str
    backup: BackupRow
    deleted: list[str] = Field(default_factory=list)


async def plan(ctx: Ctx, args: BackupArgs) -> Plan:
    """Dump where, store where, retention."""
    assert args.env is not None
    config = backup_config(ctx, args.env)
    store = ctx.backends.store(args.env)
    return Plan(
        summary=f"back up the database of {args.env} to {store.url}",
        steps=[
            f"dump: {' '.join(config.database.dump)} {where(ctx, args.env)}",
            f"{config.compression} and sha256 on the way, streamed to "
            f"{store.url}{args.env}/db/<UTC time>-<id>{suffix(config.compression)}",
            f"delete backups older than {config.retention_days} days (never the newest)",
        ],
        targets=[{"store": store.url}],
    )


async def run(ctx: Ctx, args: BackupArgs) -> BackupResult:
    """Back up, then apply retention."""
    assert args.env is not None
    row = await take_backup(ctx, args.env)
    deleted = await retention(ctx, args.env, f"backup {args.env}")
    return BackupResult(environment=args.env, backup=row, deleted=deleted)


SPEC = CommandSpec(
    name="backup",
    summary="dump the database and store it (backup.store), with size and sha256",
    help=__doc__ or "",
    args=BackupArgs,
    run=run,
    plan=plan,
    usage="backup <env> [--dry-run]",
    positionals=("env",),
    changes=True,
    approval=False,
    guide="7.1",
    verb="Backing up",
    examples=("backup prod", "backup prod --dry-run"),
    results=(BackupResult,),
)
