"""The ``Runtime`` interface: where an environment's services run (Compose on one engine, Swarm)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from adapters.docker.spool import LineSpool
from adapters.models import ContainerInfo, DiskUsage, ExecResult, Replacement


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
        spool: LineSpool | None = None,
    ) -> list[str]:
        """The newest ``lines`` log lines of the service's containers (stdout and stderr).

        With ``grep``, only lines containing that text (case-insensitive), still the newest ``lines``.
        Memory stays bounded by ``lines`` whatever the size of the log (and by 2 MiB of text: the newest
        lines are kept). With ``spool``, the lines go there instead, every one of them (on disk), and an
        empty list is returned.
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

    # ------------------------------------------------------------------ changes (deploy, rollback, flags, stages)

    async def image_available(self, image: str) -> bool:
        """True when the engine has ``image`` locally, or pulls it.

        Looks locally first (no registry is asked for an image the engine has). The pull is bounded:
        a registry that refuses, does not know the image or does not answer in time gives False, never
        a hang past the runtime's pull timeout. ``EngineUnavailable`` when the engine itself does not
        answer; ``AdapterError`` for something that is not an image reference.
        """
        ...

    async def run_oneoff(self, service: str, image: str, argv: list[str], *, timeout: float = 300.0) -> ExecResult:
        """Run ``argv`` (a list, never a shell) in a one-off container of ``image``; wait for it; remove it.

        The container has the service's configuration, as Compose's ``run`` gives it: environment,
        mounts, network mode, user, working dir, labels with ``com.docker.compose.oneoff=True`` (so
        listings leave it out); no published ports, no network aliases. Returns its exit code and output
        (stdout and stderr, the last 64 KiB, ``truncated`` when cut). A command the image does not have
        is exit 127 with the engine's words. ``NotFound`` when the service has no container or the
        engine does not have ``image`` (nothing is pulled here); ``AdapterTimeout`` after ``timeout``
        (the container is killed and removed). Used for migrations before a deploy.
        """
        ...

    async def replace(
        self,
        service: str,
        image: str,
        *,
        env: dict[str, str | None] | None = None,
        progress: Callable[[str], Awaitable[None]] | None = None,
    ) -> Replacement:
        """Replace every container of ``service``, one after another, by one of ``image``.

        The configuration is kept (environment, command/entrypoint, labels -- Compose's too, with
        ``com.docker.compose.image`` updated --, mounts and volumes, network mode and networks, ports,
        restart policy, health check, stop timeout and signal, user, working dir, a hostname that was
        not the engine's); ``env`` changes it: a value sets a variable, None removes it. Per container:
        stop it (its own stop timeout), keep it renamed ``<name>-opsbot-old-<short id>`` (hidden from
        ``containers()``), create the new one under the original name, start it. ``progress`` (if
        given) is awaited before each ("replacing shop-api-1 (1 of 2)"). Everything is checked before
        the first stop (``NotFound`` for an image the engine does not have). On any failure midway
        what was replaced is put back (old containers under their names, started if they ran) before
        the error is raised, saying so. Returns the record ``revert`` and ``commit`` take. Use
        ``wait_running`` to verify.
        """
        ...

    async def revert(self, replacement: Replacement) -> None:
        """Undo a ``replace``: stop and remove the new containers, rename the old ones back, start them.

        Only the old containers that were running are started. Every container is attempted; then
        ``AdapterError`` names those that could not be put back.
        """
        ...

    async def commit(self, replacement: Replacement) -> None:
        """The new containers are verified: remove the old, kept ones (named volumes stay)."""
        ...

    async def stop(self, service: str, *, timeout: float | None = None) -> list[ContainerInfo]:
        """Stop every container of ``service`` (at once), each with ``timeout`` seconds of grace.

        None: each container's own StopTimeout, else the engine's 10 s (whole seconds: a fraction is
        rounded up). A stopped container is left as it is. Returns the containers, re-inspected;
        ``NotFound`` when the service has none.
        """
        ...

    async def start(self, service: str) -> list[ContainerInfo]:
        """Start every container of ``service`` (at once; a running one is left alone), re-inspected.

        Use ``wait_running`` to learn whether they came up. ``NotFound`` when the service has none.
        """
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


@runtime_checkable
class ImageDates(Protocol):
    """A runtime that can say when an image was built (``image_age``, guide 7.3 security patches)."""

    async def image_created(self, image: str) -> datetime | None:
        """When ``image`` (a reference or an image id) was built; None when it does not say.

        ``NotFound`` when the engine does not have it.
        """
        ...
