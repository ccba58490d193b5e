"""Who may do what: roles from ``access`` in ops.yml, by command and environment.

Identities are user ids from signed payloads (or the command line's ``--as``); names are never
trusted. Entries may be user ids (``U``/``W``) or user groups (``S``), which a ``GroupResolver``
expands; a group that cannot be resolved grants nothing, and the refusal says why.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from typing import Protocol

from adapters.errors import AccessDenied, AdapterError
from bot.config import AccessConfig, OpsConfig
from commands.base import Args, CommandSpec

ROLES = ("viewers", "operators", "approvers", "admins")
LOCAL_PREFIX = "local:"
#: the scheduler door's identity: trusted and local, like the console; no Slack id can look like it
SCHEDULER_ACTOR = "scheduler"
#: what the scheduler may do: read, and run changes that need no approval (``backup``); it cannot
#: approve, nor break glass
SCHEDULER_ROLES = frozenset({"viewers", "operators"})


def local_operator() -> str:
    """The identity of the person at the console or command line (has the admins role)."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        name = "operator"
    return LOCAL_PREFIX + name


class GroupResolver(Protocol):
    """Expands a user group id into its members' user ids."""

    async def members(self, group_id: str) -> set[str]:
        """The members of ``group_id``; raises ``AdapterError`` when that cannot be known."""
        ...


@dataclass(frozen=True)
class Visible:
    """Where an actor may look across environments (``audit``, ``pending`` without an environment)."""

    #: the configured environments whose rows the actor may see
    environments: frozenset[str]
    #: rows of environments ops.yml no longer has: only for admins (no rule is left to apply to them)
    unknown: bool


class Access:
    """Decides, for an actor, a command and an environment, whether it may run."""

    def __init__(self, config: OpsConfig, groups: GroupResolver | None = None) -> None:
        self.config = config
        self.groups = groups

    async def roles(self, actor: str, env: str | None) -> tuple[set[str], list[str]]:
        """The actor's roles in ``env``, and the problems met resolving groups."""
        if actor.startswith(LOCAL_PREFIX):
            return set(ROLES), []
        if actor == SCHEDULER_ACTOR:
            return set(SCHEDULER_ROLES), []
        access: AccessConfig = self.config.access_for(env)
        roles: set[str] = set()
        problems: list[str] = []
        for role in ROLES:
            for entry in getattr(access, role):
                if entry == actor:
                    roles.add(role)
                    break
                if entry.startswith("S"):
                    if self.groups is None:
                        problems.append(f"user group {entry} cannot be resolved here")
                        continue
                    try:
                        if actor in await self.groups.members(entry):
                            roles.add(role)
                            break
                    except AdapterError as exc:
                        problems.append(f"user group {entry} could not be resolved ({exc})")
        if "admins" in roles:
            roles |= set(ROLES)
        return roles, problems

    async def authorize(self, actor: str, spec: CommandSpec, env: str | None, args: Args | None = None) -> set[str]:
        """The actor's roles if ``spec`` (with ``args``) may run in ``env``; raises ``AccessDenied`` otherwise.

        Changes, and read-only commands whose arguments write somewhere (``verify-backup --restore-test``),
        need an operator (or admin).
        """
        roles, problems = await self.roles(actor, env)
        where = f" in {env}" if env else ""
        if (spec.changes and (args is None or args.makes_change())) or (args is not None and args.writes()):
            needed = {"operators", "admins"}
        else:
            viewers = self.config.access_for(env).viewers
            if not viewers:
                return roles
            needed = set(ROLES)
        if roles & needed:
            return roles
        why = f" ({'; '.join(problems)})" if problems else ""
        names = " or ".join(sorted(needed))
        raise AccessDenied(f"{actor} may not run {spec.name}{where}: it needs the {names} role{why}.")

    async def may_read(self, actor: str, env: str) -> bool:
        """Whether ``actor`` may read ``env`` (any role there, or ``env`` names no viewers); an environment
        ops.yml no longer has: admins only."""
        if env not in self.config.environments:
            return "admins" in (await self.roles(actor, None))[0]
        roles, _ = await self.roles(actor, env)
        return bool(roles) or not self.config.access_for(env).viewers

    async def authorize_target(
        self, actor: str, spec: CommandSpec, env: str | None, args: Args | None, refusal: str
    ) -> set[str]:
        """Like ``authorize``, in the environment of the record the arguments name (``ack``: its alert's;
        ``env`` None: no such record). An unknown record and one of an environment the actor may not read
        get the same ``refusal``, which does not tell that it exists; a reader who may not change it gets
        the usual answer."""
        if env is None:
            raise AccessDenied(refusal)
        if env not in self.config.environments:  # a record of an environment ops.yml no longer has: admins only
            roles, _ = await self.roles(actor, None)
            if "admins" in roles:
                return roles
            raise AccessDenied(refusal)
        try:
            return await self.authorize(actor, spec, env, args)
        except AccessDenied:
            if await self.may_read(actor, env):
                raise
            raise AccessDenied(refusal) from None

    async def visible(self, actor: str, spec: CommandSpec) -> Visible:
        """The environments in which ``actor`` may run ``spec`` (each with its own ``access``)."""
        allowed: set[str] = set()
        for name in self.config.environments:
            try:
                await self.authorize(actor, spec, name)
            except AccessDenied:
                continue
            allowed.add(name)
        roles, _ = await self.roles(actor, None)
        return Visible(frozenset(allowed), "admins" in roles)
