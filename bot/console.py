"""The local console: ``opsbot serve`` without Slack tokens.

A prompt that takes ``status prod`` or ``/ops status prod``, runs it through the same engine as
Slack, and prints the result. History is kept (readline) across sessions; Ctrl-D, Ctrl-C, ``exit``
or ``quit`` end it cleanly.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from pathlib import Path
from typing import TextIO

from bot.access import local_operator
from bot.app import App
from bot.engine import Request
from bot.render_text import render_text

PROMPT = "ops> "
HISTORY = Path(os.environ.get("OPSBOT_HISTORY", Path.home() / ".opsbot_history"))


def _setup_history() -> None:
    try:
        import readline
    except ImportError:  # pragma: no cover - readline is missing on some platforms
        return
    try:
        readline.read_history_file(HISTORY)
    except OSError:
        pass
    readline.set_history_length(1000)
    import atexit

    atexit.register(_save_history)


def _save_history() -> None:
    try:
        import readline

        readline.write_history_file(HISTORY)
    except (ImportError, OSError):
        pass


def _reader(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str | None], interactive: bool) -> None:
    """Read lines in a daemon thread (so a pending read never keeps the process alive)."""
    while True:
        try:
            line = input(PROMPT) if interactive else sys.stdin.readline()
            if not interactive and line == "":
                raise EOFError
        except (EOFError, KeyboardInterrupt, OSError):
            loop.call_soon_threadsafe(queue.put_nowait, None)
            return
        loop.call_soon_threadsafe(queue.put_nowait, line.rstrip("\n"))


async def run_console(app: App, *, out: TextIO = sys.stdout) -> int:
    """Read, run and print until the end of input; returns the exit code (0)."""
    interactive = sys.stdin.isatty()
    if interactive:
        _setup_history()
    actor = local_operator()
    print(
        f"opsbot console: {app.config.project}, environments {', '.join(app.config.environments)}; "
        f"you are {actor} (admins). Type 'help', or Ctrl-D to leave.",
        file=out,
        flush=True,
    )
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    threading.Thread(target=_reader, args=(loop, queue, interactive), daemon=True, name="console-input").start()

    async def progress(message: str) -> None:
        print(f"... {app.redactor.text(message)}", file=out, flush=True)

    while True:
        line = await queue.get()
        if line is None:
            print("bye", file=out, flush=True)
            return 0
        text = line.strip()
        if not text:
            continue
        if text in ("exit", "quit"):
            print("bye", file=out, flush=True)
            return 0
        reply = await app.engine.handle(Request(actor=actor, door="console", text=text, progress=progress))
        print(app.redactor.text(render_text(reply)), file=out, flush=True)
        if not interactive:
            continue
