"""Benchmark: acknowledgement latency of /ops over HTTP, as Slack measures it, beside two peers.

Starts, in one run, three servers on 127.0.0.1, each a process of its own:

- ``opsbot serve`` in HTTP mode against the Slack Web API stand-in (its health checks served by a
  local HTTP server; the runtime points at a Docker socket that does not exist: health needs none);
- a plain Bolt ``AsyncApp`` on aiohttp whose ``/ops`` listener only calls ``ack()`` (``bench/ack_peers.py``);
- aiohttp alone, checking the v0 signature and answering 200 (``bench/ack_peers.py``).

The same load client (a process of its own) sends each of them 200 signed slash commands
(`/ops health prod`), 50 at a time, a new connection per request, in turns: a round is one load on
each server, and ``--rounds`` rounds are run in rotating order so that a machine busy with other
work weighs on the three alike. opsbot runs the 200 procedures while it acknowledges, and every
round waits until all 200 results are posted before the next load starts. Printed: p50 and p99 per
server, over all rounds and per round, each server's CPU per request during its loads (opsbot's
front and back apart, and the benchmark's own Slack and health stand-ins answering opsbot), the
ratios, the goals met or not (opsbot's p99 at or below the plain Bolt app's and at most 1.5x the bare
server's), the results posted (and when the last came), and the CPU and resident memory of the bot's
processes.

    python bench/ack_latency.py [--requests 200] [--concurrency 50] [--rounds 3] [--py-spy FILE]

``--py-spy FILE`` records opsbot's processes with py-spy during the run (``--threads``, collapsed
stacks, which flamegraph.pl and speedscope read).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.botproc import SECRET, start_bot  # noqa: E402
from tests.helpers.http_servers import free_port, health_app, serve  # noqa: E402
from tests.helpers.proc_cpu import cpu_seconds  # noqa: E402
from tests.helpers.slack import SlackStandIn, post_signed, sign, slash_command_body  # noqa: E402

#: opsbot's p99 at most this many times the bare server's
GOAL_BARE_RATIO = 1.5
SERVERS = ("bare", "bolt", "opsbot")
TITLES = {"bare": "aiohttp + v0 check", "bolt": "plain Bolt AsyncApp", "opsbot": "opsbot serve"}


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def family(pid: int) -> list[int]:
    """``pid`` and the processes it started (opsbot's back process)."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = task / "children"
        found += [int(c) for c in (children.read_text().split() if children.exists() else [])]
    return found


async def load(url: str, requests: int, concurrency: int, command: str) -> None:
    """The load generator: signed commands, ``concurrency`` at a time; prints its measurements as JSON.

    One client session (a new connection per request, as Slack makes them), bodies signed up front, so
    that the figures are the server's and not the load generator's.
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


async def run_load(url: str, opts: argparse.Namespace) -> tuple[list[float], list[int]]:
    """One load from the client process against ``url``: latencies (s) and HTTP statuses."""
    client = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--client", url, "--requests", str(opts.requests),
        "--concurrency", str(opts.concurrency), "--command", opts.command, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await client.communicate()
    measured = json.loads(out)
    return [float(x) for x in measured["latencies"]], [int(x) for x in measured["statuses"]]


async def start_peer(kind: str) -> tuple[asyncio.subprocess.Process, str]:
    """A peer of ``bench/ack_peers.py``, listening."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "bench" / "ack_peers.py"), kind, str(port), SECRET, stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    if line.strip() != b"ready":
        raise RuntimeError(f"the {kind} peer did not start")
    return proc, f"http://127.0.0.1:{port}"


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile of ``values`` in milliseconds (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def results_posted(slack: SlackStandIn, seen: int, wanted: int) -> tuple[int, float]:
    """Wait (up to 120 s) until ``wanted`` results were posted after ``seen`` chat.update calls: how many
    were, and how long after the load's end the last one came (to 20 ms)."""
    start = time.monotonic()
    while True:
        done = [c for c in slack.calls_to("chat.update")[seen:] if "prod: " in c.args.get("text", "")]
        if len(done) >= wanted or time.monotonic() > start + 120:
            return len(done), time.monotonic() - start
        await asyncio.sleep(0.02)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--command", default="health prod", help="the /ops text to send (default: health prod)")
    parser.add_argument("--py-spy", metavar="FILE", help="record opsbot with py-spy during the run")
    parser.add_argument("--client", metavar="URL", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.client:
        await load(opts.client, opts.requests, opts.concurrency, opts.command)
        return
    latencies: dict[str, list[float]] = {s: [] for s in SERVERS}
    rounds: dict[str, list[tuple[float, float]]] = {s: [] for s in SERVERS}
    statuses: dict[str, list[int]] = {s: [] for s in SERVERS}
    posted: list[int] = []
    #: per opsbot load: seconds from its end to the last result posted
    last_after: list[float] = []
    #: CPU seconds of each server's process during its loads (opsbot: the front; the back apart)
    cpu_in_load: dict[str, float] = {s: 0.0 for s in (*SERVERS, "back", "stand-ins")}
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
            peers = {kind: await start_peer(kind) for kind in ("bare", "bolt")}
            urls = {"opsbot": bot.url, **{kind: url for kind, (_, url) in peers.items()}}
            pids = {"opsbot": bot.proc.pid, **{kind: proc.pid for kind, (proc, _) in peers.items()}}
            pids["back"] = next((p for p in family(bot.proc.pid) if p != bot.proc.pid), bot.proc.pid)
            spy = None
            try:
                # one request first each: Bolt's setup and the bot's first database write are not measured
                await post_signed(f"{bot.url}/slack/events", slash_command_body("help"), SECRET)
                for kind in ("bare", "bolt"):
                    await post_signed(f"{urls[kind]}/slack/events", slash_command_body("help"), SECRET)
                before = sum(rss_mb(p) for p in family(bot.proc.pid))
                cpu_before = sum(cpu_seconds(p) for p in family(bot.proc.pid))
                if opts.py_spy:
                    spy = await asyncio.create_subprocess_exec(
                        shutil.which("py-spy") or "py-spy", "record", "--threads", "--subprocesses", "--rate", "250",
                        "--format", "raw", "-o", opts.py_spy, "--pid", str(bot.proc.pid),
                        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
                    )  # fmt: skip
                    await asyncio.sleep(2)
                for n in range(opts.rounds):
                    for kind in SERVERS[n % 3 :] + SERVERS[: n % 3]:
                        seen = len(slack.calls_to("chat.update"))
                        cpu0 = {k: cpu_seconds(pid) for k, pid in pids.items()}
                        mine = cpu_seconds(os.getpid())
                        lat, codes = await run_load(urls[kind], opts)
                        cpu_in_load[kind] += cpu_seconds(pids[kind]) - cpu0[kind]
                        if kind == "opsbot":
                            cpu_in_load["back"] += cpu_seconds(pids["back"]) - cpu0["back"]
                            cpu_in_load["stand-ins"] += cpu_seconds(os.getpid()) - mine
                        latencies[kind] += lat
                        statuses[kind] += codes
                        rounds[kind].append((pct(lat, 0.5), pct(lat, 0.99)))
                        if kind == "opsbot":
                            count, after = await results_posted(slack, seen, opts.requests)
                            posted.append(count)
                            last_after.append(after)
                cpu = sum(cpu_seconds(p) for p in family(bot.proc.pid)) - cpu_before
                after = sum(rss_mb(p) for p in family(bot.proc.pid))
            finally:
                if spy is not None:
                    spy.send_signal(2)
                    await spy.wait()
                for proc, _ in peers.values():
                    proc.terminate()
                    await proc.wait()
                await bot.stop()
    report(opts, latencies, rounds, statuses, (posted, last_after), (cpu, before, after), cpu_in_load)


def report(
    opts: argparse.Namespace,
    latencies: dict[str, list[float]],
    rounds: dict[str, list[tuple[float, float]]],
    statuses: dict[str, list[int]],
    results: tuple[list[int], list[float]],
    usage: tuple[float, float, float],
    cpu_in_load: dict[str, float],
) -> None:
    """Print the figures side by side, the ratios, and the goals met or not."""
    print(f"{opts.requests} signed `/ops {opts.command}`, {opts.concurrency} at a time, a new connection each; "
          f"{opts.rounds} round(s), the three servers in turn, one run")  # fmt: skip
    print(f"  {'server':<22} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}   HTTP 200   p50/p99 per round (ms)")
    for kind in SERVERS:
        lat = latencies[kind]
        per_round = "  ".join(f"{a:.0f}/{b:.0f}" for a, b in rounds[kind])
        ok = statuses[kind].count(200)
        print(f"  {TITLES[kind]:<22} {pct(lat, .5):8.1f} {pct(lat, .99):8.1f} {max(lat) * 1000:8.1f}   "
              f"{ok:>4}/{len(lat):<4}  {per_round}")  # fmt: skip
    total = opts.requests * opts.rounds
    per = {k: v / total * 1000 for k, v in cpu_in_load.items()}
    print(f"  CPU per request while its load runs: bare {per['bare']:.2f} ms, Bolt {per['bolt']:.2f} ms, opsbot's "
          f"front {per['opsbot']:.2f} ms (its back meanwhile: {per['back']:.2f} ms; the Slack and health stand-ins "
          f"answering it: {per['stand-ins']:.2f} ms)")  # fmt: skip
    ours, bolt, bare = (pct(latencies[k], 0.99) for k in ("opsbot", "bolt", "bare"))
    vs_bolt, vs_bare = ours / bolt, ours / bare
    print(f"  p99 ratios: opsbot/Bolt {vs_bolt:.2f}x (goal <= 1.00: {'met' if vs_bolt <= 1 else 'NOT MET'}); "
          f"opsbot/bare {vs_bare:.2f}x (goal <= {GOAL_BARE_RATIO:.2f}: "
          f"{'met' if vs_bare <= GOAL_BARE_RATIO else 'NOT MET'}); Bolt/bare {bolt / bare:.2f}x")  # fmt: skip
    posted, last_after = results
    print(f"  opsbot results posted in the channel: {sum(posted)} of {total} "
          f"({'all' if sum(posted) == total else 'NOT all'}; per round {', '.join(map(str, posted))}); the last "
          f"of a round {', '.join(f'{s:.2f}' for s in last_after)} s after the round's load ended")  # fmt: skip
    cpu, before, after = usage
    print(f"  opsbot CPU (its processes): {cpu:.2f} s in all, {cpu / total * 1000:.1f} ms per request (ack and "
          f"procedure); memory (RSS) {before:.0f} MB before, {after:.0f} MB after")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
