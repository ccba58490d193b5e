"""Turn a feature flag on or off: recreate the services that carry it with the new value, and verify.

The services whose containers have the variable (e.g. `FEATURE_CHECKOUT`) are replaced with the same
image and configuration and the new value (`on` / `off`), then verified like a deploy; on failure the
previous containers come back by themselves. See the flags with `config <env>`.

Guide: 4.3 Feature flags.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator

from adapters.errors import UserError
from commands.base import ChangeArgs, CommandSpec, Ctx, EnvName, Plan, shown
from commands.config import FLAG_PREFIX
from commands.inspect import containers
from commands.rollout import RolloutResult, ServiceChange, record, rollout

FLAG_RE = re.compile(FLAG_PREFIX + r"[A-Z0-9_]{1,60}")


def _flag(value: str) -> str:
    if not FLAG_RE.fullmatch(value):
        raise ValueError(f"invalid flag {shown(value)}: flags are named FEATURE_ followed by A-Z, 0-9 and _")
    return value


class FlagArgs(ChangeArgs):
    """Arguments of ``flag``."""

    env: EnvName
    name: Annotated[str, AfterValidator(_flag)]
    value: Literal["on", "off"]


async def _changes(ctx: Ctx, args: FlagArgs) -> tuple[list[ServiceChange], dict[str, str | None], dict[str, str]]:
    assert args.env is not None
    carriers: dict[str, str] = {}
    images: dict[str, str | None] = {}
    for info in await containers(ctx, args.env, stats=False):
        if args.name in info.env and info.service not in carriers:
            carriers[info.service] = info.env[args.name]
            images[info.service] = info.image
    if not carriers:
        raise UserError(f"no service of {args.env} carries {args.name} (see: config {args.env})")
    changes = [
        ServiceChange(service=s, image_before=images[s], image_after=images[s] or "", env={args.name: args.value})
        for s in carriers
    ]
    return changes, images, carriers


async def plan(ctx: Ctx, args: FlagArgs) -> Plan:
    """Which services carry the flag, its value now and after."""
    assert args.env is not None
    changes, _, now = await _changes(ctx, args)
    _, env_config = ctx.config.env(args.env)
    return Plan(
        summary=f"set {args.name}={args.value} in {args.env} ({', '.join(now)})",
        steps=[
            f"{s}: {args.name} {now[s]} -> {args.value}, recreate on {c.image_after}"
            for s, c in zip(now, changes, strict=True)
        ],
        targets=[
            {"service": s, "value": v, "image": c.image_before} for (s, v), c in zip(now.items(), changes, strict=True)
        ],
        verify=[f"{s} running and healthy" for s in now] + [f"health check {h.name}" for h in env_config.health_checks],
    )


async def run(ctx: Ctx, args: FlagArgs) -> RolloutResult:
    """Recreate with the new value, verify; record it."""
    assert args.env is not None
    changes, before, _ = await _changes(ctx, args)
    result = await rollout(ctx, args.env, "flag", changes, version=f"{args.name}={args.value}")
    await record(ctx, result, before)
    return result


SPEC = CommandSpec(
    name="flag",
    summary="set a feature flag: recreate the services carrying it with the new value, verify",
    help=__doc__ or "",
    args=FlagArgs,
    run=run,
    plan=plan,
    usage="flag <env> <FEATURE_NAME> on|off [--dry-run] [--break-glass REASON]",
    positionals=("env", "name", "value"),
    changes=True,
    guide="4.3",
    verb="Setting a flag in",
    examples=("flag prod FEATURE_CHECKOUT off",),
    results=(RolloutResult,),
)
