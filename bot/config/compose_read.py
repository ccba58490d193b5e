"""Reading a Compose file for ``opsbot init --from-compose``: its services, as much as ops.yml needs of them.

The file is read as YAML (safe, no duplicate keys), checked (known top-level keys, each service with
an ``image:`` or a ``build:``, ``depends_on`` naming services of the file, no dependency cycle), and
``${VAR}`` / ``${VAR:-default}`` are expanded from the environment and the project's ``.env`` as
Compose does. Every problem is a ``ConfigError`` whose message names the file and what to fix.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.errors import ConfigError
from bot.config.load import parse_yaml
from bot.config.types import NAME_PATTERN

#: the top-level keys of the Compose specification (plus ``x-`` extensions)
TOP_LEVEL = ("version", "name", "services", "networks", "volumes", "configs", "secrets", "include", "models")
_VAR_RE = re.compile(
    r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])((?:[^{}]|\{[^{}]*\})*))?\}|([A-Za-z_][A-Za-z0-9_]*))"
)
_URL_RE = re.compile(r"https?://[^\s'\"|;&)<>]+")


@dataclass
class Port:
    """One port of a service: where the engine publishes it (if it does) and the container's port."""

    target: int
    published: int | None = None
    host_ip: str = ""


@dataclass
class ComposeService:
    """What ops.yml needs to know of one Compose service."""

    name: str
    image: str | None
    build: bool
    depends_on: list[str] = field(default_factory=list)
    ports: list[Port] = field(default_factory=list)
    network_mode: str = ""
    #: the URLs its ``healthcheck.test`` fetches
    health_urls: list[str] = field(default_factory=list)
    health_timeout: str | None = None
    stop_grace_period: str | None = None
    environment: dict[str, str] = field(default_factory=dict)


@dataclass
class ComposeProject:
    """A Compose file: its project name and services, in the file's order."""

    path: Path
    name: str
    services: dict[str, ComposeService]


def dotenv(directory: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines of the project's ``.env`` (comments and blank lines skipped, quotes removed)."""
    file = directory / ".env"
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    out = {}
    for line in text.splitlines():
        key, sep, value = line.strip().removeprefix("export ").partition("=")
        if sep and key.strip() and not key.lstrip().startswith("#"):
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            out[key.strip()] = value
    return out


def interpolate(value: str, environ: Mapping[str, str]) -> str:
    """``value`` with ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``$VAR`` and ``$$`` expanded."""

    def one(match: re.Match[str]) -> str:
        whole, name, op, arg, bare = match.group(0), match.group(1), match.group(2), match.group(3), match.group(4)
        if whole == "$$":
            return "$"
        if bare:
            return environ.get(bare, "")
        current = environ.get(name)
        if op in (":-", "-"):
            unset = current is None or (op == ":-" and current == "")
            return interpolate(arg or "", environ) if unset else str(current)
        if op in (":+", "+"):
            is_set = current is not None and (op == "+" or current != "")
            return interpolate(arg or "", environ) if is_set else ""
        if op in (":?", "?") and (current is None or (op == ":?" and current == "")):
            raise ConfigError(f"${{{name}}} is required by the Compose file: {arg or 'it is not set'}")
        return current or ""

    return _VAR_RE.sub(one, value)


def project_name(path: Path, data: Mapping[str, Any], environ: Mapping[str, str]) -> str:
    """Compose's project name: ``name:``, else ``COMPOSE_PROJECT_NAME``, else the directory's name, normalised."""
    given = data.get("name") or environ.get("COMPOSE_PROJECT_NAME") or path.resolve().parent.name
    name = re.sub(r"[^-_a-z0-9]", "", str(given).lower())
    if not re.fullmatch(NAME_PATTERN, name):
        raise ConfigError(f"{path}: cannot make a project name of {given!r}: give the file a name: key")
    return name


def _ports(raw: Any, where: str) -> list[Port]:
    out = []
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, Mapping):
            target, published = item.get("target"), item.get("published")
            if str(item.get("protocol", "tcp")) != "tcp" or target is None:
                continue
            pub = str(published) if published is not None else ""
            out.append(Port(int(target), int(pub) if pub.isdigit() else None, str(item.get("host_ip") or "")))
            continue
        text, _, protocol = str(item).partition("/")
        if protocol not in ("", "tcp"):
            continue
        parts = text.rsplit(":", 2) if not text.startswith("[") else [text]
        if any("-" in p for p in parts[-2:]):
            continue  # a range: nothing one health check could use
        try:
            if len(parts) == 1:
                out.append(Port(int(parts[0])))
            elif len(parts) == 2:
                out.append(Port(int(parts[1]), int(parts[0]) if parts[0] else None))
            else:
                out.append(Port(int(parts[2]), int(parts[1]) if parts[1] else None, parts[0].strip("[]")))
        except ValueError:
            raise ConfigError(f"{where}.ports: cannot read {item!r}") from None
    return out


def _environment(raw: Any) -> dict[str, str]:
    if isinstance(raw, Mapping):
        return {str(k): "" if v is None else str(v) for k, v in raw.items()}
    if isinstance(raw, list):
        return {k: v for k, _, v in (str(item).partition("=") for item in raw)}
    return {}


def _health(raw: Any) -> tuple[list[str], str | None]:
    if not isinstance(raw, Mapping) or raw.get("disable"):
        return [], None
    test = raw.get("test")
    text = " ".join(str(t) for t in test) if isinstance(test, list) else str(test or "")
    timeout = raw.get("timeout")
    return list(dict.fromkeys(_URL_RE.findall(text))), str(timeout) if timeout is not None else None


def _service(name: str, raw: Any, where: str, environ: Mapping[str, str]) -> ComposeService:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: a service must be a mapping (image:, build:, ports:, ...)")
    if not re.fullmatch(NAME_PATTERN, name):
        raise ConfigError(f"{where}: the service name {name!r} cannot be used in ops.yml (letters, digits, . _ -)")
    image = raw.get("image")
    if image is None and raw.get("build") is None:
        raise ConfigError(f"{where}: the service {name!r} has neither image: nor build:, so nothing can run it")
    depends = raw.get("depends_on") or []
    if isinstance(depends, Mapping):
        depends = list(depends)
    if not isinstance(depends, list) or not all(isinstance(d, str) for d in depends):
        raise ConfigError(f"{where}.depends_on: must be a list of service names or a mapping of them")
    urls, timeout = _health(raw.get("healthcheck"))
    grace = raw.get("stop_grace_period")
    return ComposeService(
        name=name, image=interpolate(str(image), environ) if image is not None else None,
        build=raw.get("build") is not None, depends_on=list(depends),
        ports=_ports(_expand(raw.get("ports"), environ), f"{where}"),
        network_mode=interpolate(str(raw.get("network_mode") or ""), environ),
        health_urls=[interpolate(u, environ) for u in urls], health_timeout=timeout,
        stop_grace_period=str(grace) if grace is not None else None,
        environment={k: interpolate(v, environ) for k, v in _environment(raw.get("environment")).items()},
    )  # fmt: skip


def _expand(value: Any, environ: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return interpolate(value, environ)
    if isinstance(value, list):
        return [_expand(v, environ) for v in value]
    if isinstance(value, Mapping):
        return {k: _expand(v, environ) for k, v in value.items()}
    return value


def find_cycle(graph: Mapping[str, list[str]]) -> list[str] | None:
    """A dependency cycle of ``graph`` (service -> what it depends on) as ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        path.pop()
        state[node] = 2
        return None

    for node in graph:
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def stages(services: Mapping[str, ComposeService]) -> list[list[str]]:
    """Startup stages: each service after everything it depends on; a stage's services in the file's order."""
    graph = {name: s.depends_on for name, s in services.items()}
    done: set[str] = set()
    out: list[list[str]] = []
    while len(done) < len(graph):
        ready = [n for n, deps in graph.items() if n not in done and all(d in done for d in deps)]
        if not ready:  # read_compose refuses cycles first; this only guards against a bug
            raise ConfigError("the services' depends_on form a cycle")
        out.append(ready)
        done.update(ready)
    return out


def read_compose(path: str | Path, environ: Mapping[str, str]) -> ComposeProject:
    """The Compose file at ``path``, checked; ``ConfigError`` naming the file and what is wrong."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{file}: is a directory; give the Compose file (docker-compose.yml)") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not a Compose file: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot be read ({exc.strerror or exc})") from None
    data = parse_yaml(text, str(file))
    if not isinstance(data, Mapping) or not isinstance(data.get("services"), Mapping):
        raise ConfigError(f"{file}: not a Compose file: it needs a top-level services: mapping")
    for key in data:
        if not (isinstance(key, str) and (key in TOP_LEVEL or key.startswith("x-"))):
            close = difflib.get_close_matches(str(key), TOP_LEVEL, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (allowed: {', '.join(TOP_LEVEL)}, x-...)"
            raise ConfigError(f"{file}: unknown top-level key {key!r}{hint}")
    env = {**dotenv(file.resolve().parent), **environ}
    services = {str(n): _service(str(n), raw, f"{file}: services.{n}", env) for n, raw in data["services"].items()}
    if not services:
        raise ConfigError(f"{file}: services: is empty")
    for service in services.values():
        for dep in service.depends_on:
            if dep not in services:
                raise ConfigError(
                    f"{file}: services.{service.name}.depends_on names {dep!r}, not a service of the file"
                )
    cycle = find_cycle({n: s.depends_on for n, s in services.items()})
    if cycle is not None:
        raise ConfigError(f"{file}: depends_on forms a cycle: {' -> '.join(cycle)}; no service could start first")
    return ComposeProject(path=file, name=project_name(file, data, env), services=services)
