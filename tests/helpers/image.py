"""opsbot's own image, built as a user builds it, on the tests' engine: a local Debian base, a wheelhouse.

The tests' engine has no registry and no bridge: the base is Debian bookworm made here with
``debootstrap`` (python3 and python3-venv) and ``docker import``ed; pip inside the build cannot reach
the package index, so the build installs from a wheelhouse made on this host (``pip wheel``), as an
air-gapped user would. Both are cached across runs under ``/var/cache/opsbot-test`` (or
``$OPSBOT_TEST_CACHE``), named by a hash of what goes into them, built under a lock so that two test
workers never build the same thing twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("OPSBOT_TEST_CACHE", "/var/cache/opsbot-test"))
SUITE = "bookworm"
PACKAGES = ("python3", "python3-venv")
MIRROR = os.environ.get("OPSBOT_TEST_DEBIAN_MIRROR", "http://deb.debian.org/debian")
#: what the build context holds besides the wheelhouse (the Dockerfile's COPY, as .dockerignore allows)
CONTEXT = ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md", "bot", "commands", "adapters")


class ImageToolsMissing(RuntimeError):
    """debootstrap is not installed, or the Debian mirror cannot be reached."""


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _version(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.strip()


def debian_base() -> tuple[Path, float]:
    """A tar of a Debian root filesystem with python3 and its venv module; (path, seconds spent making it)."""
    debootstrap = shutil.which("debootstrap") or ("/usr/sbin/debootstrap" if os.path.exists("/usr/sbin/debootstrap")
                                                 else None)  # fmt: skip
    if debootstrap is None:
        raise ImageToolsMissing("debootstrap is not installed (run: bash scripts/install-engines)")
    arch = _version(["dpkg", "--print-architecture"]) or platform.machine()
    key = _key(SUITE, PACKAGES, MIRROR, arch, _version([debootstrap, "--version"]), "minbase", 1)
    tar = CACHE / f"debian-{SUITE}-{key}.tar"
    start = time.monotonic()
    with _locked("debian"):
        if tar.exists():
            return tar, 0.0
        work = Path(tempfile.mkdtemp(prefix="opsbot-debootstrap-"))
        try:
            rootfs = work / "root"
            made = subprocess.run(
                [debootstrap, "--variant=minbase", f"--include={','.join(PACKAGES)}", f"--arch={arch}", SUITE,
                 str(rootfs), MIRROR], capture_output=True, text=True, check=False,
            )  # fmt: skip
            if made.returncode != 0:
                tail = (made.stdout + made.stderr)[-2000:]
                raise ImageToolsMissing(f"debootstrap of {SUITE} from {MIRROR} failed ({made.returncode}):\n{tail}")
            for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man"):
                shutil.rmtree(rootfs / junk, ignore_errors=True)
            part = tar.with_suffix(".part")
            subprocess.run(["tar", "--numeric-owner", "--exclude=./dev/*", "--exclude=./proc/*", "--exclude=./sys/*",
                            "-C", str(rootfs), "-cf", str(part), "."], check=True)  # fmt: skip
            part.rename(tar)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return tar, time.monotonic() - start


def requirements() -> list[str]:
    """What the wheelhouse must hold: the project's dependencies and its build backend."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return [*project["project"]["dependencies"], *project["build-system"]["requires"]]


def wheelhouse() -> tuple[Path, float]:
    """Wheels of every dependency (and the build backend) for this Python, as ``pip wheel`` makes them."""
    wanted = requirements()
    key = _key(wanted, sys.version_info[:2], platform.machine(), "wheels", 1)
    path = CACHE / f"wheels-{key}"
    start = time.monotonic()
    with _locked("wheels"):
        if path.exists():
            return path, 0.0
        part = Path(tempfile.mkdtemp(prefix=f"{path.name}.part-", dir=CACHE))
        part.chmod(0o755)
        try:
            subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(part), *wanted],
                           check=True, capture_output=True, text=True)  # fmt: skip
            part.rename(path)
        except subprocess.CalledProcessError as exc:
            shutil.rmtree(part, ignore_errors=True)
            raise ImageToolsMissing(f"pip wheel failed: {exc.stderr[-2000:]}") from exc
    return path, time.monotonic() - start


def build_context(dest: Path, wheels: Path | None) -> Path:
    """The files ``docker build .`` sends from a checkout (plus ``wheels/``), copied to ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in CONTEXT:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=ignore)
        else:
            shutil.copy2(source, dest / name)
    if wheels is not None:
        shutil.copytree(wheels, dest / "wheels")
    return dest
