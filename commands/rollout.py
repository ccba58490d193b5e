"""Replacing services' containers, verifying, and putting the old ones back by itself on failure.

Shared by ``deploy``, ``rollback`` and ``flag``: images checked first, the migration (when asked)
before any service changes, then each service replaced (old containers kept, renamed), then verified
(running, healthy, every health check of the environment within a bounded wait). A failure at any
point puts the old containers back, verifies them again, and says so.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pydantic import BaseModel, Field

from adapters.errors import AdapterError
from adapters.models import Replacement
from commands.base import Ctx, Result, Severity
from commands.gates import GateRow, run_gates
from commands.inspect import CheckRow, ServiceRow, check_rows, service_row

#: how long replaced services may take to be running and healthy
WAIT_RUNNING = 120.0
#: how long the health checks may take to pass after that
WAIT_CHECKS = 60.0
CHECK_INTERVAL = 1.0
MIGRATE_TIMEOUT = 600.0
MAX_OUTPUT = 4000


class ServiceChange(BaseModel):
    """One service: the image (and environment changes) before and after."""

    service: str
    image_before: str | None = None
    image_after: str
    env: dict[str, str | None] = Field(default_factory=dict)


class RolloutResult(Result):
    """What a deploy, rollback or flag change did."""

    kind = "rollout"
    action: str
    environment: str
    version: str | None = None
    ok: bool
    rolled_back: bool = False
    changes: list[ServiceChange] = Field(default_factory=list)
    containers: list[ServiceRow] = Field(default_factory=list)
    checks: list[CheckRow] = Field(default_factory=list)
    problem: str | None = None
    #: the output of what failed (the migration's, the failing check's)
    output: str | None = None
    migration: dict[str, Any] | None = None
    #: the security gates run before anything changed (``deploy``), in order
    gates: list[GateRow] = Field(default_factory=list)

    def severity(self) -> Severity:
        """Critical unless it was done and verified."""
        return "ok" if self.ok else "critical"


async def current_images(ctx: Ctx, env: str, services: list[str]) -> dict[str, str | None]:
    """The image each service runs now (its first container's), None when it has no container."""
    infos = await ctx.backends.runtime(env).containers()
    for info in infos:
        ctx.redactor.learn_env(info.env)
    found: dict[str, str | None] = dict.fromkeys(services)
    for info in infos:
        if info.service in found and found[info.service] is None:
            found[info.service] = info.image
    return found


async def verify(ctx: Ctx, env: str, services: list[str]) -> tuple[str | None, list[ServiceRow], list[CheckRow]]:
    """None when every service runs (healthy) and every health check passes in time; else why."""
    runtime = ctx.backends.runtime(env)
    rows: list[ServiceRow] = []
    for service in services:
        try:
            rows += [service_row(ctx, c) for c in await runtime.wait_running(service, timeout=WAIT_RUNNING)]
        except AdapterError as exc:
            return str(exc), rows, []
    deadline = time.monotonic() + WAIT_CHECKS
    while True:
        checks = await check_rows(ctx, env)
        failing = [c for c in checks if not c.ok]
        if not failing:
            return None, rows, checks
        if time.monotonic() >= deadline:
            first = failing[0]
            why = first.error or f"HTTP {first.status_code}"
            return f"health check {first.name} failed: {why} ({first.url})", rows, checks
        await asyncio.sleep(CHECK_INTERVAL)


async def rollout(
    ctx: Ctx, env: str, action: str, changes: list[ServiceChange], *, version: str | None = None, migrate: bool = False,
    gates: bool = False,
) -> RolloutResult:
    """Images, security gates, migration, replace, verify; on failure put everything back and verify that."""
    _, env_config = ctx.config.env(env)
    runtime = ctx.backends.runtime(env)
    result = RolloutResult(action=action, environment=env, version=version, ok=False, changes=changes)
    services = [c.service for c in changes]
    steps = len(changes) + 1 + int(migrate and env_config.migrate is not None)
    step = 0
    for image in sorted({c.image_after for c in changes}):
        try:
            available = await runtime.image_available(image)
        except AdapterError as exc:
            result.problem = f"checking image {image} failed: {exc}; nothing was changed"
            return result
        if not available:
            result.problem = f"image {image} is not on the engine and no registry has it: nothing was changed"
            return result
    if gates:
        result.gates, refused = await run_gates(ctx, env, [(c.service, c.image_after) for c in changes])
        if refused is not None:
            result.problem, result.output = refused, result.gates[-1].output
            return result
    if migrate and env_config.migrate is not None:
        step += 1
        mig = env_config.migrate
        new_image = next((c.image_after for c in changes if c.service == mig.service), None)
        if new_image is not None:
            await ctx.progress(f"Step {step} of {steps}: migration `{' '.join(mig.command)}` on {new_image}")
            try:
                ran = await runtime.run_oneoff(mig.service, new_image, list(mig.command), timeout=MIGRATE_TIMEOUT)
            except AdapterError as exc:
                result.problem = f"the migration could not be run to its end: {exc}; no service was changed"
                await ctx.step(action, env, "step", result.problem)
                return result
            result.migration = {
                "command": list(mig.command),
                "exit_code": ran.exit_code,
                "output": ran.output[-MAX_OUTPUT:],
            }
            ran_text = f"migration `{' '.join(mig.command)}` on {new_image}: exit {ran.exit_code}"
            await ctx.step(action, env, "step", ran_text)
            if ran.exit_code != 0:
                result.problem = f"the migration exited with {ran.exit_code}: no service was changed"
                result.output = ran.output[-MAX_OUTPUT:]
                return result
    replaced: list[Any] = []
    problem: str | None = None
    for change in changes:
        step += 1
        label = f"Step {step} of {steps}: replacing {change.service} with {change.image_after}"
        await ctx.progress(label)

        async def detail(text: str, label: str = label) -> None:
            await ctx.progress(f"{label}: {text}")

        try:
            replaced.append(
                await runtime.replace(change.service, change.image_after, env=change.env or None, progress=detail)
            )
        except AdapterError as exc:
            problem = f"replacing {change.service} failed: {exc}"
            await ctx.step(action, env, "step", problem, service=change.service)
            # its own half-done change is put back too (Compose did it already: this finds nothing to do;
            # a Swarm update that paused or timed out is rolled back)
            replaced.append(Replacement(service=change.service, image_before=change.image_before,
                                        image_after=change.image_after))  # fmt: skip
            break
        await ctx.step(action, env, "step", f"replaced {change.service}: {change.image_before} -> {change.image_after}",
                       service=change.service)  # fmt: skip
    if problem is None:
        await ctx.progress(f"Step {steps} of {steps}: verifying {', '.join(services)}")
        problem, result.containers, result.checks = await verify(ctx, env, services)
        await ctx.step(action, env, "step", f"verification of {', '.join(services)}: {problem or 'passed'}")
        if problem is None:
            for r in replaced:
                await runtime.commit(r)
            result.ok = True
            return result
    result.problem = problem
    result.output = next((c.error for c in result.checks if not c.ok), None)
    await ctx.progress(f"Failed ({problem}); putting the previous containers back...")
    stuck: list[str] = []
    for r in reversed(replaced):
        try:
            await runtime.revert(r)
            await ctx.step(action, env, "step", f"put back {r.service}: {r.image_before}", service=r.service)
        except AdapterError as exc:
            stuck.append(f"{r.service} ({exc})")
            await ctx.step(action, env, "step", f"putting back {r.service} failed: {exc}", service=r.service)
    if stuck:  # the truth: what could not be put back, and what to do
        names = ", ".join(s.partition(" ")[0] for s in stuck)
        result.problem = (
            f"{problem}. Putting the previous version back FAILED for {'; '.join(stuck)}: {names} may still run the"
            f" new version. Check `status {env}` and roll back when the engine answers."
        )
        return result
    result.rolled_back = True
    again, result.containers, result.checks = await verify(ctx, env, services)
    await ctx.step(action, env, "step", f"verification of the previous version: {again or 'passed'}")
    if again is None:
        result.problem = f"{problem}. Rolled back automatically: the previous version runs and verifies again."
    else:
        result.problem = f"{problem}. Rolled back automatically, but the previous version does not verify: {again}"
    return result


async def record(ctx: Ctx, result: RolloutResult, before: dict[str, str | None]) -> None:
    """Keep the deploy history (guide 5.3)."""
    deploys = ctx.extras.get("deploys")
    if deploys is None:
        return
    approval = ctx.extras.get("approval") or {}
    outcome = "succeeded" if result.ok else ("rolled-back" if result.rolled_back else "failed")
    if any(not g.passed for g in result.gates):
        outcome = "refused"
    await deploys.record({
        "environment": result.environment, "kind": result.action, "version": result.version,
        "services": [c.service for c in result.changes], "before": before,
        "after": {c.service: c.image_after for c in result.changes}, "requester": ctx.actor if not approval
        else approval.get("requester", ctx.actor), "approvers": approval.get("approvers", []), "outcome": outcome,
        "detail": result.problem, "started_at": ctx.extras.get("started_at", time.time()),
        "approval_id": approval.get("id"),
    })  # fmt: skip
