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


#: characters from the rarest in logs to the most common (timestamps, levels, words, hex, punctuation): each
#: learnt form is looked for from its rarest character (any character not listed is rarer than all of them)
RARITY = ("QJXVKYUHPBMCLqjxzvkywGDWFZTRAOSNIEgbfpumhcdlrsnoiate"
          "+/%&;\\987654321 0=-_.:,\n")  # fmt: skip


def _rarity(char: str) -> int:
    found = RARITY.find(char)
    return found if found >= 0 else -1


def anchored_searches(forms: Iterable[str]) -> tuple[tuple[str, re.Pattern[str]], ...]:
    """One search per anchor character that finds whether any of ``forms`` is in a text.

    Each form is anchored at its rarest character ``c`` (``RARITY``): ``c(?<=before c)after``. A pattern
    that starts with one literal character is searched at the speed of a loop over the text (and not at
    all when ``c`` is not in it: one ``memchr``), where a search for every form would scan the text once
    per form. A match is exactly an occurrence of a form (the look-behind is of fixed width: linear).
    """
    groups: dict[str, list[str]] = {}
    for form in forms:
        at = min(range(len(form)), key=lambda i: _rarity(form[i]))
        before, rest = form[: at + 1], form[at + 1 :]
        look = f"(?<={re.escape(before)})" if len(before) > 1 else ""
        groups.setdefault(form[at], []).append(look + re.escape(rest))
    return tuple(
        (char, re.compile(re.escape(char) + "(?:" + "|".join(sorted(alts, key=len, reverse=True)) + ")"))
        for char, alts in sorted(groups.items())
    )


class Redactor:
    """Replaces secrets in text and JSON-like data. Thread-safe; learns secret values as it goes."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        #: every form of every learnt value, longest first (a secret that contains another is masked whole)
        self._forms: tuple[str, ...] = ()
        #: the searches that tell whether a text holds any form (``anchored_searches``)
        self._anchors: tuple[tuple[str, re.Pattern[str]], ...] = ()
        self.add(secrets)

    def add(self, secrets: Iterable[str | None]) -> None:
        """Treat these exact values (and their encoded forms) as secrets from now on."""
        new = {s for s in secrets if s is not None and learnable(s)}
        with self._lock:
            if new - self._values:
                self._values |= new
                forms = {f for v in self._values for f in variants(v)}
                self._forms = tuple(sorted(forms, key=lambda f: (-len(f), f)))
                self._anchors = anchored_searches(self._forms)

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
        forms, anchors = self._forms, self._anchors
        if self._holds_a_form(value, anchors):  # rare: then each form is looked for, to mask them longest first
            hits = [f for f in forms if f in value]
        else:
            hits = []
        if hits:
            value = re.compile("|".join(map(re.escape, hits))).sub(MASK, value)
        return redact_text(value)

    @staticmethod
    def _holds_a_form(value: str, anchors: tuple[tuple[str, re.Pattern[str]], ...]) -> bool:
        long = len(value) > CHUNK
        for char, search in anchors:
            if char in value and search.search(value) is not None:
                return True
            if long:  # a long text: let a waiting thread (the event loop) in between the searches
                time.sleep(0)
        return False

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
