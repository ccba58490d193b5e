"""Reading a container's counters from its cgroup: v1 and v2 layouts, and only when provably its own."""

from __future__ import annotations

from pathlib import Path

from adapters.docker.cgroups import Cgroups, Reading
from adapters.docker.stats import between

CID = "4a169a" + "0" * 58
MEMINFO = "MemTotal:       1000 kB\nMemFree:         500 kB\n"


def write(root: Path, path: str, text: str) -> None:
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_text(text)


def v2_host(root: Path, *, cgroup: str = f"/system.slice/docker-{CID}.scope", limit: str = "max") -> Cgroups:
    write(root, "proc/self/mountinfo", "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n")
    write(root, "proc/meminfo", MEMINFO)
    write(root, "proc/4242/cgroup", f"0::{cgroup}\n")
    where = f"sys/fs/cgroup/system.slice/docker-{CID}.scope"
    write(root, f"{where}/cpu.stat", "usage_usec 2500000\nuser_usec 2000000\n")
    write(root, f"{where}/memory.current", "300000\n")
    write(root, f"{where}/memory.stat", "anon 200000\ninactive_file 100000\n")
    write(root, f"{where}/memory.max", f"{limit}\n")
    return Cgroups(root)


def test_v2_counters_of_the_containers_own_cgroup(tmp_path):
    groups = v2_host(tmp_path)
    found = groups.locate(4242, CID)
    assert found is not None and found.version == 2
    reading = groups.read(found)
    assert reading is not None and reading.cpu_ns == 2_500_000_000
    assert reading.memory_used == 200_000 and reading.memory_limit == 1000 * 1024  # unlimited: the machine's


def test_a_cgroup_that_does_not_name_the_container_is_not_used(tmp_path):
    groups = v2_host(tmp_path, cgroup="/user.slice/session-1.scope")  # another process with that pid
    write(tmp_path, "sys/fs/cgroup/user.slice/session-1.scope/cpu.stat", "usage_usec 99\n")  # counters of its own
    assert groups.locate(4242, CID) is None
    assert groups.locate(4243, CID) is None  # no such process here (another PID namespace)
    assert v2_host(tmp_path).locate(4242, "4a169a") is None  # an id too short to prove anything


def test_v1_counters_and_a_limit(tmp_path):
    write(tmp_path, "proc/self/mountinfo",
          "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"
          "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n")  # fmt: skip
    write(tmp_path, "proc/meminfo", MEMINFO)
    write(tmp_path, "proc/7/cgroup", f"4:memory:/docker/{CID}\n2:cpu,cpuacct:/docker/{CID}\n1:name=systemd:/\n")
    write(tmp_path, f"sys/fs/cgroup/cpu,cpuacct/docker/{CID}/cpuacct.usage", "123456789\n")
    write(tmp_path, f"sys/fs/cgroup/memory/docker/{CID}/memory.usage_in_bytes", "50000\n")
    write(tmp_path, f"sys/fs/cgroup/memory/docker/{CID}/memory.stat", "cache 9000\ntotal_inactive_file 10000\n")
    write(tmp_path, f"sys/fs/cgroup/memory/docker/{CID}/memory.limit_in_bytes", "409600\n")
    groups = Cgroups(tmp_path)
    found = groups.locate(7, CID)
    assert found is not None and found.version == 1
    reading = groups.read(found)
    assert reading is not None and (reading.cpu_ns, reading.memory_used, reading.memory_limit) == (123456789, 40000,
                                                                                                    409600)  # fmt: skip


def test_a_cgroup_namespace_mount_is_followed_from_its_root(tmp_path):
    # opsbot in a cgroup namespace: the mount's root is /docker, paths in /proc/<pid>/cgroup are whole
    write(tmp_path, "proc/self/mountinfo", "30 23 0:26 /docker /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n")
    write(tmp_path, "proc/meminfo", MEMINFO)
    write(tmp_path, "proc/9/cgroup", f"0::/docker/{CID}\n")
    write(tmp_path, f"sys/fs/cgroup/{CID}/cpu.stat", "usage_usec 1\n")
    found = Cgroups(tmp_path).locate(9, CID)
    assert found is not None and found.cpu == tmp_path / "sys/fs/cgroup" / CID


def test_figures_between_two_readings():
    first, second = Reading(10.0, 1_000_000_000, 100, 1000), Reading(10.5, 1_400_000_000, 250, 1000)
    assert between(first, second) == (80.0, 25.0, 250)  # 0.4 s of CPU in 0.5 s
    assert between(first, None) is None  # stopped meanwhile
    assert between(second, first) is None  # not later, or a counter that went back (restarted)
