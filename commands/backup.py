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

`backup <env> --files` backs up the file storage instead (`backup.files`: `from` and `to`, both
`s3://bucket/prefix/`): every object of `from` missing under `to` or different there (size, ETag) is
copied server side, many at a time, with progress in objects and bytes; then both listings are compared.
A second run with nothing changed copies nothing. It only adds, so it needs no approval, unless
`--delete` is given: the objects only the target has are then deleted too, after approval (never when
the source is empty or a copy failed).

Guide: 7.1 Backup procedure.
"""

from __future__ import annotations

from pydantic import Field

from adapters.errors import UserError
from adapters.stores.codecs import suffix
from commands.base import ChangeArgs, CommandSpec, Ctx, EnvName, Plan, Result
from commands.dbstream import BackupRow, backup_config, retention, take_backup, where
from commands.files_backup import FilesBackupResult, files_plan, run_files


class BackupArgs(ChangeArgs):
    """Arguments of ``backup``: ``--files`` for the file storage, ``--delete`` with it."""

    env: EnvName
    files: bool = False
    delete: bool = False

    def model_post_init(self, context: object) -> None:
        """``--delete`` goes with ``--files``."""
        super().model_post_init(context)
        if self.delete and not self.files:
            raise UserError("--delete goes with --files (backup <env> --files --delete): a database backup "
                            "deletes only by retention_days")  # fmt: skip

    def shows_environment(self) -> bool:
        """``--files`` shows only S3's listings and answers: no container's secrets to learn first."""
        return not self.files

    def needs_approval(self, spec_approval: bool) -> bool:
        """``--files --delete`` deletes in the backup: it waits for approval like any other change."""
        return spec_approval or self.delete


class BackupResult(Result):
    """The stored backup and the old ones deleted by retention."""

    kind = "backup"
    environment: str
    backup: BackupRow
    deleted: list[str] = Field(default_factory=list)


async def plan(ctx: Ctx, args: BackupArgs) -> Plan:
    """Dump where, store where, retention; or the copy of the file storage."""
    assert args.env is not None
    if args.files:
        return await files_plan(ctx, args.env, delete=args.delete, dry_run=args.dry_run)
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


async def run(ctx: Ctx, args: BackupArgs) -> BackupResult | FilesBackupResult:
    """Back up, then apply retention; or copy the file storage."""
    assert args.env is not None
    if args.files:
        words = f"backup {args.env} --files" + (" --delete" if args.delete else "")
        return await run_files(ctx, args.env, delete=args.delete, command=words)
    row = await take_backup(ctx, args.env)
    deleted = await retention(ctx, args.env, f"backup {args.env}")
    return BackupResult(environment=args.env, backup=row, deleted=deleted)


SPEC = CommandSpec(
    name="backup",
    summary="dump the database and store it (backup.store), with size and sha256; --files: sync the file storage",
    help=__doc__ or "",
    args=BackupArgs,
    run=run,
    plan=plan,
    usage="backup <env> [--files [--delete]] [--dry-run]",
    positionals=("env",),
    changes=True,
    approval=False,
    guide="7.1",
    verb="Backing up",
    examples=("backup prod", "backup prod --dry-run", "backup prod --files", "backup prod --files --delete"),
    results=(BackupResult, FilesBackupResult),
)
