"""Alerts in one process: the scheduler's runs fed to the incidents, the periodic sweep, and the audit.

``observe_run`` turns a scheduled run's reply into observations (``bot.core.observe``) and applies them
(``bot.core.incidents``); ``sweep`` ends holds, escalates and takes the day's digest. Every transition is
audited as the ``scheduler`` (door ``scheduler``), and each wakes the outbox worker so that what it must
tell goes out at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from bot.core.access import SCHEDULER_ACTOR
from bot.core.digest import Digests
from bot.core.engine import Engine
from bot.core.incidents import Change, Incidents
from bot.core.observe import observations
from bot.core.request import Reply, Request, new_request_id

log = logging.getLogger("opsbot.alerts")

#: the audit event of each transition
EVENTS = {"opened": "alert-opened", "opened-held": "alert-held", "resolved": "alert-resolved",
          "reopened": "alert-reopened", "severity": "alert-severity", "unheld": "alert-unheld",
          "escalated": "alert-escalated"}  # fmt: skip


class Alerting:
    """The incidents of one engine, fed and swept."""

    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock
        self.incidents: Incidents = engine.incidents
        self.digests = Digests(engine.db, engine.config)

    def _wake(self) -> None:
        wake = self.engine.alert_changed
        if wake is not None:
            wake()

    async def observe_run(self, task: str, env: str, reply: Reply, request_id: str | None = None) -> list[Change]:
        """Apply what one scheduled run of ``task`` in ``env`` saw."""
        scope, seen = observations(task, reply)
        changes = await self.incidents.observe(env, scope, seen, self.clock())
        await self._audit(changes, request_id or reply.request_id)
        if changes or seen:
            self._wake()
        return changes

    async def sweep(self) -> list[Change]:
        """End holds, escalate what is due, take the digest when due; audited."""
        now = self.clock()
        changes = await self.incidents.sweep(now)
        await self._audit(changes, new_request_id())
        digest = await self.digests.take(now)
        if digest:
            log.info("the alert digest of %s is on its way", digest)
        if changes or digest:
            self._wake()
        return changes

    async def _audit(self, changes: list[Change], request_id: str) -> None:
        for change in changes:
            inc = change.incident
            request = Request(actor=SCHEDULER_ACTOR, door="scheduler", request_id=request_id)
            await self.engine.audit_event(
                request, EVENTS.get(change.event, f"alert-{change.event}"), f"alert {inc.id} {inc.fingerprint}",
                f"{inc.severity}: {change.detail}"[:500], inc.environment,
                {"alert": inc.id, "state": inc.state, "level": inc.level, "count": inc.count},
            )  # fmt: skip
