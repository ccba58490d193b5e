"""Opening the database: several bot processes starting together on one new file all open and migrate it."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bot.core.db import MIGRATIONS

ROOT = Path(__file__).resolve().parents[2]

# one bot process at start-up: waits for a file name on stdin (the barrier), opens it, says how it went
OPENER = """
import sys
from bot.core.db import connect
print("ready", flush=True)
for line in sys.stdin:
    try:
        db = connect(line.strip())
        version = db.execute("PRAGMA user_version").fetchone()[0]
        mode = db.execute("PRAGMA journal_mode").fetchone()[0]
        db.execute("SELECT count(*) FROM audit").fetchone()
        db.conn.close()
        print(f"ok {version} {mode}", flush=True)
    except Exception as exc:
        print(f"error {type(exc).__name__}: {exc}", flush=True)
"""

PROCESSES = 8
ROUNDS = 20


@pytest.fixture
def openers():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPENER], cwd=ROOT, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )
        for _ in range(PROCESSES)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready", "an opener process did not start"
        yield procs
    finally:
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.close()
        for proc in procs:
            proc.wait(timeout=60)


def test_eight_processes_open_one_new_file_at_once_every_time(openers, tmp_path):
    failures: list[str] = []
    for round_ in range(ROUNDS):
        path = tmp_path / f"round{round_}.db"
        # every process is blocked reading stdin: the file name releases them all at the same moment
        for proc in openers:
            assert proc.stdin is not None
            proc.stdin.write(f"{path}\n")
            proc.stdin.flush()
        answers = []
        for proc in openers:
            assert proc.stdout is not None
            answers.append(proc.stdout.readline().strip())
        failures += [f"round {round_}: {a}" for a in answers if a != f"ok {len(MIGRATIONS)} wal"]
        conn = sqlite3.connect(path)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            conn.close()
        assert {"audit", "approvals", "env_locks"} <= tables
    assert failures == []
