"""What a door hands the engine (``Request``) and what it gets back (``Reply``).

Kept apart from the engine so that the parts of the path the engine drives (changes, approvals) can
name them without importing the engine.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from commands.base import CommandSpec, ProgressFn, Result, Severity, _no_progress

DOORS = ("slack", "console", "cli", "scheduler")


def new_request_id() -> str:
    """A short random id that ties a request's log lines and audit entries together."""
    return secrets.token_hex(6)


@dataclass
class Request:
    """What a door received: the words (or raw text) and who sent them."""

    actor: str
    door: str
    text: str = ""
    words: Sequence[str] | None = None
    request_id: str = field(default_factory=new_request_id)
    progress: ProgressFn = _no_progress
    channel: str | None = None


@dataclass
class Reply:
    """What the engine did: a result or an error, with the exit code and the audit entry."""

    request_id: str
    command: str | None = None
    spec: CommandSpec | None = None
    environment: str | None = None
    result: Result | None = None
    error: str | None = None
    #: 0 ok, 1 done but warning/critical or failed, 2 refused
    exit_code: int = 0
    severity: Severity = "ok"
    audit_id: int | None = None
    duration_ms: float = 0.0
    #: set when the error is a bug: the reference id in the log
    ref: str | None = None
    #: characters of text in the result (at least up to ``INLINE_LIMIT``): a big one is rendered off the loop
    size: int = 0
    actor: str = ""

    def to_json(self) -> dict[str, Any]:
        """The reply as one JSON document: the command's result, or the error."""
        if self.result is not None:
            return {"kind": self.result.kind, **self.result.model_dump(mode="json")}
        out: dict[str, Any] = {"error": self.error, "exit_code": self.exit_code}
        if self.ref:
            out["ref"] = self.ref
        return out
