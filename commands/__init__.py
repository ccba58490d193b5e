"""One module per guide procedure. ``REGISTRY`` maps each command name to its ``CommandSpec``.

Commands use ``adapters`` and read-only parts of ``bot`` (the config models, the redactor); they
never import the engine or a door, and never know which door a request came through.
"""

from __future__ import annotations

from commands import (
    ack,
    alerts,
    audit,
    backup,
    backups,
    config,
    deploy,
    escalate,
    flag,
    health,
    help,
    history,
    logs,
    maintenance,
    pending,
    restart,
    restore,
    rollback,
    security,
    silence,
    stages,
    status,
    troubleshoot,
    verify_backup,
)
from commands.base import CommandSpec

REGISTRY: dict[str, CommandSpec] = {
    spec.name: spec
    for spec in (
        help.SPEC, status.SPEC, health.SPEC, logs.SPEC, troubleshoot.SPEC, escalate.SPEC, history.SPEC,
        pending.SPEC, audit.SPEC, config.SPEC, deploy.SPEC, rollback.SPEC, restart.SPEC, stages.STARTUP,
        stages.SHUTDOWN, flag.SPEC, backup.SPEC, backups.SPEC, verify_backup.SPEC, restore.SPEC,
        maintenance.SPEC, security.SPEC, alerts.SPEC, ack.SPEC, silence.SPEC,
    )
}  # fmt: skip
