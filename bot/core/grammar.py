"""The request grammar: ``COMMAND [ENV] [ARGS] [--flags]`` with shell-like quoting.

Text is split into words with ``shlex`` (parsed, never executed), then bound to a command's
positional fields and ``--flags``. Anything that does not fit is a ``UserError`` with the usage.
"""

from __future__ import annotations

import shlex
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from adapters.errors import OpsError, UserError
from commands.base import Args, CommandSpec, shown, suggest

#: a request longer than this is refused before it is even split
MAX_REQUEST = 4000
#: switches every change accepts, handled by the engine
ENGINE_SWITCHES = ("dry_run",)
SMART_QUOTES = {0x201C: '"', 0x201D: '"', 0x2018: "'", 0x2019: "'"}


@dataclass(frozen=True)
class Parsed:
    """A request bound to its command, with validated arguments."""

    spec: CommandSpec
    args: Args
    words: tuple[str, ...]
    #: the environment of the record the arguments name, once authorized there (``ack``: its alert's)
    env: str | None = None

    @property
    def text(self) -> str:
        """The request as one line, quoted so that it splits back into the same words."""
        return shlex.join(self.words)


def split(text: str) -> list[str]:
    """Split ``text`` into words like a POSIX shell would, without running anything."""
    if len(text) > MAX_REQUEST:
        raise UserError(f"request too long ({len(text)} characters, at most {MAX_REQUEST})")
    text = text.strip()
    if text.startswith("/ops"):
        text = text[4:]
    # Slack sends typographic quotes when the user's client "smartens" them
    text = text.translate(SMART_QUOTES)
    try:
        return shlex.split(text, posix=True)
    except ValueError as exc:
        raise UserError(f"cannot read the request: {exc} (check the quotes)") from exc


def _is_list(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _is_list(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return any(_is_list(a) for a in typing.get_args(annotation) if a is not type(None))
    return origin is list


def _is_bool(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _is_bool(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return any(_is_bool(a) for a in typing.get_args(annotation) if a is not type(None))
    return annotation is bool


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def bind(spec: CommandSpec, words: Sequence[str]) -> dict[str, Any]:
    """Bind ``words`` (after the command name) to ``spec``'s fields; raises ``UserError``."""
    fields = spec.args.model_fields
    usage = f"Usage: {spec.usage}"
    values: dict[str, Any] = {}
    positional: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word.startswith("--") and len(word) > 2:
            name, eq, inline = word[2:].partition("=")
            key = name.replace("-", "_")
            if key not in fields or key in spec.positionals:
                options = ", ".join(_flag(f) for f in fields if f not in spec.positionals) or "none"
                raise UserError(f"unknown option {shown(word)} for {spec.name} (options: {options}). {usage}")
            if key in values:
                raise UserError(f"option {_flag(key)} given twice. {usage}")
            if _is_bool(fields[key].annotation):
                if eq:
                    raise UserError(f"option {_flag(key)} takes no value. {usage}")
                values[key] = True
            elif eq:
                values[key] = inline
            else:
                if i + 1 >= len(words):
                    raise UserError(f"option {_flag(key)} needs a value. {usage}")
                i += 1
                values[key] = words[i]
        elif word == "--":
            positional.extend(words[i + 1 :])
            break
        else:
            positional.append(word)
        i += 1
    names = list(spec.positionals)
    for index, name in enumerate(names):
        if not positional:
            break
        if _is_list(fields[name].annotation) and index == len(names) - 1:
            values[name], positional = positional, []
        else:
            if name in values:
                raise UserError(f"{name} given twice. {usage}")
            values[name] = positional.pop(0)
    if positional:
        raise UserError(f"unexpected argument {shown(positional[0])} for {spec.name}. {usage}")
    return values


def _explain(spec: CommandSpec, exc: ValidationError) -> UserError:
    """One clear line from pydantic's errors."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "missing":
            message = "is required"
        elif error["type"] == "extra_forbidden":
            message = "is not an option of this command"
        label = _flag(loc) if loc and loc not in spec.positionals else f"<{loc}>"
        parts.append(f"{label} {message}" if loc else message)
    return UserError(f"{spec.name}: {'; '.join(parts)}. Usage: {spec.usage}")


def parse(words: Sequence[str], registry: Mapping[str, CommandSpec], config: Any) -> Parsed:
    """Bind ``words`` to a command of ``registry`` and validate its arguments against ``config``."""
    if not words:
        raise UserError("no command given. Try 'help'.")
    name = words[0].lower()
    spec = registry.get(name)
    if spec is None:
        hint = suggest(name, sorted(registry))
        raise UserError(f"unknown command {shown(words[0])}.{hint} Try 'help' for the list of commands.")
    values = bind(spec, words[1:])
    try:
        args = spec.args.model_validate(values, context={"config": config})
    except ValidationError as exc:
        raise _explain(spec, exc) from None
    except OpsError:
        raise
    return Parsed(spec=spec, args=args, words=tuple(words))
