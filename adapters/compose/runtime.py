"""``ComposeRuntime``: an environment's containers on one Docker engine, grouped by Compose's labels.

The docker SDK is synchronous: every call runs in a worker thread of the runtime's own pool (so that
a slow engine cannot starve the loop's default executor, which has only cpu+4 threads) and is
bounded by ``asyncio.wait_for``. Streams (logs, exec output) are read from the engine's HTTP answer
in 64 KiB blocks with a socket timeout and a stop flag, so a thread never outlives its call by more
than one socket timeout, and memory stays bounded whatever the size of a log.
"""

from __future__ import annotations

import asyncio
import heapq
import threading
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from adapters.compose.replace import ComposeReplace
from adapters.docker.info import (
    ONEOFF,
    PROJECT,
    SERVICE,
    container_info,
    container_name,
    container_number,
    last_check,
)
from adapters.docker.io import (
    LineReader,
    frames,
    image_version,
    newest_within,
    parse_df,
    parse_time,
    time_key,
)
from adapters.docker.spec import OLD_MARK
from adapters.docker.spool import LineSpool, spool_each
from adapters.docker.stream import DockerStreams
from adapters.errors import AdapterError, NotFound
from adapters.lifecycle import TAIL_LINES, Look, wait_running
from adapters.models import ContainerInfo, DiskUsage, ExecResult

__all__ = ["ComposeRuntime", "image_version", "parse_time"]


class ComposeRuntime(ComposeReplace, DockerStreams):
    """The containers of one Compose project on one Docker engine (changes: ``ComposeChanges``, ``ComposeReplace``;
    streamed exec: ``DockerStreams``)."""

    def __init__(self, docker_host: str, project: str, *, timeout: float = 10.0, pull_timeout: float = 300.0) -> None:
        super().__init__(docker_host, timeout=timeout)
        self.project = project
        self.pull_timeout = pull_timeout

    async def _summaries(self, service: str | None = None) -> list[dict[str, Any]]:
        """The project's containers as the engine lists them (one request), without one-offs and the old
        containers a replace keeps until commit or revert."""
        labels = [f"{PROJECT}={self.project}"] + ([f"{SERVICE}={service}"] if service else [])
        summaries = await self._call(
            lambda: self._api().containers(all=True, filters={"label": labels}), what=" (listing containers)"
        )
        return [
            s for s in summaries
            if (s.get("Labels") or {}).get(ONEOFF, "False") != "True" and OLD_MARK not in "".join(s.get("Names") or [])
        ]  # fmt: skip

    async def _inspect_ids(self, ids: list[str]) -> list[dict[str, Any]]:
        """Inspect data of the containers, in parallel (one removed meanwhile is simply gone)."""
        found = await self._each([partial(self._inspect, cid) for cid in ids], " (inspect)")
        for result in found:
            if isinstance(result, BaseException) and not isinstance(result, NotFound):
                raise result
        return [r for r in found if isinstance(r, dict)]

    async def _inspect_all(self, service: str | None = None) -> list[dict[str, Any]]:
        """Inspect data of the project's containers (one list request, then inspects in parallel)."""
        return await self._inspect_ids([s["Id"] for s in await self._summaries(service)])

    def _inspect(self, container_id: str) -> dict[str, Any]:
        attrs: dict[str, Any] = self._api().inspect_container(container_id)
        return attrs

    def _stop(self, container_id: str, grace: int | None) -> None:
        # the SDK's socket timeout for a stop is its own (ours + 2 s) plus the grace (10 s for None)
        self._api().stop(container_id, timeout=grace)

    def _start(self, container_id: str) -> None:
        self._api().start(container_id)

    async def _service(self, service: str, *, running: bool) -> list[dict[str, Any]]:
        found = [a for a in await self._inspect_all(service) if not running or a["State"].get("Running")]
        if not found:
            which = "running container" if running else "container"
            raise NotFound(f"no {which} for service {service!r} in project {self.project!r}")
        return sorted(found, key=lambda a: (container_number(a) or 0, container_name(a)))

    # ------------------------------------------------------------------ Runtime

    async def containers(self, *, stats: bool = False) -> list[ContainerInfo]:
        """Every container of the project (running or not), with cpu/memory when ``stats``.

        One list request, the inspects in parallel, then two samples of each running container ``GAP``
        apart, every container at once (``adapters.docker.stats``; from its cgroup when it can be, which
        costs the engine nothing more).
        """
        attrs = await self._inspect_all()
        infos = [container_info(a) for a in attrs]
        if stats:
            pids = {a["Id"]: int((a.get("State") or {}).get("Pid") or 0) for a in attrs if a["State"].get("Running")}
            figures = {cid[:12]: u for cid, u in (await self._usage(list(pids), pids)).items()}
            infos = [i.model_copy(update=figures[i.id]._asdict()) if i.id in figures else i for i in infos]
        return sorted(infos, key=lambda i: (i.service, i.number or 0, i.name))

    async def logs(
        self,
        service: str,
        *,
        since: timedelta | None = None,
        lines: int = 200,
        grep: str | None = None,
        spool: LineSpool | None = None,
    ) -> list[str]:
        """The newest ``lines`` lines (stdout and stderr) of the service's containers, merged by time.

        Without ``grep`` the engine sends only the last ``lines`` lines (``tail``); with it, the whole
        log is streamed through and only the newest ``lines`` matches are kept. Either way memory is
        bounded by ``lines``. Lines are decoded as UTF-8 (invalid bytes replaced) and cut at 4096
        characters; with several containers each line starts with the container's name. With ``spool``
        every line goes there (one spool per container, merged by time into it at the end).
        """
        lines = max(int(lines), 0)
        containers = await self._service(service, running=False)
        params: dict[str, Any] = {"stdout": 1, "stderr": 1, "timestamps": 1, "follow": 0}
        params["tail"] = "all" if grep else str(lines)
        if since is not None:
            params["since"] = f"{(datetime.now(UTC) - since).timestamp():.6f}"
        stop = threading.Event()

        def read(attrs: dict[str, Any], part: LineSpool | None) -> list[tuple[str, str]]:
            prefix = f"{container_name(attrs)}: " if len(containers) > 1 else ""
            return self._read_log(attrs, params, LineReader(lines, grep, prefix=prefix, spool=part), stop)

        def bounded(attrs: dict[str, Any], part: LineSpool | None) -> Awaitable[list[tuple[str, str]]]:
            return self._call(partial(read, attrs, part), timeout=max(self.timeout, 30.0), what=f" (logs of {service})")

        try:
            if spool is not None:
                await spool_each(spool, lines, [partial(bounded, a) for a in containers], time_key)
                return []
            groups = await asyncio.gather(*(bounded(a, None) for a in containers))
        finally:
            stop.set()
        if len(groups) == 1:
            return [text for _, text in groups[0]]
        merged = list(heapq.merge(*groups, key=lambda item: time_key(item[0])))
        return newest_within(merged[max(len(merged) - lines, 0) :])

    def _read_log(
        self, attrs: dict[str, Any], params: dict[str, Any], reader: LineReader, stop: threading.Event
    ) -> list[tuple[str, str]]:
        """One container's log, as the engine sends it for ``params``, through ``reader``."""
        response = self._stream("GET", f"/containers/{attrs['Id']}/logs", self.timeout, params=params)
        with response:
            tty = bool((attrs.get("Config") or {}).get("Tty"))
            for stream, payload in frames(response.raw, tty=tty, stop=stop):
                reader.feed(stream, payload)
        return reader.close()

    async def _exec_target(self, service: str) -> dict[str, Any]:
        """The service's first running container (where ``exec`` and ``exec_stream`` run)."""
        return (await self._service(service, running=True))[0]

    async def exec(self, service: str, argv: list[str], *, timeout: float = 30.0) -> ExecResult:
        """Run ``argv`` (a list, never a shell string) in the service's first running container.

        Output (stdout and stderr) is kept up to 64 KiB (``truncated`` when cut). A command that runs
        longer than ``timeout`` raises ``AdapterTimeout`` (the engine cannot stop an exec: the process
        may go on inside the container).
        """
        if isinstance(argv, str) or not argv or not all(isinstance(a, str) for a in argv):
            raise AdapterError("exec takes a non-empty list of arguments (argv), never a shell string")
        return await self._exec(await self._exec_target(service), service, list(argv), timeout)

    async def disk(self, service: str) -> DiskUsage:
        """``df -P /`` in the service's first running container, parsed."""
        container = (await self._service(service, running=True))[0]
        result = await self._exec(container, service, ["df", "-P", "/"], self.timeout)
        parsed = parse_df(result.output) if result.exit_code == 0 else None
        if parsed is None:
            text = result.output.strip()[:200] or "no output"
            raise AdapterError(f"cannot read the disk use of service {service!r} (df -P /: {text})")
        mount, size, used, percent = parsed
        return DiskUsage(
            container=container_name(container),
            service=service,
            mount=mount,
            size_bytes=size,
            used_bytes=used,
            percent=percent,
        )

    async def wait_running(self, service: str, *, timeout: float, healthy: bool = True) -> list[ContainerInfo]:
        """Inspect the service's containers every 0.25 s until all run (and are healthy); see ``Runtime``."""

        async def look() -> list[Look]:
            return [Look(container_info(a), last_check(a)) for a in await self._service(service, running=False)]

        return await wait_running(
            look, self._tail, service=service, timeout=timeout, healthy=healthy, where=self.description
        )

    async def _tail(self, info: ContainerInfo) -> list[str]:
        """The last lines (stdout and stderr) of one container's log."""
        params = {"stdout": 1, "stderr": 1, "timestamps": 1, "follow": 0, "tail": str(TAIL_LINES)}
        stop = threading.Event()
        try:
            attrs = await self._call(partial(self._inspect, info.id), what=f" (inspect {info.name})")
            read = partial(self._read_log, attrs, params, LineReader(TAIL_LINES, None), stop)
            return [text for _, text in await self._call(read, what=f" (log of {info.name})")]
        finally:
            stop.set()
