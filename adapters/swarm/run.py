"""What ``SwarmRuntime`` runs on its own engine's node: commands in a task's container, images, one-offs.

A manager's engine reaches only the containers of its own node; on a one-node swarm that is every task.
``exec`` and ``disk`` use the first running task (lowest slot) whose container is here; a one-off
container (a migration) is made here with the service's configuration, as ``docker run`` would be.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from adapters.docker.io import parse_df
from adapters.docker.spec import check_argv, check_image
from adapters.errors import AdapterError, NotFound
from adapters.models import DiskUsage, ExecResult
from adapters.swarm.base import SwarmBase
from adapters.swarm.info import STACK, container_id, container_spec, slot_key

log = logging.getLogger(__name__)
#: the label that marks opsbot's one-off containers
ONEOFF = "io.opsbot.oneoff"


class SwarmRun(SwarmBase):
    """Exec, disk, images and one-off containers on this engine's node (mixed into ``SwarmRuntime``)."""

    async def _exec_target(self, service: str) -> dict[str, Any]:
        """The service's first running task on this node (where ``exec`` and ``exec_stream`` run)."""
        return await self._local_task(service)

    async def _local_task(self, service: str) -> dict[str, Any]:
        """The container of the service's first running task on this node (inspect data)."""
        found = await self._service(service)
        tasks = [
            t for t in await self._tasks([found["ID"]])
            if t.get("DesiredState") == "running" and (t.get("Status") or {}).get("State") == "running"
        ]  # fmt: skip
        if not tasks:
            raise NotFound(f"no running task for service {service!r} in stack {self.stack!r}")
        tasks.sort(key=lambda t: (slot_key(t).zfill(8), str(t.get("CreatedAt") or "")))
        local = await self._containers([cid for t in tasks if (cid := container_id(t))])
        for task in tasks:
            if (cid := container_id(task)) in local:
                return local[cid]
        raise AdapterError(
            f"service {service!r} runs no task on the node of the {self.description}"
            f" ({len(tasks)} running on other nodes): commands run in a container of this node"
        )

    # ------------------------------------------------------------------ exec and disk

    async def exec(self, service: str, argv: list[str], *, timeout: float = 30.0) -> ExecResult:
        """Run ``argv`` (a list, never a shell string) in the service's first running task here.

        Output (stdout and stderr) is kept up to 64 KiB (``truncated`` when cut). Longer than ``timeout``:
        ``AdapterTimeout`` (the engine cannot stop an exec: the process may go on in the container).
        """
        if isinstance(argv, str) or not argv or not all(isinstance(a, str) for a in argv):
            raise AdapterError("exec takes a non-empty list of arguments (argv), never a shell string")
        container = await self._local_task(service)
        return await self._exec(container, service, list(argv), timeout)

    async def disk(self, service: str) -> DiskUsage:
        """``df -P /`` in the service's first running task here, parsed."""
        container = await self._local_task(service)
        result = await self._exec(container, service, ["df", "-P", "/"], self.timeout)
        parsed = parse_df(result.output) if result.exit_code == 0 else None
        if parsed is None:
            text = result.output.strip()[:200] or "no output"
            raise AdapterError(f"cannot read the disk use of service {service!r} (df -P /: {text})")
        mount, size, used, percent = parsed
        name = str(container.get("Name") or "").lstrip("/")
        return DiskUsage(
            container=name, service=service, mount=mount, size_bytes=size, used_bytes=used, percent=percent
        )

    # ------------------------------------------------------------------ images

    # ------------------------------------------------------------------ one-off containers

    async def run_oneoff(self, service: str, image: str, argv: list[str], *, timeout: float = 300.0) -> ExecResult:
        """Run ``argv`` in a new container of ``image`` on this node, with the service's configuration.

        Like ``docker run`` of the service's spec: its environment, mounts, user, working dir, entrypoint
        (``ContainerSpec.Command``; ``argv`` takes the place of its arguments), container labels (plus
        the stack's and ``io.opsbot.oneoff``), on the host network when the service is, else on its first
        attachable network. Returns the exit code and the last 64 KiB of output; a command that cannot
        be run is exit 127 (126: not executable). Longer than ``timeout``: ``AdapterTimeout`` (the
        container is killed). The container is removed in every case. ``NotFound`` when the engine does
        not have ``image`` (nothing is pulled here).
        """
        argv = check_argv(argv, "a one-off")
        ref = check_image(image)
        found = await self._service(service)
        await self._need_image(ref)
        spec = container_spec(found["Spec"])
        networks = await self._networks(found)
        host = next((n for n in networks if n.get("Driver") == "host"), None)
        attachable = next((n for n in networks if n.get("Attachable")), None)
        mode = "host" if host else (attachable or {}).get("Id")
        body: dict[str, Any] = {
            "Image": ref, "Cmd": argv, "Env": list(spec.get("Env") or []), "User": spec.get("User") or "",
            "WorkingDir": spec.get("Dir") or "", "Tty": False, "AttachStdout": True, "AttachStderr": True,
            "Labels": {**(spec.get("Labels") or {}), STACK: self.stack, ONEOFF: "True"},
            "HostConfig": {"Mounts": list(spec.get("Mounts") or []), **({"NetworkMode": mode} if mode else {})},
        }  # fmt: skip
        if spec.get("Command"):
            body["Entrypoint"] = list(spec["Command"])
        name = f"{found['Spec']['Name']}-run-{secrets.token_hex(6)}"
        made = await self._call(lambda: self._api().create_container_from_config(body, name), what=f" ({name})")
        return await self._run_created(str(made["Id"]), name, service, argv, timeout)
