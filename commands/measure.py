"""Measuring an environment's metrics (guide 6.3) from ``monitoring``'s sources, judged by ``thresholds``.

Shared by ``status`` and ``health``. Each configured query gives one row: the number and its
severity, or "could not measure" (a warning, never ok) with the source's reason.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from pydantic import BaseModel

from adapters.metrics.base import Measurement, MetricQuery
from commands.base import Ctx, Severity

if TYPE_CHECKING:
    from bot.config import OpsConfig

#: the unit each threshold's number is in
UNITS: dict[str, str] = {
    "error_rate_percent": "%", "response_time_ms": "ms", "cpu_percent": "%", "memory_percent": "%",
    "disk_percent": "%",
}  # fmt: skip
#: the severity of a metric that could not be measured: someone must look, but it is not an outage
UNMEASURED: Severity = "warning"


class MetricRow(BaseModel):
    """One metric of the environment: its number against its threshold, or why it could not be measured."""

    name: str
    value: float | None = None
    unit: str = ""
    severity: Severity
    #: why there is no number ("could not measure: ...")
    error: str | None = None
    #: prometheus or cloudwatch
    source: str = ""
    warning: float | None = None
    critical: float | None = None


def expand(text: str, env: str, project: str) -> str:
    """``{env}`` and ``{project}`` replaced (and nothing else: PromQL has braces of its own)."""
    return text.replace("{env}", env).replace("{project}", project)


def metric_queries(config: OpsConfig, env: str) -> dict[str, list[MetricQuery]]:
    """The environment's queries by source (``prometheus``, ``cloudwatch``), expanded."""
    monitoring = config.monitoring
    out: dict[str, list[MetricQuery]] = {}
    if monitoring is None:
        return out
    if monitoring.prometheus is not None:
        out["prometheus"] = [
            MetricQuery(name=name, expr=expand(expr, env, config.project))
            for name, expr in monitoring.prometheus.queries.items()
        ]
    if monitoring.cloudwatch is not None:
        out["cloudwatch"] = [
            MetricQuery(
                name=name,
                namespace=q.namespace,
                metric=expand(q.metric, env, config.project),
                dimensions={k: expand(v, env, config.project) for k, v in q.dimensions.items()},
                stat=q.stat,
                period=q.period,
            )
            for name, q in monitoring.cloudwatch.queries.items()
        ]
    return out


def metric_row(config: OpsConfig, m: Measurement) -> MetricRow:
    """A measurement judged against its threshold (``value >= critical``: critical, ``>= warning``: warning)."""
    threshold = getattr(config.thresholds, m.name)
    unit = UNITS.get(m.name, "")
    row = MetricRow(name=m.name, value=m.value, unit=unit, severity="ok", source=m.source,
                    warning=threshold.warning, critical=threshold.critical)  # fmt: skip
    if m.value is None or m.error:
        row.value, row.severity = None, UNMEASURED
        row.error = f"could not measure: {m.error or 'no number'}"
    elif m.value >= threshold.critical:
        row.severity = "critical"
    elif m.value >= threshold.warning:
        row.severity = "warning"
    return row


async def metric_rows(ctx: Ctx, env: str) -> list[MetricRow]:
    """Every configured metric of ``env``, measured concurrently across sources; empty without ``monitoring``."""
    by_source = metric_queries(ctx.config, env)
    if not by_source:
        return []
    sources = list(by_source)
    answers = await asyncio.gather(*(ctx.backends.metrics(s).measure(by_source[s]) for s in sources))
    rows = [metric_row(ctx.config, m) for measurements in answers for m in measurements]
    order = list(UNITS)
    return sorted(rows, key=lambda r: order.index(r.name) if r.name in order else len(order))
