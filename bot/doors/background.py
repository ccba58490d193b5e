"""What ``opsbot serve`` runs by itself, besides requests: the scheduler, upkeep and the alert outbox worker.

They run in the back process (``bot.doors.back``), away from the loop that acknowledges Slack, or in
the front when there is no back (it could not start, it exited, ``--demo``). ``Background.start``
starts them on the calling loop; ``stop`` stops them (no new runs, no new deliveries; the runs already
spawned are drained with the procedures, by the caller's ``TaskSet``).
"""

from __future__ import annotations

import asyncio
import gc
import logging

from bot.core.app import App
from bot.core.request import Reply, Request
from bot.core.schedule_state import Claim
from bot.core.tasks import TaskSet, stop_task
from bot.doors.alerts import AlertWorker
from bot.doors.notifiers import build_notifiers
from bot.doors.scheduler import Scheduler, process_owner
from bot.doors.upkeep import Upkeep
from bot.slack.door import SlackDoor
from bot.slack.liveness import SlackLiveness

log = logging.getLogger("opsbot.serve")


def start_alerts(app: App, tasks: TaskSet) -> tuple[AlertWorker, asyncio.Task[None]]:
    """The outbox worker of alerts on this loop; diagnoses run with the procedures (``tasks``, drained)."""

    async def with_procedures(request: Request) -> Reply:
        reply: Reply = await asyncio.wrap_future(tasks.spawn(app.engine.handle(request), name="alert-diagnosis"))
        return reply

    worker = AlertWorker(app.engine, build_notifiers(app), owner=process_owner(), run_request=with_procedures)
    app.engine.alert_changed = worker.wake
    return worker, asyncio.create_task(worker.run_forever(), name="alert-outbox")


def start_scheduler(app: App, tasks: TaskSet, worker: AlertWorker, door: SlackDoor) -> asyncio.Task[None] | None:
    """The scheduler's tick loop, unless ``OPSBOT_SCHEDULER=off``; its runs go to ``tasks`` (drained)."""
    if not app.settings.opsbot_scheduler:
        log.info("scheduler off (OPSBOT_SCHEDULER): ops.yml's schedules are not run")
        return None

    async def feed(claim: Claim, reply: Reply) -> None:
        await worker.alerting.observe_run(claim.task, claim.environment, reply, claim.request_id)

    scheduler = Scheduler(
        app.engine,
        feed=feed,
        spawn=lambda coro: tasks.spawn(coro, name="scheduled-run"),
        accepting=lambda: tasks.accepting,
    )
    # maintenance tasks inside their windows and security duty reminders (guide 7.3, 7.4)
    upkeep = Upkeep(app.engine, alert=door.notify, poster=door, spawn=lambda coro: tasks.spawn(coro, name="upkeep"),
                    accepting=lambda: tasks.accepting)  # fmt: skip

    async def both() -> None:
        await asyncio.gather(scheduler.run_forever(), upkeep.run_forever())

    return asyncio.create_task(both(), name="scheduler")


class Background:
    """The alert outbox worker, the scheduler and upkeep of one process, started together, stopped together."""

    def __init__(self, app: App, tasks: TaskSet, door: SlackDoor, liveness: SlackLiveness | None) -> None:
        self.alerts, self._outbox = start_alerts(app, tasks)
        self.alerts.liveness = liveness
        self._scheduler = start_scheduler(app, tasks, self.alerts, door)

    async def stop(self) -> None:
        """No new scheduled runs (the running ones are drained with the procedures), no new deliveries."""
        if self._scheduler is not None:
            await stop_task(self._scheduler, "the scheduler")
        await stop_task(self._outbox, "the alert outbox worker")
        await self.alerts.close()


def freeze_startup_objects() -> None:
    """Leave what startup made (modules, config, clients: some 100,000 objects) out of every garbage collection.

    A full collection walks every object and stalls the loop for tens of milliseconds on a small
    machine; what a process builds at startup lives as long as the process, so it is frozen once
    (``gc.freeze``) and collections walk only what requests make.
    """
    gc.collect()
    gc.freeze()
