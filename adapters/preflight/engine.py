"""``EngineProbe``: a Docker engine's version, size and data root, and where a service's containers listen."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, Field

from adapters.docker.client import DockerClientBase
from adapters.docker.info import PROJECT, SERVICE, container_name

#: the label Swarm puts on a task's container: ``<stack>_<service>``
SWARM_SERVICE = "com.docker.swarm.service.name"
STACK = "com.docker.stack.namespace"


class EngineFacts(BaseModel):
    """What the engine says about itself (``GET /version`` and ``GET /info``)."""

    host: str
    version: str
    api_version: str = ""
    name: str = ""
    os: str = ""
    cpus: int = 0
    memory_bytes: int = 0
    root_dir: str = ""
    storage_driver: str = ""


class NodeFacts(BaseModel):
    """One node of a Swarm, as its manager reports it (``GET /nodes``)."""

    hostname: str
    role: str
    state: str
    cpus: float
    memory_bytes: int


class ContainerAddress(BaseModel):
    """Where a running container can be reached: its own addresses and its published ports."""

    container: str
    #: addresses of the container itself (its networks' IPs, or the engine's host with the host network)
    hosts: list[str] = Field(default_factory=list)
    #: container port -> (host address, host port) where the engine publishes it
    published: dict[int, tuple[str, int]] = Field(default_factory=dict)


def engine_address(docker_host: str) -> str:
    """The address of the engine's machine: 127.0.0.1 for a local socket, else the host of the URL."""
    parts = urlsplit(docker_host)
    if parts.scheme in ("unix", "npipe") or not parts.hostname:
        return "127.0.0.1"
    return parts.hostname


class EngineProbe(DockerClientBase):
    """Reads one engine; every call bounded by ``timeout`` (``AdapterTimeout``, ``EngineUnavailable``)."""

    PARALLEL = 4
    THREADS = "opsbot-preflight"

    async def facts(self) -> EngineFacts:
        """The engine's version, CPUs, memory and data root."""
        version: dict[str, Any] = await self._call(lambda: self._api().version(), what=" (version)")
        info: dict[str, Any] = await self._call(lambda: self._api().info(), what=" (info)")
        return EngineFacts(
            host=self.docker_host,
            version=str(version.get("Version") or info.get("ServerVersion") or "?"),
            api_version=str(version.get("ApiVersion") or ""),
            name=str(info.get("Name") or ""),
            os=str(info.get("OperatingSystem") or ""),
            cpus=int(info.get("NCPU") or 0),
            memory_bytes=int(info.get("MemTotal") or 0),
            root_dir=str(info.get("DockerRootDir") or ""),
            storage_driver=str(info.get("Driver") or ""),
        )

    async def nodes(self) -> list[NodeFacts]:
        """Every node of the Swarm this engine manages, with its CPUs and memory."""
        found: list[dict[str, Any]] = await self._call(lambda: self._api().nodes(), what=" (listing nodes)")
        out = []
        for node in found:
            description = node.get("Description") or {}
            resources = description.get("Resources") or {}
            out.append(NodeFacts(
                hostname=str(description.get("Hostname") or node.get("ID", "?")[:12]),
                role=str((node.get("Spec") or {}).get("Role") or "?"),
                state=str((node.get("Status") or {}).get("State") or "?"),
                cpus=int(resources.get("NanoCPUs") or 0) / 1e9,
                memory_bytes=int(resources.get("MemoryBytes") or 0),
            ))  # fmt: skip
        return sorted(out, key=lambda n: n.hostname)

    async def addresses(self, kind: str, project: str, service: str) -> list[ContainerAddress]:
        """The running containers of ``service`` (Compose labels, or a Swarm stack's tasks on this engine)."""
        if kind == "swarm":
            labels = [f"{STACK}={project}", f"{SWARM_SERVICE}={project}_{service}"]
        else:
            labels = [f"{PROJECT}={project}", f"{SERVICE}={service}"]
        summaries: list[dict[str, Any]] = await self._call(
            lambda: self._api().containers(filters={"label": labels, "status": "running"}),
            what=" (listing containers)",
        )
        own_host = engine_address(self.docker_host)
        out = []
        for summary in summaries:
            name = container_name({"Name": (summary.get("Names") or ["?"])[0]})
            networks = ((summary.get("NetworkSettings") or {}).get("Networks")) or {}
            mode = str((summary.get("HostConfig") or {}).get("NetworkMode") or "")
            hosts = [n["IPAddress"] for n in networks.values() if n.get("IPAddress")]
            if mode == "host" or "host" in networks:
                hosts.insert(0, own_host)
            published: dict[int, tuple[str, int]] = {}
            for port in summary.get("Ports") or []:
                if port.get("PublicPort") and port.get("Type", "tcp") == "tcp":
                    ip = str(port.get("IP") or "0.0.0.0")  # noqa: S104 - the engine's own words
                    where = own_host if ip in ("0.0.0.0", "::", "") else ip  # noqa: S104
                    published.setdefault(int(port["PrivatePort"]), (where, int(port["PublicPort"])))
            out.append(ContainerAddress(container=name, hosts=list(dict.fromkeys(hosts)), published=published))
        return sorted(out, key=lambda a: a.container)
