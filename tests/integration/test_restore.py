"""restore behind approval on real PostgreSQL with services on the real Docker engine, and dumps and
restores run inside a container through the Docker exec stream (both ways)."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import secrets
import subprocess
import tarfile
import time

import pytest
import yaml
import zstandard

from adapters.compose.runtime import ComposeRuntime
from bot.config.settings import Settings
from bot.core.app import App
from bot.core.engine import Request
from tests.helpers.docker_engine import API_SCRIPT, WORKER_SCRIPT, build_image, run_service
from tests.helpers.http_servers import free_port

pytestmark = [pytest.mark.docker, pytest.mark.postgres, pytest.mark.s3]
OPERATOR, APPROVER = "U0OPERATOR", "U0APPROVER1"


def unzstd(data: bytes) -> bytes:
    return zstandard.ZstdDecompressor().decompressobj(read_across_frames=True).decompress(data)


def sql_lines(n: int) -> bytes:
    return b"".join(b"INSERT INTO t VALUES (%d, '%s');\n" % (i, secrets.token_hex(16).encode()) for i in range(n))


@pytest.fixture(scope="module")
def project(docker_engine):
    client = docker_engine.client
    build_image(client, "rs/app", "1.0")
    name = f"rs{secrets.token_hex(3)}"
    port = free_port()
    made = {
        "api": run_service(client, name, "api", "rs/app:1.0", ["sh", "-c", API_SCRIPT], env={"PORT": str(port)}),
        "worker": run_service(client, name, "worker", "rs/app:1.0", ["sh", "-c", WORKER_SCRIPT]),
        "db": run_service(client, name, "db", "rs/app:1.0", ["sh", "-c", "mkdir -p /data; exec sleep 100000"]),
    }
    dump = sql_lines(60_000)  # about 4 MiB
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        info = tarfile.TarInfo("dump.sql")
        info.size = len(dump)
        tar.addfile(info, io.BytesIO(dump))
    deadline = time.monotonic() + 30
    while not client.api.inspect_container(made["db"].id)["State"]["Running"]:  # exec needs it running
        assert time.monotonic() < deadline, "the db container did not start"
        time.sleep(0.05)
    made["db"].exec_run(["mkdir", "-p", "/data"])
    assert made["db"].put_archive("/data", archive.getvalue())
    yield {"name": name, "port": port, "host": docker_engine.host, "client": client, "containers": made, "dump": dump}
    for c in made.values():
        c.remove(force=True)


@pytest.fixture
async def app(project, postgres, moto_s3, tmp_path):
    db = f"shop_{secrets.token_hex(3)}"
    postgres.psql(f"CREATE DATABASE {db}")
    postgres.psql("CREATE TABLE orders (id int PRIMARY KEY, item text); "
                  "INSERT INTO orders SELECT g, 'item ' || g FROM generate_series(1, 5000) g", db=db)  # fmt: skip
    bucket = f"rs-{secrets.token_hex(4)}"
    moto_s3.client().create_bucket(Bucket=bucket)
    runtime = {"kind": "compose", "project": project["name"], "docker_host": project["host"]}
    quick = {"stop_timeout": "1s"}
    config = {
        "project": "rs",
        "access": {"operators": [OPERATOR], "approvers": [APPROVER], "admins": ["U0ADMIN"]},
        "environments": {
            "prod": {
                "url": f"http://127.0.0.1:{project['port']}", "runtime": runtime, "approval": {"required": 1},
                "services": {"api": quick, "worker": quick},
                "health_checks": [{"name": "API", "url": "{url}/health", "expect": {"status": "ok"}}],
                "shutdown": [["api", "worker"]], "startup": [["api", "worker"]],
                "backup": {"store": f"s3://{bucket}/", "database": {
                    "dump": postgres.tool("pg_dump", "--no-owner", "--clean", "--if-exists", "-d", db),
                    "restore": postgres.tool("psql", "-v", "ON_ERROR_STOP=1", "-q", db)}},
            },
            "box": {
                "runtime": runtime, "approval": {"required": 1}, "services": {"db": quick},
                "backup": {"store": f"file://{tmp_path}/store/", "database": {
                    "service": "db", "dump": ["cat", "/data/dump.sql"], "restore": ["tee", "/data/restored.sql"]}},
            },
            "broken": {
                "runtime": runtime, "services": {"db": quick},
                "backup": {"store": f"file://{tmp_path}/store/", "database": {
                    "service": "db", "dump": ["cat", "/data/missing.sql"], "restore": ["true"]}},
            },
        },
    }  # fmt: skip
    path = tmp_path / "ops.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    app = App.build(Settings(opsbot_config=str(path), opsbot_db=str(tmp_path / "o.db")))
    app.test_db = db
    app.test_bucket = bucket
    yield app
    await app.close()
    postgres.psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


async def handle(app, text, actor=OPERATOR):
    return await app.engine.handle(Request(actor=actor, door="cli", text=text))


def started_at(project, service):
    return project["client"].containers.get(project["containers"][service].id).attrs["State"]["StartedAt"]


async def test_restore_after_dropped_table_behind_approval(app, project, postgres, moto_s3):
    backup = (await handle(app, "backup prod")).to_json()["backup"]
    postgres.psql("DROP TABLE orders", db=app.test_db)
    before = {s: started_at(project, s) for s in ("api", "worker")}

    reply = await handle(app, f"restore prod {backup['id']}")
    assert reply.exit_code == 0 and reply.to_json()["approval"]["state"] == "pending"
    steps = reply.to_json()["plan"]["steps"]
    assert "safety backup" in steps[1] and steps[2].startswith("stop api, worker") and "zstd -d" in steps[3]
    approval = reply.to_json()["approval"]["id"]
    own = await app.engine.decide(Request(actor=OPERATOR, door="cli"), approval, "approve")
    assert own.exit_code == 2 and "someone else must approve" in own.error
    assert postgres.psql("SELECT to_regclass('orders') IS NULL", db=app.test_db) == "t"  # nothing ran

    done = await app.engine.decide(Request(actor=APPROVER, door="cli"), approval, "approve")
    result = done.to_json()["result"]
    assert done.exit_code == 0 and result["ok"], result
    assert [s["name"] for s in result["steps"]] == ["check the backup", "safety backup", "stop the services",
                                                   "restore", "start the services", "verify"]  # fmt: skip
    assert postgres.psql("SELECT count(*) FROM orders", db=app.test_db) == "5000"
    after = {s: started_at(project, s) for s in ("api", "worker")}
    assert all(after[s] != before[s] for s in after)  # stopped and started again

    safety = result["safety_backup"]
    listed = (await handle(app, "backups prod")).to_json()["backups"]
    assert {x["id"]: x["kind"] for x in listed} == {safety["id"]: "safety", backup["id"]: "backup"}
    body = moto_s3.client().get_object(Bucket=app.test_bucket, Key=f"prod/db/{safety['id']}.sql.zst")["Body"].read()
    assert b"CREATE TABLE public.orders" not in unzstd(body)  # the state before the restore: no table
    events = [e["event"] for e in await app.engine.audit.entries(env="prod", limit=100)]
    assert events.count("restore-step") == 6 and "backup-stored" in events and "succeeded" in events


async def test_an_old_gzip_backup_restores(app, postgres, moto_s3):
    # as opsbot made backups before zstd: `.sql.gz`, gzip, metadata without a compression key
    dump = subprocess.run(postgres.tool("pg_dump", "--no-owner", "--clean", "--if-exists", "-d", app.test_db),
                          capture_output=True, check=True, timeout=120).stdout  # fmt: skip
    body = gzip.compress(dump, 6)
    old_id = "20250101T000000Z-0a0b0c"
    meta = {"size": str(len(body)), "sha256": hashlib.sha256(body).hexdigest(), "kind": "backup",
            "requester": OPERATOR, "command": "pg_dump", "created-at": "2025-01-01T00:00:00+00:00"}  # fmt: skip
    moto_s3.client().put_object(Bucket=app.test_bucket, Key=f"prod/db/{old_id}.sql.gz", Body=body, Metadata=meta)
    postgres.psql("DELETE FROM orders WHERE id > 10", db=app.test_db)

    verified = (await handle(app, f"verify-backup prod {old_id}")).to_json()["checks"]
    assert {c["name"]: c["severity"] for c in verified}["gzip"] == "ok"
    reply = await handle(app, f"restore prod {old_id}")
    assert "through gunzip into" in reply.to_json()["plan"]["steps"][3]
    done = await app.engine.decide(Request(actor=APPROVER, door="cli"), reply.to_json()["approval"]["id"], "approve")
    assert done.to_json()["result"]["ok"], done.to_json()
    assert postgres.psql("SELECT count(*) FROM orders", db=app.test_db) == "5000"
    safety = done.to_json()["result"]["safety_backup"]
    assert safety["location"].endswith(".sql.zst")  # new backups: zstd


async def test_dump_and_restore_inside_a_container(app, project, tmp_path):
    reply = await handle(app, "backup box")
    assert reply.exit_code == 0, reply.error
    b = reply.to_json()["backup"]
    stored = (tmp_path / "store" / "box" / "db" / f"{b['id']}.sql.zst").read_bytes()
    assert unzstd(stored) == project["dump"] and hashlib.sha256(stored).hexdigest() == b["sha256"]

    pending = await handle(app, f"restore box {b['id']}")
    approve = app.engine.decide(Request(actor=APPROVER, door="cli"), pending.to_json()["approval"]["id"], "approve")
    done = await asyncio.wait_for(approve, 120)
    assert done.to_json()["result"]["ok"], done.to_json()
    out = project["containers"]["db"].exec_run(["sha256sum", "/data/restored.sql"]).output.decode()
    assert out.split()[0] == hashlib.sha256(project["dump"]).hexdigest()  # every byte through stdin


async def test_failing_dump_in_a_container_leaves_no_object(app, tmp_path):
    reply = await handle(app, "backup broken")
    assert reply.exit_code == 1 and "cat in service db exited with 1" in reply.error
    assert "/data/missing.sql" in reply.error  # the tail of its stderr
    assert not [p for p in (tmp_path / "store").rglob("*") if p.is_file()]  # not even a temporary file


async def test_exec_stream_both_ways(project):
    runtime = ComposeRuntime(project["host"], project["name"])
    data = secrets.token_bytes(3 * 2**20)
    try:
        async with runtime.exec_stream("db", ["sha256sum"], stdin=True) as proc:
            for i in range(0, len(data), 100_000):
                await proc.write(data[i : i + 100_000])
            await proc.close_stdin()
            out = b""
            while chunk := await proc.read():
                out += chunk
            assert await proc.wait() == 0
        assert out.decode().split()[0] == hashlib.sha256(data).hexdigest()
        async with runtime.exec_stream("db", ["ls", "/nowhere"]) as proc:
            assert await proc.read() == b""
            assert await proc.wait() != 0 and "/nowhere" in proc.stderr()

        async def drain(proc) -> bytes:
            out = b""
            while chunk := await proc.read():
                out += chunk
            return out

        async with runtime.exec_stream("db", ["echo", "hello"]) as proc:  # two readers both see the end
            outs = await asyncio.wait_for(asyncio.gather(drain(proc), drain(proc), proc.wait()), 20)
            assert sorted(outs[:2]) == [b"", b"hello\n"] and outs[2] == 0
    finally:
        await runtime.close()
