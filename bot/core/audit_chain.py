"""Walking the audit log's hash chain quickly: streamed, the canonical JSON written directly, in parallel.

``canonical`` (``json.dumps`` of a dict, keys sorted) is the definition (it lives here, with the
walk, so that the walking child processes import nothing else of opsbot). The walk writes
the same text with one f-string per row: the columns come from SQLite in sorted key order as plain
tuples, each string through ``json``'s own C escaper, so no dict, no sorting and no encoder object
per row (the tests hold the two equal on arbitrary text). A value of another type than the schema's
(a blob put in by hand) falls back to ``canonical``.

A long log is split by id into ranges walked by ``WORKERS`` child processes at once (``python -m
bot.core.audit_chain``; each has its own connection; SQLite's WAL lets them read while the bot writes);
each range reports its first row's ``prev_hash`` and its last row's hash, and the ranges are
stitched in order, so a link broken at a boundary is caught like any other.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GENESIS = "0" * 64
#: the hashed fields of an audit row
FIELDS = (
    "id", "ts", "actor", "source", "environment", "command", "event", "outcome", "details",
    "request_id", "prev_hash",
)  # fmt: skip


def canonical(row: dict[str, Any]) -> str:
    """The canonical JSON of a row's hashed fields."""
    return json.dumps({k: row.get(k) for k in FIELDS}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


#: sorted like the canonical JSON's keys; the row's own hash last
COLUMNS = ("actor", "command", "details", "environment", "event", "id", "outcome", "prev_hash", "request_id",
           "source", "ts", "hash")  # fmt: skip
#: logs at least this long are walked by several processes
PARALLEL_FROM = 200_000
#: processes walking a long log (at most)
WORKERS = min(os.cpu_count() or 1, 4)

LINK = "its link to the row before does not match (a row before it was deleted, inserted or altered)"
ALTERED = "its content does not match its hash (the row was altered)"


@dataclass(frozen=True)
class Segment:
    """What walking the rows of one id range found."""

    count: int  # rows walked (up to and with the first bad one)
    first_id: int | None  # its first row
    first_prev: str | None  # prev_hash of its first row
    last_id: int | None
    last_hash: str | None
    bad_id: int | None = None
    reason: str = ""


def _canonical(row: tuple[Any, ...]) -> str:
    """The canonical JSON of a row, by ``canonical`` (the slow, sure way)."""
    return canonical(dict(zip(COLUMNS, row, strict=False)))


def walk(path: str, low: int, high: int, first_prev: str | None = None) -> Segment:
    """Walk the rows with ``low <= id <= high`` in id order, checking links and hashes (its own connection).

    ``first_prev``: what the first row's ``prev_hash`` must be (None: not checked here, the caller does).
    """
    conn = sqlite3.connect(path, timeout=10.0)
    try:
        return walk_rows(conn, low, high, first_prev)
    finally:
        conn.close()


def walk_rows(conn: sqlite3.Connection, low: int, high: int, first_prev: str | None) -> Segment:
    """``walk`` on an open connection (inside the caller's transaction, if it has one)."""
    esc = json.encoder.encode_basestring  # the C escaper json.dumps uses
    sha = hashlib.sha256
    sql = f"SELECT {', '.join(COLUMNS)} FROM audit WHERE id BETWEEN ? AND ? ORDER BY id"  # noqa: S608
    cursor = conn.execute(sql, (low, high))
    count, prev, start, first_id, last_id = 0, first_prev, None, None, None
    for row in cursor:
        actor, command, details, environment, event, id_, outcome, prev_hash, request_id, source, ts, digest = row
        count += 1
        if count == 1:
            start, first_id = prev_hash, id_
        if prev is not None and prev_hash != prev:
            return Segment(count, first_id, start, last_id, prev, id_, LINK)
        try:
            text = (
                f'{{"actor":{esc(actor)},"command":{esc(command)},"details":{esc(details)},'
                f'"environment":{"null" if environment is None else esc(environment)},"event":{esc(event)},'
                f'"id":{id_:d},"outcome":{esc(outcome)},"prev_hash":{esc(prev_hash)},'
                f'"request_id":{"null" if request_id is None else esc(request_id)},"source":{esc(source)},'
                f'"ts":{esc(ts)}}}'
            )
        except (TypeError, ValueError):  # not the schema's types: the definition decides
            try:
                text = _canonical(row)
            except (TypeError, ValueError):
                return Segment(count, first_id, start, last_id, prev, id_, ALTERED)
        try:
            if sha((prev_hash + text).encode()).hexdigest() != digest:
                return Segment(count, first_id, start, last_id, prev, id_, ALTERED)
        except (TypeError, UnicodeEncodeError):  # not text, or text no appender could have written
            return Segment(count, first_id, start, last_id, prev, id_, ALTERED)
        prev, last_id = digest, id_
    return Segment(count, first_id, start, last_id, prev)


def walk_upto(path: str, high: int, genesis: str) -> Segment:
    """The chain from its first row to ``high``: in one pass, or in ranges by several processes for a long log."""
    conn = sqlite3.connect(path, timeout=10.0)
    try:
        low, rows = conn.execute("SELECT min(id), count(*) FROM audit WHERE id <= ?", (high,)).fetchone()
    finally:
        conn.close()
    if rows < PARALLEL_FROM or WORKERS < 2:
        return walk(path, 0, high, genesis)
    step = (high - low + WORKERS) // WORKERS
    ranges = [(start, min(start + step - 1, high)) for start in range(low, high + 1, step)]
    # plain child processes of this module (python -m bot.core.audit_chain PATH LOW HIGH), never a re-run of __main__
    here = [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(here).rstrip(os.pathsep)}
    children = [subprocess.Popen([sys.executable, "-m", "bot.core.audit_chain", path, str(a), str(b)], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE) for a, b in ranges]  # fmt: skip
    segments = []
    for child in children:
        out, err = child.communicate()
        if child.returncode != 0:
            raise sqlite3.DatabaseError(f"walking a range of the audit log failed: {err.decode()[-300:].strip()}")
        segments.append(Segment(**json.loads(out)))
    return stitch(segments, genesis)


def tail_and_head(path: str, after: int, prev: str) -> tuple[Segment, tuple[int, str] | None]:
    """The rows after id ``after`` (linked from ``prev``) and the head record, read in one snapshot."""
    conn = sqlite3.connect(path, timeout=10.0, isolation_level=None)
    try:
        conn.execute("BEGIN")
        tail = walk_rows(conn, after + 1, 2**62, prev)
        found = conn.execute("SELECT last_id, hash FROM audit_head WHERE one = 1").fetchone()
        conn.execute("COMMIT")
        return tail, ((found[0], found[1]) if found else None)
    finally:
        conn.close()


def stitch(segments: list[Segment], genesis: str) -> Segment:
    """The segments of consecutive id ranges as one walk: the first problem in id order."""
    count, prev, first_id, last_id = 0, genesis, None, None
    for seg in segments:
        if seg.count == 0:
            continue
        first_id = seg.first_id if first_id is None else first_id
        if seg.first_prev != prev:  # the link into this range (its first row's prev_hash)
            return Segment(count + 1, first_id, genesis, last_id, prev, seg.first_id, LINK)
        if seg.bad_id is not None:
            return Segment(count + seg.count, first_id, genesis, seg.last_id, seg.last_hash, seg.bad_id, seg.reason)
        count, prev, last_id = count + seg.count, seg.last_hash or prev, seg.last_id
    return Segment(count, first_id, genesis, last_id, prev)


if __name__ == "__main__":  # one range, for walk_upto: python -m bot.core.audit_chain PATH LOW HIGH
    print(json.dumps(dataclasses.asdict(walk(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))))
