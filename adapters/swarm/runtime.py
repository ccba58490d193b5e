"""``SwarmRuntime``: the services of one Docker Swarm stack (label ``com.docker.stack.namespace``).

Reads here (tasks as containers, replica counts, logs, waiting until a service runs); the changes a
guide makes (image updates that Swarm rolls back by itself, its own rollback, forced updates, scaling)
in ``adapters/swarm/changes.py``; commands in a task's container, images and one-off containers in
``adapters/swarm/run.py``; the plumbing in ``adapters/swarm/base.py``.

A task is what a Compose container is: ``containers()`` gives one ``ContainerInfo`` per task the
orchestrator wants running (a service scaled to 0 shows nothing, so the bot marks it missing).
Everything that needs a container itself (health details, exec, disk, one-offs) works on the tasks of
this engine's node: on a one-node swarm, all of them.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from adapters.docker.io import MAX_LOG_TEXT, LineReader, frames, parse_time, time_key
from adapters.docker.spool import LineSpool, spool_each
from adapters.docker.stream import DockerStreams
from adapters.errors import AdapterError, AdapterTimeout, NotFound
from adapters.lifecycle import QUOTE, TAIL_BUDGET, TAIL_LINES, Look, wait_running
from adapters.models import ContainerInfo
from adapters.swarm.changes import SwarmChanges
from adapters.swarm.info import (
    FAILED,
    container_id,
    container_spec,
    desired_tasks,
    has_healthcheck,
    last_task_check,
    replicas_of,
    restarts,
    slot_key,
    spec_image,
    task_error,
    task_id_of,
    task_info,
    task_name,
)
from adapters.swarm.run import SwarmRun

__all__ = ["SwarmRuntime"]

#: a replica whose tasks failed this many times while ``wait_running`` waited has failed
FAILURES = 2
#: the task states Swarm leaves behind and replaces by itself (a wait goes on)
ENDED = (*FAILED, "complete", "shutdown")


class SwarmRuntime(SwarmChanges, SwarmRun, DockerStreams):
    """The services of one Swarm stack, through a manager's engine.

    ``SwarmRuntime(docker_host, stack, *, timeout=10.0, update_timeout=300.0, monitor=5.0,
    pull_timeout=300.0)``: ``timeout`` bounds each engine call, ``update_timeout`` an update, rollback
    or scaling as a whole, ``monitor`` is how long Swarm watches each new task before it counts an
    update of it as done (a failure in that time rolls the update back).
    """

    # ------------------------------------------------------------------ reads

    async def containers(self, *, stats: bool = False) -> list[ContainerInfo]:
        """One entry per task each service of the stack wants running, with cpu/memory when ``stats``.

        ``number`` is the task slot, ``state``/``health`` come from the task (and its container when it is
        on this node), ``restarts`` counts the slot's failed tasks of the same spec, ``env`` is the
        spec's. Stats are read for the tasks whose container is on this node.
        """
        services = await self._services()
        tasks = await self._tasks([s["ID"] for s in services.values()])
        infos = [info for info, _ in await self._views(services, tasks)]
        if stats:  # two rounds of one-shot samples (adapters.docker.stats); on another node: no numbers
            figures = await self._usage([info.id for info in infos if info.state == "running" and info.id])
            infos = [i.model_copy(update=figures[i.id]._asdict()) if i.id in figures else i for i in infos]
        return sorted(infos, key=lambda i: (i.service, i.number or 0, i.name))

    async def _views(
        self, services: dict[str, dict[str, Any]], tasks: list[dict[str, Any]]
    ) -> list[tuple[ContainerInfo, dict[str, Any] | None]]:
        """Each task the services want running, with its container's inspect data when it is on this node."""
        by_id = {s["ID"]: (short, s) for short, s in services.items()}
        current = [t for t in tasks if t.get("DesiredState") == "running" and t.get("ServiceID") in by_id]
        local = await self._containers([cid for t in current if (cid := container_id(t))])
        views = []
        for task in current:
            short, service = by_id[task["ServiceID"]]
            container = local.get(container_id(task) or "")
            info = task_info(
                task,
                service_name=service["Spec"]["Name"],
                service=short,
                container=container,
                healthcheck=has_healthcheck(service["Spec"]),
                restart_count=restarts(task, tasks),
            )
            views.append((info, container))
        return views

    async def replicas(self) -> dict[str, tuple[int, int]]:
        """Each service of the stack: (desired tasks, running tasks), as the orchestrator counts them."""
        return {
            name: (desired_tasks(s), int((s.get("ServiceStatus") or {}).get("RunningTasks") or 0))
            for name, s in sorted((await self._services()).items())
        }

    async def previous_images(self) -> dict[str, str]:
        """Each service's image before its last update (Swarm's ``PreviousSpec``), where that means one.

        After a rollback (Swarm's own or a requested one) the previous spec is the version rolled back
        from, never one to go back to: such a service is left out.
        """
        found = await self._services()
        return {
            name: image
            for name, s in sorted(found.items())
            if not str((s.get("UpdateStatus") or {}).get("State") or "").startswith("rollback")
            and (image := spec_image(s.get("PreviousSpec") or {}))
        }

    async def replica_counts(self) -> dict[str, int]:
        """The replicas each replicated service asks for (global services, one task per node, left out).

        What to remember before a shutdown scales the services to 0, to give back at startup.
        """
        return {
            name: count for name, s in sorted((await self._services()).items()) if (count := replicas_of(s)) is not None
        }

    # ------------------------------------------------------------------ logs

    async def logs(
        self,
        service: str,
        *,
        since: timedelta | None = None,
        lines: int = 200,
        grep: str | None = None,
        spool: LineSpool | None = None,
    ) -> list[str]:
        """The newest ``lines`` lines (stdout and stderr) of the service's tasks, in time order.

        Each task the engine keeps that has a container (any node) is read (``GET /tasks/{id}/logs``) into a
        spool of its own and those are merged by time (``spool_each``): the service's own log endpoint
        (``/services/{id}/logs``) can leave a big log's stream open without end. Without ``grep`` the engine
        sends only the last ``lines`` lines of each task; with it, the whole log is streamed through. When
        the tasks span more than one slot, each line starts with ``<service>.<slot>: ``. With ``spool``
        every one of the ``lines`` goes there and an empty list is returned (memory bounded whatever the
        lines' length); without, the newest of them that fit in 2 MiB are returned. Either way the whole
        read takes at most ``max(timeout, 30)`` seconds.
        """
        lines = max(int(lines), 0)
        found = await self._service(service)
        tasks = await self._tasks([found["ID"]])
        slots = {t["ID"]: slot_key(t) for t in tasks}
        names = {tid: f"{service}.{slot}: " for tid, slot in slots.items()} if len(set(slots.values())) > 1 else {}
        params: dict[str, Any] = {"stdout": 1, "stderr": 1, "timestamps": 1, "details": 1, "follow": 0}
        params["tail"] = "all" if grep else str(lines)
        if since is not None:
            params["since"] = f"{(datetime.now(UTC) - since).timestamp():.6f}"
        tty = bool(container_spec(found["Spec"]).get("TTY"))
        limit, what = max(self.timeout, 30.0), f" (logs of {service})"

        def read(task: dict[str, Any], part: LineSpool) -> Awaitable[list[str]]:
            reader = NewestLines(lines, grep, names, spool=part)
            return self._read_log(f"/tasks/{task['ID']}/logs", params, tty, reader, limit, what)

        async def into(target: LineSpool) -> None:
            started = sorted((t for t in tasks if container_id(t)), key=lambda t: str(t.get("CreatedAt") or ""))
            reads = [partial(read, t) for t in started]  # (a task never started has no log)
            try:
                async with asyncio.timeout(limit):  # one bound for the whole read
                    await spool_each(target, lines, reads, time_key, parallel=self.PARALLEL // 2)
            except TimeoutError as exc:
                raise AdapterTimeout(f"{self.description} did not answer within {limit:g}s{what}") from exc

        if spool is not None:
            await into(spool)
            return []
        with LineSpool(lines) as own:  # the same reads into a spool of our own: the newest lines within 2 MiB
            await into(own)
            return await asyncio.to_thread(own.tail, lines, MAX_LOG_TEXT)

    async def _read_log(
        self, path: str, params: dict[str, Any], tty: bool, reader: NewestLines, limit: float, what: str
    ) -> list[str]:
        stop = threading.Event()

        def read() -> list[str]:
            with self._stream("GET", path, self.timeout, params=params) as response:
                for stream, payload in frames(response.raw, tty=tty, stop=stop):
                    reader.feed(stream, payload)
            return reader.lines()

        try:
            return await self._call(read, timeout=limit, what=what)
        finally:
            stop.set()

    async def _tail(self, info: ContainerInfo) -> list[str]:
        """The last lines (stdout and stderr) of one task's log."""
        params = {"stdout": 1, "stderr": 1, "timestamps": 1, "details": 1, "follow": 0, "tail": str(TAIL_LINES)}
        path = f"/tasks/{task_id_of(info.name)}/logs"
        return await self._read_log(path, params, False, NewestLines(TAIL_LINES, None, {}), self.timeout, "")

    # ------------------------------------------------------------------ waiting

    async def wait_running(self, service: str, *, timeout: float, healthy: bool = True) -> list[ContainerInfo]:
        """Wait until every replica the service wants runs (and is healthy) and return its tasks.

        Looks every 0.25 s at the service and its tasks. A replica without a task yet is waited for; a
        task that failed is waited for too (Swarm replaces it), unless the replica failed ``FAILURES``
        times since the wait began: then ``AdapterError`` with the engine's reason and the tail of the
        task's log. With ``healthy``, a container reporting ``unhealthy`` fails at once.
        ``AdapterTimeout`` names what is not ready when ``timeout`` passes; ``NotFound`` when the
        service is not in the stack or wants 0 replicas.
        """
        since = datetime.now(UTC) - timedelta(seconds=1)  # a little slack for the engine's clock

        async def look() -> list[Look]:
            found = await self._service(service)
            desired = desired_tasks(found)
            if desired == 0:
                raise NotFound(f"service {service!r} of stack {self.stack!r} is scaled to 0: no replica to wait for")
            tasks = await self._tasks([found["ID"]])
            await self._fail_fast(service, found, tasks, since)
            views = await self._views({service: found}, tasks)
            looks = [Look(_waiting(info), last_task_check(container)) for info, container in views]
            return looks + _missing(service, found, [info for info, _ in views], desired)

        return await wait_running(
            look, self._tail, service=service, timeout=timeout, healthy=healthy, where=self.description
        )

    async def _fail_fast(
        self, service: str, found: dict[str, Any], tasks: list[dict[str, Any]], since: datetime
    ) -> None:
        """``AdapterError`` when one replica's tasks failed ``FAILURES`` times since ``since``."""
        failed = [
            t for t in tasks
            if (t.get("Status") or {}).get("State") in FAILED and (parse_time(t.get("CreatedAt")) or since) >= since
        ]  # fmt: skip
        for _, group in itertools.groupby(sorted(failed, key=slot_key), key=slot_key):
            runs = sorted(group, key=lambda t: str(t.get("CreatedAt") or ""))
            if len(runs) < FAILURES:
                continue
            last = runs[-1]
            name = task_name(found["Spec"]["Name"], last)
            info = task_info(
                last, service_name=found["Spec"]["Name"], service=service, container=None, healthcheck=False
            )
            raise AdapterError(
                f"service {service!r} did not come up: its tasks failed {len(runs)} times (Swarm keeps replacing"
                f" them); the last, {name}: {task_error(last)}{await self._quoted_tail(info)}"
            )

    async def _quoted_tail(self, info: ContainerInfo) -> str:
        try:
            lines = (await asyncio.wait_for(self._tail(info), TAIL_BUDGET))[-TAIL_LINES:]
        except (AdapterError, TimeoutError) as exc:
            return f" (its log cannot be read: {str(exc) or 'timed out'})"
        if not lines:
            return " (no log output)"
        return f"; the last {len(lines)} lines of its log:\n" + "\n".join(f"  {line[:QUOTE]}" for line in lines)


def _waiting(info: ContainerInfo) -> ContainerInfo:
    """A task that ended while Swarm still wants it is being replaced: to a wait, it is restarting."""
    return info.model_copy(update={"state": "restarting"}) if info.state in ("exited", "dead") else info


def _missing(service: str, found: dict[str, Any], infos: list[ContainerInfo], desired: int) -> list[Look]:
    """Stand-ins for the replicas that have no task yet (so a wait names them)."""
    name = found["Spec"]["Name"]
    if replicas_of(found) is not None:
        have = {i.number for i in infos}
        slots = [s for s in range(1, desired + 1) if s not in have]
    else:
        slots = list(range(len(infos) + 1, desired + 1))
    return [
        Look(
            ContainerInfo(id="", name=f"{name}.{s} (no task yet)", service=service, number=s, state="pending", image="")
        )
        for s in slots
    ]


class NewestLines(LineReader):
    """The newest ``keep`` lines by timestamp of an interleaved log (a service's tasks), ``grep`` applied.

    Lines arrive as ``<timestamp> <details> <text>`` (``details``: the engine's ``k=v,...`` attributes,
    among them the task id, which ``names`` maps to the line's prefix). A heap of ``keep`` lines (at most
    ``budget`` characters): memory stays bounded whatever the log's size. With ``spool`` (one task's log,
    in time order already) each line goes there as it comes instead.
    """

    def __init__(self, keep: int, grep: str | None, names: dict[str, str], *, spool: LineSpool | None = None) -> None:
        super().__init__(keep, grep, spool=spool)
        self.names = names
        self.heap: list[tuple[str, int, str, str]] = []
        self.count = itertools.count()

    def _line(self, raw: bytes) -> None:
        stamp, _, rest = raw.decode("utf-8", errors="replace").partition(" ")
        prefix = ""
        first, _, after = rest.partition(" ")
        if "com.docker.swarm." in first:  # the details attributes
            rest = after
            task = next((v for k, _, v in (p.partition("=") for p in first.split(",")) if k.endswith("task.id")), "")
            prefix = self.names.get(task, "")
        self._take(stamp, prefix, rest)

    def _hold(self, stamp: str, line: str) -> None:
        heapq.heappush(self.heap, (time_key(stamp), next(self.count), stamp, line))
        self.size += len(line)
        while len(self.heap) > self.keep or (self.size > self.budget and len(self.heap) > 1):
            self.size -= len(heapq.heappop(self.heap)[3])  # the oldest goes

    def lines(self) -> list[str]:
        """The kept lines, oldest first (a last line without newline included); none with a spool."""
        self._end()
        return [line for *_, line in sorted(self.heap)]
