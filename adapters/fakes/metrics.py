"""``FakeMetrics``: a metrics source answered from a table, judged the way the real sources judge.

Held honest by ``tests/integration/test_metrics_contract.py``, which runs the same cases against a
real Prometheus.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence

from adapters.metrics.base import Measurement, MetricQuery, measured

#: what a query can be set to answer: a number, several numbers (several series), None (no data)
Answer = float | list[float] | None


class FakeMetrics:
    """Answers keyed by the query's ``expr`` (Prometheus) or its ``name``; unknown queries have no data."""

    def __init__(self, answers: dict[str, Answer] | None = None, *, source: str = "fake", timeout: float = 5.0) -> None:
        self.answers: dict[str, Answer] = dict(answers or {})
        self.source = source
        self.timeout = timeout
        #: set to a reason to make every query fail as if the source were down
        self.down: str | None = None
        #: seconds each call takes (beyond ``timeout``: "did not answer")
        self.delay = 0.0
        self.queries: list[MetricQuery] = []

    def set(self, key: str, answer: Answer) -> None:
        """What the query with this ``expr`` (or ``name``) answers from now on."""
        self.answers[key] = answer

    async def measure(self, queries: Sequence[MetricQuery]) -> list[Measurement]:
        """One measurement per query, in order."""
        self.queries.extend(queries)
        if self.delay:
            await asyncio.sleep(min(self.delay, self.timeout))
            if self.delay >= self.timeout:
                return [self._fail(q, f"did not answer within {self.timeout:g} s") for q in queries]
        return [self._one(q) for q in queries]

    def _fail(self, q: MetricQuery, why: str) -> Measurement:
        return Measurement(name=q.name, source=self.source, error=why)

    def _one(self, q: MetricQuery) -> Measurement:
        if self.down is not None:
            return self._fail(q, self.down)
        answer = self.answers.get(q.expr) if q.expr in self.answers else self.answers.get(q.name)
        if answer is None:
            return self._fail(q, "no data: the query matched no series")
        if isinstance(answer, list):
            if len(answer) == 1:
                return measured(q.name, self.source, answer[0])
            if not answer:
                return self._fail(q, "no data: the query matched no series")
            return self._fail(q, f"the query gave {len(answer)} series, not one number: aggregate it")
        if math.isnan(answer) or math.isinf(answer):
            return measured(q.name, self.source, answer)
        return Measurement(name=q.name, source=self.source, value=float(answer))

    async def close(self) -> None:
        """Nothing to release."""
