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
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TextIO

from bot.core.access import local_operator
from bot.core.app import App
from bot.core.changes import ApprovalResult
from bot.core.engine import Request
from bot.render.plain import plain
from bot.render.text import render_text, text_lines
from commands.base import USER_RE

PROMPT = "ops> "
HISTORY = Path(os.environ.get("OPSBOT_HISTORY", Path.home() / ".opsbot_history")).expanduser()


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


class Lines:
    """Lines typed at the console, read by a daemon thread one at a time, when the console asks.

    The thread prompts only when asked (``next``), so a prompt never appears before the previous
    answer has been printed; being a daemon, a pending read never keeps the process alive.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, interactive: bool) -> None:
        self.loop = loop
        self.interactive = interactive
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.turn = threading.Event()
        self.prompt = PROMPT
        threading.Thread(target=self._read, daemon=True, name="console-input").start()

    def _read(self) -> None:
        while True:
            self.turn.wait()
            self.turn.clear()
            try:
                line = input(self.prompt) if self.interactive else sys.stdin.readline()
                if not self.interactive and line == "":
                    raise EOFError
            except (EOFError, KeyboardInterrupt, OSError):
                self.loop.call_soon_threadsafe(self.queue.put_nowait, None)
                return
            self.loop.call_soon_threadsafe(self.queue.put_nowait, line.rstrip("\n"))

    async def next(self, prompt: str = PROMPT) -> str | None:
        """The next line (None at the end of input), prompting with ``prompt``."""
        self.prompt = prompt
        self.turn.set()
        return await self.queue.get()


async def _ask_approval(
    app: App,
    result: ApprovalResult,
    actor: str,
    lines: Lines,
    progress: Callable[[str], Awaitable[None]],
    out: TextIO,
) -> bool:
    """Ask for the approval in the console; False when the input ended."""
    approval = result.approval
    approval_id = approval["id"]

    async def decide(who: str, action: str) -> str:
        request = Request(actor=who, door="console", text=f"{action} {approval_id}", progress=progress)
        reply = await app.engine.decide(request, approval_id, action)
        print(app.redactor.text(render_text(reply)), file=out, flush=True)
        return reply.result.approval["state"] if isinstance(reply.result, ApprovalResult) else "error"

    if approval["required"] == 0:
        print(f"Confirm {approval['command']}? [y/N] ", file=out, flush=True)
        answer = await lines.next("> ")
        if answer is None:
            return False
        await decide(actor, "approve" if answer.strip().lower() in ("y", "yes") else "cancel")
        return True
    access = app.config.access_for(approval.get("environment"))
    who_may = ", ".join(dict.fromkeys([*access.approvers, *access.admins])) or "none in ops.yml"
    while True:
        print(
            f"Approver's Slack user id (needs {approval['required']}, not you; approvers: {who_may}), or Enter to"
            f" leave {approval_id} pending: ",
            file=out,
            flush=True,
        )
        answer = await lines.next("> ")
        if answer is None:
            return False
        who = answer.strip()
        if not who:
            print(f"{approval_id} is pending; approve later with: opsbot approve {approval_id} --as <id>", file=out)
            return True
        if not USER_RE.fullmatch(who):
            print(f"not a Slack user id: {who!r}", file=out, flush=True)
            continue
        if await decide(who, "approve") != "pending":
            return True


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
    lines = Lines(asyncio.get_running_loop(), interactive)

    async def progress(message: str) -> None:
        print(f"... {plain(app.redactor.text(message))}", file=out, flush=True)

    while True:
        line = await lines.next()
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
        try:
            for shown in text_lines(reply, app.redactor.text):
                print(shown, file=out)
            out.flush()
        finally:
            if reply.result is not None:
                reply.result.close()
        if isinstance(reply.result, ApprovalResult) and reply.result.approval["state"] == "pending":
            if not await _ask_approval(app, reply.result, actor, lines, progress, out):
                print("bye", file=out, flush=True)
                return 0
