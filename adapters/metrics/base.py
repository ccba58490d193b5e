"""The ``Metrics`` interface: one number per query, or a clear "could not measure".

A source never answers "ok" by default: a query that yields no data, several series, NaN, an error
status, a timeout or a source that does not answer is a ``Measurement`` with ``value`` None and
``error`` saying why, never an exception and never a number made up.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, Field


class MetricQuery(BaseModel):
    """What to measure under a threshold's name (``error_rate_percent``), in the source's own terms."""

    #: the threshold name the number is judged against
    name: str
    #: Prometheus: the PromQL expression of an instant query ({env} and {project} already expanded)
    expr: str = ""
    #: CloudWatch: ``GetMetricData``'s metric (namespace, name, dimensions), statistic and period
    namespace: str = ""
    metric: str = ""
    dimensions: dict[str, str] = Field(default_factory=dict)
    stat: str = "Average"
    period: int = 300


class Measurement(BaseModel):
    """One query's answer: a finite number, or why there is none."""

    name: str
    value: float | None = None
    error: str | None = None
    #: where it was measured ("prometheus", "cloudwatch", "fake")
    source: str = ""

    @property
    def ok(self) -> bool:
        """True when a number was measured."""
        return self.value is not None and self.error is None


def measured(name: str, source: str, value: float) -> Measurement:
    """A measurement of ``value``, or "not a number" when it is NaN or infinite."""
    if not math.isfinite(value):
        return Measurement(name=name, source=source, error=f"the query gave {value!r}, not a number")
    return Measurement(name=name, source=source, value=value)


@runtime_checkable
class Metrics(Protocol):
    """A metrics source. Every query of one call runs concurrently, each within the source's timeout.

    Results come back in query order, one per query; a query that cannot be measured is a result
    with ``value`` None and ``error`` set, never an exception.
    """

    async def measure(self, queries: Sequence[MetricQuery]) -> list[Measurement]:
        """One measurement per query, in order."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
