"""Maintenance windows and tasks (guide 7.3); with a task, run it now.

`maintenance <env>` shows the environment's windows (`maintenance.windows`, read in
`alerting.timezone`): whether one is open now and until when, when the next one starts; and its
tasks (`maintenance.tasks`) with their period, last run (when, by whom, how it went) and next run.
Outside a window, every change in an environment with windows (deploy, rollback, restart, flag,
startup, shutdown, restore, a maintenance task) is refused with the next window's start, unless an
admin gives `--break-glass "reason"` (audited, posted to the critical alert channel); inside one, it
follows the environment's approval rules.

`maintenance <env> <task>` runs one task now: inside a window at once (an operator, no approvers),
outside one refused like any change (an environment without windows: the environment's approvals).
`--dry-run` shows the plan. The scheduler runs each task every `every`, inside a window, as
`scheduler`; every run is reported to the alert channel of its severity. Tasks: `db_maintenance`
(its argv in `backup.database.service`'s container, e.g. `vacuumdb --all --analyze`, streamed and
bounded by `timeout`, default 1h; the database's alerts are held while it runs), `cert_check` (the
TLS certificates of the environment's https URLs: expiry against `warning_days`/`critical_days`,
chain, host name, self-signed), `image_age` (each running image's build time against
`warning_days`/`critical_days`).

Guide: 7.3 Scheduled maintenance.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from bot.config.windows import describe, open_at, timezone_of, window_state, windows_of
from commands.base import ChangeArgs, CommandSpec, Ctx, EnvName, Plan, Result
from commands.cert_check import cert_check, cert_plan
from commands.maintenance_tasks import (
    TaskResult,
    db_maintenance,
    db_plan,
    image_age,
    image_plan,
    now_of,
    period_text,
    recorded,
    task_of,
)

TaskName = Literal["db_maintenance", "cert_check", "image_age"]


class MaintenanceArgs(ChangeArgs):
    """Arguments of ``maintenance``."""

    env: EnvName
    task: TaskName | None = None

    @field_validator("task")
    @classmethod
    def _configured(cls, value: str | None, info: ValidationInfo) -> str | None:
        context = info.context or {}
        if value is not None and "config" in context and info.data.get("env"):
            task_of(context["config"], info.data["env"], value)  # UserError naming the known tasks
        return value

    def makes_change(self) -> bool:
        """Only running a task changes something; the listing is read-only."""
        return self.task is not None


class TaskInfo(BaseModel):
    """One task of the environment: its period, last run and next run."""

    task: str
    every: str
    running: bool = False
    last_run: datetime | None = None
    last_severity: str | None = None
    last_summary: str | None = None
    last_actor: str | None = None
    next_run: datetime | None = None


class MaintenanceResult(Result):
    """The windows of an environment and its tasks."""

    kind = "maintenance"
    environment: str
    timezone: str
    now: datetime
    windows: list[str] = Field(default_factory=list)
    open: bool = False
    closes_at: datetime | None = None
    next_start: datetime | None = None
    tasks: list[TaskInfo] = Field(default_factory=list)


async def plan(ctx: Ctx, args: MaintenanceArgs) -> Plan:
    """The plan of the task to run now."""
    assert args.env is not None and args.task is not None
    task = task_of(ctx.config, args.env, args.task)
    if task.task == "db_maintenance":
        return db_plan(ctx, args.env, task)
    if task.task == "cert_check":
        return cert_plan(ctx, args.env, task)
    return await image_plan(ctx, args.env, task)


async def run(ctx: Ctx, args: MaintenanceArgs) -> Result:
    """The listing, or one task run now (recorded, its steps audited)."""
    assert args.env is not None
    if args.task is None:
        return await listing(ctx, args.env)
    env, task = args.env, task_of(ctx.config, args.env, args.task)
    await ctx.step("maintenance", env, "maintenance-started", f"{task.task} by {ctx.actor} ({ctx.door})")
    async with recorded(ctx, env, task) as handle:
        if task.task == "db_maintenance":
            result = await db_maintenance(ctx, env, task)
        elif task.task == "cert_check":
            result = await cert_check(ctx, env, task)
        else:
            result = await image_age(ctx, env, task)
        handle.severity, handle.summary = result.outcome, ctx.redactor.text(result.summary)
    await ctx.step("maintenance", env, "maintenance-finished", f"{task.task}: {result.outcome}: {result.summary}",
                   task=task.task, severity=result.outcome)  # fmt: skip
    return result


async def listing(ctx: Ctx, env: str) -> MaintenanceResult:
    """Windows (open now or not, next start) and tasks (last and next run)."""
    now = now_of(ctx)
    state = window_state(ctx.config, env, now)
    book = ctx.extras.get("maintenance")
    schedule: dict[str, dict[str, Any]] = await book.schedule(env) if book is not None else {}
    running = {r["task"] for r in await book.active(env)} if book is not None else set()
    tasks = []
    for task in (t for t in (ctx.config.maintenance.tasks if ctx.config.maintenance else []) if t.env == env):
        last = await book.last(env, task.task) if book is not None else None
        row = schedule.get(task.task)
        due = datetime.fromtimestamp(row["next_due"], UTC) if row is not None else now
        tasks.append(TaskInfo(
            task=task.task, every=period_text(task.every), running=task.task in running,
            last_run=datetime.fromtimestamp(last["started_at"], UTC) if last else None,
            last_severity=last["severity"] if last else None, last_summary=last["summary"] if last else None,
            last_actor=last["actor"] if last else None,
            next_run=open_at(ctx.config, env, max(due, now)) if state.bound else max(due, now),
        ))  # fmt: skip
    return MaintenanceResult(
        environment=env, timezone=timezone_of(ctx.config).key, now=now,
        windows=[describe(w) for w in windows_of(ctx.config, env)], open=state.open, closes_at=state.closes_at,
        next_start=state.next_start, tasks=tasks,
    )  # fmt: skip


SPEC = CommandSpec(
    name="maintenance",
    summary="maintenance windows and tasks with last and next run; with a task, run it now",
    help=__doc__ or "",
    args=MaintenanceArgs,
    run=run,
    plan=plan,
    usage="maintenance <env> [task] [--dry-run] [--break-glass REASON]",
    positionals=("env", "task"),
    changes=True,
    approval_inside_window=False,
    guide="7.3",
    verb="Maintenance in",
    examples=("maintenance prod", "maintenance prod cert_check --dry-run", "maintenance prod db_maintenance"),
    results=(MaintenanceResult, TaskResult),
)

