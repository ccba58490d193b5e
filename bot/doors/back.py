"""The back process of ``opsbot serve``: procedures, clicks' decisions and the scheduler, away from the acks.

The front process (``bot.doors.serve``) receives Slack's requests, verifies them, parses and
authorizes a slash command and acknowledges it. What runs after the acknowledgement is handed to
this child process (``python -m bot.doors.back``), so that the procedures' CPU (HTTP checks,
rendering, redaction, JSON, audit writes) never holds the interpreter lock the front's loop needs to
answer Slack, and the kernel schedules the back below the front (``nice`` +``NICE``). The back is
a whole opsbot without a listener: the same settings, config and database (every process shares
the database: dedupe, approvals, locks and the audit chain are rows, not memory).

The two talk in JSON lines. Front to back, on the back's stdin: jobs (``{"op": "command", ...}``,
``{"op": "click", ...}``, as ``SlackDoor`` makes them) and ``{"op": "drain", "timeout": s}``. Back to
front, on its stdout: metrics (``{"op": "metric", ...}``, added to the front's ``/metrics``),
``{"op": "done"}`` per job, ``{"op": "drained", "cut": n}`` last. The back dies with the front
(``PR_SET_PDEATHSIG``: a killed bot leaves nothing running; ``recover`` marks its runs interrupted).
Without a back (it could not start, or exited), procedures run on the front's worker thread as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import itertools
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from bot.config.settings import Settings
from bot.core.app import App
from bot.core.metrics import Metrics
from bot.core.tasks import TaskSet
from bot.doors.scheduler import Scheduler
from bot.doors.upkeep import Upkeep
from bot.slack.door import SlackDoor

log = logging.getLogger("opsbot.serve")
#: how much lower the back's CPU priority is than the front's
NICE = 5
#: how long ``serve`` waits for the back to be ready before it runs everything itself
READY_SECONDS = 60.0
_PR_SET_PDEATHSIG = 1


def start_scheduler(app: App, tasks: TaskSet, door: SlackDoor) -> asyncio.Task[None] | None:
    """The scheduler's tick loop, unless ``OPSBOT_SCHEDULER=off``; its runs go to ``tasks`` (drained)."""
    if not app.settings.opsbot_scheduler:
        log.info("scheduler off (OPSBOT_SCHEDULER): ops.yml's schedules are not run")
        return None
    scheduler = Scheduler(
        app.engine,
        alert=door.notify,
        spawn=lambda coro: tasks.spawn(coro, name="scheduled-run"),
        accepting=lambda: tasks.accepting,
    )
    # maintenance tasks inside their windows and security duty reminders (guide 7.3, 7.4)
    upkeep = Upkeep(app.engine, alert=door.notify, poster=door, spawn=lambda coro: tasks.spawn(coro, name="upkeep"),
                    accepting=lambda: tasks.accepting)  # fmt: skip

    async def both() -> None:
        await asyncio.gather(scheduler.run_forever(), upkeep.run_forever())

    return asyncio.create_task(both(), name="scheduler")


def freeze_startup_objects() -> None:
    """Leave what startup made (modules, config, clients: some 100,000 objects) out of every garbage collection.

    A full collection walks every object and stalls the loop for tens of milliseconds on a small
    machine; what a process builds at startup lives as long as the process, so it is frozen once
    (``gc.freeze``) and collections walk only what requests make.
    """
    gc.collect()
    gc.freeze()


# ---------------------------------------------------------------------- the front's side


class Back:
    """The front's handle on the back process."""

    def __init__(
        self, settings: Settings, metrics: Metrics, on_exit: Callable[[list[dict[str, Any]]], None] | None = None
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        #: called with the jobs it had not finished when the back exits on its own (the front then runs them,
        #: and what the back ran: a job the back had begun is known by its delivery key and not run twice)
        self.on_exit = on_exit
        self.cut = 0
        #: jobs handed over and not finished yet, by number
        self._pending: dict[int, dict[str, Any]] = {}
        self._numbers = itertools.count(1)
        self._closing = False
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self, timeout: float = READY_SECONDS) -> bool:
        """Start the back process and wait until it is ready (it runs the scheduler from then on).

        False when it could not start or did not say it was ready in ``timeout`` s (then it is stopped,
        and the front runs everything itself).
        """
        env = dict(os.environ, OPSBOT_CONFIG=self.settings.opsbot_config, OPSBOT_DB=self.settings.opsbot_db,
                   OPSBOT_FRONT_PID=str(os.getpid()))  # fmt: skip
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.doors.back", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            env=env,
        )  # fmt: skip
        self._reader = asyncio.create_task(self._read(self._proc), name="back-reader")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._ready.wait()), timeout)
        if self._ready.is_set() and self._proc.returncode is None:
            return True
        log.error("the back process did not start (see above); procedures run in this process")
        self._closing = True
        if self._proc.returncode is None:
            self._proc.kill()
        await self._reader
        return False

    @property
    def running(self) -> int:
        """Jobs handed over and not finished yet."""
        return len(self._pending)

    @property
    def alive(self) -> bool:
        """The back process runs and takes jobs."""
        return self._proc is not None and self._proc.returncode is None and not self._closing

    def offload(self, job: dict[str, Any]) -> bool:
        """Hand ``job`` to the back process; False when it cannot take it (stopping, gone)."""
        if not self.alive:
            return False
        assert self._proc is not None and self._proc.stdin is not None
        if self._proc.stdin.is_closing():
            return False
        number = next(self._numbers)
        self._proc.stdin.write(json.dumps({**job, "id": number}, separators=(",", ":")).encode() + b"\n")
        self._pending[number] = job
        return True

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            try:
                message = json.loads(line)
                op = message["op"]
                if op == "metric":
                    add = self.metrics.inc if message["how"] == "inc" else self.metrics.observe
                    add(message["name"], message["value"], **message["labels"])
                elif op == "ready":
                    self._ready.set()
                elif op == "done":
                    self._pending.pop(int(message["id"]), None)
                elif op == "drained":
                    self.cut = int(message["cut"])
            except (ValueError, KeyError, TypeError):
                log.error("the back process sent a line that is not a message; ignored")
        code = await proc.wait()
        if not self._closing:
            jobs = list(self._pending.values())
            self._pending.clear()
            log.error("the back process exited (code %s) with %d job(s) unfinished; they and all procedures from "
                      "now on run in this process", code, len(jobs))  # fmt: skip
            if self.on_exit is not None and self._ready.is_set():  # (one that never started is start()'s to tell)
                self.on_exit(jobs)
        self._ready.set()  # nobody waits for a back that is gone

    async def drain(self, timeout: float) -> int:
        """Stop handing jobs; the back finishes its running ones within ``timeout`` s and exits. How many it cut."""
        self._closing = True
        proc = self._proc
        if proc is None:
            return 0
        if proc.returncode is None and proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.write(json.dumps({"op": "drain", "timeout": timeout}).encode() + b"\n")
            with contextlib.suppress(ConnectionError):
                await proc.stdin.drain()
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), timeout + 20)
        except TimeoutError:
            log.error("the back process did not stop within %.0f s; killed", timeout + 20)
            proc.kill()
            await proc.wait()
        if self._reader is not None:
            await self._reader
        return self.cut


# ---------------------------------------------------------------------- the back's side


class ForwardedMetrics(Metrics):
    """The back's metrics: what the door counts is sent to the front, which serves ``/metrics``."""

    def __init__(self, send: Any) -> None:
        super().__init__()
        self._send = send

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        """Counted in the front."""
        self._send({"op": "metric", "how": "inc", "name": name, "value": amount, "labels": labels})

    def observe(self, name: str, value: float, **labels: str) -> None:
        """Observed in the front."""
        self._send({"op": "metric", "how": "observe", "name": name, "value": value, "labels": labels})


def _die_with_front() -> None:
    """Be killed when the front process dies, whatever kills it; exit at once if it is gone already."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the closed stdin still stops the back
        pass
    if str(os.getppid()) != os.environ.get("OPSBOT_FRONT_PID"):
        os._exit(0)


async def _serve_back() -> int:
    from bot.core import logs

    out = os.fdopen(os.dup(1), "wb", buffering=0)  # the messages' pipe; anything printed goes to stderr
    os.dup2(2, 1)

    def send(message: dict[str, Any]) -> None:
        out.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    _die_with_front()
    with contextlib.suppress(OSError):
        os.nice(NICE)
    settings = Settings()
    app = App.build(settings)
    logs.setup(settings.log_level, app.redactor.text, tracebacks=True)
    tasks = TaskSet(worker_thread=False)
    door = SlackDoor(app, ForwardedMetrics(send), tasks)
    scheduler = start_scheduler(app, tasks, door)
    stop = asyncio.Event()
    timeout = settings.opsbot_drain_seconds
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # a signal to the whole group: the front drains us as well
        loop.add_signal_handler(sig, stop.set)

    async def job(number: int, coro: Any) -> None:
        try:
            await coro
        finally:
            send({"op": "done", "id": number})

    async def read() -> None:
        nonlocal timeout
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            message = json.loads(line)
            if message["op"] == "command":
                tasks.spawn(job(message["id"], door.run_command(message)), name=f"ops-{message['request_id']}")
            elif message["op"] == "click":
                tasks.spawn(job(message["id"], door.run_click(message)), name=f"click-{message['approval_id']}")
            elif message["op"] == "drain":
                timeout = float(message["timeout"])
                break
        stop.set()  # drained, or the front closed the pipe

    reading = asyncio.create_task(read(), name="back-jobs")
    freeze_startup_objects()
    send({"op": "ready"})
    await stop.wait()
    reading.cancel()
    tasks.accepting = False
    if scheduler is not None:
        scheduler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await scheduler
    cut = await tasks.drain(timeout, finalizer=door.close)
    send({"op": "drained", "cut": cut})
    await app.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(_serve_back()))
