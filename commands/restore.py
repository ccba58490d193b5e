"""Restore the environment's database from a backup, reversibly, behind approval.

The plan: check the backup (sha256, complete zstd or gzip stream); take a safety backup of the current
database first (so a wrong restore can be undone with `restore <env> <safety id>`); stop the
services that use the database (the shutdown stages before the database's, stop timeouts
respected); stream the backup, decompressed, into `backup.database.restore` (argv, in the database
service's container or on the bot's host); start the stopped services again in startup order; verify
every health check. Any failure stops there, says at which step and what state everything is in, and
names the safety backup. A change: it waits for the environment's approvals.

Guide: 7.2 Restore procedure.
"""

from __future__ import annotations

import asyncio
import time

from pydantic import BaseModel, Field

from adapters.errors import OpsError
from adapters.store import StoredObject
from adapters.stores.pipeline import check_object, compression_of, store_to_process
from commands.base import ChangeArgs, CommandSpec, Ctx, EnvName, Plan, Result, Severity, Version
from commands.dbstream import BackupRow, backup_config, db_process, find, meter, size_text, step, take_backup, where
from commands.inspect import CheckRow, ServiceRow, service_rows
from commands.rollout import verify
from commands.stages import run_stages

#: how the plan names the decompression
_UNPACK = {"zstd": "zstd -d", "gzip": "gunzip"}


class RestoreArgs(ChangeArgs):
    """Arguments of ``restore``."""

    env: EnvName
    id: Version


class RestoreStep(BaseModel):
    """One step and how it went."""

    name: str
    ok: bool
    detail: str = ""
    #: seconds the step took
    duration_s: float | None = None


class RestoreResult(Result):
    """Each step, the safety backup, and where everything stands."""

    kind = "restore"
    environment: str
    backup_id: str
    ok: bool
    safety_backup: BackupRow | None = None
    steps: list[RestoreStep] = Field(default_factory=list)
    problem: str | None = None
    services: list[ServiceRow] = Field(default_factory=list)
    checks: list[CheckRow] = Field(default_factory=list)

    def severity(self) -> Severity:
        """Critical unless restored and verified."""
        return "ok" if self.ok else "critical"


def affected(ctx: Ctx, env: str) -> tuple[list[list[str]], list[list[str]]]:
    """The stages to stop (shutdown stages before the database's) and to start again (startup order)."""
    _, env_config = ctx.config.env(env)
    db = backup_config(ctx, env).database.service
    stop: list[list[str]] = []
    for stage in env_config.shutdown or []:
        if db is not None and db in stage:
            break
        stop.append(list(stage))
    stopped = {s for stage in stop for s in stage}
    start = [[s for s in stage if s in stopped] for stage in env_config.startup or []]
    start = [stage for stage in start if stage]
    started = {s for stage in start for s in stage}
    start += [[s for s in stage if s not in started] for stage in reversed(stop) if set(stage) - started]
    return stop, start


def expected_sha(o: StoredObject, record: dict[str, object] | None) -> set[str]:
    """The sha256 values recorded for the object (with it, and in opsbot's database)."""
    return {str(v) for v in (o.sha256, (record or {}).get("sha256")) if v}


async def plan(ctx: Ctx, args: RestoreArgs) -> Plan:
    """Check, safety backup, stop, restore, start, verify."""
    assert args.env is not None
    config = backup_config(ctx, args.env)
    found = await find(ctx, args.env, args.id)
    store = ctx.backends.store(args.env)
    stop, start = affected(ctx, args.env)
    names = {s for stage in stop for s in stage}
    rows = [r for r in await service_rows(ctx, args.env, stats=False) if r.name in names] if names else []
    _, env_config = ctx.config.env(args.env)
    compression = compression_of(found) or "zstd or gzip"
    stops = [f"stop {', '.join(stage)} (stop timeouts respected)" for stage in stop]
    stops = stops or ["stop nothing (no shutdown stage before the database's)"]
    return Plan(
        summary=f"restore the database of {args.env} from backup {found.id}",
        steps=[
            f"check backup {found.id} ({size_text(found.size)}): sha256 {found.sha256 or 'as recorded'}, "
            f"complete {compression}",
            f"safety backup of the current database to {store.url} (undo with restore {args.env} <its id>)",
            *stops,
            f"stream {found.location} through {_UNPACK.get(compression, compression)} into: "
            f"{' '.join(config.database.restore)} {where(ctx, args.env)}",
            *[f"start {', '.join(stage)}, wait until running and healthy" for stage in start],
        ],
        targets=[
            {"backup": found.id, "location": found.location, "size": found.size, "sha256": found.sha256},
            *({"service": r.name, "state": r.state} for r in rows),
        ],
        verify=[f"health check {h.name}" for h in env_config.health_checks],
    )


async def run(ctx: Ctx, args: RestoreArgs) -> RestoreResult:
    """Each step in turn; the first failure stops and says where. Cut off (the bot stopping): the audit
    log says after which step, and names the safety backup."""
    assert args.env is not None
    result = RestoreResult(environment=args.env, backup_id=args.id, ok=False)
    try:
        return await _steps(ctx, args, result)
    except asyncio.CancelledError:
        after = ", ".join(s.name for s in result.steps) or "nothing"
        safety = result.safety_backup
        undo = f"; the safety backup {safety.id} ({safety.location}) holds the database as it was" if safety else ""
        text = (f"cut off (the bot stopped) after: {after}; the database may be PARTLY restored and services "
                f"stopped{undo}")  # fmt: skip
        await asyncio.shield(step(ctx, f"restore {args.env} {args.id}", args.env, "restore-failed", text))
        raise


async def _steps(ctx: Ctx, args: RestoreArgs, result: RestoreResult) -> RestoreResult:
    assert args.env is not None
    env, command = args.env, f"restore {args.env} {args.id}"
    config = backup_config(ctx, env)
    store = ctx.backends.store(env)
    stop, start = affected(ctx, env)
    stopped = [s for stage in stop for s in stage]

    clock = [time.monotonic()]

    def took() -> float:  # since the step before ended
        now, before = time.monotonic(), clock[0]
        clock[0] = now
        return round(now - before, 3)

    async def done(name: str, detail: str) -> None:
        result.steps.append(RestoreStep(name=name, ok=True, detail=detail, duration_s=took()))
        await step(ctx, command, env, "restore-step", f"{name}: {detail}")

    async def failed(name: str, exc: OpsError | str, state: str) -> RestoreResult:
        why = ctx.redactor.text(str(exc))
        result.steps.append(RestoreStep(name=name, ok=False, detail=why, duration_s=took()))
        safety = result.safety_backup
        undo = (f" The safety backup {safety.id} ({safety.location}) holds the database as it was before: "
                f"`restore {env} {safety.id}` puts it back.") if safety else ""  # fmt: skip
        result.problem = f"step {len(result.steps)} ({name}) failed: {why}. {state}{undo}"
        result.services = await _rows(ctx, env)
        await step(ctx, command, env, "restore-failed", result.problem)
        return result

    found = await find(ctx, env, args.id)
    records = ctx.extras.get("backups")
    record = await records.get(env, found.id) if records is not None else None
    await ctx.progress(f"Step 1: checking backup {found.id}")
    read = await check_object(store, found.key, meter(ctx, f"Checking {found.id}"), compression_of(found))
    expected = expected_sha(found, record)
    if expected and expected != {read.sha256}:
        return await failed("check the backup", f"sha256 {read.sha256} does not match the recorded "
                            f"{', '.join(sorted(expected))}", "Nothing was changed.")  # fmt: skip
    if not read.stream_ok:
        return await failed("check the backup", read.stream_problem or "incomplete", "Nothing was changed.")
    await done("check the backup", f"sha256 {read.sha256}, {size_text(read.raw_size)} of dump")

    await ctx.progress("Step 2: safety backup of the current database")
    try:
        result.safety_backup = await take_backup(ctx, env, kind="safety", command=command)
    except OpsError as exc:
        return await failed("safety backup", exc, "Nothing was changed.")
    await done("safety backup", f"{result.safety_backup.id} at {result.safety_backup.location}")

    if stop:
        _, problem = await run_stages(ctx, env, "shutdown", stop)
        if problem is not None:
            return await failed("stop the services", problem, "The database was not touched; some services may "
                                "be stopped: `startup` starts them again.")  # fmt: skip
        await done("stop the services", ", ".join(stopped))

    await ctx.progress(f"Step {len(result.steps) + 1}: restoring {found.id}")
    m = meter(ctx, f"Restoring {found.id} into {env}")
    try:
        async with db_process(ctx, env, list(config.database.restore), stdin=True) as proc:
            await store_to_process(store, found.key, proc, m, sha256=read.sha256, compression=read.compression)
    except OpsError as exc:
        left = f"{', '.join(stopped)} stay stopped. " if stopped else ""
        return await failed("restore", exc, f"The database may be PARTLY restored ({size_text(m.raw)} of the dump "
                            f"were sent). {left}")  # fmt: skip
    await done("restore", f"{size_text(m.raw)} of dump from {found.location}")

    if start:
        _, problem = await run_stages(ctx, env, "startup", start)
        if problem is not None:
            return await failed("start the services", problem, "The database is restored.")
        await done("start the services", " then ".join(", ".join(stage) for stage in start))

    await ctx.progress("Verifying health")
    problem, rows, result.checks = await verify(ctx, env, stopped)
    if problem is not None:
        return await failed("verify", problem, "The database is restored and the services started.")
    await done("verify", "every health check passes")
    result.ok = True
    result.services = rows
    return result


async def _rows(ctx: Ctx, env: str) -> list[ServiceRow]:
    try:
        return await service_rows(ctx, env, stats=False)
    except OpsError:
        return []


SPEC = CommandSpec(
    name="restore",
    summary="safety backup, stop the services using the database, restore the dump, start them, verify",
    help=__doc__ or "",
    args=RestoreArgs,
    run=run,
    plan=plan,
    usage="restore <env> <id> [--dry-run] [--break-glass REASON]",
    positionals=("env", "id"),
    changes=True,
    guide="7.2",
    verb="Restoring",
    examples=("restore prod 20240131T020000Z-a1b2c3", "restore prod 20240131T020000Z-a1b2c3 --dry-run"),
    results=(RestoreResult,),
)
