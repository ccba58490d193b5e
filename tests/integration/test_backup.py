"""backup, backups, verify-backup on real PostgreSQL (pg_dump/psql) into moto's S3 server and a file store."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import secrets
import sys
import time
from pathlib import Path

import pytest
import yaml
import zstandard

from bot.config.settings import Settings
from bot.core.app import App
from bot.core.engine import Request

OPERATOR, VIEWER = "U0OPERATOR", "U0VIEWER"
#: a dump that writes 12 MiB of incompressible bytes slowly (the S3 server is stopped meanwhile)
SLOW_DUMP = ("import os,sys,time\n"
             "for i in range(48):\n"
             "    sys.stdout.buffer.write(os.urandom(256*1024)); sys.stdout.flush(); time.sleep(0.1)\n")  # fmt: skip


def write_config(path: Path, store: str, dump: list[str], restore: list[str], **backup) -> None:
    config = {
        "project": "bk",
        "access": {"viewers": [OPERATOR, VIEWER, "U0APPROVER1"], "operators": [OPERATOR],
                   "approvers": ["U0APPROVER1"], "admins": ["U0ADMIN"]},
        "environments": {"prod": {
            "runtime": {"kind": "compose", "project": "bk", "docker_host": "unix:///nonexistent.sock"},
            "approval": {"required": 1},
            "services": {"api": {}},
            "backup": {"store": store, "retention_days": 7, "database": {"dump": dump, "restore": restore}, **backup},
        }},
        "schedules": [{"task": "verify_backup", "env": "prod", "every": "24h"}],
    }  # fmt: skip
    path.write_text(yaml.safe_dump(config, sort_keys=False))


@pytest.fixture
def database(postgres):
    name = f"shop_{secrets.token_hex(3)}"
    postgres.psql(f"CREATE DATABASE {name}")
    postgres.psql(
        "CREATE TABLE orders (id serial PRIMARY KEY, item text NOT NULL, qty int NOT NULL);"
        "INSERT INTO orders (item, qty) SELECT 'item ' || g, g FROM generate_series(1, 5000) g",
        db=name,
    )
    yield name
    postgres.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def bucket(moto_s3):
    name = f"bk-{secrets.token_hex(4)}"
    moto_s3.client().create_bucket(Bucket=name)
    return name


async def build(tmp_path, store, dump, restore):
    path = tmp_path / "ops.yml"
    write_config(path, store, dump, restore)
    return App.build(Settings(opsbot_config=str(path), opsbot_db=str(tmp_path / "o.db")))


def unzstd(data: bytes) -> bytes:
    return zstandard.ZstdDecompressor().decompressobj(read_across_frames=True).decompress(data)


async def run(app, text, actor=OPERATOR):
    return await app.engine.handle(Request(actor=actor, door="cli", text=text))


def dump_argv(postgres, db):
    return postgres.tool("pg_dump", "--no-owner", "--clean", "--if-exists", "-d", db)


def restore_argv(postgres, db):
    return postgres.tool("psql", "-v", "ON_ERROR_STOP=1", "-q", db)


async def test_backup_to_s3_listed_verified_and_hand_put_object(tmp_path, postgres, database, bucket, moto_s3):
    app = await build(
        tmp_path, f"s3://{bucket}/backups/", dump_argv(postgres, database), restore_argv(postgres, database)
    )
    try:
        reply = await run(app, "backup prod")
        assert reply.error is None and reply.exit_code == 0, reply.error
        b = reply.to_json()["backup"]
        key = f"backups/prod/db/{b['id']}.sql.zst"  # zstd by default
        assert b["location"] == f"s3://{bucket}/{key}" and b["compression"] == "zstd"
        s3 = moto_s3.client()
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert len(body) == b["size"] and hashlib.sha256(body).hexdigest() == b["sha256"]
        assert b"COPY public.orders" in unzstd(body)
        meta = s3.head_object(Bucket=bucket, Key=key)["Metadata"]
        assert meta["sha256"] == b["sha256"] and meta["size"] == str(len(body)) and meta["requester"] == OPERATOR
        assert meta["compression"] == "zstd"
        assert "pg_dump" in meta["command"] and float(meta["duration"]) > 0
        # uploaded under <key>.partial, then copied whole to its key: nothing else is left in the bucket
        assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == [key]
        rows = await app.engine.backups.list("prod")
        assert rows[0]["outcome"] == "stored" and rows[0]["sha256"] == b["sha256"]

        by_hand = gzip.compress(b"-- put there by hand\n")
        s3.put_object(Bucket=bucket, Key="backups/prod/db/manual-2020.sql.gz", Body=by_hand)
        listed = (await run(app, "backups prod", actor=VIEWER)).to_json()
        assert listed["environment"] == "prod"
        # newest first: an object whose name has no time is as old as the store says (just put)
        assert [x["id"] for x in listed["backups"]] == ["manual-2020", b["id"]]
        assert set(listed["backups"][1]) >= {"id", "created_at", "size", "sha256", "location"}
        assert listed["backups"][1]["sha256"] == b["sha256"]
        assert listed["backups"][0]["sha256"] is None and listed["backups"][0]["size"] == len(by_hand)

        verified = await run(app, f"verify-backup prod {b['id']}", actor=VIEWER)
        checks = {c["name"]: c["severity"] for c in verified.to_json()["checks"]}
        assert verified.exit_code == 0 and checks == {"exists": "ok", "sha256": "ok", "zstd": "ok", "age": "ok"}
        events = [e["event"] for e in await app.engine.audit.entries(env="prod", limit=50)]
        assert {"backup-started", "backup-stored", "backup-verified"} <= set(events)
    finally:
        await app.close()


async def test_verify_catches_corrupted_and_truncated_objects(tmp_path, postgres, database, bucket, moto_s3):
    app = await build(tmp_path, f"s3://{bucket}/", dump_argv(postgres, database), restore_argv(postgres, database))
    try:
        b = (await run(app, "backup prod")).to_json()["backup"]
        key = f"prod/db/{b['id']}.sql.zst"
        s3 = moto_s3.client()
        head = s3.head_object(Bucket=bucket, Key=key)
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        corrupted = body[:100] + bytes([body[100] ^ 0xFF]) + body[101:]
        s3.put_object(Bucket=bucket, Key=key, Body=corrupted, Metadata=head["Metadata"])  # same metadata, one bit off
        reply = await run(app, f"verify-backup prod {b['id']}")
        checks = {c["name"]: c for c in reply.to_json()["checks"]}
        assert (
            reply.exit_code == 1
            and checks["sha256"]["severity"] == "critical"
            and "MISMATCH" in checks["sha256"]["detail"]
        )

        truncated = body[: len(body) // 2]  # its metadata even claims the truncated bytes' sha256
        meta = {**head["Metadata"], "sha256": hashlib.sha256(truncated).hexdigest(), "size": str(len(truncated))}
        s3.put_object(Bucket=bucket, Key=key, Body=truncated, Metadata=meta)
        checks = {c["name"]: c for c in (await run(app, f"verify-backup prod {b['id']}")).to_json()["checks"]}
        assert checks["zstd"]["severity"] == "critical" and "incomplete" in checks["zstd"]["detail"]
        assert checks["sha256"]["severity"] == "critical"  # opsbot's database still has the real one

        s3.put_object(Bucket=bucket, Key="prod/db/old-by-hand.sql.gz", Body=gzip.compress(b"x" * 1000)[:-12])
        checks = {c["name"]: c for c in (await run(app, "verify-backup prod old-by-hand")).to_json()["checks"]}
        assert checks["sha256"]["severity"] == "warning" and checks["gzip"]["severity"] == "critical"
    finally:
        await app.close()


async def test_failing_or_empty_dump_leaves_no_object(tmp_path, postgres, bucket, moto_s3):
    app = await build(tmp_path, f"s3://{bucket}/", dump_argv(postgres, "no_such_db"), ["true"])
    s3 = moto_s3.client()
    try:
        reply = await run(app, "backup prod")
        assert reply.exit_code == 1 and "nothing was stored" in reply.error
        assert "exited with 1" in reply.error and 'database "no_such_db" does not exist' in reply.error
        assert "Traceback" not in reply.error
        assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
        assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
        assert (await app.engine.backups.list("prod"))[0]["outcome"] == "failed"
    finally:
        await app.close()
    app = await build(tmp_path, f"s3://{bucket}/", ["true"], ["true"])
    try:
        reply = await run(app, "backup prod")
        assert reply.exit_code == 1 and "wrote nothing" in reply.error
        assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
        assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
    finally:
        await app.close()


async def test_s3_stopping_mid_upload_fails_cleanly_and_aborts(tmp_path, bucket, moto_s3):
    app = await build(tmp_path, f"s3://{bucket}/", [sys.executable, "-c", SLOW_DUMP], ["true"])
    s3 = moto_s3.client()
    store = app.backends.store("prod")
    failed: list[str] = []  # what the store tried and could not do
    real_call = store._call

    async def call(fn, what):
        try:
            return await real_call(fn, what)
        except Exception:
            failed.append(what)
            raise

    store._call = call
    try:
        task = asyncio.create_task(run(app, "backup prod"))
        deadline = time.monotonic() + 30

        def parts() -> list:
            uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
            if not uploads:
                return []
            return s3.list_parts(Bucket=bucket, Key=uploads[0]["Key"], UploadId=uploads[0]["UploadId"]).get("Parts", [])

        while not await asyncio.to_thread(parts):  # once the first 8 MiB part is uploaded, the upload is under way
            assert time.monotonic() < deadline and not task.done(), task.done() and task.result().error
            await asyncio.sleep(0.1)
        await asyncio.to_thread(moto_s3.stop)
        deadline = time.monotonic() + 60
        while failed.count("aborting") < 2:  # the upload failed, and its abort is being retried
            assert time.monotonic() < deadline and not task.done(), failed
            await asyncio.sleep(0.1)
        assert failed[0].startswith("uploading part")
        await asyncio.to_thread(moto_s3.start)
        reply = await asyncio.wait_for(task, 60)
        assert reply.exit_code == 1 and "does not answer" in reply.error and "aborted" in reply.error, reply.error
        assert "Traceback" not in reply.error
        assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
        assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")  # the abort reached the server
    finally:
        if moto_s3._server is None:
            moto_s3.start()
        await app.close()


async def test_retention_deletes_old_backups_never_the_newest(tmp_path, postgres, database, bucket, moto_s3):
    s3 = moto_s3.client()
    for old in ("20200101T000000Z-aaaaaa", "20200102T000000Z-bbbbbb"):
        s3.put_object(Bucket=bucket, Key=f"prod/db/{old}.sql.gz", Body=gzip.compress(b"old"))
    recent = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() - 86400)) + "-cccccc"
    s3.put_object(Bucket=bucket, Key=f"prod/db/{recent}.sql.gz", Body=gzip.compress(b"recent"))
    app = await build(tmp_path, f"s3://{bucket}/", dump_argv(postgres, database), ["true"])
    try:
        reply = await run(app, "backup prod")
        assert sorted(reply.to_json()["deleted"]) == ["20200101T000000Z-aaaaaa", "20200102T000000Z-bbbbbb"]
        ids = [x["id"] for x in (await run(app, "backups prod")).to_json()["backups"]]
        assert ids == [reply.to_json()["backup"]["id"], recent]
    finally:
        await app.close()


async def test_file_store_backup_listing_and_restore_test(tmp_path, postgres, database):
    root = tmp_path / "backups"
    app = await build(tmp_path, f"file://{root}/", dump_argv(postgres, database),
                      postgres.tool("psql", "-v", "ON_ERROR_STOP=1", "-q", database))  # fmt: skip
    try:
        b = (await run(app, "backup prod")).to_json()["backup"]
        path = root / "prod" / "db" / f"{b['id']}.sql.zst"
        data = path.read_bytes()
        assert len(data) == b["size"] and hashlib.sha256(data).hexdigest() == b["sha256"]
        assert sorted(p.name for p in path.parent.iterdir()) == [path.name, path.name + ".meta.json"]  # no temp file
        (path.parent / "20200101T000000Z-0a0b0c.sql.gz").write_bytes(gzip.compress(b"by hand"))
        listed = (await run(app, "backups prod")).to_json()["backups"]
        assert [x["id"] for x in listed] == [b["id"], "20200101T000000Z-0a0b0c"]
        reply = await run(app, "verify-backup prod --restore-test")
        checks = {c["name"]: c for c in reply.to_json()["checks"]}
        assert reply.exit_code == 0, checks
        assert "1 tables" in checks["restore test"]["detail"] and "dropped" in checks["restore test"]["detail"]
        assert "opsbot_restore_test" not in postgres.psql("SELECT string_agg(datname, ',') FROM pg_database")
    finally:
        await app.close()


async def test_s3_listing_past_its_metadata_limit_still_lists_every_backup(bucket, moto_s3, monkeypatch):
    import adapters.stores.s3 as s3store

    s3 = moto_s3.client()
    for i, stamp in enumerate(("20261101T000000Z-aaaaaa", "20261102T000000Z-bbbbbb", "20261103T000000Z-cccccc")):
        s3.put_object(
            Bucket=bucket,
            Key=f"backups/prod/db/{stamp}.sql.gz",
            Body=gzip.compress(b"x" * i),
            Metadata={"sha256": f"sum{i}"},
        )  # fmt: skip (same second: the keys' times order them)
    monkeypatch.setattr(s3store, "LIST_LIMIT", 1)
    store = s3store.S3Store(f"s3://{bucket}/backups/")
    try:
        found = await store.list("backups/prod/db/")
    finally:
        await store.close()
    assert [o.id for o in found] == ["20261103T000000Z-cccccc", "20261102T000000Z-bbbbbb", "20261101T000000Z-aaaaaa"]
    assert [o.sha256 for o in found] == ["sum2", None, None]  # only the newest read for metadata: all listed


async def test_gzip_when_configured_on_s3_verified_and_restore_tested(tmp_path, postgres, database, bucket, moto_s3):
    path = tmp_path / "ops.yml"
    write_config(path, f"s3://{bucket}/", dump_argv(postgres, database), restore_argv(postgres, database),
                 compression="gzip")  # fmt: skip
    app = App.build(Settings(opsbot_config=str(path), opsbot_db=str(tmp_path / "o.db")))
    try:
        b = (await run(app, "backup prod")).to_json()["backup"]
        key = f"prod/db/{b['id']}.sql.gz"
        s3 = moto_s3.client()
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert b"COPY public.orders" in gzip.decompress(body)  # what `gunzip` reads
        assert s3.head_object(Bucket=bucket, Key=key)["Metadata"]["compression"] == "gzip"
        reply = await run(app, "verify-backup prod --restore-test")
        checks = {c["name"]: c for c in reply.to_json()["checks"]}
        assert reply.exit_code == 0 and checks["gzip"]["severity"] == "ok", checks
        assert "1 tables" in checks["restore test"]["detail"]
    finally:
        await app.close()
