"""Benchmark: an alert storm. 300 checks of one environment fail together and flap for 5 minutes.

Part 1, simulated time (the state machine, the outbox and the fake receivers, with faults: Slack
answering 429 and then down for 2 minutes, PagerDuty answering 500): Slack messages posted, against
the naive peer (a message per failing check per run); notifications lost and duplicated (goal 0 each).
Part 2, real time, one end-to-end round: ``opsbot serve`` against the Slack Web API stand-in, 300
health checks served over HTTP on loopback, ``health_check`` every 10 s: the time from the failure to the
first notification (goal: under the check interval + 2 s) and from the recovery to the edits.

    python bench/alert_storm.py [--checks 300] [--minutes 5] [--interval 10]

(300 concurrent HTTP checks take a few seconds of the bot's CPU on two cores: the checks' timeout is 80%
of the interval, so that a healthy check is not reported as timed out.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.notify.base import DeliveryError  # noqa: E402
from tests.e2e.botproc import start_bot  # noqa: E402
from tests.helpers.alert_world import AlertWorld  # noqa: E402
from tests.helpers.http_servers import serve  # noqa: E402
from tests.helpers.slack import SlackStandIn  # noqa: E402

SIM_INTERVAL = 10.0


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


async def simulated(checks: int, minutes: float, tmp: Path) -> dict[str, float]:
    """The storm in simulated time, with faults; counts of what reached the receivers."""
    world = AlertWorld(str(tmp / "sim.db"), checks=checks)
    rng = random.Random(13)
    world.slack.fail_next(DeliveryError("Slack rate limit", retry_after=2, code="ratelimited"), times=2)
    world.pagerduty.fail_next(DeliveryError("PagerDuty answered HTTP 500", code="http_5xx"), times=3)
    naive = 0
    runs = int(minutes * 60 / SIM_INTERVAL)
    started = time.perf_counter()
    try:
        for i in range(runs + 1):
            if i == runs // 2:  # Slack is down for 2 minutes in the middle of the storm
                world.slack.queue += [DeliveryError("Slack cannot be reached", code="unreachable")] * 10_000
                outage_ends = world.clock.now + 120
            if i > runs // 2 and world.slack.queue and world.clock.now >= outage_ends:
                world.slack.queue = []
            failing = {name: "connection refused" for name in world.checks if i == 0 or rng.random() < 0.7}
            naive += len(failing)
            await world.run(failing, advance=SIM_INTERVAL if i else 0.0)
        world.slack.queue = []
        for _ in range(30):  # all recover; deliveries that wait for a backoff go out
            await world.run({}, advance=SIM_INTERVAL)
        wall = time.perf_counter() - started
        rows = await world.worker.outbox.rows()
        incidents = await world.incidents.all()
        top = [a for m, a in world.slack.calls if m == "chat.postMessage" and not a.get("thread_ts")]
        ids = Counter(a["metadata"]["event_payload"]["delivery_id"] for a in top if a.get("metadata"))
        own = Counter(b["elements"][0]["value"] for a in top for b in a["blocks"] if b["type"] == "actions")
        unsent = [r for r in rows if r["state"] not in ("sent", "skipped")]
        untold = [i for i in incidents if i.message_ts is None and i.storm_id is None]
        pd_rows = [r for r in rows if r["notifier"] == "pagerduty" and r["state"] == "sent"]
        return {
            "incidents": len(incidents), "flaps": sum(i.flaps for i in incidents), "runs": runs + 31,
            "posted": len(top), "naive": naive, "thread_replies": len(world.posts(replies=True)),
            "edits": len(world.updates()), "lost": len(unsent) + len(untold),
            "duplicates": sum(n - 1 for n in ids.values()) + sum(n - 1 for n in own.values())
            + max(0, len(world.pagerduty.events) - len(pd_rows)),
            "pages": len(world.pagerduty.events), "wall_s": wall,
        }  # fmt: skip
    finally:
        world.close()


def clean(tmp: Path) -> bool:
    """A scheduled run has finished and no health check has an open alert."""
    with sqlite3.connect(tmp / "opsbot.db") as db:
        ran = db.execute("SELECT 1 FROM schedule_state WHERE last_run IS NOT NULL").fetchone()
        failing = db.execute("SELECT 1 FROM incidents WHERE source = 'health' AND state != 'resolved'").fetchone()
    return bool(ran) and not failing


class Checks:
    """``checks`` health endpoints on one server, failing or not together."""

    def __init__(self) -> None:
        self.failing = False
        self.app = web.Application()
        self.app.router.add_get("/c/{i}", self.check)

    async def check(self, request: web.Request) -> web.Response:
        if self.failing:
            return web.json_response({"status": "down"}, status=503)
        return web.json_response({"status": "ok"})


async def real_round(checks: int, interval: float, tmp: Path) -> dict[str, float]:
    """One storm through ``opsbot serve``: latencies as Slack sees them."""
    tmp.mkdir(parents=True, exist_ok=True)
    served = Checks()
    async with SlackStandIn() as slack, serve(served.app) as url:
        config = {
            "project": "bench", "slack": {"alert_channels": {"critical": "C0CRITICAL", "warning": "C0WARNING"}},
            "environments": {"prod": {
                "url": url, "runtime": {"kind": "compose", "project": "bench",
                                        "docker_host": f"unix://{tmp}/no-docker.sock"},
                "services": {"api": {}},
                "health_checks": [{"name": f"check {i}", "url": f"{{url}}/c/{i}", "expect": {"status": "ok"},
                                   "timeout": f"{interval * 0.8:g}s"} for i in range(checks)],
            }},
            "schedules": [{"task": "health_check", "env": "prod", "every": f"{interval:g}s"}],
            # 300 checks at once are slow on two cores: latency is not what this measures
            "thresholds": {"response_time_ms": {"warning": interval * 700, "critical": interval * 800}},
        }  # fmt: skip
        path = tmp / "ops.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        bot = await start_bot(tmp, path, slack.url, LOG_LEVEL="warning")
        try:
            def about_checks(c) -> bool:
                return c.ok and not c.args.get("thread_ts") and "check " in json.dumps(c.args.get("blocks"))

            # a clean start: a run done, no check failing (the missing Docker engine is an alert of its own)
            deadline = time.monotonic() + 180
            while not clean(tmp) and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
            if not clean(tmp):
                raise SystemExit("no clean start within 180 s: the machine is too loaded for the real round")
            before = len(slack.calls)
            served.failing = True
            failed_at = time.monotonic()
            first = await slack.wait_for("chat.postMessage", lambda c: slack.calls.index(c) >= before
                                         and about_checks(c), interval * 4)  # fmt: skip
            to_first = first.time - failed_at
            await asyncio.sleep(interval * 3)
            posted = len([c for c in slack.calls[before:] if about_checks(c)])
            recovered_at = time.monotonic()
            served.failing = False
            summary = await slack.wait_for("chat.update", lambda c: "0 still open" in json.dumps(c.args.get("blocks"))
                                           and c.time >= recovered_at, interval * 6)  # fmt: skip
            own_ts = {c.response["ts"] for c in slack.calls[before:] if about_checks(c)
                      and "within a minute" not in c.args["text"]}  # fmt: skip
            deadline = time.monotonic() + interval * 6
            edited: dict[str, float] = {}
            while len(edited) < len(own_ts) and time.monotonic() < deadline:
                for c in slack.calls_to("chat.update"):
                    resolved = "RESOLVED" in json.dumps(c.args["blocks"])
                    if c.args.get("ts") in own_ts and c.time >= recovered_at and resolved:
                        edited.setdefault(c.args["ts"], c.time - recovered_at)
                await asyncio.sleep(0.05)
            return {"to_first": to_first, "posted": posted, "summary_edit": summary.time - recovered_at,
                    "own_edits": len(edited), "own": len(own_ts), "slowest_edit": max(edited.values(), default=-1)}
        finally:
            await bot.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=300)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--interval", type=float, default=10.0, help="the real round's check interval, seconds")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the simulated faults' retries would be logged one by one
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)  # the stand-in's requests cut at the bot's stop
    with tempfile.TemporaryDirectory(prefix="bench-storm-") as tmp:
        os.environ.pop("SLACK_APP_TOKEN", None)
        sim = await simulated(args.checks, args.minutes, Path(tmp))
        print(f"alert storm: {args.checks} checks fail together and flap for {args.minutes:g} min "
              f"(simulated: {sim['runs']:.0f} runs every {SIM_INTERVAL:g} s, {sim['incidents']:.0f} incidents, "
              f"{sim['flaps']:.0f} flaps, Slack 429 then down 2 min, PagerDuty 500; {sim['wall_s']:.1f} s of CPU time)")
        print(f"  Slack messages posted:   opsbot {sim['posted']:.0f} (+{sim['thread_replies']:.0f} thread replies, "
              f"{sim['edits']:.0f} edits) vs naive {sim['naive']:.0f} (a message per failing check per run): "
              f"ratio {sim['posted'] / max(sim['naive'], 1):.4f}; goal: at most 10 + 1 summary: "
              f"{verdict(sim['posted'] <= 11)}")
        print(f"  notifications lost:      {sim['lost']:.0f} (goal 0: {verdict(sim['lost'] == 0)})")
        print(f"  duplicates:              {sim['duplicates']:.0f} (goal 0: {verdict(sim['duplicates'] == 0)}); "
              f"PagerDuty events {sim['pages']:.0f}", flush=True)
        real = await real_round(args.checks, args.interval, Path(tmp) / "real")
    goal_first = args.interval + 2
    print(f"real round (opsbot serve, Slack stand-in, {args.checks} HTTP checks every {args.interval:g} s):")
    print(f"  failure -> first notification: {real['to_first']:.2f} s (goal < {goal_first:g} s: "
          f"{verdict(real['to_first'] < goal_first)}); top-level messages {real['posted']:.0f}")
    print(f"  recovery -> summary edited: {real['summary_edit']:.2f} s; own messages edited RESOLVED: "
          f"{real['own_edits']:.0f} of {real['own']:.0f}, the slowest after {real['slowest_edit']:.2f} s")

if __name__ == "__main__":
    asyncio.run(main())
