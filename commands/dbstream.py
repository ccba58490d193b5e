"""What ``backup``, ``backups``, ``verify-backup`` and ``restore`` share: where the database commands run,
the store, progress, audit steps, and taking a backup (with retention afterwards).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from adapters.errors import AdapterError, NotFound, OpsError, UserError
from adapters.procstream import ProcessStream, StreamingRuntime, host_process
from adapters.store import BackupStore, StoredObject, backup_key, db_prefix, new_backup_id
from adapters.stores.codecs import suffix
from adapters.stores.pipeline import Meter, Progress, compression_of, dump_to_store
from commands.base import Ctx

if TYPE_CHECKING:
    from bot.config.models import BackupConfig


class BackupRow(BaseModel):
    """One backup, as listed: the JSON keys of the contract plus what opsbot recorded with it."""

    id: str
    created_at: datetime
    size: int
    sha256: str | None = None
    location: str
    kind: str | None = None
    requester: str | None = None
    command: str | None = None
    duration_s: float | None = None
    #: ``zstd`` or ``gzip`` (from the object's name or metadata); None when neither says
    compression: str | None = None

    @classmethod
    def of(cls, o: StoredObject) -> BackupRow:
        """From a store's object and its metadata."""
        m = o.metadata
        return cls(id=o.id, created_at=o.created_at, size=o.size, sha256=o.sha256, location=o.location,
                   kind=m.get("kind"), requester=m.get("requester"), command=m.get("command"),
                   duration_s=_float(m.get("duration")), compression=compression_of(o))  # fmt: skip


def _float(value: str | None) -> float | None:
    try:
        return None if value is None else float(value)
    except ValueError:
        return None


def backup_config(ctx: Ctx, env: str) -> BackupConfig:
    """The environment's ``backup`` section; ``UserError`` when there is none."""
    _, env_config = ctx.config.env(env)
    if env_config.backup is None:
        raise UserError(f"environments.{env}.backup is not set in ops.yml: {env} has no backups")
    return env_config.backup


def where(ctx: Ctx, env: str) -> str:
    """Where the database commands run, for plans: ``in service postgres`` or ``on the bot's host``."""
    service = backup_config(ctx, env).database.service
    return f"in service {service}" if service else "on the bot's host"


@contextlib.asynccontextmanager
async def db_process(ctx: Ctx, env: str, argv: list[str], *, stdin: bool = False) -> AsyncIterator[ProcessStream]:
    """Run ``argv`` (never a shell) where the database commands of ``env`` run, streamed."""
    service = backup_config(ctx, env).database.service
    if service is None:
        async with host_process(argv, stdin=stdin) as proc:
            yield proc
        return
    runtime = ctx.backends.runtime(env)
    if not isinstance(runtime, StreamingRuntime):
        raise AdapterError(f"{runtime.description} cannot stream a command in a container: no backup there yet")
    async with runtime.exec_stream(service, list(argv), stdin=stdin) as proc:
        yield proc


def size_text(n: float) -> str:
    """Bytes for people: ``12.3 MiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


def reporter(ctx: Ctx, what: str, meter_of: list[Meter]) -> Progress:
    """A progress callback: ``<what>: 120.0 MiB read, 24.1 MiB stored (40.0 MiB/s)``."""

    async def report(raw: int, stored: int) -> None:
        rate = meter_of[0].rate() if meter_of else 0.0
        await ctx.progress(f"{what}: {size_text(raw)} read, {size_text(stored)} stored ({size_text(rate)}/s)")

    return report


def meter(ctx: Ctx, what: str) -> Meter:
    """A meter whose progress goes to ``ctx.progress`` (bytes so far, rate)."""
    box: list[Meter] = []
    m = Meter(reporter(ctx, what, box))
    box.append(m)
    return m


async def step(ctx: Ctx, command: str, env: str, event: str, outcome: str, **details: Any) -> None:
    """Audit one step of a backup procedure (when the engine provides the hook)."""
    hook = ctx.extras.get("audit_step")
    if hook is not None:
        await hook(command, event, outcome, env, details or None)


async def find(ctx: Ctx, env: str, backup_id: str | None) -> StoredObject:
    """The backup ``backup_id`` of ``env`` (default: the newest); ``NotFound`` when absent."""
    store = ctx.backends.store(env)
    if backup_id is not None:
        for o in await store.list(db_prefix(store.prefix, env)):
            if o.id == backup_id:
                return o
        raise NotFound(f"no backup {backup_id} of {env} in {store.url}")
    found = await store.list(db_prefix(store.prefix, env))
    if not found:
        raise NotFound(f"no backup of {env} in {store.url} yet")
    return found[0]


async def take_backup(ctx: Ctx, env: str, *, kind: str = "backup", command: str | None = None) -> BackupRow:
    """Dump the database of ``env`` into its store (see ``backup``); recorded in the database and audited."""
    config = backup_config(ctx, env)
    store: BackupStore = ctx.backends.store(env)
    backup_id = new_backup_id()
    key = backup_key(store.prefix, env, backup_id, suffix(config.compression))
    dump = list(config.database.dump)
    command = command or f"backup {env}"
    requester = (ctx.extras.get("approval") or {}).get("requester", ctx.actor)
    started, t0 = time.time(), time.monotonic()
    shown_dump = ctx.redactor.text(" ".join(dump))  # kept with the object and in the database: no secrets
    metadata = {"command": shown_dump, "requester": requester, "kind": kind, "compression": config.compression,
                "created-at": datetime.fromtimestamp(started, UTC).isoformat()}  # fmt: skip
    label = "Safety backup" if kind == "safety" else "Backing up"
    m = meter(ctx, f"{label} {env}")
    await step(ctx, command, env, "backup-started", f"{kind} {backup_id}: {' '.join(dump)} {where(ctx, env)}",
               key=key, store=store.url)  # fmt: skip
    await ctx.progress(f"{label} {env}: `{' '.join(dump)}` {where(ctx, env)} -> {store.url}")
    record: dict[str, Any] = {"backup_id": backup_id, "environment": env, "kind": kind, "key": key,
                              "command": shown_dump, "requester": requester, "started_at": started,
                              "request_id": ctx.request_id}  # fmt: skip

    def final() -> dict[str, str]:
        return {"duration": f"{time.monotonic() - t0:.3f}"}

    try:
        async with db_process(ctx, env, dump) as proc:
            put = await dump_to_store(proc, store, key, metadata, final, m, config.compression)
    except OpsError as exc:
        text = ctx.redactor.text(str(exc))
        record |= {"location": store.location(key), "outcome": "failed",
                   "detail": text, "duration": time.monotonic() - t0}  # fmt: skip
        await _record(ctx, record)
        await step(ctx, command, env, "backup-failed", f"{kind} {backup_id}: {text}")
        raise type(exc)(f"the backup of {env} failed, nothing was stored: {text}") from exc
    duration = time.monotonic() - t0
    record |= {"location": put.location, "size": put.size, "sha256": put.sha256, "outcome": "stored",
               "duration": duration}  # fmt: skip
    await _record(ctx, record)
    await step(ctx, command, env, "backup-stored",
               f"{kind} {backup_id}: {size_text(put.size)} sha256 {put.sha256} in {duration:.1f}s",
               location=put.location, size=put.size, sha256=put.sha256, dumped=m.raw)  # fmt: skip
    return BackupRow(id=backup_id, created_at=datetime.fromtimestamp(started, UTC), size=put.size, sha256=put.sha256,
                     location=put.location, kind=kind, requester=requester, command=shown_dump,
                     duration_s=round(duration, 3), compression=config.compression)  # fmt: skip


async def _record(ctx: Ctx, record: dict[str, Any]) -> None:
    backups = ctx.extras.get("backups")
    if backups is not None:
        await backups.record(record)


async def retention(ctx: Ctx, env: str, command: str) -> list[str]:
    """Delete the backups older than ``retention_days``, never the newest; the ids deleted."""
    config = backup_config(ctx, env)
    store = ctx.backends.store(env)
    found = await store.list(db_prefix(store.prefix, env))
    cutoff = datetime.now(UTC) - timedelta(days=config.retention_days)
    deleted = []
    for o in found[1:]:
        if o.created_at < cutoff:
            await store.delete(o.key)
            deleted.append(o.id)
            await step(ctx, command, env, "backup-deleted",
                       f"{o.id} (older than {config.retention_days} days)", location=o.location)  # fmt: skip
    return deleted
