"""The checks of ops.yml that look across sections, each problem with its dotted path.

They run on ops.yml as read (a mapping) and tolerate malformed sections, which the models report
themselves: a startup stage naming a service of its environment, a schedule or maintenance task
naming an environment, overlapping maintenance windows, a route to a notifier that is not configured.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from bot.config.guide import MaintenanceWindow
from bot.config.types import BUILTIN_DIAGNOSTICS


@dataclass(frozen=True)
class Problem:
    """One thing wrong with ops.yml: where (dotted path, ``""`` for the whole file) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message



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
        elif (
            task == "backup_files"
            and isinstance(envs[env_name], dict)
            and _mapping(envs[env_name].get("backup")).get("files") is None
        ):
            out.append(Problem(f"schedules.{i}.task",
                               f"backup_files needs backup.files (from, to) in environments.{env_name}"))  # fmt: skip
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
