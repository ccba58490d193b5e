"""Roll back: put back the images that ran before the newest successful deploy, or version `--to`.

Without `--to`, the images come from the deploy history (what the newest successful deploy of the
environment replaced); with no such deploy recorded, on Swarm the image each service ran before its
last update (the service's own previous spec), elsewhere it says so and changes nothing: it never guesses.
With `--to 1.4.1`, every deploy service goes to `<image>:1.4.1`. Same machinery and verification as
`deploy` (no migration), and the same automatic return to what ran before if it does not verify.

Guide: 5.3 Rollback procedure.
"""

from __future__ import annotations

from adapters.errors import UserError
from commands.base import ChangeArgs, CommandSpec, Ctx, EnvName, Plan, Version
from commands.deploy import changes_for, describe, targets
from commands.rollout import RolloutResult, ServiceChange, current_images, record, rollout


class RollbackArgs(ChangeArgs):
    """Arguments of ``rollback``."""

    env: EnvName
    to: Version | None = None


async def _changes(ctx: Ctx, args: RollbackArgs) -> tuple[list[ServiceChange], dict[str, str | None], str | None]:
    assert args.env is not None
    if args.to:
        changes, before = await changes_for(ctx, args.env, targets(ctx, args.env, None), args.to)
        return changes, before, args.to
    deploys = ctx.extras.get("deploys")
    last = await deploys.last_successful_deploy(args.env) if deploys is not None else None
    if last is None or not any(last["before"].values()):
        return await _previous_spec(ctx, args.env)
    services = [s for s, image in last["before"].items() if image]
    before = await current_images(ctx, args.env, services)
    changes = [ServiceChange(service=s, image_before=before[s], image_after=last["before"][s]) for s in services]
    return changes, before, last.get("version") and f"before {last['version']}"


async def _previous_spec(ctx: Ctx, env: str) -> tuple[list[ServiceChange], dict[str, str | None], str | None]:
    """No deploy recorded: on Swarm, the image each deploy service ran before its last update; else refuse."""
    native = getattr(ctx.backends.runtime(env), "previous_images", None)
    previous: dict[str, str] = await native() if native is not None else {}
    services = targets(ctx, env, None)
    before = await current_images(ctx, env, services) if previous else {}
    changes = [
        ServiceChange(service=s, image_before=before.get(s), image_after=previous[s])
        for s in services
        if previous.get(s) and previous[s] != before.get(s)
    ]
    if not changes:
        where = " and Swarm keeps no earlier image of its deploy services" if native is not None else ""
        raise UserError(f"no successful deploy of {env} is recorded{where}: say which version with --to VERSION")
    return changes, before, "Swarm's previous version"


async def plan(ctx: Ctx, args: RollbackArgs) -> Plan:
    """What goes back to which image."""
    assert args.env is not None
    changes, _, _ = await _changes(ctx, args)
    return describe(ctx, args.env, "roll back", changes, migrate=False)


async def run(ctx: Ctx, args: RollbackArgs) -> RolloutResult:
    """Replace, verify, return to what ran before on failure; record it."""
    assert args.env is not None
    changes, before, version = await _changes(ctx, args)
    result = await rollout(ctx, args.env, "rollback", changes, version=args.to or version)
    await record(ctx, result, before)
    return result


SPEC = CommandSpec(
    name="rollback",
    summary="put back the images that ran before the newest successful deploy, or version --to; verify",
    help=__doc__ or "",
    args=RollbackArgs,
    run=run,
    plan=plan,
    usage="rollback <env> [--to <version>] [--dry-run] [--break-glass REASON]",
    positionals=("env",),
    changes=True,
    guide="5.3",
    verb="Rolling back",
    examples=("rollback prod", "rollback prod --to 1.4.1"),
    results=(RolloutResult,),
)
