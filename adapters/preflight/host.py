"""A short command on the bot's own host (argv, never a shell), bounded, its output kept small."""

from __future__ import annotations

import asyncio
import contextlib

from adapters.errors import AdapterError, AdapterTimeout
from adapters.models import ExecResult

#: at most this many bytes of output are kept
MAX_OUTPUT = 16 * 1024


async def run_on_host(argv: list[str], *, timeout: float) -> ExecResult:
    """Run ``argv`` here; its exit code and output (stdout then stderr). ``AdapterTimeout`` kills it."""
    if not argv or isinstance(argv, str):
        raise AdapterError("a command is a non-empty list of arguments (argv), never a shell string")
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
    except OSError as exc:
        return ExecResult(exit_code=127, output=f"{argv[0]}: {exc.strerror or exc}")
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate()
    except TimeoutError as exc:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise AdapterTimeout(f"{argv[0]} did not finish within {timeout:g}s") from exc
    data = out + err
    return ExecResult(
        exit_code=proc.returncode if proc.returncode is not None else -1,
        output=data[:MAX_OUTPUT].decode("utf-8", errors="replace"),
        truncated=len(data) > MAX_OUTPUT,
    )
