"""The ``BackupStore`` interface: where database backups are kept (S3, a directory, memory for tests).

Objects are named ``<prefix><env>/db/<UTC timestamp>-<short id>.sql.zst`` (``.sql.gz`` when gzip); the
part after ``db/`` without that ending is the backup's id. A store lists what it holds itself, so an object put there
by hand is listed too (without the metadata opsbot keeps: its checksum is then unknown).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, Field

#: what a backup's object name ends with, by its compression
SUFFIXES = (".sql.zst", ".sql.gz")
#: a backup id as opsbot makes it: ``20240131T235959Z-a1b2c3``
ID_RE = re.compile(r"(\d{8}T\d{6}Z)-[0-9a-f]{6,12}")
#: metadata keys opsbot keeps with each object (S3 user metadata, the file store's sidecar)
META_KEYS = ("size", "sha256", "command", "duration", "requester", "kind", "created-at", "compression")


class StoredObject(BaseModel):
    """One object of a store: its key, id, time, size and (when known) the sha256 of its bytes."""

    key: str
    id: str
    created_at: datetime
    size: int
    sha256: str | None = None
    #: where it is, as a URL (``s3://bucket/key``, ``file:///path``)
    location: str
    metadata: dict[str, str] = Field(default_factory=dict)


class PutResult(BaseModel):
    """What ``put`` stored: the byte count and sha256 of exactly the bytes written."""

    key: str
    size: int
    sha256: str
    location: str


def new_backup_id(now: datetime | None = None) -> str:
    """A fresh id: the UTC time and a short random part (``20240131T235959Z-a1b2c3``)."""
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


def backup_key(prefix: str, env: str, backup_id: str, suffix: str = ".sql.zst") -> str:
    """``<prefix><env>/db/<id>.sql.zst`` (or another ``suffix``: ``.sql.gz``)."""
    return f"{prefix}{env}/db/{backup_id}{suffix}"


def db_prefix(prefix: str, env: str) -> str:
    """Where the environment's backups are: ``<prefix><env>/db/``."""
    return f"{prefix}{env}/db/"


def id_of(key: str) -> str:
    """The backup id of an object key: its last part without ``.sql.zst`` / ``.sql.gz``."""
    name = key.rsplit("/", 1)[-1]
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def time_of(backup_id: str, fallback: datetime) -> datetime:
    """The time written in an id opsbot made, else ``fallback`` (the store's own time of the object)."""
    match = ID_RE.fullmatch(backup_id)
    if match:
        return datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return fallback.astimezone(UTC)


def newest_first(objects: list[StoredObject]) -> list[StoredObject]:
    """Sorted newest first (by time, then by key for the same second)."""
    return sorted(objects, key=lambda o: (o.created_at, o.key), reverse=True)


@runtime_checkable
class BackupStore(Protocol):
    """Where backups go. Every method is bounded in time and raises ``AdapterError`` subclasses."""

    #: the store's URL (``s3://bucket/prefix/``, ``file:///path/``), for messages
    url: str
    #: the prefix every key of this store starts with (``prefix/`` of ``s3://bucket/prefix/``; "" for files)
    prefix: str

    def location(self, key: str) -> str:
        """Where ``key`` is, as a URL (``s3://bucket/key``, ``file:///path/key``)."""
        ...

    async def put(
        self, key: str, chunks: AsyncIterator[bytes], metadata: dict[str, str], final: Callable[[], dict[str, str]]
    ) -> PutResult:
        """Store the bytes ``chunks`` yields under ``key``, streamed (memory bounded whatever the size).

        The object appears only once every chunk is stored and ``chunks`` ended normally; if ``chunks``
        raises or the store fails, nothing is left under ``key`` (an S3 multipart upload is aborted, a
        temporary file removed) and the error is raised. ``metadata`` is known at the start;
        ``final()`` is called after the last chunk and its keys (the duration) are added, with ``size``
        and ``sha256`` of exactly the stored bytes, which the store counts itself.
        """
        ...

    async def list(self, prefix: str) -> list[StoredObject]:
        """Every object under ``prefix`` (a full key prefix), newest first, with its metadata."""
        ...

    async def head(self, key: str) -> StoredObject:
        """One object; ``NotFound`` when there is none."""
        ...

    def get(self, key: str) -> AsyncIterator[bytes]:
        """The object's bytes, streamed in chunks; ``NotFound`` when there is none."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the object (and its metadata); nothing when it is already gone."""
        ...

    async def close(self) -> None:
        """Release connections and threads."""
        ...
