"""Run only the health checks of an environment.

Every check of `health_checks` runs concurrently, each within its timeout. A check passes when it
answers 2xx and its JSON body holds the `expect` keys; its latency is judged against
`thresholds.response_time_ms`. With `monitoring`, the metrics (`error_rate_percent`,
`response_time_ms`, ...) are measured too and judged against `thresholds`; one that cannot be
measured is a warning saying why. Exit code 0 when every row is ok, 1 otherwise.

Guide: 3.3 Post-installation verification.
"""

from __future__ import annotations

import asyncio

from pydantic import Field

from commands.base import Args, CommandSpec, Ctx, EnvName, Result, Severity, env_field, worst
from commands.inspect import CheckRow, ServiceRow, check_rows
from commands.measure import MetricRow, metric_rows


class HealthArgs(Args):
    """Arguments of ``health``."""

    env: EnvName = env_field()


class HealthResult(Result):
    """The health checks of one environment."""

    kind = "health"
    environment: str
    overall: Severity
    checks: list[CheckRow] = Field(default_factory=list)
    #: always empty: present so that ``health`` has the same JSON keys as ``status``
    services: list[ServiceRow] = Field(default_factory=list)
    #: ``monitoring``'s metrics against ``thresholds`` (empty without ``monitoring``)
    metrics: list[MetricRow] = Field(default_factory=list)

    def severity(self) -> Severity:
        """The overall severity."""
        return self.overall


async def run(ctx: Ctx, args: HealthArgs) -> HealthResult:
    """Run the checks."""
    assert args.env is not None
    checks, metrics = await asyncio.gather(check_rows(ctx, args.env), metric_rows(ctx, args.env))
    severities = [*(c.severity for c in checks), *(m.severity for m in metrics)]
    return HealthResult(environment=args.env, overall=worst(severities), checks=checks, metrics=metrics)


SPEC = CommandSpec(
    name="health",
    summary="only the health checks of an environment",
    help=__doc__ or "",
    args=HealthArgs,
    run=run,
    usage="health [env]",
    positionals=("env",),
    guide="3.3",
    verb="Checking",
    examples=("health prod",),
    results=(HealthResult,),
)
