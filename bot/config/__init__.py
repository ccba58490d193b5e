"""ops.yml and the process's settings: the strict models, their checks, reading the file, and the redactor.

The lowest layer of bot: may import adapters.errors only; commands, bot.core and the doors import it.
Import the public names from here (``from bot.config import OpsConfig, load_config``).
"""

from bot.config.checks import Problem, cross_check
from bot.config.load import (
    NOT_ACTED_ON,
    InvalidConfig,
    config_json_schema,
    load_config,
    not_acted_on,
    parse_yaml,
    validate_config,
)
from bot.config.models import (
    AccessConfig,
    ApprovalConfig,
    BackupConfig,
    DatabaseConfig,
    DiagnosticConfig,
    EnvironmentConfig,
    EscalationLevel,
    HealthCheckConfig,
    MigrateConfig,
    OpsConfig,
    PercentThreshold,
    RuntimeConfig,
    ScheduleConfig,
    ServiceConfig,
    SlackConfig,
    Threshold,
    Thresholds,
    TroubleshootingEntry,
)
from bot.config.types import BUILTIN_DIAGNOSTICS, NAME_PATTERN, ROLES, Argv, Duration, Name, check_name, parse_duration

__all__ = [
    "BUILTIN_DIAGNOSTICS",
    "NAME_PATTERN",
    "NOT_ACTED_ON",
    "ROLES",
    "AccessConfig",
    "ApprovalConfig",
    "Argv",
    "BackupConfig",
    "DatabaseConfig",
    "DiagnosticConfig",
    "Duration",
    "EnvironmentConfig",
    "EscalationLevel",
    "HealthCheckConfig",
    "InvalidConfig",
    "MigrateConfig",
    "Name",
    "OpsConfig",
    "PercentThreshold",
    "Problem",
    "RuntimeConfig",
    "ScheduleConfig",
    "ServiceConfig",
    "SlackConfig",
    "Threshold",
    "Thresholds",
    "TroubleshootingEntry",
    "check_name",
    "config_json_schema",
    "cross_check",
    "load_config",
    "not_acted_on",
    "parse_duration",
    "parse_yaml",
    "validate_config",
]
