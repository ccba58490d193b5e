"""Benchmark: `status` over 30 health checks that each take 400 ms.

Prints the procedure's wall time, its ratio to the sequential sum of the checks (goal: under 0.1),
and the end-to-end time of `opsbot run --json status` as a process (start-up, config, database,
checks, JSON). The health checks are served by a real HTTP server on loopback that answers each
request after 400 ms. The runtime points at a Docker socket that does not exist, so the container
half of `status` fails fast and the figures are the fan-out's own.

    python bench/status_fanout.py [--checks 30] [--delay 0.4] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.config.settings import Settings  # noqa: E402
from bot.core.app import App  # noqa: E402
from bot.core.engine import Request  # noqa: E402
from tests.helpers.http_servers import health_app, serve  # noqa: E402


def write_config(path: Path, base: str, checks: int, delay: float, tmp: Path) -> None:
    config = {
        "project": "bench",
        "environments": {
            "prod": {
                "url": base,
                "runtime": {"kind": "compose", "project": "bench", "docker_host": f"unix://{tmp}/no-docker.sock"},
                "services": {"api": {}},
                "health_checks": [
                    {
                        "name": f"check {i}",
                        "url": f"{{url}}/slow?s={delay}",
                        "expect": {"status": "ok"},
                        "timeout": "5s",
                    }
                    for i in range(checks)
                ],
            }
        },
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=30)
    parser.add_argument("--delay", type=float, default=0.4)
    parser.add_argument("--runs", type=int, default=3)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        async with serve(health_app()) as base:
            config = tmp / "ops.yml"
            write_config(config, base, opts.checks, opts.delay, tmp)
            settings = Settings(opsbot_config=str(config), opsbot_db=str(tmp / "bench.db"))
            app = App.build(settings)
            walls = []
            for _ in range(opts.runs):
                start = time.perf_counter()
                reply = await app.engine.handle(Request(actor="local:bench", door="cli", words=["status", "prod"]))
                walls.append(time.perf_counter() - start)
                data = reply.to_json()
                assert len(data["checks"]) == opts.checks and all(c["ok"] for c in data["checks"]), data
            await app.close()
            sequential = opts.checks * opts.delay
            wall = statistics.median(walls)
            print(f"status over {opts.checks} checks of {opts.delay * 1000:.0f} ms each ({opts.runs} runs)")
            print(f"  procedure wall time (median): {wall * 1000:8.1f} ms")
            print(f"  sequential sum:               {sequential * 1000:8.1f} ms")
            print(f"  ratio:                        {wall / sequential:8.3f}   (goal < 0.1)")

            env = {**os.environ, "OPSBOT_DB": str(tmp / "e2e.db")}
            e2e = []
            for _ in range(opts.runs):
                start = time.perf_counter()
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "bot",
                    "run",
                    "--config",
                    str(config),
                    "--json",
                    "status",
                    "prod",
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    env=env,
                    cwd=str(ROOT),
                )
                out, _ = await proc.communicate()
                e2e.append(time.perf_counter() - start)
                assert len(json.loads(out)["checks"]) == opts.checks
            print(f"  `opsbot run --json status` end to end (median): {statistics.median(e2e) * 1000:.0f} ms")


if __name__ == "__main__":
    asyncio.run(main())
