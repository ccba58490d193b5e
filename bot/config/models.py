"""The models of ops.yml (``spec/ops.example.yml``): strict pydantic models of every section.

Every model forbids unknown keys, so a typo is an error and never a silently ignored setting. The
checks that look across sections (a startup stage naming a service of the environment, a schedule
naming an environment, ...) live in :mod:`bot.config.checks`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from adapters.errors import ConfigError, UserError
from bot.config.checks import cross_check
from bot.config.guide import (
    AlertingConfig,
    FilesBackupConfig,
    MaintenanceConfig,
    MonitoringConfig,
    RequirementsConfig,
    SecurityDuty,
    StrictModel,
)
from bot.config.types import (
    CROSS_CHECKED,
    ROLES,
    Argv,
    Duration,
    HttpUrl,
    Label,
    Name,
    SlackId,
    Text,
    _check_channel,
    _check_docker_host,
    _check_image,
    _Count,
    _shown,
)

# ---------------------------------------------------------------- environments


class ServiceConfig(StrictModel):
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


class RuntimeConfig(StrictModel):
    """Where an environment's services run."""

    kind: Literal["compose", "swarm"] = "compose"
    docker_host: Annotated[str, AfterValidator(_check_docker_host)] = "unix:///var/run/docker.sock"
    project: Name


class ApprovalConfig(StrictModel):
    """How many approvers a change needs, and how long a request waits for them."""

    required: Annotated[_Count, Field(ge=0, le=10)] = 1
    expires_in: Duration = 900.0


class HealthCheckConfig(StrictModel):
    """One post-change verification: GET ``url`` (``{url}`` expanded), 2xx, and ``expect`` in the body."""

    name: Text
    url: Text
    expect: dict[str, Any] | None = None
    timeout: Duration = 5.0


class MigrateConfig(StrictModel):
    """The migration, run in a one-off container of the new image before services are replaced."""

    service: Name
    command: Argv


class DatabaseConfig(StrictModel):
    """How to dump (to stdout) and restore (from stdin) the database."""

    service: Name | None = None
    dump: Argv
    restore: Argv


class BackupConfig(StrictModel):
    """Where backups go and how long they are kept."""

    store: str
    retention_days: Annotated[_Count, Field(ge=1)] = 30
    #: how new backups are compressed: zstd (``.sql.zst``) or gzip (``.sql.gz``); both are always readable
    compression: Literal["zstd", "gzip"] = "zstd"
    database: DatabaseConfig
    files: FilesBackupConfig | None = None

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


class DiagnosticConfig(StrictModel):
    """A diagnostic command that is not built in, run in a service's container."""

    service: Name
    command: Argv
    timeout: Duration = 30.0


class AccessConfig(StrictModel):
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


class EnvironmentConfig(StrictModel):
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


class Threshold(StrictModel):
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


class Thresholds(StrictModel):
    """Warning and critical levels of the monitored metrics (guide 6.3)."""

    cpu_percent: Threshold = Field(default_factory=lambda: Threshold(warning=70, critical=90))
    memory_percent: PercentThreshold = Field(default_factory=lambda: PercentThreshold(warning=80, critical=95))
    response_time_ms: Threshold = Field(default_factory=lambda: Threshold(warning=500, critical=2000))
    error_rate_percent: PercentThreshold = Field(default_factory=lambda: PercentThreshold(warning=1, critical=5))
    disk_percent: PercentThreshold = Field(default_factory=lambda: PercentThreshold(warning=70, critical=90))


class TroubleshootingEntry(StrictModel):
    """A common issue (guide 8.1): how to recognise it, what fixes it, what to look at."""

    issue: Text
    symptoms: Annotated[list[Label], Field(min_length=1)]
    resolution: Text
    diagnose: list[Name] = []


class EscalationLevel(StrictModel):
    """One step of the escalation path (guide 8.3)."""

    level: Label
    contact: Text
    when: Text


class ScheduleConfig(StrictModel):
    """A task the bot runs by itself every so often (guide 6.1, 7.3)."""

    #: ``backup_files`` runs ``backup <env> --files`` (the environment needs ``backup.files``)
    task: Literal["health_check", "verify_backup", "backup", "backup_files"]
    env: Name
    every: Duration


class SlackConfig(StrictModel):
    """Slack settings: where alerts go, by severity."""

    alert_channels: dict[
        Literal["critical", "warning", "info"],
        Annotated[str, AfterValidator(_check_channel)],
    ] = {}


class OpsConfig(StrictModel):
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
    requirements: RequirementsConfig | None = None
    monitoring: MonitoringConfig | None = None
    alerting: AlertingConfig | None = None
    maintenance: MaintenanceConfig | None = None
    security_maintenance: list[SecurityDuty] = []

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
        problems = cross_check(self.model_dump(by_alias=True))
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
