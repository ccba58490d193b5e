"""The ``Runtime`` interface: where an environment's services run (Compose on one engine, Swarm)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
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

    async def restart(
        self,
        service: str,
        *,
        stop_timeout: float | None = None,
        progress: Callable[[str], Awaitable[None]] | None = None,
    ) -> list[ContainerInfo]:
        """Restart every container of ``service`` (running or stopped), one after another.

        Each container is stopped with ``stop_timeout`` seconds of grace (None: the container's own
        StopTimeout, else Docker's default 10 s; the engine counts whole seconds, so a fraction is
        rounded up) so in-flight work can finish, then started again: the engine records exactly one
        ``start`` per container. Returns the containers' state after the restart (re-inspected: a
        container with a health check is usually ``starting``). ``NotFound`` when the service has no
        container. ``progress`` (if given) is awaited with a short line before each container
        ("restarting shop-api-1 (1 of 2)"); if it raises, the containers not yet restarted are left
        alone. A manual restart resets Docker's RestartCount (``restarts``) to 0: that count is of
        restarts made by the restart policy since the container was last started by hand. Each
        container's stop is bounded by its grace plus the runtime's timeout, its start by the timeout.
        Use ``wait_running`` to learn whether the service came back.
        """
        ...

    async def wait_running(self, service: str, *, timeout: float, healthy: bool = True) -> list[ContainerInfo]:
        """Wait until every container of ``service`` is running (and healthy) and return them.

        With ``healthy`` a container with a Docker health check must report ``healthy``; ``starting``
        (no check passed yet, or still in its start period) is waited for, not a failure. Fails fast
        with ``AdapterError`` when a container exited or is dead, or is ``unhealthy`` (with
        ``healthy``), naming it with its exit code or its last health check, and for a container that
        exited the tail of its log (at most 20 lines). Raises ``AdapterTimeout`` naming each container
        that is not ready and its last state and health when ``timeout`` passes. Looks every 0.25 s;
        returns or raises within about ``timeout`` + 0.25 s. ``NotFound`` when the service has no
        container.
        """
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
