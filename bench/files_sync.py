"""Benchmark: `opsbot run backup <env> --files` against `aws s3 sync`, bucket to bucket on moto's S3 server.

Starts moto's S3 server in a process of its own on loopback, with two source buckets put straight into
its state: 10,000 objects of 1-64 KiB (random sizes, fixed seed) and 4 objects of 256 MiB. Each tool
copies each source into a bucket of its own, through the same endpoint, on the same machine, in the
same run: a first run (everything to copy) and a second, unchanged run (nothing to copy). Prints the
times, opsbot's over aws's (goal: at most 1 on each) and opsbot's unchanged run over its first (goal:
under 10%), each met or not met.

The `aws` command is the `awscli` package from PyPI, in a venv of its own (not a dependency of opsbot):

    python3 -m venv /tmp/awscli && /tmp/awscli/bin/pip install awscli
    python bench/files_sync.py --aws /tmp/awscli/bin/aws [--small 10000] [--big 4] [--big-mib 256]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
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
for name in ("src-small", "src-big", "opsbot-small", "aws-small", "opsbot-big", "aws-big"):
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


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Run ``argv``; (wall seconds, stdout); fails loudly on a non-zero exit."""
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=ROOT, timeout=3600)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{argv[:4]} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return took, done.stdout


def main() -> None:
    """Seed, run both tools twice on each case, print the figures."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--aws", default=os.environ.get("AWS_CLI") or shutil.which("aws"), help="the aws command")
    ap.add_argument("--small", type=int, default=10_000, help="objects of 1-64 KiB")
    ap.add_argument("--big", type=int, default=4, help="big objects")
    ap.add_argument("--big-mib", type=int, default=256, help="size of each big object, MiB (a multiple of 4)")
    args = ap.parse_args()
    if not args.aws:
        raise SystemExit("no aws command: python3 -m venv /tmp/awscli && /tmp/awscli/bin/pip install awscli; "
                         "then --aws /tmp/awscli/bin/aws")  # fmt: skip
    version = subprocess.run([args.aws, "--version"], capture_output=True, text=True).stdout.strip()
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
            rows = run_cases(args, env, Path(tmp))
    finally:
        server.kill()
        server.wait()
    report(rows, version, args)


def run_cases(args: argparse.Namespace, env: dict[str, str], tmp: Path) -> list[tuple[str, float, float]]:
    """Both tools, first and unchanged run, on each case: (case, opsbot s, aws s)."""
    config = {"project": "bench", "environments": {
        case: {"runtime": {"kind": "compose", "project": "bench", "docker_host": "unix:///nonexistent.sock"},
               "services": {"api": {}},
               "backup": {"store": f"file://{tmp}/db/", "database": {"dump": ["true"], "restore": ["true"]},
                          "files": {"from": f"s3://src-{case}/", "to": f"s3://opsbot-{case}/"}}}
        for case in ("small", "big")}}  # fmt: skip
    (tmp / "ops.yml").write_text(yaml.safe_dump(config))
    opsbot = [sys.executable, "-m", "bot", "run", "--config", str(tmp / "ops.yml"), "--json", "backup"]
    env = env | {"OPSBOT_DB": str(tmp / "opsbot.db")}
    rows = []
    for case, count in (("small", args.small), ("big", args.big)):
        for label in ("first run", "unchanged run"):
            took, out = timed([*opsbot, case, "--files"], env)
            result = json.loads(out)
            expect = count if label == "first run" else 0
            if result["copied"] != expect or not result["verified"]:
                raise SystemExit(f"opsbot {case} {label}: copied {result['copied']} (expected {expect}): {out[:2000]}")
            aws_took, _ = timed([args.aws, "s3", "sync", f"s3://src-{case}/", f"s3://aws-{case}/", "--only-show-errors",
                                 "--endpoint-url", env["AWS_ENDPOINT_URL"]], env)  # fmt: skip
            rows.append((f"{case} {label}", took, aws_took))
            print(f"  {case} {label}: opsbot {took:.1f} s, aws s3 sync {aws_took:.1f} s", flush=True)
    return rows


def report(rows: list[tuple[str, float, float]], version: str, args: argparse.Namespace) -> None:
    """The table and the goals."""
    print(f"\nfiles sync on moto ({args.small:,} objects of 1-64 KiB; {args.big} x {args.big_mib} MiB); {version}")
    print(f"{'case':<26}{'opsbot s':>10}{'aws s':>10}{'ratio':>8}  goal (ratio <= 1)")
    for case, ours, theirs in rows:
        ratio = ours / theirs
        print(f"{case:<26}{ours:>10.2f}{theirs:>10.2f}{ratio:>8.2f}  {'met' if ratio <= 1 else 'NOT MET'}")
    times = {case: ours for case, ours, _ in rows}
    for case in ("small", "big"):
        share = times[f"{case} unchanged run"] / times[f"{case} first run"]
        print(f"{case}: opsbot's unchanged run is {share:.1%} of its first (goal under 10%): "
              f"{'met' if share < 0.10 else 'NOT MET'}")  # fmt: skip


if __name__ == "__main__":
    main()
