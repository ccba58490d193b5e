"""``S3Store``: backups in an S3 bucket (``s3://bucket/prefix/``), through botocore, streamed by multipart upload.

botocore (boto3's core: boto3 itself would add only imports) is synchronous: each call runs in a worker
thread of the store's own pool, bounded by the client's connect/read timeouts. ``AWS_ENDPOINT_URL``,
the keys and the region are read as boto3 and the aws CLI read them. The client's models are read into
plain dicts, not botocore's ``OrderedDict``s (the same data, 4 MB less of a backup's peak memory).

An upload sends parts of ``PART_SIZE`` bytes as they fill, under ``<key>.partial``; any failure aborts
the multipart upload (retried for a while, as the endpoint may be coming back), so no object is left.
Once whole, it is copied server side (one ``CopyObject``; above 5 GiB, ``UploadPartCopy`` parts of
``COPY_PART``) to its key with its size and sha256, and the partial one is removed: an object under a
backup's key is always complete and carries its checksum.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

import botocore.config
import botocore.exceptions

from adapters.errors import AdapterError, AdapterTimeout, EngineUnavailable, NotFound
from adapters.store import PutResult, StoredObject, id_of, newest_first, time_of
from adapters.stores.s3client import s3_client

log = logging.getLogger("opsbot.s3")
T = TypeVar("T")
#: bytes per uploaded part (S3: at least 5 MiB except the last)
PART_SIZE = 5 * 2**20
#: how long an abort keeps being retried when the endpoint does not answer
ABORT_FOR = 20.0
#: the suffix of an object being uploaded: never listed, removed once copied to its final key
PARTIAL = ".partial"
#: bytes per read of a download
READ_SIZE = 1 * 2**20
#: above this many bytes, the final copy goes in parts (``UploadPartCopy``: S3's ``CopyObject`` stops at 5 GiB)
COPY_LIMIT = 5 * 2**30
#: the size of those parts (more for an object that would need more than 10,000), and how many at once
COPY_PART = 512 * 2**20
COPY_CONCURRENCY = 4
#: at most this many objects (the newest) are inspected for their metadata by ``list``; older ones are
#: listed without it
LIST_LIMIT = 500


def _headers(meta: dict[str, str]) -> dict[str, str]:
    """Metadata as S3 keeps it: printable US-ASCII (others become ``?``), each value at most 512 characters."""
    return {k: "".join(c if " " <= c <= "~" else "?" for c in v)[:512] for k, v in meta.items()}


class S3Store:
    """A bucket and a prefix, from ``s3://bucket/prefix/``."""

    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        if not url.startswith("s3://"):
            raise AdapterError(f"not an S3 store: {url!r}")
        self.url = url if url.endswith("/") else url + "/"
        self.bucket, _, self.prefix = self.url[len("s3://") :].partition("/")
        self.timeout = timeout
        self._client: Any = None
        self.copy_limit, self.copy_part = COPY_LIMIT, COPY_PART
        self._pool = ThreadPoolExecutor(8, thread_name_prefix="opsbot-s3")

    def _s3(self) -> Any:
        if self._client is None:
            config = botocore.config.Config(
                connect_timeout=min(self.timeout, 10.0), read_timeout=self.timeout,
                retries={"max_attempts": 3, "mode": "standard"}, max_pool_connections=8,
            )  # fmt: skip
            self._client = s3_client(config)
        return self._client

    def location(self, key: str) -> str:
        """``s3://bucket/key``."""
        return f"s3://{self.bucket}/{key}"

    async def _call(self, fn: Callable[[], T], what: str) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn)
        except botocore.exceptions.ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            text = f"S3 {self.url}: {what}: {code} {error.get('Message', '')}".strip()
            raise (NotFound if code in ("404", "NoSuchKey", "NotFound", "NoSuchBucket") else AdapterError)(
                text
            ) from exc
        except (botocore.exceptions.ConnectTimeoutError, botocore.exceptions.ReadTimeoutError) as exc:
            raise AdapterTimeout(f"S3 endpoint of {self.url} did not answer within {self.timeout:g}s ({what})") from exc
        except botocore.exceptions.NoCredentialsError as exc:
            raise AdapterError(f"S3 {self.url}: no credentials (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)") from exc
        except (botocore.exceptions.BotoCoreError, OSError) as exc:
            raise EngineUnavailable(f"S3 endpoint of {self.url} does not answer ({what}: {exc})") from exc

    async def put(
        self, key: str, chunks: AsyncIterator[bytes], metadata: dict[str, str], final: Callable[[], dict[str, str]]
    ) -> PutResult:
        """Multipart upload of ``chunks`` (parts of ``PART_SIZE``, one sent while the next fills); aborted on any
        failure; metadata set at the end."""
        s3 = self._s3()
        meta = _headers(metadata)
        final_key, key = key, key + PARTIAL  # the final key only ever holds a whole object with its sha256
        created = await self._call(
            lambda: s3.create_multipart_upload(Bucket=self.bucket, Key=key, Metadata=meta), "starting the upload"
        )
        upload_id: str = created["UploadId"]
        parts: list[dict[str, Any]] = []
        sha, size = hashlib.sha256(), 0
        # two part buffers, reused: one is uploaded while the stream fills the other (memory: 2 parts); the
        # second made once the first part is full (a backup of one part, a restore's safety backup, needs one)
        buffers, filled = [bytearray(PART_SIZE)], 0
        sending: asyncio.Future[None] | None = None

        def upload(data: bytes | bytearray, number: int) -> None:
            sha.update(data)  # parts are sent one after the other: hashed in order
            answer = s3.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data)
            parts.append({"PartNumber": number, "ETag": answer["ETag"]})

        async def send(data: bytes | bytearray) -> None:
            nonlocal sending
            if sending is not None:
                await sending  # the part before is stored (or its error raised) first
            number = len(parts) + 1
            sending = asyncio.ensure_future(self._call(lambda: upload(data, number), f"uploading part {number}"))

        try:
            async for chunk in chunks:
                size += len(chunk)
                view = memoryview(chunk)
                while view:
                    n = min(len(view), PART_SIZE - filled)
                    buffers[0][filled : filled + n] = view[:n]
                    view, filled = view[n:], filled + n
                    if filled == PART_SIZE:
                        await send(buffers[0])  # it waits for the other buffer's upload first: that one is free
                        if len(buffers) == 1:
                            buffers.append(bytearray(PART_SIZE))
                        buffers.reverse()
                        filled = 0
            if filled or sending is None:  # the last part (or the only one, even empty)
                del buffers[0][filled:]  # shortened in place: no copy
                await send(buffers[0])
            assert sending is not None
            await sending
            buffers.clear()  # the parts are stored: their memory is not held during the copy below
            await self._call(
                lambda: s3.complete_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
                ),
                "completing the upload",
            )
        except BaseException as exc:
            if sending is not None:
                await asyncio.wait([sending], timeout=self.timeout)  # no part lands after the abort
                if sending.done() and not sending.cancelled():
                    sending.exception()  # retrieved: the error raised is this one, or the stream's own
            await asyncio.shield(self._abort(key, upload_id))
            if isinstance(exc, AdapterError):
                raise type(exc)(f"{exc}; the upload was aborted, no object was left") from exc
            raise
        digest = sha.hexdigest()
        meta |= _headers({**final(), "size": str(size), "sha256": digest})
        try:
            await self._publish(key, final_key, meta, size)
        except BaseException:
            await asyncio.shield(self._delete_quietly(final_key))
            raise
        finally:
            await asyncio.shield(self._delete_quietly(key))
        return PutResult(key=final_key, size=size, sha256=digest, location=self.location(final_key))

    async def _publish(self, partial: str, key: str, meta: dict[str, str], size: int) -> None:
        """Copy the uploaded object to its final key with its size and sha256, server side: one ``CopyObject``,
        or above ``copy_limit`` a multipart upload of ``UploadPartCopy`` parts (aborted if one fails)."""
        s3 = self._s3()
        source = {"Bucket": self.bucket, "Key": partial}
        what = "storing the backup under its name with its size and sha256"
        if size <= self.copy_limit:
            await self._call(
                lambda: s3.copy_object(Bucket=self.bucket, Key=key, CopySource=source, Metadata=meta,
                                       MetadataDirective="REPLACE"), what,
            )  # fmt: skip
            return
        created = await self._call(lambda: s3.create_multipart_upload(Bucket=self.bucket, Key=key, Metadata=meta), what)
        upload_id: str = created["UploadId"]
        step = max(self.copy_part, -(-size // 10_000))
        slots = asyncio.Semaphore(COPY_CONCURRENCY)

        async def part(number: int, first: int) -> dict[str, Any]:
            span = f"bytes={first}-{min(first + step, size) - 1}"
            async with slots:
                answer = await self._call(
                    lambda: s3.upload_part_copy(Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number,
                                                CopySource=source, CopySourceRange=span),
                    f"{what} (part {number})",
                )  # fmt: skip
            return {"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]}

        try:
            done = await asyncio.gather(
                *(part(n, at) for n, at in enumerate(range(0, size, step), 1)), return_exceptions=True
            )  # every part ended (none lands after an abort)
            parts = [p for p in done if not isinstance(p, BaseException)]
            for failed in done:
                if isinstance(failed, BaseException):
                    raise failed
            await self._call(
                lambda: s3.complete_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": list(parts)}
                ),
                what,
            )
        except BaseException:
            await asyncio.shield(self._abort(key, upload_id))
            raise

    async def _abort(self, key: str, upload_id: str) -> None:
        """Abort the multipart upload; retried while the endpoint does not answer (at most ``ABORT_FOR``)."""
        s3 = self._s3()
        deadline = time.monotonic() + ABORT_FOR
        while True:
            try:
                await self._call(
                    lambda: s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id), "aborting"
                )
                return
            except NotFound:
                return
            except AdapterError as exc:
                if time.monotonic() >= deadline:
                    log.error("could not abort the multipart upload %s of %s: %s", upload_id, key, exc)
                    return
                await asyncio.sleep(1.0)

    async def _delete_quietly(self, key: str) -> None:
        try:
            await self.delete(key)
        except AdapterError as exc:
            log.error("could not remove %s after a failed upload: %s", key, exc)

    async def list(self, prefix: str) -> list[StoredObject]:
        """Objects under ``prefix``, newest first; metadata read for the newest 500 (older ones without)."""
        s3 = self._s3()

        def listing() -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = []
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                found += page.get("Contents", [])
            return found

        found = [o for o in await self._call(listing, "listing") if not o["Key"].endswith(PARTIAL)]
        found.sort(key=lambda o: (o["LastModified"], o["Key"]), reverse=True)  # keys hold their UTC time
        heads: list[dict[str, str] | BaseException] = list(
            await asyncio.gather(*(self._meta(o["Key"]) for o in found[:LIST_LIMIT]), return_exceptions=True)
        )
        heads += [{}] * (len(found) - len(heads))  # older ones: listed (retention, find) without their metadata
        out = []
        for summary, meta in zip(found, heads, strict=False):
            if isinstance(meta, NotFound):  # deleted meanwhile
                continue
            if isinstance(meta, BaseException):
                raise meta
            out.append(self._object(summary["Key"], summary["Size"], summary["LastModified"], meta))
        return newest_first(out)

    async def _meta(self, key: str) -> dict[str, str]:
        s3 = self._s3()
        answer = await self._call(lambda: s3.head_object(Bucket=self.bucket, Key=key), f"reading {key}")
        return dict(answer.get("Metadata") or {})

    def _object(self, key: str, size: int, modified: datetime, meta: dict[str, str]) -> StoredObject:
        backup_id = id_of(key)
        return StoredObject(
            key=key, id=backup_id, created_at=time_of(backup_id, modified or datetime.now(UTC)), size=int(size),
            sha256=meta.get("sha256"), location=self.location(key), metadata=meta,
        )  # fmt: skip

    async def head(self, key: str) -> StoredObject:
        """One object with its metadata; ``NotFound`` when absent."""
        s3 = self._s3()
        answer = await self._call(lambda: s3.head_object(Bucket=self.bucket, Key=key), f"reading {key}")
        return self._object(key, answer["ContentLength"], answer["LastModified"], dict(answer.get("Metadata") or {}))

    async def get(self, key: str) -> AsyncIterator[bytes]:
        """The object's bytes in chunks of 1 MiB."""
        s3 = self._s3()
        answer = await self._call(lambda: s3.get_object(Bucket=self.bucket, Key=key), f"reading {key}")
        body = answer["Body"]
        try:
            while True:
                chunk: bytes = await self._call(lambda: body.read(READ_SIZE), f"reading {key}")
                if not chunk:
                    return
                yield chunk
        finally:
            body.close()

    async def delete(self, key: str) -> None:
        """Remove the object."""
        s3 = self._s3()
        await self._call(lambda: s3.delete_object(Bucket=self.bucket, Key=key), f"deleting {key}")

    async def close(self) -> None:
        """Stop the threads."""
        self._pool.shutdown(wait=False, cancel_futures=True)
