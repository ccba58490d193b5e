"""``opsbot serve`` in Slack mode: Socket Mode or HTTP, plus the health and metrics routes.

SIGTERM (or SIGINT) drains: new requests are refused (503 on HTTP, the socket is closed), running
procedures get up to ``OPSBOT_DRAIN_SECONDS`` to finish, then the process exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys

from adapters.errors import ConfigError
from bot.core.app import App
from bot.core.metrics import Metrics
from bot.core.request import Reply, Request
from bot.core.schedule_state import Claim
from bot.core.tasks import TaskSet
from bot.doors.alerts import AlertWorker
from bot.doors.notifiers import build_notifiers
from bot.doors.scheduler import Scheduler, process_owner
from bot.doors.upkeep import Upkeep
from bot.slack.door import SlackDoor
from bot.slack.liveness import SlackLiveness
from bot.slack.server import Server
from bot.slack.socket import connect_socket_mode

log = logging.getLogger("opsbot.serve")
#: seconds a thread may hold the interpreter while another waits for it (Python's default: 0.005)
SWITCH_INTERVAL = 0.0005


def make_metrics(tasks: TaskSet) -> Metrics:
    """The process's metrics (declared in ``bot.core.metrics``), with their live gauges."""
    metrics = Metrics()
    metrics.gauge("opsbot_running_procedures", lambda: float(len(tasks)))
    metrics.set("opsbot_pending_approvals", 0)
    metrics.inc("opsbot_requests_total", 0, command="help", outcome="ok")
    return metrics


def start_alerts(app: App, tasks: TaskSet) -> tuple[AlertWorker, asyncio.Task[None]]:
    """The outbox worker of alerts on this loop; diagnoses run on the worker loop with the procedures."""

    async def on_worker_loop(request: Request) -> Reply:
        reply: Reply = await asyncio.wrap_future(tasks.spawn(app.engine.handle(request), name="alert-diagnosis"))
        return reply

    worker = AlertWorker(app.engine, build_notifiers(app), owner=process_owner(), run_request=on_worker_loop)
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


async def serve_slack(app: App) -> int:
    """Run until SIGTERM/SIGINT; returns the exit code."""
    settings = app.settings
    if not settings.slack_bot_token:
        raise ConfigError("SLACK_BOT_TOKEN is not set: Slack mode needs the bot token (xoxb-...)")
    # procedures run on the worker thread; the loop that acknowledges gets the interpreter back after at
    # most this long, not Python's 5 ms (bench/ack_latency.py: p99 343 -> 187 ms beside 200 procedures)
    sys.setswitchinterval(SWITCH_INTERVAL)
    tasks = TaskSet()
    metrics = make_metrics(tasks)
    door = SlackDoor(app, metrics, tasks)
    socket_mode = bool(settings.slack_app_token)
    server = Server(app, metrics, tasks, door if not socket_mode else None)
    liveness = SlackLiveness(socket_mode=socket_mode, silent_after=settings.opsbot_slack_silent_after,
                             unreachable_after=settings.opsbot_slack_unreachable_after)  # fmt: skip
    server.liveness = door.liveness = liveness
    metrics.gauge("opsbot_slack_seconds_since_last_event", liveness.seconds_since_last_event)
    metrics.gauge("opsbot_slack_reconnects", lambda: float(liveness.reconnects))
    await server.start(settings.opsbot_host, settings.port)
    handler = None
    if settings.slack_app_token:
        handler = await connect_socket_mode(door, settings.slack_app_token, liveness)
        log.info("connected to Slack in Socket Mode; health and metrics on port %d", settings.port)
    else:
        log.info("serving Slack over HTTP on %s:%d (POST /slack/events)", settings.opsbot_host, settings.port)
    await door.recover()
    sweeper = asyncio.create_task(door.sweep_forever(), name="approval-sweeper")
    alerts, outbox = start_alerts(app, tasks)
    alerts.liveness = liveness
    scheduler = start_scheduler(app, tasks, alerts, door)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("stopping: no new requests; draining %d running procedure(s)", len(tasks))
        tasks.accepting = False
        sweeper.cancel()
        if scheduler is not None:
            scheduler.cancel()  # no new runs; the running ones are drained with the other procedures
            with contextlib.suppress(asyncio.CancelledError):
                await scheduler
        if handler is not None:
            await handler.close()
        outbox.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await outbox
        await alerts.close()

        async def close_worker_side() -> None:
            # procedures ran on the worker loop: what they opened there is closed there
            await door.close()
            close = getattr(app.backends, "close", None)
            if close is not None:
                await close()

        cut = await tasks.drain(settings.opsbot_drain_seconds, finalizer=close_worker_side)
        await door.close()
        await server.stop()
        log.info("stopped%s", f"; {cut} procedure(s) were cut off" if cut else "")
    return 0
