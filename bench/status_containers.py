"""Benchmark: ``opsbot run --json status`` against ``docker stats --no-stream`` on 40 and 200 containers.

Starts the tests' private Docker engine (tests/helpers/docker_engine.py), runs 40 and then 200
Compose-labelled busybox containers (one project, ten services; one container in each ten burns a
little CPU), and times, alternating, in one run: ``docker stats --no-stream`` of exactly those
containers, and ``opsbot run --json status bench`` as a process (start-up, config, the engine, JSON).
Both reach the engine through a relay that counts the requests each makes, so what ``status`` costs
the engine is printed beside what the docker CLI asks of it.

Goals (issue 16): opsbot at most 0.6x the docker CLI's time for 40 containers; status of 200 at most
2x status of 40.

    python bench/status_containers.py [--counts 40,200] [--rounds 3]     (as root: it runs dockerd)
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers.docker_engine import _processes_under, build_image, run_service, start_engine  # noqa: E402

#: this checkout's opsbot (``python -m bot``)
OPSBOT = [sys.executable, "-m", "bot"]
SERVICES = 10
BUSY = "while :; do i=0; while [ $i -lt 300 ]; do i=$((i+1)); done; sleep 1; done"  # a few % of a CPU
REQUEST = re.compile(rb"(GET|POST|HEAD|PUT|DELETE) (/[^ ?]*)")


class CountingRelay:
    """A Unix socket in front of the engine that counts the HTTP requests going through it, by kind."""

    def __init__(self, target: str, path: str) -> None:
        self.target, self.path = target, path
        self.counts: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(path)
        self.server.listen(512)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.target)
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, count: bool) -> None:
        try:
            while data := src.recv(65536):
                if count:
                    for match in REQUEST.finditer(data):
                        with self.lock:
                            self.counts[kind(match.group(2).decode())] += 1
                dst.sendall(data)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def take(self) -> collections.Counter[str]:
        """The counts since the last take."""
        with self.lock:
            counts, self.counts = self.counts, collections.Counter()
        return counts


def kind(path: str) -> str:
    """``list``, ``inspect``, ``stats``, ... from a request path."""
    path = re.sub(r"^/v[0-9.]+", "", path)
    if path == "/containers/json":
        return "list"
    if match := re.fullmatch(r"/containers/[^/]+/(json|stats)", path):
        return "inspect" if match.group(1) == "json" else "stats"
    return path.strip("/").split("/")[0] or path


def start_containers(client, project: str, count: int, first: int = 0) -> list[str]:
    """``count`` more running containers of ``project`` (services s0..s9), numbered from ``first``; their names."""
    build_image(client, "bench/app", "1.0")

    def one(i: int) -> str:
        service, number = f"s{i % SERVICES}", i // SERVICES + 1
        command = ["sh", "-c", BUSY] if i % 10 == 0 else ["sleep", "100000"]
        return str(run_service(client, project, service, "bench/app:1.0", command, number=number).name)

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(first, first + count)))


def engine_cpu(engine) -> float:
    """CPU seconds used so far by the engine: dockerd, its containerd and shims (not the containers)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in [engine.process.pid, *_processes_under(engine.root)]:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def timed(argv: list[str], env: dict[str, str], engine) -> tuple[float, bytes, float, float]:
    """(wall seconds, stdout, CPU seconds of the client process, CPU seconds of the engine meanwhile)."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    before, cpu_engine = used.ru_utime + used.ru_stime, engine_cpu(engine)
    start = time.perf_counter()
    out = subprocess.run(argv, env=env, capture_output=True, check=True, timeout=300).stdout
    wall = time.perf_counter() - start
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, out, used.ru_utime + used.ru_stime - before, engine_cpu(engine) - cpu_engine


def fmt(counts: collections.Counter[str]) -> str:
    return ", ".join(f"{n} {k}" for k, n in counts.most_common()) + f" ({sum(counts.values())} requests)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="40,200")
    parser.add_argument("--rounds", type=int, default=3, help="each figure is the median of this many runs")
    opts = parser.parse_args()
    engine = start_engine()
    try:
        with tempfile.TemporaryDirectory(prefix="obstatus-") as tmp:
            relay = CountingRelay(engine.host.removeprefix("unix://"), f"{tmp}/relay.sock")
            env = {**os.environ, "DOCKER_HOST": f"unix://{relay.path}", "OPSBOT_CONFIG": f"{tmp}/ops.yml",
                   "OPSBOT_DB": f"{tmp}/o.db", "PYTHONPATH": str(ROOT), "LOG_LEVEL": "warning"}  # fmt: skip
            config = {"project": "bench", "environments": {"bench": {
                "runtime": {"kind": "compose", "project": "bench", "docker_host": f"unix://{relay.path}"},
                "services": {f"s{i}": {} for i in range(SERVICES)}}}}  # fmt: skip
            Path(f"{tmp}/ops.yml").write_text(yaml.safe_dump(config))
            medians: dict[int, tuple[float, float]] = {}
            names: list[str] = []
            for count in (int(c) for c in opts.counts.split(",")):
                names += start_containers(engine.client, "bench", count - len(names), len(names))
                time.sleep(2)  # every container has started
                ours, theirs, cpus = [], [], {"docker": [], "opsbot": []}
                for _ in range(opts.rounds):
                    seconds, out, client, server = timed(["docker", "stats", "--no-stream", *names], env, engine)
                    theirs.append(seconds)
                    cpus["docker"].append((client, server))
                    assert out.count(b"\n") == count + 1, out[:300]
                    docker_calls = relay.take()
                    seconds, out, client, server = timed([*OPSBOT, "run", "--json", "status", "bench"], env, engine)
                    ours.append(seconds)
                    cpus["opsbot"].append((client, server))
                    result = json.loads(out)
                    assert len(result["services"]) == count and not result["errors"], result["errors"]
                    assert all(s["cpu_percent"] is not None for s in result["services"])
                    opsbot_calls = relay.take()
                mine, docker = statistics.median(ours), statistics.median(theirs)
                medians[count] = (mine, docker)
                busiest = max(result["services"], key=lambda s: s["cpu_percent"])
                print(f"\n== {count} running containers (median of {opts.rounds}; load {os.getloadavg()[0]:.1f})")
                cpu = {
                    k: (statistics.median(c for c, _ in v), statistics.median(e for _, e in v)) for k, v in cpus.items()
                }
                print(f"  docker stats --no-stream        {docker:6.2f} s   engine: {fmt(docker_calls)}")
                print(f"  opsbot run --json status        {mine:6.2f} s   engine: {fmt(opsbot_calls)}")
                for who, (client, server) in cpu.items():
                    print(f"  CPU, {who}: {client:.2f} s in its own process, {server:.2f} s in the engine")
                print(f"  ratio {mine / docker:.2f} (goal <= 0.6 for 40); busiest container {busiest['name']} "
                      f"at {busiest['cpu_percent']}% cpu", flush=True)  # fmt: skip
            counts = sorted(medians)
            if 40 in medians:
                ratio = medians[40][0] / medians[40][1]
                met = "met" if ratio <= 0.6 else "NOT MET"
                print(f"\nopsbot / docker stats at 40: {ratio:.2f} (goal <= 0.6) {met}")
            if len(counts) > 1:
                growth = medians[counts[-1]][0] / medians[counts[0]][0]
                print(f"status of {counts[-1]} / status of {counts[0]}: {growth:.2f} (goal <= 2) "
                      f"{'met' if growth <= 2 else 'NOT MET'}")  # fmt: skip
    finally:
        engine.stop()


if __name__ == "__main__":
    main()
