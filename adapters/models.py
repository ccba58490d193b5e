"""Data the adapters return: plain pydantic models, never SDK objects."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ContainerInfo(BaseModel):
    """One container of a service, as the engine reports it."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    service: str
    #: the Compose container number (1, 2, ...) or the Swarm task slot
    number: int | None = None
    #: Docker's state: running, exited, created, restarting, paused, dead (``missing`` is added above)
    state: str
    #: Docker health: healthy, unhealthy, starting; None when the container has no health check
    health: str | None = None
    image: str
    #: the image tag (``shop/api:1.4.2`` -> ``1.4.2``); None for an untagged image
    version: str | None = None
    #: the id of the image the container runs (``sha256:...``), when the engine says it
    image_id: str | None = None
    restarts: int = 0
    started_at: datetime | None = None
    exit_code: int | None = None
    cpu_percent: float | None = None
    memory_percent: float | None = None
    memory_bytes: int | None = None
    #: the container's environment. Never rendered or dumped: the bot reads it only to learn which
    #: values are secrets (for redaction) and, in ``config``, to show it redacted.
    env: dict[str, str] = Field(default_factory=dict, exclude=True, repr=False)


class ExecResult(BaseModel):
    """The outcome of a command run inside a container (argv, never a shell)."""

    exit_code: int
    output: str
    #: True when the output was cut to the adapter's bound
    truncated: bool = False


class ReplacedContainer(BaseModel):
    """One container a ``replace`` swapped: the old one, kept (stopped, renamed), and the new one under its name."""

    model_config = ConfigDict(frozen=True)

    #: the original name, which the new container now has
    name: str
    old_id: str
    new_id: str
    #: the old container's name while it is kept (``<name>-opsbot-old-<short id>`` on Docker)
    kept_as: str
    #: whether the old one was running: ``revert`` starts it again only then
    was_running: bool = True


class Replacement(BaseModel):
    """What ``Runtime.replace`` did, for ``revert`` (put the old containers back) or ``commit`` (drop them)."""

    model_config = ConfigDict(frozen=True)

    service: str
    #: the image of the service's first container before (None when it had no image reference)
    image_before: str | None = None
    image_after: str
    containers: list[ReplacedContainer] = Field(default_factory=list)

    @property
    def old_ids(self) -> list[str]:
        """The ids of the old (kept) containers."""
        return [c.old_id for c in self.containers]

    @property
    def new_ids(self) -> list[str]:
        """The ids of the new containers."""
        return [c.new_id for c in self.containers]


class DiskUsage(BaseModel):
    """Disk use of a container's root filesystem, from ``df -P /`` inside it."""

    container: str
    service: str
    mount: str
    size_bytes: int
    used_bytes: int
    percent: float


class ProbeRequest(BaseModel):
    """One HTTP health check to run."""

    name: str
    url: str
    #: JSON keys and values the body must contain; None: any 2xx answer is healthy
    expect: dict[str, Any] | None = None
    timeout: float = 5.0


class CheckResult(BaseModel):
    """The outcome of one HTTP health check."""

    name: str
    url: str
    ok: bool
    status_code: int | None = None
    latency_ms: float | None = None
    error: str | None = None
