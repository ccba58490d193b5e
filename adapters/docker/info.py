"""From the Docker engine's inspect data to the project's models: Compose's labels, names, health, grace.

Pure functions of the dicts the engine answers (``GET /containers/{id}/json``), no SDK in them.
"""

from __future__ import annotations

from typing import Any

from adapters.docker.io import image_version, parse_time
from adapters.lifecycle import check_text
from adapters.models import ContainerInfo

PROJECT = "com.docker.compose.project"
SERVICE = "com.docker.compose.service"
NUMBER = "com.docker.compose.container-number"
ONEOFF = "com.docker.compose.oneoff"
#: the engine's stop grace for a container without its own StopTimeout
DEFAULT_GRACE = 10


def container_name(attrs: dict[str, Any]) -> str:
    """The container's name, without the engine's leading slash."""
    return str(attrs.get("Name") or "").lstrip("/")


def container_number(attrs: dict[str, Any]) -> int | None:
    """Compose's container number (the ``container-number`` label), None without one."""
    value = ((attrs.get("Config") or {}).get("Labels") or {}).get(NUMBER, "")
    return int(value) if value.isdigit() else None


def own_grace(attrs: dict[str, Any]) -> int | None:
    """The container's own StopTimeout when it has a usable one (the engine's default otherwise)."""
    value = (attrs.get("Config") or {}).get("StopTimeout")
    return value if isinstance(value, int) and value >= 0 else None


def last_check(attrs: dict[str, Any]) -> str | None:
    """The outcome of the container's last health check ("exit 1: wget: can't connect..."), if any ran."""
    runs = ((attrs.get("State") or {}).get("Health") or {}).get("Log") or []
    return check_text(runs[-1].get("ExitCode"), runs[-1].get("Output")) if runs else None


def container_info(attrs: dict[str, Any]) -> ContainerInfo:
    """A ``ContainerInfo`` from the engine's inspect data."""
    state = attrs.get("State") or {}
    config = attrs.get("Config") or {}
    labels = config.get("Labels") or {}
    image = config.get("Image") or ""
    status = state.get("Status") or "unknown"
    return ContainerInfo(
        id=str(attrs.get("Id", ""))[:12],
        name=container_name(attrs),
        service=labels.get(SERVICE, "?"),
        number=container_number(attrs),
        state=status,
        health=(state.get("Health") or {}).get("Status"),
        image=image,
        version=image_version(image),
        image_id=attrs.get("Image") or None,
        restarts=int(attrs.get("RestartCount") or 0),
        started_at=parse_time(state.get("StartedAt")),
        exit_code=None if status in ("running", "created") else state.get("ExitCode"),
        env=dict(item.partition("=")[::2] for item in config.get("Env") or []),
    )
