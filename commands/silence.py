"""Silence one check, metric or service of an environment for a while: its alerts are held, then expire.

`silence prod "API Health" 1h --reason "db migration"` holds the alerts of that one name in that one
environment for the duration (at most 7 days; `0s`, negative or unreadable durations are refused):
its open alerts show as silenced, new failures of it open silenced, and when the silence ends an alert
still failing is told then. A silence never hides anything else: another check, service or environment
alerts as usual. The name must be a health check, a service, a metric of `thresholds` or a scheduled
task of the environment. The `Silence 1h` button of an alert's message does the same for that alert.
Needs the operators role; no approval.

Guide: 6.3 Alerting.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import model_validator

from adapters.errors import UserError
from bot.config import parse_duration
from commands.base import ChangeArgs, CommandSpec, Ctx, EnvName, Plan, Result, Text, shown

if TYPE_CHECKING:
    from bot.config import OpsConfig

#: the longest silence, in seconds
MAX_SILENCE = 7 * 86400.0


def silence_seconds(text: str) -> float:
    """A silence's duration: above 0 and at most 7 days; ``UserError`` (one clear line) otherwise."""
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise UserError(f"silence: {exc}") from None
    if seconds > MAX_SILENCE:
        raise UserError(f"silence: {shown(text)} is longer than 7 days: silence for at most 7d")
    return seconds


def silenceable(config: OpsConfig, env: str) -> list[str]:
    """The names ``silence`` accepts in ``env``: its health checks, services, metrics and scheduled tasks."""
    _, env_config = config.env(env)
    names = [c.name for c in env_config.health_checks] + list(env_config.services)
    names += [*type(config.thresholds).model_fields, "engine"]
    names += [s.task for s in config.schedules if s.env == env]
    return list(dict.fromkeys(names))


class SilenceArgs(ChangeArgs):
    """Arguments of ``silence``."""

    env: EnvName
    what: Text
    duration: str
    reason: Text | None = None

    @model_validator(mode="after")
    def _checked(self) -> SilenceArgs:
        silence_seconds(self.duration)
        return self


class SilenceResult(Result):
    """The silence, and the open alerts it now holds."""

    kind = "silence"
    silence: dict[str, Any]
    alerts: list[dict[str, Any]] = []


def _check_what(ctx: Ctx, args: SilenceArgs) -> None:
    assert args.env is not None
    known = silenceable(ctx.config, args.env)
    if args.what not in known:
        raise UserError(f"silence: {shown(args.what)} is not a check, service, metric or task of {args.env} "
                        f"(known: {', '.join(known)})")  # fmt: skip


async def plan(ctx: Ctx, args: SilenceArgs) -> Plan:
    """What silencing does."""
    _check_what(ctx, args)
    seconds = silence_seconds(args.duration)
    return Plan(
        summary=f"silence {args.what} in {args.env} for {args.duration}",
        steps=[f"hold the alerts of {args.what} in {args.env} for {args.duration} ({seconds:.0f} s)",
               "show its open alerts as silenced; tell them again when the silence ends if still failing"],
        targets=[{"environment": args.env, "what": args.what, "seconds": seconds, "reason": args.reason}],
    )  # fmt: skip


async def run(ctx: Ctx, args: SilenceArgs) -> SilenceResult:
    """Record the silence and hold what it covers."""
    assert args.env is not None
    _check_what(ctx, args)
    silence, held = await ctx.extras["incidents"].silence(
        args.env, args.what, silence_seconds(args.duration), args.reason, ctx.actor
    )
    ctx.extras["alert_changed"]()
    return SilenceResult(silence=silence, alerts=[i.summary_json(ctx.config) for i in held])


SPEC = CommandSpec(
    name="silence",
    summary="hold one check's or service's alerts for at most 7 days; recorded",
    help=__doc__ or "",
    args=SilenceArgs,
    run=run,
    usage="silence <env> <check-or-service> <duration> [--reason TEXT]",
    positionals=("env", "what", "duration"),
    changes=True,
    guide="6.3",
    verb="Silencing",
    examples=('silence prod "API Health" 1h --reason "db migration"', "silence prod worker 30m"),
    results=(SilenceResult,),
    plan=plan,
    approval=False,
    lease=False,
)
