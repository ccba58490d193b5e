"""``FileStore``: backups in a directory (``file:///path/``), for small setups and the example.

An object is written under a temporary name (``.<name>.part-<random>``) in its final directory,
fsynced, then renamed into place and the directory fsynced: it appears whole or not at all. Its
metadata is a sidecar ``<name>.meta.json`` written (the same way) just before the rename. A file put
there by hand, without a sidecar, is listed too. File I/O runs in worker threads. Backups and their
sidecars are created 0600 in folders of 0700 (they hold the whole database).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from adapters.errors import AdapterError, NotFound
from adapters.store import PutResult, StoredObject, id_of, newest_first, time_of

META = ".meta.json"
READ_SIZE = 1 * 2**20
#: backups and their metadata are readable by the bot's own user only, in folders only it can enter
FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dirs(root: Path, path: Path) -> None:
    """Make the folders from ``root`` down to ``path`` (each 0700), tightening ours that are more open."""
    for folder in [*reversed(path.relative_to(root).parents), path.relative_to(root)]:
        full = root / folder
        full.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        info = full.stat()
        if info.st_uid == os.geteuid() and info.st_mode & 0o777 != DIR_MODE:
            full.chmod(DIR_MODE)


def private_open(path: Path) -> BinaryIO:
    """A new file at ``path`` (it must not exist), mode 0600, open for binary writing."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE), "wb")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileStore:
    """A directory, from ``file:///path/``; keys are paths below it."""

    prefix = ""

    def __init__(self, url: str) -> None:
        if not url.startswith("file:///"):
            raise AdapterError(f"not a file store: {url!r}")
        self.url = url if url.endswith("/") else url + "/"
        self.root = Path(self.url[len("file://") :])

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents or key.endswith(META) or "/." in f"/{key}":
            raise AdapterError(f"invalid object name {key!r}")
        return path

    def location(self, key: str) -> str:
        """``file:///path/key``."""
        return f"file://{self.root / key}"

    async def put(
        self, key: str, chunks: AsyncIterator[bytes], metadata: dict[str, str], final: Callable[[], dict[str, str]]
    ) -> PutResult:
        """Write to a temporary name, fsync, write the sidecar, rename; remove the temporary file on failure."""
        path = self._path(key)
        temp = path.with_name(f".{path.name}.part-{secrets.token_hex(4)}")
        sha, size = hashlib.sha256(), 0
        try:
            await asyncio.to_thread(private_dirs, self.root.resolve(), path.parent)
            handle = await asyncio.to_thread(private_open, temp)
        except OSError as exc:
            raise AdapterError(f"cannot write in {self.url}: {exc.strerror or exc}") from exc

        def write(data: bytes) -> None:
            sha.update(data)
            handle.write(data)

        try:
            try:
                async for chunk in chunks:
                    size += len(chunk)
                    await asyncio.to_thread(write, chunk)
                await asyncio.to_thread(self._sync, handle)
            finally:
                await asyncio.to_thread(handle.close)
            digest = sha.hexdigest()
            meta = {**metadata, **final(), "size": str(size), "sha256": digest}
            await asyncio.to_thread(self._commit, temp, path, meta)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                temp.unlink()
            if isinstance(exc, OSError):
                raise AdapterError(f"cannot write {self.location(key)}: {exc.strerror or exc}") from exc
            raise
        return PutResult(key=key, size=size, sha256=digest, location=self.location(key))

    @staticmethod
    def _sync(handle: BinaryIO) -> None:
        handle.flush()
        os.fsync(handle.fileno())

    def _commit(self, temp: Path, path: Path, meta: dict[str, str]) -> None:
        sidecar = path.with_name(path.name + META)
        side_temp = path.with_name(f".{sidecar.name}.part-{secrets.token_hex(4)}")
        with private_open(side_temp) as out:
            out.write(json.dumps(meta, sort_keys=True).encode())
            out.flush()
            os.fsync(out.fileno())
        os.replace(side_temp, sidecar)
        os.replace(temp, path)
        _fsync_dir(path.parent)

    def _read(self, path: Path) -> StoredObject:
        stat = path.stat()
        meta: dict[str, str] = {}
        with contextlib.suppress(OSError, ValueError):
            loaded = json.loads(path.with_name(path.name + META).read_text())
            meta = {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}
        key = str(path.relative_to(self.root))
        backup_id = id_of(key)
        modified = datetime.fromtimestamp(stat.st_mtime, UTC)
        return StoredObject(
            key=key, id=backup_id, created_at=time_of(backup_id, modified), size=stat.st_size,
            sha256=meta.get("sha256"), location=self.location(key), metadata=meta,
        )  # fmt: skip

    async def list(self, prefix: str) -> list[StoredObject]:
        """Files under ``prefix`` (temporary and sidecar files left out), newest first."""
        base = self.root / prefix

        def scan() -> list[StoredObject]:
            if not base.is_dir():
                return []
            found = []
            for path in base.rglob("*"):
                if path.name.startswith(".") or path.name.endswith(META) or not path.is_file():
                    continue
                with contextlib.suppress(FileNotFoundError):
                    found.append(self._read(path))
            return found

        try:
            return newest_first(await asyncio.to_thread(scan))
        except OSError as exc:
            raise AdapterError(f"cannot list {self.url}: {exc.strerror or exc}") from exc

    async def head(self, key: str) -> StoredObject:
        """One object; ``NotFound`` when absent."""
        path = self._path(key)
        try:
            return await asyncio.to_thread(self._read, path)
        except FileNotFoundError as exc:
            raise NotFound(f"no backup {self.location(key)}") from exc
        except OSError as exc:
            raise AdapterError(f"cannot read {self.location(key)}: {exc.strerror or exc}") from exc

    async def get(self, key: str) -> AsyncIterator[bytes]:
        """The file's bytes in chunks of 1 MiB."""
        path = self._path(key)
        try:
            handle = await asyncio.to_thread(open, path, "rb")
        except FileNotFoundError as exc:
            raise NotFound(f"no backup {self.location(key)}") from exc
        except OSError as exc:
            raise AdapterError(f"cannot read {self.location(key)}: {exc.strerror or exc}") from exc
        try:
            while chunk := await asyncio.to_thread(handle.read, READ_SIZE):
                yield chunk
        finally:
            handle.close()

    async def delete(self, key: str) -> None:
        """Remove the file and its sidecar."""
        path = self._path(key)

        def remove() -> None:
            for p in (path.with_name(path.name + META), path):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()

        try:
            await asyncio.to_thread(remove)
        except OSError as exc:
            raise AdapterError(f"cannot delete {self.location(key)}: {exc.strerror or exc}") from exc

    async def close(self) -> None:
        """Nothing to release."""
