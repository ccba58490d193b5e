"""The audit log at scale: the fast chain walk equals the definition, long logs are walked in parallel
ranges, a verify during appends is not fooled, the WAL stays bounded, and env+user reads use their index."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bot.core.audit as audit_module
import bot.core.audit_chain as chain
from bot.config.redact import Redactor
from bot.core.audit import GENESIS, AuditLog, canonical, row_hash
from bot.core.db import MIGRATIONS, Database, connect

texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)  # any text but lone surrogates


@settings(max_examples=300, deadline=None)
@given(actor=texts, command=texts, details=texts, environment=st.none() | texts, event=texts, id_=st.integers(1, 2**62),
       outcome=texts, prev=texts, request_id=st.none() | texts, source=texts, ts=texts)  # fmt: skip
def test_the_fast_walk_hashes_exactly_as_the_definition(actor, command, details, environment, event, id_, outcome,
                                                        prev, request_id, source, ts):  # fmt: skip
    row = {"actor": actor, "command": command, "details": details, "environment": environment, "event": event,
           "id": id_, "outcome": outcome, "prev_hash": prev, "request_id": request_id, "source": source,
           "ts": ts}  # fmt: skip
    conn = sqlite3.connect(":memory:")
    conn.execute(f"CREATE TABLE audit ({', '.join(chain.COLUMNS)})")
    conn.execute(f"INSERT INTO audit VALUES ({', '.join('?' * len(chain.COLUMNS))})",
                 (*(row[c] for c in chain.COLUMNS[:-1]), row_hash(row)))  # fmt: skip
    assert chain.walk_rows(conn, 0, 2**62, prev).bad_id is None  # equal to canonical(), or it would not match
    conn.execute("UPDATE audit SET hash = ?", (row_hash({**row, "outcome": outcome + "!"}),))
    assert chain.walk_rows(conn, 0, 2**62, prev).bad_id == id_
    assert canonical(row)  # (the definition itself)


@pytest.fixture
async def big(tmp_path, monkeypatch):
    """A log of 300 entries, walked in 3 ranges by 3 processes."""
    monkeypatch.setattr(chain, "PARALLEL_FROM", 10)
    monkeypatch.setattr(chain, "WORKERS", 3)
    db = Database(tmp_path / "big.db")
    log = AuditLog(db, Redactor())
    for i in range(300):
        await log.append(actor=f"U0USER{i % 7}", source="cli", command=f"status prod #{i}", event="succeeded",
                         outcome="ok \u00e9\n\"quoted\"", environment="prod" if i % 3 else None,
                         details={"i": i}, request_id=None if i % 5 else f"r{i}")  # fmt: skip
    yield log
    db.close()


async def test_a_long_log_walked_in_ranges(big):
    v = await big.verify()
    assert v.ok and v.rows == 300


async def test_damage_in_a_later_range_and_at_a_boundary(big):
    conn = sqlite3.connect(big.db.path, isolation_level=None)
    conn.execute("UPDATE audit SET outcome = 'critical' WHERE id = 250")  # inside the third range
    v = await big.verify()
    assert not v.ok and v.bad_id == 250 and "altered" in v.reason and v.rows == 250
    conn.execute("UPDATE audit SET outcome = ? WHERE id = 250", ("ok \u00e9\n\"quoted\"",))
    assert (await big.verify()).ok
    conn.execute("DELETE FROM audit WHERE id = 101")  # the first row of the second range (ids 101..200)
    v = await big.verify()
    assert not v.ok and v.bad_id == 102 and "link" in v.reason


async def test_a_row_added_after_the_head_record_is_caught(big):
    conn = sqlite3.connect(big.db.path, isolation_level=None)
    last = conn.execute("SELECT * FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    cols = [d[0] for d in conn.execute("SELECT * FROM audit LIMIT 1").description]
    row = {**dict(zip(cols, last, strict=True)), "id": 301, "prev_hash": last[cols.index("hash")]}
    row["hash"] = row_hash(row)  # a well-formed link: only the head record can tell
    conn.execute(f"INSERT INTO audit ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", tuple(row.values()))
    v = await big.verify()
    assert not v.ok and "ends at row 301 but its head record names row 300" in v.reason


async def test_verify_while_the_bot_appends_is_not_fooled(tmp_path):
    path = tmp_path / "busy.db"
    writer, reader = Database(path), Database(path)
    wlog, rlog = AuditLog(writer, Redactor()), AuditLog(reader, Redactor())
    await wlog.append(actor="U0A", source="cli", command="first", event="requested", outcome="ok")
    stop = asyncio.Event()

    async def keep_appending() -> int:
        n = 0
        while not stop.is_set():
            await wlog.append(actor="U0A", source="cli", command=f"c{n}", event="requested", outcome="ok")
            n += 1
        return n

    task = asyncio.create_task(keep_appending())
    results = [await rlog.verify() for _ in range(15)]
    stop.set()
    appended = await task
    assert appended > 0 and all(v.ok for v in results), [v for v in results if not v.ok]
    assert (await rlog.verify()).rows == appended + 1
    writer.close()
    reader.close()


async def test_the_wal_is_restarted_every_so_many_appends(tmp_path, monkeypatch):
    monkeypatch.setattr(audit_module, "CHECKPOINT_EVERY", 20)
    db = Database(tmp_path / "wal.db")
    log = AuditLog(db, Redactor())
    for i in range(21):
        await log.append(actor="U0A", source="cli", command=f"c{i}", event="requested", outcome="ok")
    # the 20th append checkpointed and restarted the WAL: it holds only what the 21st wrote
    frames = sqlite3.connect(db.path).execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
    assert 0 < frames < 10, frames
    db.close()


def test_migration_8_indexes_environment_and_user_together(tmp_path):
    old = sqlite3.connect(tmp_path / "v7.db", isolation_level=None)  # a database as the bot left it at version 7
    for script in MIGRATIONS[:7]:
        for statement in script.split(";"):
            if statement.strip():
                old.execute(statement)
    old.execute("PRAGMA user_version = 7")
    old.close()
    db = connect(tmp_path / "v7.db")
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) >= 8
    plan = db.execute("EXPLAIN QUERY PLAN SELECT * FROM audit WHERE environment = ? AND actor = ? "
                      "ORDER BY id DESC LIMIT 50", ("prod", "U0A")).fetchall()  # fmt: skip
    assert "audit_env_actor (environment=? AND actor=?)" in plan[0][-1]  # no scan of either one alone
    assert GENESIS == "0" * 64
