"""ops.yml: read it, validate it, and report every problem with its dotted path.

The models are in :mod:`bot.config_models` and are re-exported here; import them from this module.
``validate_config`` reports all problems at once: the models' own (types, unknown keys, ranges) and
the checks across sections (:func:`cross_check`), each as a :class:`Problem` with a dotted path such
as ``environments.prod.startup.1.0``. ``opsbot check`` prints them; ``load_config`` raises them.
"""

from __future__ import annotations

import difflib
import re
import typing
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import NoneType, UnionType
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ValidationError

from adapters.errors import ConfigError
from bot.config_guide import MaintenanceWindow
from bot.config_models import (
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
from bot.config_types import (
    BUILTIN_DIAGNOSTICS,
    CROSS_CHECKED,
    NAME_PATTERN,
    ROLES,
    Argv,
    Duration,
    Name,
    check_name,
    parse_duration,
)

__all__ = [
    "BUILTIN_DIAGNOSTICS",
    "NAME_PATTERN",
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


@dataclass(frozen=True)
class Problem:
    """One thing wrong with ops.yml: where (dotted path, ``""`` for the whole file) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class InvalidConfig(ConfigError):
    """ops.yml was read but does not validate; ``problems`` holds every problem found."""

    def __init__(self, message: str, problems: list[Problem]) -> None:
        super().__init__(message)
        self.problems = problems


# ---------------------------------------------------------------- checks across sections


def _items(value: Any) -> list[tuple[int, Any]]:
    return list(enumerate(value)) if isinstance(value, list) else []


def _mapping(value: Any) -> dict[Any, Any]:
    return value if isinstance(value, dict) else {}


def _is_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and not any(c.isspace() for c in value)


def _check_environment(name: str, env: dict[Any, Any]) -> list[Problem]:
    out: list[Problem] = []
    at = f"environments.{name}"
    services = env.get("services")
    known = [s for s in services if isinstance(s, str)] if isinstance(services, dict) else None

    def ref(path: str, service: Any) -> None:
        if known is not None and isinstance(service, str) and service not in known:
            out.append(Problem(path, f"unknown service {service!r} (services of {name}: {', '.join(known)})"))

    for seq in ("startup", "shutdown"):
        seen: dict[str, str] = {}
        for i, stage in _items(env.get(seq)):
            for j, service in _items(stage):
                path = f"{at}.{seq}.{i}.{j}"
                ref(path, service)
                if isinstance(service, str) and service in seen:
                    out.append(Problem(path, f"service {service!r} is already in {seq} ({seen[service]})"))
                elif isinstance(service, Hashable):
                    seen.setdefault(str(service), path)
    migrate = _mapping(env.get("migrate"))
    ref(f"{at}.migrate.service", migrate.get("service"))
    target = _mapping(services).get(migrate.get("service"))
    if isinstance(target, dict) and not target.get("image"):
        out.append(
            Problem(
                f"{at}.migrate.service",
                f"migrate runs in the new image of its service: service {migrate['service']!r} has no image",
            )
        )
    ref(f"{at}.backup.database.service", _mapping(_mapping(env.get("backup")).get("database")).get("service"))
    for key, diagnostic in _mapping(env.get("diagnostics")).items():
        ref(f"{at}.diagnostics.{key}.service", _mapping(diagnostic).get("service"))
        if key in BUILTIN_DIAGNOSTICS:
            out.append(Problem(f"{at}.diagnostics.{key}", f"{key!r} is a built-in diagnostic: choose another name"))

    url = env.get("url")
    base_ok = isinstance(url, str) and _is_http_url(url)
    first: dict[str, int] = {}
    for i, check in _items(env.get("health_checks")):
        check = _mapping(check)
        label = check.get("name")
        if isinstance(label, str):
            if label in first:
                out.append(
                    Problem(
                        f"{at}.health_checks.{i}.name",
                        f"duplicate health check name {label!r} (also health_checks.{first[label]})",
                    )
                )
            first.setdefault(label, i)
        template = check.get("url")
        if not isinstance(template, str):
            continue
        path = f"{at}.health_checks.{i}.url"
        if "{url}" in template and url is None:
            out.append(Problem(path, f"uses {{url}} but environment {name} has no url"))
            continue
        if "{url}" in template and not base_ok:
            continue  # the environment's url is reported itself
        expanded = template.replace("{url}", url if isinstance(url, str) else "")
        other = re.search(r"\{[^{}]*\}", expanded)
        if other:
            out.append(Problem(path, f"unknown placeholder {other.group(0)}: only {{url}} is expanded"))
        elif not _is_http_url(expanded):
            out.append(Problem(path, f"must be an http:// or https:// URL, got {expanded!r}"))
    return out


def cross_check(data: Mapping[str, Any]) -> list[Problem]:
    """The checks that look across sections, on ops.yml as read (a mapping).

    They tolerate malformed sections (those are reported by the models) and check what they can.
    """
    out: list[Problem] = []
    envs = _mapping(data.get("environments"))
    known_envs = ", ".join(str(e) for e in envs)
    diagnostics: list[str] = []
    for name, env in envs.items():
        if isinstance(name, str) and isinstance(env, dict):
            out += _check_environment(name, env)
            diagnostics += [d for d in _mapping(env.get("diagnostics")) if isinstance(d, str) and d not in diagnostics]

    default = data.get("default_environment")
    if envs and isinstance(default, str) and default not in envs:
        out.append(Problem("default_environment", f"unknown environment {default!r} (known: {known_envs})"))

    for i, entry in _items(data.get("troubleshooting")):
        for j, diagnostic in _items(_mapping(entry).get("diagnose")):
            if isinstance(diagnostic, str) and diagnostic not in BUILTIN_DIAGNOSTICS and diagnostic not in diagnostics:
                own = f"; from diagnostics: {', '.join(diagnostics)}" if diagnostics else ""
                out.append(
                    Problem(
                        f"troubleshooting.{i}.diagnose.{j}",
                        f"unknown diagnostic {diagnostic!r} (built-in: {', '.join(BUILTIN_DIAGNOSTICS)}{own})",
                    )
                )

    levels: dict[str, int] = {}
    for i, step in _items(data.get("escalation")):
        level = _mapping(step).get("level")
        if isinstance(level, str | int) and not isinstance(level, bool):
            if str(level) in levels:
                out.append(
                    Problem(
                        f"escalation.{i}.level",
                        f"duplicate level {str(level)!r} (also escalation.{levels[str(level)]})",
                    )
                )
            levels.setdefault(str(level), i)

    for i, schedule in _items(data.get("schedules")):
        schedule = _mapping(schedule)
        env_name, task = schedule.get("env"), schedule.get("task")
        if not isinstance(env_name, str) or not envs:
            continue
        if env_name not in envs:
            out.append(Problem(f"schedules.{i}.env", f"unknown environment {env_name!r} (known: {known_envs})"))
        elif (
            task in ("backup", "verify_backup")
            and isinstance(envs[env_name], dict)
            and envs[env_name].get("backup") is None
        ):
            out.append(Problem(f"schedules.{i}.task", f"{task} needs a backup section in environments.{env_name}"))
    out += _check_second_round(data, envs)
    return out


def _overlaps(spans: list[tuple[int, tuple[int, int]]]) -> tuple[int, int] | None:
    """The indexes of two windows whose week spans overlap (a span may run past Sunday midnight)."""
    week = 7 * 1440
    flat = [(i, s, e) for i, (s, e) in spans] + [(i, s - week, e - week) for i, (s, e) in spans]
    for a, (i, s1, e1) in enumerate(flat):
        for j, s2, e2 in flat[a + 1 :]:
            if i != j and s1 < e2 and s2 < e1:
                return (min(i, j), max(i, j))
    return None


def _check_second_round(data: Mapping[str, Any], envs: dict[Any, Any]) -> list[Problem]:
    """Cross-section checks of requirements, alerting, maintenance and security duties."""
    out: list[Problem] = []
    known_envs = ", ".join(str(e) for e in envs)
    all_services = {s for env in envs.values() for s in _mapping(_mapping(env).get("services"))}

    for i, port in _items(_mapping(data.get("requirements")).get("ports")):
        service = _mapping(port).get("service")
        if isinstance(service, str) and all_services and service not in all_services:
            out.append(Problem(f"requirements.ports.{i}.service", f"unknown service {service!r} (in no environment)"))

    alerting = _mapping(data.get("alerting"))
    channels = _mapping(_mapping(data.get("slack")).get("alert_channels"))
    for severity in ("critical", "warning", "info"):
        route = _mapping(alerting.get(severity))
        if "slack" in (route.get("to") or []) and severity not in channels:
            out.append(
                Problem(f"alerting.{severity}.to", f"goes to slack, but slack.alert_channels has no {severity} channel")
            )

    maintenance = _mapping(data.get("maintenance"))
    for env_name, windows in _mapping(maintenance.get("windows")).items():
        at = f"maintenance.windows.{env_name}"
        if envs and isinstance(env_name, str) and env_name not in envs:
            out.append(Problem(at, f"unknown environment {env_name!r} (known: {known_envs})"))
        spans = []
        for j, window in _items(windows):
            try:
                model = MaintenanceWindow.model_validate(window)
            except ValidationError:
                continue  # reported by the models
            spans += [(j, span) for span in model.spans()]
        clash = _overlaps(spans)
        if clash:
            out.append(Problem(f"{at}.{clash[1]}", f"overlaps window {at}.{clash[0]}: join them into one"))
    for i, task in _items(maintenance.get("tasks")):
        task = _mapping(task)
        env_name = task.get("env")
        if not isinstance(env_name, str) or not envs:
            continue
        if env_name not in envs:
            out.append(Problem(f"maintenance.tasks.{i}.env", f"unknown environment {env_name!r} (known: {known_envs})"))
        elif task.get("task") == "db_maintenance":
            database = _mapping(_mapping(_mapping(envs[env_name]).get("backup")).get("database"))
            if not database.get("service"):
                out.append(
                    Problem(
                        f"maintenance.tasks.{i}.task",
                        f"db_maintenance runs in backup.database.service: environments.{env_name} has none",
                    )
                )

    items: dict[str, int] = {}
    for i, duty in _items(data.get("security_maintenance")):
        item = _mapping(duty).get("item")
        if isinstance(item, str):
            if item in items:
                also = f"also security_maintenance.{items[item]}"
                out.append(Problem(f"security_maintenance.{i}.item", f"duplicate item {item!r} ({also})"))
            items.setdefault(item, i)
    return out


#: configured sections whose feature opsbot does not run yet: path -> what it will do. ``opsbot check``
#: names each one present, so that nothing is accepted in silence.
NOT_ACTED_ON: dict[str, str] = {
    "requirements": "the preflight `opsbot check --live` is not built yet",
    "monitoring": "metrics are not measured yet",
    "alerting": "alerts are not routed to PagerDuty or email and not escalated yet",
    "maintenance": "windows are not enforced and tasks are not run yet",
    "security_maintenance": "duties are not reminded, recorded or enforced yet",
    "backup.files": "file-storage backups (`backup <env> --files`) are not built yet",
}


def not_acted_on(config: OpsConfig) -> list[Problem]:
    """The configured keys of ``config`` that are read and validated but not acted on yet."""
    present = {
        "requirements": config.requirements is not None,
        "monitoring": config.monitoring is not None,
        "alerting": config.alerting is not None,
        "maintenance": config.maintenance is not None,
        "security_maintenance": bool(config.security_maintenance),
    }
    out = [Problem(key, NOT_ACTED_ON[key]) for key, given in present.items() if given and key in NOT_ACTED_ON]
    if "backup.files" in NOT_ACTED_ON:
        for name, env in config.environments.items():
            if env.backup is not None and env.backup.files is not None:
                out.append(Problem(f"environments.{name}.backup.files", NOT_ACTED_ON["backup.files"]))
    return out


# ---------------------------------------------------------------- pydantic errors as problems


def _unwrap(tp: Any) -> Any:
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, UnionType):
            rest = [a for a in typing.get_args(tp) if a is not NoneType]
            if len(rest) != 1:
                return tp
            tp = rest[0]
        else:
            return tp


def _model_at(loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model class that the value at ``loc`` (a pydantic error location) is validated against."""
    tp: Any = OpsConfig
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(part))
            if field is None:
                return None
            tp = field.annotation
        elif typing.get_origin(tp) in (list, dict):
            tp = typing.get_args(tp)[-1]
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _message(error: Mapping[str, Any]) -> str:
    kind, loc, ctx = error["type"], error["loc"], error.get("ctx") or {}
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])
    if kind == "extra_forbidden":
        key = str(loc[-1])
        model = _model_at([p for p in loc[:-1] if p != "[key]"])
        allowed = list(model.model_fields) if model else []
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        if close:
            return f"unknown key {key!r} (did you mean {close[0]!r}?)"
        return f"unknown key {key!r}" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
    if kind == "missing":
        return "required, but missing"
    if kind == "too_short" and ctx.get("min_length") == 1:
        return "must not be empty"
    msg = str(error["msg"])
    msg = msg[0].lower() + msg[1:] if msg else msg
    value = error.get("input")
    if isinstance(value, str | int | float | bool | NoneType) and len(repr(value)) <= 60:
        msg += f" (got {value!r})"
    return msg


def _problems(exc: ValidationError) -> list[Problem]:
    out = []
    for error in exc.errors(include_url=False):
        path = ".".join(str(p) for p in error["loc"] if p != "[key]")
        out.append(Problem(path, _message(error)))
    return out


# ---------------------------------------------------------------- public entry points


def validate_config(data: Any) -> tuple[OpsConfig | None, list[Problem]]:
    """``data`` (ops.yml as read) as an ``OpsConfig``, or None and every problem found."""
    if not isinstance(data, Mapping):
        if data is None:
            return None, [Problem("", "the file is empty: it needs at least project: and environments:")]
        kind = type(data).__name__
        return None, [Problem("", f"the top level must be a mapping (project:, environments:, ...), not a {kind}")]
    problems = cross_check(data)
    try:
        config = OpsConfig.model_validate(dict(data), context={CROSS_CHECKED: True})
    except ValidationError as exc:
        problems = _problems(exc) + problems
        config = None
    unique = list(dict.fromkeys(problems))
    return (None, unique) if unique else (config, [])


class _DuplicateKey(yaml.MarkedYAMLError):
    """A mapping names the same key twice."""


class _Loader(yaml.SafeLoader):
    """The safe loader, but a key given twice in one mapping is an error (a silent override is a trap)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Mark] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, Hashable):
                if key in seen:
                    raise _DuplicateKey(
                        problem=f"duplicate key {key!r} (first on line {seen[key].line + 1})",
                        problem_mark=key_node.start_mark,
                    )
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, source: str = "ops.yml") -> Any:
    """``text`` read as YAML (safe, no duplicate keys); ``ConfigError`` with line and column otherwise."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        what = ": ".join(str(p) for p in (exc.context, exc.problem) if p)
        kind = "" if isinstance(exc, _DuplicateKey) else "YAML syntax error: "
        raise ConfigError(f"{where}: {kind}{what}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: YAML syntax error: {exc}") from exc


def load_config(path: str | Path) -> OpsConfig:
    """Read and validate ops.yml at ``path``; ``ConfigError`` (``InvalidConfig``) with every problem."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such file (set OPSBOT_CONFIG or --config)") from None
    except IsADirectoryError:
        raise ConfigError(f"{file}: is a directory, not an ops.yml file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot be read ({exc.strerror or exc})") from None
    config, problems = validate_config(parse_yaml(text, str(file)))
    if config is None:
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        lines = "\n".join(str(p) for p in problems)
        raise InvalidConfig(f"{file} is not valid ({count}):\n{lines}", problems)
    return config


def config_json_schema() -> dict[str, Any]:
    """The JSON Schema of ops.yml, for editors (``opsbot check --schema``)."""
    schema = OpsConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "opsbot ops.yml"
    return schema
