"""``cert_check`` (guide 7.3, certificate renewal before expiry): every ``https://`` URL of an environment.

Its ``url`` and the URLs of its health checks, one connection per host and port, concurrently. A
certificate that verifies is warning when it expires within ``warning_days``, critical within
``critical_days``; an expired one, one for another host, one whose chain is not trusted, a
self-signed one (unless the task says ``allow_self_signed: true``), a host that does not answer or
answers without TLS: critical, with the reason.
"""

from __future__ import annotations

import asyncio
import collections
import time
from datetime import datetime
from urllib.parse import urlsplit

from adapters.certs import CertInfo, CertSource
from adapters.errors import ConfigError
from adapters.tls.inspector import TlsInspector
from bot.config.guide import MaintenanceTask
from commands.base import Ctx, Plan, Severity, worst
from commands.maintenance_tasks import TaskResult, TaskRow, now_of

#: how long one connection (TCP and TLS handshake) may take
CONNECT_TIMEOUT = 10.0


def https_urls(ctx: Ctx, env: str) -> list[str]:
    """The environment's ``https://`` URLs (its url, its health checks), one per host and port, in order."""
    _, env_config = ctx.config.env(env)
    candidates = [env_config.url] if env_config.url else []
    for check in env_config.health_checks:
        try:
            candidates.append(env_config.expand(check.url))
        except ConfigError:
            continue
    seen: dict[tuple[str, int], str] = {}
    for url in candidates:
        parts = urlsplit(url or "")
        if parts.scheme != "https" or not parts.hostname:
            continue
        try:
            key = (parts.hostname, parts.port or 443)
        except ValueError:
            continue
        seen.setdefault(key, url or "")
    return list(seen.values())


def source(ctx: Ctx) -> CertSource:
    """The backends' certificate reader (the standard library's TLS when they have none)."""
    found = getattr(ctx.backends, "certs", None)
    return found if isinstance(found, CertSource) else TlsInspector()


def cert_plan(ctx: Ctx, env: str, task: MaintenanceTask) -> Plan:
    """Which URLs, and what counts."""
    urls = https_urls(ctx, env)
    allowed = "allowed" if task.allow_self_signed else "critical"
    return Plan(
        summary=f"cert_check in {env} ({len(urls)} https URL{'s' if len(urls) != 1 else ''})",
        steps=[f"connect to {u} and read its certificate" for u in urls]
        + [f"warning within {task.warning_days} days of expiry, critical within {task.critical_days}; expired, "
           f"untrusted or for another host: critical; self-signed: {allowed}"],
        targets=[{"url": u} for u in urls],
    )  # fmt: skip


def judge(info: CertInfo, task: MaintenanceTask, now: datetime) -> TaskRow:
    """One certificate's row: its severity and why."""
    assert task.warning_days is not None and task.critical_days is not None
    name = f"{info.host}:{info.port}"
    if info.error:
        return TaskRow(name=name, severity="critical", detail=info.error)
    until = f"{info.not_after:%Y-%m-%d}" if info.not_after else "an unknown date"
    days = (info.not_after - now).total_seconds() / 86400 if info.not_after else None
    if not info.verified:
        kind = info.problem_kind
        if kind == "expired" or (days is not None and days < 0):
            why = f"expired on {until} ({-(days or 0):.0f} days ago)"
        elif kind == "wrong_host":
            why = f"issued for {', '.join(info.names) or 'other names'}, not for {info.host}"
        elif kind == "self_signed":
            why = "self-signed (not allowed: set allow_self_signed: true on the task to accept it)"
        elif kind == "untrusted":
            why = f"its chain is not trusted ({info.problem}; issuer {info.issuer or 'unknown'})"
        else:
            why = info.problem or "it does not verify"
        return TaskRow(name=name, severity="critical", detail=why)
    severity: Severity = "ok"
    if days is not None and days <= task.critical_days:
        severity = "critical"
    elif days is not None and days <= task.warning_days:
        severity = "warning"
    left = f"{days:.0f} days" if days is not None else "unknown"
    by = " (self-signed, allowed)" if info.self_signed else f", issued by {info.issuer or 'unknown'}"
    what = "expires in" if severity != "ok" else "valid for"
    return TaskRow(name=name, severity=severity, detail=f"{what} {left}, until {until}{by}")


async def cert_check(ctx: Ctx, env: str, task: MaintenanceTask) -> TaskResult:
    """Connect to each https URL concurrently and judge its certificate."""
    started, now = time.monotonic(), now_of(ctx)
    urls = https_urls(ctx, env)
    if not urls:
        row = TaskRow(name=env, severity="warning",
                      detail=f"no https:// URL in {env} (its url and health checks): no certificate to check")
        return TaskResult(environment=env, task="cert_check", outcome="warning", summary=row.detail, rows=[row])
    reader = source(ctx)
    await ctx.progress(f"cert_check {env}: connecting to {len(urls)} https URL(s)")
    infos = await asyncio.gather(*(reader.inspect(u, timeout=CONNECT_TIMEOUT,
                                                  allow_self_signed=task.allow_self_signed) for u in urls))  # fmt: skip
    rows = [judge(info, task, now) for info in infos]
    counts = collections.Counter(r.severity for r in rows)
    summary = f"{len(rows)} certificate(s): " + ", ".join(
        f"{counts[s]} {s}" for s in ("critical", "warning", "ok") if counts[s]
    )
    return TaskResult(environment=env, task="cert_check", outcome=worst(r.severity for r in rows), summary=summary,
                      rows=rows, duration_s=round(time.monotonic() - started, 3))  # fmt: skip
