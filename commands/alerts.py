"""List the open alerts: firing, acknowledged and silenced, newest first.

Each alert shows its id (for `ack`), severity, what failed, since when, who acknowledged it and its
escalation level. The silences still running, the maintenance tasks running now (each holds the alerts
of the services it touches while it runs) and the maintenance windows are listed too. A window holds no
alert by itself: a failure in an environment whose window is open is told at once unless a silence or a
running task covers it. With an environment, only that environment's; without, those of the environments
you may read (each environment's own `access` applies).

Guide: 6.3 Alerting.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import Field

from bot.config.windows import describe, window_state, windows_of
from commands.base import Args, CommandSpec, Ctx, EnvName, Result, visible_to_actor


class AlertsArgs(Args):
    """Arguments of ``alerts``."""

    env: EnvName | None = None


class AlertsResult(Result):
    """Open alerts, silences and windows."""

    kind = "alerts"
    environment: str | None = None
    alerts: list[dict[str, Any]] = Field(default_factory=list)
    silences: list[dict[str, Any]] = Field(default_factory=list)
    #: maintenance windows: environment, window, open now, until / next start
    windows: list[dict[str, Any]] = Field(default_factory=list)
    #: maintenance tasks running now: environment, task, started_at, actor, holds (the services whose alerts
    #: they hold)
    maintenance: list[dict[str, Any]] = Field(default_factory=list)


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


async def run(ctx: Ctx, args: AlertsArgs) -> AlertsResult:
    """Read them."""
    incidents = ctx.extras["incidents"]
    now = incidents.clock()
    hidden: list[str] = []
    known: list[str] | None = None
    if args.env is None:  # across environments: only those the caller may read (as ``audit``, ``pending``)
        hidden, known = await visible_to_actor(ctx)

    def seen(env: str) -> bool:
        return env not in hidden and (known is None or env in known)

    alerts = [i.summary_json(ctx.config) for i in await incidents.open(args.env) if seen(i.environment)]
    silences = [{**s, "created_at": _iso(s["created_at"]), "until": _iso(s["until"])}
                for s in await incidents.silences(args.env, now) if seen(s["environment"])]  # fmt: skip
    windows = []
    for env in [args.env] if args.env else [e for e in sorted(ctx.config.environments) if seen(e)]:
        state = window_state(ctx.config, env, datetime.fromtimestamp(now, UTC))
        for w in windows_of(ctx.config, env):
            windows.append({"environment": env, "window": describe(w), "open": state.open,
                            "until": state.closes_at.isoformat() if state.open and state.closes_at else None,
                            "next_start": state.next_start.isoformat() if state.next_start else None})  # fmt: skip
    book = ctx.extras.get("maintenance")
    active = await book.active(args.env) if book is not None else []
    running = [{"environment": r["environment"], "task": r["task"], "started_at": _iso(r["started_at"]),
                "actor": r["actor"], "holds": list(r["holds"])} for r in active if seen(r["environment"])]  # fmt: skip
    return AlertsResult(environment=args.env, alerts=alerts, silences=silences, windows=windows, maintenance=running)


SPEC = CommandSpec(
    name="alerts",
    summary="open alerts (firing, acknowledged, silenced), newest first, with silences, running tasks and windows",
    help=__doc__ or "",
    args=AlertsArgs,
    run=run,
    usage="alerts [env]",
    positionals=("env",),
    guide="6.3",
    verb="Listing alerts",
    examples=("alerts", "alerts prod"),
    results=(AlertsResult,),
)
