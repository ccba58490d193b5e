"""The one error hierarchy of opsbot.

It lives in the lowest layer so that adapters, commands and the bot can all raise and catch it
(imports flow ``bot -> commands -> adapters``). Every ``OpsError`` carries a message a person can act
on; it is shown to the user as one line. Anything that is not an ``OpsError`` is a bug: it is
logged with a reference id and the user sees only "unexpected error (ref ...)".
"""

from __future__ import annotations


class OpsError(Exception):
    """Base of every error that opsbot knows how to explain to a user."""

    #: process exit code for the command line: 1 = failed, 2 = refused
    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UserError(OpsError):
    """The request itself is wrong: unknown command, bad argument, unknown environment."""

    exit_code = 2


class ConfigError(OpsError):
    """ops.yml cannot be read or does not validate."""

    exit_code = 2


class AccessDenied(OpsError):
    """The actor's roles do not allow this command in this environment."""

    exit_code = 2


class ApprovalError(OpsError):
    """An approval cannot be granted, denied, cancelled or claimed in its current state."""

    exit_code = 2


class AdapterError(OpsError):
    """An outside system (Docker, HTTP, S3, Slack) failed or did not answer."""


class EngineUnavailable(AdapterError):
    """The container engine does not answer (socket missing, refused, timed out)."""


class NotFound(AdapterError):
    """The thing asked for (container, service, object) does not exist."""


class AdapterTimeout(AdapterError):
    """An outside call took longer than its timeout."""


class SourceChanged(NotFound):
    """An object changed or went away at the source after it was listed (a copy of files leaves it for the next run)."""
