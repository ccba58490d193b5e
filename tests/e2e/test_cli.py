"""The opsbot process, as a user runs it: exit codes, JSON, the console, audit verify."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from tests.helpers.configs import example_config
from tests.helpers.http_servers import health_app, serve

ROOT = Path(__file__).resolve().parents[2]


def write_config(path: Path, base_url: str, *, viewers: list[str] | None = None) -> Path:
    config = example_config()
    prod = config["environments"]["prod"]
    prod["url"] = base_url
    # an engine that is not there: commands that need it say so in one line
    prod["runtime"]["docker_host"] = f"unix://{path.parent}/no-docker.sock"
    if viewers is not None:
        config["access"]["viewers"] = viewers
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


async def opsbot(*args: str, env: dict[str, str], stdin: bytes | None = None, timeout: float = 30):
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=str(ROOT),
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    text_out, text_err = out.decode(), err.decode()
    assert "Traceback" not in text_out + text_err
    return proc.returncode, text_out, text_err


@pytest.fixture
def env(tmp_path):
    e = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPSBOT_"))}
    e["OPSBOT_DB"] = str(tmp_path / "opsbot.db")
    e["OPSBOT_HISTORY"] = str(tmp_path / "history")
    return e


async def test_check_valid_invalid_and_schema(tmp_path, env):
    code, out, _ = await opsbot("check", "--config", str(ROOT / "examples" / "ops.yml"), env=env)
    assert code == 0 and "is valid" in out
    bad = tmp_path / "bad.yml"
    bad.write_text(
        (ROOT / "examples" / "ops.yml")
        .read_text()
        .replace("required: 1", "required: -1")
        .replace("startup:  [[postgres]", "startup:  [[postgrse]")
    )
    code, out, err = await opsbot("check", "--config", str(bad), env=env)
    assert code == 2
    assert "environments.prod.approval.required" in err
    assert "environments.prod.startup.0.0" in err
    code, out, _ = await opsbot("check", "--schema", env=env)
    assert code == 0 and "environments" in json.loads(out)["properties"]
    code, _, err = await opsbot("run", "--config", str(tmp_path / "missing.yml"), "help", env=env)
    assert code == 2 and "missing.yml" in err


async def test_run_exit_codes_json_and_audit(tmp_path, env):
    async with serve(health_app()) as base:
        config = str(write_config(tmp_path / "ops.yml", base))
        # all three checks answer ok -> exit 0, with the contract's keys
        code, out, _ = await opsbot("run", "--config", config, "--json", "health", "prod", env=env)
        assert code == 0, out
        data = json.loads(out)
        assert data["environment"] == "prod" and data["overall"] == "ok"
        assert {"name", "url", "ok", "status_code", "latency_ms", "error", "severity"} <= set(data["checks"][0])
        assert [c["name"] for c in data["checks"]] == ["API Health", "Database", "Cache"]

    # the server is gone: every check fails -> exit 1, still a clean answer
    code, out, _ = await opsbot("run", "--config", config, "health", "prod", env=env)
    assert code == 1 and "CRIT" in out
    # the engine does not answer: status says so in one line, exit 1
    code, out, _ = await opsbot("run", "--config", config, "--json", "status", "prod", env=env)
    data = json.loads(out)
    assert code == 1 and data["overall"] == "critical"
    assert any("does not answer" in e for e in data["errors"])
    # refused: exit 2, one line
    code, _, err = await opsbot("run", "--config", config, "stauts", "prod", env=env)
    assert code == 2 and "did you mean 'status'" in err.lower()
    code, _, err = await opsbot("run", "--config", config, "logs", "prod", "api;rm -rf /", env=env)
    assert code == 2 and "invalid name" in err
    code, _, err = await opsbot("run", "--config", config, "--as", "bob", "help", env=env)
    assert code == 2 and "user id" in err
    # a window too long for a date: refused with the maximum, never an "unexpected error"
    code, out, err = await opsbot("run", "--config", config, "logs", "prod", "api", "--since", "100000000d", env=env)
    assert code == 2 and "at most 365d" in err and "unexpected" not in out + err
    code, out, _ = await opsbot("run", "--config", config, "help", env=env)
    assert code == 0 and "troubleshoot <symptom words>" in out

    code, out, _ = await opsbot("audit", "list", "--json", "--limit", "100", env=env)
    rows = json.loads(out)
    keys = {"id", "ts", "actor", "source", "environment", "command", "event", "outcome", "details", "prev_hash", "hash"}
    assert rows and all(keys <= set(r) for r in rows)
    events = [(r["command"], r["event"]) for r in reversed(rows)]
    assert ("health prod", "requested") in events and ("health prod", "succeeded") in events
    assert any(e == "refused" and "rm -rf" in c for c, e in events)
    assert {r["source"] for r in rows} == {"cli", "config"}  # config: ops.yml as first loaded (guide export's history)
    assert [r["event"] for r in rows if r["source"] == "config"] == ["config-changed"]
    code, out, _ = await opsbot("audit", "list", "--env", "prod", "--json", "--limit", "100", env=env)
    prod_rows = json.loads(out)
    assert code == 0 and {r["environment"] for r in prod_rows} == {"prod"}
    assert [r["id"] for r in prod_rows] == [r["id"] for r in rows if r["environment"] == "prod"]
    assert len(prod_rows) < len(rows)  # help and the refusals name no environment: left out
    code, out, _ = await opsbot("audit", "list", "--env", "staging", "--json", env=env)
    assert code == 0 and json.loads(out) == []

    code, out, _ = await opsbot("audit", "verify", env=env)
    assert code == 0 and "intact" in out
    conn = sqlite3.connect(env["OPSBOT_DB"])
    conn.execute("UPDATE audit SET actor = 'U0SOMEONE' WHERE id = 2")
    conn.commit()
    code, _, err = await opsbot("audit", "verify", env=env)
    assert code == 1 and "entry 2" in err


async def test_access_denied_for_a_non_viewer(tmp_path, env):
    config = str(write_config(tmp_path / "ops.yml", "http://127.0.0.1:9", viewers=["U0VIEWER"]))
    code, _, err = await opsbot("run", "--config", config, "--as", "U0STRANGER", "health", "prod", env=env)
    assert code == 2 and "may not run health" in err
    code, out, _ = await opsbot("run", "--config", config, "--as", "U0VIEWER", "escalate", env=env)
    assert code == 0 and out.splitlines()[:2] == ["Escalation path:", "  L1: @S0ONCALL (First response)"]
    assert "  L4: Vendor support (External dependencies)" in out


async def test_console_runs_commands_and_ends_on_eof(tmp_path, env):
    config = str(write_config(tmp_path / "ops.yml", "http://127.0.0.1:9"))
    script = b"help\n/ops escalate L2\nstatus nowhere\n\nhelp logs\n"
    code, out, _ = await opsbot("serve", "--config", config, stdin=script, env=env)
    assert code == 0
    assert "opsbot console" in out and "Commands:" in out
    assert "Escalating to L2: @U0SENIOR (Complex issues)" in out and "<@" not in out  # plain text, no markup
    assert "unknown environment 'nowhere'" in out
    assert "Usage: logs <env> <service>" in out
    assert out.rstrip().endswith("bye")


async def test_serve_port_overrides_the_port_variable(tmp_path, env):
    from tests.e2e.botproc import BOT_TOKEN, SECRET
    from tests.helpers.http_servers import free_port
    from tests.helpers.slack import SlackStandIn

    config = str(write_config(tmp_path / "ops.yml", "http://127.0.0.1:9"))
    port, other = free_port(), free_port()
    async with SlackStandIn() as slack:
        env = {**env, "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SECRET, "SLACK_API_URL": slack.url,
               "PORT": str(other), "OPSBOT_HOST": "127.0.0.1", "OPSBOT_SCHEDULER": "off"}  # fmt: skip
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "serve", "--config", config, "--port", str(port), env=env, cwd=str(ROOT),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = asyncio.get_running_loop().time() + 30
            async with httpx.AsyncClient() as client:
                while True:
                    assert proc.returncode is None, "opsbot serve exited"
                    try:
                        answer = await client.get(f"http://127.0.0.1:{port}/health", timeout=1)
                        break
                    except httpx.HTTPError:
                        assert asyncio.get_running_loop().time() < deadline, f"nothing answers on --port {port}"
                        await asyncio.sleep(0.1)
                assert answer.json() == {"status": "ok"}
                with pytest.raises(httpx.ConnectError):  # $PORT is not where it listens
                    await client.get(f"http://127.0.0.1:{other}/health", timeout=5)
        finally:
            if proc.returncode is None:
                proc.terminate()
            out, _ = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, out.decode()
        assert f"serving Slack over HTTP on 127.0.0.1:{port}" in out.decode()
