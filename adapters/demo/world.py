"""``DemoWorld``: the shop's runtime, database, health endpoints and backup directory; ``DemoBackends`` on it."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from adapters.demo.health import HealthServer
from adapters.demo.shop import BAD_REASON, BAD_RELEASE, PROJECT, DemoDatabase, build_runtime
from adapters.errors import NotFound
from adapters.fakes import FakeMetrics, FakeRuntime
from adapters.http.probe import HttpProbe
from adapters.stores.file import FileStore

#: the demo's one environment
DEMO_ENV = "demo"


class DemoWorld:
    """The demo shop, living in ``root`` (its database, backups and ops.yml), until ``close``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.project = PROJECT
        self.db = DemoDatabase()
        self.runtime: FakeRuntime
        self.runtime, self.secret = build_runtime(self.db)
        self.backups = root / "backups"
        self.backups.mkdir(parents=True, exist_ok=True)
        self.health = HealthServer(self.answer)
        self.health.start()

    @property
    def url(self) -> str:
        """Where the shop's health endpoints answer."""
        return self.health.url

    @property
    def store_url(self) -> str:
        """The backup store: a directory of the demo's own."""
        return f"file://{self.backups.resolve()}/"

    def _running(self, service: str) -> list[Any]:
        return [c for c in self.runtime.items if c.service == service and c.state == "running"]

    def answer(self, path: str) -> tuple[int, dict[str, Any]]:
        """The shop's health endpoints, from the runtime's state."""
        if path == "/health":
            api = self._running("api")
            if not api:
                return 502, {"status": "error", "error": "bad gateway: no api container is running"}
            if any(c.version == BAD_RELEASE for c in api):
                return 503, {"status": "error", "error": BAD_REASON, "version": BAD_RELEASE}
            return 200, {"status": "ok", "version": api[0].version}
        if path == "/health/db":
            if not self._running("postgres"):
                return 503, {"status": "error", "error": "postgres is not running"}
            return 200, {"status": "ok", "orders": len(self.db.orders)}
        if path == "/health/cache":
            if not self._running("redis"):
                return 503, {"status": "error", "error": "redis is not running"}
            return 200, {"status": "ok"}
        return 404, {"status": "error", "error": f"no route {path}"}

    def config_text(self, users: Sequence[str] = ()) -> str:
        """The demo's ops.yml, pointing at this world; ``users`` (Slack ids) may also request and approve."""
        text = resources.files("adapters.demo").joinpath("ops.yml").read_text(encoding="utf-8")
        extra = "".join(f", {u}" for u in users)
        return text.replace("@URL@", self.url).replace("@STORE@", self.store_url).replace("@USERS@", extra)

    def backends(self) -> DemoBackends:
        """Backends for the bot's engine, on this world."""
        return DemoBackends(self)

    def close(self) -> None:
        """Stop the health endpoints and remove the demo's directory."""
        self.health.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class DemoBackends:
    """The bot's backends in the demo: the demo runtime, a real HTTP probe, a file store in the demo's directory."""

    def __init__(self, world: DemoWorld) -> None:
        self.world = world
        self._probe: HttpProbe | None = None
        self._store: FileStore | None = None

    @property
    def probe(self) -> HttpProbe:
        """The HTTP probe (created on first use, inside the event loop)."""
        if self._probe is None:
            self._probe = HttpProbe()
        return self._probe

    def runtime(self, env: str) -> FakeRuntime:
        """The demo runtime (the demo has one environment)."""
        if env != DEMO_ENV:
            raise NotFound(f"the demo has one environment, {DEMO_ENV}, not {env!r}")
        return self.world.runtime

    def store(self, env: str) -> FileStore:
        """The demo's backup directory."""
        self.runtime(env)
        if self._store is None:
            self._store = FileStore(self.world.store_url)
        return self._store

    def metrics(self, source: str) -> FakeMetrics:
        """A metrics source with no data: the demo's ops.yml has no ``monitoring`` (nothing asks for it)."""
        return FakeMetrics(source=source)

    async def close(self) -> None:
        """Close the probe's connections (the world is closed by whoever made it)."""
        probe, self._probe = self._probe, None
        if probe is not None:
            await probe.close()
