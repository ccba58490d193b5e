"""Benchmark: `opsbot run backup <env> --files` against `aws s3 sync`, bucket to bucket on moto's S3 server.

Starts moto's S3 server in a process of its own on loopback, with two source buckets put straight into
its state: 10,000 objects of 1-64 KiB (random sizes, fixed seed) and 4 objects of 256 MiB. Each tool
copies each source into a bucket of its own, through the same endpoint, on the same machine, in the same
run: a first run (everything to copy) and then unchanged runs (nothing to copy; ``--again`` of each
tool, alternating), in rounds (two by default) in which the tools take turns going first: which one runs
first on a server has changed what each costs it by about a tenth, for the same requests. Prints the
times (medians over the rounds), opsbot's over aws's (goal: at most 1 on each) and opsbot's unchanged
run over its first (goal: under 10%), each met or not met; beside them the CPU seconds of each tool and
of the S3 server during its run (the machine may be busy: those do not depend on what else runs).

The `aws` command is the `awscli` package from PyPI, in a venv of its own (not a dependency of opsbot):

    python3 -m venv /tmp/awscli && /tmp/awscli/bin/pip install awscli
    python bench/files_sync.py --aws /tmp/awscli/bin/aws [--small 10000] [--big 4] [--big-mib 256] \\
        [--rounds 2] [--again 5]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
KIB, MIB = 1024, 2**20

#: the moto server's process: seeds its state (no HTTP needed for that), then serves until killed
SERVER = r"""
import logging, os, random, sys, time
logging.getLogger("werkzeug").setLevel(logging.ERROR)
from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends
from moto.server import ThreadedMotoServer
port, small, big, big_mib = (int(a) for a in sys.argv[1:5])
backend = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
for name in ("src-small", "src-big"):
    backend.create_bucket(name, "us-east-1")
rng = random.Random(7)
for i in range(small):
    backend.put_object("src-small", f"media/{i % 100:02d}/{i:05d}.bin", rng.randbytes(rng.randint(1024, 65536)))
chunk = os.urandom(4 * 2**20)
for n in range(big):
    backend.put_object("src-big", f"video/{n}.mp4", chunk * (big_mib // 4) + n.to_bytes(2, "big"))
server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
server.start()
print("ready", flush=True)
while True:
    time.sleep(3600)
"""


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_cpu(pid: int) -> float:
    """CPU seconds the moto server's process has used (Linux; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(argv: list[str], env: dict[str, str], server: int) -> tuple[Sample, str]:
    """Run ``argv``: its wall time, its own CPU and the server's CPU meanwhile, and its stdout."""
    cpu0, srv0 = resource.getrusage(resource.RUSAGE_CHILDREN), server_cpu(server)
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=ROOT, timeout=3600)
    took = time.perf_counter() - start
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{argv[:4]} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    cpu = cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime
    return Sample(took, cpu, server_cpu(server) - srv0), done.stdout


@dataclass
class Sample:
    """One run: wall seconds, the tool's CPU seconds, the S3 server's CPU seconds."""

    wall: float
    cpu: float
    server: float


def main() -> None:
    """Seed, run both tools on each case (``--rounds`` times, alternating who goes first), print the figures."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--aws", default=os.environ.get("AWS_CLI") or shutil.which("aws"), help="the aws command")
    ap.add_argument("--small", type=int, default=10_000, help="objects of 1-64 KiB")
    ap.add_argument("--big", type=int, default=4, help="big objects")
    ap.add_argument("--big-mib", type=int, default=256, help="size of each big object, MiB (a multiple of 4)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds, the tools taking turns going first (medians)")
    ap.add_argument("--again", type=int, default=5,
                    help="unchanged runs per round and tool, alternating (they change nothing; the median is "
                         "reported: a run of a second is at the mercy of whatever else the machine does)")  # fmt: skip
    args = ap.parse_args()
    if not args.aws:
        raise SystemExit("no aws command: python3 -m venv /tmp/awscli && /tmp/awscli/bin/pip install awscli; "
                         "then --aws /tmp/awscli/bin/aws")  # fmt: skip
    version = subprocess.run([args.aws, "--version"], capture_output=True, text=True).stdout.strip()
    # opsbot's bytecode compiled, as pip compiles an installed package's (and the aws CLI's in its venv):
    # PYTHONDONTWRITEBYTECODE in the environment would otherwise make every run compile opsbot again
    subprocess.run([sys.executable, "-m", "compileall", "-q", "bot", "commands", "adapters"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
           "AWS_DEFAULT_REGION": "us-east-1", "PYTHONPATH": str(ROOT), "LOG_LEVEL": "warning"}  # fmt: skip
    print(f"seeding moto's S3 server: {args.small:,} objects of 1-64 KiB, {args.big} of {args.big_mib} MiB ...",
          flush=True)  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port), str(args.small), str(args.big), str(args.big_mib)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        if server.stdout.readline().strip() != "ready":
            raise SystemExit("moto's server did not start")
        with tempfile.TemporaryDirectory() as tmp:
            runs = run_rounds(args, env, Path(tmp), server.pid)
    finally:
        server.kill()
        server.wait()
    report(runs, version, args)


Runs = dict[tuple[str, str], list[Sample]]


def run_rounds(args: argparse.Namespace, env: dict[str, str], tmp: Path, server: int) -> Runs:
    """Each round: per case, the first runs and then the unchanged runs of both tools, into new buckets."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                      aws_access_key_id="bench", aws_secret_access_key="bench")  # fmt: skip
    cases = {"small": args.small, "big": args.big}
    config = {"project": "bench", "environments": {
        f"{case}{r}": {"runtime": {"kind": "compose", "project": "bench", "docker_host": "unix:///nonexistent.sock"},
                       "services": {"api": {}},
                       "backup": {"store": f"file://{tmp}/db/", "database": {"dump": ["true"], "restore": ["true"]},
                                  "files": {"from": f"s3://src-{case}/", "to": f"s3://opsbot-{case}-{r}/"}}}
        for case in cases for r in range(args.rounds)}}  # fmt: skip
    (tmp / "ops.yml").write_text(yaml.safe_dump(config))
    env = env | {"OPSBOT_DB": str(tmp / "opsbot.db")}
    runs: Runs = {}
    for r in range(args.rounds):
        for case, count in cases.items():
            for tool in ("opsbot", "aws"):
                s3.create_bucket(Bucket=f"{tool}-{case}-{r}")
            tools = [("opsbot", count), ("aws", count)]
            order = tools if r % 2 == 0 else tools[::-1]
            for label, step in (("first run", 0), ("unchanged run", 1)):
                for tool, expect in order * (args.again if step else 1):
                    if tool == "opsbot":
                        sample, out = timed([sys.executable, "-m", "bot", "run", "--config", str(tmp / "ops.yml"),
                                             "--json", "backup", f"{case}{r}", "--files"], env, server)  # fmt: skip
                        result = json.loads(out)
                        if result["copied"] != (expect if step == 0 else 0) or not result["verified"]:
                            raise SystemExit(f"opsbot {case} {label}: {out[:2000]}")
                    else:
                        sample, _ = timed([args.aws, "s3", "sync", f"s3://src-{case}/", f"s3://aws-{case}-{r}/",
                                           "--only-show-errors", "--endpoint-url", env["AWS_ENDPOINT_URL"]], env,
                                          server)  # fmt: skip
                    runs.setdefault((f"{case} {label}", tool), []).append(sample)
                    print(f"  round {r + 1} {case} {label} {tool}: {sample.wall:.1f} s (its CPU {sample.cpu:.1f} s, "
                          f"the server's {sample.server:.1f} s)", flush=True)  # fmt: skip
            for tool in ("opsbot", "aws"):  # keep moto's memory and disk bounded
                empty(s3, f"{tool}-{case}-{r}")
    return runs


def empty(s3: object, bucket: str) -> None:
    """Delete every object of ``bucket``."""
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)  # type: ignore[attr-defined]
    for page in pages:
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})  # type: ignore[attr-defined]


def report(runs: Runs, version: str, args: argparse.Namespace) -> None:
    """The table (medians of the rounds) and the goals."""
    print(f"\nfiles sync on moto ({args.small:,} objects of 1-64 KiB; {args.big} x {args.big_mib} MiB; "
          f"{args.rounds} round(s), medians); {version}")  # fmt: skip
    print(f"{'case':<22}{'opsbot s':>10}{'aws s':>8}{'ratio':>7}  {'goal (<= 1)':<12}"
          f"{'CPU opsbot/aws':>16}{'server CPU opsbot/aws':>24}")  # fmt: skip
    med: dict[tuple[str, str], Sample] = {}
    for key, samples in runs.items():
        med[key] = Sample(*(statistics.median(getattr(s, f) for s in samples) for f in ("wall", "cpu", "server")))
    for case in dict.fromkeys(c for c, _ in runs):
        ours, theirs = med[(case, "opsbot")], med[(case, "aws")]
        ratio = ours.wall / theirs.wall
        cpu, srv = f"{ours.cpu:.1f} / {theirs.cpu:.1f}", f"{ours.server:.1f} / {theirs.server:.1f}"
        print(f"{case:<22}{ours.wall:>10.2f}{theirs.wall:>8.2f}{ratio:>7.2f}  {'met' if ratio <= 1 else 'NOT MET':<12}"
              f"{cpu:>16}{srv:>24}")  # fmt: skip
    for case in ("small", "big"):
        first, again = med[(f"{case} first run", "opsbot")].wall, med[(f"{case} unchanged run", "opsbot")].wall
        theirs = med[(f"{case} unchanged run", "aws")].wall / med[(f"{case} first run", "aws")].wall
        print(f"{case}: opsbot's unchanged run is {again / first:.1%} of its first (goal under 10%): "
              f"{'met' if again / first < 0.10 else 'NOT MET'} (aws s3 sync: {theirs:.1%})")  # fmt: skip

if __name__ == "__main__":
    main()
