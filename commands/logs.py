"""Show a service's recent log lines, with secrets redacted.

`--lines` (default 200, at most 5000) newest lines from all of the service's containers, stdout and
stderr; `--since` limits them to a recent window (`15m`, `2h`; at most `365d`); `--grep` keeps only lines containing
that text (case-insensitive). At most 2 MiB of the newest lines are shown (the answer says when
older ones were left out). Secret values of the services' environments, passwords in URLs and
known token shapes are replaced with [REDACTED].

Guide: 6.4 Logs, 8.2 Diagnostics.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from adapters.docker.io import MAX_LINE, MAX_LOG_TEXT
from bot.config import parse_duration
from commands.base import Args, CommandSpec, Ctx, EnvName, Result, ServiceName, Since, Text
from commands.inspect import learn_secrets

MAX_LINES = 5000


class LogsArgs(Args):
    """Arguments of ``logs``."""

    env: EnvName
    service: ServiceName
    since: Since | None = None
    lines: int = Field(200, ge=1, le=MAX_LINES)
    grep: Text | None = None


class LogsResult(Result):
    """Log lines of one service."""

    kind = "logs"
    environment: str
    service: str
    lines: list[str]
    since: str | None = None
    grep: str | None = None
    requested: int
    #: True when older lines were left out to stay within the text held per request (``MAX_LOG_TEXT``)
    limited: bool = False


async def run(ctx: Ctx, args: LogsArgs) -> LogsResult:
    """Read the newest lines, bounded in memory by ``--lines``."""
    assert args.env is not None
    # learn the environment's secrets first, so that the lines can be redacted
    await learn_secrets(ctx, args.env)
    since = timedelta(seconds=parse_duration(args.since)) if args.since else None
    lines = await ctx.backends.runtime(args.env).logs(args.service, since=since, lines=args.lines, grep=args.grep)
    limited = len(lines) < args.lines and sum(map(len, lines)) + MAX_LINE > MAX_LOG_TEXT
    return LogsResult(
        limited=limited,
        environment=args.env,
        service=args.service,
        lines=lines,
        since=args.since,
        grep=args.grep,
        requested=args.lines,
    )


SPEC = CommandSpec(
    name="logs",
    summary="a service's recent log lines, secrets redacted",
    help=__doc__ or "",
    args=LogsArgs,
    run=run,
    usage="logs <env> <service> [--since 15m] [--lines 200] [--grep TEXT]",
    positionals=("env", "service"),
    guide="6.4, 8.2",
    verb="Reading logs of",
    examples=("logs prod api --since 15m", "logs prod worker --grep timeout --lines 50"),
    results=(LogsResult,),
)
