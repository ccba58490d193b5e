"""Restarts and readiness, shared by every runtime (the real ones and the fake).

What a waited-for container's state means (ready, not yet, failed), how it is described to a person,
the stop grace the engine is asked for, and the polling loop of ``Runtime.wait_running``. Pure
asyncio, no SDK: a runtime supplies how to look at a service and how to read a container's log tail,
so the fake and the real runtimes wait, fail and word their errors identically.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from adapters.errors import AdapterError, AdapterTimeout
from adapters.models import ContainerInfo

#: seconds between two looks while waiting
POLL = 0.25
#: at most this many log lines are quoted for a container that exited
TAIL_LINES = 20
#: a quoted log line or health check output is cut at this many characters
QUOTE = 300
#: seconds allowed for reading a failed container's log tail (best effort: the error is what matters)
TAIL_BUDGET = 5.0
#: states a container leaves only when someone starts it: waiting longer is pointless
FINAL = ("exited", "dead")
#: states whose exit code and log tail explain what happened
STOPPED = ("exited", "dead", "restarting")

Verdict = Literal["ready", "waiting", "failed"]
#: a short line about one container, awaited before it is restarted ("restarting shop-api-1 (1 of 2)")
Progress = Callable[[str], Awaitable[None]]


def grace_seconds(stop_timeout: float | None) -> int | None:
    """The stop grace to ask the engine for: it counts whole seconds, so a fraction is rounded up.

    ``0.5`` -> 1 (never less grace than asked), ``0`` -> 0 (SIGKILL right after SIGTERM), None -> None
    (the container's own StopTimeout, else the engine's 10 s).
    """
    if stop_timeout is None:
        return None
    if not isinstance(stop_timeout, int | float) or math.isnan(stop_timeout) or stop_timeout < 0:
        raise AdapterError(f"stop timeout must be a number of seconds >= 0, not {stop_timeout!r}")
    return math.ceil(stop_timeout)


def progress_line(name: str, index: int, total: int) -> str:
    """The progress line before restarting one container."""
    return f"restarting {name} ({index} of {total})"


@dataclass(frozen=True)
class Look:
    """One container as a wait saw it: its info and the outcome of its last health check, if any."""

    info: ContainerInfo
    #: the last health check, e.g. "exit 1: wget: can't connect to remote host"; None when none ran
    check: str | None = None


def verdict(look: Look, *, healthy: bool) -> Verdict:
    """Ready (running, and healthy when it has a check and ``healthy``), waiting, or failed.

    A container that exited or is dead has failed (nothing restarts it but a person); an unhealthy one
    has failed when health counts. ``starting`` (its check has not yet passed, or is in its start
    period), ``restarting`` (a restart policy brings it back), ``created`` and ``paused`` are waits.
    """
    info = look.info
    if info.state in FINAL:
        return "failed"
    if info.state != "running":
        return "waiting"
    if not healthy or info.health in (None, "healthy"):
        return "ready"
    return "failed" if info.health == "unhealthy" else "waiting"


def describe(look: Look) -> str:
    """One container's state in a few words, for an error message."""
    info = look.info
    if info.state in STOPPED:
        code = "unknown" if info.exit_code is None else str(info.exit_code)
        text = {
            "exited": f"{info.name} exited with code {code}",
            "dead": f"{info.name} is dead (exit code {code})",
        }.get(info.state, f"{info.name} is restarting (it exited with code {code})")
    else:
        text = f"{info.name} is {info.state}"
    if info.health is not None:
        text += f", health {info.health}"
        if look.check:
            text += f" (last check: {look.check})"
    return text


def check_text(exit_code: object, output: object) -> str:
    """A health check's outcome in a few words: ``exit 1: <last line of its output>``."""
    lines = [line.strip() for line in str(output or "").splitlines() if line.strip()]
    text = f"exit {exit_code}"
    return f"{text}: {lines[-1][:QUOTE]}" if lines else text


async def wait_running(
    look: Callable[[], Awaitable[list[Look]]],
    tail: Callable[[ContainerInfo], Awaitable[list[str]]],
    *,
    service: str,
    timeout: float,
    healthy: bool,
    where: str,
    poll: float = POLL,
) -> list[ContainerInfo]:
    """Look every ``poll`` seconds until each container is ready; the shared body of ``Runtime.wait_running``.

    ``look()`` returns the service's containers (raising ``NotFound`` when it has none); ``tail(info)``
    the last ``TAIL_LINES`` lines of a container's log. At least one look is made; the last one starts
    no later than ``timeout`` after the first, and each look is bounded by what is left of the timeout
    (at least ``poll``), so the whole wait ends within about ``timeout + poll`` seconds.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(timeout, 0.0)
    seen: list[Look] | None = None
    while True:
        try:
            seen = await asyncio.wait_for(look(), max(deadline - loop.time(), poll))
        except TimeoutError:
            if seen is None:
                raise AdapterTimeout(
                    f"{where} did not answer within {timeout:g}s (waiting for service {service!r})"
                ) from None
            break
        verdicts = [verdict(s, healthy=healthy) for s in seen]
        failed = [s for s, v in zip(seen, verdicts, strict=True) if v == "failed"]
        if failed:
            raise AdapterError(f"service {service!r} did not come up: {await _explain(failed, tail)}")
        if all(v == "ready" for v in verdicts) and not _too_young(seen):
            return [s.info for s in seen]
        left = deadline - loop.time()
        if left <= 0:
            break
        await asyncio.sleep(min(poll, left))
    waiting = [s for s in seen if verdict(s, healthy=healthy) != "ready"]
    raise AdapterTimeout(f"service {service!r} was not ready within {timeout:g}s: {await _explain(waiting, tail)}")


#: a container with no health check counts as up only once it has stayed running this long: one that
#: crashes right after it starts must not pass for a running service
MIN_UP = 0.5


def _too_young(looks: list[Look]) -> bool:
    """True while a container without a health check started less than ``MIN_UP`` seconds ago."""
    now = datetime.now(UTC)
    return any(
        s.info.health is None and s.info.started_at is not None and (now - s.info.started_at).total_seconds() < MIN_UP
        for s in looks
    )


async def _explain(looks: list[Look], tail: Callable[[ContainerInfo], Awaitable[list[str]]]) -> str:
    """Every container described; then the log tail of the first one that stopped."""
    text = "; ".join(describe(s) for s in looks)
    stopped = next((s.info for s in looks if s.info.state in STOPPED), None)
    if stopped is None:
        return text
    try:
        lines = await asyncio.wait_for(tail(stopped), TAIL_BUDGET)
    except (AdapterError, TimeoutError) as exc:
        return f"{text} (its log cannot be read: {str(exc) or 'timed out'})"
    lines = lines[-TAIL_LINES:]
    if not lines:
        return f"{text} (no log output)"
    quoted = "\n".join(f"  {line[:QUOTE]}" for line in lines)
    return f"{text}; the last {len(lines)} lines of its log:\n{quoted}"
