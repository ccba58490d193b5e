"""backup <env> --files between two buckets of moto's S3 server: 10,000 objects paged, copies in parts,
an unchanged second run, a source bucket that does not exist, S3 stopping mid-way, --delete behind approval."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from bot.config.settings import Settings
from bot.core.app import App
from bot.core.engine import Request

OPERATOR, APPROVER = "U0OPERATOR", "U0APPROVER1"
MIB = 2**20


def seeder(moto_s3):
    """Put objects straight into the moto server's state (this process's): quick, and not what is tested."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
    return lambda bucket, key, data: backend.put_object(bucket, key, data)


def _bucket(bucket: str):
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    return s3_backends[DEFAULT_ACCOUNT_ID]["global"].get_bucket(bucket)


def count(moto_s3, bucket: str) -> int:
    """Objects in ``bucket``, from the server's state (safe while the server changes it)."""
    return len(_bucket(bucket).keys)


def keys(moto_s3, bucket: str, prefix: str = "") -> dict[str, tuple[int, str, object]]:
    """key -> (size, ETag, time) of every object, from the server's state (listing through the API is slow on moto)."""
    return {k: (o.size, o.etag, o.last_modified) for k, o in list(_bucket(bucket).keys.items())
            if k.startswith(prefix)}  # fmt: skip


@pytest.fixture
def buckets(moto_s3):
    names = (f"files-{secrets.token_hex(4)}", f"backup-{secrets.token_hex(4)}")
    for name in names:
        moto_s3.client().create_bucket(Bucket=name)
    return names


async def build(tmp_path, source: str, target: str) -> App:
    config = {
        "project": "fb",
        "access": {"viewers": [OPERATOR, APPROVER], "operators": [OPERATOR], "approvers": [APPROVER]},
        "environments": {"prod": {
            "runtime": {"kind": "compose", "project": "fb", "docker_host": "unix:///nonexistent.sock"},
            "approval": {"required": 1},
            "services": {"api": {}},
            "backup": {"store": f"file://{tmp_path}/db/", "database": {"dump": ["true"], "restore": ["true"]},
                       "files": {"from": source, "to": target}},
        }},
    }  # fmt: skip
    path = tmp_path / "ops.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return App.build(Settings(opsbot_config=str(path), opsbot_db=str(tmp_path / "o.db")))


async def run(app, text, actor=OPERATOR):
    return await app.engine.handle(Request(actor=actor, door="cli", text=text))


async def test_ten_thousand_objects_paged_big_ones_in_parts_and_an_unchanged_second_run(tmp_path, buckets, moto_s3):
    src, dst = buckets
    put = seeder(moto_s3)
    small = {f"media/{i % 40:02d}/{i:05d}.jpg": os.urandom(256 + i % 1024) for i in range(10_000)}
    for key, data in small.items():
        put(src, key, data)
    big = {f"video/{n}.mp4": os.urandom(6 * MIB + n) for n in range(3)}
    for key, data in big.items():
        put(src, key, data)
    s3 = moto_s3.client()
    up = s3.create_multipart_upload(Bucket=src, Key="video/parts.mov", ContentType="video/quicktime")
    bodies = {1: os.urandom(5 * MIB), 2: os.urandom(999)}
    parts = [{"PartNumber": n, "ETag": s3.upload_part(Bucket=src, Key="video/parts.mov", UploadId=up["UploadId"],
                                                      PartNumber=n, Body=body)["ETag"]}
             for n, body in bodies.items()]  # fmt: skip
    s3.complete_multipart_upload(Bucket=src, Key="video/parts.mov", UploadId=up["UploadId"],
                                 MultipartUpload={"Parts": parts})  # fmt: skip
    for key in list(small)[:9_000]:  # most of them backed up already, as by an earlier run
        put(dst, f"prod/{key}", small[key])
    put(dst, "prod/media/00/00000.jpg", b"an older version")
    app = await build(tmp_path, f"s3://{src}/", f"s3://{dst}/prod/")
    app.backends.buckets.multipart_threshold = int(5.5 * MIB)  # the 6 MiB ones go in parts, as above 5 GiB
    app.backends.buckets.part_size = 5 * MIB
    try:
        first = await run(app, "backup prod --files")
        r = first.to_json()
        assert first.exit_code == 0, first.error or {k: r[k] for k in ("failed", "verification", "stopped")}
        assert r["objects"] == 10_004 and r["copied"] == 1_005 and r["unchanged"] == 8_999, r
        assert r["verified"] is True and "10,004 objects" in r["verification"]
        assert r["copied_bytes"] == sum(len(d) for d in big.values()) + 5 * MIB + 999 + sum(
            len(small[k]) for k in [*list(small)[9_000:], "media/00/00000.jpg"])  # fmt: skip
        after = keys(moto_s3, dst, "prod/")
        before = keys(moto_s3, src)
        assert {k.removeprefix("prod/") for k in after} == set(before)
        copies = {k: after[f"prod/{k}"] for k in before}
        assert all(copies[k][0] == size for k, (size, _, _) in before.items())
        assert all(copies[k][1] == etag for k, (_, etag, _) in before.items() if not k.startswith("video/"))
        assert after["prod/video/0.mp4"][1].endswith('-2"')  # copied in parts: 5 MiB + the rest
        assert s3.get_object(Bucket=dst, Key="prod/video/2.mp4")["Body"].read() == big["video/2.mp4"]
        head = s3.head_object(Bucket=dst, Key="prod/video/parts.mov")
        assert head["ContentType"] == "video/quicktime" and head["Metadata"]["opsbot-source-etag"] == before[
            "video/parts.mov"][1]  # fmt: skip

        second = await run(app, "backup prod --files")
        r2 = second.to_json()
        print("durations", r["duration_s"], r2["duration_s"])
        assert second.exit_code == 0 and (r2["copied"], r2["unchanged"], r2["verified"]) == (0, 10_004, True)
        assert keys(moto_s3, dst, "prod/") == after  # nothing was copied again (same times)
    finally:
        await app.close()


async def test_a_source_bucket_that_does_not_exist(tmp_path, buckets, moto_s3):
    _, dst = buckets
    app = await build(tmp_path, "s3://no-such-files-bucket/", f"s3://{dst}/prod/")
    try:
        reply = await run(app, "backup prod --files")
        assert reply.exit_code == 1 and reply.result is None
        assert "no-such-files-bucket does not exist" in reply.error and "nothing was copied" in reply.error
        assert "Traceback" not in reply.error and count(moto_s3, dst) == 0
    finally:
        await app.close()


async def test_s3_stopping_mid_copy_reports_only_what_was_copied_and_the_next_run_finishes(
    tmp_path, buckets, moto_s3
):
    src, dst = buckets
    put = seeder(moto_s3)
    total = 1_500
    for i in range(total):
        put(src, f"docs/{i:05d}.pdf", os.urandom(512))
    app = await build(tmp_path, f"s3://{src}/", f"s3://{dst}/")
    app.backends.buckets.concurrency = 4
    try:
        task = asyncio.create_task(run(app, "backup prod --files"))
        deadline = time.monotonic() + 120
        while count(moto_s3, dst) < 200:  # under way
            assert time.monotonic() < deadline and not task.done(), task.done() and task.result().error
            await asyncio.sleep(0.05)
        await asyncio.to_thread(moto_s3.stop)
        reply = await asyncio.wait_for(task, 120)
        await asyncio.to_thread(moto_s3.start)
        r = reply.to_json()
        assert reply.exit_code == 1 and r["stopped"] and "does not answer" in r["stopped"], r
        assert r["verified"] is False and r["not_attempted"] > 0
        there = count(moto_s3, dst)
        # every copy reported is in the target (a copy whose answer was lost may be there unreported)
        assert 200 <= r["copied"] <= there < total
        assert all(k in keys(moto_s3, dst, "docs/") for k in r["copied_keys"])
        second = (await run(app, "backup prod --files")).to_json()
        assert second["copied"] == total - there and second["verified"] is True
        assert count(moto_s3, dst) == total
    finally:
        if moto_s3._server is None:
            moto_s3.start()
        await app.close()


async def test_delete_waits_for_approval_then_deletes_what_the_source_does_not_have(tmp_path, buckets, moto_s3):
    src, dst = buckets
    s3 = moto_s3.client()
    for i in range(20):
        s3.put_object(Bucket=src, Key=f"a/{i}.txt", Body=f"file {i}".encode())
    for key in ("prod/old/1.txt", "prod/old/2.txt"):
        s3.put_object(Bucket=dst, Key=key, Body=b"stale")
    s3.put_object(Bucket=dst, Key="other-env/keep.txt", Body=b"outside the target prefix")
    app = await build(tmp_path, f"s3://{src}/", f"s3://{dst}/prod/")
    try:
        pending = await run(app, "backup prod --files --delete")
        a = pending.to_json()
        assert pending.exit_code == 0 and a["approval"]["state"] == "pending"
        assert set(keys(moto_s3, dst)) == {"prod/old/1.txt", "prod/old/2.txt", "other-env/keep.txt"}  # nothing ran
        done = await app.engine.decide(Request(actor=APPROVER, door="cli"), a["approval"]["id"], "approve")
        result = done.to_json()["result"]
        assert done.exit_code == 0 and (result["copied"], result["deleted"], result["verified"]) == (20, 2, True)
        assert set(keys(moto_s3, dst)) == {f"prod/a/{i}.txt" for i in range(20)} | {"other-env/keep.txt"}
        events = [e["event"] for e in await app.engine.audit.entries(env="prod", limit=30)]
        assert {"awaiting-approval", "approved", "files-backup-copied"} <= set(events)
    finally:
        await app.close()


#: what `opsbot run backup <env> --files` must never import: the Docker SDK (nothing is asked of the
#: containers), httpx and aiohttp (no HTTP check), Slack's libraries, boto3 (botocore is enough)
NOT_NEEDED = ("docker", "httpx", "aiohttp", "slack_bolt", "slack_sdk", "boto3", "s3transfer")
SHOW_MODULES = f"""
import json, sys
from bot.doors.cli import main
code = main(sys.argv[1:])
seen = sorted(m for m in sys.modules if m.split(".")[0] in {NOT_NEEDED!r})
print(json.dumps({{"code": code, "modules": seen}}), file=sys.stderr)
"""


async def test_the_command_line_backs_up_files_without_docker_http_or_slack_libraries(tmp_path, buckets, moto_s3):
    """The whole process, as a user runs it: the copy happens, and its start-up stays lean (issue 15's
    benchmark: an unchanged run is mostly start-up)."""
    source, target = buckets
    put = seeder(moto_s3)
    for i in range(3):
        put(source, f"docs/{i}.txt", f"file {i}".encode())
    app = await build(tmp_path, f"s3://{source}/", f"s3://{target}/")
    await app.close()
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "OPSBOT_DB": str(tmp_path / "o.db"), "LOG_LEVEL": "warning"}
    for copied in (3, 0):
        done = subprocess.run(
            [sys.executable, "-c", SHOW_MODULES, "run", "--config", str(tmp_path / "ops.yml"), "--as", OPERATOR,
             "--json", "backup", "prod", "--files"], env=env, capture_output=True, text=True, timeout=120, cwd=root,
        )  # fmt: skip
        result, seen = json.loads(done.stdout), json.loads(done.stderr.strip().splitlines()[-1])
        assert (seen["code"], result["copied"], result["verified"]) == (0, copied, True), done.stderr[-2000:]
        assert seen["modules"] == [], seen["modules"]
    assert set(keys(moto_s3, target)) == {f"docs/{i}.txt" for i in range(3)}
