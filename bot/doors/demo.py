"""``opsbot serve --demo``: the bot on the demo world (``adapters.demo``), in the console or in Slack.

The demo lives in a temporary directory of its own (its ops.yml, its SQLite database, its backups),
never in ``OPSBOT_DB`` or ``./opsbot.db``, and is removed when the bot stops. ``make run`` starts it
when there is no ``./ops.yml``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from adapters.demo import DEMO_ENV, DemoWorld
from adapters.errors import ConfigError
from bot.config.settings import Settings
from commands.base import USER_RE

#: Slack user ids that may request and approve changes in the demo (comma-separated), for a demo in Slack
USERS_VAR = "OPSBOT_DEMO_USERS"
#: the demo's approver in the console (ops.yml of the demo)
APPROVER = "U0ALICE"
#: the three things to try first
TRY = (
    (f"status {DEMO_ENV}", "the shop's containers (state, version, cpu, memory) and health checks"),
    ("troubleshoot 504", "the guide's entry, live diagnostics (logs, redacted), whom to escalate to"),
    (f"deploy {DEMO_ENV} 1.1", f"approve it as {APPROVER} at the prompt; then deploy {DEMO_ENV} 1.2: its health"
     " fails and it rolls back by itself"),
)  # fmt: skip
MORE = f"backup {DEMO_ENV}, backups {DEMO_ENV}, restore {DEMO_ENV} <id>, history, audit, audit verify, help"


def demo_users() -> list[str]:
    """The Slack user ids of ``OPSBOT_DEMO_USERS``; ``ConfigError`` naming a malformed one."""
    users = [u.strip() for u in os.environ.get(USERS_VAR, "").split(",") if u.strip()]
    for user in users:
        if not USER_RE.fullmatch(user):
            raise ConfigError(f"{USERS_VAR}: {user!r} is not a Slack user id (U0123ABCD)")
    return users


@contextmanager
def demo_world(settings: Settings) -> Iterator[DemoWorld]:
    """Start the demo world and point ``settings`` at its ops.yml and database; remove it all at the end."""
    users = demo_users()
    world = DemoWorld(Path(tempfile.mkdtemp(prefix="opsbot-demo-")))
    try:
        config = world.root / "ops.yml"
        config.write_text(world.config_text(users), encoding="utf-8")
        settings.opsbot_config = str(config)
        settings.opsbot_db = str(world.root / "opsbot.db")
        yield world
    finally:
        world.close()


def banner(world: DemoWorld, *, slack: bool) -> str:
    """What the demo says first: what it is and three things to try (in Slack mode: one log line)."""
    if slack:
        users = demo_users()
        who = (f"{', '.join(users)} may request and approve changes (not their own)" if users else
               f"changes need {USERS_VAR}=U...,U... (Slack ids that may request and approve them)")  # fmt: skip
        tries = ", ".join(f"/ops {cmd}" for cmd, _ in TRY)
        return (f"opsbot DEMO world: an in-process shop, nothing real is touched (its state: {world.root}, removed"
                f" at exit); try {tries}; {who}")  # fmt: skip
    width = max(len(cmd) for cmd, _ in TRY)
    tries = "\n".join(f"  {cmd.ljust(width)}   {why}" for cmd, why in TRY)
    return (
        f"opsbot DEMO: the guide's shop (postgres, redis, api, worker) in-process, no Docker, no database, no"
        f" network; nothing real is touched.\nIts ops.yml, database and backups: {world.root} (removed at exit).\n"
        f"Three things to try at the prompt below:\n{tries}\nMore: {MORE}.\n"
        "Your own system: write ./ops.yml (examples/ops.yml shows every section), then `make run`."
    )
