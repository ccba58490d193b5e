"""CPU and memory of many containers at once: two samples of each, cpu% from their difference.

Each running container is sampled twice, ``GAP`` seconds apart, every container at once. cpu% is
the CPU time the container used between its two samples divided by the time between them: 100% is
one CPU busy, as ``docker stats`` counts. Memory is the second sample's, by the docker CLI's formula
(usage less the inactive page cache, against the limit, at most the machine's memory).

Where the samples come from: the container's cgroup files when opsbot runs on the engine's host and
can prove the cgroup is the container's (``adapters.docker.cgroups``; no engine call, a read takes
microseconds); otherwise the engine's ``stats?one-shot=true`` (API 1.41, concurrently, bounded by the
runtime's worker pool; their ``read`` stamps time them, docker's ``system_cpu_usage`` formula when a
stamp is missing). The engine's plain ``stats?stream=false`` is not used: it answers only after its
collector sampled the container twice, 1 to 2 s, one request per container.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from adapters.docker.cgroups import Reading
from adapters.docker.io import memory_usage, parse_time

#: seconds between a container's two samples (at least): a cpu% over half a second
GAP = 0.5


class Usage(NamedTuple):
    """One container's figures."""

    cpu_percent: float | None
    memory_percent: float | None
    memory_bytes: int | None


def cpu_between(first: dict[str, Any], second: dict[str, Any]) -> float | None:
    """CPU use between two samples of one container (100% = one CPU busy); None when they cannot tell."""
    try:
        used = float(second["cpu_stats"]["cpu_usage"]["total_usage"] - first["cpu_stats"]["cpu_usage"]["total_usage"])
    except (KeyError, TypeError):
        return None
    if used < 0:  # the container restarted in between: its counter began again
        return None
    start, end = parse_time(first.get("read")), parse_time(second.get("read"))
    if start is not None and end is not None and end > start:
        return round(used / ((end - start).total_seconds() * 1e9) * 100.0, 2)
    try:  # docker's own formula, over the host's cpu time
        system = float(second["cpu_stats"]["system_cpu_usage"] - first["cpu_stats"]["system_cpu_usage"])
        cpus = int(second["cpu_stats"].get("online_cpus") or 1)
    except (KeyError, TypeError):
        return None
    return round(used / system * cpus * 100.0, 2) if system > 0 else None


def usage(first: dict[str, Any] | None, second: dict[str, Any] | None) -> Usage | None:
    """The figures of one container from its two samples (either may be missing: it stopped meanwhile)."""
    if second is None:
        return None
    percent, used = memory_usage(second)
    return Usage(cpu_between(first, second) if first is not None else None, percent, used)


def between(first: Reading, second: Reading | None) -> Usage | None:
    """The figures of one container from two reads of its cgroup (None: it stopped meanwhile)."""
    if second is None or second.at <= first.at or second.cpu_ns < first.cpu_ns:
        return None
    cpu = round((second.cpu_ns - first.cpu_ns) / ((second.at - first.at) * 1e9) * 100.0, 2)
    percent = round(second.memory_used / second.memory_limit * 100.0, 2) if second.memory_limit else None
    return Usage(cpu, percent, second.memory_used)
