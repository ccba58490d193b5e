"""A throwaway PostgreSQL cluster (Debian's postgresql) and moto's S3 server, for the backup tests.

The cluster is made with ``initdb`` and run with ``pg_ctl`` as user ``postgres`` in a directory of
its own, on its own port (loopback) and unix socket directory; ``stop`` ends it and removes it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.http_servers import free_port


class PostgresMissing(RuntimeError):
    """Debian's postgresql is not installed, or we cannot run it as user postgres."""


class PostgresFailed(PostgresMissing):
    """PostgreSQL is there, but initdb or pg_ctl failed: the message has the step and its stderr."""


def pg_bin() -> Path:
    """The newest installed PostgreSQL's bin directory."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise PostgresMissing(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb; "
            "run: bash scripts/install-engines as root)"
        )
    return Path(found[-1]).parent


@dataclass
class Postgres:
    """A running cluster: superuser ``postgres``, trust authentication, on ``port`` and ``socket_dir``."""

    root: Path
    port: int
    bin: Path

    @property
    def socket_dir(self) -> str:
        """The unix socket directory (also its host for ``-h``)."""
        return str(self.root)

    def tool(self, name: str, *args: str) -> list[str]:
        """argv of a client tool (psql, pg_dump, ...) connected to this cluster as postgres."""
        return [str(self.bin / name), "-h", self.socket_dir, "-p", str(self.port), "-U", "postgres", *args]

    def psql(self, sql: str, db: str = "postgres") -> str:
        """Run ``sql``; its output (unaligned, tuples only)."""
        out = subprocess.run(self.tool("psql", "-v", "ON_ERROR_STOP=1", "-tA", "-d", db, "-c", sql),
                             capture_output=True, text=True, check=True, timeout=120)  # fmt: skip
        return out.stdout.strip()

    def stop(self) -> None:
        """Stop the server and remove its directory."""
        subprocess.run(["runuser", "-u", "postgres", "--", str(self.bin / "pg_ctl"), "-D", str(self.root / "data"),
                        "-m", "immediate", "stop"], capture_output=True, check=False, timeout=60)  # fmt: skip
        shutil.rmtree(self.root, ignore_errors=True)


def start_postgres() -> Postgres:
    """initdb + pg_ctl start as user postgres; ``PostgresMissing`` when that cannot be done here."""
    binary = pg_bin()
    try:
        pw = pwd.getpwnam("postgres")
    except KeyError as exc:
        raise PostgresMissing("there is no user postgres (Debian's postgresql package makes it)") from exc
    if os.geteuid() != 0:
        raise PostgresMissing(f"running a cluster as user postgres needs root; these tests run as uid {os.geteuid()}")
    root = Path(tempfile.mkdtemp(prefix="obpg-"))
    os.chown(root, pw.pw_uid, pw.pw_gid)
    port = free_port()
    as_pg = ["runuser", "-u", "postgres", "--"]
    step = "initdb"
    try:
        subprocess.run([*as_pg, str(binary / "initdb"), "-D", str(root / "data"), "-A", "trust", "-U", "postgres",
                        "--no-sync", "-E", "UTF8"], capture_output=True, check=True, timeout=120)  # fmt: skip
        step = "pg_ctl start"
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        subprocess.run([*as_pg, str(binary / "pg_ctl"), "-D", str(root / "data"), "-o", options,
                        "-l", str(root / "log"), "-w", "-t", "60", "start"], capture_output=True, check=True,
                       timeout=90)  # fmt: skip
    except subprocess.CalledProcessError as exc:
        log = ""
        with contextlib.suppress(OSError):
            log = (root / "log").read_text()[-2000:]
        shutil.rmtree(root, ignore_errors=True)
        stderr = (exc.stderr or b"").decode(errors="replace").strip()[-2000:]
        raise PostgresFailed(
            f"PostgreSQL is installed but {step} failed (exit {exc.returncode}): {stderr or '(no stderr)'}"
            + (f"; server log: {log.strip()}" if log.strip() else "")
        ) from exc
    return Postgres(root=root, port=port, bin=binary)


class MotoS3:
    """moto's S3 server on loopback, in this process (its state survives a stop and a start)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: object | None = None

    def start(self) -> None:
        """Serve on ``port``."""
        from moto.server import ThreadedMotoServer

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        server.start()
        self._server = server

    def stop(self) -> None:
        """Stop serving and close the listening socket (new connections are refused)."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()  # type: ignore[attr-defined]
            inner = server._server  # type: ignore[attr-defined]
            if inner is not None:
                inner.server_close()

    def client(self):
        """A boto3 S3 client on this server."""
        import boto3

        return boto3.client("s3", endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
