"""What ``opsbot guide export`` fills the guide with beyond ops.yml: what the engines run and report, and the
Document History from the audit log (config changes, deploys and rollbacks).

Every outside call is bounded; what could not be read is kept as the reason why, so the guide says
"could not read" instead of inventing a value.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from adapters.errors import OpsError
from adapters.models import ContainerInfo
from adapters.preflight.engine import EngineFacts, EngineProbe
from bot.config import OpsConfig
from bot.core.config_history import EVENT as CONFIG_EVENT
from bot.core.db import Database, Db
from commands.base import Backends

#: at most this many history entries (the newest) are in the guide
HISTORY_LIMIT = 200


class EnvFacts(BaseModel):
    """One environment as its engine reports it (or why it could not be read)."""

    name: str
    containers: list[ContainerInfo] = []
    containers_error: str | None = None
    engine: EngineFacts | None = None
    engine_error: str | None = None

    def env_of(self, service: str) -> dict[str, str]:
        """The environment variables of the service's first container (empty when it has none)."""
        for c in self.containers:
            if c.service == service:
                return dict(c.env)
        return {}

    def versions(self, service: str) -> list[str]:
        """The image versions the service's containers run."""
        return list(dict.fromkeys(c.version or c.image for c in self.containers if c.service == service))


class HistoryEntry(BaseModel):
    """One row of the Document History."""

    version: str
    date: str
    author: str
    changes: str


class GuideFacts(BaseModel):
    """Everything the guide is filled from."""

    config: OpsConfig
    config_path: str
    generated_at: datetime
    envs: dict[str, EnvFacts]
    history: list[HistoryEntry]
    #: the guide's version: 1.0 for the first recorded config, one more tenth for each change
    version: str


async def _bounded(make: Callable[[], Awaitable[Any]], timeout: float) -> tuple[Any, str | None]:
    try:
        async with asyncio.timeout(timeout):
            return await make(), None
    except TimeoutError:
        return None, f"no answer within {timeout:g}s"
    except OpsError as exc:
        return None, str(exc)


async def _env_facts(name: str, config: OpsConfig, backends: Backends, timeout: float,
                     engines: Callable[[str], Awaitable[EngineFacts]]) -> EnvFacts:  # fmt: skip
    host = config.environments[name].runtime.docker_host
    (containers, c_error), (engine, e_error) = await asyncio.gather(
        _bounded(lambda: backends.runtime(name).containers(), timeout), _bounded(lambda: engines(host), timeout)
    )
    return EnvFacts(name=name, containers=containers or [], containers_error=c_error, engine=engine,
                    engine_error=e_error)  # fmt: skip


def _history(sdb: Db) -> tuple[int, list[dict[str, Any]]]:
    first = sdb.execute("SELECT count(*) FROM audit WHERE event = ?", [CONFIG_EVENT]).fetchone()[0]
    rows = [dict(r) for r in sdb.query(
        "SELECT id, ts, actor, command, event, outcome, details FROM audit WHERE event = :config OR "
        "(event IN ('succeeded', 'failed') AND (command LIKE 'deploy %' OR command LIKE 'rollback %')) "
        "ORDER BY id DESC LIMIT :limit", {"config": CONFIG_EVENT, "limit": HISTORY_LIMIT},
    )]  # fmt: skip
    return first, rows[::-1]


def history_entries(total_changes: int, rows: list[dict[str, Any]]) -> tuple[list[HistoryEntry], str]:
    """The Document History rows (oldest first) and the guide's current version."""
    shown_changes = sum(1 for r in rows if r["event"] == CONFIG_EVENT)
    number = total_changes - shown_changes - 1  # the config changes before the first one shown
    out = []
    for row in rows:
        date = row["ts"][:16].replace("T", " ") + " UTC"
        if row["event"] == CONFIG_EVENT:
            number += 1
            what = "ops.yml " + str(row["outcome"])
            out.append(HistoryEntry(version=f"1.{number}", date=date, author="opsbot (ops.yml loaded)", changes=what))
            continue
        details = json.loads(row["details"] or "{}")
        approvers = details.get("approvers") or []
        done = row["event"] == "succeeded" and row["outcome"] in ("ok", "warning")
        what = f"`{row['command']}`: {'done' if done else 'failed'} ({row['outcome']})"
        if approvers:
            what += f", approved by {', '.join(approvers)}"
        out.append(HistoryEntry(version=f"1.{max(number, 0)}", date=date, author=row["actor"], changes=what))
    return out, f"1.{max(total_changes - 1, 0)}"


async def gather(
    config: OpsConfig,
    config_path: str,
    backends: Backends,
    db: Database,
    *,
    timeout: float = 10.0,
    engines: Callable[[str], Awaitable[EngineFacts]] | None = None,
) -> GuideFacts:
    """Read every environment's engine (at once, each bounded) and the history; ``engines`` reads an
    engine's facts by its DOCKER_HOST (default: ``EngineProbe``)."""
    probes: dict[str, EngineProbe] = {}

    async def facts(host: str) -> EngineFacts:
        probe = probes.setdefault(host, EngineProbe(host, timeout=timeout))
        return await probe.facts()

    try:
        found = await asyncio.gather(
            *(_env_facts(name, config, backends, timeout, engines or facts) for name in config.environments)
        )
    finally:
        for probe in probes.values():
            await probe.close()
    total, rows = await db.call(_history)
    history, version = history_entries(total, rows)
    return GuideFacts(
        config=config, config_path=config_path, generated_at=datetime.now(UTC),
        envs={f.name: f for f in found}, history=history, version=version,
    )  # fmt: skip
