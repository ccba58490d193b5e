"""``opsbot serve`` in Slack mode: Socket Mode or HTTP, plus the health and metrics routes.

SIGTERM (or SIGINT) drains: new requests are refused (503 on HTTP, the socket is closed), running
procedures get up to ``OPSBOT_DRAIN_SECONDS`` to finish, then the process exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

from adapters.errors import ConfigError
from bot.core.app import App
from bot.core.metrics import Metrics
from bot.core.tasks import TaskSet
from bot.doors.back import Back, freeze_startup_objects, start_scheduler
from bot.slack.door import SlackDoor
from bot.slack.server import Server
from bot.slack.socket import connect_socket_mode

log = logging.getLogger("opsbot.serve")


def make_metrics(tasks: TaskSet) -> Metrics:
    """The process's metrics (declared in ``bot.core.metrics``), with their live gauges."""
    metrics = Metrics()
    metrics.gauge("opsbot_running_procedures", lambda: float(len(tasks)))
    metrics.set("opsbot_pending_approvals", 0)
    metrics.inc("opsbot_requests_total", 0, command="help", outcome="ok")
    return metrics


async def serve_slack(app: App) -> int:
    """Run until SIGTERM/SIGINT; returns the exit code."""
    settings = app.settings
    if not settings.slack_bot_token:
        raise ConfigError("SLACK_BOT_TOKEN is not set: Slack mode needs the bot token (xoxb-...)")
    tasks = TaskSet()
    metrics = make_metrics(tasks)
    door = SlackDoor(app, metrics, tasks)
    scheduler: asyncio.Task[None] | None = None

    def run_here(jobs: list[dict[str, Any]]) -> None:  # the back process is gone: its work comes back here
        nonlocal scheduler
        if not tasks.accepting:
            return
        if scheduler is None:
            scheduler = start_scheduler(app, tasks, door)
        for job in jobs:
            tasks.spawn(door.run_command(job) if job["op"] == "command" else door.run_click(job), name="taken-back")

    back = Back(settings, metrics, on_exit=run_here)
    metrics.gauge("opsbot_running_procedures", lambda: float(len(tasks) + back.running))
    try:  # ready before the port answers: /health means procedures and schedules run too
        started = await back.start()
    except OSError as exc:
        log.error("could not start the back process (%s); procedures run in this process", exc)
        started = False
    if started:
        door.offload = back.offload
    else:
        run_here([])
    socket_mode = bool(settings.slack_app_token)
    server = Server(app, metrics, tasks, door if not socket_mode else None)
    await server.start(settings.opsbot_host, settings.port)
    handler = None
    if settings.slack_app_token:
        handler = await connect_socket_mode(door, settings.slack_app_token)
        log.info("connected to Slack in Socket Mode; health and metrics on port %d", settings.port)
    else:
        log.info("serving Slack over HTTP on %s:%d (POST /slack/events)", settings.opsbot_host, settings.port)
    await door.recover()
    sweeper = asyncio.create_task(door.sweep_forever(), name="approval-sweeper")
    freeze_startup_objects()
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
        # the back finishes its procedures while this process finishes its own (if the back was ever gone)
        drained = asyncio.ensure_future(back.drain(settings.opsbot_drain_seconds))

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
