"""A real Prometheus for tests (Debian's ``prometheus``), scraping a small exporter of ours every second.

``Exporter`` is an aiohttp app in a thread of its own that exports, through ``prometheus-client``,
``http_requests_total{env, code}`` and ``http_request_duration_seconds{env}`` as if it served
``rate`` requests a second per environment; tests turn its error share and latency up and down.
``start_prometheus`` runs ``prometheus`` on a free loopback port with its own data directory,
scraping the exporter at 1 s, and waits until it is ready.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from tests.helpers.http_servers import free_port

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0)


class PrometheusMissing(Exception):
    """Debian's prometheus is not installed."""


@dataclass
class Traffic:
    """What one environment's simulated traffic looks like now."""

    error_percent: float = 0.0
    latency: float = 0.05
    rate: int = 20


class Exporter:
    """The test app's metrics on ``http://127.0.0.1:{port}/metrics``; ``traffic[env]`` drives them."""

    def __init__(self, envs: tuple[str, ...] = ("prod",)) -> None:
        self.port = free_port()
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("http_requests", "requests served", ["env", "code"], registry=self.registry)
        self.duration = Histogram("http_request_duration_seconds", "request latency", ["env"],
                                  buckets=BUCKETS, registry=self.registry)  # fmt: skip
        self.traffic: dict[str, Traffic] = {env: Traffic() for env in envs}
        for env in envs:  # both series exist from the start, at 0, as a real app's would after its first error
            self.requests.labels(env=env, code="200")
            self.requests.labels(env=env, code="500")
        self.scrapes = 0
        self._owed: dict[str, float] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None

    @property
    def target(self) -> str:
        """host:port for Prometheus's scrape config."""
        return f"127.0.0.1:{self.port}"

    def tick(self, seconds: float) -> None:
        """Serve ``seconds`` worth of simulated requests in every environment."""
        for env, t in self.traffic.items():
            total = max(1, round(t.rate * seconds))
            owed = self._owed.get(env, 0.0) + total * t.error_percent / 100
            errors = min(total, int(owed))
            self._owed[env] = owed - errors
            if errors:
                self.requests.labels(env=env, code="500").inc(errors)
            if total - errors:
                self.requests.labels(env=env, code="200").inc(total - errors)
            for _ in range(total):
                self.duration.labels(env=env).observe(t.latency)

    async def _metrics(self, request: web.Request) -> web.Response:
        self.scrapes += 1
        return web.Response(body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _main(self, ready: threading.Event) -> None:
        self._stop = asyncio.Event()
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        ready.set()
        try:
            while not self._stop.is_set():
                self.tick(0.1)
                try:
                    await asyncio.wait_for(self._stop.wait(), 0.1)
                except TimeoutError:
                    pass
        finally:
            await runner.cleanup()

    def start(self) -> Exporter:
        """Serve in a thread of its own (independent of the tests' event loops)."""
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            loop.run_until_complete(self._main(ready))
            loop.close()

        self._thread = threading.Thread(target=run, name="test-exporter", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the test exporter did not start")
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)


@dataclass
class Prometheus:
    """A running Prometheus: ``url`` is its HTTP API base."""

    proc: subprocess.Popen[bytes]
    root: Path
    port: int
    targets: list[str] = field(default_factory=list)
    #: the exporter it scrapes (set by the fixture)
    exporter: Any = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def query(self, expr: str) -> dict:
        """An instant query's JSON answer (for tests that wait for data to arrive)."""
        return httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=5).json()

    def wait_for_data(self, expr: str, timeout: float = 30.0) -> None:
        """Wait until ``expr`` gives at least one series (the first scrapes have landed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = self.query(expr)
            if answer.get("status") == "success" and answer["data"]["result"]:
                return
            time.sleep(0.2)
        raise AssertionError(f"Prometheus has no data for {expr} after {timeout} s")

    def stop(self) -> None:
        """Stop Prometheus and remove its data."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def start_prometheus(targets: list[str], *, scrape_interval: str = "1s") -> Prometheus:
    """Debian's prometheus on a free loopback port, scraping ``targets`` every ``scrape_interval``."""
    binary = shutil.which("prometheus") or ("/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None)
    if binary is None:
        raise PrometheusMissing("prometheus is not installed (Debian: apt-get install prometheus)")
    root = Path(tempfile.mkdtemp(prefix="obprom-"))
    port = free_port()
    config = root / "prometheus.yml"
    config.write_text(
        f"global: {{scrape_interval: {scrape_interval}, evaluation_interval: {scrape_interval}}}\n"
        "scrape_configs:\n"
        "  - job_name: app\n"
        f"    scrape_interval: {scrape_interval}\n"
        f"    static_configs: [{{targets: {targets!r}}}]\n".replace("'", '"')
    )
    log = (root / "log").open("wb")
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={root / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT, cwd=root,
    )  # fmt: skip
    server = Prometheus(proc=proc, root=root, port=port, targets=targets)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            text = (root / "log").read_text(errors="replace")[-2000:]
            server.stop()
            raise RuntimeError(f"prometheus exited with {proc.returncode}: {text}")
        try:
            if httpx.get(f"{server.url}/-/ready", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError("prometheus did not become ready within 60 s")
        time.sleep(0.2)
