"""Diagnostics for ``troubleshoot``: the built-ins and an environment's own ``diagnostics``.

Each diagnostic returns a ``Finding``; one that cannot run is a finding that says why, never an
exception, so that one broken diagnostic does not hide the others.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta

from pydantic import BaseModel, Field

from adapters.errors import AdapterError, NotFound
from commands.base import Ctx, Severity, worst
from commands.inspect import by_threshold, check_rows, learn_secrets, service_rows

#: log lines worth showing when troubleshooting
LOG_SIGNAL = re.compile(r"error|fatal|panic|exception|fail|timeout|timed out|refused|killed|oom|warn", re.I)
#: lines that outrank warnings when only a few can be shown
LOG_SEVERE = re.compile(r"error|fatal|panic|exception|fail|killed|oom", re.I)
LOG_WINDOW = timedelta(hours=1)
LOG_SCAN = 500
LOG_SHOW = 8
MAX_FINDING_LINES = 40


class Finding(BaseModel):
    """What one diagnostic found."""

    name: str
    severity: Severity
    summary: str
    lines: list[str] = Field(default_factory=list)


async def _containers(ctx: Ctx, env: str, words: list[str]) -> Finding:
    rows = await service_rows(ctx, env, stats=False)
    lines = [
        f"{r.severity.upper():8} {r.name}: {r.state}"
        + (f", {r.health}" if r.health else "")
        + (f", version {r.version}" if r.version else "")
        + (f", {r.restarts} restarts" if r.restarts else "")
        + (f" ({'; '.join(r.reasons)})" if r.reasons else "")
        for r in rows
    ]
    bad = [r for r in rows if r.severity != "ok"]
    summary = f"{len(rows) - len(bad)} of {len(rows)} containers ok" + (
        f"; not ok: {', '.join(sorted({r.name for r in bad}))}" if bad else ""
    )
    return Finding(name="containers", severity=worst(r.severity for r in rows), summary=summary, lines=lines)


async def _health(ctx: Ctx, env: str, words: list[str]) -> Finding:
    rows = await check_rows(ctx, env)
    lines = [
        f"{r.severity.upper():8} {r.name}: "
        + (f"HTTP {r.status_code}" if r.status_code else "no answer")
        + (f" in {r.latency_ms:.0f} ms" if r.latency_ms is not None else "")
        + (f" ({r.error})" if r.error else "")
        for r in rows
    ]
    failed = [r.name for r in rows if not r.ok]
    summary = f"{len(rows) - len(failed)} of {len(rows)} checks pass" + (
        f"; failing: {', '.join(failed)}" if failed else ""
    )
    return Finding(name="health", severity=worst(r.severity for r in rows), summary=summary, lines=lines)


async def _stats(ctx: Ctx, env: str, words: list[str]) -> Finding:
    rows = [r for r in await service_rows(ctx, env, stats=True) if r.state == "running"]
    lines = [
        f"{r.severity.upper():8} {r.name}: cpu "
        + (f"{r.cpu_percent:.1f}%" if r.cpu_percent is not None else "?")
        + ", memory "
        + (f"{r.memory_percent:.1f}%" if r.memory_percent is not None else "?")
        for r in rows
    ]
    hot = [r.name for r in rows if r.severity != "ok"]
    summary = "cpu and memory within thresholds" if not hot else f"over thresholds: {', '.join(hot)}"
    return Finding(name="stats", severity=worst(r.severity for r in rows), summary=summary, lines=lines)


async def _logs(ctx: Ctx, env: str, words: list[str]) -> Finding:
    _, env_config = ctx.config.env(env)
    await learn_secrets(ctx, env)  # before a line is read: what it holds must be redacted
    runtime = ctx.backends.runtime(env)
    wanted = [w.lower() for w in words if len(w) >= 3]

    async def one(service: str) -> list[str]:
        lines = await runtime.logs(service, since=LOG_WINDOW, lines=LOG_SCAN)
        hits = [(i, ln) for i, ln in enumerate(lines) if LOG_SIGNAL.search(ln) or any(w in ln.lower() for w in wanted)]
        # the newest severe lines first, then the newest of the rest, shown in the order they were written
        severe = [h for h in hits if LOG_SEVERE.search(h[1])][-LOG_SHOW:]
        room = LOG_SHOW - len(severe)
        rest = [h for h in hits if not LOG_SEVERE.search(h[1])][-room:] if room > 0 else []
        return [f"{service}: {ln}" for _, ln in sorted(severe + rest)]

    services = list(env_config.services)
    results = await asyncio.gather(*(one(s) for s in services), return_exceptions=True)
    failed = [r for r in results if isinstance(r, AdapterError) and not isinstance(r, NotFound)]
    if failed and len(failed) == len(results):
        raise failed[0]  # the engine does not answer at all: one clear line, not "no errors"
    lines: list[str] = []
    noisy: list[str] = []
    unread: list[str] = []
    for service, result in zip(services, results, strict=True):
        if isinstance(result, NotFound):
            continue  # no container: the containers diagnostic says so
        if isinstance(result, AdapterError):
            unread.append(f"{service} ({result})")
            continue
        if isinstance(result, BaseException):
            raise result
        lines += result
        if result:
            noisy.append(service)
    summary = (
        f"errors or matching lines in the last hour: {', '.join(noisy)}" if noisy else "no error lines in the last hour"
    )
    if unread:
        summary += f"; could not read: {'; '.join(unread)}"
    return Finding(name="logs", severity="warning" if noisy or unread else "ok", summary=summary, lines=lines)


async def _disk(ctx: Ctx, env: str, words: list[str]) -> Finding:
    rows = [r for r in await service_rows(ctx, env, stats=False) if r.state == "running"]
    runtime = ctx.backends.runtime(env)
    services = sorted({r.name for r in rows})
    usages = await asyncio.gather(*(runtime.disk(s) for s in services), return_exceptions=True)
    lines: list[str] = []
    levels: list[Severity] = []
    unread: list[str] = []
    for service, usage in zip(services, usages, strict=True):
        if isinstance(usage, AdapterError):
            lines.append(f"{service}: unknown ({usage})")
            unread.append(service)
            continue
        if isinstance(usage, BaseException):
            raise usage
        level, _ = by_threshold(usage.percent, ctx.config.thresholds.disk_percent, "disk", "%")
        levels.append(level)
        lines.append(f"{level.upper():8} {service}: {usage.percent:.0f}% of {usage.size_bytes // 2**20} MiB used")
    full = [ln for ln in lines if ln.startswith(("WARNING", "CRITICAL"))]
    summary = "disk use within thresholds" if worst(levels) == "ok" else f"{len(full)} filesystems filling up"
    if unread:  # not measured is never ok
        summary += f"; could not read: {', '.join(unread)}"
        levels.append("warning")
    return Finding(name="disk", severity=worst(levels), summary=summary, lines=lines)


BUILTINS: dict[str, Callable[[Ctx, str, list[str]], Awaitable[Finding]]] = {
    "containers": _containers,
    "health": _health,
    "logs": _logs,
    "stats": _stats,
    "disk": _disk,
}


async def _custom(ctx: Ctx, env: str, name: str) -> Finding:
    _, env_config = ctx.config.env(env)
    spec = env_config.diagnostics.get(name)
    if spec is None:
        return Finding(name=name, severity="ok", summary=f"not defined for {env}")
    await learn_secrets(ctx, env)  # before the command's output is read
    result = await ctx.backends.runtime(env).exec(spec.service, list(spec.command), timeout=spec.timeout)
    lines = result.output.splitlines()
    if result.exit_code != 0:
        return Finding(
            name=name, severity="warning", summary=f"exit code {result.exit_code}", lines=lines[-MAX_FINDING_LINES:]
        )
    summary = lines[0].strip() if len(lines) == 1 else f"{len(lines)} lines of output"
    return Finding(name=name, severity="ok", summary=summary, lines=lines[:MAX_FINDING_LINES])


async def run_diagnostic(ctx: Ctx, env: str, name: str, words: list[str]) -> Finding:
    """Run one diagnostic by name; a failure is a finding that says so."""
    try:
        if name in BUILTINS:
            finding = await BUILTINS[name](ctx, env, words)
        else:
            finding = await _custom(ctx, env, name)
    except AdapterError as exc:
        return Finding(name=name, severity="critical", summary=f"could not run: {exc}")
    finding.lines = finding.lines[:MAX_FINDING_LINES]
    return finding


async def run_all(ctx: Ctx, env: str, names: list[str], words: list[str]) -> list[Finding]:
    """Run the named diagnostics concurrently, in the order given."""
    return list(await asyncio.gather(*(run_diagnostic(ctx, env, n, words) for n in names)))
