"""``FakeCerts``: certificates answered from a table, for fast tests of ``cert_check``."""

from __future__ import annotations

from urllib.parse import urlsplit

from adapters.certs import CertInfo


class FakeCerts:
    """A ``CertSource`` whose answers are set by tests: url -> ``CertInfo`` (unknown urls are refused)."""

    def __init__(self, answers: dict[str, CertInfo] | None = None) -> None:
        self.answers = dict(answers or {})
        self.asked: list[str] = []

    async def inspect(self, url: str, *, timeout: float = 10.0, allow_self_signed: bool = False) -> CertInfo:
        """The canned answer for ``url``; a self-signed one is accepted when allowed and otherwise valid."""
        self.asked.append(url)
        found = self.answers.get(url)
        if found is None:
            parts = urlsplit(url)
            return CertInfo(url=url, host=parts.hostname or "", port=parts.port or 443,
                            error="no answer: connection refused")  # fmt: skip
        if allow_self_signed and found.problem_kind == "self_signed":
            return found.model_copy(update={"verified": True, "problem": None, "problem_kind": None})
        return found
