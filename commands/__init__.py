"""One module per guide procedure. ``REGISTRY`` maps each command name to its ``CommandSpec``.

Commands use ``adapters`` and read-only parts of ``bot`` (the config models, the redactor); they
never import the engine or a door, and never know which door a request came through.
"""

from __future__ import annotations

from commands import audit, config, escalate, health, help, logs, pending, restart, status, troubleshoot
from commands.base import CommandSpec

REGISTRY: dict[str, CommandSpec] = {
    m.SPEC.name: m.SPEC for m in (help, status, health, logs, troubleshoot, escalate, config, pending, audit, restart)
}
