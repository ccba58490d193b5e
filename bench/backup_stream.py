"""Benchmark: opsbot's backup and restore against pg_dump, gzip and psql, and the bot's peak memory.

Starts a throwaway PostgreSQL cluster (as the tests do) and fills a database whose plain dump is
about ``--mib`` MiB (default 1024), then, in one run:

- baselines: ``pg_dump > /dev/null``, ``pg_dump | gzip -6 > /dev/null``, ``pg_dump | zstd -3 -T2 >
  /dev/null`` (processes joined by pipes, no shell), ``gunzip -c dump.gz | psql`` into an empty
  database, and ``psql < dump.sql`` (the plain dump from a file: what psql alone takes);
- ``opsbot run backup`` into a file store and into S3 (moto's server on loopback, a process of its own
  whose CPU is printed beside each S3 figure: on one machine it competes with the backup for the
  cores), and ``opsbot run restore --break-glass`` of that backup from each store into an empty
  database, each as a separate process whose peak RSS (VmHWM) is sampled.

It prints each figure, the ratios and whether each goal of issue 16 is met: backup throughput >= 3x
``pg_dump | gzip -6`` and >= 0.85x ``pg_dump > /dev/null``; output no larger than gzip -6's; restore
(the restore step: stream, decompress, psql) >= 2x ``gunzip | psql``; peak RSS < 100 MB.

    python bench/backup_stream.py [--mib 1024] [--stores file,s3]     (as root: it runs PostgreSQL)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers.postgres import MotoS3, Postgres, start_postgres  # noqa: E402
from tests.helpers.proc_cpu import cpu_seconds  # noqa: E402

#: this checkout's opsbot (``python -m bot``)
OPSBOT = [sys.executable, "-m", "bot"]
#: one row of the table is about this many bytes in the dump (COPY format)
ROW_BYTES = 121
RESTORE_DB = "bench_restore"
GOALS = {"gzip": 3.0, "dump": 0.85, "restore": 2.0, "rss": 100e6}


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


def children_cpu() -> float:
    """CPU seconds of the processes this one has waited for (and of theirs), so far."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


#: CPU seconds of the last measured command (its processes; not the PostgreSQL server's)
LAST_CPU = [0.0]


def piped(*argvs: list[str], stdin: Path | None = None) -> float:
    """Seconds for ``argv1 | argv2 | ... > /dev/null`` (no shell)."""
    start, cpu = time.perf_counter(), children_cpu()
    procs: list[subprocess.Popen[bytes]] = []
    with open(os.devnull, "wb") as null, open(stdin or os.devnull, "rb") as first:
        for i, argv in enumerate(argvs):
            src = procs[-1].stdout if procs else first
            out = null if i == len(argvs) - 1 else subprocess.PIPE
            procs.append(subprocess.Popen(argv, stdin=src, stdout=out))
            if src is not first and src is not None:
                src.close()
        assert all(p.wait() == 0 for p in procs), [p.returncode for p in procs]
    LAST_CPU[0] = children_cpu() - cpu
    return time.perf_counter() - start


def sizes(pg: Postgres, db: str, gz_path: Path) -> tuple[int, int]:
    """(bytes of the plain dump, bytes of its gzip -6), keeping both files beside ``gz_path`` for the restores."""
    dump = subprocess.Popen(pg.tool("pg_dump", "--no-owner", "-d", db), stdout=subprocess.PIPE)
    with open(gz_path, "wb") as out, open(gz_path.with_suffix(""), "wb") as plain:
        gz = subprocess.Popen(["gzip", "-6", "-c"], stdin=subprocess.PIPE, stdout=out)
        assert dump.stdout is not None and gz.stdin is not None
        size = 0
        while chunk := dump.stdout.read(1 << 20):
            size += len(chunk)
            gz.stdin.write(chunk)
            plain.write(chunk)
        gz.stdin.close()
        assert dump.wait() == 0 and gz.wait() == 0
    return size, gz_path.stat().st_size


class MotoServer(MotoS3):
    """moto's S3 server on loopback in a process of its own (``python -m moto.server``), so that its CPU
    is measured apart from the bench's and the bot's."""

    def start(self) -> None:
        argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto's server did not start") from None
                time.sleep(0.1)

    def cpu(self) -> float:
        """CPU seconds the server has used so far."""
        return cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def fresh(pg: Postgres) -> None:
    """An empty database to restore into."""
    pg.psql(f"DROP DATABASE IF EXISTS {RESTORE_DB}")
    pg.psql(f"CREATE DATABASE {RESTORE_DB}")


def opsbot(args: list[str], env: dict[str, str]) -> tuple[float, int, dict]:
    """``opsbot run --json ARGS`` as a process: (wall seconds, peak RSS bytes, its JSON)."""
    start, cpu = time.perf_counter(), children_cpu()
    proc = subprocess.Popen([*OPSBOT, "run", "--json", *args], stdout=subprocess.PIPE, env=env)
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
    LAST_CPU[0] = children_cpu() - cpu
    sampler.join()
    result = json.loads(out)
    assert proc.returncode == 0, result
    return wall, peak[0], result


def write_config(path: Path, pg: Postgres, db: str, stores: dict[str, str]) -> None:
    """One environment per store: ``<store>`` backs up ``db``; ``<store>-restore`` restores into RESTORE_DB."""
    envs = {}
    for name, url in stores.items():
        for env, dump_db in ((name, db), (f"{name}-restore", RESTORE_DB)):
            envs[env] = {"runtime": {"kind": "compose", "project": "bench"}, "services": {"db": {}},
                         "backup": {"store": url, "database": {
                             "dump": pg.tool("pg_dump", "--no-owner", "-d", dump_db),
                             "restore": pg.tool("psql", "-q", "-v", "ON_ERROR_STOP=1", "-d", RESTORE_DB)}}}  # fmt: skip
    path.write_text(yaml.safe_dump({"project": "bench", "environments": envs}))


def copy_backup(store: str, url: str, backup: dict, env_to: str, moto: MotoServer | None) -> None:
    """Put the backup just made where ``env_to`` looks for backups (its object and metadata)."""
    name = backup["location"].rsplit("/", 1)[1]
    if store == "file":
        src = Path(backup["location"].removeprefix("file://"))
        dst = Path(url.removeprefix("file://")) / env_to / "db" / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.link(src, dst)
        os.link(src.with_name(name + ".meta.json"), dst.with_name(name + ".meta.json"))
    else:
        assert moto is not None
        bucket, _, key = backup["location"].removeprefix("s3://").partition("/")
        moto.client().copy_object(Bucket=bucket, Key=f"{env_to}/db/{name}", CopySource={"Bucket": bucket, "Key": key})


def verdict(value: float, goal: float, *, below: bool = False) -> str:
    met = value < goal if below else value >= goal
    return "met" if met else "NOT MET"


def mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def measure(pg: Postgres, db: str, work: Path, stores: dict[str, str], env: dict[str, str], moto: MotoServer | None,
            best: dict[str, float], peaks: dict[str, int], sizes_of: dict[str, int],
            cpus: dict[str, float], served: dict[str, float]) -> None:  # fmt: skip
    """One round: every baseline and every opsbot figure, each kept at its best (lowest) over the rounds;
    ``served``: moto's CPU during the best of each S3 figure."""
    server = [0.0]

    def keep(name: str, seconds: float, *, with_cpu: bool = True) -> float:
        if seconds < best.get(name, float("inf")):
            if with_cpu:
                cpus[name] = LAST_CPU[0]
            if moto is not None and name.startswith("s3:"):
                served[name] = server[0]
        best[name] = min(best.get(name, seconds), seconds)
        return seconds

    def run(args: list[str]) -> tuple[float, int, dict]:
        before = moto.cpu() if moto is not None else 0.0
        answer = opsbot(args, env)
        server[0] = moto.cpu() - before if moto is not None else 0.0
        return answer

    dump = pg.tool("pg_dump", "--no-owner", "-d", db)
    keep("pg_dump > /dev/null", piped(dump))
    keep("pg_dump | gzip -6 > /dev/null", piped(dump, ["gzip", "-6", "-c"]))
    keep("pg_dump | zstd -3 -T2 > /dev/null", piped(dump, ["zstd", "-q", "-3", "-T2", "-c"]))
    fresh(pg)
    psql = pg.tool("psql", "-q", "-v", "ON_ERROR_STOP=1", "-d", RESTORE_DB)
    keep("gunzip -c dump.gz | psql", piped(["gunzip", "-c"], psql, stdin=work / "dump.sql.gz"))
    fresh(pg)
    keep("psql < dump.sql (psql alone: the restore's own limit)", piped(psql, stdin=work / "dump.sql"))
    for store in stores:
        wall, peak, out = run(["backup", store])
        backup = out["backup"]
        keep(f"{store}: opsbot backup", float(backup["duration_s"]), with_cpu=False)
        keep(f"{store}: opsbot run backup (whole process)", wall)
        peaks[f"{store}: backup"] = max(peaks.get(f"{store}: backup", 0), peak)
        sizes_of[store] = backup["size"]
        copy_backup(store, stores[store], backup, f"{store}-restore", moto)
        fresh(pg)
        wall, peak, out = run(["restore", f"{store}-restore", backup["id"], "--break-glass", "bench"])
        assert out["ok"], out
        step = {s["name"]: s for s in out["steps"]}["restore"]
        keep(f"{store}: opsbot restore (its restore step)", step["duration_s"], with_cpu=False)
        keep(f"{store}: opsbot run restore (whole: check, safety backup, restore)", wall)
        peaks[f"{store}: restore"] = max(peaks.get(f"{store}: restore", 0), peak)


def report(raw: int, gz_size: int, stores: dict[str, str], best: dict[str, float], peaks: dict[str, int],
           sizes_of: dict[str, int], cpus: dict[str, float], served: dict[str, float]) -> None:  # fmt: skip
    """Every figure (best of the rounds), the ratios and the goals."""
    print("  (cpu: of the command's own processes, opsbot's with its pg_dump or psql; never PostgreSQL's;")
    print("   s3 figures: moto's server's CPU during that run beside, whole process)")
    for name, seconds in best.items():
        cpu = f"cpu {cpus[name]:6.1f} s" if name in cpus else ""
        server = f"moto {served[name]:5.1f} s" if name in served else ""
        print(f"  {name:<62} {seconds:7.2f} s  {mib(raw / seconds):>11}/s  {'  '.join(filter(None, (cpu, server)))}")
    for store in stores:
        ours = best[f"{store}: opsbot backup"]
        back = best[f"{store}: opsbot restore (its restore step)"]
        vs_gzip, vs_dump = best["pg_dump | gzip -6 > /dev/null"] / ours, best["pg_dump > /dev/null"] / ours
        vs_gunzip = best["gunzip -c dump.gz | psql"] / back
        print(f"\n{store} store:")
        print(f"  backup vs pg_dump | gzip -6:   {vs_gzip:5.2f}x  (goal >= 3)     {verdict(vs_gzip, GOALS['gzip'])}")
        print(f"  backup vs pg_dump > /dev/null: {vs_dump:5.2f}x  (goal >= 0.85)  {verdict(vs_dump, GOALS['dump'])}")
        size = sizes_of[store]
        print(f"  backup size: {mib(size)}, {size / gz_size:5.3f} of gzip -6's {mib(gz_size)}  (goal <= 1)  "
              f"{verdict(-size, -gz_size)}")  # fmt: skip
        met = verdict(vs_gunzip, GOALS["restore"])
        print(f"  restore vs gunzip | psql:      {vs_gunzip:5.2f}x  (goal >= 2)     {met}")
        for what in ("backup", "restore"):
            peak = peaks[f"{store}: {what}"]
            print(f"  bot peak RSS, {what}: {peak / 1e6:5.0f} MB  (goal < 100 MB)  "
                  f"{verdict(peak, GOALS['rss'], below=True)}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024, help="approximate size of the plain dump in MiB")
    parser.add_argument("--stores", default="file,s3")
    parser.add_argument("--rounds", type=int, default=2, help="each figure is the best of this many runs")
    opts = parser.parse_args()
    pg = start_postgres()
    moto: MotoServer | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="obbench-") as tmp:
            work, db = Path(tmp), "bench_db"
            stores = {}
            env = {**os.environ, "OPSBOT_CONFIG": str(work / "ops.yml"), "OPSBOT_DB": str(work / "o.db"),
                   "PYTHONPATH": str(ROOT), "LOG_LEVEL": "warning"}  # fmt: skip
            for store in opts.stores.split(","):
                if store == "file":
                    stores["file"] = f"file://{work}/store/"
                elif store == "s3":
                    moto = MotoServer()
                    moto.start()
                    moto.client().create_bucket(Bucket="bench")
                    stores["s3"] = "s3://bench/"
                    env |= {"AWS_ENDPOINT_URL": moto.url, "AWS_ACCESS_KEY_ID": "testing",
                            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
            t0 = time.perf_counter()
            fill(pg, db, opts.mib)
            raw, gz_size = sizes(pg, db, work / "dump.sql.gz")
            print(f"== dump of {db}: {mib(raw)} (filled in {time.perf_counter() - t0:.0f} s); gzip -6 makes "
                  f"{mib(gz_size)}; {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
            write_config(work / "ops.yml", pg, db, stores)
            best: dict[str, float] = {}
            peaks: dict[str, int] = {}
            sizes_of: dict[str, int] = {}
            cpus: dict[str, float] = {}
            served: dict[str, float] = {}
            for r in range(opts.rounds):
                measure(pg, db, work, stores, env, moto, best, peaks, sizes_of, cpus, served)
                print(f"round {r + 1} done (load {os.getloadavg()[0]:.1f})", flush=True)
            print(f"\nbest of {opts.rounds} rounds, {mib(raw)} dump:")
            report(raw, gz_size, stores, best, peaks, sizes_of, cpus, served)
    finally:
        if moto is not None:
            moto.stop()
        pg.stop()


if __name__ == "__main__":
    main()
