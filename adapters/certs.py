"""The ``CertSource`` interface: what a TLS server's certificate says (guide 7.3, certificate renewal)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field

#: why a certificate did not verify: expired (or not yet valid), self-signed, a chain that is not
#: trusted, issued for another host, or something else the TLS library said
Problem = Literal["expired", "not_yet_valid", "self_signed", "untrusted", "wrong_host", "other"]


class CertInfo(BaseModel):
    """One ``https://`` endpoint's certificate, as a client that checks everything sees it."""

    url: str
    host: str
    port: int
    #: set when there was no certificate to look at: no answer, refused, plain HTTP on the TLS port
    error: str | None = None
    #: the chain is trusted, the certificate valid now and issued for ``host``
    verified: bool = False
    #: why it did not verify (the first reason the TLS library gives), and its kind
    problem: str | None = None
    problem_kind: Problem | None = None
    self_signed: bool = False
    not_before: datetime | None = None
    not_after: datetime | None = None
    #: the names it is issued for (subjectAltName), and its issuer's name
    names: list[str] = Field(default_factory=list)
    issuer: str = ""


@runtime_checkable
class CertSource(Protocol):
    """Connects to TLS servers and reads their certificates; never raises for a bad or absent server."""

    async def inspect(self, url: str, *, timeout: float = 10.0, allow_self_signed: bool = False) -> CertInfo:
        """The certificate of ``url``'s host and port (443 by default).

        With ``allow_self_signed``, a self-signed certificate is checked against itself (valid now,
        issued for the host) instead of being refused for not being signed by a trusted authority.
        A server that does not answer, refuses, or answers without TLS is a ``CertInfo`` with ``error``.
        """
        ...
