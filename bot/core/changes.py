"""The path of a change: plan -> approval -> claim (exactly once) -> re-plan -> run -> verify.

``Engine.execute`` hands a change here. Without ``--dry-run`` or ``--break-glass`` it becomes a
pending approval bound to the hash of its plan; ``decide`` records approvals, denials and
cancellations; the caller whose approval completes it claims it and runs it, after planning again:
if the plan's hash changed (another version runs now, a container went away), it does not run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from adapters.errors import AccessDenied, OpsError, UserError
from bot.config import OpsConfig
from bot.config.redact import Redactor, off_loop_if_big, text_size
from bot.config.windows import WindowState, closed_text, describe, window_state, windows_of
from bot.core.access import Access
from bot.core.approvals import DONE, FAILED, STALE, Approval, Approvals
from bot.core.db import Database
from bot.core.grammar import Parsed, parse
from bot.core.locks import EnvironmentBusy, EnvLocks
from bot.core.request import Request
from commands.base import Args, CommandSpec, Ctx, Plan, Result, Severity

log = logging.getLogger("opsbot.changes")
HEARTBEAT_SECONDS = 10.0
Notify = Callable[[str, str], Awaitable[None]]


class OutsideWindow(UserError):
    """A change outside its environment's maintenance windows: refused, nothing ran."""


def utcnow() -> datetime:
    """The current time, in UTC."""
    return datetime.now(UTC)


class EngineParts(Protocol):
    """What a change needs of the engine that drives it (``bot.core.engine.Engine`` is one)."""

    config: OpsConfig
    db: Database
    access: Access
    redactor: Redactor
    registry: Mapping[str, CommandSpec]

    def make_ctx(self, request: Request) -> Ctx:
        """The context a command runs with."""
        ...

    async def learn_secrets(self, ctx: Ctx, env: str | None) -> None:
        """Learn ``env``'s secrets before its command runs."""
        ...

    def redacted(self, kind: type[Result], dumped: dict[str, Any]) -> Result:
        """A result of ``kind`` from ``dumped`` with every string redacted."""
        ...

    async def audit_event(
        self,
        request: Request,
        event: str,
        command: str,
        outcome: str,
        environment: str | None,
        details: dict[str, Any] | None = None,
    ) -> int | None:
        """Record one audit event for ``request``."""
        ...


class PlanResult(Result):
    """``--dry-run``: the plan, and nothing changed."""

    kind = "plan"
    command: str
    environment: str | None = None
    plan: Plan
    dry_run: bool = True
    #: set when the change could not run now (outside a maintenance window), and why
    note: str | None = None


class ApprovalResult(Result):
    """A change and where its approval stands; with the change's result once it ran."""

    kind = "approval"
    approval: dict[str, Any]
    plan: Plan
    #: the change's own result (a RestartResult, ...), once it ran
    result: dict[str, Any] | None = None
    result_kind: str | None = None
    message: str = ""
    outcome_severity: Severity = "ok"

    def severity(self) -> Severity:
        """The change's own severity once it ran; a failure to run is critical."""
        return self.outcome_severity


def approval_result(a: Approval, message: str = "", ran: Result | None = None) -> ApprovalResult:
    """The result a door shows for approval ``a``."""
    severity: Severity = "ok"
    if ran is not None:
        severity = ran.severity()
    elif a.state in (FAILED, STALE, "interrupted"):
        severity = "critical"
    return ApprovalResult(
        approval=a.summary(),
        plan=Plan.model_validate(a.plan),
        result=ran.model_dump(mode="json") if ran is not None else None,
        result_kind=ran.kind if ran is not None else None,
        message=message,
        outcome_severity=severity,
    )


class Changes:
    """Requests, decisions and runs of changes, for one engine."""

    def __init__(self, engine: EngineParts) -> None:
        self.engine = engine
        self.approvals = Approvals(engine.db)
        #: one change at a time per environment
        self.locks = EnvLocks(engine.db)
        #: how to tell the critical alert channel (the Slack door sets it; the console prints)
        self.notify: Notify | None = None
        #: the time windows are read at (tests set it)
        self.clock: Callable[[], datetime] = utcnow

    def window(self, spec: CommandSpec, env_name: str | None, args: Args | None = None, *,
               approved: bool = False) -> WindowState | None:  # fmt: skip
        """Where now stands against the windows of ``env_name``, for a change bound to them (None: not bound).

        Every change that needs approval is bound (deploy, rollback, restart, flag, startup, shutdown,
        restore, a maintenance task, ``backup --files --delete``); ``backup`` only adds, and is not.
        """
        needs = approved or (args.needs_approval(spec.approval) if args is not None else spec.approval)
        if not needs or env_name is None:
            return None
        state = window_state(self.engine.config, env_name, self.clock())
        return state if state.bound else None

    def _closed(self, env_name: str, state: WindowState) -> str:
        return closed_text(self.engine.config, env_name, state, self.clock())

    async def request(self, request: Request, parsed: Parsed, ctx: Ctx, roles: set[str]) -> Result:
        """Plan the change; dry run, break glass, or a pending approval. Outside its environment's
        maintenance windows it is refused (with the next window's start), unless an admin breaks glass."""
        spec, args = parsed.spec, parsed.args
        assert spec.plan is not None
        env_name = getattr(args, "env", None) or parsed.env  # ``ack``: its alert's environment
        command = parsed.text
        state = self.window(spec, env_name, args)
        outside = state is not None and not state.open
        reason = getattr(args, "break_glass", None)
        dry_run = getattr(args, "dry_run", False)
        if outside and not dry_run and not reason:
            assert state is not None and env_name is not None
            raise OutsideWindow(f"{self._closed(env_name, state)}. Nothing was run: ask again then, or an admin "
                                f"may --break-glass \"reason\".")  # fmt: skip
        plan = await spec.plan(ctx, args)
        if dry_run:
            note = None
            if outside:
                assert state is not None and env_name is not None
                note = f"{self._closed(env_name, state)}: the change would be refused until then (or --break-glass)"
            return PlanResult(command=command, environment=env_name, plan=plan, note=note)
        if not spec.approval and not spec.lease:  # it only touches alerts (ack, silence): at once, no lease
            await self.engine.audit_event(request, "started", command, "no approval needed", env_name,
                                          {"plan": plan.model_dump(mode="json")})  # fmt: skip
            return await spec.run(ctx, args)
        if reason:
            if "admins" not in roles:
                raise AccessDenied("--break-glass is for admins only")
            where = " outside the maintenance windows" if outside else ""
            await self.engine.audit_event(request, "break-glass", command, f"reason: {reason}", env_name,
                                          {"reason": reason, "plan": plan.model_dump(mode="json"),
                                           "outside_window": outside})  # fmt: skip
            await self._notify(f":rotating_light: BREAK-GLASS by {request.actor}: `{command}` without approval"
                               f"{where}. Reason: {reason}")  # fmt: skip
            async with self.locks.hold(env_name or "", f"`{command}` (break glass by {request.actor})"):
                return await spec.run(ctx, args)
        at_once = self._at_once(spec, args, env_name, state, request)
        if at_once is not None:  # it only adds (a backup), or a maintenance task inside its window
            async with self.locks.hold(env_name or "", f"`{command}` (by {request.actor})"):
                await self.engine.audit_event(request, "started", command, at_once, env_name,
                                              {"plan": plan.model_dump(mode="json")})  # fmt: skip
                return await spec.run(ctx, args)
        _, env = self.engine.config.env(env_name)
        a = await self.approvals.create(
            command=command, words=list(parsed.words), environment=env_name, requester=request.actor,
            door=request.door, plan=plan.model_dump(mode="json"), plan_hash=plan.digest(command),
            required=env.approval.required, expires_in=env.approval.expires_in, channel=request.channel,
            request_id=request.request_id,
        )  # fmt: skip
        needed = (f"{a.required} approver{'s' if a.required != 1 else ''} other than the requester"
                  if a.required else "the requester's confirmation")  # fmt: skip
        return approval_result(a, f"waiting for {needed}")

    def _at_once(self, spec: CommandSpec, args: Args, env_name: str | None, state: WindowState | None,
                 request: Request) -> str | None:  # fmt: skip
        """Why this change runs without approvers (the audit's words), or None when it waits for them."""
        if not args.needs_approval(spec.approval):
            return "no approval needed"
        if spec.approval_inside_window:
            return None
        if state is not None and state.open:
            shown = ", ".join(describe(w) for w in windows_of(self.engine.config, env_name or ""))
            return f"inside the maintenance window ({shown}): no approval needed"
        if state is None and request.door == "scheduler":
            # ops.yml's own task, in an environment without windows: the schedule is its standing approval
            return "scheduled in ops.yml (no maintenance windows in this environment): no approval needed"
        return None

    async def _notify(self, text: str) -> None:
        if self.notify is not None:
            try:
                await self.notify("critical", text)
            except Exception:
                log.exception("could not post the notice to the critical alert channel")

    async def decide(
        self, approval_id: str, actor: str, action: str, *, request: Request, reason: str | None = None
    ) -> ApprovalResult:
        """approve / deny / cancel; the approval that completes it runs the change here."""
        a = await self.approvals.get(approval_id)
        if action == "approve" and actor == a.requester and a.required > 0:
            raise AccessDenied("you requested this change: someone else must approve it (admins too)")
        if action in ("approve", "deny") and not (action == "approve" and a.required == 0 and actor == a.requester):
            roles, problems = await self.engine.access.roles(actor, a.environment)
            if not roles & {"approvers", "admins"}:
                why = f" ({'; '.join(problems)})" if problems else ""
                raise AccessDenied(f"{actor} may not {action} changes in {a.environment}: it needs the approvers "
                                   f"or admins role{why}")  # fmt: skip
        if action == "approve":
            a, complete = await self.approvals.approve(approval_id, actor)
            await self._audit_decision(
                request, a, "approved", f"by {actor} ({len(a.approvers)} of {max(a.required, 1)})"
            )
            if not complete:
                return approval_result(a, f"approved by {actor}; waiting for {a.required - len(a.approvers)} more")
            return await self.run_approved(a, request)
        if action == "deny":
            a = await self.approvals.deny(approval_id, actor, reason)
            await self._audit_decision(request, a, "denied", f"by {actor}" + (f": {reason}" if reason else ""))
            return approval_result(a, f"denied by {actor}" + (f": {reason}" if reason else ""))
        if action == "cancel":
            a = await self.approvals.cancel(approval_id, actor)
            await self._audit_decision(request, a, "cancelled", f"by {actor}")
            return approval_result(a, f"cancelled by {actor}")
        raise UserError(f"unknown decision {action!r}")

    async def _audit_decision(self, request: Request, a: Approval, event: str, outcome: str) -> None:
        await self.engine.audit_event(request, event, a.command, outcome, a.environment,
                                      {"approval": a.id, "approvers": a.approvers})  # fmt: skip

    async def run_approved(self, a: Approval, request: Request) -> ApprovalResult:
        """Claim (exactly once), plan again, run, record."""
        claimed = await self.approvals.claim(a.id)
        if claimed is None:
            current = await self.approvals.get(a.id)
            return approval_result(current, f"already {current.state}")
        a = claimed
        run_request = request
        spec = self.engine.registry.get(a.words[0].lower()) if a.words else None
        window = self.window(spec, a.environment, approved=True) if spec is not None else None
        if window is not None and not window.open:
            assert a.environment is not None
            why = f"{self._closed(a.environment, window)}; not run: request it again then"
            a = await self.approvals.finish(a.id, STALE, why)
            await self._audit_decision(request, a, "refused", why)
            return approval_result(a, why)
        try:
            parsed = parse(a.words, self.engine.registry, self.engine.config)
            ctx = self.engine.make_ctx(run_request)
            await self.engine.learn_secrets(ctx, a.environment)
            ctx.extras["approval"] = {"id": a.id, "requester": a.requester, "approvers": list(a.approvers)}
            assert parsed.spec.plan is not None
            plan = await parsed.spec.plan(ctx, parsed.args)
        except OpsError as exc:
            a = await self.approvals.finish(a.id, STALE, str(exc))
            await self._audit_decision(request, a, "stale", f"cannot plan again: {exc}")
            return approval_result(a, f"not run: {exc}; request it again")
        if plan.digest(a.command) != a.plan_hash:
            a = await self.approvals.finish(a.id, STALE, "the plan changed since it was approved")
            await self._audit_decision(request, a, "stale", "the plan changed since it was approved; not run")
            return approval_result(a, "the plan changed since it was approved (the environment is not as it was); "
                                      "not run: request it again")  # fmt: skip
        beat = asyncio.create_task(self._heartbeat(a.id))
        try:
            async with self.locks.hold(a.environment or "", f"`{a.command}` (approval {a.id} of {a.requester})"):
                await self._audit_decision(request, a, "started", f"approved by {', '.join(a.approvers)}")
                ran = await parsed.spec.run(ctx, parsed.args)
            dumped = ran.model_dump()
            ran = await off_loop_if_big(text_size(dumped), self.engine.redacted, type(ran), dumped)
        except EnvironmentBusy as exc:
            a = await self.approvals.finish(a.id, FAILED, str(exc))
            await self._audit_decision(request, a, "refused", str(exc))
            return approval_result(a, f"not run: {exc}")
        except OpsError as exc:
            a = await self.approvals.finish(a.id, FAILED, str(exc))
            await self._audit_decision(request, a, "failed", self.engine.redactor.text(str(exc)))
            return approval_result(a, f"failed: {self.engine.redactor.text(str(exc))}")
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
        state = DONE if ran.severity() != "critical" else FAILED
        a = await self.approvals.finish(a.id, state, ran.severity())
        await self._audit_decision(request, a, "succeeded" if state == DONE else "failed", ran.severity())
        problem = getattr(ran, "problem", None) or "the verification did not pass"
        return approval_result(a, "done" if state == DONE else f"failed: {problem}", ran)

    async def _heartbeat(self, approval_id: str) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            await self.approvals.heartbeat(approval_id)
