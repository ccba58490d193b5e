"""A private Docker engine for the test session, busybox images, and Compose-labelled containers.

The engine runs from Debian's ``docker.io`` with its own socket, data root and exec root, the vfs
storage driver, no bridge and no iptables (DESIGN.md). Images are made with ``docker import`` from
a tar of Debian's static busybox; containers use the host network and Compose's labels, which is
exactly how ``docker compose up`` leaves a deployment.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker

BUSYBOX = "/bin/busybox"


class EngineMissing(RuntimeError):
    """dockerd or busybox is not installed here."""


@dataclass
class Engine:
    """A running private dockerd."""

    root: Path
    host: str
    process: subprocess.Popen[bytes]
    client: docker.DockerClient
    log: Path

    def stop(self) -> None:
        """Stop dockerd (and its containerd), unmount what it mounted and remove its directories."""
        try:  # SIGKILL the containers first: dockerd would give each 10 s to stop (sleep as PID 1 ignores TERM)
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(_remove, self.client.containers.list(all=True)))
        except Exception:
            pass
        self.client.close()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        for pid in _processes_under(self.root):  # a containerd or shim that outlived dockerd
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        # dockerd leaves exec-root/netns/default (an nsfs bind mount) mounted: unmount, deepest first
        for mount in sorted(_mounts_under(self.root), key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def _remove(container: Any) -> None:
    with contextlib.suppress(docker.errors.APIError):
        container.remove(force=True)


def _mounts_under(root: Path) -> list[str]:
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1].replace("\\040", " ") for line in mounts]
    return [p for p in points if p.startswith(f"{root}/")]


def _processes_under(root: Path) -> list[int]:
    """Processes whose command line names ``root`` (ours: the directory is this session's own)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if f"{root}/".encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
    return found


def die_with_parent() -> None:
    """In the child before exec: be sent SIGTERM when the test process dies, even by SIGKILL (Linux).

    A test session that is killed leaves no engine (and no containers) running behind it.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def start_engine(timeout: float = 60.0, *, storage_driver: str = "vfs") -> Engine:
    """Start a private dockerd and wait until it answers (``storage_driver``: vfs, or overlay2 where it works)."""
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise EngineMissing(f"dockerd is not installed (not on PATH {os.environ.get('PATH', '')}; "
                            "run: bash scripts/install-engines, as root)")  # fmt: skip
    if not os.path.exists(BUSYBOX):
        raise EngineMissing(f"busybox-static is not installed (no {BUSYBOX}; run bash scripts/install-engines as root)")
    root = Path(tempfile.mkdtemp(prefix="obd-", dir="/tmp"))
    sock = root / "d.sock"
    log = root / "dockerd.log"
    process = subprocess.Popen(
        [
            dockerd, "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
            "--pidfile", str(root / "dockerd.pid"), "-H", f"unix://{sock}",
            "--iptables=false", "--ip6tables=false", "--bridge=none", f"--storage-driver={storage_driver}",
        ],
        stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent,
    )  # fmt: skip
    host = f"unix://{sock}"
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"dockerd exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        if sock.exists():
            try:
                client = docker.DockerClient(base_url=host, timeout=30)
                client.ping()
                return Engine(root=root, host=host, process=process, client=client, log=log)
            except Exception:
                pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"dockerd did not answer within {timeout}s:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


PSQL_SHIM = "#!/bin/sh\n# stands in for psql in test images: answers a number like a count(*)\necho 3\n"


def busybox_tar() -> bytes:
    """A root filesystem with static busybox, its applets as links, and a psql stand-in."""
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in ("bin", "usr", "usr/bin", "tmp", "www", "etc", "data"):
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if d == "tmp" else 0o755
            tar.addfile(info)
        tar.add(BUSYBOX, arcname="bin/busybox")
        for applet in applets:
            if applet == "busybox":
                continue
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type = tarfile.SYMTYPE
            link.linkname = "busybox"
            tar.addfile(link)
        for name, text, mode in (
            ("usr/bin/psql", PSQL_SHIM, 0o755),
            ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", 0o644),
            ("etc/group", "root:x:0:\n", 0o644),
        ):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def build_image(client: docker.DockerClient, repo: str, tag: str, *, base: str = "opsbot-test/busybox:base") -> str:
    """``repo:tag`` as a busybox image (imported once per engine, then tagged)."""
    try:
        image = client.images.get(base)
    except docker.errors.ImageNotFound:
        name, base_tag = base.rsplit(":", 1)
        client.api.import_image_from_data(busybox_tar(), repository=name, tag=base_tag)
        image = client.images.get(base)
    image.tag(repo, tag)
    return f"{repo}:{tag}"


def run_service(
    client: docker.DockerClient,
    project: str,
    service: str,
    image: str,
    command: list[str],
    *,
    number: int = 1,
    env: dict[str, str] | None = None,
    healthcheck: dict[str, Any] | None = None,
    start: bool = True,
    **kwargs: Any,
) -> Any:
    """A container as Compose leaves it: host network, Compose's labels, named project-service-N."""
    labels = {
        "com.docker.compose.project": project,
        "com.docker.compose.service": service,
        "com.docker.compose.container-number": str(number),
        "com.docker.compose.oneoff": "False",
        **kwargs.pop("labels", {}),
    }
    create = client.containers.create if not start else client.containers.run
    extra = {"detach": True} if start else {}
    return create(
        image, command, name=f"{project}-{service}-{number}", labels=labels, environment=env or {},
        network_mode="host", healthcheck=healthcheck, **extra, **kwargs,
    )  # fmt: skip


@dataclass
class Shop:
    """The test project: api (httpd, healthy), worker (logs, a secret), postgres (psql shim), redis (stopped)."""

    engine: Engine
    project: str
    port: int
    secret: str
    containers: dict[str, Any] = field(default_factory=dict)

    @property
    def host(self) -> str:
        """The engine's DOCKER_HOST."""
        return self.engine.host

    @property
    def url(self) -> str:
        """The api's base URL."""
        return f"http://127.0.0.1:{self.port}"


#: api's start: a /www tree where /health, /health/db and /health/cache each answer {"status": "ok"}.
#: ``/health`` is a directory: busybox httpd answers ``GET /health`` with ``302 Location: /health/``
#: and serves ``/health/index.html`` there (the HTTP probe, busybox wget and the healthcheck follow
#: redirects); ``/health/db`` and ``/health/cache`` are plain files in it, served directly (200).
API_SCRIPT = (
    "mkdir -p /www/health && "
    'echo \'{"status": "ok"}\' > /www/health/index.html && '
    'echo \'{"status": "ok"}\' > /www/health/db && '
    'echo \'{"status": "ok"}\' > /www/health/cache && '
    "exec httpd -f -p 127.0.0.1:$PORT -h /www"
)

WORKER_SCRIPT = (
    'i=0; echo "worker starting, connecting with password $DB_PASSWORD"; '
    "echo 'ERROR timeout talking to db' >&2; "
    'while true; do i=$((i+1)); echo "tick $i"; '
    'if [ $((i % 5)) -eq 0 ]; then echo "WARN slow query $i" >&2; fi; sleep 1; done'
)


def start_shop(engine: Engine, project: str, port: int, secret: str, *, timeout: float = 60.0) -> Shop:
    """Start the test project and wait until api is healthy."""
    c = engine.client
    for repo, tag in (("shop/api", "1.0"), ("shop/worker", "1.0"), ("shop/postgres", "15"), ("shop/redis", "7")):
        build_image(c, repo, tag)
    shop = Shop(engine=engine, project=project, port=port, secret=secret)
    shop.containers["api"] = run_service(
        c, project, "api", "shop/api:1.0", ["sh", "-c", API_SCRIPT], env={"PORT": str(port), "PLAIN": "visible"},
        healthcheck={"test": ["CMD", "wget", "-q", "-O-", f"http://127.0.0.1:{port}/health"],
                     "interval": 500_000_000, "timeout": 2_000_000_000, "retries": 3, "start_period": 0},
    )  # fmt: skip
    shop.containers["worker"] = run_service(
        c, project, "worker", "shop/worker:1.0", ["sh", "-c", WORKER_SCRIPT],
        env={"DB_PASSWORD": secret, "PLAIN": "visible", "FEATURE_CHECKOUT": "on"},
    )  # fmt: skip
    shop.containers["postgres"] = run_service(c, project, "postgres", "shop/postgres:15", ["sleep", "100000"])
    redis = run_service(c, project, "redis", "shop/redis:7", ["sh", "-c", "exit 1"])
    redis.wait(timeout=30)
    shop.containers["redis"] = redis
    deadline = time.monotonic() + timeout
    while True:
        api = c.containers.get(shop.containers["api"].id)
        status = (api.attrs["State"].get("Health") or {}).get("Status")
        if status == "healthy":
            return shop
        if time.monotonic() > deadline:
            raise RuntimeError(f"api did not become healthy (health {status}): {api.logs()[-2000:]!r}")
        time.sleep(0.2)
