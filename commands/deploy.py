"""Deploy a version: migrate, replace the deploy services with `<image>:<version>`, verify, or roll back.

The plan lists, for each service with `deploy: true` (or those of `--services a,b`), its current
image and the new one, the migration (`migrate` in ops.yml: a one-off container of the NEW image,
run before any service changes), the security gates, and the health checks that verify it. When it
runs: the images must be on the engine; each security gate (`security_maintenance` items with
`before: deploy`) runs its command in a one-off container of each new image, and a non-zero exit (or
a gate that outlives its `timeout`) refuses the deploy with the gate's output before anything
changes; a migration that fails stops everything before any service changes; each
service's containers are replaced keeping their configuration (the old ones kept until verified);
then running, healthy and every health check must pass within a bounded wait. If not, the old
containers are put back and verified, and the answer says "rolled back automatically" with the
failing check. Every deploy is recorded (see `history`).

Guide: 5.2 Deployment procedure.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

from adapters.errors import UserError
from commands.base import ChangeArgs, CommandSpec, Ctx, EnvName, Plan, Version, _check_name, shown
from commands.gates import gate_steps
from commands.rollout import RolloutResult, ServiceChange, current_images, record, rollout


def _services(value: str) -> str:
    for name in value.split(","):
        _check_name(name.strip())
    return value


class DeployArgs(ChangeArgs):
    """Arguments of ``deploy``."""

    env: EnvName
    version: Version
    services: Annotated[str, AfterValidator(_services)] | None = None


def targets(ctx: Ctx, env: str, wanted: str | None) -> list[str]:
    """The deploy services of ``env`` (all, or those named), in ops.yml order."""
    _, env_config = ctx.config.env(env)
    deployable = [name for name, s in env_config.services.items() if s.deploy and s.image]
    if not wanted:
        if not deployable:
            raise UserError(f"no service of {env} has `deploy: true` and an image in ops.yml")
        return deployable
    names = [n.strip() for n in wanted.split(",") if n.strip()]
    for name in names:
        if name not in deployable:
            raise UserError(
                f"{shown(name)} is not a deploy service of {env} (deploy services: {', '.join(deployable)})"
            )
    return [n for n in deployable if n in names]


async def changes_for(
    ctx: Ctx, env: str, services: list[str], version: str
) -> tuple[list[ServiceChange], dict[str, str | None]]:
    """Each service's change to ``version``, and the images they run now."""
    _, env_config = ctx.config.env(env)
    before = await current_images(ctx, env, services)
    changes = [
        ServiceChange(service=s, image_before=before[s], image_after=f"{env_config.services[s].image}:{version}")
        for s in services
    ]
    return changes, before


def describe(ctx: Ctx, env: str, action: str, changes: list[ServiceChange], migrate: bool, gates: bool = False) -> Plan:
    """The plan shown for approval."""
    _, env_config = ctx.config.env(env)
    steps = gate_steps(ctx.config, [(c.service, c.image_after) for c in changes]) if gates else []
    if migrate and env_config.migrate is not None:
        mig = env_config.migrate
        image = next((c.image_after for c in changes if c.service == mig.service), None)
        if image:
            steps.append(f"migration: {' '.join(mig.command)} in a one-off container of {image}")
    steps += [f"{c.service}: {c.image_before or '(no container)'} -> {c.image_after}" for c in changes]
    return Plan(
        summary=f"{action} {', '.join(c.service for c in changes)} in {env}",
        steps=steps,
        targets=[{"service": c.service, "image": c.image_before} for c in changes],
        verify=[f"{c.service} running and healthy" for c in changes]
        + [f"health check {h.name}" for h in env_config.health_checks],
    )


async def plan(ctx: Ctx, args: DeployArgs) -> Plan:
    """Current -> new image for each service, the migration, the checks."""
    assert args.env is not None
    changes, _ = await changes_for(ctx, args.env, targets(ctx, args.env, args.services), args.version)
    return describe(ctx, args.env, f"deploy {args.version} to", changes, migrate=True, gates=True)


async def run(ctx: Ctx, args: DeployArgs) -> RolloutResult:
    """Deploy, verify, roll back on failure; record it."""
    assert args.env is not None
    changes, before = await changes_for(ctx, args.env, targets(ctx, args.env, args.services), args.version)
    result = await rollout(ctx, args.env, "deploy", changes, version=args.version, migrate=True, gates=True)
    await record(ctx, result, before)
    return result


SPEC = CommandSpec(
    name="deploy",
    summary="migrate, replace the deploy services with <image>:<version>, verify, roll back by itself on failure",
    help=__doc__ or "",
    args=DeployArgs,
    run=run,
    plan=plan,
    usage="deploy <env> <version> [--services a,b] [--dry-run] [--break-glass REASON]",
    positionals=("env", "version"),
    changes=True,
    guide="5.2",
    verb="Deploying to",
    examples=("deploy prod 1.4.2", "deploy prod 1.4.2 --services api --dry-run"),
    results=(RolloutResult,),
)
