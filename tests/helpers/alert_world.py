"""An alerting world on fakes, in simulated time: config, engine, incidents, outbox worker and fake receivers.

``AlertWorld.run(failing=...)`` makes the environment's health checks answer as told, runs ``health prod``
through the engine as the scheduler would, feeds the reply to the incidents, and delivers the outbox;
``clock.now`` moves only when the test moves it. Used by tests/unit/test_alerts_*.py and bench/alert_storm.py.
"""

from __future__ import annotations

import copy
from typing import Any

from adapters.fakes import FakeBackends, FakeEmail, FakePagerDuty, FakeProbe, FakeRuntime, FakeSlackNotifier
from bot.config import validate_config
from bot.config.redact import Redactor
from bot.core.access import SCHEDULER_ACTOR
from bot.core.db import Database
from bot.core.engine import Engine
from bot.core.request import Reply, Request
from bot.doors.alerts import AlertWorker

URL = "http://127.0.0.1:18080"
#: Monday 4 May 2026, 10:00 UTC (12:00 in Berlin)
T0 = 1_777_888_800.0
#: the error of a failing check in these tests
REFUSED = "connection refused"
CHANNELS = {"critical": "C0CRITICAL", "warning": "C0WARNING", "info": "C0INFO"}
ALERTING = {
    "critical": {"to": ["pagerduty", "slack"], "escalate_after": "5m"},
    "warning": {"to": ["slack"], "escalate_after": "1h"},
    "info": {"to": ["email"], "digest_at": "09:00"},
    "repeat_after": "4h",
    "timezone": "Europe/Berlin",
    "pagerduty": {"routing_key_env": "PAGERDUTY_ROUTING_KEY"},
    "email": {"smtp_url": "smtp://opsbot@127.0.0.1:25", "from": "opsbot@example.com", "to": ["ops@example.com"]},
}
ESCALATION = [
    {"level": "L1", "contact": "<!subteam^S0ONCALL>", "when": "First response"},
    {"level": "L2", "contact": "<@U0SENIOR>", "when": "Complex issues"},
    {"level": "L3", "contact": "<@U0TECHLEAD>", "when": "Critical/Architecture"},
]
TROUBLESHOOTING = [
    {"issue": "API Timeout", "symptoms": ["504", "timeout"], "resolution": "Check DB connections",
     "diagnose": ["health"]},
    {"issue": "Connection Refused", "symptoms": ["502", "refused"], "resolution": "Restart services",
     "diagnose": ["health"]},
]  # fmt: skip


class Clock:
    """Simulated time."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def world_config(checks: int = 2, **overrides: Any) -> Any:
    """A validated config: prod with ``checks`` health checks (``Check 1``...), alerting, escalation."""
    data: dict[str, Any] = {
        "project": "shop",
        "default_environment": "prod",
        "slack": {"alert_channels": CHANNELS},
        "access": {"operators": ["U0OPERATOR"], "approvers": ["U0APPROVER1"], "admins": ["U0ADMIN"]},
        "environments": {"prod": {
            "url": URL, "runtime": {"kind": "compose", "project": "shop"},
            "services": {"api": {}, "worker": {}},
            "health_checks": [{"name": f"Check {i}", "url": f"{{url}}/c{i}"} for i in range(1, checks + 1)],
        }},
        "troubleshooting": TROUBLESHOOTING,
        "escalation": ESCALATION,
        "alerting": copy.deepcopy(ALERTING),
    }  # fmt: skip
    data.update(overrides)
    config, problems = validate_config(data)
    assert not problems, problems
    return config


class AlertWorld:
    """Everything alerting needs, on fakes, on one database file."""

    def __init__(self, path: str, *, checks: int = 2, config: Any = None, db: Database | None = None,
                 owner: str = "w1") -> None:  # fmt: skip
        self.clock = Clock()
        self.config = config or world_config(checks)
        self.probe = FakeProbe()
        rt = FakeRuntime()
        rt.add("api")
        rt.add("worker")
        self.runtime = rt
        self.backends = FakeBackends({"prod": rt}, self.probe)
        self.db = db or Database(path)
        self.engine = Engine(self.config, self.backends, self.db, Redactor(["xoxb-secret-token"]))
        self.engine.incidents.clock = self.clock
        self.slack = FakeSlackNotifier()
        self.pagerduty = FakePagerDuty()
        self.email = FakeEmail()
        self.worker = AlertWorker(self.engine, {"slack": self.slack, "pagerduty": self.pagerduty,
                                                "email": self.email}, owner=owner, clock=self.clock)  # fmt: skip
        self.alerting = self.worker.alerting
        self.incidents = self.worker.incidents
        self.checks = [c.name for c in self.config.environments["prod"].health_checks]

    def answer(self, failing: dict[str, str] | None = None, slow: dict[str, float] | None = None) -> None:
        """Make every check pass, except ``failing`` (name -> error) and ``slow`` (name -> latency ms)."""
        failing, slow = failing or {}, slow or {}
        for i, name in enumerate(self.checks, 1):
            url = f"{URL}/c{i}"
            if name in failing:
                self.probe.answer(url, ok=False, status=None, error=failing[name])
            else:
                self.probe.answer(url, latency=slow.get(name, 5.0))

    async def run(self, failing: dict[str, str] | None = None, *, slow: dict[str, float] | None = None,
                  deliver: bool = True, advance: float = 0.0, command: str = "health") -> Reply:  # fmt: skip
        """One scheduled ``health prod`` run (``command="status"``: ``status prod``, which also looks at the
        containers and the engine, as the scheduler's ``health_check`` does) fed to the incidents (and the
        outbox delivered)."""
        self.clock.now += advance
        self.answer(failing, slow)
        reply = await self.engine.handle(Request(actor=SCHEDULER_ACTOR, door="scheduler", words=[command, "prod"]))
        await self.alerting.observe_run("health_check", "prod", reply)
        if deliver:
            await self.deliver()
        return reply

    async def deliver(self) -> None:
        """Sweep and deliver until nothing is due now."""
        self.worker._swept = 0.0
        await self.worker.step()
        await self.worker.drain()

    async def handle(self, words: list[str], actor: str = "U0OPERATOR") -> Reply:
        """A person's request through the engine."""
        return await self.engine.handle(Request(actor=actor, door="slack", words=words))

    def posts(self, channel: str | None = None, *, replies: bool = False) -> list[dict[str, Any]]:
        """Messages posted (top-level; thread replies with ``replies``)."""
        return [a for m, a in self.slack.calls if m == "chat.postMessage"
                and (channel is None or a["channel"] == channel) and bool(a.get("thread_ts")) == replies]  # fmt: skip

    def updates(self) -> list[dict[str, Any]]:
        """chat.update calls."""
        return [a for m, a in self.slack.calls if m == "chat.update"]

    def close(self) -> None:
        """Close the database (once)."""
        if not getattr(self, "_closed", False):
            self._closed = True
            self.db.close()


def text_of(message: dict[str, Any]) -> str:
    """The text of a message's section blocks, joined."""
    return " ".join(b.get("text", {}).get("text", "") for b in message.get("blocks", []) if b["type"] == "section")
