"""In-memory stand-ins for the adapters, for fast unit tests.

They behave like the real ones (``tests/integration/test_runtime_contract.py`` runs the same
assertions against both), return the same models and raise the same errors.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from adapters.errors import AdapterError, NotFound
from adapters.models import CheckResult, ContainerInfo, DiskUsage, ExecResult, ProbeRequest

ExecHandler = Callable[[str, list[str]], ExecResult]


class FakeRuntime:
    """A runtime over a list of containers held in memory."""

    def __init__(self, containers: Sequence[ContainerInfo] = (), *, description: str = "fake engine") -> None:
        self.description = description
        self.items: list[ContainerInfo] = list(containers)
        #: container name -> (time, line) pairs, oldest first
        self.log_lines: dict[str, list[tuple[datetime, str]]] = {}
        #: (service, argv...) -> result; or a handler for anything else
        self.exec_results: dict[tuple[str, ...], ExecResult] = {}
        self.exec_handler: ExecHandler | None = None
        self.disk_percent: dict[str, float] = {}
        #: when set, every call raises it (an engine that does not answer)
        self.fail: AdapterError | None = None
        #: seconds every call takes
        self.delay = 0.0
        self.calls: list[str] = []

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
    ) -> ContainerInfo:
        """Add a container of ``service`` (named like Compose names it) and return it."""
        image = image or f"shop/{service}:1.0"
        tag = image.rsplit("/", 1)[-1]
        info = ContainerInfo(
            id=f"{len(self.items):012x}",
            name=f"fake-{service}-{number}",
            service=service,
            number=number,
            state=state,
            health=health,
            image=image,
            version=tag.rsplit(":", 1)[1] if ":" in tag else None,
            restarts=restarts,
            started_at=datetime.now(UTC) if state == "running" else None,
            exit_code=exit_code if state != "running" else None,
            cpu_percent=cpu,
            memory_percent=memory,
            env=env or {},
        )
        self.items.append(info)
        now = datetime.now(UTC)
        self.log_lines[info.name] = [(now, line) for line in logs]
        return info

    def log(self, container: str, line: str, *, at: datetime | None = None) -> None:
        """Append a log line to a container."""
        self.log_lines.setdefault(container, []).append((at or datetime.now(UTC), line))

    # ------------------------------------------------------------------ Runtime

    async def _enter(self, what: str) -> None:
        self.calls.append(what)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail is not None:
            raise self.fail

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
            raise NotFound(f"no {which} for service {service!r} in project 'fake'")
        return sorted(found, key=lambda c: (c.number or 0, c.name))

    async def logs(
        self, service: str, *, since: timedelta | None = None, lines: int = 200, grep: str | None = None
    ) -> list[str]:
        """The newest ``lines`` lines, as the real runtime selects them."""
        await self._enter(f"logs {service}")
        containers = self._of(service, running=False)
        after = datetime.now(UTC) - since if since else None
        out: list[str] = []
        for c in containers:
            picked = [
                line
                for at, line in self.log_lines.get(c.name, [])
                if (after is None or at >= after) and (grep is None or grep.lower() in line.lower())
            ][-lines:]
            out += [f"{c.name}: {line}" if len(containers) > 1 else line for line in picked]
        return out[-lines:]

    async def exec(self, service: str, argv: list[str], *, timeout: float = 30.0) -> ExecResult:
        """A canned result for ``(service, *argv)``, the handler's, or exit 127 (not found)."""
        if isinstance(argv, str) or not argv or not all(isinstance(a, str) for a in argv):
            raise AdapterError("exec takes a non-empty list of arguments (argv), never a shell string")
        await self._enter(f"exec {service} {argv}")
        self._of(service, running=True)
        key = (service, *argv)
        if key in self.exec_results:
            return self.exec_results[key]
        if self.exec_handler is not None:
            return self.exec_handler(service, list(argv))
        return ExecResult(exit_code=127, output=f"exec: {argv[0]}: not found\n")

    async def disk(self, service: str) -> DiskUsage:
        """Disk use from ``disk_percent`` (default 20%)."""
        await self._enter(f"disk {service}")
        container = self._of(service, running=True)[0]
        percent = self.disk_percent.get(service, 20.0)
        size = 10 * 2**30
        return DiskUsage(
            container=container.name,
            service=service,
            mount="/",
            size_bytes=size,
            used_bytes=int(size * percent / 100),
            percent=percent,
        )

    async def close(self) -> None:
        """Nothing to release."""


class FakeProbe:
    """Health checks answered from a table: url -> (ok, status, latency, error)."""

    def __init__(self, answers: dict[str, CheckResult] | None = None, *, delay: float = 0.0) -> None:
        self.answers = dict(answers or {})
        self.delay = delay
        self.requests: list[ProbeRequest] = []

    def answer(self, url: str, *, ok: bool = True, status: int | None = 200, latency: float = 5.0,
               error: str | None = None) -> None:  # fmt: skip
        """Set what a check of ``url`` returns."""
        self.answers[url] = CheckResult(name="", url=url, ok=ok, status_code=status, latency_ms=latency, error=error)

    async def check(self, requests: Sequence[ProbeRequest]) -> list[CheckResult]:
        """One result per request, in order; unknown URLs are refused connections."""
        self.requests.extend(requests)
        if self.delay:
            await asyncio.sleep(self.delay)
        out = []
        for r in requests:
            a = self.answers.get(r.url)
            if a is None:
                out.append(CheckResult(name=r.name, url=r.url, ok=False, error="connection refused"))
            else:
                out.append(a.model_copy(update={"name": r.name}))
        return out

    async def close(self) -> None:
        """Nothing to release."""


class FakeBackends:
    """Backends for unit tests: one FakeRuntime per environment, one FakeProbe."""

    def __init__(self, runtimes: dict[str, FakeRuntime] | None = None, probe: FakeProbe | None = None) -> None:
        self.runtimes = runtimes or {}
        self._probe = probe or FakeProbe()

    @property
    def probe(self) -> FakeProbe:
        """The fake probe."""
        return self._probe

    def runtime(self, env: str) -> FakeRuntime:
        """The environment's fake runtime (created empty on first use)."""
        return self.runtimes.setdefault(env, FakeRuntime())

    async def close(self) -> None:
        """Nothing to release."""
