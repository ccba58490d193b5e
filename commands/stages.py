"""Startup and shutdown (guide 6.2): the stages of ops.yml in order, each finished before the next.

`shutdown <env>` stops each stage's services with their stop timeouts (in-flight work finishes),
stage by stage. `startup <env>` starts each stage and waits until its services run and are healthy
before the next, then runs every health check of the environment. Both stop at the first stage that
fails, say which, and show the state of every service.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import Any

from pydantic import BaseModel, Field

from adapters.errors import AdapterError, UserError
from commands.base import ChangeArgs, CommandSpec, Ctx, EnvName, Plan, Result, Severity
from commands.inspect import CheckRow, ServiceRow, check_rows, service_rows

WAIT_RUNNING = 120.0


class StagesArgs(ChangeArgs):
    """Arguments of ``startup`` and ``shutdown``."""

    env: EnvName


class StageOutcome(BaseModel):
    """One stage."""

    services: list[str]
    ok: bool
    problem: str | None = None


class StagesResult(Result):
    """Each stage's outcome and where everything stands."""

    kind = "stages"
    action: str
    environment: str
    ok: bool
    stages: list[StageOutcome] = Field(default_factory=list)
    services: list[ServiceRow] = Field(default_factory=list)
    checks: list[CheckRow] = Field(default_factory=list)
    problem: str | None = None

    def severity(self) -> Severity:
        """Critical when a stage failed."""
        return "ok" if self.ok else "critical"


def _stages(ctx: Ctx, env: str, action: str) -> list[list[str]]:
    _, env_config = ctx.config.env(env)
    stages = env_config.startup if action == "startup" else env_config.shutdown
    if not stages:
        raise UserError(f"environments.{env}.{action} is not set in ops.yml: no {action} sequence to run")
    return [list(s) for s in stages]


async def _plan(ctx: Ctx, args: StagesArgs, action: str) -> Plan:
    assert args.env is not None
    stages = _stages(ctx, args.env, action)
    verb = "start, wait until running and healthy" if action == "startup" else "stop (stop timeouts respected)"
    rows = await service_rows(ctx, args.env, stats=False)
    return Plan(
        summary=f"{action} of {args.env} in {len(stages)} stages",
        steps=[f"stage {i} of {len(stages)}: {', '.join(s)}: {verb}" for i, s in enumerate(stages, 1)],
        targets=[{"service": r.name, "state": r.state} for r in rows],
        verify=["every health check of the environment"] if action == "startup" else [],
    )


async def _all(calls: Iterable[Awaitable[Any]]) -> None:
    """Run ``calls`` together and let every one finish; then raise the first error (so a report made
    after a failure never races services still stopping or starting)."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


async def run_stages(ctx: Ctx, env: str, action: str, stages: list[list[str]]) -> tuple[list[StageOutcome], str | None]:
    """Stop (``shutdown``: stop timeouts respected) or start (``startup``: each stage running and healthy
    before the next) ``stages`` in order; stops at the first stage that fails: the outcomes, and why."""
    _, env_config = ctx.config.env(env)
    runtime = ctx.backends.runtime(env)
    outcomes: list[StageOutcome] = []
    for i, services in enumerate(stages, 1):
        await ctx.progress(f"Stage {i} of {len(stages)}: {action} {', '.join(services)}")
        try:
            if action == "shutdown":
                await _all(runtime.stop(s, timeout=env_config.services[s].stop_timeout) for s in services)
            else:
                await _all(runtime.start(s) for s in services)
                await _all(runtime.wait_running(s, timeout=WAIT_RUNNING) for s in services)
            outcomes.append(StageOutcome(services=services, ok=True))
            await ctx.step(action, env, "step", f"stage {i} of {len(stages)} ({', '.join(services)}): done")
        except AdapterError as exc:
            outcomes.append(StageOutcome(services=services, ok=False, problem=str(exc)))
            await ctx.step(action, env, "step", f"stage {i} of {len(stages)} ({', '.join(services)}) failed: {exc}")
            return outcomes, f"stage {i} ({', '.join(services)}) failed: {exc}; the stages after it were not run"
    return outcomes, None


async def _run(ctx: Ctx, args: StagesArgs, action: str) -> StagesResult:
    assert args.env is not None
    stages = _stages(ctx, args.env, action)
    result = StagesResult(action=action, environment=args.env, ok=True)
    result.stages, result.problem = await run_stages(ctx, args.env, action, stages)
    result.ok = result.problem is None
    if result.ok and action == "startup":
        result.checks = await check_rows(ctx, args.env)
        failing = [c.name for c in result.checks if not c.ok]
        if failing:
            result.ok = False
            result.problem = f"every stage started, but health checks fail: {', '.join(failing)}"
    result.services = await service_rows(ctx, args.env, stats=False)
    return result


async def plan_startup(ctx: Ctx, args: StagesArgs) -> Plan:
    """The startup stages."""
    return await _plan(ctx, args, "startup")


async def run_startup(ctx: Ctx, args: StagesArgs) -> StagesResult:
    """Start stage by stage."""
    return await _run(ctx, args, "startup")


async def plan_shutdown(ctx: Ctx, args: StagesArgs) -> Plan:
    """The shutdown stages."""
    return await _plan(ctx, args, "shutdown")


async def run_shutdown(ctx: Ctx, args: StagesArgs) -> StagesResult:
    """Stop stage by stage."""
    return await _run(ctx, args, "shutdown")


STARTUP = CommandSpec(
    name="startup",
    summary="the environment's startup sequence, stage by stage, each running and healthy before the next",
    help=__doc__ or "",
    args=StagesArgs,
    run=run_startup,
    plan=plan_startup,
    usage="startup <env> [--dry-run] [--break-glass REASON]",
    positionals=("env",),
    changes=True,
    guide="6.2",
    verb="Starting up",
    examples=("startup prod",),
    results=(StagesResult,),
)
SHUTDOWN = CommandSpec(
    name="shutdown",
    summary="the environment's shutdown sequence, stage by stage, with the services' stop timeouts",
    help=__doc__ or "",
    args=StagesArgs,
    run=run_shutdown,
    plan=plan_shutdown,
    usage="shutdown <env> [--dry-run] [--break-glass REASON]",
    positionals=("env",),
    changes=True,
    guide="6.2",
    verb="Shutting down",
    examples=("shutdown prod",),
    results=(StagesResult,),
)
