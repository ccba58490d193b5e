"""One redactor for everything opsbot shows or stores.

It removes: values it has been told are secret (the services' environment variables whose names look
secret, the bot's own tokens), the password part of URLs, and known token shapes (Slack tokens, AWS
access key ids, PEM private keys, bearer tokens). It works on strings and, recursively, on the JSON
shapes (dicts, lists) of rendered results.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "[REDACTED]"

#: environment variable names whose values are secrets
SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|KEY|CREDENTIAL|PRIVATE|AUTH", re.IGNORECASE)

#: shapes of secrets recognisable on their own
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----.*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|\Z)",
            re.DOTALL,
        ),
        MASK,
    ),
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{8,}"), MASK),
    (re.compile(r"\bxapp-[A-Za-z0-9-]{8,}"), MASK),
    (re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"), MASK),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"), MASK),
    # scheme://user:password@host  ->  scheme://user:[REDACTED]@host
    (re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]*:)[^\s@/]+(@)"), rf"\1{MASK}\2"),
    # Authorization: Bearer abc / token=abc / password: abc in free text
    (re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]{8,}"), rf"\1{MASK}"),
    (
        re.compile(
            r"(?i)\b([A-Z0-9_]*(?:secret|password|passwd|token|api_?key|credential)[A-Z0-9_]*\s*[=:]\s*)"
            r"(?!\[REDACTED\])([^\s,;&\"']+)"
        ),
        rf"\1{MASK}",
    ),
)

#: values shorter than this are not redacted by value (they would mask ordinary words)
MIN_SECRET_LENGTH = 4


def is_secret_name(name: str) -> bool:
    """True when an environment variable of this name holds a secret."""
    return bool(SECRET_NAME.search(name))


class Redactor:
    """Replaces secrets in text and JSON-like data. Thread-safe; learns secret values as it goes."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._compiled: re.Pattern[str] | None = None
        self.add(secrets)

    def add(self, secrets: Iterable[str | None]) -> None:
        """Treat these exact values as secrets from now on."""
        new = {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}
        with self._lock:
            if new - self._values:
                self._values |= new
                # longest first, so a secret that contains another is masked whole
                ordered = sorted(self._values, key=len, reverse=True)
                self._compiled = re.compile("|".join(re.escape(v) for v in ordered))

    def learn_env(self, env: Mapping[str, str]) -> None:
        """Learn the values of the variables in ``env`` whose names look secret."""
        self.add(value for name, value in env.items() if is_secret_name(name))

    def text(self, value: str) -> str:
        """``value`` with every secret masked."""
        compiled = self._compiled
        if compiled is not None:
            value = compiled.sub(MASK, value)
        for pattern, replacement in _PATTERNS:
            value = pattern.sub(replacement, value)
        return value

    def data(self, value: Any) -> Any:
        """A copy of JSON-like ``value`` (dicts, lists, strings, numbers) with every string redacted."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {k: self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        return value

    def env(self, env: Mapping[str, str]) -> dict[str, str]:
        """An environment for display: secret-named values masked, the rest redacted as text."""
        return {k: (MASK if is_secret_name(k) else self.text(v)) for k, v in env.items()}
