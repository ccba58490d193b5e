"""The outbox worker: delivers alert notifications, in order per incident, once, whatever fails meanwhile.

It claims due rows of the outbox (``bot.core.outbox``: a lease, so that of several bot processes one
sends each), renders Slack rows from the incident as it stands (``bot.slack.blocks_alert``), sends them
through the notifiers (``adapters.notify``), and marks them sent. A failure puts the row back with a
backoff, or after Slack's Retry-After (and Slack is paused that long for every row); a permanent one
(a bad PagerDuty routing key, a refused SMTP login) is also said once a day in the critical channel.
Nothing is ever dropped. Diagnoses run ``troubleshoot`` through the engine as the scheduler and go in
the incident's thread. Every second it also sweeps (holds that end, escalations, the digest).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from adapters.notify.base import DeliveryError, Notifier, Outgoing
from bot.config.redact import Redactor
from bot.core.access import SCHEDULER_ACTOR
from bot.core.alerting import Alerting
from bot.core.db import Db, immediate
from bot.core.engine import Engine
from bot.core.incident import Incident
from bot.core.outbox import LEASE_SECONDS, Delivery, Outbox, backoff
from bot.core.request import Reply, Request, new_request_id
from bot.core.tell import Tell
from bot.render.alerts import digest_email
from bot.slack.blocks import render_message
from bot.slack.blocks_alert import (
    incident_message,
    notice_message,
    pointer_message,
    reply_message,
    storm_message,
)  # fmt: skip
from bot.slack.liveness import SlackLiveness
from bot.slack.mrkdwn import Message

log = logging.getLogger("opsbot.alerts")
#: the most rows delivered at once
BATCH = 20
#: how often the worker looks for due rows without being woken, and sweeps
POLL = 1.0
#: failures after which a notification may have reached the receiver unheard (it is looked for first)
UNHEARD = frozenset({"timeout", "unreachable", "http_5xx", "bad_answer"})
#: how long before its row was written a post is looked for in Slack (clocks of hosts differ)
LOOK_BACK = 300.0


class NotYet(Exception):
    """A row cannot go yet (its message is not posted); it is tried again shortly."""


class AlertWorker:
    """Delivers the outbox of ``engine``'s database through ``notifiers`` (by name: slack, pagerduty, email)."""

    def __init__(self, engine: Engine, notifiers: dict[str, Notifier], *, owner: str,
                 redactor: Redactor | None = None, clock: Callable[[], float] = time.time, poll: float = POLL,
                 lease: float = LEASE_SECONDS,
                 run_request: Callable[[Request], Awaitable[Reply]] | None = None) -> None:  # fmt: skip
        self.engine = engine
        self.config = engine.config
        self.notifiers = notifiers
        self.redactor = redactor or engine.redactor
        self.clock = clock
        self.poll = poll
        #: how a diagnosis runs its ``troubleshoot`` request (``serve``: on the procedures' worker loop)
        self.run_request = run_request or engine.handle
        self.outbox = Outbox(engine.db, owner, lease=lease)
        self.alerting = Alerting(engine, clock=clock)
        self.incidents = self.alerting.incidents
        #: notifier -> until when it is paused (Slack's Retry-After)
        self.paused: dict[str, float] = {}
        self.delivered = 0
        self._event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._swept = 0.0
        self._pruned = 0.0
        #: told whether Slack answered each delivery (``opsbot serve``: /health and /metrics)
        self.liveness: SlackLiveness | None = None

    # ---------------------------------------------------------------- the loop

    def wake(self) -> None:
        """Look at the outbox now (callable from any thread)."""
        if self._loop is not None and self._event is not None:
            self._loop.call_soon_threadsafe(self._event.set)

    async def run_forever(self) -> None:
        """Deliver until cancelled; a failing step is logged and the loop goes on."""
        self._loop, self._event = asyncio.get_running_loop(), asyncio.Event()
        while True:
            try:
                busy = await self.step()
            except Exception:
                log.exception("the alert outbox step failed; trying again")
                busy = 0
            if busy >= BATCH:
                continue
            self._event.clear()
            wait = self.poll
            due = await self._next_due()
            if due is not None:
                wait = max(0.01, min(wait, due - self.clock()))
            # not asyncio.wait_for: on Python 3.11 a wake and a cancel in one loop step returned the wake and
            # lost the cancel (the worker went on, and a shutdown waited for it forever)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._event.wait()

    async def _next_due(self) -> float | None:
        try:
            return await self.outbox.next_due()
        except Exception:
            return None

    async def step(self) -> int:
        """Sweep (at most every ``poll`` s), then deliver one batch of due rows; how many were tried."""
        now = self.clock()
        if now - self._swept >= self.poll:
            self._swept = now
            await self.alerting.sweep()
            if now - self._pruned >= 3600:
                self._pruned = now
                await self.outbox.prune(now)
        paused = tuple(name for name, until in self.paused.items() if until > now)
        batch = await self.outbox.claim(now, limit=BATCH, paused=paused)
        if batch:
            await asyncio.gather(*(self.deliver(d) for d in batch))
        return len(batch)

    async def close(self) -> None:
        """Close the notifiers."""
        for notifier in self.notifiers.values():
            await notifier.close()

    async def drain(self, timeout: float = 30.0) -> None:
        """Deliver until nothing is due (tests, the benchmark, a shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and await self.step():
            pass

    # ---------------------------------------------------------------- one delivery

    async def deliver(self, d: Delivery) -> None:
        """Send one row; mark it sent, or put it back with a backoff."""
        now = self.clock()
        try:
            result = await self._send(d)
        except NotYet as exc:
            await self.outbox.retry(d, now, str(exc), after=1.0, maybe_sent=False)
            return
        except DeliveryError as exc:
            gone = exc.code in ("timeout", "unreachable", "http_5xx")
            if self.liveness is not None and d.notifier == "slack" and gone:
                self.liveness.api_failed(str(exc))
            await self._failed(d, exc, now)
            return
        except Exception as exc:
            log.exception("delivering %s %s of alert %s failed", d.notifier, d.op, d.incident)
            await self.outbox.retry(d, now, f"unexpected error: {type(exc).__name__}", after=backoff(d.attempts),
                                    maybe_sent=True)  # fmt: skip
            return
        if self.liveness is not None and d.notifier == "slack":
            self.liveness.api_ok()
        if not await self.outbox.sent(d, self.clock(), result):
            log.warning("delivery %s was taken over by another process before it was marked sent", d.delivery_id)
        self.delivered += 1

    async def _failed(self, d: Delivery, exc: DeliveryError, now: float) -> None:
        after = exc.retry_after if exc.retry_after else backoff(d.attempts, permanent=exc.permanent)
        if exc.retry_after:
            self.paused[d.notifier] = max(self.paused.get(d.notifier, 0.0), now + exc.retry_after)
        what = f"alert {d.incident}" if d.incident else str(d.payload.get("date") or d.grp)
        log.warning("%s %s of %s not delivered (attempt %d): %s; next try in %.0f s", d.notifier, d.op,
                    what, d.attempts, exc, after)  # fmt: skip
        await self.outbox.retry(d, now, str(exc), after=after, maybe_sent=exc.code in UNHEARD)
        if exc.permanent and d.op != "notice":
            await self._notice(d.notifier, exc, now)

    async def _notice(self, notifier: str, exc: DeliveryError, now: float) -> None:
        """Say a receiver refuses alerts, once a day per receiver and reason, in the critical channel."""
        day = datetime.fromtimestamp(now, UTC).date().isoformat()
        text = f"{notifier}: {exc}. Alerts to {notifier} are kept and retried every hour until this is fixed."

        def go(db: Db) -> None:
            with immediate(db.conn) as conn:
                Tell(conn, self.config, now).notice("critical", text, dedupe=f"notice:{notifier}:{exc.code}:{day}")

        await self.engine.db.call(go)
        self.wake()

    async def _send(self, d: Delivery) -> dict[str, Any]:
        if d.notifier == "opsbot" and d.op == "diagnose":
            return await self._diagnose(d)
        notifier = self.notifiers.get(d.notifier)
        if notifier is None:
            raise DeliveryError(f"no {d.notifier} notifier is configured", permanent=True, code="not_configured")
        if d.notifier == "slack":
            body = await self._slack_body(d)
        elif d.notifier == "email":
            body = await self._email_body(d)
        else:
            body = d.payload
        result = await notifier.send(Outgoing(delivery_id=d.delivery_id, body=body))
        if d.notifier == "slack" and d.op == "post" and result.get("ts"):
            await self.incidents.set_message(d.incident, d.payload.get("storm"), str(body["args"]["channel"]),
                                             str(result["ts"]))  # fmt: skip
        return result

    # ---------------------------------------------------------------- rendering

    def _args(self, channel: str, message: Message, **extra: Any) -> dict[str, Any]:
        return {"channel": channel, "text": self.redactor.text(message.text),
                "blocks": self.redactor.data(message.blocks), **extra}  # fmt: skip

    def _post(self, d: Delivery, channel: str, message: Message, **extra: Any) -> dict[str, Any]:
        """A chat.postMessage carrying its delivery id; to be looked for first if it may have landed unheard."""
        meta = {"event_type": "opsbot_alert", "event_payload": {"delivery_id": d.delivery_id}}
        body: dict[str, Any] = {"method": "chat.postMessage", "args": self._args(channel, message, metadata=meta,
                                                                                 **extra)}  # fmt: skip
        if d.maybe_sent:
            body["find"] = {"oldest": d.created_at - LOOK_BACK}
        return body

    async def _slack_body(self, d: Delivery) -> dict[str, Any]:
        channel, now = str(d.payload["channel"]), self.clock()
        if d.op == "notice":
            return self._post(d, channel, notice_message(d.payload["text"]))
        storm = d.payload.get("storm")
        if storm:
            members, ts = await self._storm(str(storm))
            message = storm_message(self.config, members[0].environment if members else "", members, now)
        else:
            inc = await self.incidents.get(str(d.incident))
            ts = inc.message_ts
            message = (reply_message(self.config, inc, d.payload["event"]) if d.op == "reply"
                       else incident_message(self.config, inc, now))  # fmt: skip
        if d.op == "pointer":
            if ts is None:
                raise NotYet("the message is not posted yet")
            return self._post(d, channel, pointer_message(self.config, inc))
        if d.op == "post":
            return self._post(d, channel, message)
        if ts is None:
            raise NotYet("the message is not posted yet")
        if d.op == "update":
            return {"method": "chat.update", "args": self._args(channel, message, ts=ts)}
        if storm:
            message = reply_message(self.config, members[0], d.payload["event"])
        return self._post(d, channel, message, thread_ts=ts)

    async def _storm(self, storm_id: str) -> tuple[list[Incident], str | None]:
        def go(db: Db) -> str | None:
            row = db.conn.execute("SELECT message_ts FROM storms WHERE id = ?", (storm_id,)).fetchone()
            return str(row[0]) if row and row[0] else None

        ts = await self.engine.db.call(go)
        members = [i for i in await self.incidents.all() if i.storm_id == storm_id]
        return members, ts

    async def _email_body(self, d: Delivery) -> dict[str, Any]:
        email = self.config.alerting.email if self.config.alerting else None
        if email is None:
            raise DeliveryError("alerting.email is not configured", permanent=True, code="not_configured")
        since, until = float(d.payload["since"]), float(d.payload["until"])
        everything = await self.incidents.all()
        subject, text = digest_email(self.config, str(d.payload["date"]), everything, since, until)
        return {"to": list(email.to), "subject": self.redactor.text(subject), "text": self.redactor.text(text)}

    async def _diagnose(self, d: Delivery) -> dict[str, Any]:
        inc = await self.incidents.get(str(d.incident))
        if inc.message_ts is None or inc.channel is None:
            raise NotYet("the alert's message is not posted yet")
        words = [w for w in str(d.payload.get("symptoms") or inc.summary).split() if not w.startswith("-")][:30]
        request = Request(actor=SCHEDULER_ACTOR, door="scheduler", request_id=new_request_id(),
                          words=["troubleshoot", *(words or [inc.what]), "--env", inc.environment])  # fmt: skip
        reply = await self.run_request(request)
        message = render_message(reply)
        slack = self.notifiers.get("slack")
        if slack is None:
            return {"skipped": "no slack notifier"}
        body = self._post(d, inc.channel, message, thread_ts=inc.message_ts)
        return await slack.send(Outgoing(delivery_id=d.delivery_id, body=body))
