"""The models of ops.yml (``spec/ops.example.yml``): strict pydantic models of every section.

Every model forbids unknown keys, so a typo is an error and never a silently ignored setting. The
checks that look across sections (a startup stage naming a service of the environment, a schedule
naming an environment, ...) live in :mod:`bot.config`, which also reads the file.
"""

from __future__ import annotations

import math
import re
import shlex
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from adapters.errors import ConfigError, UserError

#: diagnostics that need no configuration; ``troubleshooting[].diagnose`` may name these
BUILTIN_DIAGNOSTICS: tuple[str, ...] = ("containers", "health", "logs", "stats", "disk")
#: the roles of ``access``, least to most powerful
ROLES: tuple[str, ...] = ("viewers", "operators", "approvers", "admins")
#: names of environments, services, projects and diagnostics
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
#: Slack user ids (U..., W...) and user group ids (S...)
SLACK_ID_PATTERN = r"^[UWS][A-Z0-9]{2,}$"
#: a context key: ``bot.config.validate_config`` has already run the cross-section checks
CROSS_CHECKED = "opsbot_cross_checked"

_NAME_RE = re.compile(NAME_PATTERN)
_SLACK_ID_RE = re.compile(SLACK_ID_PATTERN)
_CHANNEL_RE = re.compile(r"^(?:[CGD][A-Z0-9]{2,}|#[a-z0-9][a-z0-9_-]{0,79})$")
_IMAGE_RE = re.compile(
    r"^(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:[._-]+[a-z0-9]+)*(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*$"
)
_DOCKER_SCHEMES = ("unix", "tcp", "ssh", "npipe", "http", "https")

# ---------------------------------------------------------------- durations

_UNITS: dict[str, float] = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_UNIT_ORDER = list(_UNITS)
_DURATION_RE = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+")
_PART_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_HINT = "use a number with a unit (ms, s, m, h, d), like 500ms, 5s, 15m, 1h, 7d or 1h30m"


def parse_duration(value: str | int | float) -> float:
    """Seconds in ``value``: ``"500ms"``, ``"5s"``, ``"15m"``, ``"1h30m"``, ``"7d"``, or a number of seconds.

    Raises ``ValueError`` with a message a person can act on when ``value`` is not a duration or is
    not above zero.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"invalid duration {value!r}: {_DURATION_HINT}")
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValueError(f"empty duration: {_DURATION_HINT}")
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            raise ValueError(f"invalid duration {value!r}: the unit is missing ({text}s? {text}m?)")
        if not _DURATION_RE.fullmatch(text):
            raise ValueError(f"invalid duration {value!r}: {_DURATION_HINT}")
        seconds = 0.0
        last = -1
        for number, unit in _PART_RE.findall(text):
            rank = _UNIT_ORDER.index(unit)
            if rank <= last:
                raise ValueError(f"invalid duration {value!r}: give each unit once, largest first (1h30m)")
            last = rank
            seconds += float(number) * _UNITS[unit]
    else:
        seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"invalid duration {value!r}: must be greater than 0")
    return seconds


#: a duration in seconds; written ``500ms``, ``5s``, ``15m``, ``1h``, ``7d``, ``1h30m`` or a number of seconds
Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$"},
                {"type": "number", "exclusiveMinimum": 0},
            ],
            "description": "a duration: 500ms, 5s, 15m, 1h, 7d, 1h30m, or a number of seconds",
        }
    ),
]

# ---------------------------------------------------------------- small types


def _shown(value: str, limit: int = 60) -> str:
    clean = "".join(c if c.isprintable() else "?" for c in value)
    return repr(clean if len(clean) <= limit else clean[:limit] + "...")


def check_name(value: str) -> str:
    """``value`` if it is a valid name (environment, service, project, diagnostic); else ``ValueError``."""
    if not _NAME_RE.fullmatch(value):
        raise ValueError(
            f"invalid name {_shown(value)}: use letters, digits, '.', '_' and '-', starting with a letter "
            "or digit, at most 63 characters"
        )
    return value


def _check_slack_id(value: str) -> str:
    if _SLACK_ID_RE.fullmatch(value):
        return value
    mention = re.fullmatch(r"<[@!](?:subteam\^)?([UWS][A-Z0-9]{2,})(?:\|[^>]*)?>", value)
    hint = f" (write {mention.group(1)})" if mention else ""
    raise ValueError(
        f"invalid Slack id {_shown(value)}{hint}: use a user id (U..., W...) or a user group id (S...), "
        "not a name or a mention"
    )


def _check_channel(value: str) -> str:
    if not _CHANNEL_RE.fullmatch(value):
        raise ValueError(f"invalid Slack channel {_shown(value)}: use a channel id like C0123ABCD")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _number_to_str(value: Any) -> Any:
    """YAML reads ``504`` as a number; where text is expected, take it as the text ``"504"``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _int_to_str(value: Any) -> Any:
    if isinstance(value, float):
        raise ValueError(f"YAML reads {value!r} as a number: write it in quotes")
    return _number_to_str(value)


def _no_shell_string(value: Any) -> Any:
    if isinstance(value, str):
        try:
            hint = "; write it as [" + ", ".join(shlex.split(value)) + "]"
        except ValueError:
            hint = ""
        raise ValueError(f"must be a list of arguments (argv), not a shell string{hint}")
    return value


def _check_argv(value: list[str]) -> list[str]:
    if not value[0].strip():
        raise ValueError("the program (first argument) must not be empty")
    if any("\x00" in arg for arg in value):
        raise ValueError("arguments must not contain NUL characters")
    return value


def _check_http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in value):
        raise ValueError(f"must be an http:// or https:// URL, got {_shown(value)}")
    return value


def _check_docker_host(value: str) -> str:
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in _DOCKER_SCHEMES or not rest:
        raise ValueError(
            f"invalid docker_host {_shown(value)}: use unix:///path/docker.sock, tcp://host:port or ssh://user@host"
        )
    if scheme == "unix" and not rest.startswith("/"):
        raise ValueError(f"invalid docker_host {_shown(value)}: a unix socket needs an absolute path (unix:///...)")
    return value


def _check_image(value: str) -> str:
    last = value.rsplit("/", 1)[-1]
    if "@" in value:
        raise ValueError(f"image {_shown(value)} must not carry a digest: deploy adds the version")
    if ":" in last:
        raise ValueError(
            f"image {_shown(value)} must not carry a tag: deploy adds the version (image shop/api, version "
            "1.4.2 -> shop/api:1.4.2)"
        )
    if not _IMAGE_RE.fullmatch(value):
        raise ValueError(f"invalid image name {_shown(value)}: use lowercase letters, digits, '.', '_', '-', '/'")
    return value


#: a name: letters, digits, ``.``, ``_``, ``-``, starting with a letter or digit, at most 63 characters
Name = Annotated[str, AfterValidator(check_name), WithJsonSchema({"type": "string", "pattern": NAME_PATTERN})]
#: a Slack user id (U..., W...) or user group id (S...)
SlackId = Annotated[
    str, AfterValidator(_check_slack_id), WithJsonSchema({"type": "string", "pattern": SLACK_ID_PATTERN})
]
#: a non-empty line of text
Text = Annotated[str, AfterValidator(_not_blank), WithJsonSchema({"type": "string", "minLength": 1})]
#: text that YAML may have read as a number (``504``, ``1``)
Label = Annotated[
    str,
    BeforeValidator(_number_to_str),
    AfterValidator(_not_blank),
    WithJsonSchema({"anyOf": [{"type": "string", "minLength": 1}, {"type": "number"}]}),
]
_Arg = Annotated[str, BeforeValidator(_int_to_str)]
#: a command as a list of arguments (argv), never a shell string
Argv = Annotated[
    list[_Arg],
    BeforeValidator(_no_shell_string),
    Field(min_length=1),
    AfterValidator(_check_argv),
    WithJsonSchema({"type": "array", "items": {"type": "string"}, "minItems": 1}),
]
#: an http(s) URL
HttpUrl = Annotated[str, AfterValidator(_check_http_url), WithJsonSchema({"type": "string", "format": "uri"})]
_Count = Annotated[int, Field(strict=True)]


class _Model(BaseModel):
    """Base of every section: unknown keys are errors; no NaN or infinity."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# ---------------------------------------------------------------- environments


class ServiceConfig(_Model):
    """One service of an environment (the Compose service / the stack's service)."""

    image: Annotated[str, AfterValidator(_check_image)] | None = None
    deploy: Annotated[bool, Field(strict=True)] = False
    stop_timeout: Duration | None = None

    @field_validator("deploy")
    @classmethod
    def _deploy_needs_image(cls, deploy: bool, info: ValidationInfo) -> bool:
        if deploy and "image" in info.data and info.data["image"] is None:
            raise ValueError("deploy: true needs an image (the version is deployed as <image>:<version>)")
        return deploy


class RuntimeConfig(_Model):
    """Where an environment's services run."""

    kind: Literal["compose", "swarm"] = "compose"
    docker_host: Annotated[str, AfterValidator(_check_docker_host)] = "unix:///var/run/docker.sock"
    project: Name


class ApprovalConfig(_Model):
    """How many approvers a change needs, and how long a request waits for them."""

    required: Annotated[_Count, Field(ge=0, le=10)] = 1
    expires_in: Duration = 900.0


class HealthCheckConfig(_Model):
    """One post-change verification: GET ``url`` (``{url}`` expanded), 2xx, and ``expect`` in the body."""

    name: Text
    url: Text
    expect: dict[str, Any] | None = None
    timeout: Duration = 5.0


class MigrateConfig(_Model):
    """The migration, run in a one-off container of the new image before services are replaced."""

    service: Name
    command: Argv


class DatabaseConfig(_Model):
    """How to dump (to stdout) and restore (from stdin) the database."""

    service: Name | None = None
    dump: Argv
    restore: Argv


class BackupConfig(_Model):
    """Where backups go and how long they are kept."""

    store: str
    retention_days: Annotated[_Count, Field(ge=1)] = 30
    database: DatabaseConfig

    @field_validator("store")
    @classmethod
    def _check_store(cls, value: str) -> str:
        if value.startswith("s3://"):
            bucket, _, prefix = value[len("s3://") :].partition("/")
            if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
                raise ValueError(f"invalid S3 bucket name {bucket!r} in {value!r} (s3://bucket/prefix/)")
            if any(c.isspace() for c in prefix) or "//" in prefix or prefix.startswith("/"):
                raise ValueError(f"invalid S3 prefix in {value!r} (s3://bucket/prefix/)")
        elif value.startswith("file://"):
            path = value[len("file://") :]
            if not path.startswith("/"):
                raise ValueError(f"a file store needs an absolute path: file:///var/backups/opsbot/, not {value!r}")
            if "/../" in path + "/" or "\x00" in path:
                raise ValueError(f"invalid path in {value!r}")
        else:
            raise ValueError(f"must be s3://bucket/prefix/ or file:///absolute/path/, got {value!r}")
        return value if value.endswith("/") else value + "/"


class DiagnosticConfig(_Model):
    """A diagnostic command that is not built in, run in a service's container."""

    service: Name
    command: Argv
    timeout: Duration = 30.0


class AccessConfig(_Model):
    """Who may do what: Slack user ids and user group ids per role."""

    viewers: list[SlackId] = []
    operators: list[SlackId] = []
    approvers: list[SlackId] = []
    admins: list[SlackId] = []


_Stage = Annotated[list[Name], Field(min_length=1)]


def _stages(value: Any) -> Any:
    if isinstance(value, str) or (isinstance(value, list) and any(isinstance(s, str) for s in value)):
        raise ValueError("must be a list of stages, each a list of service names: [[postgres], [api, worker]]")
    return value


_Stages = Annotated[list[_Stage], BeforeValidator(_stages)]


class EnvironmentConfig(_Model):
    """One deployment environment (guide 5.1)."""

    url: HttpUrl | None = None
    purpose: str = ""
    runtime: RuntimeConfig
    approval: ApprovalConfig = Field(default_factory=ApprovalConfig)
    services: Annotated[dict[Name, ServiceConfig], Field(min_length=1)]
    health_checks: list[HealthCheckConfig] = []
    startup: _Stages = []
    shutdown: _Stages = []
    migrate: MigrateConfig | None = None
    backup: BackupConfig | None = None
    diagnostics: dict[Name, DiagnosticConfig] = {}
    access: AccessConfig | None = None

    def expand(self, url_template: str) -> str:
        """``url_template`` with ``{url}`` replaced by this environment's ``url``."""
        if "{url}" not in url_template:
            return url_template
        if self.url is None:
            raise ConfigError(f"{url_template!r} uses {{url}} but the environment has no url")
        return url_template.replace("{url}/", self.url.rstrip("/") + "/").replace("{url}", self.url)

    @property
    def deploy_services(self) -> list[str]:
        """The services that ``deploy`` and ``rollback`` replace, in the order of ops.yml."""
        return [name for name, service in self.services.items() if service.deploy]


# ---------------------------------------------------------------- the rest


class Threshold(_Model):
    """A metric's warning and critical levels."""

    warning: Annotated[float, Field(ge=0)]
    critical: Annotated[float, Field(ge=0)]

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if not self.warning < self.critical:
            raise ValueError(f"warning ({self.warning:g}) must be below critical ({self.critical:g})")
        return self


class PercentThreshold(Threshold):
    """A threshold on a percentage that cannot exceed 100."""

    warning: Annotated[float, Field(ge=0, le=100)]
    critical: Annotated[float, Field(ge=0, le=100)]


class Thresholds(_Model):
    """Warning and critical levels of the monitored metrics (guide 6.3)."""

    cpu_percent: Threshold = Field(default_factory=lambda: Threshold(warning=70, critical=90))
    memory_percent: PercentThreshold = Field(default_factory=lambda: PercentThreshold(warning=80, critical=95))
    response_time_ms: Threshold = Field(default_factory=lambda: Threshold(warning=500, critical=2000))
    error_rate_percent: PercentThreshold = Field(default_factory=lambda: PercentThreshold(warning=1, critical=5))
    disk_percent: PercentThreshold = Field(default_factory=lambda: PercentThreshold(warning=70, critical=90))


class TroubleshootingEntry(_Model):
    """A common issue (guide 8.1): how to recognise it, what fixes it, what to look at."""

    issue: Text
    symptoms: Annotated[list[Label], Field(min_length=1)]
    resolution: Text
    diagnose: list[Name] = []


class EscalationLevel(_Model):
    """One step of the escalation path (guide 8.3)."""

    level: Label
    contact: Text
    when: Text


class ScheduleConfig(_Model):
    """A task the bot runs by itself every so often (guide 6.1, 7.3)."""

    task: Literal["health_check", "verify_backup", "backup"]
    env: Name
    every: Duration


class SlackConfig(_Model):
    """Slack settings: where alerts go, by severity."""

    alert_channels: dict[
        Literal["critical", "warning", "info"],
        Annotated[str, AfterValidator(_check_channel)],
    ] = {}


class OpsConfig(_Model):
    """The whole ops.yml: the Product Operation Guide as code.

    Top-level keys starting with ``x-`` are ignored, so that they can hold YAML anchors.
    """

    model_config = ConfigDict(json_schema_extra={"patternProperties": {"^x-": {}}})

    project: Name
    default_environment: Name | None = None
    slack: SlackConfig = Field(default_factory=SlackConfig)
    access: AccessConfig = Field(default_factory=AccessConfig)
    environments: Annotated[dict[Name, EnvironmentConfig], Field(min_length=1)]
    thresholds: Thresholds = Field(default_factory=Thresholds)
    troubleshooting: list[TroubleshootingEntry] = []
    escalation: list[EscalationLevel] = []
    schedules: list[ScheduleConfig] = []

    @model_validator(mode="before")
    @classmethod
    def _drop_extension_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("x-"))}
        return data

    @model_validator(mode="after")
    def _cross_checks(self, info: ValidationInfo) -> Self:
        if isinstance(info.context, dict) and info.context.get(CROSS_CHECKED):
            return self
        from bot.config import cross_check  # the checks live there; it imports this module

        problems = cross_check(self.model_dump())
        if problems:
            raise ValueError("; ".join(str(p) for p in problems))
        return self

    @property
    def default_env_name(self) -> str:
        """``default_environment``, or the first environment when it is not set."""
        return self.default_environment or next(iter(self.environments))

    def env(self, name: str | None) -> tuple[str, EnvironmentConfig]:
        """The environment ``name`` (None: the default one) with its name; ``UserError`` if unknown."""
        key = self.default_env_name if name is None else name
        found = self.environments.get(key)
        if found is None:
            known = ", ".join(self.environments)
            raise UserError(f"unknown environment {_shown(key, 40)} (known: {known})")
        return key, found

    def access_for(self, env_name: str | None) -> AccessConfig:
        """The access lists that apply in ``env_name`` (None: the top-level ``access``).

        An environment's ``access`` overrides the top-level one role by role: the roles it names
        replace the top-level lists; the roles it leaves out are inherited.
        """
        if env_name is None:
            return self.access
        _, env = self.env(env_name)
        if env.access is None:
            return self.access
        given = env.access.model_fields_set
        return AccessConfig.model_validate(
            {role: list(getattr(env.access if role in given else self.access, role)) for role in ROLES}
        )
