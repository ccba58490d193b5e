"""Reading ops.yml: YAML without duplicate keys, validation into ``OpsConfig``, every problem reported.

``validate_config`` reports all problems at once: the models' own (types, unknown keys, ranges) and
the checks across sections (:mod:`bot.config.checks`), each as a ``Problem`` with a dotted path such
as ``environments.prod.startup.1.0``. ``opsbot check`` prints them; ``load_config`` raises them.
"""

from __future__ import annotations

import contextlib
import difflib
import typing
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from types import NoneType, UnionType
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from adapters.errors import ConfigError
from bot.config.checks import Problem, cross_check
from bot.config.models import OpsConfig
from bot.config.types import CROSS_CHECKED


class InvalidConfig(ConfigError):
    """ops.yml was read but does not validate; ``problems`` holds every problem found."""

    def __init__(self, message: str, problems: list[Problem]) -> None:
        super().__init__(message)
        self.problems = problems


#: configured sections whose feature opsbot does not run yet: path -> what it will do. ``opsbot check``
#: names each one present, so that nothing is accepted in silence.
NOT_ACTED_ON: dict[str, str] = {
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
    for severity in ("critical", "warning"):  # email is the info digest; other severities are not emailed
        route = getattr(config.alerting, severity, None) if config.alerting is not None else None
        if route is not None and "email" in route.to:
            out.append(Problem(f"alerting.{severity}.to", f"email: {severity} alerts are not emailed (email is the "
                               "info digest only); they go to the other receivers listed here"))  # fmt: skip
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


class _NoDuplicateKeys(yaml.constructor.SafeConstructor):
    """The safe constructor, but a key given twice in one mapping is an error (a silent override is a trap)."""

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


class _Loader(_NoDuplicateKeys, yaml.SafeLoader):
    """PyYAML's own safe loader: its errors say line, column and what was expected."""


#: the same on libyaml's parser (the example ops.yml in 2 ms instead of 18), when PyYAML was built with it
#: (its wheels are). libyaml follows the YAML spec where PyYAML's parser is stricter: it also reads tabs
#: as separating white space (``key:<TAB>value``) and nesting deeper than Python's recursion limit.
_FastLoader: type[yaml.SafeLoader] | None = (
    type("_FastLoader", (_NoDuplicateKeys, yaml.CSafeLoader), {}) if hasattr(yaml, "CSafeLoader") else None
)


def parse_yaml(text: str, source: str = "ops.yml") -> Any:
    """``text`` read as YAML (safe, no duplicate keys); ``ConfigError`` with line and column otherwise."""
    if _FastLoader is not None:
        with contextlib.suppress(yaml.YAMLError):  # said below by PyYAML's own parser, with its exact marks
            return yaml.load(text, Loader=_FastLoader)  # noqa: S506 - a SafeConstructor
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeConstructor
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        what = ": ".join(str(p) for p in (exc.context, exc.problem) if p)
        kind = "" if isinstance(exc, _DuplicateKey) else "YAML syntax error: "
        raise ConfigError(f"{where}: {kind}{what}") from exc
    except yaml.reader.ReaderError as exc:  # a control character: not YAML text at all
        raise ConfigError(f"{source}: YAML syntax error: {exc.reason} (character {exc.position + 1})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: YAML syntax error: {' '.join(str(exc).split())}") from exc


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
