"""``opsbot check --live``: the preflight of guide sections 2 (system requirements) and 3.1 (pre-installation).

Every requirement and every outside party becomes a row with a severity and a reason: the Docker
engine and its version, each host's CPUs, memory and free disk, the database server's version, each
required port, each health URL and its TLS certificate, the backup store (a tiny object written and
removed), S3 credentials, Prometheus, SMTP, the PagerDuty key and Slack's ``auth.test`` with the
token's scopes. All rows run at once, each bounded in time; the checks themselves are in
:mod:`bot.core.preflight_env` (an environment's) and :mod:`bot.core.preflight_shared` (Slack, PagerDuty,
SMTP, Prometheus).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping

from pydantic import BaseModel

from adapters.errors import OpsError
from bot.config import OpsConfig
from bot.core.preflight_env import EnvChecks
from bot.core.preflight_rows import Check, Context, PreflightRow, Severity
from bot.core.preflight_shared import shared_checks
from commands.base import Backends

log = logging.getLogger("opsbot.preflight")
__all__ = ["Check", "PreflightReport", "PreflightRow", "Severity", "bounded", "run_preflight"]

_RANK: dict[str, int] = {"ok": 0, "warning": 1, "critical": 2}
#: what a row that needs the outside world gets beyond the adapters' own bound, before it is cut off
GRACE = 1.0


class PreflightReport(BaseModel):
    """Every row of one ``check --live``, in a stable order (environment, then the order checks are listed)."""

    project: str
    environments: list[str]
    rows: list[PreflightRow]
    duration_ms: float
    timeout: float

    @property
    def overall(self) -> Severity:
        """The worst severity of any row (ok when there are none)."""
        worst: Severity = "ok"
        for row in self.rows:
            if _RANK[row.severity] > _RANK[worst]:
                worst = row.severity
        return worst

    def counts(self) -> dict[str, int]:
        """How many rows of each severity."""
        return {s: sum(1 for r in self.rows if r.severity == s) for s in ("critical", "warning", "ok")}

    @property
    def exit_code(self) -> int:
        """1 when any row is critical, else 0: warnings are shown, not failed (CONTRACT.md, ``check --live``)."""
        return 1 if self.overall == "critical" else 0


async def bounded(env: str | None, check: str, target: str, make: Callable[[], Awaitable[list[PreflightRow]]],
                  limit: float) -> list[PreflightRow]:  # fmt: skip
    """Run one check within ``limit`` seconds; a check that raises or takes longer is a critical row."""
    start = time.perf_counter()
    try:
        async with asyncio.timeout(limit):
            rows = await make()
    except TimeoutError:
        rows = [PreflightRow(environment=env, check=check, target=target, severity="critical",
                             reason=f"no answer within {limit:g}s")]  # fmt: skip
    except OpsError as exc:
        rows = [PreflightRow(environment=env, check=check, target=target, severity="critical", reason=str(exc))]
    except Exception:
        ref = secrets.token_hex(3)
        log.exception("unexpected error (ref %s) in the %s check of %s", ref, check, target)
        rows = [PreflightRow(environment=env, check=check, target=target, severity="critical",
                             reason=f"unexpected error (ref {ref})")]  # fmt: skip
    ms = round((time.perf_counter() - start) * 1000, 1)
    return [row if row.ms is not None else row.model_copy(update={"ms": ms}) for row in rows]


async def run_preflight(
    config: OpsConfig,
    backends: Backends,
    *,
    env: str | None = None,
    environ: Mapping[str, str],
    slack_token: str | None,
    slack_api_url: str,
    timeout: float = 10.0,
) -> PreflightReport:
    """Every check of ``env`` (None: every environment) and the shared ones, at once; the report.

    ``timeout`` bounds each outside call; a row is cut off ``GRACE`` seconds after it, whatever the
    outside party does. ``UserError`` for an unknown environment.
    """
    names = [config.env(env)[0]] if env is not None else list(config.environments)
    ctx = Context(config, backends, environ=environ, slack_token=slack_token, slack_api_url=slack_api_url,
                  timeout=timeout)  # fmt: skip
    plan: list[tuple[str | None, Check]] = [
        (name, c) for name in names for c in EnvChecks(ctx, name, config.environments[name]).checks()
    ]
    plan += [(None, c) for c in shared_checks(ctx)]
    start = time.perf_counter()
    try:
        found = await asyncio.gather(
            *(bounded(name, check, target, make, timeout + GRACE) for name, (check, target, make) in plan)
        )
    finally:
        await ctx.close()
    rows = [row for group in found for row in group]
    return PreflightReport(
        project=config.project, environments=names, rows=rows,
        duration_ms=round((time.perf_counter() - start) * 1000, 1), timeout=timeout,
    )  # fmt: skip
