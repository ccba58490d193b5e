"""One module per guide procedure. ``REGISTRY`` maps each command name to its ``CommandSpec``.

Commands use ``adapters`` and read-only parts of ``bot`` (the config models, the redactor); they
never import the engine or a door, and never know which door a request came through.

A command's module is imported the first time its spec is asked for: a process that runs one command
(``opsbot run backup prod --files``) builds that command's models only, not every command's.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from commands.base import CommandSpec

#: each command, in the order ``help`` lists them: the module under ``commands`` that defines it, and the name
#: of its spec there
WHERE: dict[str, tuple[str, str]] = {
    "help": ("help", "SPEC"), "status": ("status", "SPEC"), "health": ("health", "SPEC"),
    "logs": ("logs", "SPEC"), "troubleshoot": ("troubleshoot", "SPEC"), "escalate": ("escalate", "SPEC"),
    "history": ("history", "SPEC"), "pending": ("pending", "SPEC"), "audit": ("audit", "SPEC"),
    "config": ("config", "SPEC"), "deploy": ("deploy", "SPEC"), "rollback": ("rollback", "SPEC"),
    "restart": ("restart", "SPEC"), "startup": ("stages", "STARTUP"), "shutdown": ("stages", "SHUTDOWN"),
    "flag": ("flag", "SPEC"), "backup": ("backup", "SPEC"), "backups": ("backups", "SPEC"),
    "verify-backup": ("verify_backup", "SPEC"), "restore": ("restore", "SPEC"),
    "maintenance": ("maintenance", "SPEC"), "security": ("security", "SPEC"), "alerts": ("alerts", "SPEC"),
    "ack": ("ack", "SPEC"), "silence": ("silence", "SPEC"),
}  # fmt: skip


class Registry(Mapping[str, CommandSpec]):
    """Command name -> ``CommandSpec``; a command's module is imported when its spec is first asked for."""

    def __init__(self, where: Mapping[str, tuple[str, str]]) -> None:
        self._where = dict(where)
        self._specs: dict[str, CommandSpec] = {}

    def __getitem__(self, name: str) -> CommandSpec:
        spec = self._specs.get(name)
        if spec is None:
            module, attr = self._where[name]  # KeyError: no such command
            spec = getattr(importlib.import_module(f"commands.{module}"), attr)
            if not isinstance(spec, CommandSpec) or spec.name != name:
                raise TypeError(f"commands.{module}.{attr} is not the spec of {name!r}")
            self._specs[name] = spec
        return spec

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, name: object) -> bool:
        return name in self._where


REGISTRY: Mapping[str, CommandSpec] = Registry(WHERE)
