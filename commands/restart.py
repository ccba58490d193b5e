"""Restart one service and verify it.

The plan names the service's containers and the images they run. When it runs, each container is
stopped with the service's `stop_timeout` (ops.yml; else the container's own), so in-flight work can
finish, and started again; then it is verified: running, healthy where it has a Docker health check,
and every health check of the environment passes. A change: it waits for the environment's
approvals (or `--break-glass "reason"` for admins), and `--dry-run` shows the plan only.

Guide: 6.2 Startup and shutdown, 8.1 Common issues.
"""

from __future__ import annotations

from pydantic import Field

from adapters.errors import AdapterError, NotFound
from commands.base import ChangeArgs, CommandSpec, Ctx, EnvName, Plan, Result, ServiceName, Severity, worst
from commands.inspect import CheckRow, ServiceRow, check_rows, containers, service_row

#: how long the restarted containers may take to be running and healthy
VERIFY_TIMEOUT = 120.0


class RestartArgs(ChangeArgs):
    """Arguments of ``restart``."""

    env: EnvName
    service: ServiceName


class RestartResult(Result):
    """The restarted containers and the verification."""

    kind = "restart"
    environment: str
    service: str
    ok: bool
    containers: list[ServiceRow] = Field(default_factory=list)
    checks: list[CheckRow] = Field(default_factory=list)
    problem: str | None = None

    def severity(self) -> Severity:
        """Critical when the verification failed."""
        return "ok" if self.ok else "critical"


async def plan(ctx: Ctx, args: RestartArgs) -> Plan:
    """Which containers, which images, what verifies it."""
    assert args.env is not None
    _, env = ctx.config.env(args.env)
    mine = [c for c in await containers(ctx, args.env, stats=False) if c.service == args.service]
    if not mine:
        raise NotFound(f"service {args.service} has no container in {args.env}: nothing to restart")
    stop = env.services[args.service].stop_timeout
    grace = f"{stop:g} s" if stop is not None else "the container's own stop timeout"
    return Plan(
        summary=f"restart {args.service} in {args.env} ({len(mine)} container{'s' if len(mine) > 1 else ''})",
        steps=[f"stop {c.name} (grace {grace}), start it again" for c in mine],
        targets=[{"container": c.name, "image": c.image, "state": c.state} for c in mine],
        verify=[f"{args.service} running" + (" and healthy" if any(c.health for c in mine) else "")]
        + [f"health check {h.name}" for h in env.health_checks],
    )


async def run(ctx: Ctx, args: RestartArgs) -> RestartResult:
    """Restart, then verify."""
    assert args.env is not None
    _, env = ctx.config.env(args.env)
    runtime = ctx.backends.runtime(args.env)
    await runtime.restart(args.service, stop_timeout=env.services[args.service].stop_timeout, progress=ctx.progress)
    await ctx.progress(f"Verifying {args.service} in {args.env}...")
    problem = None
    try:
        infos = await runtime.wait_running(args.service, timeout=VERIFY_TIMEOUT)
    except NotFound:
        raise
    except AdapterError as exc:  # the service did not come back
        problem = str(exc)
        infos = [c for c in await runtime.containers() if c.service == args.service]
    rows = [service_row(ctx, c) for c in infos]
    checks = await check_rows(ctx, args.env)
    failed = [c.name for c in checks if not c.ok]
    if failed and problem is None:
        problem = f"health checks failing after the restart: {', '.join(failed)}"
    ok = problem is None and worst(r.severity for r in rows) != "critical"
    return RestartResult(
        environment=args.env, service=args.service, ok=ok, containers=rows, checks=checks, problem=problem
    )


SPEC = CommandSpec(
    name="restart",
    summary="restart one service and verify it",
    help=__doc__ or "",
    args=RestartArgs,
    run=run,
    plan=plan,
    usage="restart <env> <service> [--dry-run] [--break-glass REASON]",
    positionals=("env", "service"),
    changes=True,
    guide="6.2, 8.1",
    verb="Restarting",
    examples=("restart prod worker", "restart prod api --dry-run"),
    results=(RestartResult,),
)
