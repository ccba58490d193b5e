"""``ComposeRuntime``: an environment's containers on one Docker engine, grouped by Compose's labels."""

from __future__ import annotations

import asyncio
import collections
import functools
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import docker
import docker.errors
import requests.exceptions

from adapters.errors import AdapterError, AdapterTimeout, EngineUnavailable, NotFound
from adapters.models import ContainerInfo, DiskUsage, ExecResult

T = TypeVar("T")
PROJECT = "com.docker.compose.project"
SERVICE = "com.docker.compose.service"
NUMBER = "com.docker.compose.container-number"
ONEOFF = "com.docker.compose.oneoff"
MAX_LINE = 4096
MAX_EXEC_OUTPUT = 64 * 1024


def image_version(image: str) -> str | None:
    """The tag of an image reference: ``shop/api:1.4.2`` -> ``1.4.2``; None when untagged or a digest."""
    ref = image.split("@", 1)[0] if "@" in image else image
    if "@" in image and ":" not in image.split("@", 1)[0].rsplit("/", 1)[-1]:
        return None
    last = ref.rsplit("/", 1)[-1]
    if ":" not in last:
        return None
    return last.rsplit(":", 1)[1] or None


def parse_time(value: str | None) -> datetime | None:
    """Docker's RFC 3339 times (nanoseconds); None for the zero time."""
    if not value or value.startswith("0001-"):
        return None
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?", value)
    if not match:
        return None
    base, frac, zone = match.groups()
    micro = (frac or ".0")[1:7].ljust(6, "0")
    zone = "+00:00" if zone in (None, "Z") else zone
    return datetime.fromisoformat(f"{base}.{micro}{zone}").astimezone(UTC)


def cpu_percent(stats: dict[str, Any]) -> float | None:
    """CPU use as the docker CLI computes it, from one stats sample."""
    try:
        cpu = stats["cpu_stats"]
        pre = stats["precpu_stats"]
        delta = cpu["cpu_usage"]["total_usage"] - pre.get("cpu_usage", {}).get("total_usage", 0)
        system = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
        cpus = cpu.get("online_cpus") or len(cpu["cpu_usage"].get("percpu_usage") or []) or 1
    except (KeyError, TypeError):
        return None
    if system <= 0 or delta < 0:
        return 0.0
    return round(float(delta) / float(system) * float(cpus) * 100.0, 2)


def memory(stats: dict[str, Any]) -> tuple[float | None, int | None]:
    """(percent of the limit, bytes used) without the page cache, as the docker CLI shows it."""
    mem = stats.get("memory_stats") or {}
    usage, limit = mem.get("usage"), mem.get("limit")
    if usage is None or not limit:
        return None, None
    detail = mem.get("stats") or {}
    cache = detail.get("inactive_file", detail.get("total_inactive_file", detail.get("cache", 0)))
    used = max(int(usage) - int(cache or 0), 0)
    return round(used / int(limit) * 100.0, 2), used


class ComposeRuntime:
    """The containers of one Compose project on one Docker engine."""

    def __init__(self, docker_host: str, project: str, *, timeout: float = 10.0) -> None:
        self.docker_host = docker_host
        self.project = project
        self.timeout = timeout
        self.description = f"Docker engine at {docker_host}"
        self._client: docker.DockerClient | None = None

    # ------------------------------------------------------------------ plumbing

    def _docker(self) -> docker.DockerClient:
        if self._client is None:
            # a fixed API version: no version round trip at creation (engines >= 20.10 speak 1.41)
            self._client = docker.DockerClient(base_url=self.docker_host, timeout=self.timeout, version="1.41")
        return self._client

    async def _call(self, fn: Callable[[], T], *, timeout: float | None = None, what: str = "") -> T:
        """Run a blocking SDK call in a thread, bounded, with its errors made ours."""
        limit = timeout if timeout is not None else self.timeout
        try:
            return await asyncio.wait_for(asyncio.to_thread(fn), limit)
        except TimeoutError as exc:
            raise AdapterTimeout(f"{self.description} did not answer within {limit:g}s{what}") from exc
        except AdapterError:
            raise
        except docker.errors.NotFound as exc:
            raise NotFound(f"{self.description}: {exc.explanation or 'not found'}{what}") from exc
        except docker.errors.APIError as exc:
            raise AdapterError(f"{self.description} refused{what}: {exc.explanation or exc}") from exc
        except (requests.exceptions.ConnectionError, docker.errors.DockerException, OSError) as exc:
            raise EngineUnavailable(f"{self.description} does not answer ({_reason(exc)})") from exc
        except requests.exceptions.RequestException as exc:
            raise EngineUnavailable(f"{self.description} does not answer ({_reason(exc)})") from exc

    def _list(self, *, service: str | None = None) -> list[Any]:
        labels = [f"{PROJECT}={self.project}"]
        if service is not None:
            labels.append(f"{SERVICE}={service}")
        # one request for the list; the inspect data of each container, which has what we need
        client = self._docker()
        summaries = client.api.containers(all=True, filters={"label": labels})
        return [client.containers.get(s["Id"]) for s in summaries]

    # ------------------------------------------------------------------ Runtime

    async def containers(self, *, stats: bool = False) -> list[ContainerInfo]:
        """Every container of the project, with cpu/memory when ``stats``."""
        found = await self._call(self._list)
        found = [c for c in found if c.labels.get(ONEOFF, "False") != "True"]
        infos = [self._info(c) for c in found]
        if stats:
            samples = await asyncio.gather(
                *(self._stats(c) if i.state == "running" else _none() for c, i in zip(found, infos, strict=True)),
                return_exceptions=True,
            )
            for index, sample in enumerate(samples):
                if isinstance(sample, dict):
                    mem_pct, mem_bytes = memory(sample)
                    infos[index] = infos[index].model_copy(
                        update={
                            "cpu_percent": cpu_percent(sample),
                            "memory_percent": mem_pct,
                            "memory_bytes": mem_bytes,
                        }
                    )
        return sorted(infos, key=lambda i: (i.service, i.number or 0, i.name))

    async def _stats(self, container: Any) -> dict[str, Any]:
        sample: dict[str, Any] = await self._call(lambda: container.stats(stream=False), what=" (stats)")
        return sample

    def _info(self, container: Any) -> ContainerInfo:
        attrs = container.attrs
        state = attrs.get("State") or {}
        config = attrs.get("Config") or {}
        labels = config.get("Labels") or {}
        health = (state.get("Health") or {}).get("Status")
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in config.get("Env") or [])
        number = labels.get(NUMBER)
        image = config.get("Image") or ""
        return ContainerInfo(
            id=attrs.get("Id", "")[:12],
            name=(attrs.get("Name") or "").lstrip("/"),
            service=labels.get(SERVICE, "?"),
            number=int(number) if number and number.isdigit() else None,
            state=state.get("Status", "unknown"),
            health=health,
            image=image,
            version=image_version(image),
            restarts=int(attrs.get("RestartCount") or 0),
            started_at=parse_time(state.get("StartedAt")) if state.get("Status") == "running" else None,
            exit_code=state.get("ExitCode") if state.get("Status") != "running" else None,
            env=env,
        )

    async def _service_containers(self, service: str, *, running: bool) -> list[Any]:
        found = await self._call(lambda: self._list(service=service))
        found = [c for c in found if c.labels.get(ONEOFF, "False") != "True"]
        if running:
            found = [c for c in found if c.status == "running"]
        if not found:
            which = "running container" if running else "container"
            raise NotFound(f"no {which} for service {service!r} in project {self.project!r}")
        return sorted(found, key=lambda c: (int(c.labels.get(NUMBER, "0") or 0), c.name))

    async def logs(
        self, service: str, *, since: timedelta | None = None, lines: int = 200, grep: str | None = None
    ) -> list[str]:
        """The newest ``lines`` lines of the service's containers; memory bounded by ``lines``."""
        containers = await self._service_containers(service, running=False)
        prefix = len(containers) > 1
        after = datetime.now(UTC) - since if since else None
        needle = grep.lower() if grep else None

        def read(container: Any) -> list[str]:
            kept: collections.deque[str] = collections.deque(maxlen=lines)
            kwargs: dict[str, Any] = {"stream": True, "follow": False, "stdout": True, "stderr": True}
            if needle is None:
                kwargs["tail"] = lines
            if after is not None:
                kwargs["since"] = after
            stream = container.logs(**kwargs)
            try:
                for line in _lines(stream):
                    if needle is None or needle in line.lower():
                        kept.append(f"{container.name}: {line}" if prefix else line)
            finally:
                close = getattr(stream, "close", None)
                if close:
                    close()
            return list(kept)

        timeout = max(self.timeout, 30.0)
        groups = await asyncio.gather(
            *(self._call(functools.partial(read, c), timeout=timeout, what=" (logs)") for c in containers)
        )
        merged = [line for group in groups for line in group]
        return merged[-lines:]

    async def exec(self, service: str, argv: list[str], *, timeout: float = 30.0) -> ExecResult:
        """Run ``argv`` (never a shell) in the service's first running container."""
        if isinstance(argv, str) or not all(isinstance(a, str) for a in argv) or not argv:
            raise AdapterError("exec takes a non-empty list of arguments (argv), never a shell string")
        container = (await self._service_containers(service, running=True))[0]

        def run() -> ExecResult:
            api = self._docker().api
            exec_id = api.exec_create(container.id, list(argv), stdout=True, stderr=True)["Id"]
            chunks: list[bytes] = []
            size = 0
            truncated = False
            for chunk in api.exec_start(exec_id, stream=True, demux=False):
                keep = chunk[: max(MAX_EXEC_OUTPUT - size, 0)]
                truncated = truncated or len(keep) < len(chunk)
                if keep:
                    chunks.append(keep)
                    size += len(keep)
            code = api.exec_inspect(exec_id).get("ExitCode")
            output = b"".join(chunks).decode("utf-8", errors="replace")
            return ExecResult(exit_code=code if code is not None else -1, output=output, truncated=truncated)

        return await self._call(run, timeout=timeout, what=f" (exec in {service})")

    async def disk(self, service: str) -> DiskUsage:
        """``df -P /`` in the service's first running container, parsed."""
        result = await self.exec(service, ["df", "-P", "/"], timeout=min(self.timeout, 15.0))
        rows = [r.split() for r in result.output.strip().splitlines()[1:] if r.strip()]
        if result.exit_code != 0 or not rows or len(rows[-1]) < 6:
            raise AdapterError(f"cannot read disk use of {service}: {result.output.strip()[:200] or 'no output'}")
        fields = rows[-1]
        size_k, used_k = int(fields[1]), int(fields[2])
        percent = (
            float(fields[4].rstrip("%"))
            if fields[4].rstrip("%").isdigit()
            else (used_k / size_k * 100 if size_k else 0.0)
        )
        container = (await self._service_containers(service, running=True))[0]
        return DiskUsage(
            container=container.name,
            service=service,
            mount=fields[5],
            size_bytes=size_k * 1024,
            used_bytes=used_k * 1024,
            percent=percent,
        )

    async def close(self) -> None:
        """Close the engine connection."""
        if self._client is not None:
            client, self._client = self._client, None
            await asyncio.to_thread(client.close)


async def _none() -> None:
    return None


def _lines(stream: Iterator[bytes]) -> Iterator[str]:
    """Split a byte stream into lines, each decoded and capped at ``MAX_LINE`` characters."""
    pending = b""
    for chunk in stream:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for raw in complete:
            yield raw.decode("utf-8", errors="replace").rstrip("\r")[:MAX_LINE]
        if len(pending) > MAX_LINE * 4:  # a line with no end: cut it, keep memory bounded
            yield pending.decode("utf-8", errors="replace")[:MAX_LINE]
            pending = b""
    if pending:
        yield pending.decode("utf-8", errors="replace").rstrip("\r")[:MAX_LINE]


def _reason(exc: BaseException) -> str:
    """The root cause of a connection failure, in a few words."""
    text = str(exc)
    for cause in (exc.__cause__, exc.__context__):
        if cause is not None and str(cause):
            text = str(cause)
    if "No such file" in text or "FileNotFoundError" in text:
        return "no such socket"
    if "Connection refused" in text:
        return "connection refused"
    if "timed out" in text.lower():
        return "timed out"
    return text.splitlines()[0][:160] if text else type(exc).__name__
