"""One redactor for everything opsbot shows or stores.

It masks: values it has been told are secret (the bot's own tokens; the values of the services'
environment variables whose names look secret -- PASS, PWD, SECRET, TOKEN, KEY, DSN, SIGNING,
CREDENTIAL, PRIVATE, SK, ... -- and the passwords of URLs in any variable), in every form they take
in text (as is, URL-encoded, HTML- or JSON-escaped, base64); PEM private keys; the password part
of URLs (``scheme://user:[REDACTED]@host``, even with ``@`` in it); ``Authorization`` headers,
bearer tokens and Basic credentials; values of secret-named keys (``password=``, ``"token": "..."``,
``--password x``, ``PGPASSWORD x``, ``mysql -px``); and well-known token shapes (Slack tokens and
webhooks, JWTs, AWS key ids, Google API keys, GitHub and GitLab tokens, Stripe, OpenAI, npm, PyPI,
SendGrid, Twilio keys). Every rule is linear in its input (``bot/config/redact_rules.py``). It works on
strings and, recursively, on the JSON shapes (dicts, lists) of rendered results.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from bot.config.redact_names import MIN_SECRET_LENGTH, is_secret_name, learnable, url_secrets, variants
from bot.config.redact_rules import CHUNK, MASK, redact_text

__all__ = ["MASK", "MIN_SECRET_LENGTH", "Redactor", "in_redaction_thread", "is_secret_name", "off_loop"]

T = TypeVar("T")
#: redaction and rendering of results run here, never on the event loop that serves everyone else; one
#: thread, so that however many big outputs are redacted at once, the loop competes with one thread
_WORKER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="opsbot-redact")


#: text up to this size is redacted or rendered at once, on the loop (microseconds); more goes to the thread
INLINE_LIMIT = 64 * 1024


def in_redaction_thread(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in the redaction thread, waited for (from another thread: a log reader's), so that
    redaction still competes with the event loop from one thread only."""
    if threading.current_thread().name.startswith("opsbot-redact"):
        return fn(*args)
    return _WORKER.submit(fn, *args).result()


async def off_loop(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in the redaction thread (CPU work on big outputs: redact, render)."""
    return await asyncio.get_running_loop().run_in_executor(_WORKER, partial(fn, *args))


async def off_loop_if_big(size: int, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``: at once when ``size`` (characters of text it works on) is small, else ``off_loop``.

    A small answer (a ``status``) never queues behind a big one being redacted.
    """
    if size <= INLINE_LIMIT:
        return fn(*args)
    return await off_loop(fn, *args)


def text_size(value: Any, limit: int = INLINE_LIMIT) -> int:
    """The characters of the strings in JSON-like ``value``, counted until they pass ``limit``."""
    if isinstance(value, str):
        return len(value)
    total = 0
    items = value.values() if isinstance(value, Mapping) else value if isinstance(value, list | tuple) else ()
    for item in items:
        total += text_size(item, limit - total)
        if total > limit:
            break
    return total


class Redactor:
    """Replaces secrets in text and JSON-like data. Thread-safe; learns secret values as it goes."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        #: every form of every learnt value, longest first (a secret that contains another is masked whole)
        self._forms: tuple[str, ...] = ()
        self.add(secrets)

    def add(self, secrets: Iterable[str | None]) -> None:
        """Treat these exact values (and their encoded forms) as secrets from now on."""
        new = {s for s in secrets if s is not None and learnable(s)}
        with self._lock:
            if new - self._values:
                self._values |= new
                forms = {f for v in self._values for f in variants(v)}
                self._forms = tuple(sorted(forms, key=lambda f: (-len(f), f)))

    def learn_env(self, env: Mapping[str, str]) -> None:
        """Learn the values of the variables in ``env`` whose names look secret, and URL passwords in any."""
        found: list[str] = []
        for name, value in env.items():
            if is_secret_name(name):
                found.append(value)
            found += url_secrets(value)
        self.add(found)

    def knows(self, value: str) -> bool:
        """True when ``value`` has been learnt as a secret."""
        return value in self._values

    def text(self, value: str) -> str:
        """``value`` with every secret masked."""
        if not value:
            return value
        forms = self._forms
        if len(value) > CHUNK:  # a long text: let a waiting thread (the event loop) in between the searches
            hits = []
            for i, f in enumerate(forms):
                if f in value:
                    hits.append(f)
                if i % 2 == 1:
                    time.sleep(0)
        else:
            hits = [f for f in forms if f in value]
        if hits:
            value = re.compile("|".join(map(re.escape, hits))).sub(MASK, value)
        return redact_text(value)

    def data(self, value: Any) -> Any:
        """A copy of JSON-like ``value`` (dicts, lists, strings, numbers) with every string redacted.

        A list of one-line strings (log lines) is redacted as one text, which is much faster than
        line by line and gives the same result (no rule crosses a line end).
        """
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {k: self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            if len(value) > 1 and all(isinstance(v, str) and "\n" not in v for v in value):
                lines = self.text("\n".join(value)).split("\n")
                if len(lines) == len(value):
                    return lines
            return [self.data(v) for v in value]
        return value

    def env(self, env: Mapping[str, str]) -> dict[str, str]:
        """An environment for display: secret-named values masked, the rest redacted as text."""
        return {k: (MASK if is_secret_name(k) else self.text(v)) for k, v in env.items()}
