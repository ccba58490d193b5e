"""Logging in the guide's format: ``[TIMESTAMP] [LEVEL] [REQUEST_ID] [MESSAGE]``, one line per record.

Every record, a library's too, is one line: newlines, carriage returns, the other control characters
(ANSI escapes among them), Unicode's line and paragraph separators and the bidirectional overrides are
written as escapes (``\\n``, ``\\x1b``, ``\\u2028``), in the message, in its arguments and in a
traceback. Text a user typed can therefore never start a log line of its own or repaint a terminal.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime

#: the request being handled by the current task, for every log line it writes
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

#: C0 and C1 controls and DEL, the line and paragraph separators, the bidirectional controls
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_one(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape_control(text: str) -> str:
    """``text`` with control, line-separator and bidirectional characters written as escapes."""
    return _UNSAFE.sub(_escape_one, text)


class GuideFormatter(logging.Formatter):
    """Formats records as ``[2026-11-26T19:49:13.123Z] [INFO] [3f9c2a1b] [message]``, always one line.

    A traceback stays in the record's line, after the message, with its newlines escaped.
    """

    def __init__(self, redact: Callable[[str], str] | None = None, *, tracebacks: bool = True) -> None:
        super().__init__()
        self.redact = redact
        self.tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        """One line: redacted first (secrets are matched as written), then escaped."""
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        rid = str(getattr(record, "request_id", None) or request_id.get())
        message = record.getMessage()
        if record.exc_info and self.tracebacks:
            message += "\n" + self.formatException(record.exc_info)
        if record.stack_info and self.tracebacks:
            message += "\n" + self.formatStack(record.stack_info)
        if self.redact:
            message = self.redact(message)
        return f"[{ts}] [{record.levelname}] [{escape_control(rid)}] [{escape_control(message)}]"


def setup(level: str = "info", redact: Callable[[str], str] | None = None, *, tracebacks: bool = True) -> None:
    """Send opsbot's logs to stderr in the guide's format, redacted.

    ``tracebacks=False`` (the one-shot command line, where stderr is the user's screen) keeps them out
    unless the level is debug; a server's log is the operator's, and keeps them.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(GuideFormatter(redact, tracebacks=tracebacks or level.lower() == "debug"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper() if level.upper() in logging.getLevelNamesMapping() else "INFO")
    # one line per outgoing HTTP request is noise at info level
    for noisy in ("httpx", "httpcore", "slack_sdk.web", "slack_bolt", "docker", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING if root.level < logging.WARNING else root.level)


class Throttled:
    """A warning that may happen thousands of times a second, logged at most once per ``interval``.

    The first occurrence is logged at once (``first(reason)``); the ones after it are counted by
    reason and logged summed up when the interval ends (``summary(total, "12 x, 3 y", seconds)``),
    then again each interval while they keep coming. ``close()`` logs what is still counted.
    """

    def __init__(
        self,
        logger: logging.Logger,
        first: Callable[[str], str],
        summary: Callable[[int, str, float], str],
        interval: float = 60.0,
    ) -> None:
        self.logger = logger
        self.first = first
        self.summary = summary
        self.interval = interval
        self._counts: dict[str, int] = {}
        self._timer: asyncio.TimerHandle | None = None

    def note(self, reason: str) -> None:
        """One more occurrence, for ``reason`` (a fixed text, never what a client sent)."""
        if self._timer is None:
            self.logger.warning("%s", self.first(reason))
            self._timer = asyncio.get_running_loop().call_later(self.interval, self._tick)
        else:
            self._counts[reason] = self._counts.get(reason, 0) + 1

    def _tick(self) -> None:
        self._timer = None
        if self._counts:
            self._flush()
            self._timer = asyncio.get_running_loop().call_later(self.interval, self._tick)

    def _flush(self) -> None:
        total = sum(self._counts.values())
        parts = ", ".join(f"{n:,} {reason}" for reason, n in sorted(self._counts.items(), key=lambda kv: -kv[1]))
        self._counts.clear()
        self.logger.warning("%s", self.summary(total, parts, self.interval))

    def close(self) -> None:
        """Log what is still counted, and stop the timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._counts:
            self._flush()
