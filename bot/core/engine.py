"""The one request path: parse -> authorize -> run -> redact -> audit, for every door.

Every door (Slack, console, command line, scheduler) hands the engine a ``Request`` and renders
the ``Reply`` it gets back. Known errors become one clear line; anything else is logged with a
reference id and the user sees only "unexpected error (ref ...)".
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from functools import partial
from typing import Any

from adapters.errors import AccessDenied, OpsError, UserError
from bot.config import OpsConfig
from bot.config.redact import Redactor, off_loop_if_big, text_size
from bot.core.access import Access, GroupResolver
from bot.core.approvals import Approval
from bot.core.audit import AuditLog
from bot.core.backups import Backups
from bot.core.changes import Changes
from bot.core.db import Database
from bot.core.deploys import Deploys
from bot.core.duties import Duties
from bot.core.grammar import Parsed, parse, split
from bot.core.incidents import Incidents
from bot.core.maintenance_runs import MaintenanceRuns
from bot.core.request import DOORS, Reply, Request, new_request_id
from commands import REGISTRY
from commands.base import Backends, CommandSpec, Ctx, Result

log = logging.getLogger("opsbot.engine")
__all__ = ["DOORS", "Engine", "Reply", "Request", "new_request_id"]


class Engine:
    """Runs requests. One per process; safe for concurrent requests."""

    def __init__(
        self,
        config: OpsConfig,
        backends: Backends,
        db: Database,
        redactor: Redactor,
        *,
        groups: GroupResolver | None = None,
        registry: Mapping[str, CommandSpec] = REGISTRY,
    ) -> None:
        self.config = config
        self.backends = backends
        self.db = db
        self.redactor = redactor
        self.registry = registry
        self.audit = AuditLog(db, redactor)
        self.access = Access(config, groups)
        self.changes = Changes(self)
        self.deploys = Deploys(db)
        self.backups = Backups(db)
        self.maintenance = MaintenanceRuns(db)
        self.duties = Duties(db)
        self.incidents = Incidents(db, config)
        #: called after a command changed an alert (``ack``, ``silence``): wakes the outbox worker
        self.alert_changed: Callable[[], None] | None = None

    async def handle(self, request: Request) -> Reply:
        """Run one request through the whole path; never raises."""
        prepared = await self.prepare(request)
        if isinstance(prepared, Reply):
            return prepared
        return await self.execute(request, prepared)

    async def prepare(self, request: Request) -> Parsed | Reply:
        """Parse and authorize. A refusal comes back as an audited ``Reply``; never raises.

        Doors that must answer at once (Slack's 3-second acknowledgement) call this first, then
        ``execute`` in the background.
        """
        start = time.perf_counter()
        reply = Reply(request_id=request.request_id, actor=request.actor)
        text = request.text if request.words is None else " ".join(request.words)
        try:
            words = list(request.words) if request.words is not None else split(request.text)
            parsed = parse(words, self.registry, self.config)
            reply.command, reply.spec = parsed.spec.name, parsed.spec
            reply.environment = getattr(parsed.args, "env", None)
            text = parsed.text
            if parsed.spec.target_env is not None:  # ``ack <alert-id>``: the alert's environment decides
                parsed = await self._authorize_target(request, parsed)
            else:
                await self.access.authorize(request.actor, parsed.spec, reply.environment, parsed.args)
        except OpsError as exc:
            reply.error, reply.exit_code = self.redactor.text(str(exc)), exc.exit_code
            reply.audit_id = await self._audit(request, reply, text or "(empty)", "refused", reply.error)
            reply.duration_ms = (time.perf_counter() - start) * 1000
            return reply
        except Exception:
            return await self._unexpected(request, reply, text, start)
        return parsed

    async def _authorize_target(self, request: Request, parsed: Parsed) -> Parsed:
        """Authorize a command that names a record (an alert) in that record's environment; ``parsed``
        with it. Unknown and hidden records are refused alike (``CommandSpec.unknown_target``)."""
        spec = parsed.spec
        assert spec.target_env is not None
        env = await spec.target_env(self.make_ctx(request), parsed.args)
        refusal = spec.unknown_target.format(**parsed.args.model_dump())
        try:
            await self.access.authorize_target(request.actor, spec, env, parsed.args, refusal)
        except AccessDenied as exc:
            if env is not None and str(exc) == refusal:  # the log may say where; the user is told nothing
                log.info("[%s] %s refused %r: its record is in %s", request.request_id, request.actor, parsed.text, env)
            raise
        return replace(parsed, env=env)

    async def execute(self, request: Request, parsed: Parsed) -> Reply:
        """Run a prepared request, redact its result and audit it; never raises."""
        start = time.perf_counter()
        reply = Reply(request_id=request.request_id, actor=request.actor, command=parsed.spec.name, spec=parsed.spec)
        reply.environment = parsed.env or getattr(parsed.args, "env", None)
        text = parsed.text
        await self._audit(request, reply, text, "requested", "accepted", {"args": parsed.args.model_dump(mode="json")})
        try:
            ctx = self.make_ctx(request)
            if parsed.spec.learns_secrets == "first" and parsed.args.shows_environment():
                await self.learn_secrets(ctx, getattr(parsed.args, "env", None))
            # listings across environments show only what the actor may see in each (``audit``, ``pending``)
            ctx.extras["visible"] = partial(self.access.visible, request.actor, parsed.spec)
            if parsed.spec.changes and parsed.args.makes_change():
                roles, _ = await self.access.roles(request.actor, reply.environment)
                result = await self.changes.request(request, parsed, ctx, roles)
            else:
                result = await parsed.spec.run(ctx, parsed.args)
            # one redaction of the result itself: every renderer downstream sees only redacted data (in the
            # redaction thread: a big log must not stall the loop that serves everyone else)
            dumped = result.model_dump()
            reply.size = text_size(dumped)
            shown = await off_loop_if_big(reply.size, self.redacted, type(result), dumped)
            shown.adopt(result)  # what the result keeps outside its data (a logs spool, redacted as written)
            reply.result = shown
            reply.severity = shown.severity()
            reply.exit_code = 0 if reply.severity == "ok" else 1
            outcome, event = str(reply.severity), "succeeded"
            if shown.kind == "plan":
                outcome, event = "dry run: nothing changed", "planned"
            elif shown.kind == "approval":
                approval = getattr(shown, "approval", {})
                outcome, event = f"approval {approval.get('id')} pending", "awaiting-approval"
        except OpsError as exc:
            reply.error, reply.exit_code = self.redactor.text(str(exc)), exc.exit_code
            reply.severity = "critical"
            outcome, event = reply.error, "failed" if not isinstance(exc, UserError) else "refused"
        except Exception:
            return await self._unexpected(request, reply, text, start)
        reply.duration_ms = (time.perf_counter() - start) * 1000
        reply.audit_id = await self._audit(
            request, reply, text, event, outcome, {"duration_ms": round(reply.duration_ms, 1)}
        )
        return reply

    def redacted(self, kind: type[Result], dumped: dict[str, Any]) -> Result:
        """A result of ``kind`` from ``dumped`` with every string redacted (CPU-bound: ``off_loop_if_big``)."""
        return kind.model_validate(self.redactor.data(dumped))

    def make_ctx(self, request: Request) -> Ctx:
        """The context a command runs with."""
        return Ctx(
            config=self.config,
            backends=self.backends,
            redactor=self.redactor,
            audit=self.audit,
            actor=request.actor,
            door=request.door,
            request_id=request.request_id,
            progress=request.progress,
            registry=self.registry,
            extras={"approvals": self.changes.approvals, "deploys": self.deploys, "backups": self.backups,
                    "started_at": time.time(), "audit_step": partial(self._step, request),
                    "maintenance": self.maintenance, "duties": self.duties, "clock": self.changes.clock,
                    "incidents": self.incidents, "alert_changed": self.alert_changed or (lambda: None)},
        )  # fmt: skip

    async def learn_secrets(self, ctx: Ctx, env: str | None) -> None:
        """Learn ``env``'s secrets before its command runs, whatever ran before (best effort: a command
        that shows what the environment says learns them itself, and fails when it cannot)."""
        if env is None:
            return
        from commands.inspect import learn_secrets

        try:
            await learn_secrets(ctx, env)
        except (OpsError, OSError) as exc:
            log.debug("[%s] could not learn the secrets of %s yet: %s", ctx.request_id, env, exc)

    async def _step(self, request: Request, command: str, event: str, outcome: str, env: str | None,
                    details: dict[str, Any] | None = None) -> None:  # fmt: skip
        """One step of a running procedure (``ctx.extras["audit_step"]``), in the audit log."""
        await self.audit_event(request, event, command, self.redactor.text(outcome), env, details)

    async def audit_event(
        self,
        request: Request,
        event: str,
        command: str,
        outcome: str,
        environment: str | None,
        details: dict[str, Any] | None = None,
    ) -> int | None:
        """Record one audit event for ``request`` (never raises)."""
        reply = Reply(request_id=request.request_id, actor=request.actor, environment=environment)
        return await self._audit(request, reply, command, event, outcome, details)

    async def decide(self, request: Request, approval_id: str, action: str, reason: str | None = None) -> Reply:
        """Approve, deny or cancel an approval as ``request.actor``; never raises.

        When this decision completes the approval, the change runs here, in this call.
        """
        start = time.perf_counter()
        reply = Reply(request_id=request.request_id, actor=request.actor, command=action)
        try:
            result = await self.changes.decide(approval_id, request.actor, action, request=request, reason=reason)
            reply.result = result
            reply.environment = result.approval.get("environment")
            reply.severity = result.severity()
            reply.exit_code = 0 if reply.severity == "ok" else 1
        except OpsError as exc:
            reply.error, reply.exit_code = self.redactor.text(str(exc)), exc.exit_code
            reply.audit_id = await self._audit(request, reply, f"{action} {approval_id}", "refused", reply.error)
        except Exception:
            return await self._unexpected(request, reply, f"{action} {approval_id}", start)
        reply.duration_ms = (time.perf_counter() - start) * 1000
        return reply

    async def sweep(self) -> list[Approval]:
        """Expire approvals past their time (audited); the ones expired now."""
        expired = await self.changes.approvals.expire_due()
        for a in expired:
            req = Request(actor="opsbot", door="scheduler", request_id=a.request_id or new_request_id())
            await self.audit_event(
                req, "expired", a.command, f"approval {a.id} expired", a.environment, {"approval": a.id}
            )
        return expired

    async def recover(self) -> list[Approval]:
        """At start: runs cut off by a crash are marked interrupted (audited), never re-run."""
        orphans = await self.changes.approvals.interrupt_orphans()
        for a in orphans:
            req = Request(actor="opsbot", door="scheduler", request_id=a.request_id or new_request_id())
            await self.audit_event(
                req, "interrupted", a.command, f"approval {a.id}: the bot stopped during the run; not re-run",
                a.environment, {"approval": a.id},
            )  # fmt: skip
        return orphans

    async def _audit(
        self,
        request: Request,
        reply: Reply,
        text: str,
        event: str,
        outcome: str,
        details: dict[str, Any] | None = None,
    ) -> int | None:
        try:
            return await self.audit.append(
                actor=request.actor,
                source=request.door,
                command=text[:1000],
                event=event,
                outcome=outcome[:500],
                environment=reply.environment,
                details=details,
                request_id=request.request_id,
            )
        except Exception:
            # an audit failure must be loud, but must not hide what happened from the user
            log.exception("[%s] could not write the audit entry for %r", request.request_id, event)
            return None

    async def _unexpected(self, request: Request, reply: Reply, text: str, start: float) -> Reply:
        ref = secrets.token_hex(3)
        log.exception("[%s] unexpected error (ref %s) in %r", request.request_id, ref, self.redactor.text(text))
        reply.ref = ref
        reply.error = f"unexpected error (ref {ref})"
        reply.exit_code = 1
        reply.severity = "critical"
        reply.duration_ms = (time.perf_counter() - start) * 1000
        reply.audit_id = await self._audit(request, reply, text, "failed", reply.error)
        return reply
