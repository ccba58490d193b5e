"""The hash-chained audit log: append, read, and catching altered, deleted and inserted rows."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import pytest

from bot.config.redact import Redactor
from bot.core.audit import AuditLog, row_hash
from bot.core.db import Database


@pytest.fixture
async def log(tmp_path):
    db = Database(tmp_path / "audit.db")
    log = AuditLog(db, Redactor(["my-bot-secret"]))
    for i in range(5):
        await log.append(
            actor=f"U0USER{i}",
            source="cli",
            command=f"status prod #{i}",
            event="succeeded",
            outcome="ok",
            environment="prod",
            details={"i": i, "leak": "my-bot-secret"},
            request_id=f"r{i}",
        )
    yield log
    db.close()


def raw(log: AuditLog) -> sqlite3.Connection:
    conn = sqlite3.connect(log.db.path, isolation_level=None)
    return conn


async def test_chain_verifies_and_entries_read_newest_first(log):
    v = await log.verify()
    assert v.ok and v.rows == 5
    rows = await log.entries(limit=3)
    assert [r["id"] for r in rows] == [5, 4, 3]
    assert rows[0]["details"]["i"] == 4
    assert rows[1]["prev_hash"] == rows[2]["hash"]
    assert "my-bot-secret" not in json.dumps(rows)
    assert [r["actor"] for r in await log.entries(user="U0USER2")] == ["U0USER2"]


async def test_altered_row_is_caught(log):
    raw(log).execute("UPDATE audit SET outcome = 'critical' WHERE id = 3")
    v = await log.verify()
    assert not v.ok and v.bad_id == 3 and "altered" in v.reason


@pytest.mark.parametrize(
    ("column", "value"),
    [("ts", "2020-01-01T00:00:00Z"), ("actor", "U0SOMEONE"), ("source", "slack"), ("environment", "staging"),
     ("command", "status staging"), ("event", "refused"), ("details", '{"i": 9}'), ("request_id", "r9")],
)  # fmt: skip
async def test_every_recorded_column_is_covered_by_the_hash(log, column, value):
    raw(log).execute(f"UPDATE audit SET {column} = ? WHERE id = 3", (value,))
    v = await log.verify()
    assert not v.ok and v.bad_id == 3 and "altered" in v.reason


async def test_deleted_row_is_caught(log):
    raw(log).execute("DELETE FROM audit WHERE id = 2")
    v = await log.verify()
    assert not v.ok and v.bad_id == 3


async def test_inserted_row_is_caught_even_with_a_valid_own_hash(log):
    conn = raw(log)
    # make room after row 2 (ids 3..5 become 4..6), highest first to keep ids unique
    for i in (5, 4, 3):
        conn.execute("UPDATE audit SET id = id + 1 WHERE id = ?", (i,))
    prev = conn.execute("SELECT hash FROM audit WHERE id = 2").fetchone()[0]
    row = {
        "id": 3,
        "ts": "2026-01-01T00:00:00.000Z",
        "actor": "U0EVIL",
        "source": "cli",
        "environment": "prod",
        "command": "deploy prod 6.6.6",
        "event": "succeeded",
        "outcome": "ok",
        "details": "{}",
        "request_id": None,
        "prev_hash": prev,
    }
    row["hash"] = row_hash(row)
    conn.execute(f"INSERT INTO audit ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", tuple(row.values()))
    v = await log.verify()
    assert not v.ok and v.bad_id == 4


async def test_rows_cut_from_the_end_are_caught(log):
    raw(log).execute("DELETE FROM audit WHERE id >= 4")
    v = await log.verify()
    assert not v.ok and "cut from the end" in v.reason


async def test_concurrent_appends_from_two_databases_keep_one_chain(tmp_path):
    path = tmp_path / "shared.db"
    a, b = Database(path), Database(path)
    la, lb = AuditLog(a, Redactor()), AuditLog(b, Redactor())

    async def many(log, who):
        for i in range(25):
            await log.append(actor=who, source="cli", command=f"c{i}", event="requested", outcome="accepted")

    await asyncio.gather(many(la, "U0AAA"), many(lb, "U0BBB"))
    v = await la.verify()
    assert v.ok and v.rows == 50
    a.close()
    b.close()


async def test_the_database_and_its_wal_files_are_private(tmp_path):
    """Issue 11, finding 6: opsbot.db, -wal and -shm are 0600 whatever the umask; an old 0644 file is tightened."""
    import os
    import stat

    from bot.core.db import Database

    old = os.umask(0o022)
    try:
        db = Database(tmp_path / "opsbot.db")
        await db.call(lambda d: d.execute("CREATE TABLE t (x)"))
        await db.call(lambda d: d.execute("INSERT INTO t VALUES (1)"))
        files = [tmp_path / n for n in ("opsbot.db", "opsbot.db-wal", "opsbot.db-shm")]
        for path in files:
            assert path.exists() and stat.S_IMODE(path.stat().st_mode) == 0o600, path
        db.close()
        (tmp_path / "opsbot.db").chmod(0o644)
        db = Database(tmp_path / "opsbot.db")
        await db.ping()
        assert stat.S_IMODE((tmp_path / "opsbot.db").stat().st_mode) == 0o600
        db.close()
    finally:
        os.umask(old)


async def test_audit_verify_as_a_command_in_any_door(tmp_path):
    from adapters.fakes import FakeBackends
    from bot.core.engine import Engine, Request
    from bot.render.text import render_text
    from tests.unit.conftest import make_config

    db = Database(tmp_path / "engine.db")
    engine = Engine(make_config(), FakeBackends(), db, Redactor())

    async def ask(text):
        return await engine.handle(Request(actor="U0OPERATOR", door="slack", text=text))

    try:
        for _ in range(3):
            await ask("escalate")
        reply = await ask("audit verify")
        assert reply.exit_code == 0 and render_text(reply).startswith("audit log intact: 7 entries, chain verified")
        refused = await ask("audit verify --limit 3")
        assert refused.exit_code == 2 and "takes no --env, --user or --limit" in refused.error
        assert (await ask("audit prod")).exit_code == 2
        sqlite3.connect(db.path, isolation_level=None).execute("UPDATE audit SET actor = 'U0EVIL' WHERE id = 3")
        reply = await ask("audit verify")
        assert reply.exit_code == 1 and reply.to_json()["verification"] == {
            "ok": False, "rows": 3, "bad_id": 3, "reason": "its content does not match its hash (the row was altered)"
        }  # fmt: skip
        assert render_text(reply).startswith("CRIT  audit log broken at entry 3: its content does not match")
    finally:
        db.close()
