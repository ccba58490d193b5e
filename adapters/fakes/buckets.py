"""``InMemoryBuckets``: S3 buckets in dicts, for fast tests; held to the real ``S3Buckets`` by a contract test.

ETags are computed as S3 computes them: the MD5 of the bytes for an object put whole or copied by one
``CopyObject``; ``"<md5 of the parts' md5s>-<parts>"`` for one uploaded or copied in parts. A copy of an
object uploaded in parts, or above ``multipart_threshold``, records the source's ETag in its metadata.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field

from adapters.buckets import MULTIPART_THRESHOLD, SOURCE_ETAG, BucketObject, in_parts, split_url
from adapters.errors import AdapterError, NotFound, SourceChanged


def md5_etag(data: bytes) -> str:
    """The ETag of ``data`` put whole."""
    return f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'


def parts_etag(data: bytes, part_size: int) -> str:
    """The ETag of ``data`` uploaded in parts of ``part_size`` bytes."""
    digests = b"".join(
        hashlib.md5(data[i : i + part_size], usedforsecurity=False).digest() for i in range(0, len(data), part_size)
    )
    count = max(1, -(-len(data) // part_size))
    return f'"{hashlib.md5(digests, usedforsecurity=False).hexdigest()}-{count}"'


@dataclass
class FakeObject:
    """An object: its bytes, ETag and user metadata."""

    data: bytes
    etag: str
    meta: dict[str, str] = field(default_factory=dict)


class InMemoryBuckets:
    """Buckets in a dict: ``buckets[name][key] -> FakeObject`` (full keys, prefix included)."""

    def __init__(self, *, concurrency: int = 8, multipart_threshold: int = MULTIPART_THRESHOLD,
                 part_size: int = 5 * 2**20) -> None:  # fmt: skip
        self.concurrency = concurrency
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.buckets: dict[str, dict[str, FakeObject]] = {}
        #: set to make every call raise it (an endpoint that went away)
        self.fail: AdapterError | None = None
        #: keys (relative) whose copy fails with this error
        self.fail_copy: dict[str, AdapterError] = {}
        #: after this many more copies, every call fails with ``fail_after_error``
        self.fail_after: int | None = None
        self.fail_after_error: AdapterError | None = None
        self.calls: list[str] = []

    def put(self, url: str, key: str, data: bytes, *, parts: int | None = None) -> None:
        """Put an object by hand under ``url`` (``parts``: as if uploaded in parts of that size)."""
        bucket, prefix = split_url(url)
        etag = parts_etag(data, parts) if parts else md5_etag(data)
        self.buckets.setdefault(bucket, {})[prefix + key] = FakeObject(data, etag)

    def _enter(self, what: str) -> None:
        self.calls.append(what)
        if self.fail is not None:
            raise self.fail

    def _bucket(self, url: str) -> tuple[dict[str, FakeObject], str]:
        bucket, prefix = split_url(url)
        if bucket not in self.buckets:
            raise NotFound(f"S3 bucket {bucket} does not exist: check {url}")
        return self.buckets[bucket], prefix

    async def listing(self, url: str) -> dict[str, BucketObject]:
        """Every object under ``url``."""
        self._enter(f"list {url}")
        objects, prefix = self._bucket(url)
        await asyncio.sleep(0)
        return {k[len(prefix) :]: BucketObject(k[len(prefix) :], len(o.data), o.etag)
                for k, o in sorted(objects.items()) if k.startswith(prefix)}  # fmt: skip

    async def copy(self, source: str, target: str, obj: BucketObject) -> str:
        """Copy as S3 would, ETags included."""
        self._enter(f"copy {obj.key}")
        if self.fail_after is not None:
            if self.fail_after <= 0:
                self.fail = self.fail_after_error or AdapterError("the fake endpoint went away")
                raise self.fail
            self.fail_after -= 1
        if obj.key in self.fail_copy:
            raise self.fail_copy[obj.key]
        src, sp = self._bucket(source)
        dst, tp = self._bucket(target)
        await asyncio.sleep(0)
        found = src.get(sp + obj.key)
        if found is None:
            raise SourceChanged(f"copying {obj.key}: gone from the source after it was listed")
        if found.etag != obj.etag:
            raise SourceChanged(f"copying {obj.key}: changed at the source after it was listed (copied next run)")
        if obj.size > self.multipart_threshold:
            etag, meta = parts_etag(found.data, self.part_size), {**found.meta, SOURCE_ETAG: obj.etag}
        elif in_parts(obj.etag):
            etag, meta = md5_etag(found.data), {**found.meta, SOURCE_ETAG: obj.etag}
        else:
            etag, meta = found.etag, dict(found.meta)
        dst[tp + obj.key] = FakeObject(found.data, etag, meta)
        return etag

    async def copied_from(self, target: str, key: str) -> str | None:
        """The recorded source ETag."""
        self._enter(f"head {key}")
        objects, prefix = self._bucket(target)
        found = objects.get(prefix + key)
        return found.meta.get(SOURCE_ETAG) if found is not None else None

    async def delete(self, url: str, keys: list[str]) -> dict[str, str]:
        """Delete them."""
        self._enter(f"delete {len(keys)}")
        objects, prefix = self._bucket(url)
        for key in keys:
            objects.pop(prefix + key, None)
        return {}

    async def close(self) -> None:
        """Nothing to release."""
