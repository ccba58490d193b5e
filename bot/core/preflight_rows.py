"""The rows of ``opsbot check --live`` and what every check shares: the run's settings and the engines.

A check is a coroutine that gives rows (:mod:`bot.core.preflight_env` for an environment's,
:mod:`bot.core.preflight_shared` for Slack, PagerDuty, SMTP and Prometheus). What is measured comes
from adapters (``adapters.preflight``, the runtimes, the stores, the probe); what it means (ok /
warning / critical, and why) is decided in the checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Literal

from pydantic import BaseModel

from adapters.models import ProbeRequest
from adapters.preflight.engine import EngineFacts, EngineProbe
from bot.config import EnvironmentConfig, OpsConfig
from commands.base import Backends

Severity = Literal["ok", "warning", "critical"]
#: the bot scopes opsbot needs (app-manifest.yml's ``oauth_config.scopes.bot``)
REQUIRED_SCOPES: tuple[str, ...] = (
    "commands", "chat:write", "chat:write.public", "files:write", "users:read", "usergroups:read",
    "channels:history", "groups:history",
)  # fmt: skip
#: of those, the ones whose lack is a warning: without reading history, an alert post whose answer was lost
#: is posted again (a duplicate), nothing is lost
HISTORY_SCOPES: tuple[str, ...] = ("channels:history", "groups:history")
#: days before a certificate expires at which it is a warning / critical, unless a cert_check task says otherwise
CERT_DAYS = (21, 7)
GIB = 2**30


class PreflightRow(BaseModel):
    """One line of the preflight: what was checked, how it went, and why."""

    #: the environment, or None for what every environment shares (Slack, PagerDuty, SMTP, Prometheus)
    environment: str | None
    #: what kind of check ("Docker engine", "CPU", "Port", "Health", "TLS", "Slack", ...)
    check: str
    #: what exactly was checked (an engine, a service and port, a URL, a bucket)
    target: str
    severity: Severity
    reason: str
    #: how long the check took, in milliseconds
    ms: float | None = None


#: a check: its kind, what it looks at, and the coroutine that gives its rows
Check = tuple[str, str, Callable[[], Awaitable[list[PreflightRow]]]]


def version_tuple(text: str) -> tuple[int, ...] | None:
    """The leading numbers of a version (``20.10.24+dfsg1`` -> (20, 10, 24)); None without any."""
    match = re.search(r"\d+(?:\.\d+)*", text)
    return tuple(int(p) for p in match.group(0).split(".")) if match else None


def at_least(found: str, minimum: str) -> bool:
    """Whether version ``found`` is ``minimum`` or newer (missing parts count as 0)."""
    have, need = version_tuple(found) or (), version_tuple(minimum) or ()
    width = max(len(have), len(need))
    return have + (0,) * (width - len(have)) >= need + (0,) * (width - len(need))


def gib(value: float) -> str:
    """Bytes as GiB with one decimal."""
    return f"{value / GIB:.1f} GiB"


class Context:
    """What the checks of one ``check --live`` run share; engine facts are read once per Docker host."""

    def __init__(self, config: OpsConfig, backends: Backends, *, environ: Mapping[str, str],
                 slack_token: str | None, slack_api_url: str, timeout: float) -> None:  # fmt: skip
        self.config = config
        self.backends = backends
        self.environ = environ
        self.slack_token = slack_token
        self.slack_api_url = slack_api_url
        self.timeout = timeout
        self._engines: dict[str, EngineProbe] = {}
        self._facts: dict[str, asyncio.Task[EngineFacts]] = {}

    def row(self, env: str | None, check: str, target: str, severity: Severity, reason: str) -> PreflightRow:
        """A row of this run."""
        return PreflightRow(environment=env, check=check, target=target, severity=severity, reason=reason)

    def engine(self, host: str) -> EngineProbe:
        """The probe of the engine at ``host`` (one per host)."""
        if host not in self._engines:
            self._engines[host] = EngineProbe(host, timeout=self.timeout)
        return self._engines[host]

    async def facts(self, host: str) -> EngineFacts:
        """The engine's facts, read once for every row that needs them."""
        if host not in self._facts:
            self._facts[host] = asyncio.ensure_future(self.engine(host).facts())
        return await asyncio.shield(self._facts[host])

    async def close(self) -> None:
        """Stop what is still running and close the engine connections."""
        for task in self._facts.values():
            task.cancel()
        for task in self._facts.values():
            with contextlib.suppress(BaseException):
                await task
        for probe in self._engines.values():
            await probe.close()
        close = getattr(self.backends, "close", None)
        if close is not None:
            await close()

    # ------------------------------------------------------------------ helpers for the environment checks

    def cert_days(self, env: str) -> tuple[int, int]:
        """(warning, critical) days before expiry for ``env``: its cert_check task's, else 21 and 7."""
        maintenance = self.config.maintenance
        for task in maintenance.tasks if maintenance is not None else []:
            if task.task == "cert_check" and task.env == env and task.warning_days and task.critical_days:
                return task.warning_days, task.critical_days
        return CERT_DAYS

    async def tiny_object(self) -> AsyncIterator[bytes]:
        """The bytes of the object the store check writes."""
        yield b"opsbot check --live: a write test; removed at once\n"

    @staticmethod
    def test_key(prefix: str, env: str) -> str:
        """The key of the store check's object (beside the backups, never among them)."""
        return f"{prefix}opsbot-preflight-{env}-{secrets.token_hex(4)}.txt"

    @staticmethod
    def local_free(path: str) -> tuple[int, int] | None:
        """(free, size) bytes of the filesystem of ``path`` on this host, None when it is not here."""
        try:
            st = os.statvfs(path)
        except OSError:
            return None
        return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize


def health_request(env: EnvironmentConfig, index: int, limit: float) -> ProbeRequest:
    """The probe request of the environment's ``index``-th health check (``{url}`` expanded; ``ConfigError``
    when it needs a ``url`` the environment does not have)."""
    check = env.health_checks[index]
    url = env.expand(check.url)
    return ProbeRequest(name=check.name, url=url, expect=check.expect, timeout=min(check.timeout, limit))
