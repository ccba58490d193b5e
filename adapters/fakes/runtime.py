"""In-memory stand-ins for the adapters, for fast unit tests.

They behave like the real ones (``tests/integration/test_runtime_contract.py`` runs the same
assertions against both), return the same models and raise the same errors.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from adapters.docker.io import MAX_EXEC_OUTPUT, MAX_LINE, image_version, newest_within, parse_df
from adapters.docker.spool import LineSpool
from adapters.errors import AdapterError, AdapterTimeout, EngineUnavailable, NotFound
from adapters.fakes.buckets import InMemoryBuckets
from adapters.fakes.certs import FakeCerts
from adapters.fakes.changes import AfterRestart, FakeChanges, OneoffHandler
from adapters.fakes.metrics import FakeMetrics
from adapters.fakes.store import FakeStreams, InMemoryStore
from adapters.lifecycle import TAIL_LINES, Look, Progress, grace_seconds, progress_line, wait_running
from adapters.models import CheckResult, ContainerInfo, DiskUsage, ExecResult, ProbeRequest

__all__ = [
    "AfterRestart",
    "ExecHandler",
    "FakeBackends",
    "FakeProbe",
    "FakeRuntime",
    "InMemoryStore",
    "OneoffHandler",
    "exec_not_found",
]

#: ``handler(service, argv)`` -> the result of running ``argv`` in the service's container
ExecHandler = Callable[[str, list[str]], ExecResult]


def exec_not_found(argv: Sequence[str]) -> ExecResult:
    """What the Docker engine answers when ``argv[0]`` does not exist in the container."""
    return ExecResult(
        exit_code=126,
        output=f"OCI runtime exec failed: exec failed: unable to start container process: "
        f'exec: "{argv[0]}": executable file not found in $PATH: unknown\r\n',
    )


class FakeRuntime(FakeStreams, FakeChanges):
    """A ``Runtime`` over containers held in memory, behaving like ``ComposeRuntime``.

    ``containers``: the containers; ``logs``: container name -> its log lines, oldest first;
    ``exec_results``: ``(service, *argv)`` -> canned result; ``exec_handler``: called for any other
    argv. Without either, a command is "executable file not found" (exit 126), as on the engine.
    Set ``fail`` to make every call raise (``go_away`` sets the engine's own "does not answer") and
    ``delay`` to make every call take that long: past ``timeout`` (the engine-call bound, 10 s as on
    ``ComposeRuntime``) it ends as the real runtime's does. A ``(service, *argv)`` in ``slow_commands``
    never finishes: ``exec`` and ``run_oneoff`` end at their timeout with the real message.
    ``calls`` records what was asked. (tests/integration/test_fakes_contract.py holds these to the engine.)

    ``restart`` does what the engine does: each container runs again with a new ``started_at``,
    ``restarts`` back to 0 (Docker's RestartCount counts only the restart policy's restarts since the
    last manual start) and health ``starting``; from the next call on it is what ``after_restart``
    (service -> ``AfterRestart``) says, by default running and healthy. Images, one-offs, replace /
    revert / commit and stop / start: ``FakeChanges`` (``images``, ``registry``, ``oneoff_results``,
    ``after_replace``, ``unstartable``, ``kept``). Streamed exec (backups): ``FakeStreams``
    (``stream_handler``).
    """

    def __init__(
        self,
        containers: Sequence[ContainerInfo] = (),
        *,
        logs: Mapping[str, Sequence[str]] | None = None,
        exec_results: Mapping[tuple[str, ...], ExecResult] | None = None,
        exec_handler: ExecHandler | None = None,
        project: str = "shop",
        description: str = "fake engine",
        timeout: float = 10.0,
    ) -> None:
        self.description = description
        #: the bound of one engine call
        self.timeout = timeout
        #: ``(service, *argv)`` of commands that never finish (exec and one-offs time out)
        self.slow_commands: set[tuple[str, ...]] = set()
        self.project = project
        self.items: list[ContainerInfo] = list(containers)
        #: container name -> (time, line) pairs, oldest first
        self.log_lines: dict[str, list[tuple[datetime, str]]] = {}
        for name, lines in (logs or {}).items():
            self.log(name, *lines)
        self.exec_results: dict[tuple[str, ...], ExecResult] = dict(exec_results or {})
        self.exec_handler: ExecHandler | None = exec_handler
        #: service -> disk use in percent of ``disk()`` (default 20%) unless a ``df`` result is canned
        self.disk_percent: dict[str, float] = {}
        #: when set, every call raises it (an engine that does not answer)
        self.fail: AdapterError | None = None
        #: seconds every call takes
        self.delay = 0.0
        self.calls: list[str] = []
        #: service -> what its containers turn into after a restart (default: ``AfterRestart()``)
        self.after_restart: dict[str, AfterRestart] = {}
        #: container id -> what it turns into at the next call (a restart in progress)
        self._pending: dict[str, AfterRestart] = {}
        #: container id -> the outcome of its last health check (``Look.check``)
        self.checks: dict[str, str | None] = {}
        self._init_changes()

    # ------------------------------------------------------------------ set-up helpers

    def add(
        self,
        service: str,
        *,
        state: str = "running",
        image: str | None = None,
        number: int = 1,
        health: str | None = None,
        env: dict[str, str] | None = None,
        logs: Sequence[str] = (),
        cpu: float | None = 1.0,
        memory: float | None = 10.0,
        restarts: int = 0,
        exit_code: int | None = None,
        started_at: datetime | None = None,
    ) -> ContainerInfo:
        """Add a container of ``service``, named as Compose names it, and return it.

        ``image`` defaults to ``shop/<service>:1.0``; ``cpu``/``memory`` are what ``containers(stats=True)``
        reports while it runs; a container that ever started (any state but ``created``) has a
        ``started_at``; a stopped one has an ``exit_code`` (default 0).
        """
        image = image or f"shop/{service}:1.0"
        now = datetime.now(UTC)
        info = ContainerInfo(
            id=f"{len(self.items) + 1:012x}",
            name=f"{self.project}-{service}-{number}",
            service=service,
            number=number,
            state=state,
            health=health,
            image=image,
            version=image_version(image),
            restarts=restarts,
            started_at=None if state == "created" else started_at or now - timedelta(minutes=5),
            exit_code=None if state in ("running", "created") else exit_code or 0,
            cpu_percent=cpu,
            memory_percent=memory,
            memory_bytes=None if memory is None else int(memory * 2**20),
            env=env or {},
        )
        self.items.append(info)
        self.log(info.name, *logs)
        return info

    def log(self, container: str, *lines: str, at: datetime | None = None) -> None:
        """Append log lines to a container (by name), written ``at`` (default now)."""
        stamp = at or datetime.now(UTC)
        self.log_lines.setdefault(container, []).extend((stamp, line) for line in lines)

    def set_state(self, service: str, state: str, *, health: str | None = None, number: int = 1) -> None:
        """Change a container's state (and health), as a restart or a crash would."""
        for index, c in enumerate(self.items):
            if c.service == service and c.number == number:
                self.items[index] = c.model_copy(update={"state": state, "health": health})
                return
        raise KeyError(f"no container {service}/{number}")

    # ------------------------------------------------------------------ Runtime

    def go_away(self, reason: str = "no such socket") -> None:
        """From now on every call fails as on an engine that is not there."""
        self.fail = EngineUnavailable(f"{self.description} does not answer ({reason})")

    async def _enter(self, what: str, timeout: float | None = None) -> None:
        self.calls.append(what)
        if self.fail is not None:
            raise self.fail
        if self.delay:
            if timeout is not None and self.delay > timeout:  # a call bounded by its own timeout (a one-off's)
                await asyncio.sleep(timeout)
                raise AdapterTimeout(f"{self.description} did not answer within {timeout:g}s")
            if self.delay > self.timeout:  # the real runtime lists the containers first, bounded
                await asyncio.sleep(self.timeout)
                raise AdapterTimeout(
                    f"{self.description} did not answer within {self.timeout:g}s (listing containers)"
                )
            await asyncio.sleep(self.delay)
        self._settle()

    async def _never_finishes(self, key: tuple[str, ...], timeout: float, message: str) -> None:
        """A command in ``slow_commands`` runs until its timeout, then fails as on the engine."""
        if key in self.slow_commands:
            await asyncio.sleep(timeout)
            raise AdapterTimeout(message)

    def _settle(self) -> None:
        """Restarted containers become what ``after_restart`` says (their first look after the restart)."""
        for index, c in enumerate(self.items):
            after = self._pending.pop(c.id, None)
            if after is not None:
                self.checks[c.id] = after.check if c.health is not None else None
                running = after.state in ("running", "created")
                self.items[index] = c.model_copy(
                    update={
                        "state": after.state,
                        "health": None if c.health is None else after.health,
                        "exit_code": None if running else after.exit_code or 0,
                    }
                )

    async def containers(self, *, stats: bool = False) -> list[ContainerInfo]:
        """Every container; cpu/memory only with ``stats`` and only for running ones."""
        await self._enter("containers")
        out = []
        for c in self.items:
            if not stats or c.state != "running":
                c = c.model_copy(update={"cpu_percent": None, "memory_percent": None, "memory_bytes": None})
            out.append(c)
        return sorted(out, key=lambda i: (i.service, i.number or 0, i.name))

    def _of(self, service: str, *, running: bool) -> list[ContainerInfo]:
        found = [c for c in self.items if c.service == service and (not running or c.state == "running")]
        if not found:
            which = "running container" if running else "container"
            raise NotFound(f"no {which} for service {service!r} in project {self.project!r}")
        return sorted(found, key=lambda c: (c.number or 0, c.name))

    async def logs(
        self,
        service: str,
        *,
        since: timedelta | None = None,
        lines: int = 200,
        grep: str | None = None,
        spool: LineSpool | None = None,
    ) -> list[str]:
        """The newest ``lines`` lines of the service's containers, merged by time, as the real runtime does
        (in a worker thread, as the real runtime reads them)."""
        await self._enter(f"logs {service}")
        containers = self._of(service, running=False)
        lines = max(int(lines), 0)
        after = datetime.now(UTC) - since if since else None
        needle = grep.lower() if grep else None

        def read() -> list[str]:
            groups = []
            for c in containers:
                prefix = f"{c.name}: " if len(containers) > 1 else ""
                picked = [
                    (at, prefix + line[:MAX_LINE])
                    for at, line in self.log_lines.get(c.name, [])
                    if (after is None or at >= after) and (needle is None or needle in line[:MAX_LINE].lower())
                ]
                groups.append(picked[max(len(picked) - lines, 0) :])
            merged = list(heapq.merge(*groups, key=lambda item: item[0]))
            if spool is not None:
                spool.extend((at.isoformat(), text) for at, text in merged[max(len(merged) - lines, 0) :])
                spool.finish()
                return []
            return newest_within(merged[max(len(merged) - lines, 0) :])

        return await asyncio.to_thread(read)

    async def exec(self, service: str, argv: list[str], *, timeout: float = 30.0) -> ExecResult:
        """A canned result for ``(service, *argv)``, else the handler's, else "executable file not found"."""
        if isinstance(argv, str) or not argv or not all(isinstance(a, str) for a in argv):
            raise AdapterError("exec takes a non-empty list of arguments (argv), never a shell string")
        await self._enter(f"exec {service} {argv}")
        self._of(service, running=True)
        await self._never_finishes(
            (service, *argv), timeout,
            f"{argv[0]} in service {service!r} did not finish within {timeout:g}s"
            " (it may still be running in the container)",
        )  # fmt: skip
        return self._run(service, list(argv))

    def _run(self, service: str, argv: list[str]) -> ExecResult:
        result = self.exec_results.get((service, *argv))
        if result is None:
            result = self.exec_handler(service, argv) if self.exec_handler else exec_not_found(argv)
        data = result.output.encode()
        if len(data) > MAX_EXEC_OUTPUT:  # bounded like the engine's output
            text = data[:MAX_EXEC_OUTPUT].decode("utf-8", errors="replace")
            result = result.model_copy(update={"output": text, "truncated": True})
        return result

    async def disk(self, service: str) -> DiskUsage:
        """Parsed from a canned ``df -P /`` result when there is one, else from ``disk_percent`` (20%)."""
        await self._enter(f"disk {service}")
        container = self._of(service, running=True)[0]
        if (service, "df", "-P", "/") in self.exec_results:
            result = self._run(service, ["df", "-P", "/"])
            parsed = parse_df(result.output) if result.exit_code == 0 else None
            if parsed is None:
                text = result.output.strip()[:200] or "no output"
                raise AdapterError(f"cannot read the disk use of service {service!r} (df -P /: {text})")
            mount, size, used, percent = parsed
        else:
            percent = self.disk_percent.get(service, 20.0)
            mount, size = "/", 10 * 2**30
            used = int(size * percent / 100)
        return DiskUsage(
            container=container.name, service=service, mount=mount, size_bytes=size, used_bytes=used, percent=percent
        )

    async def restart(
        self, service: str, *, stop_timeout: float | None = None, progress: Progress | None = None
    ) -> list[ContainerInfo]:
        """Restart each container of the service in turn, as the engine does (see the class docstring)."""
        grace = grace_seconds(stop_timeout)
        await self._enter(f"restart {service}" + ("" if grace is None else f" grace={grace}"))
        targets = self._of(service, running=False)
        for index, c in enumerate(targets, 1):
            if progress is not None:
                await progress(progress_line(c.name, index, len(targets)))
            now = datetime.now(UTC)
            if c.started_at is not None and now <= c.started_at:
                now = c.started_at + timedelta(microseconds=1)
            update = {"state": "running", "exit_code": None, "restarts": 0, "started_at": now}
            update["health"] = None if c.health is None else "starting"
            self.items[self.items.index(c)] = c.model_copy(update=update)
            after = self.after_restart.get(service, AfterRestart())
            self.log(c.name, *after.logs, at=now)
            self._pending[c.id] = after
        return self._of(service, running=False)

    async def wait_running(self, service: str, *, timeout: float, healthy: bool = True) -> list[ContainerInfo]:
        """Look every 0.25 s until the service's containers run (and are healthy), as the real runtime does."""
        await self._enter(f"wait_running {service}")

        async def look() -> list[Look]:
            if self.fail is not None:
                raise self.fail
            self._settle()
            return [Look(c, self.checks.get(c.id)) for c in self._of(service, running=False)]

        async def tail(info: ContainerInfo) -> list[str]:
            return [line for _, line in self.log_lines.get(info.name, [])[-TAIL_LINES:]]

        return await wait_running(look, tail, service=service, timeout=timeout, healthy=healthy, where=self.description)

    async def close(self) -> None:
        """Nothing to release."""


class FakeProbe:
    """Health checks answered from a table: url -> (ok, status, latency, error), concurrently like
    ``HttpProbe``; a server slower (``delay``, or the URL's own) than a request's timeout is "timed out"
    once that timeout has passed. (tests/integration/test_fakes_contract.py holds it to HttpProbe.)"""

    def __init__(self, answers: dict[str, CheckResult] | None = None, *, delay: float = 0.0) -> None:
        self.answers = dict(answers or {})
        self.delay = delay
        #: url -> seconds its server takes to answer (besides ``delay``)
        self.delays: dict[str, float] = {}
        self.requests: list[ProbeRequest] = []

    def answer(self, url: str, *, ok: bool = True, status: int | None = 200, latency: float = 5.0,
               error: str | None = None, delay: float = 0.0) -> None:  # fmt: skip
        """Set what a check of ``url`` returns (after ``delay`` seconds)."""
        self.answers[url] = CheckResult(name="", url=url, ok=ok, status_code=status, latency_ms=latency, error=error)
        self.delays[url] = delay

    async def _one(self, r: ProbeRequest) -> CheckResult:
        wait = self.delay + self.delays.get(r.url, 0.0)
        if wait > r.timeout:
            await asyncio.sleep(r.timeout)
            return CheckResult(name=r.name, url=r.url, ok=False, latency_ms=r.timeout * 1000, error="timed out")
        if wait:
            await asyncio.sleep(wait)
        a = self.answers.get(r.url)
        if a is None:
            return CheckResult(name=r.name, url=r.url, ok=False, error="connection refused")
        return a.model_copy(update={"name": r.name})

    async def check(self, requests: Sequence[ProbeRequest]) -> list[CheckResult]:
        """One result per request, in order; unknown URLs are refused connections."""
        self.requests.extend(requests)
        return list(await asyncio.gather(*(self._one(r) for r in requests)))

    async def close(self) -> None:
        """Nothing to release."""


class FakeBackends:
    """Backends for unit tests: one FakeRuntime and one InMemoryStore per environment, one FakeProbe."""

    def __init__(self, runtimes: dict[str, FakeRuntime] | None = None, probe: FakeProbe | None = None) -> None:
        self.runtimes = runtimes or {}
        self._probe = probe or FakeProbe()
        self.stores: dict[str, InMemoryStore] = {}
        #: the certificates ``cert_check`` reads
        self.certs = FakeCerts()
        #: the metrics sources by name (``prometheus``, ``cloudwatch``), created with no data on first use
        self.metrics_sources: dict[str, FakeMetrics] = {}
        #: the buckets ``backup --files`` copies between
        self.buckets = InMemoryBuckets()

    @property
    def probe(self) -> FakeProbe:
        """The fake probe."""
        return self._probe

    def runtime(self, env: str) -> FakeRuntime:
        """The environment's fake runtime (created empty on first use)."""
        return self.runtimes.setdefault(env, FakeRuntime())

    def store(self, env: str) -> InMemoryStore:
        """The environment's in-memory backup store (created empty on first use)."""
        return self.stores.setdefault(env, InMemoryStore())

    def metrics(self, source: str) -> FakeMetrics:
        """The fake metrics source named ``source`` (created with no data on first use)."""
        return self.metrics_sources.setdefault(source, FakeMetrics(source=source))

    async def close(self) -> None:
        """Nothing to release."""
