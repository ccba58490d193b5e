"""Show the escalation path; with a level, call that contact.

Without a level: every level of `escalation` with its contact and when to use it. With a level
(`L2`, case-insensitive): that level only, and in Slack the contact (a user or user group mention)
is mentioned in the channel so they are notified.

Guide: 8.3 Escalation.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from adapters.errors import UserError
from commands.base import Args, CommandSpec, Ctx, Result, shown
from commands.troubleshoot import Contact


def _level(value: str) -> str:
    if len(value) > 20 or not value.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"invalid level {shown(value)}")
    return value


class EscalateArgs(Args):
    """Arguments of ``escalate``."""

    level: Annotated[str, AfterValidator(_level)] | None = None


class EscalateResult(Result):
    """The escalation path, and the contact being called (if a level was given)."""

    kind = "escalate"
    path: list[Contact] = Field(default_factory=list)
    level: str | None = None
    #: the contact to mention in the channel
    mention: str | None = None


async def run(ctx: Ctx, args: EscalateArgs) -> EscalateResult:
    """Look up the level."""
    path = [Contact(level=e.level, contact=e.contact, when=e.when) for e in ctx.config.escalation]
    if not path:
        raise UserError("no escalation path in ops.yml (section 'escalation')")
    if args.level is None:
        return EscalateResult(path=path)
    for contact in path:
        if contact.level.lower() == args.level.lower():
            return EscalateResult(path=[contact], level=contact.level, mention=contact.contact)
    known = ", ".join(c.level for c in path)
    raise UserError(f"unknown escalation level {shown(args.level)} (known: {known})")


SPEC = CommandSpec(
    name="escalate",
    summary="the escalation path; with a level, mentions that contact in the channel",
    help=__doc__ or "",
    args=EscalateArgs,
    run=run,
    usage="escalate [level]",
    positionals=("level",),
    guide="8.3",
    verb="Escalating",
    examples=("escalate", "escalate L2"),
    results=(EscalateResult,),
    learns_secrets="never",  # only opsbot's own records
)
