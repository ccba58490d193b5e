"""``FakeSwarmRuntime``: a ``FakeRuntime`` that also answers what only ``SwarmRuntime`` answers.

``status`` shows each service's running/desired tasks (``replicas``), ``rollback`` without a recorded
deploy uses each service's image before its last update (``previous_images``), and a shutdown
remembers the replicas it gives back at startup (``replica_counts``). The fake counts them as Swarm
does: ``stop`` scales a service to 0 and ``start`` gives its replicas back (both updates of the spec:
the previous spec is then the same image); ``replace`` is an update whose previous spec Swarm keeps
(even when only the environment changed); ``revert`` is Swarm's own rollback, after which the service
has no previous image to offer. tests/integration/test_swarm_runtime.py
runs the same steps on both.
"""

from __future__ import annotations

from typing import Any

from adapters.fakes import FakeRuntime
from adapters.models import ContainerInfo, Replacement


class FakeSwarmRuntime(FakeRuntime):
    """Containers are a service's tasks; ``desired`` (service -> replicas wanted) defaults to their count."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: service -> the replicas it asks for (set by stop/start; default: its containers)
        self.desired: dict[str, int] = {}
        #: service -> its image before its last update (Swarm's PreviousSpec), while it has one
        self.previous: dict[str, str] = {}
        self._kept_replicas: dict[str, int] = {}

    def _updated(self, service: str) -> None:
        """A change of the service's spec: the spec before it is the previous one."""
        image = next((c.image for c in self.items if c.service == service), None)
        if image:
            self.previous[service] = image

    def _wanted(self, service: str) -> int:
        return self.desired.get(service, len([c for c in self.items if c.service == service]))

    async def replicas(self) -> dict[str, tuple[int, int]]:
        """Each service: (desired tasks, running tasks)."""
        await self._enter("replicas")
        services = sorted({c.service for c in self.items})
        running = {s: len([c for c in self.items if c.service == s and c.state == "running"]) for s in services}
        return {s: (self._wanted(s), running[s] if self._wanted(s) else 0) for s in services}

    async def replica_counts(self) -> dict[str, int]:
        """The replicas each service asks for."""
        await self._enter("replica_counts")
        return {s: self._wanted(s) for s in sorted({c.service for c in self.items})}

    async def previous_images(self) -> dict[str, str]:
        """Each service's image before its last update, unless a rollback used it up."""
        await self._enter("previous_images")
        return dict(sorted(self.previous.items()))

    async def stop(self, service: str, *, timeout: float | None = None) -> list[ContainerInfo]:
        """Scaled to 0 (its replicas remembered for ``start``); no task is left."""
        await super().stop(service, timeout=timeout)
        if self._wanted(service):
            self._kept_replicas[service] = self._wanted(service)
            self._updated(service)
        self.desired[service] = 0
        return []

    async def start(self, service: str) -> list[ContainerInfo]:
        """Back to the replicas ``stop`` remembered (1 without)."""
        if self._wanted(service) == 0:
            self.desired[service] = self._kept_replicas.pop(service, 1)
            self._updated(service)
        return await super().start(service)

    async def replace(self, service: str, image: str, **kwargs: Any) -> Replacement:
        """An update: the image before is what Swarm's previous spec now holds."""
        before = next((c.image for c in self.items if c.service == service), None)
        replacement = await super().replace(service, image, **kwargs)
        if before:
            self.previous[service] = before
        return replacement

    async def revert(self, replacement: Replacement) -> None:
        """Swarm's own rollback: the previous spec is used up."""
        await super().revert(replacement)
        self.previous.pop(replacement.service, None)
