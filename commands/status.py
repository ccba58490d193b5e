"""Show every container of an environment and every health check, with a severity per row.

Each service's containers are listed with their state, version, Docker health, restarts, and cpu
and memory against `thresholds`. A service that is not running, unhealthy or has no container is
critical. Every health check of the environment runs concurrently. The overall severity is the worst
row; the exit code is 0 when everything is ok and 1 otherwise. With `monitoring`, each metric
(`error_rate_percent`, `response_time_ms`, ...) is measured from Prometheus or CloudWatch and judged
against `thresholds`; one that cannot be measured is a warning saying why.

Guide: 3.3 Post-installation verification, 6.3 Monitoring.
"""

from __future__ import annotations

import asyncio

from pydantic import Field

from commands.base import Args, CommandSpec, Ctx, EnvName, Result, Severity, env_field, worst
from commands.inspect import CheckRow, ServiceRow, gather_status, overall
from commands.measure import MetricRow, metric_rows


class StatusArgs(Args):
    """Arguments of ``status``."""

    env: EnvName = env_field()


class StatusResult(Result):
    """Containers and checks of one environment."""

    kind = "status"
    environment: str
    overall: Severity
    services: list[ServiceRow] = Field(default_factory=list)
    checks: list[CheckRow] = Field(default_factory=list)
    #: problems reading the environment (engine not answering ...)
    errors: list[str] = Field(default_factory=list)
    #: ``monitoring``'s metrics against ``thresholds`` (empty without ``monitoring``)
    metrics: list[MetricRow] = Field(default_factory=list)

    def severity(self) -> Severity:
        """The overall severity."""
        return self.overall


async def run(ctx: Ctx, args: StatusArgs) -> StatusResult:
    """Read containers (with one stats sample) and checks concurrently."""
    assert args.env is not None
    (services, checks, errors), metrics = await asyncio.gather(
        gather_status(ctx, args.env, stats=True), metric_rows(ctx, args.env)
    )
    return StatusResult(
        environment=args.env,
        overall=worst([overall(services, checks, errors), *(m.severity for m in metrics)]),
        services=services,
        checks=checks,
        errors=errors,
        metrics=metrics,
    )


SPEC = CommandSpec(
    name="status",
    summary="containers and health checks of an environment, with severities",
    help=__doc__ or "",
    args=StatusArgs,
    run=run,
    usage="status [env]",
    positionals=("env",),
    guide="3.3, 6.3",
    verb="Checking",
    examples=("status prod",),
    results=(StatusResult,),
    learns_secrets="itself",  # its container listing learns them before the result is redacted
)
