"""The building blocks of ops.yml's models: names, durations, argv, images, URLs and their checks.

Annotated types (``Name``, ``Duration``, ``Argv``, ...) carry their validator and their JSON schema,
so :mod:`bot.config.models` only composes them.
"""

from __future__ import annotations

import math
import re
import shlex
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema

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
#: the longest duration anything accepts (ten years): past it, dates and timers overflow
MAX_DURATION = 3650 * 86400.0


def duration_text(seconds: float) -> str:
    """``seconds`` written as a duration a person reads (``365d``, ``12h``, ``90s``)."""
    for unit in ("d", "h", "m", "s"):
        if seconds >= _UNITS[unit] and seconds % _UNITS[unit] == 0:
            return f"{int(seconds // _UNITS[unit])}{unit}"
    return f"{seconds:g}s"


def parse_duration(value: str | int | float, maximum: float = MAX_DURATION) -> float:
    """Seconds in ``value``: ``"500ms"``, ``"5s"``, ``"15m"``, ``"1h30m"``, ``"7d"``, or a number of seconds.

    Raises ``ValueError`` with a message a person can act on when ``value`` is not a duration, is
    not above zero, or is longer than ``maximum`` seconds (which the message names).
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
    if math.isnan(seconds) or seconds <= 0:
        raise ValueError(f"invalid duration {value!r}: must be greater than 0")
    if seconds > maximum:
        raise ValueError(f"duration {_shown(str(value))} is too long: at most {duration_text(maximum)}")
    return seconds


#: a duration in seconds; written ``500ms``, ``5s``, ``15m``, ``1h``, ``7d``, ``1h30m`` or a number of seconds
Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$"},
                {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_DURATION},
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
