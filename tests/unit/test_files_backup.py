"""backup <env> --files on fakes: what is copied, what is not, --delete behind approval, faults, rendering."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest

from adapters.errors import AdapterError, EngineUnavailable
from adapters.fakes import FakeBackends, FakeProbe, FakeRuntime, InMemoryBuckets
from bot.config.redact import Redactor
from bot.core.db import Database
from bot.core.engine import Engine, Request
from bot.core.schedule_state import task_words
from bot.render.text import render_text
from bot.slack.blocks import render_message
from tests.unit.conftest import BASE, make_config

ACCESS = {"viewers": ["U0VIEWER", "U0OPERATOR", "U0APPROVER1"], "operators": ["U0OPERATOR"],
          "approvers": ["U0APPROVER1"], "admins": ["U0ADMIN"]}  # fmt: skip
SRC, DST = "s3://production-files/", "s3://backup-files/prod/"
OPERATOR = Request(actor="U0OPERATOR", door="cli")


def envs(files: bool = True) -> dict:
    out = copy.deepcopy(BASE["environments"])
    out["prod"]["approval"] = {"required": 1}
    out["prod"]["backup"] = {"store": "s3://fake-bucket/backups/",
                             "database": {"dump": ["pg_dump"], "restore": ["psql"]}}  # fmt: skip
    if files:
        out["prod"]["backup"]["files"] = {"from": SRC, "to": DST}
    return out


@pytest.fixture
def buckets() -> InMemoryBuckets:
    b = InMemoryBuckets(concurrency=4)
    b.buckets = {"production-files": {}, "backup-files": {}}
    for i in range(30):
        b.put(SRC, f"img/{i:03d}.png", bytes([i]) * (100 + i))
    return b


@pytest.fixture
async def engine(tmp_path, buckets):
    backends = FakeBackends({"prod": FakeRuntime()}, FakeProbe())
    backends.buckets = buckets
    db = Database(tmp_path / "f.db")
    engine = Engine(make_config(access=ACCESS, environments=envs()), backends, db, Redactor())
    yield engine
    db.close()


async def run(engine, text, actor="U0OPERATOR"):
    return await engine.handle(Request(actor=actor, door="cli", text=text))


def target_keys(buckets: InMemoryBuckets) -> set[str]:
    return {k.removeprefix("prod/") for k in buckets.buckets["backup-files"]}


async def test_first_run_copies_what_is_missing_or_changed_and_the_second_copies_nothing(engine, buckets):
    buckets.put(DST, "img/000.png", bytes([0]) * 100)  # the same: unchanged
    buckets.put(DST, "img/001.png", b"x" * 101)  # same size, other bytes: copied
    buckets.put(DST, "img/002.png", b"short")  # other size: copied
    buckets.put(DST, "old/gone.txt", b"only in the backup")  # kept: no --delete
    seen: list[str] = []

    async def progress(message: str) -> None:
        seen.append(message)

    first = await engine.handle(Request(actor="U0OPERATOR", door="cli", text="backup prod --files", progress=progress))
    r = first.to_json()
    assert first.exit_code == 0, first.error or r
    assert (r["objects"], r["copied"], r["unchanged"], r["failed_count"]) == (30, 29, 1, 0)
    assert r["copied_bytes"] == sum(100 + i for i in range(1, 30)) and r["verified"] is True
    assert r["extra"] == 1 and r["deleted"] == 0 and "old/gone.txt" in target_keys(buckets)
    assert all(buckets.buckets["backup-files"][f"prod/img/{i:03d}.png"].data == bytes([i]) * (100 + i)
               for i in range(30))  # fmt: skip
    assert any("29 of 30 objects" in m and "to copy" in m for m in seen), seen
    events = [e["event"] for e in await engine.audit.entries(env="prod", limit=20)]
    assert {"files-backup-started", "files-backup-copied"} <= set(events)

    copies = sum(c.startswith("copy ") for c in buckets.calls)
    second = (await run(engine, "backup prod --files")).to_json()
    assert (second["copied"], second["unchanged"], second["verified"]) == (0, 30, True)
    assert sum(c.startswith("copy ") for c in buckets.calls) == copies  # not one copy more
    assert not any(c.startswith("head ") for c in buckets.calls)  # plain objects: the listings decide


async def test_the_files_backup_asks_nothing_of_the_containers_and_the_database_backup_does(engine, buckets):
    """Nothing ``--files`` shows comes from the containers: their secrets are not learnt first (no Docker
    engine needed, none imported); a database backup runs in a container and still learns them."""
    runtime = engine.backends.runtime("prod")
    reply = await run(engine, "backup prod --files")
    assert reply.exit_code == 0 and reply.to_json()["copied"] == 30, reply.error
    assert runtime.calls == []
    await run(engine, "backup prod --dry-run")
    assert runtime.calls == ["containers"]


async def test_objects_copied_in_parts_are_recognised_by_the_etag_they_recorded(engine, buckets):
    buckets.multipart_threshold = 1000
    buckets.part_size = 400
    buckets.put(SRC, "big/above-threshold.bin", b"a" * 2500)
    buckets.put(SRC, "big/uploaded-in-parts.bin", b"b" * 900, parts=300)
    first = (await run(engine, "backup prod --files")).to_json()
    assert first["copied"] == 32 and first["verified"] is True
    copy_a = buckets.buckets["backup-files"]["prod/big/above-threshold.bin"]
    copy_b = buckets.buckets["backup-files"]["prod/big/uploaded-in-parts.bin"]
    assert copy_a.etag.endswith('-7"') and copy_a.meta["opsbot-source-etag"] != copy_a.etag  # 2500 / 400: 7 parts
    assert "-" not in copy_b.etag and copy_b.meta["opsbot-source-etag"].endswith('-3"')
    buckets.calls.clear()
    second = (await run(engine, "backup prod --files")).to_json()
    assert (second["copied"], second["unchanged"]) == (0, 32)
    assert sorted(c for c in buckets.calls if c.startswith("head ")) == [
        "head big/above-threshold.bin", "head big/uploaded-in-parts.bin"]  # fmt: skip
    buckets.put(SRC, "big/uploaded-in-parts.bin", b"c" * 900, parts=300)  # changed, same size
    third = (await run(engine, "backup prod --files")).to_json()
    assert third["copied_keys"] == ["big/uploaded-in-parts.bin"]


async def test_a_source_bucket_that_does_not_exist_is_said_and_nothing_is_copied(engine, buckets):
    del buckets.buckets["production-files"]
    reply = await run(engine, "backup prod --files")
    assert reply.exit_code == 1 and reply.result is None
    assert "production-files does not exist" in reply.error and "nothing was copied" in reply.error
    assert target_keys(buckets) == set()


async def test_the_endpoint_going_away_stops_the_copy_and_the_next_run_finishes(engine, buckets):
    buckets.fail_after, buckets.fail_after_error = 12, EngineUnavailable("S3 endpoint does not answer")
    first = await run(engine, "backup prod --files")
    r = first.to_json()
    assert first.exit_code == 1 and r["stopped"] and "does not answer" in r["stopped"]
    assert r["copied"] == 12 == len(target_keys(buckets))  # what is reported copied is there, nothing more
    assert r["not_attempted"] > 0 and r["verified"] is False and "could not list" in r["verification"]
    text = render_text(first)
    assert "stopped" in text and "not tried" in text and "Traceback" not in text
    buckets.fail = None
    buckets.fail_after = None
    second = (await run(engine, "backup prod --files")).to_json()
    assert (second["copied"], second["unchanged"], second["verified"]) == (18, 12, True)


async def test_a_copy_the_target_does_not_show_is_not_reported_as_copied(engine, buckets):
    original = buckets.copy

    async def lying(source, target, obj):
        etag = await original(source, target, obj)
        if obj.key == "img/005.png":  # the endpoint said yes, the object is not there
            del buckets.buckets["backup-files"][f"prod/{obj.key}"]
        return etag

    buckets.copy = lying  # type: ignore[method-assign]
    reply = await run(engine, "backup prod --files")
    r = reply.to_json()
    assert reply.exit_code == 1 and r["copied"] == 29 and r["verified"] is False
    assert r["failed"] == [{"key": "img/005.png", "reason": "copied, but the target's listing does not show the copy"}]
    assert r["copied_bytes"] == sum(100 + i for i in range(30)) - 105 and "img/005.png" not in r["copied_keys"]


async def test_one_object_failing_does_not_stop_the_others_and_is_named(engine, buckets):
    buckets.fail_copy["img/007.png"] = AdapterError("S3 s3://production-files/: copying img/007.png: AccessDenied")
    reply = await run(engine, "backup prod --files")
    r = reply.to_json()
    assert reply.exit_code == 1 and r["copied"] == 29 and r["failed_count"] == 1
    assert r["failed"] == [{"key": "img/007.png", "reason": "S3 s3://production-files/: copying img/007.png: "
                                                          "AccessDenied"}]  # fmt: skip
    assert r["verified"] is False and "1 missing" in r["verification"]
    assert "img/007.png" in render_text(reply)


async def test_an_object_changed_at_the_source_meanwhile_is_left_for_the_next_run(engine, buckets):
    original = buckets.copy

    async def changing(source, target, obj):
        if obj.key == "img/003.png":
            buckets.put(SRC, "img/003.png", b"new" * 40)
        return await original(source, target, obj)

    buckets.copy = changing  # type: ignore[method-assign]
    reply = await run(engine, "backup prod --files")
    r = reply.to_json()
    assert reply.exit_code == 0 and r["copied"] == 29 and r["skipped_count"] == 1 and r["verified"] is True
    assert "changed at the source" in r["skipped"][0]["reason"]
    buckets.copy = original  # type: ignore[method-assign]
    assert (await run(engine, "backup prod --files")).to_json()["copied_keys"] == ["img/003.png"]


async def test_delete_waits_for_approval_and_deletes_only_what_the_source_does_not_have(engine, buckets):
    for key in ("old/a.txt", "old/b.txt"):
        buckets.put(DST, key, b"stale")
    pending = await run(engine, "backup prod --files --delete")
    a = pending.to_json()
    assert a["approval"]["state"] == "pending"
    assert any("delete 2 objects: old/a.txt, old/b.txt" in s for s in a["plan"]["steps"])
    assert {"old/a.txt", "old/b.txt"} <= target_keys(buckets) and not any(
        k.startswith("img/") for k in target_keys(buckets))  # nothing ran: no copy, no deletion  # fmt: skip
    own = await engine.decide(OPERATOR, a["approval"]["id"], "approve")
    assert own.error and "someone else" in own.error
    done = await engine.decide(Request(actor="U0APPROVER1", door="cli"), a["approval"]["id"], "approve")
    result = done.to_json()["result"]
    assert done.exit_code == 0 and (result["copied"], result["deleted"], result["verified"]) == (30, 2, True)
    assert target_keys(buckets) == {f"img/{i:03d}.png" for i in range(30)}


async def test_an_approved_delete_does_not_run_when_what_it_deletes_changed(engine, buckets):
    buckets.put(DST, "old/a.txt", b"stale")
    a = (await run(engine, "backup prod --files --delete")).to_json()
    buckets.put(DST, "old/c.txt", b"appeared since")
    done = await engine.decide(Request(actor="U0APPROVER1", door="cli"), a["approval"]["id"], "approve")
    assert "plan changed" in done.to_json()["message"]
    assert {"old/a.txt", "old/c.txt"} <= target_keys(buckets)
    buckets.put(SRC, "new/file.txt", b"new at the source")  # new objects to copy do not change the plan
    b = (await run(engine, "backup prod --files --delete")).to_json()
    buckets.put(SRC, "new/other.txt", b"another")
    done = await engine.decide(Request(actor="U0APPROVER1", door="cli"), b["approval"]["id"], "approve")
    assert done.to_json()["result"]["deleted"] == 2 and "new/other.txt" in target_keys(buckets)


async def test_delete_never_empties_the_backup_and_waits_for_every_copy(engine, buckets):
    buckets.put(DST, "old/a.txt", b"stale")
    buckets.fail_copy["img/001.png"] = AdapterError("AccessDenied")
    reply = await run(engine, "backup prod --files --delete --break-glass 'cleanup'", actor="U0ADMIN")
    r = reply.to_json()
    assert r["deleted"] == 0 and "a copy failed" in r["delete_note"] and "old/a.txt" in target_keys(buckets)
    buckets.buckets["production-files"].clear()
    r = (await run(engine, "backup prod --files --delete --break-glass 'cleanup'", actor="U0ADMIN")).to_json()
    assert r["deleted"] == 0 and "source is empty" in r["delete_note"] and "old/a.txt" in target_keys(buckets)


async def test_dry_run_counts_and_copies_nothing(engine, buckets):
    buckets.put(DST, "img/000.png", bytes([0]) * 100)
    reply = await run(engine, "backup prod --files --dry-run")
    steps = reply.to_json()["plan"]["steps"]
    assert any("now: 29 objects" in s and "1 unchanged" in s for s in steps), steps
    assert target_keys(buckets) == {"img/000.png"}


async def test_bad_requests_are_refused_before_anything_runs(engine, buckets, tmp_path):
    reply = await run(engine, "backup prod --delete")
    assert reply.exit_code == 2 and "--delete goes with --files" in reply.error
    reply = await run(engine, "backup prod --files", actor="U0VIEWER")
    assert reply.exit_code == 2 and reply.result is None
    db = Database(tmp_path / "n.db")
    try:
        bare = Engine(make_config(access=ACCESS, environments=envs(files=False)), engine.backends, db, Redactor())
        reply = await bare.handle(Request(actor="U0OPERATOR", door="cli", text="backup prod --files"))
        assert reply.exit_code == 2 and "backup.files is not set" in reply.error
    finally:
        db.close()
    assert buckets.calls == []


async def test_the_scheduled_task_runs_backup_files_and_its_config_is_checked():
    assert task_words("backup_files", "prod") == ["backup", "prod", "--files"]
    from bot.config import validate_config

    data = copy.deepcopy(BASE) | {"environments": envs(files=False),
                                  "schedules": [{"task": "backup_files", "env": "prod", "every": "24h"}]}  # fmt: skip
    _, problems = validate_config(data)
    assert [(p.path, "backup.files" in p.message) for p in problems] == [("schedules.0.task", True)]
    data["environments"] = envs()
    _, problems = validate_config(data)
    assert problems == []


async def test_rendering_escapes_keys_and_keeps_to_slack_limits(engine, buckets):
    for i in range(80):
        key = f"<!channel> & {i:02d}.txt"
        buckets.put(SRC, key, b"x")
        buckets.fail_copy[key] = AdapterError(f"AccessDenied for <@U0ADMIN> {i}")
    buckets.concurrency = 1
    reply = await run(engine, "backup prod --files")
    r = reply.to_json()  # the 30 bigger ones first, then 50 failures in a row stop it
    assert r["copied"] == 30 and r["failed_count"] == 50 and len(r["failed"]) == 50 and r["not_attempted"] == 30
    assert r["stopped"].startswith("50 copies in a row failed; the last: AccessDenied")
    text = render_text(reply)
    assert "FAILED" in text and "30 objects not tried" in text and text.count("failed: @channel") == 50
    message = render_message(reply)
    body = str(message.blocks)
    assert "<!channel>" not in body and "&lt;!channel&gt; &amp; 00.txt" in body and "<@U0ADMIN>" not in body
    assert len(message.blocks) <= 50 and "... and 30 more" in body


async def test_delete_is_bound_to_the_maintenance_windows_and_the_copy_alone_is_not(tmp_path, buckets):
    backends = FakeBackends({"prod": FakeRuntime()}, FakeProbe())
    backends.buckets = buckets
    db = Database(tmp_path / "w.db")
    windows = {"windows": {"prod": [{"days": ["sun"], "from": "02:00", "to": "04:00"}]}}
    engine = Engine(make_config(access=ACCESS, environments=envs(), maintenance=windows), backends, db, Redactor())
    engine.changes.clock = lambda: datetime(2026, 12, 3, 9, 0, tzinfo=UTC)  # a Thursday
    try:
        refused = await run(engine, "backup prod --files --delete")
        assert refused.exit_code == 2 and "outside its maintenance windows" in refused.error
        assert buckets.calls == []
        copied = await run(engine, "backup prod --files")
        assert copied.exit_code == 0 and copied.to_json()["copied"] == 30
        engine.changes.clock = lambda: datetime(2026, 12, 6, 2, 30, tzinfo=UTC)  # inside Sunday's window
        assert (await run(engine, "backup prod --files --delete")).to_json()["approval"]["state"] == "pending"
    finally:
        db.close()
