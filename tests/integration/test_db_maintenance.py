"""db_maintenance on a real PostgreSQL, run in the database service's container through the Docker exec
stream: the vacuum and analyze really run (pg_stat_user_tables says so), a database that refuses, a
command that hangs.

The container is the test engine's busybox with the host's /usr mounted read-only (the host's own
vacuumdb and psql, and their libraries), on the host network: it reaches the test cluster on loopback.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import UTC, datetime

import pytest
import yaml

from bot.config.settings import Settings
from bot.core.app import App
from bot.core.engine import Request
from tests.helpers.docker_engine import run_service
from tests.helpers.images import load_image

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def service(docker_engine):
    """The ``db`` service: a container whose /usr is the host's (so it has the host's PostgreSQL clients)."""
    client = docker_engine.client
    load_image(client, "mt/pgclient:1", created=datetime.now(UTC), links={"lib": "usr/lib", "lib64": "usr/lib64"})
    project = f"pg{secrets.token_hex(3)}"
    container = run_service(client, project, "db", "mt/pgclient:1", ["sleep", "100000"],
                            volumes={"/usr": {"bind": "/usr", "mode": "ro"}})  # fmt: skip
    yield {"project": project, "host": docker_engine.host}
    container.remove(force=True)


def tool(postgres, name, *args):
    """argv of a PostgreSQL client in the container, over TCP to the test cluster."""
    return [str(postgres.bin / name), "-h", "127.0.0.1", "-p", str(postgres.port), "-U", "postgres", *args]


@pytest.fixture
def database(postgres):
    name = f"mt_{secrets.token_hex(3)}"
    postgres.psql(f"CREATE DATABASE {name}")
    postgres.psql("CREATE TABLE orders (id serial PRIMARY KEY, qty int NOT NULL);"
                  "INSERT INTO orders (qty) SELECT g FROM generate_series(1, 20000) g;"
                  "DELETE FROM orders WHERE id % 2 = 0", db=name)  # fmt: skip
    yield name
    postgres.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def build(tmp_path, service, command, **task):
    config = {
        "project": "db", "access": {"operators": ["U0OPERATOR"], "admins": ["U0ADMIN"]},
        "environments": {"prod": {
            "runtime": {"kind": "compose", "project": service["project"], "docker_host": service["host"]},
            "services": {"db": {}},
            "backup": {"store": f"file://{tmp_path}/b/", "database": {"service": "db", "dump": ["true"],
                                                                         "restore": ["true"]}},
        }},
        "maintenance": {"tasks": [{"task": "db_maintenance", "env": "prod", "every": "7d", "command": command,
                                   **task}]},
    }  # fmt: skip
    path = tmp_path / "ops.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return App.build(Settings(opsbot_config=str(path), opsbot_db=str(tmp_path / "d.db")))


def stats(postgres, db) -> tuple[str, str]:
    return tuple(postgres.psql("SELECT coalesce(last_vacuum::text, ''), coalesce(last_analyze::text, '') "
                               "FROM pg_stat_user_tables WHERE relname = 'orders'", db=db).split("|"))  # fmt: skip


async def test_vacuum_and_analyze_really_run(tmp_path, postgres, database, service):
    assert stats(postgres, database) == ("", "")
    app = await build(tmp_path, service, tool(postgres, "vacuumdb", "--analyze", "-d", database))
    seen: list[str] = []

    async def progress(message):
        seen.append(message)

    try:
        reply = await app.engine.handle(Request(actor="scheduler", door="scheduler", progress=progress,
                                                words=["maintenance", "prod", "db_maintenance"]))  # fmt: skip
        data = reply.to_json()
        assert reply.exit_code == 0 and data["outcome"] == "ok", data
        assert data["summary"].startswith("`") and "done in service db" in data["summary"]
        assert f'vacuuming database "{database}"' in data["output"]
        assert any("db_maintenance prod" in m for m in seen)  # progress, line by line
        deadline = time.monotonic() + 30
        while "" in stats(postgres, database) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)  # the statistics are flushed a moment after the vacuum
        vacuumed, analyzed = stats(postgres, database)
        assert vacuumed and analyzed
        assert (await app.engine.maintenance.last("prod", "db_maintenance"))["severity"] == "ok"
    finally:
        await app.close()


async def test_a_database_that_refuses_the_vacuum(tmp_path, postgres, database, service):
    postgres.psql(f"ALTER DATABASE {database} ALLOW_CONNECTIONS false")
    app = await build(tmp_path, service, tool(postgres, "vacuumdb", "--analyze", "-d", database))
    try:
        reply = await app.engine.handle(Request(actor="scheduler", door="scheduler",
                                                words=["maintenance", "prod", "db_maintenance"]))  # fmt: skip
        data = reply.to_json()
        assert reply.exit_code == 1 and data["outcome"] == "critical"
        assert "exited with 1" in data["summary"] and "not currently accepting connections" in data["summary"]
    finally:
        postgres.psql(f"ALTER DATABASE {database} ALLOW_CONNECTIONS true")
        await app.close()
    assert stats(postgres, database) == ("", "")  # nothing was vacuumed


async def test_a_command_that_hangs_is_stopped_at_its_timeout(tmp_path, postgres, database, service):
    app = await build(tmp_path, service, tool(postgres, "psql", "-d", database, "-c", "SELECT pg_sleep(600)"),
                      timeout="2s")
    try:
        reply = await app.engine.handle(Request(actor="scheduler", door="scheduler",
                                                words=["maintenance", "prod", "db_maintenance"]))  # fmt: skip
        data = reply.to_json()
        assert data["outcome"] == "critical" and "did not finish within 2s: it was stopped" in data["summary"]
        assert await app.engine.maintenance.holding("prod") is None
    finally:
        await app.close()
