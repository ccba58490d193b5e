"""Maintenance and security on the real Docker engine: image_age on images loaded with chosen build
times, db_maintenance whose command the container does not have, and deploy gates in a one-off
container of the new image (a marker file in the new image fails the scan; a scan that hangs)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from bot.config.settings import Settings
from bot.core.app import App
from bot.core.engine import Request
from tests.helpers.docker_engine import run_service
from tests.helpers.images import load_image

pytestmark = pytest.mark.docker

#: the scan of the gate: fails (with a finding) when the image carries /etc/vulnerable
SCAN = ("#!/bin/sh\nif [ -e /etc/vulnerable ]; then echo \"HIGH: $(cat /etc/vulnerable)\"; exit 1; fi\n"
        "echo 'no findings'\n")  # fmt: skip
#: a scan that never ends
HANG = "#!/bin/sh\necho scanning...\nexec sleep 3600\n"
NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def project(docker_engine):
    client = docker_engine.client
    scan = {"usr/local/bin/scan": (SCAN, 0o755)}
    load_image(client, "mt/api:1.0", created=NOW - timedelta(days=100), files=scan)
    load_image(client, "mt/worker:1.0", created=NOW - timedelta(days=40), files=scan)
    load_image(client, "mt/db:15", created=NOW - timedelta(days=2))
    marker = {"etc/vulnerable": ("CVE-2026-1234 in libfoo\n", 0o644)}
    load_image(client, "mt/api:2.0", created=NOW, files={**scan, **marker})
    load_image(client, "mt/api:2.1", created=NOW, files=scan)
    load_image(client, "mt/api:2.2", created=NOW, files={"usr/local/bin/scan": (HANG, 0o755)})
    name = f"mt{secrets.token_hex(3)}"
    for service, image in (("api", "mt/api:1.0"), ("worker", "mt/worker:1.0"), ("db", "mt/db:15")):
        run_service(client, name, service, image, ["sleep", "100000"])
    yield {"name": name, "client": client, "host": docker_engine.host}
    for c in client.containers.list(all=True, filters={"label": f"com.docker.compose.project={name}"}):
        c.remove(force=True)


@pytest.fixture
async def app(project, tmp_path):
    config = {
        "project": "mt",
        "access": {"operators": ["U0OPERATOR"], "approvers": ["U0APPROVER1"], "admins": ["U0ADMIN"]},
        "environments": {"prod": {
            "runtime": {"kind": "compose", "project": project["name"], "docker_host": project["host"]},
            "services": {"api": {"image": "mt/api", "deploy": True, "stop_timeout": "1s"},
                         "worker": {"image": "mt/worker"}, "db": {}},
            "backup": {"store": f"file://{tmp_path}/backups/", "database": {
                "service": "db", "dump": ["pg_dump", "app"], "restore": ["psql", "app"]}},
        }},
        "maintenance": {"tasks": [
            {"task": "image_age", "env": "prod", "every": "7d", "warning_days": 30, "critical_days": 90},
            {"task": "db_maintenance", "env": "prod", "every": "7d", "command": ["vacuumdb", "--all", "--analyze"]},
        ]},
        "security_maintenance": [{"item": "security_scan", "title": "Run security scans before release",
                                  "before": "deploy", "command": ["/usr/local/bin/scan"], "timeout": "3s"}],
    }  # fmt: skip
    path = tmp_path / "ops.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    app = App.build(Settings(opsbot_config=str(path), opsbot_db=str(tmp_path / "m.db")))
    yield app
    await app.close()


async def scheduled(app, *words):
    return await app.engine.handle(Request(actor="scheduler", door="scheduler", words=["maintenance", "prod", *words]))


def running_image(project, service):
    [c] = project["client"].containers.list(filters={"label": [f"com.docker.compose.project={project['name']}",
                                                               f"com.docker.compose.service={service}"]})  # fmt: skip
    return c.attrs["Config"]["Image"]


async def test_image_age_reads_each_running_image_build_time(app):
    reply = await scheduled(app, "image_age")
    data = reply.to_json()
    rows = {r["name"]: r for r in data["rows"]}
    assert rows["api"]["severity"] == "critical" and "mt/api:1.0: built" in rows["api"]["detail"]
    assert "100 days ago" in rows["api"]["detail"]
    assert rows["worker"]["severity"] == "warning" and "40 days ago" in rows["worker"]["detail"]
    assert rows["db"]["severity"] == "ok" and "2 days ago" in rows["db"]["detail"]
    assert data["outcome"] == "critical" and reply.exit_code == 1


async def test_db_maintenance_whose_command_the_container_lacks(app):
    data = (await scheduled(app, "db_maintenance")).to_json()
    assert data["outcome"] == "critical", data
    assert data["summary"].startswith("vacuumdb is not found in service db (exit 12")
    assert "executable file not found" in data["output"]
    assert await app.engine.maintenance.holding("prod", "db") is None


async def test_gates_refuse_a_vulnerable_image_pass_a_clean_one_and_bound_a_hang(app, project):
    admin = Request(actor="U0ADMIN", door="cli", text='deploy prod 2.0 --break-glass "release"')
    data = (await app.engine.handle(admin)).to_json()
    assert data["ok"] is False and running_image(project, "api") == "mt/api:1.0"
    assert "security gate security_scan (Run security scans before release) exited with 1" in data["problem"]
    assert "HIGH: CVE-2026-1234 in libfoo" in data["output"]
    [gate] = data["gates"]
    assert gate["image"] == "mt/api:2.0" and gate["exit_code"] == 1 and not gate["passed"]
    ones = project["client"].containers.list(all=True, filters={"label": "com.docker.compose.oneoff=True"})
    assert ones == []  # the one-off container is gone

    data = (await app.engine.handle(Request(actor="U0ADMIN", door="cli",
                                            text='deploy prod 2.1 --break-glass "fixed"'))).to_json()  # fmt: skip
    assert data["ok"] is True, data["problem"]
    assert data["gates"][0]["passed"] and "no findings" in data["gates"][0]["output"]
    assert running_image(project, "api") == "mt/api:2.1"

    data = (await app.engine.handle(Request(actor="U0ADMIN", door="cli",
                                            text='deploy prod 2.2 --break-glass "hang"'))).to_json()  # fmt: skip
    assert data["ok"] is False and "did not finish within 3 s" in data["problem"]
    assert "the deploy is refused" in data["problem"] and running_image(project, "api") == "mt/api:2.1"
    assert project["client"].containers.list(all=True, filters={"label": "com.docker.compose.oneoff=True"}) == []
    gates = [e for e in await app.engine.audit.entries(limit=80) if e["event"] == "gate"]
    assert [g["details"]["passed"] for g in reversed(gates)] == [False, True, False]
    history = await app.engine.deploys.list("prod")
    assert [h["outcome"] for h in history] == ["refused", "succeeded", "refused"]
