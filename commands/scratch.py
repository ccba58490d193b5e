"""``verify-backup --restore-test``: restore a backup into a scratch database, query it, drop it.

The commands are made from `backup.database.restore` when it is `psql` (PostgreSQL): the same
connection options, the last argument (the database name) replaced. Each runs where the database
commands run (in the service's container or on the bot's host), as argv, never a shell.
"""

from __future__ import annotations

import os
import secrets

from adapters.errors import AdapterError, OpsError
from adapters.store import StoredObject
from adapters.stores.pipeline import DumpFailed, failure, store_to_process
from commands.base import Ctx
from commands.dbstream import backup_config, db_process, meter

#: the sanity query: how many tables the restored database has outside the system schemas
SANITY = ("SELECT count(*) FROM information_schema.tables "
          "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')")  # fmt: skip


def scratch_commands(restore: list[str], scratch: str) -> dict[str, list[str]]:
    """create / restore / check / drop argv for a scratch database, from a ``psql`` restore argv."""
    if os.path.basename(restore[0]) != "psql" or len(restore) < 2 or restore[-1].startswith("-"):
        raise AdapterError(
            "--restore-test needs backup.database.restore to be `psql ... <database>` (PostgreSQL) "
            "ending with the database name"
        )
    psql, options, database = restore[0], restore[1:-1], restore[-1]
    return {
        "create": [psql, *options, "-d", database, "-c", f'CREATE DATABASE "{scratch}"'],
        "restore": [psql, *options, "-d", scratch],
        "check": [psql, *options, "-tA", "-d", scratch, "-c", SANITY],
        "drop": [psql, *options, "-d", database, "-c", f'DROP DATABASE IF EXISTS "{scratch}"'],
    }


async def _run(ctx: Ctx, env: str, argv: list[str]) -> str:
    """Run a short command; its stdout (``DumpFailed`` with stderr when it fails)."""
    async with db_process(ctx, env, argv) as proc:
        out = bytearray()
        while chunk := await proc.read():
            if len(out) < 65536:
                out += chunk
        code = await proc.wait()
        if code != 0:
            raise DumpFailed(failure(proc, f"{proc.description} exited with {code}"))
        return out.decode("utf-8", errors="replace").strip()


async def restore_test(ctx: Ctx, env: str, backup: StoredObject) -> str:
    """Create, restore, query, drop; what the query found (``OpsError`` saying which step failed)."""
    config = backup_config(ctx, env)
    scratch = f"opsbot_restore_test_{secrets.token_hex(4)}"
    argv = scratch_commands(list(config.database.restore), scratch)
    await ctx.progress(f"Restore test of {backup.id}: creating the scratch database {scratch}")
    await _run(ctx, env, argv["create"])
    try:
        m = meter(ctx, f"Restore test of {backup.id} into {scratch}")
        try:
            async with db_process(ctx, env, argv["restore"], stdin=True) as proc:
                await store_to_process(ctx.backends.store(env), backup.key, proc, m)
        except OpsError as exc:
            raise type(exc)(f"restoring into the scratch database failed: {exc}") from exc
        tables = await _run(ctx, env, argv["check"])
        if not tables.isdigit() or int(tables) == 0:
            raise AdapterError(f"the restored scratch database has no tables (sanity query answered {tables!r})")
        return f"restored {m.raw} bytes into {scratch}: {tables} tables; dropped it"
    finally:
        try:
            await _run(ctx, env, argv["drop"])
        except OpsError as exc:
            await ctx.progress(f"could not drop the scratch database {scratch}: {exc}")
