"""A container's CPU time and memory from its cgroup files, when opsbot runs on the engine's own host.

These are the counters the engine itself reports (through containerd), read straight from the
kernel: a read takes microseconds, where the engine answers a stats request at the next tick of its
1 s collector (dockerd 20.10). They are used only when they are provably the container's: the
process the engine names as the container's (``State.Pid``) is visible here, and its cgroup path
carries the container's id (``/docker/<id>``, ``docker-<id>.scope``). Anything else (opsbot in a
container of its own, another PID namespace, a remote engine) is None, and the engine is asked.

cgroup v2 (``cpu.stat`` usage_usec, ``memory.current``, ``memory.stat`` inactive_file, ``memory.max``)
and v1 (``cpuacct.usage``, ``memory.usage_in_bytes``, ``memory.stat`` total_inactive_file,
``memory.limit_in_bytes``); mount points from ``/proc/self/mountinfo``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

#: a cgroup limit at or above the machine's memory counts as the machine's memory (as the engine reports it)
_UNLIMITED = "max"


@dataclass(frozen=True)
class Cgroup:
    """Where one container's counters are."""

    version: int
    cpu: Path  # v2: the cgroup's directory; v1: the cpuacct directory
    memory: Path


@dataclass(frozen=True)
class Reading:
    """One read of a container's counters."""

    at: float  # time.monotonic() of the read
    cpu_ns: int
    memory_used: int  # usage less the inactive page cache (the docker CLI's formula)
    memory_limit: int


class Cgroups:
    """The cgroup file systems of this host as this process sees them (``root``: ``/`` but in tests)."""

    def __init__(self, root: Path = Path("/")) -> None:
        self.root = root
        self.v2: tuple[Path, str] | None = None  # (mount point, root of the mount in the hierarchy)
        self.v1: dict[str, tuple[Path, str]] = {}  # controller -> (mount point, root)
        try:
            lines = (root / "proc/self/mountinfo").read_text().splitlines()
        except OSError:
            lines = []
        for line in lines:
            left, _, right = line.partition(" - ")
            fields, kinds = left.split(), right.split()
            if len(fields) < 5 or len(kinds) < 3:
                continue
            mount, mount_root = root / fields[4].lstrip("/"), fields[3]
            if kinds[0] == "cgroup2":
                self.v2 = (mount, mount_root)
            elif kinds[0] == "cgroup":
                for option in kinds[2].split(","):
                    if option in ("cpuacct", "memory"):
                        self.v1[option] = (mount, mount_root)
        try:
            meminfo = (root / "proc/meminfo").read_text().split()
            self.machine_memory = int(meminfo[meminfo.index("MemTotal:") + 1]) * 1024
        except (OSError, ValueError, IndexError):
            self.machine_memory = 0

    def locate(self, pid: int, container_id: str) -> Cgroup | None:
        """The cgroup of the container whose first process is ``pid``, if that is provably the container's."""
        if pid <= 0 or len(container_id) < 12:
            return None
        try:
            lines = (self.root / f"proc/{pid}/cgroup").read_text().splitlines()
        except OSError:
            return None
        paths: dict[str, str] = {}
        for line in lines:
            _, controllers, path = [*line.split(":", 2), "", ""][:3]
            for controller in controllers.split(",") if controllers else [""]:
                paths[controller] = path
        found: Cgroup | None = None
        if "cpuacct" in paths and "memory" in paths and "cpuacct" in self.v1 and "memory" in self.v1:
            cpu, memory = self._dir(self.v1["cpuacct"], paths["cpuacct"]), self._dir(self.v1["memory"], paths["memory"])
            if cpu and memory and container_id in paths["cpuacct"] and container_id in paths["memory"]:
                found = Cgroup(1, cpu, memory)
        elif "" in paths and self.v2 is not None and container_id in paths[""]:
            where = self._dir(self.v2, paths[""])
            found = Cgroup(2, where, where) if where else None
        if found is None or not (found.cpu / ("cpu.stat" if found.version == 2 else "cpuacct.usage")).exists():
            return None
        return found

    @staticmethod
    def _dir(mount: tuple[Path, str], path: str) -> Path | None:
        point, mount_root = mount
        if mount_root != "/" and not path.startswith(mount_root):
            return None
        relative = path[len(mount_root) :] if mount_root != "/" else path
        return point / relative.lstrip("/")

    def read(self, cgroup: Cgroup) -> Reading | None:
        """The counters now; None when they cannot be read (the container stopped meanwhile)."""
        try:
            at = time.monotonic()
            if cgroup.version == 2:
                cpu_ns = _field(cgroup.cpu / "cpu.stat", "usage_usec") * 1000
                usage = int((cgroup.memory / "memory.current").read_text())
                inactive = _field(cgroup.memory / "memory.stat", "inactive_file")
                limit_text = (cgroup.memory / "memory.max").read_text().strip()
            else:
                cpu_ns = int((cgroup.cpu / "cpuacct.usage").read_text())
                usage = int((cgroup.memory / "memory.usage_in_bytes").read_text())
                inactive = _field(cgroup.memory / "memory.stat", "total_inactive_file")
                limit_text = (cgroup.memory / "memory.limit_in_bytes").read_text().strip()
        except (OSError, ValueError):
            return None
        limit = self.machine_memory if limit_text == _UNLIMITED else int(limit_text)
        if self.machine_memory:
            limit = min(limit, self.machine_memory)
        return Reading(at, cpu_ns, usage - inactive if inactive < usage else usage, limit)


def _field(path: Path, name: str) -> int:
    for line in path.read_text().splitlines():
        key, _, value = line.partition(" ")
        if key == name:
            return int(value)
    raise ValueError(f"no {name} in {path}")
