"""backup, backups, verify-backup and restore on fakes: an in-memory store and a database played by a function."""

from __future__ import annotations

import copy
import gzip
import hashlib
import os
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
import zstandard

from adapters.errors import AdapterError
from adapters.fakes import FakeBackends, FakeProbe, FakeRuntime, InMemoryStore
from adapters.stores.file import FileStore
from bot.config.redact import Redactor
from bot.core.db import Database
from bot.core.engine import Engine, Request
from bot.render.text import render_text
from bot.slack.blocks import render_message
from tests.unit.conftest import BASE, make_config

ACCESS = {"viewers": ["U0VIEWER", "U0OPERATOR", "U0APPROVER1"], "operators": ["U0OPERATOR"],
          "approvers": ["U0APPROVER1"], "admins": ["U0ADMIN"]}  # fmt: skip
DUMP = ["pg_dump", "-U", "app", "app"]
RESTORE = ["psql", "-v", "ON_ERROR_STOP=1", "-U", "app", "app"]


class FakeDatabase:
    """pg_dump prints ``content``; psql replaces it with stdin (or fails when ``restore_fails``)."""

    def __init__(self) -> None:
        self.content = b"CREATE TABLE orders (id int);\n" * 2000
        self.restore_fails = False
        self.dump_fails = False
        self.log: list[str] = []

    def __call__(self, argv: list[str], stdin: bytes) -> tuple[int, bytes, bytes]:
        self.log.append(argv[0])
        if argv[0] == "pg_dump":
            if self.dump_fails:
                return 1, b"", b'pg_dump: error: password=hunter2 FATAL: role "app" does not exist\n'
            return 0, self.content, b""
        if self.restore_fails:
            return 3, b"", b"ERROR: relation already exists\n"
        self.content = stdin
        return 0, b"", b""


@pytest.fixture
def world():
    rt = FakeRuntime()
    for service in ("api", "worker", "postgres", "redis"):
        rt.add(service)
    fake_db = FakeDatabase()
    rt.stream_handler = fake_db
    return rt, fake_db


@pytest.fixture
async def engine(tmp_path, world):
    rt, _ = world
    envs = copy.deepcopy(BASE["environments"])
    envs["prod"]["approval"] = {"required": 1}
    envs["prod"]["startup"] = [["postgres"], ["redis"], ["api", "worker"]]
    envs["prod"]["shutdown"] = [["api", "worker"], ["redis"], ["postgres"]]
    envs["prod"]["backup"] = {"store": "s3://fake-bucket/backups/", "retention_days": 30,
                              "database": {"service": "postgres", "dump": DUMP, "restore": RESTORE}}  # fmt: skip
    probe = FakeProbe()
    for path in ("/health", "/health/db"):
        probe.answer(f"http://127.0.0.1:18080{path}")
    db = Database(tmp_path / "b.db")
    engine = Engine(make_config(access=ACCESS, environments=envs), FakeBackends({"prod": rt}, probe), db, Redactor())
    yield engine
    db.close()


def unzstd(data: bytes) -> bytes:
    return zstandard.ZstdDecompressor().decompressobj(read_across_frames=True).decompress(data)


async def handle(engine, text, actor="U0OPERATOR"):
    return await engine.handle(Request(actor=actor, door="cli", text=text))


def store(engine) -> InMemoryStore:
    return engine.backends.store("prod")


def slack_text(reply) -> str:
    """Every text of the reply's Slack blocks, one per line: what a person sees in the channel."""
    blocks = render_message(reply).blocks
    return "\n".join(b["text"]["text"] for b in blocks if "text" in b)


async def test_backup_runs_at_once_for_an_operator_and_is_refused_to_a_viewer(engine, world):
    refused = await handle(engine, "backup prod", actor="U0VIEWER")
    assert refused.exit_code == 2 and "operators" in refused.error
    dry = await handle(engine, "backup prod --dry-run")
    assert dry.result.kind == "plan" and not store(engine).objects
    reply = await handle(engine, "backup prod")
    assert reply.exit_code == 0 and reply.result.kind == "backup"  # no approval waited for
    b = reply.to_json()["backup"]
    key = f"backups/prod/db/{b['id']}.sql.zst"  # zstd unless backup.compression says gzip
    assert unzstd(store(engine).objects[key]) == world[1].content and b["compression"] == "zstd"
    assert store(engine).meta[key]["requester"] == "U0OPERATOR" and store(engine).meta[key]["kind"] == "backup"
    assert store(engine).meta[key]["compression"] == "zstd"
    assert "stored" in render_text(reply) and render_message(reply).blocks


async def test_progress_says_bytes_and_rate(engine):
    seen = []

    async def progress(text):
        seen.append(text)

    reply = await engine.handle(Request(actor="U0OPERATOR", door="console", text="backup prod", progress=progress))
    assert reply.exit_code == 0
    assert any(line.startswith("Backing up prod: `pg_dump -U app app` in service postgres") for line in seen)
    last = [line for line in seen if " read, " in line][-1]
    assert "58.6 KiB read" in last and "stored" in last and "/s)" in last


async def test_failing_dump_stores_nothing_and_redacts_stderr(engine, world):
    world[1].dump_fails = True
    reply = await handle(engine, "backup prod")
    assert reply.exit_code == 1 and "pg_dump in service postgres exited with 1" in reply.error
    assert "does not exist" in reply.error and "hunter2" not in reply.error
    assert not store(engine).objects


async def test_store_failing_midway_leaves_nothing(engine, world):
    world[1].content = os.urandom(2 * 2**20)  # gzip cannot shrink it
    store(engine).fail_after = 100_000
    reply = await handle(engine, "backup prod")
    assert reply.exit_code == 1 and "aborted" in reply.error and not store(engine).objects


async def test_retention_never_deletes_the_newest(engine):
    s = store(engine)
    old = datetime.now(UTC) - timedelta(days=90)
    s.add("backups/prod/db/20200101T000000Z-aaaaaa.sql.gz", gzip.compress(b"a"), at=old)
    s.add("backups/prod/db/20200102T000000Z-bbbbbb.sql.gz", gzip.compress(b"b"), at=old)
    from commands.dbstream import retention

    ctx = engine.make_ctx(Request(actor="U0OPERATOR", door="cli"))
    assert await retention(ctx, "prod", "backup prod") == ["20200101T000000Z-aaaaaa"]  # all old: the newest stays
    assert list(s.objects) == ["backups/prod/db/20200102T000000Z-bbbbbb.sql.gz"]


async def test_backups_and_verify(engine):
    b = (await handle(engine, "backup prod")).to_json()["backup"]
    listed = await handle(engine, "backups prod", actor="U0VIEWER")
    assert [x["id"] for x in listed.to_json()["backups"]] == [b["id"]]
    assert "newest first" in render_text(listed)
    assert slack_text(listed).startswith(f"Backups of prod\n*{b['id']}* ") and "by <@U0OPERATOR>" in slack_text(listed)
    ok = await handle(engine, "verify-backup prod", actor="U0VIEWER")
    assert ok.exit_code == 0
    assert slack_text(ok).startswith(f"Backup {b['id']} of prod: verified") and f"*sha256* {b['sha256']} matches" in (
        slack_text(ok)
    )  # fmt: skip
    # a restore test creates and drops a scratch database: not a viewer's to ask
    refused = await handle(engine, "verify-backup prod --restore-test", actor="U0VIEWER")
    assert refused.exit_code == 2 and "needs the admins or operators role" in refused.error
    key = f"backups/prod/db/{b['id']}.sql.zst"
    data = store(engine).objects[key]
    store(engine).objects[key] = data[:-1] + bytes([data[-1] ^ 1])
    bad = await handle(engine, f"verify-backup prod {b['id']}")
    assert bad.exit_code == 1 and "MISMATCH" in render_text(bad)
    old = await handle(engine, "verify-backup prod 20200101T000000Z-abcdef")
    assert old.exit_code == 1 and "no backup 20200101T000000Z-abcdef" in old.error
    assert (await handle(engine, "verify-backup prod ../etc/passwd")).exit_code == 2  # strict id pattern


async def test_restore_order_and_safety_backup(engine, world):
    rt, fake_db = world
    b = (await handle(engine, "backup prod")).to_json()["backup"]
    fake_db.content = b"-- broken since\n"
    pending = await handle(engine, f"restore prod {b['id']}")
    assert pending.to_json()["approval"]["state"] == "pending" and "Approve" in render_text(pending)
    rt.calls.clear()
    done = await engine.decide(Request(actor="U0APPROVER1", door="cli"), pending.to_json()["approval"]["id"], "approve")
    result = done.to_json()["result"]
    assert result["ok"] and fake_db.content == b"CREATE TABLE orders (id int);\n" * 2000
    stops = [c for c in rt.calls if c.startswith(("stop", "start ", "exec_stream"))]
    assert stops[0].startswith("exec_stream postgres ['pg_dump'")  # the safety backup first
    # the shutdown stages before the database's, then the restore, then startup order
    assert stops[1:4] == ["stop api", "stop worker", "stop redis"] and "psql" in stops[4]
    assert stops[5:] == ["start redis", "start api", "start worker"]
    assert unzstd(store(engine).objects[f"backups/prod/db/{result['safety_backup']['id']}.sql.zst"]) == (
        b"-- broken since\n"
    )  # fmt: skip
    assert "restore" in render_text(done)
    shown = slack_text(done)
    assert shown.startswith(f"Done: restore the database of prod from backup {b['id']}")
    assert f"Safety backup: *{result['safety_backup']['id']}*" in shown
    assert "6. verify — every health check passes" in shown


async def test_failed_restore_says_where_and_names_the_safety_backup(engine, world):
    rt, fake_db = world
    b = (await handle(engine, "backup prod")).to_json()["backup"]
    fake_db.restore_fails = True
    pending = await handle(engine, f"restore prod {b['id']}")
    done = await engine.decide(Request(actor="U0APPROVER1", door="cli"), pending.to_json()["approval"]["id"], "approve")
    result = done.to_json()["result"]
    assert done.exit_code == 1 and not result["ok"]
    safety = result["safety_backup"]["id"]
    assert "step 4 (restore) failed" in result["problem"] and "exited with 3" in result["problem"]
    assert "PARTLY" in result["problem"] and f"restore prod {safety}" in result["problem"]
    assert "api, worker, redis stay stopped" in result["problem"]
    assert {c.state for c in rt.items if c.service in ("api", "worker", "redis")} == {"exited"}
    assert not any(c.startswith("start") for c in rt.calls)


async def test_restore_refuses_a_damaged_backup_before_changing_anything(engine, world):
    rt, _ = world
    b = (await handle(engine, "backup prod")).to_json()["backup"]
    key = f"backups/prod/db/{b['id']}.sql.zst"
    s = store(engine)
    pending = await handle(engine, f"restore prod {b['id']}")
    data = s.objects[key]
    s.objects[key] = data[:50] + bytes([data[50] ^ 1]) + data[51:]  # same size, one bit off
    rt.calls.clear()
    done = await engine.decide(Request(actor="U0APPROVER1", door="cli"), pending.to_json()["approval"]["id"], "approve")
    problem = done.to_json()["result"]["problem"]
    assert "step 1 (check the backup) failed" in problem and "does not match" in problem
    assert "Nothing was changed" in problem
    assert not [c for c in rt.calls if c.startswith(("stop", "exec_stream"))]

    pending = await handle(engine, f"restore prod {b['id']}")
    s.objects[key] = data[:-20]  # another size than the approved plan said: not run at all
    done = await engine.decide(Request(actor="U0APPROVER1", door="cli"), pending.to_json()["approval"]["id"], "approve")
    assert done.to_json()["approval"]["state"] == "stale" and "plan changed" in done.to_json()["message"]


async def test_file_store_leaves_no_temporary_file_on_failure(tmp_path):
    fs = FileStore(f"file://{tmp_path}/")

    async def chunks():
        yield b"x" * 1000
        raise AdapterError("the dump broke")

    with pytest.raises(AdapterError):
        await fs.put("prod/db/20240101T000000Z-abcdef.sql.gz", chunks(), {}, dict)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    with pytest.raises(AdapterError):
        fs._path("../../etc/passwd")


async def test_a_store_failing_while_the_dump_runs_ahead_ends_the_backup_at_once():
    # a fast dump fills both queues while the store is stuck on a part; then the store fails
    import asyncio

    from adapters.stores.pipeline import QUEUE, Meter, dump_to_store

    class EndlessDump:
        description = "pg_dump"
        reads = 0

        async def read(self) -> bytes:
            self.reads += 1
            await asyncio.sleep(0)
            return os.urandom(256 * 1024)  # incompressible, never ends

        async def wait(self) -> int:
            return 0

        def stderr(self) -> str:
            return ""

    class StuckThenFailingStore:
        async def put(self, key, chunks, metadata, final):
            n = 0
            async for _ in chunks:
                n += 1
                if n == 2:
                    while dump.reads < 4 * QUEUE:  # a slow part: both queues fill behind it (2 reads a chunk)
                        await asyncio.sleep(0)
                    raise AdapterError("S3 went away")

    dump = EndlessDump()
    # a hang would end in the backstop's TimeoutError, not in the store's error
    with pytest.raises(AdapterError, match="S3 went away"):
        await asyncio.wait_for(dump_to_store(dump, StuckThenFailingStore(), "k", {}, dict, Meter()), 60)
    # nothing reads the dump any more (its process can be killed): no task of the pipeline is left
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []


async def test_a_password_in_the_dump_command_is_not_kept_with_the_backup(tmp_path, world):
    rt, _ = world
    envs = copy.deepcopy(BASE["environments"])
    envs["prod"]["backup"] = {"store": "s3://fake-bucket/backups/",
                              "database": {"service": "postgres", "restore": RESTORE,
                                           "dump": ["pg_dump", "postgresql://app:S3cretPw@db/app"]}}  # fmt: skip
    db = Database(tmp_path / "p.db")
    config = make_config(access=ACCESS, environments=envs)
    engine = Engine(config, FakeBackends({"prod": rt}, FakeProbe()), db, Redactor())
    try:
        reply = await handle(engine, "backup prod")
        assert reply.exit_code == 0, reply.error
        [meta] = store(engine).meta.values()
        rows = sqlite3.connect(tmp_path / "p.db").execute("SELECT * FROM backups").fetchall()
        kept = [meta["command"], reply.to_json()["backup"]["command"], str(rows)]
        assert all("S3cretPw" not in text for text in kept) and "postgresql://app:" in meta["command"]
    finally:
        db.close()


async def test_a_restore_that_stops_reading_says_its_exit_code_and_stderr():
    # psql -v ON_ERROR_STOP=1 exits at the first SQL error; our next write meets a closed pipe
    from adapters.fakes import InMemoryStore
    from adapters.stores.pipeline import DumpFailed, Meter, store_to_process

    class StoppingPsql:
        description = "psql"

        async def write(self, data: bytes) -> None:
            raise AdapterError("psql stopped reading its input")

        async def read(self) -> bytes:
            return b""

        async def wait(self) -> int:
            return 3

        def stderr(self) -> str:
            return 'ERROR:  relation "orders" already exists'

        async def close_stdin(self) -> None:
            pass

    objects = InMemoryStore("s3://fake-bucket/backups/")
    objects.objects["k"] = gzip.compress(b"CREATE TABLE orders (id int);\n" * 1000)
    with pytest.raises(DumpFailed) as info:
        await store_to_process(objects, "k", StoppingPsql(), Meter())
    assert str(info.value) == (
        'psql exited with 3 before the end of the backup; stderr: ERROR:  relation "orders" already exists'
    )


async def test_no_backup_while_another_change_holds_the_environment(engine):
    from bot.core.locks import EnvLocks

    other = EnvLocks(engine.db, runner=f"elsewhere:1:{os.getpid()}")  # another bot process, alive
    async with other.hold("prod", "`restore prod 20261126T000000Z-abcdef`"):
        refused = await handle(engine, "backup prod")
    assert refused.exit_code == 2 and "another change is running in prod: `restore prod" in refused.error
    assert not store(engine).objects  # nothing was dumped
    assert (await handle(engine, "backup prod")).exit_code == 0  # free again


async def test_a_restore_cut_off_says_after_which_step_and_names_the_safety_backup(engine, world):
    import asyncio

    rt, _ = world
    b = (await handle(engine, "backup prod")).to_json()["backup"]
    pending = await handle(engine, f"restore prod {b['id']}")
    rt.delay = 0.2  # each engine call takes a while: the bot is stopped in the middle
    run = asyncio.create_task(
        engine.decide(Request(actor="U0APPROVER1", door="cli"), pending.to_json()["approval"]["id"], "approve")
    )
    deadline = asyncio.get_running_loop().time() + 30
    while not any(c.startswith("stop ") for c in rt.calls):  # past the safety backup, stopping the services
        assert asyncio.get_running_loop().time() < deadline, rt.calls
        await asyncio.sleep(0.01)
    assert len(store(engine).objects) == 2  # the safety backup is stored
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    [safety] = [k for k in store(engine).objects if b["id"] not in k]
    rows = [r for r in await engine.audit.entries(limit=30) if r["event"] == "restore-failed"]
    assert len(rows) == 1 and rows[0]["outcome"].startswith("cut off (the bot stopped) after: check the backup")
    safety_id = safety.rsplit("/", 1)[1].removesuffix(".sql.zst")
    assert "PARTLY restored" in rows[0]["outcome"] and f"the safety backup {safety_id}" in rows[0]["outcome"]


async def test_a_backup_replaced_between_its_check_and_its_restore_is_said():
    from adapters.fakes import InMemoryStore
    from adapters.stores.pipeline import DumpFailed, Meter, store_to_process

    class Psql:
        description = "psql"
        taken = b""
        closed = False

        async def write(self, data: bytes) -> None:
            self.taken += data

        async def read(self) -> bytes:
            return b""

        async def wait(self) -> int:
            return 0

        def stderr(self) -> str:
            return ""

        async def close_stdin(self) -> None:
            self.closed = True

    objects = InMemoryStore("s3://fake-bucket/backups/")
    objects.objects["k"] = gzip.compress(b"CREATE TABLE orders (id int);\n")
    checked = hashlib.sha256(objects.objects["k"]).hexdigest()
    ok = Psql()
    await store_to_process(objects, "k", ok, Meter(), sha256=checked)
    assert ok.closed and ok.taken == b"CREATE TABLE orders (id int);\n"
    objects.objects["k"] = gzip.compress(b"DROP TABLE orders;\n")  # someone put another object there
    swapped = Psql()
    with pytest.raises(DumpFailed, match=f"the backup changed while it was restored: .* not the {checked} checked"):
        await store_to_process(objects, "k", swapped, Meter(), sha256=checked)
    assert not swapped.closed


async def test_file_store_backups_are_private(tmp_path):
    """Issue 11, finding 6: backups and their metadata 0600, in folders of 0700, whatever the umask."""
    import os
    import stat

    root = tmp_path / "backups"
    root.mkdir(mode=0o755)
    root.chmod(0o755)  # as an older opsbot (or the example's /var/tmp) left it
    fs = FileStore(f"file://{root}/")

    async def chunks():
        yield b"CREATE TABLE secrets (password text);\n"

    old = os.umask(0o022)
    try:
        await fs.put("prod/db/20240101T000000Z-abcdef.sql.gz", chunks(), {"requester": "U0OPERATOR"}, dict)
    finally:
        os.umask(old)
    backup = root / "prod/db/20240101T000000Z-abcdef.sql.gz"
    meta = backup.with_name(backup.name + ".meta.json")
    for path in (backup, meta):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for path in (root, root / "prod", root / "prod/db"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path


async def test_verify_says_a_backup_older_than_its_period_is_too_old(engine):
    old_id = "20200101T000000Z-abcdef"
    data = gzip.compress(b"CREATE TABLE t (id int);\n")
    store(engine).add(f"backups/prod/db/{old_id}.sql.gz", data, {"sha256": hashlib.sha256(data).hexdigest()})
    reply = await handle(engine, f"verify-backup prod {old_id}", actor="U0VIEWER")
    checks = {c["name"]: c for c in reply.to_json()["checks"]}
    assert reply.exit_code == 1 and not reply.to_json()["ok"]
    assert checks["sha256"]["severity"] == checks["gzip"]["severity"] == "ok"  # intact, only too old
    assert checks["age"]["severity"] == "critical" and checks["age"]["detail"].endswith("days old (limit 24.0 h)")
    rows = [r for r in await engine.audit.entries(limit=10) if r["event"] == "backup-verify-failed"]
    assert rows and rows[0]["outcome"].startswith(f"{old_id}: exists ok; sha256 ok; gzip ok; age critical")


async def test_a_restore_test_of_a_damaged_backup_is_not_run(engine, world):
    _, fake_db = world
    b = (await handle(engine, "backup prod")).to_json()["backup"]
    key = f"backups/prod/db/{b['id']}.sql.zst"
    data = store(engine).objects[key]
    store(engine).objects[key] = data[:-1] + bytes([data[-1] ^ 1])
    fake_db.log.clear()
    reply = await handle(engine, f"verify-backup prod {b['id']} --restore-test")
    checks = {c["name"]: c for c in reply.to_json()["checks"]}
    assert reply.exit_code == 1 and checks["sha256"]["severity"] == "critical"
    assert checks["restore test"] == {"name": "restore test", "severity": "critical",
                                      "detail": "not run: the backup is damaged"}  # fmt: skip
    assert fake_db.log == []  # no scratch database was made


async def test_a_restore_test_needs_a_psql_restore_command(tmp_path, world):
    rt, _ = world
    envs = copy.deepcopy(BASE["environments"])
    envs["prod"]["backup"] = {"store": "s3://fake-bucket/backups/", "database": {
        "service": "postgres", "dump": ["mysqldump", "shop"], "restore": ["mysql", "shop"]}}  # fmt: skip
    ran: list[str] = []

    def mysql(argv, stdin):
        ran.append(argv[0])
        return (0, b"CREATE TABLE t (id int);\n", b"") if argv[0] == "mysqldump" else (0, b"", b"")

    rt.stream_handler = mysql
    db = Database(tmp_path / "m.db")
    engine = Engine(make_config(access=ACCESS, environments=envs), FakeBackends({"prod": rt}, FakeProbe()), db,
                    Redactor())  # fmt: skip
    try:
        backed_up = await handle(engine, "backup prod")
        assert backed_up.exit_code == 0, backed_up.error
        b = backed_up.to_json()["backup"]
        ran.clear()
        reply = await handle(engine, f"verify-backup prod {b['id']} --restore-test")
        checks = {c["name"]: c for c in reply.to_json()["checks"]}
        assert reply.exit_code == 1 and checks["sha256"]["severity"] == "ok"
        assert checks["restore test"]["severity"] == "critical" and checks["restore test"]["detail"] == (
            "--restore-test needs backup.database.restore to be `psql ... <database>` (PostgreSQL) "
            "ending with the database name"
        )
        assert ran == []  # nothing was run in the database's container
    finally:
        db.close()


async def test_retention_says_each_deletion_in_the_audit_log(engine):
    s = store(engine)
    old = datetime.now(UTC) - timedelta(days=90)
    for name in ("20200101T000000Z-aaaaaa", "20200102T000000Z-bbbbbb"):
        s.add(f"backups/prod/db/{name}.sql.gz", gzip.compress(b"old"), at=old)
    reply = await handle(engine, "backup prod")
    assert sorted(reply.to_json()["deleted"]) == ["20200101T000000Z-aaaaaa", "20200102T000000Z-bbbbbb"]
    rows = [r for r in reversed(await engine.audit.entries(limit=20)) if r["event"] == "backup-deleted"]
    assert [(r["command"], r["outcome"]) for r in rows] == [
        ("backup prod", "20200102T000000Z-bbbbbb (older than 30 days)"),
        ("backup prod", "20200101T000000Z-aaaaaa (older than 30 days)"),
    ]
    names = ("20200102T000000Z-bbbbbb", "20200101T000000Z-aaaaaa")
    assert [r["details"]["location"] for r in rows] == [s.location(f"backups/prod/db/{n}.sql.gz") for n in names]


async def test_gzip_when_configured_and_both_kinds_verify_and_restore(engine, world):
    _, fake_db = world
    zst = (await handle(engine, "backup prod")).to_json()["backup"]
    engine.config.environments["prod"].backup.compression = "gzip"
    plan = (await handle(engine, "backup prod --dry-run")).to_json()["plan"]["steps"]
    assert plan[1].startswith("gzip and sha256") and plan[1].endswith("<id>.sql.gz")
    gz = (await handle(engine, "backup prod")).to_json()["backup"]
    key = f"backups/prod/db/{gz['id']}.sql.gz"
    assert gzip.decompress(store(engine).objects[key]) == fake_db.content
    assert gz["compression"] == "gzip" and store(engine).meta[key]["compression"] == "gzip"
    listed = (await handle(engine, "backups prod")).to_json()["backups"]
    assert {x["id"]: x["compression"] for x in listed} == {zst["id"]: "zstd", gz["id"]: "gzip"}
    for b, kind in ((zst, "zstd"), (gz, "gzip")):
        checks = {c["name"]: c for c in (await handle(engine, f"verify-backup prod {b['id']}")).to_json()["checks"]}
        assert checks[kind]["severity"] == "ok" and "58.6 KiB of dump" in checks[kind]["detail"]
        fake_db.content = b"-- something else\n"
        pending = await handle(engine, f"restore prod {b['id']}")
        unpack = {"zstd": "zstd -d", "gzip": "gunzip"}[kind]
        assert any(f"through {unpack} into: psql" in line for line in pending.to_json()["plan"]["steps"])
        done = await engine.decide(Request(actor="U0APPROVER1", door="cli"), pending.to_json()["approval"]["id"],
                                   "approve")  # fmt: skip
        assert done.to_json()["result"]["ok"] and fake_db.content == b"CREATE TABLE orders (id int);\n" * 2000


async def test_an_old_gzip_backup_without_the_compression_key_still_restores(engine, world):
    _, fake_db = world
    old = b"-- made by an older opsbot\nCREATE TABLE orders (id int);\n" * 500
    data = gzip.compress(old)
    meta = {"size": str(len(data)), "sha256": hashlib.sha256(data).hexdigest(), "kind": "backup"}
    store(engine).add("backups/prod/db/20260101T000000Z-0a0b0c.sql.gz", data, meta)
    store(engine).add("backups/prod/db/by-hand", data)  # neither name nor metadata says: its bytes do
    for backup_id in ("20260101T000000Z-0a0b0c", "by-hand"):
        fake_db.content = b"-- now\n"
        pending = await handle(engine, f"restore prod {backup_id}")
        done = await engine.decide(Request(actor="U0APPROVER1", door="cli"), pending.to_json()["approval"]["id"],
                                   "approve")  # fmt: skip
        assert done.to_json()["result"]["ok"], done.to_json()
        assert fake_db.content == old


async def test_a_backup_neither_zstd_nor_gzip_is_refused_before_anything_changes(engine, world):
    rt, _ = world
    store(engine).add("backups/prod/db/20260101T000000Z-0a0b0c.sql.zst", b"plain SQL, not compressed\n")
    verified = await handle(engine, "verify-backup prod 20260101T000000Z-0a0b0c")
    checks = {c["name"]: c for c in verified.to_json()["checks"]}
    assert verified.exit_code == 1 and "not valid zstd after 26 bytes" in checks["zstd"]["detail"]
    store(engine).add("backups/prod/db/20260102T000000Z-0a0b0c", b"plain SQL, not compressed\n")
    pending = await handle(engine, "restore prod 20260102T000000Z-0a0b0c")
    rt.calls.clear()
    done = await engine.decide(Request(actor="U0APPROVER1", door="cli"), pending.to_json()["approval"]["id"], "approve")
    problem = done.to_json()["result"]["problem"]
    assert "step 1 (check the backup) failed" in problem and "neither zstd nor gzip" in problem
    assert not [c for c in rt.calls if c.startswith(("stop", "exec_stream"))]
