"""ops.yml's changes in the audit log: a ``config-changed`` entry whenever the bot loads a config that
differs from the last one it recorded, naming the sections that changed (the guide's Document History).

Only hashes are stored: what changed is named by section (``thresholds``, ``environments.prod``), never
shown. A comment or a reordering that changes nothing opsbot reads records nothing.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from bot.config import OpsConfig
from bot.core.audit import append_row
from bot.core.db import Database, Db, immediate

#: the audit event of a config change
EVENT = "config-changed"


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def section_hashes(config: OpsConfig) -> dict[str, str]:
    """A hash per top-level section of ``config``, and one per environment (``environments.<name>``)."""
    out: dict[str, str] = {}
    for key, value in config.model_dump(mode="json", by_alias=True).items():
        if key == "environments":
            out.update({f"environments.{name}": _digest(env) for name, env in value.items()})
        else:
            out[key] = _digest(value)
    return out


def record_config(db: Database, config: OpsConfig, path: str) -> int | None:
    """Audit ``config`` as loaded from ``path`` when it differs from the last recorded one; the entry's id."""
    sections = section_hashes(config)
    digest = _digest(sections)

    def run(sdb: Db) -> int | None:
        with immediate(sdb.conn) as conn:
            query = "SELECT details FROM audit WHERE event = ? ORDER BY id DESC LIMIT 1"
            last = conn.execute(query, (EVENT,)).fetchone()
            before: dict[str, Any] = json.loads(last[0]) if last else {}
            if before.get("sha256") == digest:
                return None
            old: dict[str, str] = before.get("sections") or {}
            changed = sorted(k for k in sections.keys() | old.keys() if sections.get(k) != old.get(k))
            outcome = f"first loaded, {len(sections)} sections" if not last else "changed: " + ", ".join(changed)
            row: dict[str, Any] = {
                "ts": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "actor": "opsbot", "source": "config", "environment": None, "command": f"load {path}"[:1000],
                "event": EVENT, "outcome": outcome[:500],
                "details": json.dumps({"sha256": digest, "sections": sections, "changed": changed}, sort_keys=True),
                "request_id": None,
            }  # fmt: skip
            return append_row(conn, row)[0]

    return db.run_sync(run)
