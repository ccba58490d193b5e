"""The back process of ``opsbot serve``: procedures, clicks' decisions, the scheduler, upkeep and alerts.

The front process (``bot.doors.serve``) receives Slack's requests, verifies them, parses and
authorizes a slash command and acknowledges it. What runs after the acknowledgement is handed to
this child process (``python -m bot.doors.back``), which also runs what opsbot does by itself (the
scheduler, upkeep, the alert outbox worker and its diagnoses: ``bot.doors.background``), so that their
CPU (HTTP checks, rendering, redaction, JSON, audit writes) never holds the interpreter lock the
front's loop needs to answer Slack, and the kernel schedules the back below the front (``nice``
+``NICE``). Jobs made while the front is answering Slack wait until it has answered nothing for
``QUIET_SECONDS`` (at most ``HOLD_SECONDS``: ``Hold``), so that a burst of commands is acknowledged
before the back starts on them. The back is a whole opsbot without a listener: the same settings,
config and database (every process shares the database: dedupe, approvals, claims, the outbox's
leases and the audit chain are rows, not memory).

The two talk in JSON lines. Front to back, on the back's stdin: jobs (``{"op": "command" | "click" |
"alert_click", ...}``, as ``SlackDoor`` makes them) and ``{"op": "drain", "timeout": s}``. Back to
front, on its stdout: ``{"op": "ready"}`` once, metrics (``{"op": "metric", ...}``, added to the
front's ``/metrics``), what Slack's Web API did (``{"op": "slack", ...}``, for the front's ``/health``),
``{"op": "done"}`` per job, ``{"op": "drained", "cut": n}`` last. The back dies with the front
(``PR_SET_PDEATHSIG``). When the back exits on its own, the front takes its work over (``Back.on_exit``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import itertools
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from bot.config.settings import Settings
from bot.core.app import App
from bot.core.metrics import Metrics
from bot.core.tasks import TaskSet
from bot.doors.background import Background, freeze_startup_objects
from bot.slack.door import SlackDoor
from bot.slack.liveness import SlackLiveness

log = logging.getLogger("opsbot.serve")
#: how much lower the back's CPU priority is than the front's
NICE = 5
#: how long ``serve`` waits for the back to be ready before it runs everything itself
READY_SECONDS = 60.0
#: how long past the drain's own bound the front waits for the back to exit before killing it
EXIT_GRACE = 20.0
#: after a signal of its own, how long the back waits for the front's drain (which follows the held jobs)
FRONT_GRACE = 5.0
#: jobs made while the front answers Slack go to the back once it has answered nothing for this long...
QUIET_SECONDS = 0.01
#: ...or at the latest this long after the first of them
HOLD_SECONDS = 0.5
_PR_SET_PDEATHSIG = 1


def _line(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


# ---------------------------------------------------------------------- the front's side


class Timer(Protocol):
    """What ``loop.call_later`` returns, as far as ``Hold`` uses it."""

    def cancel(self) -> None: ...


#: ``loop.call_later``, or a test's stand-in
Later = Callable[[float, Callable[[], None]], Timer]


class Hold:
    """Jobs for the back wait while the front is answering Slack, so that the back's CPU does not slow the answers.

    ``answering()`` is around each request the front answers. A job line ``put`` meanwhile is held, and
    all held lines are written, in order, once the front has answered nothing for ``quiet`` seconds, or
    ``at_most`` seconds after the first of them, whichever comes first: a lone command's job waits
    ``quiet``, a burst's jobs at most ``at_most`` (on two cores, 200 procedures starting among 200
    acknowledgements nearly doubled their tail). A job put while nothing is answered is written at once.
    """

    def __init__(self, write: Callable[[bytes], None], *, quiet: float = QUIET_SECONDS,
                 at_most: float = HOLD_SECONDS, call_later: Later | None = None) -> None:  # fmt: skip
        self._write = write
        self.quiet = quiet
        self.at_most = at_most
        self._call_later = call_later or (lambda delay, then: asyncio.get_running_loop().call_later(delay, then))
        #: requests being answered now
        self.answering_now = 0
        self._held: list[bytes] = []
        self._at_latest: Timer | None = None
        self._after_quiet: Timer | None = None

    @property
    def held(self) -> int:
        """Job lines waiting."""
        return len(self._held)

    def put(self, line: bytes) -> bool:
        """Write ``line`` now, or hold it while the front answers (True: held)."""
        if not self.answering_now and not self._held:
            self._write(line)
            return False
        self._held.append(line)
        if self._at_latest is None:
            self._at_latest = self._call_later(self.at_most, self.release)
        if not self.answering_now and self._after_quiet is None:
            self._after_quiet = self._call_later(self.quiet, self.release)
        return True

    @contextlib.contextmanager
    def answering(self) -> Iterator[None]:
        """Around the answer to one request from Slack."""
        self.answering_now += 1
        if self._after_quiet is not None:
            self._after_quiet.cancel()
            self._after_quiet = None
        try:
            yield
        finally:
            self.answering_now -= 1
            if not self.answering_now and self._held and self._after_quiet is None:
                self._after_quiet = self._call_later(self.quiet, self.release)

    def release(self) -> None:
        """Write every held line now (as the timers do; and before the back is told to drain)."""
        self._cancel()
        if self._held:
            lines, self._held = b"".join(self._held), []
            self._write(lines)

    def drop(self) -> None:
        """Forget the held lines (the back is gone: its unfinished jobs, these among them, are run elsewhere)."""
        self._cancel()
        self._held.clear()

    def _cancel(self) -> None:
        for timer in (self._at_latest, self._after_quiet):
            if timer is not None:
                timer.cancel()
        self._at_latest = self._after_quiet = None


class Back:
    """The front's handle on the back process."""

    #: how the back process is started (a test starts a stand-in that speaks the same lines)
    argv: tuple[str, ...] = (sys.executable, "-m", "bot.doors.back")

    def __init__(self, settings: Settings, metrics: Metrics, liveness: SlackLiveness | None = None,
                 on_exit: Callable[[list[dict[str, Any]]], None] | None = None) -> None:  # fmt: skip
        self.settings = settings
        self.metrics = metrics
        self.liveness = liveness
        #: called once, with the jobs it had not finished, when the back exits while the front still serves:
        #: the front then runs the back's work itself (a job the back had begun is known by its delivery key)
        self.on_exit = on_exit
        self.cut = 0
        #: jobs handed over and not finished yet, by number
        self._pending: dict[int, dict[str, Any]] = {}
        self._numbers = itertools.count(1)
        self._closing = False
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        #: job lines wait here while the front answers Slack (``answering``)
        self.hold = Hold(self._send)

    async def start(self, timeout: float = READY_SECONDS) -> bool:
        """Start the back process and wait until it is ready (it runs the scheduler and alerts from then on).

        False when it could not start or did not say it was ready within ``timeout`` s (then it is
        stopped, and the front runs everything itself).
        """
        env = dict(os.environ, OPSBOT_CONFIG=self.settings.opsbot_config, OPSBOT_DB=self.settings.opsbot_db,
                   OPSBOT_FRONT_PID=str(os.getpid()))  # fmt: skip
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env
            )
        except OSError as exc:
            log.error("could not start the back process (%s); everything runs in this process", exc)
            self._closing = True
            return False
        self._reader = asyncio.create_task(self._read(self._proc), name="back-reader")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._ready.wait()), timeout)
        if self._ready.is_set() and self._proc.returncode is None:
            log.info("the back process (pid %d) runs procedures, clicks, schedules and alerts", self._proc.pid)
            return True
        log.error("the back process did not start (see above); everything runs in this process")
        self._closing = True
        if self._proc.returncode is None:
            self._proc.kill()
        await self._reader
        return False

    @property
    def pid(self) -> int | None:
        """The back process's pid, once started."""
        return self._proc.pid if self._proc is not None else None

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
        self._pending[number] = job
        if self.hold.put(_line({**job, "id": number})):
            self.metrics.inc("opsbot_back_held_jobs_total")
        return True

    def answering(self) -> contextlib.AbstractContextManager[None]:
        """Around each request the front answers: jobs made meanwhile wait for the answers (``Hold``)."""
        return self.hold.answering()

    def _send(self, lines: bytes) -> None:
        if self._proc is not None and self._proc.stdin is not None and not self._proc.stdin.is_closing():
            self._proc.stdin.write(lines)

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            try:
                self._take(json.loads(line))
            except (ValueError, KeyError, TypeError):
                log.error("the back process sent a line that is not a message; ignored")
        code = await proc.wait()
        if self._closing:
            return
        self._closing = True
        self.hold.drop()
        jobs = list(self._pending.values())
        self._pending.clear()
        log.error("the back process exited (code %s) with %d job(s) unfinished; this process takes over its work "
                  "(what it had begun is not run again)", code, len(jobs))  # fmt: skip
        if self.on_exit is not None and self._ready.is_set():  # (one that never got ready is start()'s to tell)
            self.on_exit(jobs)
        self._ready.set()  # nobody waits for a back that is gone

    def _take(self, message: dict[str, Any]) -> None:
        op = message["op"]
        if op == "metric":
            add = self.metrics.inc if message["how"] == "inc" else self.metrics.observe
            add(str(message["name"]), float(message["value"]), **{str(k): str(v) for k, v in message["labels"].items()})
        elif op == "slack":
            if self.liveness is not None:
                if message["ok"]:
                    self.liveness.api_ok()
                else:
                    self.liveness.api_failed(str(message["reason"]))
        elif op == "done":
            self._pending.pop(int(message["id"]), None)
        elif op == "ready":
            self._ready.set()
        elif op == "drained":
            self.cut = int(message["cut"])

    async def drain(self, timeout: float) -> int:
        """Stop handing jobs; the back finishes its running ones within ``timeout`` s and exits. How many it cut."""
        self._closing = True
        proc = self._proc
        if proc is None:
            return 0
        if proc.returncode is None and proc.stdin is not None and not proc.stdin.is_closing():
            self.hold.release()  # the jobs held for the answers go first: the back runs them before it drains
            proc.stdin.write(_line({"op": "drain", "timeout": timeout}))
            with contextlib.suppress(ConnectionError):
                await proc.stdin.drain()
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), timeout + EXIT_GRACE)
        except TimeoutError:
            log.error("the back process did not stop within %.0f s; killed", timeout + EXIT_GRACE)
            proc.kill()
            await proc.wait()
        if self._reader is not None:
            await self._reader
        if self._pending:  # (a cut job says it is done too: these never started)
            log.error("%d job(s) handed to the back process did not finish: it stopped before it read them, "
                      "or was killed", len(self._pending))  # fmt: skip
        return self.cut


# ---------------------------------------------------------------------- the back's side

Send = Callable[[dict[str, Any]], None]


class ForwardedMetrics(Metrics):
    """The back's metrics: what it counts is sent to the front, which serves ``/metrics``."""

    def __init__(self, send: Send) -> None:
        super().__init__()
        self._send = send

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        """Counted in the front."""
        self._send({"op": "metric", "how": "inc", "name": name, "value": amount, "labels": labels})

    def observe(self, name: str, value: float, **labels: str) -> None:
        """Observed in the front."""
        self._send({"op": "metric", "how": "observe", "name": name, "value": value, "labels": labels})


class ForwardedLiveness(SlackLiveness):
    """What the back's Web API calls and alert deliveries say about Slack, told to the front's ``/health``.

    A success is told when it follows a failure (or is the first), each failure every time.
    """

    def __init__(self, send: Send) -> None:
        super().__init__(socket_mode=False)
        self._send = send
        self._told_ok: bool | None = None

    def api_ok(self) -> None:
        """Told to the front unless the last thing told was a success."""
        super().api_ok()
        if self._told_ok is not True:
            self._told_ok = True
            self._send({"op": "slack", "ok": True})

    def api_failed(self, reason: str) -> None:
        """Told to the front."""
        super().api_failed(reason)
        self._told_ok = False
        self._send({"op": "slack", "ok": False, "reason": reason})


def _die_with_front() -> None:
    """Be killed when the front process dies, whatever kills it; exit at once if it is gone already."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the closed stdin still stops the back
        pass
    if str(os.getppid()) != os.environ.get("OPSBOT_FRONT_PID"):
        os._exit(0)


async def serve_back() -> int:
    """The back process: take jobs on stdin until told to drain (or the front is gone); returns the exit code."""
    from bot.core import logs

    out = os.fdopen(os.dup(1), "wb", buffering=0)  # the messages' pipe; anything printed goes to stderr
    os.dup2(2, 1)

    def send(message: dict[str, Any]) -> None:
        out.write(_line(message))

    _die_with_front()
    with contextlib.suppress(OSError):
        os.nice(NICE)
    settings = Settings()
    app = App.build(settings)
    logs.setup(settings.log_level, app.redactor.text, tracebacks=True)
    tasks = TaskSet(worker_thread=False)
    door = SlackDoor(app, ForwardedMetrics(send), tasks)
    door.liveness = ForwardedLiveness(send)
    background = Background(app, tasks, door, door.liveness)
    stop = asyncio.Event()
    timeout = settings.opsbot_drain_seconds
    loop = asyncio.get_running_loop()
    signalled = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, signalled.set)

    async def on_signal() -> None:
        """A signal to the whole group (Ctrl-C, a service manager) reaches the front too, which hands
        over the jobs it holds and then says drain: take them first, for at most ``FRONT_GRACE`` s
        (a signal to this process alone has no front behind it)."""
        await signalled.wait()
        log.info("signalled: taking the front's last jobs until it says drain (at most %.0f s)", FRONT_GRACE)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), FRONT_GRACE)
        stop.set()

    async def job(number: int, message: dict[str, Any]) -> None:
        try:
            await door.run_job(message)
        finally:
            send({"op": "done", "id": number})

    async def read() -> None:
        nonlocal timeout
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            message = json.loads(line)
            if message["op"] == "drain":
                timeout = float(message["timeout"])
                break
            tasks.spawn(job(int(message["id"]), message), name=f"{message['op']}-{message['id']}")
        stop.set()  # told to drain, or the front closed the pipe

    reading = asyncio.create_task(read(), name="back-jobs")
    watching = asyncio.create_task(on_signal(), name="back-signals")
    freeze_startup_objects()
    send({"op": "ready"})
    await stop.wait()
    reading.cancel()
    watching.cancel()
    tasks.accepting = False
    await background.stop()
    cut = await tasks.drain(timeout, finalizer=door.close)
    send({"op": "drained", "cut": cut})
    await app.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(serve_back()))
