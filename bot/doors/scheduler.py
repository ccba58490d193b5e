"""The scheduler door: ops.yml's ``schedules`` run by themselves, through the one request path.

Every tick (1 s) the scheduler claims each schedule that is due (``bot.core.schedule_state``: exactly one
bot process on a database file gets each run) and runs its command (``health prod``,
``verify-backup prod``, ``backup prod``) through ``Engine.handle`` as the ``scheduler`` identity,
door ``scheduler``: parsed, authorized, run, redacted and audited like any other request. It alerts
(guide 6.3) only when a run is warning or critical (an error is critical), in
``slack.alert_channels[severity]``, and when a schedule recovers (the last run was not ok, this one
is) in the channel the last alert went to, or ``info``; or, with ``feed`` (``opsbot serve``), every run's
reply goes to the incidents (``bot.core.alerting``): one message per incident, edited as it changes.
A failing tick or run is logged with its request id, and the loop goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from bot.core.access import SCHEDULER_ACTOR
from bot.core.engine import Engine, Reply, Request, new_request_id
from bot.core.logs import request_id as request_id_var
from bot.core.schedule_state import LEASE_SECONDS, Claim, Periodic, ScheduleState, schedule_key, task_words

log = logging.getLogger("opsbot.scheduler")
#: how often the loop looks for due schedules, in seconds
TICK_SECONDS = 1.0
ALERTING = ("warning", "critical")
ICON = {"ok": ":large_green_circle:", "warning": ":warning:", "critical": ":red_circle:"}

#: ``alert(channel_severity, headline, reply)``: post the headline and the rendered reply to the
#: alert channel of ``channel_severity`` (the Slack door's ``notify``)
Alert = Callable[[str, str, Reply | None], Awaitable[None]]
#: runs a coroutine in the background, keeping it (``TaskSet.spawn``); default: a task on this loop
Spawn = Callable[[Coroutine[Any, Any, Any]], object]
#: ``feed(claim, reply)``: hand a run's reply to the incidents (``Alerting.observe_run``); replaces ``alert``
Feed = Callable[[Claim, Reply], Awaitable[None]]


def alert_for(previous: str | None, alerted: str | None, severity: str) -> tuple[str | None, str | None]:
    """Where to post after a run of ``severity``, and the alert channel to remember for the next run.

    Warning or critical: that severity's channel, every time. Ok after a run that was not ok: the
    channel the last alert went to (``info`` when none is known). Otherwise nothing.
    """
    if severity in ALERTING:
        return severity, severity
    if previous in ALERTING:
        return alerted or "info", None
    return None, None


def process_owner() -> str:
    """This process's name in claims: host, pid and a random part."""
    return f"{owner_prefix(os.getpid())}{secrets.token_hex(3)}"


def owner_prefix(pid: int) -> str:
    """How the claims of process ``pid`` on this host begin."""
    return f"{socket.gethostname()}:{pid}:"


class Scheduler:
    """Runs ops.yml's schedules through ``engine``; one per bot process."""

    def __init__(
        self,
        engine: Engine,
        schedules: Sequence[Periodic] | None = None,
        *,
        alert: Alert | None = None,
        feed: Feed | None = None,
        spawn: Spawn | None = None,
        accepting: Callable[[], bool] = lambda: True,
        clock: Callable[[], float] = time.time,
        tick: float = TICK_SECONDS,
        lease: float = LEASE_SECONDS,
        owner: str | None = None,
    ) -> None:
        self.engine = engine
        self.schedules: list[Periodic] = list(engine.config.schedules if schedules is None else schedules)
        self.alert = alert
        self.feed = feed
        self.accepting = accepting
        self.clock = clock
        self.tick = tick
        self.state = ScheduleState(engine.db, owner or process_owner(), lease=lease)
        self._spawn = spawn
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started = False
        self._keys = list(dict.fromkeys(schedule_key(s) for s in self.schedules))

    async def start(self) -> None:
        """Make sure every schedule has its row (a new one is due at once)."""
        await self.state.ensure(self.schedules, self.clock())
        self._started = True

    async def claim_due(self) -> list[Claim]:
        """Claim every schedule that is due now and that no process runs."""
        if not self._started:
            await self.start()
        now = self.clock()
        claims = []
        for key in self._keys:
            claim = await self.state.claim(key, now, new_request_id())
            if claim is not None:
                claims.append(claim)
        return claims

    async def run(self, claim: Claim) -> Reply:
        """Run one claimed schedule through the engine, alert as needed, record it; never raises."""
        request_id_var.set(claim.request_id)
        words = self.words_for(claim)
        severity: str | None = None
        alerted: str | None = None
        beat = asyncio.create_task(self._heartbeat(claim))
        try:
            request = Request(actor=SCHEDULER_ACTOR, door="scheduler", words=words, request_id=claim.request_id)
            try:
                reply = await self.engine.handle(request)
            except Exception:  # handle never raises; if it does, that is a critical run, not a dead loop
                log.exception("[%s] scheduled %s failed", claim.request_id, " ".join(words))
                reply = Reply(request_id=claim.request_id, command=words[0], environment=claim.environment,
                              error=f"unexpected error (ref {claim.request_id})", exit_code=1,
                              severity="critical", actor=SCHEDULER_ACTOR)  # fmt: skip
            severity = "critical" if reply.error else reply.severity
            log.info("scheduled %s: %s", " ".join(words), reply.error or severity)
            if self.feed is not None:
                try:
                    await self.feed(claim, reply)
                except Exception:
                    log.exception("[%s] could not record the alerts of %s", claim.request_id, " ".join(words))
            else:
                alerted = await self._alert(claim, words, reply, severity)
            return reply
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            try:
                if not await self.state.finish(claim, severity, alerted if severity else None):
                    log.warning("[%s] the claim of %s was taken over before it finished", claim.request_id, claim.key)
            except Exception:
                log.exception("[%s] could not record the scheduled run of %s", claim.request_id, claim.key)

    def words_for(self, claim: Claim) -> list[str]:
        """The request a claimed run makes (``health prod``), as a person would type it."""
        return task_words(claim.task, claim.environment)

    async def _alert(self, claim: Claim, words: list[str], reply: Reply, severity: str) -> str | None:
        channel, remember = alert_for(claim.previous, claim.alerted, severity)
        if channel is None or self.alert is None:
            return remember
        what = " ".join(words)
        if severity in ALERTING:
            headline = f"{ICON[severity]} Scheduled `{what}`: {severity.upper()}"
            if reply.error:
                headline += f": {reply.error}"
        else:
            headline = f"{ICON['ok']} Scheduled `{what}` recovered: OK (was {str(claim.previous).upper()})"
        try:
            await self.alert(channel, headline, reply)
        except Exception:
            log.exception("[%s] could not post the alert for %s", claim.request_id, what)
        return remember

    async def _heartbeat(self, claim: Claim) -> None:
        while True:
            await asyncio.sleep(self.state.lease / 4)
            try:
                await self.state.heartbeat(claim, self.clock())
            except Exception:
                log.exception("[%s] could not renew the claim of %s", claim.request_id, claim.key)

    def _start_run(self, claim: Claim) -> None:
        coro = self.run(claim)
        if self._spawn is not None:
            self._spawn(coro)
            return
        task = asyncio.get_running_loop().create_task(coro, name=f"schedule-{claim.key}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def tick_once(self) -> int:
        """Claim what is due and start running it in the background; how many runs started."""
        if not self.accepting():
            return 0
        claims = await self.claim_due()
        for claim in claims:
            self._start_run(claim)
        return len(claims)

    async def run_forever(self) -> None:
        """Tick until cancelled; a failing tick is logged with its id, and the loop goes on."""
        log.info("scheduler: %d schedule(s): %s", len(self._keys), ", ".join(self._keys) or "none")
        while True:
            tick_id = new_request_id()
            request_id_var.set(tick_id)
            try:
                await self.tick_once()
            except Exception:
                log.exception("[%s] scheduler tick failed; trying again in %.0f s", tick_id, self.tick)
            await asyncio.sleep(self.tick)

    async def wait_idle(self) -> None:
        """Wait for the runs this scheduler started on its own loop (without ``spawn``)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def stop(self) -> None:
        """Cancel the runs started on this loop and wait for them (``serve`` drains through its TaskSet)."""
        for task in list(self._tasks):
            task.cancel()
        await self.wait_idle()
