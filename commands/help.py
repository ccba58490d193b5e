"""List the commands, or explain one.

`help` lists every command with one line each. `help deploy` shows that command's usage, what it
does, whether it changes anything, the guide section, and examples.

Guide: -
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field

from adapters.errors import UserError
from commands.base import Args, CommandSpec, Ctx, Result, shown, suggest


def _word(value: str) -> str:
    if len(value) > 40 or not value.replace("-", "").isalnum():
        raise ValueError(f"invalid command name {shown(value)}")
    return value.lower()


class HelpArgs(Args):
    """Arguments of ``help``."""

    command: Annotated[str, AfterValidator(_word)] | None = None


class CommandHelp(BaseModel):
    """Help of one command."""

    name: str
    summary: str
    usage: str
    changes: bool
    guide: str
    description: str = ""
    examples: list[str] = Field(default_factory=list)


class HelpResult(Result):
    """Every command in a line, or one command in full."""

    kind = "help"
    commands: list[CommandHelp] = Field(default_factory=list)
    detail: CommandHelp | None = None


def describe(spec: CommandSpec, *, full: bool) -> CommandHelp:
    """The help of ``spec``; ``full`` adds the description and examples."""
    text = spec.help.strip()
    # the docstring's first paragraph is the summary line; the guide line is shown separately
    paragraphs = [p.strip() for p in text.split("\n\n")[1:] if p.strip() and not p.strip().startswith("Guide:")]
    return CommandHelp(
        name=spec.name,
        summary=spec.summary,
        usage=spec.usage,
        changes=spec.changes,
        guide=spec.guide,
        description="\n\n".join(" ".join(p.split()) for p in paragraphs) if full else "",
        examples=list(spec.examples) if full else [],
    )


async def run(ctx: Ctx, args: HelpArgs) -> HelpResult:
    """Build the help from the registry."""
    registry = ctx.registry
    if args.command is None:
        return HelpResult(commands=[describe(s, full=False) for s in registry.values()])
    spec = registry.get(args.command)
    if spec is None:
        raise UserError(f"no command {shown(args.command)}.{suggest(args.command, sorted(registry))}")
    return HelpResult(detail=describe(spec, full=True))


SPEC = CommandSpec(
    name="help",
    summary="lists commands with one line each; help <command> explains one",
    help=__doc__ or "",
    args=HelpArgs,
    run=run,
    usage="help [command]",
    positionals=("command",),
    verb="Helping",
    examples=("help", "help logs"),
    results=(HelpResult,),
    learns_secrets="never",  # only opsbot's own records
)
