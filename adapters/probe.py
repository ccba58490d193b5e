"""The ``Probe`` interface: HTTP health checks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from adapters.models import CheckResult, ProbeRequest


@runtime_checkable
class Probe(Protocol):
    """Runs HTTP health checks. All checks of one call run concurrently, each within its timeout.

    A check that fails (refused, timed out, wrong status, unexpected body) is a result with
    ``ok=False`` and ``error`` set, never an exception; results come back in request order.
    """

    async def check(self, requests: Sequence[ProbeRequest]) -> list[CheckResult]:
        """Run every request concurrently and return one result per request, in order."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
