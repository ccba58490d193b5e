"""The plumbing of ``SwarmRuntime``: finding a stack's services, tasks, containers and networks.

The engine connection (bounded calls in a worker pool, errors made ours) is ``DockerClientBase``'s,
as for ``ComposeRuntime``; an engine that is not a swarm manager is said so.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from adapters.docker.ops import DockerOps
from adapters.errors import AdapterError, NotFound
from adapters.swarm.info import STACK, short_name


class SwarmBase(DockerOps):
    """Lookups shared by the parts of ``SwarmRuntime``; the engine connection, images, exec and one-offs
    are ``DockerOps``'."""

    PARALLEL = 16
    THREADS = "opsbot-swarm"

    def __init__(
        self,
        docker_host: str,
        stack: str,
        *,
        timeout: float = 10.0,
        update_timeout: float = 300.0,
        monitor: float = 5.0,
        pull_timeout: float = 300.0,
    ) -> None:
        super().__init__(docker_host, timeout=timeout)
        self.stack = stack
        self.update_timeout = update_timeout
        self.monitor = monitor
        self.pull_timeout = pull_timeout

    def _refused(self, text: str, what: str) -> AdapterError:
        if "not a swarm manager" in text or "not part of a swarm" in text:
            return AdapterError(f"{self.description} is not a Docker Swarm manager{what}: {text}")
        return super()._refused(text, what)

    # ------------------------------------------------------------------ lookups

    def _list_services(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._api().services(filters={"label": f"{STACK}={self.stack}"}, status=True)
        return found

    async def _services(self) -> dict[str, dict[str, Any]]:
        """The stack's services by their short name (``api`` for ``shop_api``), with ``ServiceStatus``."""
        found = await self._call(self._list_services, what=" (listing services)")
        return {short_name(s["Spec"]["Name"], self.stack): s for s in found}

    async def _service(self, service: str) -> dict[str, Any]:
        """One service of the stack (short or full name), freshly inspected with its status."""
        services = await self._services()
        found = services.get(service) or next((s for s in services.values() if s["Spec"]["Name"] == service), None)
        if found is None:
            raise NotFound(f"service {service!r} is not in stack {self.stack!r}")
        return found

    def _inspect_service(self, service_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self._api().inspect_service(service_id)
        return found

    async def _tasks(self, service_ids: list[str]) -> list[dict[str, Any]]:
        """Every task the engine keeps of these services (current ones and their recent history)."""
        if not service_ids:
            return []
        found: list[dict[str, Any]] = await self._call(
            lambda: self._api().tasks(filters={"service": service_ids}), what=" (listing tasks)"
        )
        return found

    def _inspect_container(self, cid: str) -> dict[str, Any]:
        found: dict[str, Any] = self._api().inspect_container(cid)
        return found

    async def _containers(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Inspect data of the tasks' containers that are on this engine's node (others are left out)."""
        found = await self._each([partial(self._inspect_container, cid) for cid in ids], " (inspect)")
        for result in found:
            if isinstance(result, BaseException) and not isinstance(result, NotFound):
                raise result
        return {cid: r for cid, r in zip(ids, found, strict=True) if isinstance(r, dict)}

    def _inspect_network(self, network_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self._api().inspect_network(network_id)
        return found

    async def _networks(self, found: dict[str, Any]) -> list[dict[str, Any]]:
        """The networks the service's tasks are attached to (inspect data; one that vanished is left out)."""
        template = found["Spec"].get("TaskTemplate") or {}
        targets = [n["Target"] for n in template.get("Networks") or found["Spec"].get("Networks") or []]
        networks = await self._each([partial(self._inspect_network, t) for t in targets], " (inspect network)")
        for result in networks:
            if isinstance(result, BaseException) and not isinstance(result, NotFound):
                raise result
        return [n for n in networks if isinstance(n, dict)]
