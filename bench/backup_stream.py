"""Benchmark: opsbot's streamed backup against `pg_dump | gzip > /dev/null`, and the bot's peak memory.

Starts a throwaway PostgreSQL cluster (as the tests do), fills a database whose plain dump is about
100 MiB and one of about 1 GiB, then for each: times `pg_dump -d DB | gzip -6 > /dev/null` (two
processes, no shell), and `opsbot run backup` into a file store on local disk (the same pg_dump, gzip
level 6 and sha256 in the bot, written to a temporary name, fsynced, renamed), as a separate process
whose peak RSS (VmHWM) is sampled. Prints the dump sizes, the throughputs, their ratio (goal: at
least 0.9 on the 1 GiB dump) and the bot's peak memory (goal: under 150 MB for both sizes).

    python bench/backup_stream.py [--sizes 100,1024] [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers.postgres import Postgres, start_postgres  # noqa: E402

OPSBOT = str(Path(sys.executable).with_name("opsbot"))
#: one row of the table is about this many bytes in the dump (COPY format)
ROW_BYTES = 121


def fill(pg: Postgres, db: str, mib: int) -> None:
    """A database whose dump is about ``mib`` MiB: text that compresses like real rows (about 3:1)."""
    pg.psql(f"CREATE DATABASE {db}")
    rows = mib * 2**20 // ROW_BYTES
    pg.psql("CREATE UNLOGGED TABLE events (id bigint, at timestamptz, kind text, payload text)", db=db)
    step = 500_000
    for start in range(1, rows + 1, step):
        end = min(start + step - 1, rows)
        pg.psql(
            "INSERT INTO events SELECT g, now() - g * interval '1 second', "
            "(ARRAY['order','refund','login','view'])[1 + g % 4], "
            f"md5(g::text) || ' ' || md5((g * 31)::text) || ' ' || repeat(chr(97 + g % 26), 12) "
            f"FROM generate_series({start}, {end}) g",
            db=db,
        )


def baseline(pg: Postgres, db: str) -> float:
    """Seconds for pg_dump -d db | gzip -6 > /dev/null."""
    start = time.perf_counter()
    with open(os.devnull, "wb") as null:
        dump = subprocess.Popen(pg.tool("pg_dump", "--no-owner", "-d", db), stdout=subprocess.PIPE)
        gz = subprocess.Popen(["gzip", "-6", "-c"], stdin=dump.stdout, stdout=null)
        assert dump.stdout is not None
        dump.stdout.close()
        assert gz.wait() == 0 and dump.wait() == 0
    return time.perf_counter() - start


def dump_size(pg: Postgres, db: str) -> int:
    """Bytes of the plain dump."""
    dump = subprocess.Popen(pg.tool("pg_dump", "--no-owner", "-d", db), stdout=subprocess.PIPE)
    assert dump.stdout is not None
    size = 0
    while chunk := dump.stdout.read(1 << 20):
        size += len(chunk)
    assert dump.wait() == 0
    return size


def opsbot_backup(pg: Postgres, db: str, work: Path) -> tuple[float, float, int, dict]:
    """``opsbot run --json backup bench``: (wall seconds, backup seconds, peak RSS bytes, the backup)."""
    config = {
        "project": "bench",
        "environments": {"bench": {
            "runtime": {"kind": "compose", "project": "bench"}, "services": {"db": {}},
            "backup": {"store": f"file://{work}/store/", "database": {
                "dump": pg.tool("pg_dump", "--no-owner", "-d", db), "restore": ["true"]}},
        }},
    }  # fmt: skip
    (work / "ops.yml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "OPSBOT_CONFIG": str(work / "ops.yml"), "OPSBOT_DB": str(work / "o.db")}
    start = time.perf_counter()
    proc = subprocess.Popen([OPSBOT, "run", "--json", "backup", "bench"], stdout=subprocess.PIPE, env=env)
    peak = [0]

    def sample() -> None:
        while proc.poll() is None:
            try:
                for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak[0] = max(peak[0], int(line.split()[1]) * 1024)
            except OSError:
                return
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    out, _ = proc.communicate()
    wall = time.perf_counter() - start
    sampler.join()
    result = json.loads(out)
    assert proc.returncode == 0, result
    backup = result["backup"]
    for path in (work / "store").rglob("*"):
        if path.is_file():
            path.unlink()
    return wall, float(backup["duration_s"]), peak[0], backup


def mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1024", help="approximate dump sizes in MiB")
    parser.add_argument("--rounds", type=int, default=1)
    opts = parser.parse_args()
    pg = start_postgres()
    try:
        with tempfile.TemporaryDirectory(prefix="obbench-") as tmp:
            for size in (int(s) for s in opts.sizes.split(",")):
                db = f"bench_{size}"
                t0 = time.perf_counter()
                fill(pg, db, size)
                raw = dump_size(pg, db)
                print(f"\n== database {db}: dump {mib(raw)} (filled in {time.perf_counter() - t0:.0f} s)", flush=True)
                for r in range(opts.rounds):
                    base = baseline(pg, db)
                    wall, ours, peak, backup = opsbot_backup(pg, db, Path(tmp))
                    print(f"round {r + 1}: pg_dump | gzip > /dev/null  {base:6.2f} s  {mib(raw / base)}/s")
                    print(f"         opsbot backup (pipeline)    {ours:6.2f} s  {mib(raw / ours)}/s  "
                          f"ratio {base / ours:.2f} (goal >= 0.9)")  # fmt: skip
                    print(f"         opsbot run (whole process)  {wall:6.2f} s  {mib(raw / wall)}/s  "
                          f"ratio {base / wall:.2f}")  # fmt: skip
                    print(f"         stored {mib(backup['size'])} (gzip {raw / backup['size']:.1f}:1); "
                          f"bot peak RSS {peak / 1e6:.0f} MB (goal < 150 MB)", flush=True)  # fmt: skip
                pg.psql(f"DROP DATABASE {db}")
    finally:
        pg.stop()


if __name__ == "__main__":
    main()
