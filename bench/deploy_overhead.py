"""Benchmark: opsbot's replace of one service's container against the engine's own stop + create + start.

Starts a private Docker engine (as the tests do), runs one Compose-labelled busybox service, then
alternates its image between two tags: once with ComposeRuntime.replace + commit (what a deploy does,
health waits excluded), once with the bare SDK calls (stop the container, create one of the other
image with the same settings, start it, remove the old one). Prints the medians and their ratio
(goal: at most 1.3).

    python bench/deploy_overhead.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.compose.runtime import ComposeRuntime  # noqa: E402
from tests.helpers.docker_engine import build_image, run_service, start_engine  # noqa: E402

PROJECT = "benchdeploy"
COMMAND = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]


def raw_swap(client, name: str, image: str) -> None:
    """The engine's own way: stop, create the same container on another image, start, remove the old."""
    old = client.containers.get(name)
    old.stop(timeout=5)
    old.rename(f"{name}-old")
    new = client.containers.create(
        image, COMMAND, name=name, labels=old.labels, environment=old.attrs["Config"]["Env"], network_mode="host"
    )
    new.start()
    old.remove(force=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    opts = parser.parse_args()
    engine = start_engine()
    try:
        client = engine.client
        images = [build_image(client, "bench/app", tag) for tag in ("1.0", "1.1")]
        run_service(client, PROJECT, "app", images[0], COMMAND, env={"A": "1"})
        runtime = ComposeRuntime(engine.host, PROJECT)
        ours, theirs = [], []
        name = f"{PROJECT}-app-1"
        for i in range(opts.rounds):
            image = images[(i + 1) % 2]
            start = time.perf_counter()
            replacement = await runtime.replace("app", image)
            await runtime.commit(replacement)
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            await asyncio.to_thread(raw_swap, client, name, images[i % 2])
            theirs.append(time.perf_counter() - start)
        await runtime.close()
    finally:
        engine.stop()
    o, t = statistics.median(ours), statistics.median(theirs)
    print(f"replace one service's container ({opts.rounds} rounds, medians)")
    print(f"  opsbot replace + commit:            {o * 1000:8.1f} ms")
    print(f"  engine stop + create + start + rm:  {t * 1000:8.1f} ms")
    print(f"  ratio:                              {o / t:8.2f}   (goal <= 1.3)")


if __name__ == "__main__":
    asyncio.run(main())
