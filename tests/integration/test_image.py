"""opsbot in a container, proven: the README's "Run it in production", top to bottom, on a real engine.

The image is built from the Dockerfile with the docker CLI as the README says, on a private engine
(overlay2 where the kernel allows it, else vfs), from a Debian base made here (debootstrap) and a
wheelhouse (pip inside the build cannot reach the index here: the README's offline build). Then
deploy/compose.yml runs it with the real Compose tool next to the tests' shop, whose engine it
reaches through the mounted socket, and Slack's part is played by the Web API stand-in.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import missing
from tests.e2e.botproc import BOT_TOKEN, SECRET
from tests.helpers.docker_engine import EngineMissing, start_engine
from tests.helpers.http_servers import free_port
from tests.helpers.image import CACHE, ImageToolsMissing, build_context, debian_base, requirements, wheelhouse
from tests.helpers.slack import SlackStandIn, post_signed, slash_command_body
from tests.helpers.smtp import SmtpServer

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parents[2]
BASE = "opsbot-test/debian:bookworm"
#: what this machine adds to the README's build: its engine has no bridge, and no registry for the base
MACHINE = ["--network", "host", "--build-arg", f"BASE={BASE}"]


def readme_steps() -> list[str]:
    """The commands of README.md's "Run it in production", in order."""
    section = (ROOT / "README.md").read_text().split("## Run it in production", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip() and line[0] != "#"]


def docker(engine, *argv: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The docker CLI (or ``docker-compose``) on ``engine``, the classic builder (no buildx here)."""
    env = {**os.environ, "DOCKER_HOST": engine.host, "DOCKER_BUILDKIT": "0", "COMPOSE_DOCKER_CLI_BUILD": "0"}
    done = subprocess.run(list(argv), cwd=cwd, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert not check or done.returncode == 0, f"{shlex.join(argv)} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def build_engine():
    """A private engine for the image: overlay2 makes each build step cheap where vfs copies the root fs."""
    if os.geteuid() != 0:
        missing("the private Docker engine needs root")
    if shutil.which("docker") is None or shutil.which("docker-compose") is None:
        missing("the docker CLI or docker-compose is not installed (run: bash scripts/install-engines)")
    try:
        engine = start_engine(storage_driver="overlay2")
    except EngineMissing as exc:
        missing(str(exc))
    except RuntimeError:
        engine = start_engine()
    yield engine
    engine.stop()


@pytest.fixture(scope="module")
def checkout(build_engine, tmp_path_factory):
    """A checkout with the wheelhouse, and the image built in it by the README's offline build line."""
    times = {}
    try:
        base, times["base_s"] = debian_base()
        wheels, times["wheels_s"] = wheelhouse()
    except ImageToolsMissing as exc:
        missing(str(exc))
    start = time.monotonic()
    with base.open("rb") as tar:
        build_engine.client.api.import_image(src=tar, repository=BASE.split(":")[0], tag=BASE.split(":")[1])
    times["import_s"] = time.monotonic() - start
    root = build_context(tmp_path_factory.mktemp("image") / "checkout", wheels)
    shutil.copytree(ROOT / "deploy", root / "deploy")
    shutil.copytree(ROOT / "examples", root / "examples")
    [line] = [s for s in readme_steps() if s.startswith("docker build") and "PIP_NO_INDEX" in s]
    argv = shlex.split(line)
    start = time.monotonic()
    docker(build_engine, *argv[:2], *MACHINE, *argv[2:], cwd=root)
    times["build_s"] = time.monotonic() - start
    (CACHE / "last-image-build.json").write_text(json.dumps({k: round(v, 1) for k, v in times.items()}))
    return root


def test_the_image_is_slim_non_root_and_healthchecked(build_engine, checkout):
    client = build_engine.client
    image = client.images.get("opsbot")
    config = image.attrs["Config"]
    assert config["User"] == "opsbot" and config["StopSignal"] == "SIGTERM" and config["Entrypoint"] == ["opsbot"]
    assert "/health" in " ".join(config["Healthcheck"]["Test"]) and "OPSBOT_DB=/data/opsbot.db" in config["Env"]
    added = image.attrs["Size"] - client.images.get(BASE).attrs["Size"]
    assert added < 150 * 2**20, f"the image adds {added / 2**20:.0f} MiB to its base"
    shell = client.containers.run("opsbot", ["-c", "id -u; ls /opt/opsbot/bin; ls / ; ls -ld /data"],
                                  entrypoint="/bin/sh", remove=True).decode()  # fmt: skip
    uid, *rest = shell.split("\n")
    assert uid == "10001" and "opsbot" in rest and "pip" not in rest and "src" not in rest and "wheels" not in rest
    assert re.search(r"opsbot +opsbot .* /data", shell)
    assert "opsbot DEMO" in client.containers.run("opsbot", ["serve", "--demo"], remove=True).decode()


def readme_ops_yml(path: Path, shop, smtp: SmtpServer) -> None:
    """The example's guide pointed at the tests' shop and mail server (what "your guide" means here)."""
    config = yaml.safe_load(path.read_text())
    prod = config["environments"]["prod"]
    prod["url"] = shop.url
    prod["runtime"]["project"] = shop.project  # docker_host stays unix:///var/run/docker.sock: the mounted socket
    config["alerting"]["email"]["smtp_url"] = smtp.url  # the info digest goes out on a weekday's first start
    config["schedules"] = []
    path.write_text(yaml.safe_dump(config, sort_keys=False))


@pytest.mark.asyncio(loop_scope="module")
async def test_run_it_in_production_as_the_readme_says(build_engine, checkout, docker_engine, shop):
    deploy = checkout / "deploy"
    port = free_port()
    compose = ["docker-compose"]  # `docker compose` (v2) is not installed here: Debian's v1 reads the same file
    tried: list[str] = []
    smtp = SmtpServer().start()
    async with SlackStandIn() as slack:
        try:
            for step in readme_steps():
                argv = [a.replace("$PWD", str(deploy)) for a in shlex.split(step)]
                if step == "docker build -t opsbot .":
                    tried.append("online build: not here (pip inside the build cannot reach the index)")
                elif argv[:2] == ["pip", "wheel"]:
                    assert argv == ["pip", "wheel", ".", "setuptools", "-w", "wheels"], step
                    assert any(r.startswith("setuptools") for r in requirements())  # the cached wheelhouse has it
                    tried.append("wheelhouse: the cached one, same requirements")
                elif argv[:2] == ["docker", "build"]:
                    tried.append("offline build: done by the fixture")
                elif argv == ["cd", "deploy"]:
                    pass
                elif argv[0] == "cp":
                    subprocess.run(argv, cwd=deploy, check=True)
                    tried.append(step)
                    if argv[-1] == ".env":
                        env = (deploy / ".env").read_text()
                        sock = docker_engine.host.removeprefix("unix://")
                        fill = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SECRET, "PORT": str(port),
                                "DOCKER_GID": str(os.stat(sock).st_gid)}  # fmt: skip
                        for name, value in fill.items():
                            env = re.sub(rf"^{name}=.*$", f"{name}={value}", env, flags=re.M)
                        env += f"SLACK_API_URL={slack.url}\nOPSBOT_HOST=127.0.0.1\nDOCKER_SOCKET={sock}\n"
                        env += f"SMTP_PASSWORD={smtp.password}\n"
                        (deploy / ".env").write_text(env)
                    else:
                        readme_ops_yml(deploy / "ops.yml", shop, smtp)
                elif argv[:2] == ["docker", "run"]:
                    assert "is valid: project shop" in docker(build_engine, *argv, cwd=deploy).stdout
                    tried.append(step)
                elif argv[:2] == ["docker", "compose"]:
                    done = docker(build_engine, *compose, *argv[2:], cwd=deploy)
                    if argv[-1] == "opsbot":  # the logs
                        assert "serving Slack over HTTP" in done.stdout and "WARNING" not in done.stdout, done.stdout
                    tried.append(step)
                elif argv[0] == "curl":
                    url = argv[-1].replace(":3000/", f":{port}/")
                    assert await answers(url) == {"status": "ok"}
                    tried.append(step)
                else:
                    pytest.fail(f"README step {step!r} is not tried by this test: teach it")
            assert len(tried) >= 8, tried

            # beyond the README: Slack's signed /ops status, and the database route
            async with httpx.AsyncClient() as client:
                assert (await client.get(f"http://127.0.0.1:{port}/health/db")).json() == {"status": "ok"}
            since = time.monotonic()
            body = slash_command_body("status prod", user_id="U0OPERATOR")
            status, _, _ = await post_signed(f"http://127.0.0.1:{port}/slack/events", body, SECRET)
            assert status == 200
            update = await slack.wait_for("chat.update", lambda c: c.time >= since and "prod:" in c.args["text"], 60)
            assert "api" in json.dumps(update.args["blocks"]) and "running" in json.dumps(update.args["blocks"])
            # the image's own HEALTHCHECK command passes in the running container
            check = build_engine.client.images.get("opsbot").attrs["Config"]["Healthcheck"]["Test"]
            assert check[0] == "CMD"
            docker(build_engine, *compose, "exec", "-T", "opsbot", *check[1:], cwd=deploy)

            # a replacement keeps the state: the first container's request is in the new one's audit log
            first = docker(build_engine, *compose, "ps", "-q", "opsbot", cwd=deploy).stdout.strip()
            docker(build_engine, *compose, "up", "-d", "--force-recreate", cwd=deploy)
            second = docker(build_engine, *compose, "ps", "-q", "opsbot", cwd=deploy).stdout.strip()
            assert second and second != first
            assert await answers(f"http://127.0.0.1:{port}/health") == {"status": "ok"}
            listed = docker(build_engine, *compose, "exec", "-T", "opsbot", "opsbot", "audit", "list", "--json",
                            cwd=deploy).stdout  # fmt: skip
            assert any(e["command"] == "status prod" and e["actor"] == "U0OPERATOR" for e in json.loads(listed))
            verified = docker(build_engine, *compose, "exec", "-T", "opsbot", "opsbot", "audit", "verify", cwd=deploy)
            assert verified.stdout.startswith("audit log intact")

            # SIGTERM drains and exits 0 within the grace period
            docker(build_engine, *compose, "stop", cwd=deploy)
            state = build_engine.client.containers.get(second).attrs["State"]
            assert state["ExitCode"] == 0, state
            logs = build_engine.client.containers.get(second).logs().decode()
            assert "stopping: no new requests" in logs and "[INFO] [-] [stopped]" in logs
            # the back process ran in the read-only, non-root container (and was not replaced by the front)
            assert "runs procedures, clicks, schedules and alerts" in logs and "the back process exited" not in logs
            assert "Traceback" not in logs and "WARNING" not in logs
        finally:
            docker(build_engine, *compose, "down", "--volumes", cwd=deploy, check=False)
            smtp.stop()


async def answers(url: str, timeout: float = 60) -> object:
    """The JSON ``url`` answers once it answers 200 (the container may still be starting)."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while True:
            try:
                r = await client.get(url, timeout=2)
                if r.status_code == 200:
                    return r.json()
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"{url} did not answer 200 within {timeout}s"
            await asyncio.sleep(0.25)
