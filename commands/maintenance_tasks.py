"""The scheduled maintenance tasks of guide 7.3 (``maintenance.tasks``): their plans, runs and results.

``db_maintenance`` runs its argv where the database commands run (``backup.database.service``'s
container, or the bot's host), streamed, bounded in time, with progress; while it runs it holds the
database's alerts (a row in ``maintenance_runs``). ``cert_check`` is in :mod:`commands.cert_check`.
``image_age`` reads each running image's build time against ``warning_days`` / ``critical_days``.
Every run is recorded (``maintenance <env>`` shows the last one) and its steps audited.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from adapters.errors import AdapterError, NotFound, UserError
from adapters.runtime import ImageDates
from bot.config.guide import MaintenanceTask
from commands.base import Ctx, Plan, Result, Severity, worst
from commands.dbstream import backup_config, db_process, where

if TYPE_CHECKING:
    from bot.config import OpsConfig

#: how long ``db_maintenance`` may run when its task gives no ``timeout``
DB_TIMEOUT = 3600.0
#: at most this much of a command's output is kept (its end)
MAX_OUTPUT = 4000
#: while the command runs, progress is said at least this often (seconds)
PROGRESS_EVERY = 5.0


class TaskRow(BaseModel):
    """One thing a task looked at (a certificate, an image, the command's run)."""

    name: str
    severity: Severity
    detail: str


class TaskResult(Result):
    """What one run of a maintenance task found or did."""

    kind = "maintenance_task"
    environment: str
    task: str
    outcome: Severity
    summary: str
    rows: list[TaskRow] = Field(default_factory=list)
    #: the end of the command's output (``db_maintenance``), redacted
    output: str | None = None
    duration_s: float = 0.0

    def severity(self) -> Severity:
        """The task's own verdict: the worst of its rows, critical when it could not run."""
        return self.outcome


def period_text(seconds: float) -> str:
    """A period for people: ``7d``, ``24h``, ``90min``, ``30s``."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def now_of(ctx: Ctx) -> datetime:
    """The time of this request (the engine's clock, which tests set)."""
    clock = ctx.extras.get("clock")
    moment: datetime = clock() if clock is not None else datetime.now(UTC)
    return moment


def task_of(config: OpsConfig, env: str, name: str) -> MaintenanceTask:
    """The task ``name`` of ``env`` in ``maintenance.tasks``; ``UserError`` naming the ones there are."""
    tasks = [t for t in (config.maintenance.tasks if config.maintenance else []) if t.env == env]
    for task in tasks:
        if task.task == name:
            return task
    known = ", ".join(t.task for t in tasks) or "none"
    raise UserError(f"{env} has no maintenance task {name} in ops.yml (maintenance.tasks of {env}: {known})")


def holds(ctx: Ctx, env: str, task: MaintenanceTask) -> list[str]:
    """The services whose alerts a run of ``task`` holds: the database's for ``db_maintenance``."""
    if task.task != "db_maintenance":
        return []
    _, env_config = ctx.config.env(env)
    service = env_config.backup.database.service if env_config.backup is not None else None
    return [service] if service else []


@contextlib.asynccontextmanager
async def recorded(ctx: Ctx, env: str, task: MaintenanceTask) -> AsyncIterator[Any]:
    """A run of ``task`` in ``maintenance_runs`` (holding its services) for the block; the block sets
    ``handle.severity`` and ``handle.summary``. Without the engine's book, a handle that records nothing."""
    book = ctx.extras.get("maintenance")
    if book is None:
        yield _Handle()
        return
    async with book.running(env, task.task, holds=holds(ctx, env, task), actor=ctx.actor, door=ctx.door,
                            request_id=ctx.request_id) as handle:  # fmt: skip
        yield handle


class _Handle:
    severity, summary = "critical", ""


# ---------------------------------------------------------------- db_maintenance


def db_plan(ctx: Ctx, env: str, task: MaintenanceTask) -> Plan:
    """The command, where it runs, its bound, and the alerts it holds."""
    assert task.command is not None
    backup_config(ctx, env)  # it runs where the database commands run: refused without them
    held = holds(ctx, env, task)
    steps = [f"run `{' '.join(task.command)}` {where(ctx, env)}, its output streamed, stopped after "
             f"{period_text(task.timeout or DB_TIMEOUT)}"]  # fmt: skip
    if held:
        steps.append(f"hold the alerts of {', '.join(held)} while it runs, release them after")
    return Plan(summary=f"db_maintenance in {env}", steps=steps,
                targets=[{"task": "db_maintenance", "command": list(task.command), "where": where(ctx, env)}],
                verify=["the command exits 0"])  # fmt: skip


async def db_maintenance(ctx: Ctx, env: str, task: MaintenanceTask) -> TaskResult:
    """Run the task's argv where the database commands run; streamed, bounded, with progress."""
    assert task.command is not None
    argv, limit, place = list(task.command), task.timeout or DB_TIMEOUT, where(ctx, env)
    shown = ctx.redactor.text(" ".join(argv))
    tail: collections.deque[str] = collections.deque(maxlen=60)
    started = time.monotonic()
    code: int | None = None
    stderr = ""
    problem: str | None = None
    await ctx.step("maintenance", env, "maintenance-step", f"db_maintenance: `{shown}` {place}")

    async def tick(proc: Any) -> None:  # a command may be silent for long (or write only to stderr)
        while True:
            await asyncio.sleep(PROGRESS_EVERY)
            last = (proc.stderr().splitlines() or [""])[-1] or (tail[-1] if tail else "")
            said = f": {ctx.redactor.text(last)[:200]}" if last else ""
            await ctx.progress(f"db_maintenance {env}: running for {time.monotonic() - started:.0f} s{said}")

    try:
        async with asyncio.timeout(limit), db_process(ctx, env, argv) as proc:
            ticker = asyncio.create_task(tick(proc))
            try:
                pending = b""
                while chunk := await proc.read():
                    *lines, pending = (pending + chunk).split(b"\n")
                    for raw in lines:
                        line = raw.decode("utf-8", errors="replace").rstrip("\r")
                        tail.append(line)
                        await ctx.progress(f"db_maintenance {env} ({time.monotonic() - started:.0f} s): "
                                           f"{ctx.redactor.text(line)[:200]}")  # fmt: skip
                if pending:
                    tail.append(pending.decode("utf-8", errors="replace"))
                code, stderr = await proc.wait(), proc.stderr()
            finally:
                ticker.cancel()
    except TimeoutError:
        problem = (f"`{shown}` did not finish within {period_text(limit)}: it was stopped (in a container the "
                   "engine cannot kill an exec: the command may still be running there)")  # fmt: skip
    except AdapterError as exc:
        problem = f"`{shown}` could not run {place}: {exc}"
    duration = time.monotonic() - started
    output = ctx.redactor.text("\n".join([*tail, *([stderr] if stderr else [])]).strip())[-MAX_OUTPUT:] or None
    if problem is None and code != 0:
        said = (stderr or (tail[-1] if tail else "")).strip().splitlines()
        if code in (126, 127) and "not found" in (output or "").lower():
            problem = f"{argv[0]} is not found {place} (exit {code}): check the task's command in ops.yml"
        else:
            problem = f"`{shown}` exited with {code}" + (f": {ctx.redactor.text(said[-1])[:300]}" if said else "")
    if problem is not None:
        row = TaskRow(name=argv[0], severity="critical", detail=problem)
        return TaskResult(environment=env, task="db_maintenance", outcome="critical", summary=problem, rows=[row],
                          output=output, duration_s=round(duration, 3))  # fmt: skip
    summary = f"`{shown}` done {place} in {duration:.1f} s"
    return TaskResult(environment=env, task="db_maintenance", outcome="ok", summary=summary,
                      rows=[TaskRow(name=argv[0], severity="ok", detail=summary)], output=output,
                      duration_s=round(duration, 3))  # fmt: skip


# ---------------------------------------------------------------- image_age


async def _running_images(ctx: Ctx, env: str) -> dict[str, tuple[str, str]]:
    """service -> (image as named, image id or name) of each service's running containers."""
    found: dict[str, tuple[str, str]] = {}
    for c in await ctx.backends.runtime(env).containers():
        if c.state == "running" and c.image and c.service not in found:
            found[c.service] = (c.image, c.image_id or c.image)
    return found


async def image_plan(ctx: Ctx, env: str, task: MaintenanceTask) -> Plan:
    """The running images whose build time is read."""
    images = await _running_images(ctx, env)
    return Plan(summary=f"image_age in {env}",
                steps=[f"read when each running image was built: warning from {task.warning_days} days, critical "
                       f"from {task.critical_days} days"] + [f"{s}: {image}" for s, (image, _) in images.items()],
                targets=[{"service": s, "image": image} for s, (image, _) in images.items()])  # fmt: skip


async def image_age(ctx: Ctx, env: str, task: MaintenanceTask) -> TaskResult:
    """Each running image's age against the task's thresholds (how "security patches monthly" shows up)."""
    assert task.warning_days is not None and task.critical_days is not None
    runtime = ctx.backends.runtime(env)
    if not isinstance(runtime, ImageDates):
        raise UserError(f"{runtime.description} cannot tell when an image was built: image_age cannot run there")
    started, now = time.monotonic(), now_of(ctx)
    rows: list[TaskRow] = []
    for service, (image, ref) in sorted((await _running_images(ctx, env)).items()):
        try:
            built = await runtime.image_created(ref)
        except NotFound:
            rows.append(TaskRow(name=service, severity="critical", detail=f"{image}: not on the engine"))
            continue
        if built is None:
            rows.append(TaskRow(name=service, severity="warning", detail=f"{image}: the image does not say when "
                                "it was built"))  # fmt: skip
            continue
        days = (now - built).total_seconds() / 86400
        severity: Severity = "ok"
        if days >= task.critical_days:
            severity = "critical"
        elif days >= task.warning_days:
            severity = "warning"
        rows.append(TaskRow(name=service, severity=severity,
                            detail=f"{image}: built {built:%Y-%m-%d}, {days:.0f} days ago"))  # fmt: skip
    if not rows:
        rows.append(TaskRow(name=env, severity="warning", detail=f"no running container in {env}: no image to check"))
    outcome = worst(r.severity for r in rows)
    counts = collections.Counter(r.severity for r in rows)
    summary = f"{len(rows)} image(s): " + ", ".join(f"{counts[s]} {s}" for s in ("critical", "warning", "ok")
                                                      if counts[s])  # fmt: skip
    return TaskResult(environment=env, task="image_age", outcome=outcome, summary=summary, rows=rows,
                      duration_s=round(time.monotonic() - started, 3))  # fmt: skip
