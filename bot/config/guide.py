"""The second round's sections of ops.yml: requirements, monitoring, alerting, maintenance, security duties.

Strict models like the rest of :mod:`bot.config.models` (unknown keys are errors, every value checked);
the checks that look across sections (an environment named by a window or a task, a route to a
notifier that is not configured, overlapping windows) live in :mod:`bot.config`.
"""

from __future__ import annotations

import re
import zoneinfo
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

from bot.config.types import Argv, Duration, HttpUrl, Name, Text, _Count, _shown

#: the metrics of ``thresholds`` that a monitoring source may measure
MetricName = Literal["cpu_percent", "memory_percent", "response_time_ms", "error_rate_percent", "disk_percent"]
#: the days of a maintenance window
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_CLOCK_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_VERSION_RE = re.compile(r"^\d+(?:\.\d+){0,3}$")
_ENV_VAR_RE = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_EMAIL_RE = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*$"
)
_STAT_RE = re.compile(r"^(?:Average|Sum|Minimum|Maximum|SampleCount|p\d{1,2}(?:\.\d+)?)$")


class StrictModel(BaseModel):
    """Base of every section of ops.yml: unknown keys are errors; no NaN or infinity; validators built when
    first used (a process validates ops.yml once, from the root)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, defer_build=True)


# ---------------------------------------------------------------- small types


def _check_clock(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads an unquoted 02:00 as the sexagesimal number 120
        raise ValueError(f"YAML reads this time as the number {value}: write it in quotes, like \"02:00\"")
    if not isinstance(value, str) or not _CLOCK_RE.fullmatch(value):
        raise ValueError(f"invalid time {_shown(str(value))}: use HH:MM on a 24-hour clock, from 00:00 to 23:59")
    return value


def clock_minutes(value: str) -> int:
    """Minutes after midnight of an ``HH:MM`` time."""
    hours, minutes = value.split(":")
    return int(hours) * 60 + int(minutes)


#: a time of day, ``HH:MM`` on a 24-hour clock
ClockTime = Annotated[
    str, BeforeValidator(_check_clock), WithJsonSchema({"type": "string", "pattern": _CLOCK_RE.pattern})
]


def _check_version(value: Any) -> Any:
    if isinstance(value, float):
        raise ValueError(f"YAML reads {value!r} as a number (20.10 becomes 20.1): write the version in quotes")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not _VERSION_RE.fullmatch(value):
        raise ValueError(f"invalid version {_shown(str(value))}: use numbers and dots, like \"20.10\" or \"15\"")
    return value


#: a minimum version such as ``"20.10"`` or ``"15"``
Version = Annotated[
    str, BeforeValidator(_check_version), WithJsonSchema({"type": "string", "pattern": _VERSION_RE.pattern})
]


def _check_env_var(value: str) -> str:
    if not _ENV_VAR_RE.fullmatch(value):
        raise ValueError(f"invalid environment variable name {_shown(value)}: use A-Z, 0-9 and _")
    return value


def _check_email(value: str) -> str:
    if not _EMAIL_RE.fullmatch(value) or len(value) > 254:
        raise ValueError(f"invalid email address {_shown(value)}")
    return value


def _check_timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {_shown(value)}: use an IANA name like Europe/Berlin or UTC") from None
    return value


def _check_weekday(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower()[:3] in WEEKDAYS and len(value.strip()) >= 3:
        day = value.strip().lower()
        full = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
        if day in WEEKDAYS or day in full:
            return day[:3]
    raise ValueError(f"invalid day {_shown(str(value))}: use {', '.join(WEEKDAYS)}")


EnvVar = Annotated[str, AfterValidator(_check_env_var)]
Email = Annotated[str, AfterValidator(_check_email)]
Weekday = Annotated[str, BeforeValidator(_check_weekday), WithJsonSchema({"enum": list(WEEKDAYS)})]
_Days = Annotated[int, Field(strict=True, ge=1, le=3650)]


def _unique(values: list[Any], what: str) -> None:
    seen = [v for i, v in enumerate(values) if v in values[:i]]
    if seen:
        raise ValueError(f"{what} {seen[0]!r} is given twice")


# ---------------------------------------------------------------- 2 System requirements


class HardwareRequirements(StrictModel):
    """2.1 minimum hardware of each Docker host."""

    cpu_cores: Annotated[_Count, Field(ge=1, le=4096)] | None = None
    memory_gb: Annotated[float, Field(gt=0, le=1_000_000)] | None = None
    disk_gb: Annotated[float, Field(gt=0, le=1_000_000_000)] | None = None


class SoftwareRequirements(StrictModel):
    """2.2 minimum versions: the Docker engine, the database server of ``backup.database.service``."""

    docker: Version | None = None
    postgres: Version | None = None


class PortRequirement(StrictModel):
    """2.3 a service that must accept TCP connections on a port."""

    service: Name
    port: Annotated[_Count, Field(ge=1, le=65535)]


class RequirementsConfig(StrictModel):
    """2 System requirements; ``opsbot check --live`` holds every environment against them."""

    hardware: HardwareRequirements = Field(default_factory=HardwareRequirements)
    software: SoftwareRequirements = Field(default_factory=SoftwareRequirements)
    ports: list[PortRequirement] = []


# ---------------------------------------------------------------- 6.3 Monitoring


class PrometheusConfig(StrictModel):
    """The Prometheus HTTP API: an instant query per metric, each must give one number."""

    url: HttpUrl
    queries: Annotated[dict[MetricName, Text], Field(min_length=1)]
    timeout: Duration = 5.0


class CloudWatchQuery(StrictModel):
    """One metric through CloudWatch ``GetMetricData``."""

    namespace: Text
    metric: Text
    dimensions: dict[str, str] = {}
    stat: str = "Average"
    period: Annotated[_Count, Field(ge=1, le=86400)] = 300

    @model_validator(mode="after")
    def _checked(self) -> Self:
        if not _STAT_RE.fullmatch(self.stat):
            raise ValueError(
                f"invalid stat {_shown(self.stat)}: use Average, Sum, Minimum, Maximum, SampleCount or pNN (p95)"
            )
        if any(not name.strip() or not value.strip() for name, value in self.dimensions.items()):
            raise ValueError("dimension names and values must not be empty")
        if self.period not in (1, 5, 10, 30) and self.period % 60:
            raise ValueError(f"period {self.period} must be 1, 5, 10, 30 or a multiple of 60 seconds")
        return self


class CloudWatchConfig(StrictModel):
    """CloudWatch as a metrics source (the usual AWS variables apply)."""

    region: Annotated[str, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")] | None = None
    queries: Annotated[dict[MetricName, CloudWatchQuery], Field(min_length=1)]
    timeout: Duration = 10.0


class MonitoringConfig(StrictModel):
    """Where the numbers of ``thresholds`` come from (6.3, the "Tool" column)."""

    prometheus: PrometheusConfig | None = None
    cloudwatch: CloudWatchConfig | None = None

    @model_validator(mode="after")
    def _one_source_per_metric(self) -> Self:
        if self.prometheus and self.cloudwatch:
            both = sorted(set(self.prometheus.queries) & set(self.cloudwatch.queries))
            if both:
                raise ValueError(f"{both[0]} is measured by both prometheus and cloudwatch: keep one")
        return self


# ---------------------------------------------------------------- 6.3 Alerting


Notifier = Literal["pagerduty", "slack", "email"]


class SeverityRoute(StrictModel):
    """Where one severity goes and how soon a person must act."""

    to: Annotated[list[Notifier], Field(min_length=1)]
    escalate_after: Duration | None = None
    digest_at: ClockTime | None = None

    @model_validator(mode="after")
    def _checked(self) -> Self:
        _unique(list(self.to), "notifier")
        if self.digest_at is not None and "email" not in self.to:
            raise ValueError("digest_at is the time of the email digest: it needs email in to")
        return self


class PagerDutyConfig(StrictModel):
    """PagerDuty Events API v2; the routing key is read from the named environment variable."""

    routing_key_env: EnvVar


class EmailConfig(StrictModel):
    """SMTP for the info digest; the password comes from ``SMTP_PASSWORD``, never from ops.yml."""

    smtp_url: str
    from_: Annotated[Email, Field(alias="from")]
    to: Annotated[list[Email], Field(min_length=1)]

    @model_validator(mode="after")
    def _checked(self) -> Self:
        scheme, sep, rest = self.smtp_url.partition("://")
        host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
        if not sep or scheme not in ("smtp", "smtps") or not host or any(c.isspace() for c in self.smtp_url):
            raise ValueError(f"smtp_url must be smtp://host:port or smtps://host:port, got {_shown(self.smtp_url)}")
        userinfo = rest.split("/", 1)[0].rpartition("@")[0]
        if ":" in userinfo:
            raise ValueError("smtp_url must not carry a password: put it in the SMTP_PASSWORD environment variable")
        _unique(list(self.to), "address")
        return self


class AlertingConfig(StrictModel):
    """6.3 Alerting: each severity's route, repeats, the time zone of digests and windows."""

    critical: SeverityRoute | None = None
    warning: SeverityRoute | None = None
    info: SeverityRoute | None = None
    repeat_after: Duration = 4 * 3600.0
    timezone: Annotated[str, AfterValidator(_check_timezone)] = "UTC"
    pagerduty: PagerDutyConfig | None = None
    email: EmailConfig | None = None

    @model_validator(mode="after")
    def _notifiers_configured(self) -> Self:
        for severity in ("critical", "warning", "info"):
            route: SeverityRoute | None = getattr(self, severity)
            if route is None:
                continue
            if "pagerduty" in route.to and self.pagerduty is None:
                raise ValueError(f"{severity} goes to pagerduty: add alerting.pagerduty (routing_key_env)")
            if "email" in route.to and self.email is None:
                raise ValueError(f"{severity} goes to email: add alerting.email (smtp_url, from, to)")
        return self


# ---------------------------------------------------------------- 7.3 Maintenance


class MaintenanceWindow(StrictModel):
    """A weekly window: on these days from ``from`` to ``to`` (past midnight when ``to`` is earlier)."""

    days: Annotated[list[Weekday], Field(min_length=1)]
    from_: Annotated[ClockTime, Field(alias="from")]
    to: ClockTime

    @model_validator(mode="after")
    def _checked(self) -> Self:
        _unique(list(self.days), "day")
        if self.from_ == self.to:
            raise ValueError(f"the window starts and ends at {self.to}: give a window of at least a minute")
        return self

    def spans(self) -> list[tuple[int, int]]:
        """The window as minute ranges ``[start, end)`` of the week (Monday 00:00 = 0), end may pass the week."""
        start, end = clock_minutes(self.from_), clock_minutes(self.to)
        length = end - start if end > start else end + 1440 - start
        return [(WEEKDAYS.index(day) * 1440 + start, WEEKDAYS.index(day) * 1440 + start + length) for day in self.days]


class MaintenanceTask(StrictModel):
    """A scheduled maintenance task, run by the scheduler inside the environment's window."""

    task: Literal["db_maintenance", "cert_check", "image_age"]
    env: Name
    every: Duration
    command: Argv | None = None
    timeout: Duration | None = None
    warning_days: _Days | None = None
    critical_days: _Days | None = None
    allow_self_signed: Annotated[bool, Field(strict=True)] = False

    @model_validator(mode="after")
    def _checked(self) -> Self:
        if self.task == "db_maintenance":
            if self.command is None:
                raise ValueError("db_maintenance needs a command (argv), like [vacuumdb, --all, --analyze]")
            extra = [k for k in ("warning_days", "critical_days") if getattr(self, k) is not None]
            if extra or self.allow_self_signed:
                raise ValueError(f"db_maintenance takes no {(extra or ['allow_self_signed'])[0]}")
            return self
        if self.command is not None:
            raise ValueError(f"{self.task} runs no command: remove command")
        if self.timeout is not None:
            raise ValueError(f"{self.task} takes no timeout")
        if self.task == "image_age" and self.allow_self_signed:
            raise ValueError("allow_self_signed belongs to cert_check")
        defaults = {"cert_check": (21, 7), "image_age": (30, 90)}[self.task]
        warning = self.warning_days if self.warning_days is not None else defaults[0]
        critical = self.critical_days if self.critical_days is not None else defaults[1]
        if self.task == "cert_check" and not warning > critical:
            raise ValueError(
                f"warning_days ({warning}) must be more days before expiry than critical_days ({critical})"
            )
        if self.task == "image_age" and not warning < critical:
            raise ValueError(f"warning_days ({warning}) must be a younger age than critical_days ({critical})")
        self.warning_days, self.critical_days = warning, critical
        return self


class MaintenanceConfig(StrictModel):
    """7.3 Scheduled maintenance: windows per environment, and the tasks run in them."""

    windows: dict[Name, list[MaintenanceWindow]] = {}
    tasks: list[MaintenanceTask] = []


# ---------------------------------------------------------------- 7.4 Security maintenance


class SecurityDuty(StrictModel):
    """A 7.4 duty: reminded every ``every`` and recorded when done, or a gate run ``before: deploy``."""

    item: Name
    title: Text
    every: Duration | None = None
    before: Literal["deploy"] | None = None
    command: Argv | None = None
    timeout: Duration = 600.0

    @model_validator(mode="after")
    def _checked(self) -> Self:
        if self.every is None and self.before is None:
            raise ValueError("give every (a reminder period, like 30d) or before: deploy (a gate)")
        if self.command is not None and self.before is None:
            raise ValueError("a command is a gate: it needs before: deploy")
        if self.before is not None and self.command is None:
            raise ValueError("before: deploy needs a command (argv) to run in a one-off container of the new image")
        return self


# ---------------------------------------------------------------- 7.1 File storage backup


def _check_s3_url(value: str) -> str:
    if not value.startswith("s3://"):
        raise ValueError(f"must be s3://bucket/prefix/, got {_shown(value)}")
    bucket, _, prefix = value[len("s3://") :].partition("/")
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
        raise ValueError(f"invalid S3 bucket name {_shown(bucket)} in {_shown(value)} (s3://bucket/prefix/)")
    if any(c.isspace() for c in prefix) or "//" in prefix or prefix.startswith("/"):
        raise ValueError(f"invalid S3 prefix in {_shown(value)} (s3://bucket/prefix/)")
    return value if value.endswith("/") or not prefix else value + "/"


S3Url = Annotated[str, AfterValidator(_check_s3_url), WithJsonSchema({"type": "string", "pattern": "^s3://"})]


class FilesBackupConfig(StrictModel):
    """7.1 File storage backup: every object of ``from`` copied under ``to`` when missing or changed."""

    from_: Annotated[S3Url, Field(alias="from")]
    to: S3Url

    @model_validator(mode="after")
    def _apart(self) -> Self:
        a, b = self.from_.rstrip("/") + "/", self.to.rstrip("/") + "/"
        if a.startswith(b) or b.startswith(a):
            raise ValueError(f"from and to must not overlap ({self.from_} and {self.to}): a copy would copy itself")
        return self
