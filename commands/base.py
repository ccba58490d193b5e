"""What every command module shares: its spec, its context, argument types and result base."""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Protocol

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo

from adapters.errors import UserError

if TYPE_CHECKING:  # the adapters' interfaces: annotations only (a command that needs one imports it)
    from adapters.metrics.base import Metrics
    from adapters.probe import Probe
    from adapters.runtime import Runtime
    from adapters.store import BackupStore
    from bot.config import OpsConfig
    from bot.config.redact import Redactor

Severity = Literal["ok", "warning", "critical"]
SEVERITY_ORDER: dict[str, int] = {"ok": 0, "warning": 1, "critical": 2}


def worst(severities: Iterable[str]) -> Severity:
    """The most severe of ``severities`` (``ok`` when empty)."""
    top: Severity = "ok"
    for s in severities:
        if SEVERITY_ORDER[s] > SEVERITY_ORDER[top]:
            top = s  # type: ignore[assignment]
    return top


# ---------------------------------------------------------------- argument types

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
VERSION_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]{0,127}")
USER_RE = re.compile(r"[UW][A-Z0-9]{2,30}")
MAX_TEXT = 500
#: the longest look-back window a command accepts (``logs --since``)
MAX_SINCE = 365 * 86400.0


def shown(value: str, limit: int = 40) -> str:
    """``value`` as safe to echo in an error: printable, quoted, cut to ``limit`` characters."""
    clean = "".join(c if c.isprintable() else "?" for c in value)
    if len(clean) > limit:
        clean = clean[:limit] + "..."
    return repr(clean)


def _config(info: ValidationInfo) -> OpsConfig:
    ctx = info.context or {}
    config = ctx.get("config")
    if config is None:  # pragma: no cover - a programming error, not a user one
        raise RuntimeError("arguments must be validated with context={'config': ...}")
    return config  # type: ignore[no-any-return]


def _check_env(value: str | None, info: ValidationInfo) -> str:
    config = _config(info)
    name, _ = config.env(value)  # raises UserError for an unknown environment
    return name


def _check_version(value: str) -> str:
    if not VERSION_RE.fullmatch(value):
        raise ValueError(
            f"invalid value {shown(value)}: use letters, digits, '.', '_', '-' and '+', "
            "starting with a letter or digit, at most 128 characters"
        )
    return value


def _check_name(value: str) -> str:
    if not NAME_RE.fullmatch(value):
        raise ValueError(f"invalid name {shown(value)}: use letters, digits, '.', '_' and '-'")
    return value


def _check_text(value: str) -> str:
    if len(value) > MAX_TEXT:
        raise ValueError(f"text too long ({len(value)} characters, at most {MAX_TEXT})")
    if any(not c.isprintable() for c in value):
        raise ValueError("text contains control characters")
    return value


def _check_since(value: str) -> str:
    from bot.config.types import parse_duration  # commands import bot's types lazily (imports flow bot -> commands)

    try:
        parse_duration(value, maximum=MAX_SINCE)
    except ValueError as exc:
        hint = " (leave it out for the newest lines, whatever their age)" if "too long" in str(exc) else ""
        raise ValueError(f"{exc}{hint}") from None
    return value


def _check_user(value: str) -> str:
    if not USER_RE.fullmatch(value):
        raise ValueError(f"invalid user id {shown(value)}: expected a Slack user id like U0123ABCD")
    return value


#: an environment of ops.yml; None (not given) becomes the default environment
EnvName = Annotated[str | None, AfterValidator(_check_env)]
#: a service name; that it exists in the environment is checked by ``Args``
ServiceName = Annotated[str, AfterValidator(_check_name)]
#: a version or backup id: letters, digits, ``.``, ``_``, ``-``, ``+``; at most 128 characters
Version = Annotated[str, AfterValidator(_check_version)]
#: free text (grep patterns, symptoms): printable, bounded; never reaches a shell
Text = Annotated[str, AfterValidator(_check_text)]
#: a look-back window such as ``15m``, ``2h`` or ``7d``: above zero, at most ``MAX_SINCE`` (365 days)
Since = Annotated[str, AfterValidator(_check_since)]
#: a Slack user id
UserId = Annotated[str, AfterValidator(_check_user)]


class Args(BaseModel):
    """Base of every command's arguments: strict, and services checked against the environment."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    def writes(self) -> bool:
        """True when these arguments make a read-only command write somewhere (it then needs an operator)."""
        return False

    def makes_change(self) -> bool:
        """False when these arguments make a change command only read (``maintenance <env>`` without a task):
        it then runs at once, for viewers, without plan or approval."""
        return True

    def shows_environment(self) -> bool:
        """False when nothing these arguments make the command show comes from the environment's containers
        (``backup <env> --files``: S3's listings and answers): the engine then does not read the containers
        to learn their secrets first (no Docker engine is asked, nor needed)."""
        return True

    def needs_approval(self, spec_approval: bool) -> bool:
        """Whether this change waits for approvers: the spec's ``approval``, unless these arguments make a
        change that runs at once delete something (``backup --files --delete``)."""
        return spec_approval

    def model_post_init(self, context: Any) -> None:
        """Check that a ``service`` field names a service of the ``env`` field's environment."""
        service = getattr(self, "service", None)
        env = getattr(self, "env", None)
        if service is None or env is None or not isinstance(context, dict) or "config" not in context:
            return
        _, env_config = context["config"].env(env)
        if service not in env_config.services:
            known = ", ".join(sorted(env_config.services))
            raise UserError(f"unknown service {shown(service)} in {env} (known: {known})")


# ---------------------------------------------------------------- results


class Result(BaseModel):
    """Base of every command's result: plain data, rendered by the doors."""

    # validators built when a result of the class is first made: a process builds those of the commands
    # it runs, not those of every module it imports
    model_config = ConfigDict(defer_build=True)

    #: the kind of result, for renderers and JSON consumers
    kind: ClassVar[str] = "result"

    def severity(self) -> Severity:
        """How healthy what this result describes is; drives the exit code."""
        return "ok"

    def environment_name(self) -> str | None:
        """The environment this result is about, if any."""
        return getattr(self, "environment", None)

    def adopt(self, other: Result) -> None:
        """Take over what ``other`` (the same result before redaction) keeps outside its data."""

    def close(self) -> None:
        """Release what the result keeps outside memory (``logs``: its spool file); safe to call twice."""


class Plan(BaseModel):
    """What a change will do, shown before it runs; an approval is bound to its hash."""

    summary: str
    steps: list[str]
    #: the state of the world the plan was made against (images, containers): if it changes, so does the hash
    targets: list[dict[str, Any]] = []
    verify: list[str] = []

    def digest(self, command: str) -> str:
        """sha256 of the command and the plan, canonical."""
        body = json.dumps({"command": command, "plan": self.model_dump(mode="json")}, sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()


class ChangeArgs(Args):
    """Arguments every change accepts: ``--dry-run`` and, for admins, ``--break-glass REASON``."""

    dry_run: bool = False
    break_glass: Annotated[str, AfterValidator(_check_text)] | None = None


# ---------------------------------------------------------------- context


class Backends(Protocol):
    """Where commands reach the outside world: a runtime and a backup store per environment, one HTTP probe."""

    @property
    def probe(self) -> Probe:
        """The HTTP probe."""
        ...

    def runtime(self, env: str) -> Runtime:
        """The runtime of environment ``env``."""
        ...

    def store(self, env: str) -> BackupStore:
        """The backup store of environment ``env`` (``UserError`` when it has no ``backup`` section)."""
        ...

    def metrics(self, source: str) -> Metrics:
        """The metrics source ``prometheus`` or ``cloudwatch`` of ``monitoring``."""
        ...


class AuditReader(Protocol):
    """Read access to the audit log, for the ``audit`` command."""

    async def entries(
        self,
        *,
        env: str | None = None,
        user: str | None = None,
        limit: int = 20,
        hidden: Collection[str] = (),
        known: Collection[str] | None = None,
    ) -> list[dict[str, Any]]:
        """The newest entries, newest first; rows of ``hidden`` (and of environments not ``known``) left out."""
        ...

    async def verify(self) -> ChainVerdict:
        """Walk the whole hash chain."""
        ...


class ChainVerdict(Protocol):
    """What walking the audit log's hash chain found (``bot.core.audit.Verification``)."""

    @property
    def ok(self) -> bool:
        """True when every entry matches."""
        ...

    @property
    def rows(self) -> int:
        """Entries walked."""
        ...

    @property
    def bad_id(self) -> int | None:
        """The first entry that does not match."""
        ...

    @property
    def reason(self) -> str:
        """Why it does not match."""
        ...


class Visibility(Protocol):
    """Where the actor may look (``bot.core.access.Visible``): the environments whose rows it may see."""

    environments: frozenset[str]
    unknown: bool


async def visible_to_actor(ctx: Ctx) -> tuple[list[str], list[str] | None]:
    """For a listing across environments: the configured environments to hide from the actor, and the
    environments whose rows may be shown at all (None: any, for admins). Without the engine's answer
    (``ctx.extras["visible"]``) every environment is hidden."""
    configured = list(ctx.config.environments)
    ask = ctx.extras.get("visible")
    if ask is None:
        return configured, configured
    seen: Visibility = await ask()
    hidden = [e for e in configured if e not in seen.environments]
    return hidden, None if seen.unknown else configured


ProgressFn = Callable[[str], Awaitable[None]]


async def _no_progress(message: str) -> None:
    return None


@dataclass
class Ctx:
    """Everything a command may use. Commands never know which door the request came through."""

    config: OpsConfig
    backends: Backends
    redactor: Redactor
    audit: AuditReader
    actor: str
    door: str
    request_id: str
    progress: ProgressFn = _no_progress
    dry_run: bool = False
    extras: dict[str, Any] = field(default_factory=dict)
    #: the commands this request may name (``help`` lists them)
    registry: Mapping[str, CommandSpec] = field(default_factory=dict)

    async def step(self, command: str, env: str, event: str, outcome: str, **details: Any) -> None:
        """Record one step of a running change in the audit log (when the engine gives the hook)."""
        hook = self.extras.get("audit_step")
        if hook is not None:
            await hook(command, event, outcome, env, details or None)


def suggest(word: str, names: Sequence[str]) -> str:
    """'did you mean ...' for an unknown command, or an empty string."""
    close = difflib.get_close_matches(word.lower(), names, n=3, cutoff=0.6)
    if not close:
        close = [n for n in names if n.startswith(word.lower()[:3])][:3] if len(word) >= 3 else []
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


# ---------------------------------------------------------------- spec

RunFn = Callable[[Ctx, Any], Awaitable[Result]]
PlanFn = Callable[[Ctx, Any], Awaitable[Plan]]
#: the environment of the record a command's arguments name (None: no such record)
TargetEnvFn = Callable[[Ctx, Any], Awaitable[str | None]]


@dataclass(frozen=True)
class CommandSpec:
    """A command: its name, help, arguments, and how it runs."""

    name: str
    summary: str
    #: the full help text (the module's docstring)
    help: str
    args: type[Args]
    run: RunFn
    #: usage line, e.g. ``logs <env> <service> [--since 15m] [--lines 200] [--grep TEXT]``
    usage: str
    #: positional argument field names in order; a ``list[str]`` field last takes the rest
    positionals: tuple[str, ...] = ()
    changes: bool = False
    guide: str = ""
    #: one-word verb for progress messages ("Checking", "Reading")
    verb: str = "Running"
    examples: tuple[str, ...] = ()
    #: result types this command returns (for renderer coverage checks)
    results: tuple[type[Result], ...] = ()
    #: for a change: what it will do, before approval
    plan: PlanFn | None = None
    #: for a change: False when it runs at once for an operator, without waiting for approvers
    #: (``backup``: it only adds a backup); ``--dry-run`` still only shows the plan. A change that needs
    #: approval is bound to its environment's maintenance windows (refused outside them)
    approval: bool = True
    #: False: inside an open maintenance window it runs at once for an operator, without approvers
    #: (``maintenance <env> <task>``); True: inside a window it follows the environment's approval rules
    approval_inside_window: bool = True
    #: for a change without approval: False when it does not hold the environment's lease (``ack`` and
    #: ``silence`` touch only alerts, and must work while a deploy runs)
    lease: bool = True
    #: for a command whose arguments name a record of some environment instead of the environment
    #: (``ack <alert-id>``): that record's environment, whose own access rules then decide
    target_env: TargetEnvFn | None = None
    #: its answer when the record is unknown or in an environment the actor may not read: the same for
    #: both, so that a refusal does not tell the record exists (formatted with the arguments)
    unknown_target: str = ""
    #: when the secret values of the environment's containers are learnt, so that nothing shown holds one:
    #: "first" (the engine lists the containers before the command runs, unless its arguments say it shows
    #: nothing of them: ``Args.shows_environment``); "itself" (the command's own first reading of the
    #: environment, ``containers``, learns them before anything it shows exists, and nothing is shown while
    #: it runs: no second listing); "never" (it shows only opsbot's own records: help, audit, history, ...)
    learns_secrets: Literal["first", "itself", "never"] = "first"


def env_field(description: str = "the environment (default: default_environment)") -> Any:
    """A field for an optional environment argument that defaults to ``default_environment``."""
    return Field(default=None, validate_default=True, description=description)
