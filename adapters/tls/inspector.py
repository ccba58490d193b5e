"""``TlsInspector``: connect to a TLS server and say what its certificate is worth.

A first handshake checks everything as a browser would: the chain against the system's trusted
authorities (``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` override them, as OpenSSL reads them), the validity
dates and the host name. When it fails, the reason is kept, and the certificate's own facts (dates,
names, issuer) are read in two more handshakes: one that takes the certificate without checking it,
then one that trusts exactly that certificate, ignoring its dates, so that the standard library's
``ssl`` decodes it (no other dependency). A server that answers in plain HTTP on the TLS port is
recognised by asking it, in plain HTTP, for nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from adapters.certs import CertInfo, Problem

#: OpenSSL's X509_V_FLAG_NO_CHECK_TIME: verify a certificate's signatures without its validity dates
NO_CHECK_TIME = 0x200000
#: OpenSSL's verification error codes -> the kind of problem
KINDS: dict[int, Problem] = {
    10: "expired", 9: "not_yet_valid", 18: "self_signed", 19: "untrusted", 2: "untrusted", 20: "untrusted",
    21: "untrusted", 62: "wrong_host", 64: "wrong_host",
}  # fmt: skip


class TlsInspector:
    """A ``CertSource`` over ``ssl``; ``cafile`` trusts these authorities instead of the system's."""

    def __init__(self, *, cafile: str | None = None) -> None:
        self.cafile = cafile

    async def inspect(self, url: str, *, timeout: float = 10.0, allow_self_signed: bool = False) -> CertInfo:
        """The certificate of ``url`` (see ``adapters.certs.CertSource``); never raises for a bad server."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        try:
            port = parts.port or 443
        except ValueError:
            return CertInfo(url=url, host=host, port=0, error=f"invalid port in {url}")
        info = CertInfo(url=url, host=host, port=port)
        strict = ssl.create_default_context(cafile=self.cafile)
        try:
            peer = await self._handshake(host, port, strict, timeout)
        except ssl.SSLCertVerificationError as exc:
            info.problem = str(exc.verify_message or exc.reason or exc)
            info.problem_kind = KINDS.get(int(exc.verify_code or 0), "other")
        except ssl.SSLError as exc:
            info.error = await self._not_tls(host, port, timeout, exc)
            return info
        except TimeoutError:
            info.error = f"no answer within {timeout:g}s (TCP or TLS handshake)"
            return info
        except OSError as exc:
            info.error = f"no answer: {_os_reason(exc)}"
            return info
        else:
            info.verified = True
            _facts(info, peer)
            return info
        try:
            await self._read_facts(info, timeout, allow_self_signed)
        except (ssl.SSLError, OSError, TimeoutError) as exc:  # the server went away between two handshakes
            info.error = f"the certificate could not be read: {_os_reason(exc)}"
        return info

    async def _read_facts(self, info: CertInfo, timeout: float, allow_self_signed: bool) -> None:
        """Dates, names and issuer of a certificate that did not verify; a self-signed one checked if allowed."""
        blind = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        blind.check_hostname, blind.verify_mode = False, ssl.CERT_NONE
        der = await self._handshake(info.host, info.port, blind, timeout, binary=True)
        itself = _trusting(der)
        itself.verify_flags |= NO_CHECK_TIME
        _facts(info, await self._handshake(info.host, info.port, itself, timeout))
        if info.self_signed and allow_self_signed:
            pinned = _trusting(der)
            pinned.check_hostname = True
            try:
                await self._handshake(info.host, info.port, pinned, timeout)
            except ssl.SSLCertVerificationError as exc:
                info.problem = str(exc.verify_message or exc.reason or exc)
                info.problem_kind = KINDS.get(int(exc.verify_code or 0), "other")
            else:
                info.verified, info.problem, info.problem_kind = True, None, None

    async def _handshake(
        self, host: str, port: int, context: ssl.SSLContext, timeout: float, *, binary: bool = False
    ) -> Any:
        """Connect, shake hands, and return the peer's certificate (decoded, or DER with ``binary``)."""
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=context, server_hostname=host), timeout
        )
        try:
            tls = writer.get_extra_info("ssl_object")
            return tls.getpeercert(binary_form=binary)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 2.0)

    async def _not_tls(self, host: str, port: int, timeout: float, exc: ssl.SSLError) -> str:
        """Why the handshake failed: a server that speaks plain HTTP there is named as such."""
        reason = exc.reason or str(exc)
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
            try:
                writer.write(b"HEAD / HTTP/1.0\r\nHost: " + host.encode("idna") + b"\r\n\r\n")
                await writer.drain()
                first = await asyncio.wait_for(reader.read(16), timeout)
            finally:
                writer.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(writer.wait_closed(), 2.0)
        except (OSError, TimeoutError, UnicodeError):
            first = b""
        if first.startswith(b"HTTP/"):
            return f"not TLS: port {port} answers in plain HTTP ({reason})"
        return f"the TLS handshake failed: {reason}"


def _trusting(der: bytes) -> ssl.SSLContext:
    """A client context that trusts exactly the certificate ``der`` (as its own anchor)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(cadata=der)
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return context


def _name(rdns: Any) -> str:
    """A distinguished name as ``CN=..., O=...`` (from ``getpeercert``'s nested tuples)."""
    short = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU", "countryName": "C"}
    return ", ".join(f"{short.get(k, k)}={v}" for rdn in rdns or () for k, v in rdn)


def _facts(info: CertInfo, peer: dict[str, Any]) -> None:
    """Dates, names, issuer and self-signedness from a decoded certificate."""
    for key, attr in (("notBefore", "not_before"), ("notAfter", "not_after")):
        if peer.get(key):
            setattr(info, attr, datetime.fromtimestamp(ssl.cert_time_to_seconds(peer[key]), UTC))
    info.names = [value for kind, value in peer.get("subjectAltName", ()) if kind in ("DNS", "IP Address")]
    info.issuer = _name(peer.get("issuer"))
    info.self_signed = bool(peer.get("issuer")) and peer.get("issuer") == peer.get("subject")


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__
