"""The ``Buckets`` interface: objects of S3 buckets listed, copied server side and deleted (guide 7.1, files).

``backup <env> --files`` copies every object of ``backup.files.from`` that is missing or changed under
``backup.files.to``. A bucket URL is ``s3://bucket/prefix/``; object keys in listings and calls are
relative to that prefix, so that the same key names the object on both sides.

An object is unchanged when its size and ETag are the same on both sides. A plain ``CopyObject`` keeps
the ETag of an object that was not uploaded in parts (it is the MD5 of its bytes). Any other copy gets an
ETag of its own: an object uploaded in parts at the source (its ETag is ``"<md5 of md5s>-<parts>"``),
or one above the multipart threshold, copied in parts (``UploadPartCopy``). Such a copy keeps the
source's ETag in its metadata (``SOURCE_ETAG``), read back (one ``HeadObject``) when the ETags differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

#: S3's largest single ``CopyObject``; above it, a copy goes in parts (``UploadPartCopy``)
MULTIPART_THRESHOLD = 5 * 2**30
#: the user metadata key in which a copy in parts keeps the ETag of the source it was copied from
SOURCE_ETAG = "opsbot-source-etag"


@dataclass(frozen=True, slots=True)
class BucketObject:
    """One object of a listing: its key (relative to the listed prefix), size and ETag (quotes included)."""

    key: str
    size: int
    etag: str


def split_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix/`` -> ``("bucket", "prefix/")`` (the prefix is "" for a whole bucket)."""
    if not url.startswith("s3://"):
        raise ValueError(f"not an S3 URL: {url!r}")
    bucket, _, prefix = url[len("s3://") :].partition("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return bucket, prefix


def in_parts(etag: str) -> bool:
    """True for the ETag of an object uploaded or copied in parts (``"<md5 of md5s>-<parts>"``)."""
    return "-" in etag


@runtime_checkable
class Buckets(Protocol):
    """S3 buckets, server side. Every call is bounded in time and raises ``AdapterError`` subclasses:
    ``NotFound`` for a bucket that does not exist, ``EngineUnavailable`` / ``AdapterTimeout`` when the
    endpoint does not answer."""

    #: how many calls run at once (the worker threads of the real one)
    concurrency: int
    #: objects above this many bytes are copied in parts
    multipart_threshold: int

    async def listing(self, url: str) -> dict[str, BucketObject]:
        """Every object under ``url`` (paged: any number of objects), by key relative to its prefix."""
        ...

    async def copy(self, source: str, target: str, obj: BucketObject) -> str:
        """Copy ``obj`` of ``source`` to the same key under ``target``, server side; the new object's ETag.

        Only the version listed is copied (``CopySourceIfMatch``): an object changed since is refused
        (``AdapterError`` saying so) and left for the next run. A copy in parts that fails is aborted.
        """
        ...

    async def copied_from(self, target: str, key: str) -> str | None:
        """The source ETag a copy in parts recorded on the object ``key`` of ``target`` (None: none)."""
        ...

    async def delete(self, url: str, keys: list[str]) -> dict[str, str]:
        """Delete ``keys`` under ``url`` (in batches); the keys that could not be deleted, with why."""
        ...

    async def close(self) -> None:
        """Release connections and threads."""
        ...
