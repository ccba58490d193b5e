"""The ``Buckets`` contract: the same tests against ``InMemoryBuckets`` and ``S3Buckets`` on moto's S3 server,
so that the fake the unit tests use cannot drift from S3."""

from __future__ import annotations

import hashlib
import os
import secrets

import pytest

from adapters.buckets import SOURCE_ETAG, Buckets, in_parts
from adapters.errors import NotFound, SourceChanged
from adapters.fakes import InMemoryBuckets

MIB = 2**20
THRESHOLD, PART = int(5.5 * MIB), 5 * MIB


class FakeWorld:
    """Objects put into and read from the fake."""

    def __init__(self) -> None:
        self.buckets: Buckets = InMemoryBuckets(multipart_threshold=THRESHOLD, part_size=PART)
        self.fake = self.buckets

    def bucket(self) -> str:
        name = f"b-{secrets.token_hex(4)}"
        self.fake.buckets[name] = {}
        return name

    def put(self, bucket: str, key: str, data: bytes, *, parts: int | None = None, **meta: str) -> None:
        self.fake.put(f"s3://{bucket}/", key, data, parts=parts)
        self.fake.buckets[bucket][key].meta.update(meta)

    def many(self, bucket: str, keys: list[str]) -> None:
        for key in keys:
            self.fake.put(f"s3://{bucket}/", key, key.encode())

    def read(self, bucket: str, key: str) -> tuple[bytes, dict[str, str]]:
        found = self.fake.buckets[bucket][key]
        return found.data, found.meta

    def names(self, bucket: str) -> set[str]:
        return set(self.fake.buckets[bucket])


class S3World:
    """Objects put into and read from moto's S3 server, through boto3 (and its state, for many objects)."""

    def __init__(self, moto_s3) -> None:
        from adapters.stores.buckets import S3Buckets

        self.s3 = moto_s3.client()
        self.buckets: Buckets = S3Buckets(multipart_threshold=THRESHOLD, part_size=PART, concurrency=4)

    def bucket(self) -> str:
        name = f"b-{secrets.token_hex(4)}"
        self.s3.create_bucket(Bucket=name)
        return name

    def put(self, bucket: str, key: str, data: bytes, *, parts: int | None = None, **meta: str) -> None:
        if not parts:
            self.s3.put_object(Bucket=bucket, Key=key, Body=data, Metadata=meta)
            return
        up = self.s3.create_multipart_upload(Bucket=bucket, Key=key, Metadata=meta)
        done = [{"PartNumber": n, "ETag": self.s3.upload_part(Bucket=bucket, Key=key, UploadId=up["UploadId"],
                                                              PartNumber=n, Body=data[i : i + parts])["ETag"]}
                for n, i in enumerate(range(0, len(data), parts), 1)]  # fmt: skip
        self.s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up["UploadId"],
                                          MultipartUpload={"Parts": done})  # fmt: skip

    def many(self, bucket: str, keys: list[str]) -> None:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.s3.models import s3_backends

        backend = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
        for key in keys:
            backend.put_object(bucket, key, key.encode())

    def read(self, bucket: str, key: str) -> tuple[bytes, dict[str, str]]:
        answer = self.s3.get_object(Bucket=bucket, Key=key)
        return answer["Body"].read(), answer.get("Metadata") or {}

    def names(self, bucket: str) -> set[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return {o["Key"] for page in pages for o in page.get("Contents", [])}


@pytest.fixture(params=["fake", "s3"])
async def world(request):
    w = FakeWorld() if request.param == "fake" else S3World(request.getfixturevalue("moto_s3"))
    yield w
    await w.buckets.close()


def md5(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


async def test_a_listing_is_every_page_relative_to_its_prefix(world):
    b = world.bucket()
    world.many(b, [f"files/{i:04d}" for i in range(2_500)] + ["filesystem/not-under-the-prefix", "top"])
    found = await world.buckets.listing(f"s3://{b}/files/")
    assert len(found) == 2_500 and set(found) == {f"{i:04d}" for i in range(2_500)}
    assert found["0042"].size == len(b"files/0042") and found["0042"].etag == md5(b"files/0042")
    assert set(await world.buckets.listing(f"s3://{b}/")) >= {"top", "filesystem/not-under-the-prefix"}
    assert await world.buckets.listing(f"s3://{b}/nothing/") == {}


async def test_a_plain_copy_keeps_the_bytes_etag_and_metadata(world):
    src, dst = world.bucket(), world.bucket()
    world.put(src, "in/a.txt", b"hello", owner="shop")
    obj = (await world.buckets.listing(f"s3://{src}/in/"))["a.txt"]
    etag = await world.buckets.copy(f"s3://{src}/in/", f"s3://{dst}/out/", obj)
    assert etag == obj.etag == md5(b"hello")
    data, meta = world.read(dst, "out/a.txt")
    assert data == b"hello" and meta == {"owner": "shop"}
    assert await world.buckets.copied_from(f"s3://{dst}/out/", "a.txt") is None


async def test_a_copy_of_an_object_uploaded_in_parts_records_the_source_etag(world):
    src, dst = world.bucket(), world.bucket()
    data = os.urandom(5 * MIB + 100)
    world.put(src, "v.mov", data, parts=5 * MIB, kind="video")
    obj = (await world.buckets.listing(f"s3://{src}/"))["v.mov"]
    assert in_parts(obj.etag) and obj.etag.endswith('-2"')
    etag = await world.buckets.copy(f"s3://{src}/", f"s3://{dst}/", obj)
    assert etag != obj.etag and etag == (await world.buckets.listing(f"s3://{dst}/"))["v.mov"].etag
    copied, meta = world.read(dst, "v.mov")
    assert copied == data and meta == {"kind": "video", SOURCE_ETAG: obj.etag}
    assert await world.buckets.copied_from(f"s3://{dst}/", "v.mov") == obj.etag


async def test_an_object_above_the_threshold_is_copied_in_parts(world):
    src, dst = world.bucket(), world.bucket()
    data = os.urandom(6 * MIB)
    world.put(src, "big.bin", data)
    obj = (await world.buckets.listing(f"s3://{src}/"))["big.bin"]
    etag = await world.buckets.copy(f"s3://{src}/", f"s3://{dst}/", obj)
    assert in_parts(etag) and etag.endswith('-2"')  # 5 MiB and 1 MiB
    assert world.read(dst, "big.bin")[0] == data
    assert await world.buckets.copied_from(f"s3://{dst}/", "big.bin") == obj.etag == md5(data)


async def test_a_bucket_that_does_not_exist_is_not_found_by_name(world):
    with pytest.raises(NotFound, match="no-such-bucket-here does not exist"):
        await world.buckets.listing("s3://no-such-bucket-here/prefix/")


async def test_an_object_gone_from_the_source_since_listed_is_a_source_change(world):
    src, dst = world.bucket(), world.bucket()
    world.put(src, "gone.txt", b"soon gone")
    obj = (await world.buckets.listing(f"s3://{src}/"))["gone.txt"]
    if isinstance(world, FakeWorld):
        del world.fake.buckets[src]["gone.txt"]
    else:
        world.s3.delete_object(Bucket=src, Key="gone.txt")
    with pytest.raises(SourceChanged, match="gone from the source"):
        await world.buckets.copy(f"s3://{src}/", f"s3://{dst}/", obj)
    assert world.names(dst) == set()


async def test_delete_removes_exactly_the_keys_under_the_prefix(world):
    b = world.bucket()
    world.many(b, ["t/a", "t/b", "t/c", "a", "u/a"])
    failed = await world.buckets.delete(f"s3://{b}/t/", ["a", "b", "never-there"])
    assert failed == {} and world.names(b) == {"t/c", "a", "u/a"}
