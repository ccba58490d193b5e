"""Real HTTPS servers on loopback with certificates made by ``trustme``, for the certificate checks.

One CA (``trustme.CA``) signs certificates for 127.0.0.1 valid for 90 days, expiring in 3 days,
expired two days ago, and one for another host; a second CA nobody trusts signs one more; one is
self-signed (made with ``cryptography``, which trustme is built on). Plus a plain-HTTP server, a port
nobody listens on, and a listener that never speaks.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import trustme
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.helpers.http_servers import free_port


@dataclass
class TlsWorld:
    """``ports``: name -> port on 127.0.0.1; ``cafile``: the trusted CA's PEM."""

    cafile: str
    ports: dict[str, int] = field(default_factory=dict)

    def url(self, name: str, path: str = "/health") -> str:
        """``https://127.0.0.1:<port><path>`` of the server ``name``."""
        return f"https://127.0.0.1:{self.ports[name]}{path}"


def self_signed(path: Path, days: int = 60) -> Path:
    """A self-signed certificate and key for 127.0.0.1, in one PEM file."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return path


@contextlib.asynccontextmanager
async def tls_world(tmp: Path) -> AsyncIterator[TlsWorld]:
    """Every server of the module docstring, running; stopped at the end."""
    ca, stranger = trustme.CA(), trustme.CA()
    now = dt.datetime.now(dt.UTC)
    certs = {
        "valid": ca.issue_cert("127.0.0.1", not_after=now + dt.timedelta(days=90)),
        "expiring": ca.issue_cert("127.0.0.1", not_after=now + dt.timedelta(days=3)),
        "expired": ca.issue_cert("127.0.0.1", not_before=now - dt.timedelta(days=60),
                                 not_after=now - dt.timedelta(days=2)),
        "other_host": ca.issue_cert("other.example", not_after=now + dt.timedelta(days=90)),
        "untrusted": stranger.issue_cert("127.0.0.1", not_after=now + dt.timedelta(days=90)),
    }  # fmt: skip
    world = TlsWorld(cafile=str(tmp / "ca.pem"))
    ca.cert_pem.write_to_path(world.cafile)
    contexts: dict[str, ssl.SSLContext | None] = {}
    for name, cert in certs.items():
        contexts[name] = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(contexts[name])
    contexts["self_signed"] = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    contexts["self_signed"].load_cert_chain(str(self_signed(tmp / "self.pem")))
    contexts["plain_http"] = None
    runners = []
    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/health", health)
    silent = socket.socket()
    try:
        for name, context in contexts.items():
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            runners.append(runner)
            port = free_port()
            await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
            world.ports[name] = port
        world.ports["refused"] = free_port()
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # accepts connections (the kernel does) and never says a word
        world.ports["silent"] = silent.getsockname()[1]
        yield world
    finally:
        silent.close()
        for runner in runners:
            await runner.cleanup()
