"""The ``Runtime`` interface: where an environment's services run (Compose on one engine, Swarm)."""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol, runtime_checkable

from adapters.models import ContainerInfo, DiskUsage, ExecResult


@runtime_checkable
class Runtime(Protocol):
    """An environment's containers, read through its engine.

    Every method has a bounded duration and raises ``adapters.errors.AdapterError`` subclasses with a
    message a person can act on (``EngineUnavailable`` when the engine does not answer).
    """

    #: a human description of where this runtime points, for messages ("Docker engine at unix://...")
    description: str

    async def containers(self, *, stats: bool = False) -> list[ContainerInfo]:
        """Every container of the project (running or not), with cpu/memory when ``stats``."""
        ...

    async def logs(
        self,
        service: str,
        *,
        since: timedelta | None = None,
        lines: int = 200,
        grep: str | None = None,
    ) -> list[str]:
        """The newest ``lines`` log lines of the service's containers (stdout and stderr).

        With ``grep``, only lines containing that text (case-insensitive), still the newest ``lines``.
        Memory stays bounded by ``lines`` whatever the size of the log.
        """
        ...

    async def exec(self, service: str, argv: list[str], *, timeout: float = 30.0) -> ExecResult:
        """Run ``argv`` (no shell) in the service's first running container."""
        ...

    async def disk(self, service: str) -> DiskUsage:
        """Disk use of the root filesystem of the service's first running container."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
