"""Benchmark: acknowledgement latency of signed slash commands with and without a slow-client flood.

Starts `opsbot serve` in HTTP mode (open-file limit 1024, as most hosts have it) against the Slack Web
API stand-in, sends signed `/ops health prod` commands a few at a time, and prints the p50/p99/max
time to the HTTP 200 and of `GET /health`: first alone, then while a separate process keeps
`--flood` slow clients connected (1100 by default: more than the open-file limit; each sends a request
head a byte every half second and reconnects as soon as it is closed). Goal: every acknowledgement
within Slack's 3 s during the flood, and every result posted. Loopback only.

    python bench/slow_clients.py [--requests 50] [--flood 1100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.botproc import SECRET, engine_free_config, start_bot  # noqa: E402
from tests.helpers.http_servers import health_app, serve  # noqa: E402
from tests.helpers.slack import SlackStandIn, sign, slash_command_body  # noqa: E402
from tests.helpers.slow_clients import SlowClients  # noqa: E402

NOFILE = 1024
SLACK_LIMIT = 3.0


async def flood(port: int, count: int) -> None:
    """The flood, in a process of its own: runs until killed, prints how many it holds every second."""
    async with SlowClients("127.0.0.1", port, count, kind="head", reconnect=True) as clients:
        while True:
            held = {"opened": clients.opened, "open": clients.open_now, "failed": clients.failed}
            print(json.dumps(held), flush=True)
            await asyncio.sleep(1)


async def measure(url: str, requests: int, concurrency: int) -> dict[str, list[float]]:
    """Seconds to each acknowledgement (a new connection each, as Slack makes them) and to each /health."""
    import aiohttp

    acks: list[float] = []
    health: list[float] = []
    statuses: list[int] = []
    gate = asyncio.Semaphore(concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True), timeout=timeout) as session:

        async def one() -> None:
            body = slash_command_body("health prod").encode()
            headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(SECRET, body)}
            async with gate:
                start = time.perf_counter()
                try:
                    async with session.post(f"{url}/slack/events", data=body, headers=headers) as response:
                        await response.read()
                        statuses.append(response.status)
                except (aiohttp.ClientError, TimeoutError):
                    statuses.append(0)
                acks.append(time.perf_counter() - start)
                start = time.perf_counter()
                try:
                    async with session.get(f"{url}/health") as response:
                        await response.read()
                except (aiohttp.ClientError, TimeoutError):
                    pass
                health.append(time.perf_counter() - start)

        await asyncio.gather(*(one() for _ in range(requests)))
    return {"acks": acks, "health": health, "ok": [float(s == 200) for s in statuses]}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def line(name: str, values: list[float]) -> str:
    p50, p99, top = pct(values, 0.5), pct(values, 0.99), max(values) * 1000
    return f"{name:<16} p50 {p50:8.1f} ms   p99 {p99:8.1f} ms   max {top:8.1f} ms"


async def results(slack: SlackStandIn, since: float, wanted: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while True:
        done = [c for c in slack.calls_to("chat.update") if c.time >= since and "prod: " in c.args.get("text", "")]
        if len(done) >= wanted or time.monotonic() > deadline:
            return len(done)
        await asyncio.sleep(0.2)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=5)
    parser.add_argument("--flood", type=int, default=1100)
    parser.add_argument("--flood-port", type=int, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.flood_port:
        await flood(opts.flood_port, opts.flood)
        return
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        async with SlackStandIn() as slack, serve(health_app()) as base:
            bot = await start_bot(tmp, engine_free_config(tmp, base), slack.url, nofile=NOFILE, LOG_LEVEL="warning")
            port = int(bot.url.rsplit(":", 1)[1])
            try:
                await measure(bot.url, 3, 1)  # warm-up: auth.test, the first database writes
                await results(slack, 0, 3)
                since = time.monotonic()
                alone = await measure(bot.url, opts.requests, opts.concurrency)
                posted_alone = await results(slack, since, opts.requests)
                attacker = await asyncio.create_subprocess_exec(
                    sys.executable, __file__, "--flood-port", str(port), "--flood", str(opts.flood),
                    stdout=asyncio.subprocess.PIPE,
                )  # fmt: skip
                assert attacker.stdout is not None
                held: dict[str, int] = {}
                while held.get("opened", 0) < opts.flood:  # every slow client has connected at least once
                    held = json.loads(await attacker.stdout.readline())
                since = time.monotonic()
                flooded = await measure(bot.url, opts.requests, opts.concurrency)
                posted_flooded = await results(slack, since, opts.requests)
                held = json.loads(await attacker.stdout.readline())
                attacker.kill()
                await attacker.wait()
            finally:
                await bot.stop()
    print(f"{opts.requests} signed /ops health prod, {opts.concurrency} at a time; bot open-file limit {NOFILE}")
    print("without the flood:")
    print("  " + line("acknowledgement", alone["acks"]))
    print("  " + line("GET /health", alone["health"]))
    print(f"  HTTP 200: {int(sum(alone['ok']))} of {opts.requests}; results posted: {posted_alone}")
    print(f"with {opts.flood} slow clients (a byte every 0.5 s, reconnecting; {held['open']} connected at the end, "
          f"{held['opened']} connections made):")  # fmt: skip
    print("  " + line("acknowledgement", flooded["acks"]))
    print("  " + line("GET /health", flooded["health"]))
    print(f"  HTTP 200: {int(sum(flooded['ok']))} of {opts.requests}; results posted: {posted_flooded}")
    ratio = pct(flooded["acks"], 0.99) / max(pct(alone["acks"], 0.99), 0.001)
    met = max(flooded["acks"]) < SLACK_LIMIT and sum(flooded["ok"]) == opts.requests and posted_flooded >= opts.requests
    print(f"ratio of p99 (flood / alone): {ratio:.1f}")
    print(f"goal: every acknowledgement under {SLACK_LIMIT:g} s and every result posted during the flood: "
          f"{'met' if met else 'NOT met'}")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
