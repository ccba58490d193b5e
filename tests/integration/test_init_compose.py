"""``opsbot init --from-compose`` on a project brought up by the real Compose tool, then used as it is:
``status`` shows every service running, a deploy works, and Compose still knows its containers."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import missing
from tests.helpers.docker_engine import build_image
from tests.helpers.http_servers import free_port

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parents[2]
API = (
    'mkdir -p /www/health && echo \'{"status": "ok"}\' > /www/health/index.html && '
    "exec httpd -f -p 127.0.0.1:$$PORT -h /www"  # $$: Compose would expand $PORT itself
)
IDLE = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]


def compose_file(port: int, tag: str) -> dict[str, Any]:
    """A shop as a Compose file: its own api and worker, an official postgres and redis (all busybox here)."""
    common = {"network_mode": "host", "stop_grace_period": "2s"}
    return {
        "services": {
            "postgres": {**common, "image": "postgres:15", "command": IDLE,
                         "environment": {"POSTGRES_USER": "app", "POSTGRES_PASSWORD": "s3cret-pw"}},
            "redis": {**common, "image": "redis:7", "command": IDLE},
            "api": {**common, "image": f"{tag}/api:1.0", "command": ["sh", "-c", API],
                    "environment": {"PORT": str(port)}, "depends_on": ["postgres", "redis"],
                    "healthcheck": {"test": ["CMD", "wget", "-q", "-O-", f"http://127.0.0.1:{port}/health"],
                                    "interval": "1s", "timeout": "2s", "retries": 3}},
            "worker": {**common, "image": f"{tag}/worker:1.0", "command": IDLE, "depends_on": ["api"]},
        }
    }  # fmt: skip


@pytest.fixture
def compose_project(docker_engine: Any, tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    tool = shutil.which("docker-compose")
    if tool is None:
        missing("docker-compose is not installed (run: bash scripts/install-engines)")
    tag = f"init{secrets.token_hex(3)}"
    for repo, version in (("postgres", "15"), ("redis", "7"), (f"{tag}/api", "1.0"), (f"{tag}/api", "1.1"),
                          (f"{tag}/worker", "1.0"), (f"{tag}/worker", "1.1")):  # fmt: skip
        build_image(docker_engine.client, repo, version)
    directory = tmp_path / tag  # Compose names the project after its directory
    directory.mkdir()
    (directory / "docker-compose.yml").write_text(yaml.safe_dump(compose_file(free_port(), tag), sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPSBOT_", "COMPOSE_"))}
    env.update(DOCKER_HOST=docker_engine.host, OPSBOT_DB=str(tmp_path / "opsbot.db"),
               OPSBOT_HISTORY=str(tmp_path / "history"))  # fmt: skip
    up = subprocess.run([tool, "up", "-d"], cwd=directory, env=env, capture_output=True, text=True, timeout=300)
    assert up.returncode == 0, up.stderr
    try:
        yield directory, env
    finally:
        subprocess.run([tool, "down", "-t", "1"], cwd=directory, env=env, capture_output=True, timeout=300)


def opsbot(directory: Path, env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "bot", *args], cwd=directory, env={**env, "PYTHONPATH": str(ROOT)},
                          input=stdin, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    return done


def status(directory: Path, env: dict[str, str], deadline: float = 120) -> dict[str, Any]:
    """``opsbot run --json status prod``, polled until it is ok (health checks pass) or the deadline."""
    until = time.monotonic() + deadline
    while True:
        done = opsbot(directory, env, "run", "--json", "status", "prod")
        report: dict[str, Any] = json.loads(done.stdout)
        if report["overall"] == "ok" or time.monotonic() > until:
            return report
        time.sleep(0.5)


def test_init_writes_an_ops_yml_that_works_at_once(compose_project: tuple[Path, dict[str, str]]) -> None:
    directory, env = compose_project
    tag = directory.name
    made = opsbot(directory, env, "init", "--from-compose", "docker-compose.yml")
    assert made.returncode == 0, made.stderr
    assert "4 services (2 deployed by version: api, worker)" in made.stdout
    config = yaml.safe_load((directory / "ops.yml").read_text())
    prod = config["environments"]["prod"]
    assert prod["runtime"] == {"kind": "compose", "docker_host": env["DOCKER_HOST"], "project": tag}
    assert prod["startup"] == [["postgres", "redis"], ["api"], ["worker"]]
    assert "s3cret-pw" not in (directory / "ops.yml").read_text()

    report = status(directory, env)
    assert report["overall"] == "ok", json.dumps(report, indent=1)
    states = {s["name"]: s["state"] for s in report["services"]}
    assert states == {"postgres": "running", "redis": "running", "api": "running", "worker": "running"}
    assert [c["name"] for c in report["checks"]] == ["api"] and report["checks"][0]["ok"]

    # a deploy of the generated config, confirmed in the console as its approval.required: 0 asks
    console = opsbot(directory, env, "serve", stdin="deploy prod 1.1\ny\n")
    assert console.returncode == 0, console.stderr
    assert "Confirm deploy prod 1.1?" in console.stdout, console.stdout
    report = status(directory, env)
    versions = {s["name"]: s["version"] for s in report["services"]}
    assert report["overall"] == "ok" and versions["api"] == "1.1" and versions["worker"] == "1.1", report
    assert versions["postgres"] == "15"
    history = opsbot(directory, env, "run", "--json", "history", "prod")
    assert '"1.1"' in history.stdout

    # Compose still lists the project's services after opsbot replaced two of them
    ps = subprocess.run(["docker-compose", "ps"], cwd=directory, env=env, capture_output=True, text=True, timeout=120)
    assert ps.returncode == 0, ps.stderr
    listed = [line for line in ps.stdout.splitlines() if line.startswith(f"{tag}_")]
    assert {line.split()[0].split("_")[1] for line in listed} == {"postgres", "redis", "api", "worker"}, ps.stdout
    assert all(" Up " in f" {line} " for line in listed), ps.stdout
