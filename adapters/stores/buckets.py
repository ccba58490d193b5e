"""``S3Buckets``: listings, server-side copies and deletions between S3 buckets, through botocore (boto3's core).

botocore is synchronous: every call runs in one of the adapter's own worker threads (``concurrency`` of
them; more calls wait for a free one), bounded by the client's connect and read timeouts. The endpoint,
keys and region are boto3's and the aws CLI's usual ones (``AWS_ENDPOINT_URL``, ...). A listing is paged
(``ListObjectsV2``, 1,000 keys a page, continuation tokens); a copy is one ``CopyObject`` up to
``multipart_threshold`` bytes (5 GiB, S3's limit), else ``CreateMultipartUpload`` + ``UploadPartCopy``
for each part + ``CompleteMultipartUpload``, aborted if any part fails.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import botocore.config
import botocore.exceptions

from adapters.buckets import MULTIPART_THRESHOLD, SOURCE_ETAG, BucketObject, in_parts, split_url
from adapters.errors import AdapterError, AdapterTimeout, EngineUnavailable, NotFound, SourceChanged
from adapters.stores.s3client import s3_client

log = logging.getLogger("opsbot.s3")
T = TypeVar("T")
#: the size of each part of a copy in parts (more when an object would need more than 10,000 parts)
PART_SIZE = 512 * 2**20
MAX_PARTS = 10_000
#: the headers a copy in parts carries over from its source (a single CopyObject copies them itself)
KEPT = ("ContentType", "ContentEncoding", "ContentDisposition", "ContentLanguage", "CacheControl", "Expires")
MISSING_KEY = ("NoSuchKey", "404", "NotFound")


class S3Buckets:
    """Server-side work between buckets, ``concurrency`` calls at a time."""

    def __init__(
        self,
        *,
        concurrency: int = 32,
        multipart_threshold: int = MULTIPART_THRESHOLD,
        part_size: int = PART_SIZE,
        timeout: float = 120.0,
    ) -> None:
        self.concurrency = concurrency
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.timeout = timeout
        self._client: Any = None
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="opsbot-s3-files")

    def _s3(self) -> Any:
        if self._client is None:
            config = botocore.config.Config(
                connect_timeout=min(self.timeout, 10.0), read_timeout=self.timeout,
                retries={"max_attempts": 3, "mode": "standard"}, max_pool_connections=self.concurrency + 4,
                parameter_validation=False,
            )  # fmt: skip
            # botocore's client itself: boto3's session would add only its imports (s3transfer, resources)
            self._client = s3_client(config, raw_timestamps=True)  # nothing here reads LastModified
        return self._client

    async def _call(self, fn: Callable[[], T], url: str, what: str) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn)
        except botocore.exceptions.ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            text = f"S3 {url}: {what}: {code} {error.get('Message', '')}".strip()
            if code == "NoSuchBucket":
                raise NotFound(f"S3 bucket {split_url(url)[0]} does not exist ({what}): check {url}") from exc
            if code in ("PreconditionFailed", "412"):
                raise SourceChanged(f"{what}: changed at the source after it was listed (copied next run)") from exc
            if code in MISSING_KEY:
                raise SourceChanged(f"{what}: gone from the source after it was listed") from exc
            raise AdapterError(text) from exc
        except (botocore.exceptions.ConnectTimeoutError, botocore.exceptions.ReadTimeoutError) as exc:
            raise AdapterTimeout(f"S3 endpoint of {url} did not answer within {self.timeout:g}s ({what})") from exc
        except botocore.exceptions.NoCredentialsError as exc:
            raise AdapterError(f"S3 {url}: no credentials (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)") from exc
        except (botocore.exceptions.BotoCoreError, OSError) as exc:
            raise EngineUnavailable(f"S3 endpoint of {url} does not answer ({what}: {exc})") from exc

    async def listing(self, url: str) -> dict[str, BucketObject]:
        """Every object under ``url``, ``ListObjectsV2`` page after page, by key relative to the prefix."""
        bucket, prefix = split_url(url)
        s3 = self._s3()
        cut = len(prefix)

        def pages() -> dict[str, BucketObject]:
            found: dict[str, BucketObject] = {}
            for page in s3.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": 1000}
            ):
                for o in page.get("Contents", ()):
                    key = o["Key"][cut:]
                    found[key] = BucketObject(key, int(o["Size"]), str(o.get("ETag", "")))
            return found

        return await self._call(pages, url, "listing")

    async def copy(self, source: str, target: str, obj: BucketObject) -> str:
        """One ``CopyObject`` (keeping the ETag), or a copy in parts that records the source's ETag."""
        sb, sp = split_url(source)
        tb, tp = split_url(target)
        s3 = self._s3()
        origin = {"Bucket": sb, "Key": sp + obj.key}
        what = f"copying {obj.key}"
        if obj.size > self.multipart_threshold:
            return await self._copy_in_parts(source, target, obj)
        if not in_parts(obj.etag):

            def plain() -> str:
                answer = s3.copy_object(Bucket=tb, Key=tp + obj.key, CopySource=origin, CopySourceIfMatch=obj.etag)
                return str(answer["CopyObjectResult"]["ETag"])

            return await self._call(plain, source, what)
        # uploaded in parts at the source: the copy's ETag will differ, so it records the source's
        head = await self._head(source, obj)

        def replacing() -> str:
            answer = s3.copy_object(Bucket=tb, Key=tp + obj.key, CopySource=origin, CopySourceIfMatch=obj.etag,
                                    MetadataDirective="REPLACE", **head)  # fmt: skip
            return str(answer["CopyObjectResult"]["ETag"])

        return await self._call(replacing, source, what)

    async def _head(self, source: str, obj: BucketObject) -> dict[str, Any]:
        """The source's headers and metadata for its copy, with ``SOURCE_ETAG`` added."""
        bucket, prefix = split_url(source)
        s3 = self._s3()
        answer = await self._call(
            lambda: s3.head_object(Bucket=bucket, Key=prefix + obj.key, IfMatch=obj.etag), source,
            f"reading {obj.key}",
        )  # fmt: skip
        kept = {k: answer[k] for k in KEPT if answer.get(k)}
        return kept | {"Metadata": {**(answer.get("Metadata") or {}), SOURCE_ETAG: obj.etag}}

    async def _copy_in_parts(self, source: str, target: str, obj: BucketObject) -> str:
        sb, sp = split_url(source)
        tb, tp = split_url(target)
        s3 = self._s3()
        key, what = tp + obj.key, f"copying {obj.key} in parts"
        head = await self._head(source, obj)
        created = await self._call(lambda: s3.create_multipart_upload(Bucket=tb, Key=key, **head), target, what)
        upload_id: str = created["UploadId"]
        size = max(self.part_size, -(-obj.size // MAX_PARTS))
        ranges = [(start, min(start + size, obj.size) - 1) for start in range(0, obj.size, size)]

        def part(number: int, first: int, last: int) -> dict[str, Any]:
            answer = s3.upload_part_copy(
                Bucket=tb, Key=key, UploadId=upload_id, PartNumber=number, CopySourceIfMatch=obj.etag,
                CopySource={"Bucket": sb, "Key": sp + obj.key}, CopySourceRange=f"bytes={first}-{last}",
            )  # fmt: skip
            return {"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]}

        def job(number: int, first: int, last: int) -> Callable[[], dict[str, Any]]:
            return lambda: part(number, first, last)

        try:
            parts = await asyncio.gather(
                *(self._call(job(n, a, b), source, f"{what} (part {n} of {len(ranges)})")
                  for n, (a, b) in enumerate(ranges, 1))
            )  # fmt: skip
            done = await self._call(
                lambda: s3.complete_multipart_upload(
                    Bucket=tb, Key=key, UploadId=upload_id, MultipartUpload={"Parts": list(parts)}
                ), target, what,
            )  # fmt: skip
        except BaseException:
            await asyncio.shield(self._abort(target, tb, key, upload_id))
            raise
        return str(done["ETag"])

    async def _abort(self, url: str, bucket: str, key: str, upload_id: str) -> None:
        s3 = self._s3()
        try:
            await self._call(lambda: s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id), url,
                             f"aborting the copy in parts of {key}")  # fmt: skip
        except AdapterError as exc:
            log.error("could not abort the copy in parts %s of %s: %s", upload_id, key, exc)

    async def copied_from(self, target: str, key: str) -> str | None:
        """The ``SOURCE_ETAG`` metadata of ``key`` under ``target`` (one ``HeadObject``)."""
        bucket, prefix = split_url(target)
        s3 = self._s3()
        try:
            answer = await self._call(lambda: s3.head_object(Bucket=bucket, Key=prefix + key), target,
                                      f"reading {key}")  # fmt: skip
        except SourceChanged:  # gone from the target meanwhile: copied again
            return None
        value = (answer.get("Metadata") or {}).get(SOURCE_ETAG)
        return str(value) if value else None

    async def delete(self, url: str, keys: list[str]) -> dict[str, str]:
        """``DeleteObjects``, 1,000 keys a call; the keys S3 could not delete, with its reason."""
        bucket, prefix = split_url(url)
        s3 = self._s3()
        failed: dict[str, str] = {}
        for start in range(0, len(keys), 1000):
            batch = [{"Key": prefix + k} for k in keys[start : start + 1000]]

            def remove(objects: list[dict[str, str]] = batch) -> Any:
                return s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})

            answer = await self._call(remove, url, "deleting")
            for error in answer.get("Errors", ()):
                failed[str(error.get("Key", ""))[len(prefix) :]] = f"{error.get('Code')} {error.get('Message', '')}"
        return failed

    async def close(self) -> None:
        """Stop the threads."""
        self._pool.shutdown(wait=False, cancel_futures=True)
