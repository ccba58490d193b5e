"""Reading an environment: its containers and health checks as rows with severities.

Shared by ``status``, ``health`` and ``troubleshoot``, so that every command judges the same
container or check the same way.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from adapters.errors import AdapterError
from adapters.models import CheckResult, ContainerInfo, ProbeRequest
from commands.base import Ctx, Severity, worst

if TYPE_CHECKING:
    from bot.config import EnvironmentConfig, Threshold


class ServiceRow(BaseModel):
    """One container of a service (or a service with no container: state ``missing``)."""

    name: str
    state: str
    version: str | None = None
    image: str | None = None
    health: str | None = None
    severity: Severity
    container: str | None = None
    restarts: int = 0
    cpu_percent: float | None = None
    memory_percent: float | None = None
    started_at: str | None = None
    #: Swarm: the service's tasks running / desired ("1/2"), as the orchestrator counts them
    replicas: str | None = None
    #: why the severity is not ``ok``
    reasons: list[str] = Field(default_factory=list)


class CheckRow(BaseModel):
    """One HTTP health check's outcome."""

    name: str
    url: str
    ok: bool
    status_code: int | None = None
    latency_ms: float | None = None
    error: str | None = None
    severity: Severity


def by_threshold(value: float | None, threshold: Threshold, label: str, unit: str) -> tuple[Severity, str | None]:
    """The severity of ``value`` against ``threshold``, and the reason when not ok."""
    if value is None:
        return "ok", None
    if value >= threshold.critical:
        return "critical", f"{label} {value:.0f}{unit} >= {threshold.critical:g}{unit}"
    if value >= threshold.warning:
        return "warning", f"{label} {value:.0f}{unit} >= {threshold.warning:g}{unit}"
    return "ok", None


def service_row(ctx: Ctx, info: ContainerInfo) -> ServiceRow:
    """A container judged: not running or unhealthy is critical; cpu and memory by thresholds."""
    reasons: list[str] = []
    levels: list[Severity] = []
    if info.state != "running":
        code = f" (exit code {info.exit_code})" if info.exit_code not in (None, 0) else ""
        reasons.append(f"{info.state}{code}")
        levels.append("critical")
    if info.health == "unhealthy":
        reasons.append("unhealthy")
        levels.append("critical")
    elif info.health == "starting":
        reasons.append("health check starting")
        levels.append("warning")
    t = ctx.config.thresholds
    for value, threshold, label in (
        (info.cpu_percent, t.cpu_percent, "cpu"),
        (info.memory_percent, t.memory_percent, "memory"),
    ):
        level, reason = by_threshold(value, threshold, label, "%")
        if reason:
            levels.append(level)
            reasons.append(reason)
    return ServiceRow(
        name=info.service,
        state=info.state,
        version=info.version,
        image=info.image,
        health=info.health,
        severity=worst(levels),
        container=info.name,
        restarts=info.restarts,
        cpu_percent=info.cpu_percent,
        memory_percent=info.memory_percent,
        started_at=info.started_at.isoformat() if info.started_at else None,
        reasons=reasons,
    )


def missing_row(service: str) -> ServiceRow:
    """A service of ops.yml that has no container at all."""
    return ServiceRow(name=service, state="missing", severity="critical", reasons=["no container"])


async def containers(ctx: Ctx, env: str, *, stats: bool) -> list[ContainerInfo]:
    """The environment's containers; their secret environment values are learnt for redaction."""
    infos = await ctx.backends.runtime(env).containers(stats=stats)
    for info in infos:
        ctx.redactor.learn_env(info.env)
    ctx.extras.setdefault(LEARNT, set()).add(env)
    return infos


#: ``ctx.extras`` key: the environments whose secrets this request has learnt
LEARNT = "secrets_learnt"


async def learn_secrets(ctx: Ctx, env: str) -> None:
    """Learn ``env``'s secret values (its containers' environments) unless this request already has.

    Called before anything an environment says (logs, command output, check errors) can reach a
    user, so that redaction never depends on what ran before. Raises ``AdapterError`` when the
    containers cannot be read: output that cannot be redacted is not shown.
    """
    if env not in ctx.extras.get(LEARNT, ()):
        await containers(ctx, env, stats=False)


async def service_rows(ctx: Ctx, env: str, *, stats: bool = True) -> list[ServiceRow]:
    """Every configured service's containers, judged; unknown services of the project too."""
    _, env_config = ctx.config.env(env)
    infos = await containers(ctx, env, stats=stats)
    rows: list[ServiceRow] = []
    seen: set[str] = set()
    order = {name: i for i, name in enumerate(env_config.services)}
    for info in sorted(infos, key=lambda c: (order.get(c.service, len(order)), c.service, c.number or 0)):
        seen.add(info.service)
        row = service_row(ctx, info)
        if info.service not in env_config.services:
            row.reasons.append("not in ops.yml")
        rows.append(row)
    missing = [missing_row(name) for name in env_config.services if name not in seen]
    rows = sorted(rows + missing, key=lambda r: order.get(r.name, len(order)))
    counts = getattr(ctx.backends.runtime(env), "replicas", None)  # Swarm: desired and running tasks
    if counts is not None:
        with_replicas(rows, await counts())
    return rows


def with_replicas(rows: list[ServiceRow], counts: dict[str, tuple[int, int]]) -> None:
    """Mark each row with its service's running/desired tasks; fewer running than desired is a problem."""
    for row in rows:
        if row.name not in counts:
            continue
        desired, running = counts[row.name]
        row.replicas = f"{running}/{desired}"
        if desired == 0:
            row.reasons = ["scaled to 0 (no replica wanted)"]
        elif running < desired:
            row.reasons.append(f"{running} of {desired} replicas running")
            if row.severity == "ok":
                row.severity = "warning"


def probe_requests(env_config: EnvironmentConfig) -> list[ProbeRequest]:
    """The environment's health checks, with ``{url}`` expanded."""
    return [
        ProbeRequest(name=c.name, url=env_config.expand(c.url), expect=c.expect, timeout=c.timeout)
        for c in env_config.health_checks
    ]


def check_row(ctx: Ctx, result: CheckResult) -> CheckRow:
    """A health check judged: failed is critical; latency by ``response_time_ms``."""
    if not result.ok:
        severity: Severity = "critical"
    else:
        severity, _ = by_threshold(result.latency_ms, ctx.config.thresholds.response_time_ms, "latency", "ms")
    return CheckRow(**result.model_dump(), severity=severity)


async def check_rows(ctx: Ctx, env: str) -> list[CheckRow]:
    """Every health check of the environment, run concurrently, judged."""
    _, env_config = ctx.config.env(env)
    if not env_config.health_checks:  # nothing to probe: no HTTP client made
        return []
    results = await ctx.backends.probe.check(probe_requests(env_config))
    return [check_row(ctx, r) for r in results]


async def gather_status(
    ctx: Ctx, env: str, *, stats: bool = True
) -> tuple[list[ServiceRow], list[CheckRow], list[str]]:
    """Containers and checks read concurrently; an engine that fails is an error line, not a crash."""
    services, checks = await asyncio.gather(
        service_rows(ctx, env, stats=stats), check_rows(ctx, env), return_exceptions=True
    )
    if isinstance(checks, BaseException):
        raise checks
    errors: list[str] = []
    if isinstance(services, AdapterError):
        services, errors = [], [str(services)]
    elif isinstance(services, BaseException):
        raise services
    return services, checks, errors


def overall(services: list[ServiceRow], checks: list[CheckRow], errors: list[str]) -> Severity:
    """The worst of every row; an error reading the environment is critical."""
    return worst([*(s.severity for s in services), *(c.severity for c in checks), *("critical" for _ in errors)])
