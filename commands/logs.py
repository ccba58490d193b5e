"""Show a service's recent log lines, with secrets redacted.

`--lines` (default 200, at most 5000) newest lines from all of the service's containers, stdout and
stderr; `--since` limits them to a recent window (`15m`, `2h`; at most `365d`); `--grep` keeps only lines containing
that text (case-insensitive). Every requested line is kept, redacted, in a private temporary file (not
in memory) and delivered whole: attached as a file in Slack (the message shows the newest), printed by
the command line. Secret values of the services' environments, passwords in URLs and known token
shapes are replaced with [REDACTED].

Guide: 6.4 Logs, 8.2 Diagnostics.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta

from pydantic import Field, PrivateAttr

from adapters.docker.spool import LineSpool
from bot.config import parse_duration
from bot.config.redact import in_redaction_thread
from commands.base import Args, CommandSpec, Ctx, EnvName, Result, ServiceName, Since, Text
from commands.inspect import learn_secrets

MAX_LINES = 5000
#: the newest lines a result holds in memory (what a message shows, ``--json``), at most ``TAIL_TEXT``
#: characters of them; every line stays in its spool
TAIL_LINES = 1000
TAIL_TEXT = 256 * 1024


class LogsArgs(Args):
    """Arguments of ``logs``."""

    env: EnvName
    service: ServiceName
    since: Since | None = None
    lines: int = Field(200, ge=1, le=MAX_LINES)
    grep: Text | None = None


class LogsResult(Result):
    """Log lines of one service: the newest ``lines`` in memory, every one of them (``count``) in a spool."""

    kind = "logs"
    environment: str
    service: str
    #: the newest lines (at most ``TAIL_LINES``, ``TAIL_TEXT`` characters of them), redacted
    lines: list[str]
    since: str | None = None
    grep: str | None = None
    requested: int
    #: how many lines were read (``all_lines`` gives them); 0: ``lines`` is all of them
    count: int = 0
    _spool: LineSpool | None = PrivateAttr(default=None)

    @property
    def total(self) -> int:
        """How many lines the result has in all."""
        return max(self.count, len(self.lines))

    def all_lines(self) -> Iterator[str]:
        """Every line, oldest first (from the spool, read as used: bounded memory)."""
        return self._spool.lines() if self._spool is not None else iter(self.lines)

    def adopt(self, other: Result) -> None:
        """Take over the spool of ``other``."""
        if isinstance(other, LogsResult):
            self._spool = other._spool

    def close(self) -> None:
        """Remove the spool file."""
        if self._spool is not None:
            self._spool.close()


async def run(ctx: Ctx, args: LogsArgs) -> LogsResult:
    """Read the newest lines into a spool, redacted batch by batch as they arrive (memory: one batch)."""
    assert args.env is not None
    # learn the environment's secrets first, so that the lines can be redacted
    await learn_secrets(ctx, args.env)
    since = timedelta(seconds=parse_duration(args.since)) if args.since else None
    redactor = ctx.redactor
    spool = LineSpool(args.lines, lambda batch: in_redaction_thread(redactor.data, batch))
    try:
        await ctx.backends.runtime(args.env).logs(
            args.service, since=since, lines=args.lines, grep=args.grep, spool=spool
        )
        count = len(spool)
        tail = await asyncio.to_thread(spool.tail, TAIL_LINES, TAIL_TEXT)  # reads the whole spool: not on the loop
    except BaseException:
        spool.close()
        raise
    result = LogsResult(
        environment=args.env,
        service=args.service,
        lines=tail,
        count=count,
        since=args.since,
        grep=args.grep,
        requested=args.lines,
    )
    result._spool = spool
    return result


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
