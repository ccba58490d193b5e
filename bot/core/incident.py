"""What an incident is: its row, its fingerprint, what a check observed, where a severity goes, what holds it.

    firing --ack--> acknowledged --(check passes)--> resolved --(fails again within FLAP_WINDOW)--> firing
    firing/acknowledged --silence--> silenced --(hold ends, still failing)--> firing
    (opens or reopens while a silence or a running maintenance task holds it) --> silenced

A silence holds one check, metric, service or task of one environment; a running maintenance task holds
the containers of the services it touches (``task_hold``); nothing holds a whole environment.

An incident is keyed by its fingerprint: environment, source (health, metric, container, runtime,
schedule) and what failed (the check, metric or service). Of one fingerprint at most one incident is open.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.config import OpsConfig

FIRING, ACKNOWLEDGED, SILENCED, RESOLVED = "firing", "acknowledged", "silenced", "resolved"
OPEN_STATES = (FIRING, ACKNOWLEDGED, SILENCED)
#: where observations come from (``bot.core.observe``)
SOURCES = ("health", "metric", "container", "runtime", "schedule")
#: a check that fails again within this many seconds of recovering reopens the same incident (flapping)
FLAP_WINDOW = 600.0
#: an incident that keeps failing has its message edited at most this often (count, "still failing")
EDIT_EVERY = 60.0
#: more incidents than this opening in one environment within STORM_SECONDS share one summary message
STORM_AT = 10
STORM_SECONDS = 60.0


def fingerprint(env: str, source: str, what: str) -> str:
    """The incident's key: ``prod/health/API Health`` (also PagerDuty's dedup_key)."""
    return f"{env}/{source}/{what}"


@dataclass(frozen=True)
class Observation:
    """What one run saw of one thing: its severity (ok ends an incident) and why."""

    source: str
    what: str
    severity: str
    summary: str = ""
    #: words to match against ``troubleshooting`` symptoms (an error, a status code)
    symptoms: str = ""


@dataclass
class Incident:
    """One row of ``incidents``."""

    id: str
    fingerprint: str
    environment: str
    source: str
    what: str
    severity: str
    state: str
    summary: str
    opened_at: float
    failing_since: float
    last_seen: float
    symptoms: str = ""
    resolved_at: float | None = None
    count: int = 1
    flaps: int = 0
    acked_by: str | None = None
    acked_at: float | None = None
    silence_id: str | None = None
    held_until: float | None = None
    held_reason: str | None = None
    level: int = 0
    escalated_at: float | None = None
    repeated_at: float | None = None
    edited_at: float | None = None
    diagnosed_at: float | None = None
    paged: int = 0
    channel: str | None = None
    message_ts: str | None = None
    storm_id: str | None = None
    version: int = 0
    #: columns changed since read (written by ``save``)
    dirty: set[str] = field(default_factory=set, repr=False, compare=False)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Incident:
        """From a database row."""
        return cls(**dict(row))

    def set(self, **changes: Any) -> None:
        """Change fields, remembering which (for the compare-and-set write)."""
        for key, value in changes.items():
            setattr(self, key, value)
            self.dirty.add(key)

    def row(self) -> dict[str, Any]:
        """The database row."""
        data = asdict(self)
        data.pop("dirty")
        return data

    def summary_json(self, config: OpsConfig) -> dict[str, Any]:
        """The contract's ``alerts`` item: id, environment, source, severity, state, summary, opened_at,
        acked_by, level (and a few more)."""
        return {
            "id": self.id, "environment": self.environment, "source": self.source, "what": self.what,
            "severity": self.severity, "state": self.state, "summary": self.summary,
            "opened_at": iso(self.opened_at), "failing_since": iso(self.failing_since), "acked_by": self.acked_by,
            "level": level_name(config, self.level), "count": self.count, "flaps": self.flaps,
            "held_until": iso(self.held_until) if self.held_until else None, "held_reason": self.held_reason,
            "resolved_at": iso(self.resolved_at) if self.resolved_at else None, "fingerprint": self.fingerprint,
        }  # fmt: skip


def iso(ts: float) -> str:
    """A UTC timestamp as ISO 8601 (``2026-05-04T14:02:00Z``)."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def level_name(config: OpsConfig, level: int) -> str | None:
    """The escalation level's name (``L2``) for level number ``level`` (1 = the first), None before any."""
    if level <= 0 or not config.escalation:
        return None
    return config.escalation[min(level, len(config.escalation)) - 1].level


@dataclass(frozen=True)
class Route:
    """Where alerts of one severity go (``alerting``; without it, only that severity's Slack channel)."""

    severity: str
    slack_channel: str | None
    pagerduty: bool
    email: bool
    escalate_after: float | None


def route_of(config: OpsConfig, severity: str) -> Route:
    """The route of ``severity``: ``alerting.<severity>.to``, or Slack's ``alert_channels`` alone."""
    channels = alert_channels(config)
    alerting = config.alerting
    route = getattr(alerting, severity, None) if alerting is not None else None
    if route is None:
        return Route(severity, channels.get(severity), False, False, None)
    return Route(
        severity=severity,
        slack_channel=channels.get(severity) if "slack" in route.to else None,
        pagerduty="pagerduty" in route.to,
        email="email" in route.to,
        escalate_after=route.escalate_after,
    )


def alert_channels(config: OpsConfig) -> dict[str, str]:
    """``slack.alert_channels``: severity -> channel id."""
    return {str(k): v for k, v in config.slack.alert_channels.items()}


def repeat_after(config: OpsConfig) -> float:
    """How long a still-failing incident waits before it is said again in its thread."""
    return config.alerting.repeat_after if config.alerting is not None else 4 * 3600.0


@dataclass(frozen=True)
class Hold:
    """Why an incident's alerts are held, and until when."""

    until: float
    reason: str
    silence_id: str | None = None


#: a running maintenance task's hold is looked at again this often (seconds); it ends when the task does
TASK_RECHECK = 10.0
#: the sources a maintenance task can hold: its services' containers (a health check or a metric names no
#: service in ops.yml, so nothing says a task touches it)
TASK_HELD_SOURCES = ("container",)


def task_hold(runs: list[dict[str, Any]], source: str, what: str, now: float) -> Hold | None:
    """The hold of a running maintenance task (``maintenance_runs.running``) that touches ``what``: the
    services in its ``holds`` (``db_maintenance``: ``backup.database.service``), nothing else of the
    environment. It lasts while the task runs: looked at again every ``TASK_RECHECK`` seconds."""
    if source not in TASK_HELD_SOURCES:
        return None
    for run in runs:
        if what in run["holds"]:
            reason = f"maintenance: {run['task']} runs on it (started {iso(run['started_at'])} by {run['actor']})"
            return Hold(until=now + TASK_RECHECK, reason=reason)
    return None
