"""``opsbot serve`` in Slack mode: Socket Mode or HTTP, plus the health and metrics routes.

This is the front process: it verifies, parses, authorizes and acknowledges; what runs after the
acknowledgement, and what opsbot does by itself (the scheduler, upkeep, the alert outbox), runs in
the back process it starts (``bot.doors.back``). Without a back (it could not start, it exited,
``--demo``'s in-process world) the front runs all of it on its worker loop, as one process.

SIGTERM (or SIGINT) drains both: new requests are refused (503 on HTTP, the socket is closed), running
procedures get up to ``OPSBOT_DRAIN_SECONDS`` to finish, then the processes exit.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Any

from adapters.errors import ConfigError
from bot.core.app import App
from bot.core.metrics import Metrics
from bot.core.outbox import Outbox
from bot.core.schedule_state import ScheduleState
from bot.core.tasks import TaskSet
from bot.doors.back import Back
from bot.doors.background import Background, freeze_startup_objects
from bot.doors.scheduler import owner_prefix
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


async def serve_slack(app: App, *, split: bool = True) -> int:
    """Run until SIGTERM/SIGINT; returns the exit code. ``split=False``: no back process (``--demo``)."""
    settings = app.settings
    if not settings.slack_bot_token:
        raise ConfigError("SLACK_BOT_TOKEN is not set: Slack mode needs the bot token (xoxb-...)")
    # what runs on the worker thread (without a back) gives the interpreter back to the loop that
    # acknowledges after at most this long, not Python's 5 ms
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
    background: Background | None = None
    stop = asyncio.Event()

    def run_here(jobs: list[dict[str, Any]]) -> None:
        """No back (any more): what it ran runs here (``take_over``)."""
        if not stop.is_set() and tasks.accepting:
            tasks.spawn_here(take_over(jobs), name="take-over")

    async def take_over(jobs: list[dict[str, Any]]) -> None:
        """Run the scheduler, upkeep and alerts here, and the back's unfinished jobs; nothing twice."""
        nonlocal background
        gone = back.pid if back is not None else None  # (it has exited, or never started)
        if gone is not None:
            # the back is gone for sure: what it held is released now, not when its leases run out (a run cut
            # off is not run again: the schedule's next run comes when due; an alert it was sending is retried)
            prefix = owner_prefix(gone)
            await ScheduleState(app.db, prefix).expire(prefix)
            await Outbox(app.db, prefix).expire(prefix)
            await door.recover()  # its running changes: interrupted (audited), on their messages too
        if stop.is_set() or not tasks.accepting:
            return
        if background is None:
            background = Background(app, tasks, door, liveness)
        for job in jobs:
            if job["op"] == "command" and not job.get("key"):  # no delivery key: it may have begun; not twice
                log.error("request %s was cut off with the back process; it is not run again", job["request_id"])
                continue
            tasks.spawn(door.run_job(job), name=f"taken-back-{job['op']}")

    await door.recover()
    back = Back(settings, metrics, liveness, on_exit=run_here) if split else None
    metrics.gauge("opsbot_running_procedures", lambda: float(len(tasks) + (back.running if back else 0)))
    # the back is ready before the port answers: /health says that procedures and schedules run too
    if back is not None and await back.start():
        door.offload = back.offload
        door.answering = back.answering
    else:
        run_here([])
    await server.start(settings.opsbot_host, settings.port)
    handler = None
    if settings.slack_app_token:
        handler = await connect_socket_mode(door, settings.slack_app_token, liveness)
        log.info("connected to Slack in Socket Mode; health and metrics on port %d", settings.port)
    else:
        log.info("serving Slack over HTTP on %s:%d (POST /slack/events)", settings.opsbot_host, settings.port)
    sweeper = asyncio.create_task(door.sweep_forever(), name="approval-sweeper")
    freeze_startup_objects()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("stopping: no new requests; draining %d running procedure(s)",
                 len(tasks) + (back.running if back else 0))  # fmt: skip
        tasks.accepting = False
        # the back finishes its procedures while this process finishes its own (if it ever ran any)
        drained = asyncio.ensure_future(back.drain(settings.opsbot_drain_seconds) if back else asyncio.sleep(0, 0))
        sweeper.cancel()
        if handler is not None:
            await handler.close()
        if background is not None:
            await background.stop()

        async def close_worker_side() -> None:
            # procedures ran on the worker loop: what they opened there is closed there
            await door.close()
            close = getattr(app.backends, "close", None)
            if close is not None:
                await close()

        cut = await tasks.drain(settings.opsbot_drain_seconds, finalizer=close_worker_side)
        cut += await drained
        await door.close()
        await server.stop()
        log.info("stopped%s", f"; {cut} procedure(s) were cut off" if cut else "")
    return 0
