"""Start ``opsbot serve`` as a process, as Slack's counterpart sees it, and stop it."""

from __future__ import annotations

import asyncio
import os
import re
import resource
import signal
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.helpers.configs import example_config
from tests.helpers.http_servers import free_port

ROOT = Path(__file__).resolve().parents[2]
SECRET = "e2e-signing-secret-0123456789abcdef"
BOT_TOKEN = "xoxb-e2e-000000000-abcdefghijklmnop"


def shop_config(path: Path, shop: Any, *, extra_envs: dict[str, Any] | None = None,
                extra_services: tuple[str, ...] = ()) -> Path:  # fmt: skip
    """examples/ops.yml pointed at the test engine's shop project."""
    config = example_config()
    prod = config["environments"]["prod"]
    prod["url"] = shop.url
    prod["runtime"].update(docker_host=shop.host, project=shop.project)
    for name in extra_services:
        prod["services"][name] = {}
    config["environments"].update(extra_envs or {})
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def engine_free_config(tmp: Path, base: str) -> Path:
    """examples/ops.yml with prod's health checks on ``base`` and no container engine (health needs none)."""
    config = example_config()
    prod = config["environments"]["prod"]
    prod["url"] = base
    prod["runtime"]["docker_host"] = f"unix://{tmp}/no-docker.sock"
    path = tmp / "ops.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@dataclass
class BotProcess:
    """A running ``opsbot serve``."""

    proc: asyncio.subprocess.Process
    url: str
    log: Path
    #: when the test last sent something (monotonic), to find what answered it
    sent_at: float = 0.0

    @property
    def db(self) -> Path:
        """The bot's database file (OPSBOT_DB)."""
        return self.log.parent / "opsbot.db"

    def audit(self, where: str = "1", *params: Any) -> list[tuple[str, str, str]]:
        """(event, command, outcome) of the audit rows matching ``where``, oldest first."""
        conn = sqlite3.connect(self.db)
        try:
            sql = f"SELECT event, command, outcome FROM audit WHERE {where} ORDER BY id"
            return [tuple(r) for r in conn.execute(sql, params)]
        finally:
            conn.close()

    async def metric(self, name: str, **labels: str) -> float:
        """The value of one sample of /metrics (0 when it is not there yet)."""
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"{self.url}/metrics")).text
        wanted = {f'{k}="{v}"' for k, v in labels.items()}
        for line in text.splitlines():
            match = re.fullmatch(rf"{re.escape(name)}(?:\{{(.*)\}})? (\S+)", line)
            if match and set(filter(None, (match.group(1) or "").split(","))) == wanted:
                return float(match.group(2))
        return 0.0

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Signal the process and wait for it to exit; returns its exit code."""
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        return self.proc.returncode if self.proc.returncode is not None else -1

    def logs(self) -> str:
        """What the process logged so far."""
        return self.log.read_text(errors="replace")

    def assert_clean(self) -> None:
        """No traceback, unexpected error or leaked session in the log."""
        text = self.logs()
        for bad in ("Traceback", "unexpected error", "Unclosed", "Task was destroyed"):
            assert bad not in text, f"{bad!r} in the bot's log:\n{text[-3000:]}"


async def fence(bot: BotProcess, slack: Any, channel: str = "C0FENCE") -> Any:
    """A positive sign that the bot finished what it was given before: a later request (``escalate L1``
    in a channel of its own) answered in that channel. Returns its chat.update; every channel post of
    the earlier requests would have come before it."""
    from tests.helpers.slack import post_signed, slash_command_body

    since = time.monotonic()
    body = slash_command_body("escalate L1", channel_id=channel)
    status, answer, _ = await post_signed(f"{bot.url}/slack/events", body, SECRET)
    assert status == 200, answer
    return await slack.wait_for(
        "chat.update", lambda c: c.time >= since and c.args.get("channel") == channel and "L1" in c.args["text"], 30
    )


def bot_environ(tmp: Path, config: Path | None, slack_url: str, **env: str) -> dict[str, str]:
    """The environment of a bot process under test: this one's without its Slack and opsbot settings, then
    the stand-in's token, secret and URL, a database in ``tmp``, ``config`` (when given) and ``env``."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPSBOT_"))}
    environ.update(SLACK_SIGNING_SECRET=SECRET, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_API_URL=slack_url,
                   OPSBOT_DB=str(tmp / "opsbot.db"), LOG_LEVEL="info")  # fmt: skip
    if config is not None:
        environ["OPSBOT_CONFIG"] = str(config)
    environ.update(env)
    return environ


async def start_bot(tmp: Path, config: Path | None, slack_url: str, *, args: tuple[str, ...] = (),
                    nofile: int | None = None, **env: str) -> BotProcess:  # fmt: skip
    """Start the bot in HTTP mode against the Slack stand-in; wait until /health answers.

    ``args`` are added to ``opsbot serve`` (``--demo``); without a ``config``, OPSBOT_CONFIG is not set.
    ``nofile`` lowers the process's open-file limit (as a smaller machine or container has it).
    """
    port = free_port()
    log = tmp / f"bot-{port}.log"
    environ = bot_environ(tmp, config, slack_url, PORT=str(port), OPSBOT_HOST="127.0.0.1", **env)
    handle = log.open("wb")
    limit = None
    if nofile is not None:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]

        def limit() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "serve", *args, stdout=handle, stderr=asyncio.subprocess.STDOUT, env=environ,
        cwd=str(ROOT), preexec_fn=limit,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient() as client:
        while True:
            if proc.returncode is not None:
                raise RuntimeError(f"opsbot serve exited with {proc.returncode}:\n{log.read_text()}")
            try:
                if (await client.get(f"{url}/health", timeout=1)).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"opsbot serve did not answer /health:\n{log.read_text()}")
            await asyncio.sleep(0.1)
    return BotProcess(proc=proc, url=url, log=log)
