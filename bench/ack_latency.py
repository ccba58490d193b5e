"""Benchmark: acknowledgement latency of /ops over HTTP, as Slack measures it.

Starts `opsbot serve` in HTTP mode against the Slack Web API stand-in, sends 200 signed slash
commands (`/ops health prod`), 50 at a time, and prints the p50 and p99 time to the HTTP 200
(goal: p99 under 100 ms; Slack's limit is 3 s), how many results reached the channel, and the bot's
resident memory afterwards. The health checks are served by a local HTTP server; the runtime points
at a Docker socket that does not exist (health needs no engine).

    python bench/ack_latency.py [--requests 200] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.botproc import SECRET, start_bot  # noqa: E402
from tests.helpers.http_servers import health_app, serve  # noqa: E402
from tests.helpers.slack import SlackStandIn, post_signed, sign, slash_command_body  # noqa: E402


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def load(url: str, requests: int, concurrency: int, command: str) -> None:
    """The load generator: signed commands, ``concurrency`` at a time; prints its measurements as JSON.

    One client session (a new connection per request, as Slack makes them), bodies signed up front, so
    that the figures are the bot's and not the load generator's.
    """
    import aiohttp

    bodies = [slash_command_body(command).encode() for _ in range(requests)]
    signed = [(body, {"Content-Type": "application/x-www-form-urlencoded", **sign(SECRET, body)}) for body in bodies]
    latencies: list[float] = []
    statuses: list[int] = []
    gate = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(force_close=True, limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(body: bytes, headers: dict[str, str]) -> None:
            async with gate:
                start = time.perf_counter()
                async with session.post(f"{url}/slack/events", data=body, headers=headers) as response:
                    await response.read()
                    latencies.append(time.perf_counter() - start)
                    statuses.append(response.status)

        start = time.perf_counter()
        await asyncio.gather(*(one(b, h) for b, h in signed))
    print(json.dumps({"latencies": latencies, "statuses": statuses, "wall": time.perf_counter() - start}))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--command", default="health prod", help="the /ops text to send (default: health prod)")
    parser.add_argument("--client", metavar="URL", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.client:
        await load(opts.client, opts.requests, opts.concurrency, opts.command)
        return
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        async with SlackStandIn() as slack, serve(health_app()) as base:
            config = yaml.safe_load((ROOT / "examples" / "ops.yml").read_text())
            prod = config["environments"]["prod"]
            prod["url"] = base
            prod["runtime"]["docker_host"] = f"unix://{tmp}/no-docker.sock"
            path = tmp / "ops.yml"
            path.write_text(yaml.safe_dump(config, sort_keys=False))
            bot = await start_bot(tmp, path, slack.url, LOG_LEVEL="warning")
            try:
                # one request first: Bolt's auth.test and the first database write are not what we measure
                await post_signed(f"{bot.url}/slack/events", slash_command_body("help"), SECRET)
                before = rss_mb(bot.proc.pid)
                cpu_before = cpu_seconds(bot.proc.pid)
                # the load comes from a process of its own, so that its measurements do not wait on the
                # Slack stand-in and the health server, which this process serves
                client = await asyncio.create_subprocess_exec(
                    sys.executable, __file__, "--client", bot.url, "--requests", str(opts.requests),
                    "--concurrency", str(opts.concurrency), "--command", opts.command, stdout=asyncio.subprocess.PIPE,
                )  # fmt: skip
                out, _ = await client.communicate()
                measured = json.loads(out)
                latencies, statuses, wall = measured["latencies"], measured["statuses"], measured["wall"]
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    done = [c for c in slack.calls_to("chat.update") if "prod: " in c.args.get("text", "")]
                    if len(done) >= opts.requests:
                        break
                    await asyncio.sleep(0.2)
                after = rss_mb(bot.proc.pid)
                cpu = cpu_seconds(bot.proc.pid) - cpu_before
            finally:
                await bot.stop()
    latencies.sort()
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    print(f"{opts.requests} signed slash commands, {opts.concurrency} at a time, in {wall:.2f} s")
    print(f"  HTTP 200: {statuses.count(200)} of {len(statuses)}")
    print(f"  ack latency p50: {p(0.50):7.1f} ms   p99: {p(0.99):7.1f} ms   max: {latencies[-1] * 1000:7.1f} ms")
    print(f"  (goal: p99 < 100 ms; Slack's limit: 3000 ms)   mean {statistics.mean(latencies) * 1000:.1f} ms")
    print(f"  results posted in the channel: {len(done)} of {opts.requests}")
    print(f"  bot CPU: {cpu:.2f} s in all, {cpu / opts.requests * 1000:.1f} ms per request (ack and procedure)")
    print(f"  bot memory (RSS): {before:.0f} MB before, {after:.0f} MB after")


if __name__ == "__main__":
    asyncio.run(main())
