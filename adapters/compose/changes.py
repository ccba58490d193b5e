"""The changes ``ComposeRuntime`` makes: images, one-off containers, replace / revert / commit, stop / start.

A part of ``ComposeRuntime`` (the engine connection, ``_call`` with its bound and error mapping, is
``adapters/docker/client.py``; inspect, stop and start are in ``adapters/compose/runtime.py``). What a new
container is made of is ``adapters/docker/spec.py``. A replacement keeps each old container, stopped and renamed
``<name>-opsbot-old-<short id>`` (hidden from listings), until ``commit`` removes it or ``revert``
puts it back under its name.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from adapters.docker.info import DEFAULT_GRACE, container_info, container_name, own_grace
from adapters.docker.ops import DockerOps
from adapters.docker.spec import check_argv, check_image, oneoff_body
from adapters.lifecycle import Progress, grace_seconds, progress_line
from adapters.models import ContainerInfo, ExecResult

T = TypeVar("T")
log = logging.getLogger(__name__)


class ComposeChanges(DockerOps):
    """Changes to the containers of one Compose project (a part of ``ComposeRuntime``)."""

    if TYPE_CHECKING:
        project: str
        pull_timeout: float

        async def _service(self, service: str, *, running: bool) -> list[dict[str, Any]]: ...
        def _inspect(self, container_id: str) -> dict[str, Any]: ...
        def _stop(self, container_id: str, grace: int | None) -> None: ...
        def _start(self, container_id: str) -> None: ...

    # ------------------------------------------------------------------ one-off containers

    async def run_oneoff(self, service: str, image: str, argv: list[str], *, timeout: float = 300.0) -> ExecResult:
        """Run ``argv`` in a new container of ``image`` with the service's configuration; remove it after.

        Like Compose's ``run``: environment, mounts, network mode, user, working dir and labels of the
        service's first container (``oneoff=True``, so listings leave it out), no ports, no aliases.
        Returns the exit code and the last 64 KiB of its output (stdout and stderr); a command that
        cannot be run is exit 127 (126: not executable) with the engine's words, as the docker CLI
        says. Longer than ``timeout``: ``AdapterTimeout`` (the container is killed and removed).
        """
        argv = check_argv(argv, "a one-off")
        ref = check_image(image)
        template = (await self._service(service, running=False))[0]
        new, old = await asyncio.gather(self._need_image(ref), self._image(str(template.get("Image", ""))))
        body, networks = oneoff_body(template, old or {}, ref, new, argv)
        name = f"{self.project}-{service}-run-{secrets.token_hex(6)}"
        cid = await self._create(body, name, networks)
        return await self._run_created(cid, name, service, argv, timeout)

    async def _create(self, body: dict[str, Any], name: str, networks: dict[str, dict[str, Any]]) -> str:
        """Create a container from ``body`` named ``name``, attached to the extra ``networks``; its id."""
        made = await self._call(
            lambda: self._api().create_container_from_config(body, name), what=f" (creating {name})"
        )
        cid = str(made["Id"])
        try:
            for network, ep in networks.items():
                await self._call(partial(self._connect, cid, network, ep), what=f" (connecting {name} to {network})")
        except BaseException:
            await asyncio.shield(self._discard(cid, name))
            raise
        return cid

    def _connect(self, cid: str, network: str, ep: dict[str, Any]) -> None:
        ipam = ep.get("IPAMConfig") or {}
        self._api().connect_container_to_network(
            cid, network, aliases=ep.get("Aliases"), links=ep.get("Links"), driver_opt=ep.get("DriverOpts"),
            ipv4_address=ipam.get("IPv4Address"), ipv6_address=ipam.get("IPv6Address"),
        )  # fmt: skip

    # ------------------------------------------------------------------ stop and start

    async def _stop_one(self, cid: str, name: str, grace: int | None) -> None:
        seconds = grace if grace is not None else DEFAULT_GRACE
        await self._call(partial(self._stop, cid, grace), timeout=seconds + self.timeout,
                         what=f" (stopping {name} with {seconds}s grace)")  # fmt: skip

    async def stop(self, service: str, *, timeout: float | None = None) -> list[ContainerInfo]:
        """Stop every container of ``service`` at once, each with ``timeout`` seconds of grace.

        None: each container's own StopTimeout, else the engine's 10 s (whole seconds, a fraction is
        rounded up). Stopping a stopped container is a no-op. Returns the containers, re-inspected.
        """
        grace = grace_seconds(timeout)
        containers = await self._service(service, running=False)

        async def one(attrs: dict[str, Any]) -> None:
            await self._stop_one(attrs["Id"], container_name(attrs), grace if grace is not None else own_grace(attrs))

        outcomes = await asyncio.gather(*(one(a) for a in containers), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return await self._infos([a["Id"] for a in containers])

    async def start(self, service: str) -> list[ContainerInfo]:
        """Start every container of ``service`` at once (a running one is left alone); re-inspected."""
        containers = await self._service(service, running=False)
        for result in await self._each([partial(self._start, a["Id"]) for a in containers], f" (starting {service})"):
            if isinstance(result, BaseException):
                raise result
        return await self._infos([a["Id"] for a in containers])

    async def restart(
        self, service: str, *, stop_timeout: float | None = None, progress: Progress | None = None
    ) -> list[ContainerInfo]:
        """Stop (with ``stop_timeout`` seconds of grace) and start each container of ``service`` in turn.

        Two engine calls per container, ``stop?t=N`` then ``start``, so the engine's events show
        ``kill`` (the stop signal, then SIGKILL only if the grace ran out), ``die``, ``stop`` and one
        ``start``. The engine counts the grace in whole seconds (a fraction is rounded up); None leaves
        it to the container's StopTimeout, else the engine's 10 s. A stop is bounded by its grace plus
        the runtime's timeout, a start by the timeout. The containers are re-inspected at the end.
        """
        grace = grace_seconds(stop_timeout)
        containers = await self._service(service, running=False)
        for index, attrs in enumerate(containers, 1):
            name = container_name(attrs)
            if progress is not None:
                await progress(progress_line(name, index, len(containers)))
            await self._stop_one(attrs["Id"], name, grace if grace is not None else own_grace(attrs))
            await self._call(partial(self._start, attrs["Id"]), what=f" (starting {name})")
        return await self._infos([a["Id"] for a in containers])

    async def _infos(self, ids: list[str]) -> list[ContainerInfo]:
        found = await self._each([partial(self._inspect, cid) for cid in ids], " (inspect)")
        for result in found:
            if isinstance(result, BaseException):
                raise result
        return [container_info(a) for a in found if isinstance(a, dict)]
