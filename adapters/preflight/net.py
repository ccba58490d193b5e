"""Plain network probes: a TCP port accepting connections, a TLS certificate, an SMTP server's greeting.

Each is bounded by its ``timeout`` and raises ``AdapterTimeout`` / ``EngineUnavailable`` /
``AdapterError`` with one line that says what did not work.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from datetime import UTC, datetime
from urllib.parse import urlsplit

from pydantic import BaseModel

from adapters.errors import AdapterError, AdapterTimeout, EngineUnavailable


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


async def tcp_connect(host: str, port: int, *, timeout: float) -> float:
    """Open (and close) a TCP connection to ``host:port``; the milliseconds it took."""
    start = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
    except TimeoutError as exc:
        raise AdapterTimeout(f"{host}:{port} did not accept within {timeout:g}s") from exc
    except OSError as exc:
        raise EngineUnavailable(f"{host}:{port}: {_reason(exc)}") from exc
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return round((time.perf_counter() - start) * 1000, 1)


class Certificate(BaseModel):
    """The certificate a TLS server presented, verified against the system's trusted CAs."""

    host: str
    port: int
    subject: str
    issuer: str
    not_after: datetime

    def days_left(self, now: datetime | None = None) -> float:
        """Days until it expires (negative once expired)."""
        return (self.not_after - (now or datetime.now(UTC))).total_seconds() / 86400


def _name(parts: object) -> str:
    """``CN=example.com`` from the nested tuples of ``getpeercert()``."""
    found = []
    for rdn in parts if isinstance(parts, tuple) else ():
        for key, value in rdn:
            if key in ("commonName", "organizationName"):
                found.append(f"{'CN' if key == 'commonName' else 'O'}={value}")
    return ", ".join(found) or "?"


async def tls_certificate(url: str, *, timeout: float) -> Certificate:
    """Connect to an ``https://`` URL, verify its certificate (system CAs, ``SSL_CERT_FILE``) and read it.

    A certificate that does not verify (expired, self-signed, wrong name) raises ``AdapterError``
    with OpenSSL's reason.
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 443
    context = ssl.create_default_context()
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port, ssl=context, server_hostname=host)
    except TimeoutError as exc:
        raise AdapterTimeout(f"{host}:{port} did not complete a TLS handshake within {timeout:g}s") from exc
    except ssl.SSLCertVerificationError as exc:
        raise AdapterError(f"the certificate of {host}:{port} does not verify: {exc.verify_message}") from exc
    except ssl.SSLError as exc:
        raise AdapterError(f"TLS with {host}:{port} failed: {exc.reason or exc}") from exc
    except OSError as exc:
        raise EngineUnavailable(f"{host}:{port}: {_reason(exc)}") from exc
    try:
        sslobj = writer.get_extra_info("ssl_object")
        cert = sslobj.getpeercert() if sslobj is not None else None
        if not cert or "notAfter" not in cert:
            raise AdapterError(f"{host}:{port} presented no certificate")
        not_after = datetime.fromtimestamp(ssl.cert_time_to_seconds(str(cert["notAfter"])), UTC)
        return Certificate(
            host=host, port=port, subject=_name(cert.get("subject")), issuer=_name(cert.get("issuer")),
            not_after=not_after,
        )  # fmt: skip
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


async def _reply(reader: asyncio.StreamReader) -> tuple[int, str]:
    """One SMTP reply (possibly several ``250-`` lines): its code and its first line's text."""
    first = ""
    while True:
        line = (await reader.readline()).decode("utf-8", errors="replace").rstrip("\r\n")
        if len(line) < 3 or not line[:3].isdigit():
            raise AdapterError(f"not an SMTP answer: {line[:80]!r}" if line else "the server closed the connection")
        first = first or line[4:]
        if line[3:4] != "-":
            return int(line[:3]), first


async def smtp_greeting(smtp_url: str, *, timeout: float) -> str:
    """Connect to ``smtp://host:port`` (or ``smtps://``), read the greeting, say EHLO and QUIT.

    Returns the greeting; sends no mail and no credentials.
    """
    parts = urlsplit(smtp_url)
    secure = parts.scheme == "smtps"
    host, port = parts.hostname or "", parts.port or (465 if secure else 25)
    where = f"SMTP server {host}:{port}"
    try:
        async with asyncio.timeout(timeout):
            context = ssl.create_default_context() if secure else None
            reader, writer = await asyncio.open_connection(host, port, ssl=context, server_hostname=host if secure
                                                           else None)  # fmt: skip
            try:
                code, greeting = await _reply(reader)
                if code != 220:
                    raise AdapterError(f"{where} greets with {code} {greeting}")
                writer.write(b"EHLO opsbot.preflight\r\n")
                await writer.drain()
                code, text = await _reply(reader)
                if code != 250:
                    raise AdapterError(f"{where} refused EHLO: {code} {text}")
                writer.write(b"QUIT\r\n")
                await writer.drain()
                with contextlib.suppress(AdapterError):
                    await _reply(reader)
                return greeting
            finally:
                writer.close()
                with contextlib.suppress(OSError, ssl.SSLError):
                    await writer.wait_closed()
    except TimeoutError as exc:
        raise AdapterTimeout(f"{where} did not answer within {timeout:g}s") from exc
    except AdapterError as exc:
        raise AdapterError(f"{where}: {exc}" if not str(exc).startswith(where) else str(exc)) from exc
    except ssl.SSLError as exc:
        raise AdapterError(f"{where}: TLS failed: {exc.reason or exc}") from exc
    except OSError as exc:
        raise EngineUnavailable(f"{where}: {_reason(exc)}") from exc
