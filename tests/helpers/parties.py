"""Outside parties for the preflight tests: a real Prometheus, a real SMTP server, TLS servers with
certificates of a test CA, an S3 endpoint that refuses writes, and a Docker engine that hangs."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

from tests.helpers.docker_engine import die_with_parent
from tests.helpers.http_servers import free_port


class PartyMissing(RuntimeError):
    """The program a party needs is not installed here."""


@contextmanager
def prometheus_server(timeout: float = 60.0) -> Iterator[str]:
    """Debian's Prometheus on a free loopback port with its own storage; yields its URL once ready."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise PartyMissing("prometheus is not installed (run: bash scripts/install-engines)")
    root = Path(tempfile.mkdtemp(prefix="obprom-"))
    (root / "prometheus.yml").write_text("global:\n  scrape_interval: 1m\nscrape_configs: []\n")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (root / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [binary, f"--config.file={root / 'prometheus.yml'}", f"--storage.tsdb.path={root / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {proc.returncode}: {(root / 'prometheus.log').read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("prometheus did not become ready")
            time.sleep(0.2)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def smtp_server() -> Iterator[str]:
    """aiosmtpd (a real SMTP server that keeps nothing) on a free loopback port; yields ``smtp://host:port``."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Sink

    port = free_port()
    controller = Controller(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield f"smtp://127.0.0.1:{port}"
    finally:
        controller.stop()


def make_ca(ca_file: Path) -> Any:
    """A trustme CA whose certificate is written to ``ca_file`` (point ``SSL_CERT_FILE`` at it)."""
    import trustme

    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(ca_file))
    return ca


@asynccontextmanager
async def tls_server(ca: Any, *, days: float) -> AsyncIterator[str]:
    """An HTTPS server on localhost answering ``/health`` with ``{"status": "ok"}``, its certificate issued
    by ``ca`` (see ``make_ca``) and valid for ``days`` more days."""
    cert = ca.issue_cert("localhost", not_after=datetime.now(UTC) + timedelta(days=days))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    app = web.Application()

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app.router.add_get("/health", ok)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    try:
        yield f"https://localhost:{port}"
    finally:
        await runner.cleanup()


ACCESS_DENIED = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied</Message>'
    "<RequestId>PREFLIGHT</RequestId></Error>"
)


@asynccontextmanager
async def refusing_s3() -> AsyncIterator[tuple[str, list[str]]]:
    """An S3 endpoint that knows every bucket (``HeadBucket`` 200) and refuses every write with 403
    AccessDenied, as a bucket policy denying ``s3:PutObject`` does. Yields its URL and the requests it got."""
    seen: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(f"{request.method} {request.path_qs}")
        if request.method in ("HEAD", "GET"):
            return web.Response(status=200, headers={"x-amz-bucket-region": "us-east-1"})
        return web.Response(status=403, text=ACCESS_DENIED, content_type="application/xml")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


@asynccontextmanager
async def hanging_engine(directory: Path) -> AsyncIterator[str]:
    """A unix socket that accepts connections and never answers, like a Docker engine that hangs.

    Yields its DOCKER_HOST (``unix://.../hung.sock``); counts nothing, answers nothing, until closed.
    """
    path = directory / "hung.sock"
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # read the request, answer nothing, keep the connection open

    server = await asyncio.start_unix_server(accept, path=str(path))
    try:
        yield f"unix://{path}"
    finally:
        server.close()
        for writer in held:
            writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 5)
