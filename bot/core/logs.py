"""Logging in the guide's format: ``[TIMESTAMP] [LEVEL] [REQUEST_ID] [MESSAGE]``."""

from __future__ import annotations

import contextvars
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime

#: the request being handled by the current task, for every log line it writes
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


class GuideFormatter(logging.Formatter):
    """Formats records as ``[2026-11-26T19:49:13.123Z] [INFO] [3f9c2a1b] [message]``."""

    def __init__(self, redact: Callable[[str], str] | None = None, *, tracebacks: bool = True) -> None:
        super().__init__()
        self.redact = redact
        self.tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        """One line (tracebacks follow on their own lines)."""
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        rid = getattr(record, "request_id", None) or request_id.get()
        text = f"[{ts}] [{record.levelname}] [{rid}] [{record.getMessage()}]"
        if record.exc_info and self.tracebacks:
            text += "\n" + self.formatException(record.exc_info)
        return self.redact(text) if self.redact else text


def setup(level: str = "info", redact: Callable[[str], str] | None = None, *, tracebacks: bool = True) -> None:
    """Send opsbot's logs to stderr in the guide's format, redacted.

    ``tracebacks=False`` (the one-shot command line, where stderr is the user's screen) keeps them out
    unless the level is debug; a server's log is the operator's, and keeps them.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(GuideFormatter(redact, tracebacks=tracebacks or level.lower() == "debug"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper() if level.upper() in logging._nameToLevel else "INFO")
    # one line per outgoing HTTP request is noise at info level
    for noisy in ("httpx", "httpcore", "slack_sdk.web", "slack_bolt", "docker", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING if root.level < logging.WARNING else root.level)
