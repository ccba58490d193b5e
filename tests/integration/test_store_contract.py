"""One set of assertions on the three backup stores: InMemoryStore (the unit tests' fake), FileStore,
and S3Store on moto's S3 server. What the fake lets a unit test believe, the real stores do."""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.errors import AdapterError, NotFound
from adapters.fakes import InMemoryStore
from adapters.store import BackupStore, backup_key, db_prefix
from adapters.stores.file import FileStore
from adapters.stores.s3 import S3Store

STORES = ["memory", "file", pytest.param("s3", marks=pytest.mark.s3)]
OLD, NEW = "20240101T000000Z-aaaaaa", "20240102T000000Z-bbbbbb"


class Subject:
    """A store under test, and a way to put an object there by hand (not through opsbot)."""

    def __init__(self, store: BackupStore, by_hand) -> None:
        self.store, self.by_hand = store, by_hand


@pytest.fixture(params=STORES)
async def subject(request, tmp_path):
    if request.param == "memory":
        store = InMemoryStore("s3://contract/backups/")
        subject = Subject(store, lambda key, data: store.add(key, data))
    elif request.param == "file":
        store = FileStore(f"file://{tmp_path}/store/")

        def by_hand(key: str, data: bytes) -> None:
            path = Path(store.root) / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

        subject = Subject(store, by_hand)
    else:
        moto_s3 = request.getfixturevalue("moto_s3")
        bucket = f"contract-{secrets.token_hex(4)}"
        client = moto_s3.client()
        client.create_bucket(Bucket=bucket)
        store = S3Store(f"s3://{bucket}/backups/")
        subject = Subject(store, lambda key, data: client.put_object(Bucket=bucket, Key=key, Body=data))
    yield subject
    await subject.store.close()


async def chunks_of(data: bytes, size: int = 1 << 20, fail_after: int | None = None) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        if fail_after is not None and start >= fail_after:
            raise AdapterError("the dump broke")
        yield data[start : start + size]


async def read(store: BackupStore, key: str) -> bytes:
    return b"".join([chunk async for chunk in store.get(key)])


def key(store: BackupStore, backup_id: str, env: str = "prod") -> str:
    return backup_key(store.prefix, env, backup_id)


async def test_put_then_head_list_and_get(subject):
    store = subject.store
    data = os.urandom(9 * 2**20 + 123)  # more than one S3 part
    put = await store.put(key(store, NEW), chunks_of(data), {"requester": "U0OPERATOR", "kind": "backup"},
                          lambda: {"duration": "1.5"})  # fmt: skip
    digest = hashlib.sha256(data).hexdigest()
    assert (put.key, put.size, put.sha256, put.location) == (key(store, NEW), len(data), digest,
                                                             store.location(key(store, NEW)))  # fmt: skip
    head = await store.head(key(store, NEW))
    assert (head.id, head.size, head.sha256) == (NEW, len(data), digest)
    assert head.created_at == datetime(2024, 1, 2, tzinfo=UTC)  # the time written in the id
    assert head.metadata == {"requester": "U0OPERATOR", "kind": "backup", "duration": "1.5",
                             "size": str(len(data)), "sha256": digest}  # fmt: skip
    assert await read(store, key(store, NEW)) == data
    assert [o.model_dump() for o in await store.list(db_prefix(store.prefix, "prod"))] == [head.model_dump()]


async def test_listing_is_newest_first_within_its_prefix_and_knows_objects_put_by_hand(subject):
    store = subject.store
    for backup_id in (OLD, NEW):
        await store.put(key(store, backup_id), chunks_of(backup_id.encode()), {}, dict)
    await store.put(key(store, NEW, env="staging"), chunks_of(b"other"), {}, dict)
    subject.by_hand(key(store, "20240103T000000Z-cccccc"), b"by hand")
    listed = await store.list(db_prefix(store.prefix, "prod"))
    assert [o.id for o in listed] == ["20240103T000000Z-cccccc", NEW, OLD]
    assert listed[0].sha256 is None and listed[0].size == len(b"by hand")  # no metadata of opsbot's
    assert listed[1].sha256 == hashlib.sha256(NEW.encode()).hexdigest()
    assert all(o.location == store.location(o.key) for o in listed)


async def test_a_stream_that_breaks_leaves_nothing(subject):
    store = subject.store
    with pytest.raises(AdapterError, match="the dump broke"):
        await store.put(key(store, NEW), chunks_of(os.urandom(10 * 2**20), fail_after=9 * 2**20), {}, dict)
    assert await store.list(db_prefix(store.prefix, "prod")) == []
    with pytest.raises(NotFound):
        await store.head(key(store, NEW))


async def test_missing_objects_and_delete(subject):
    store = subject.store
    missing = key(store, OLD)
    with pytest.raises(NotFound) as info:
        await store.head(missing)
    assert missing in str(info.value)
    with pytest.raises(NotFound) as info:
        await read(store, missing)
    assert missing in str(info.value)
    await store.put(missing, chunks_of(b"x"), {}, dict)
    await store.delete(missing)
    await store.delete(missing)  # already gone: nothing to say
    assert await store.list(db_prefix(store.prefix, "prod")) == []


@pytest.fixture
async def s3_store(moto_s3):
    bucket = f"contract-{secrets.token_hex(4)}"
    client = moto_s3.client()
    client.create_bucket(Bucket=bucket)
    store = S3Store(f"s3://{bucket}/backups/")
    yield store, client, bucket
    await store.close()


@pytest.mark.s3
async def test_s3_a_backup_above_the_copy_limit_is_stored_by_a_copy_in_parts(s3_store):
    store, client, bucket = s3_store
    store.copy_limit, store.copy_part = 6 * 2**20, 5 * 2**20  # as for a backup above 5 GiB: three part copies
    data = os.urandom(11 * 2**20 + 7)
    put = await store.put(key(store, NEW), chunks_of(data), {"kind": "backup"}, lambda: {"duration": "2"})
    digest = hashlib.sha256(data).hexdigest()
    assert await read(store, put.key) == data
    head = await store.head(put.key)
    assert head.metadata == {"kind": "backup", "duration": "2", "size": str(len(data)), "sha256": digest}
    assert client.head_object(Bucket=bucket, Key=put.key)["ETag"].endswith('-3"')  # it was copied in 3 parts
    listed = client.list_objects_v2(Bucket=bucket)["Contents"]
    assert [o["Key"] for o in listed] == [put.key]  # the partial object is gone
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


@pytest.mark.s3
async def test_s3_a_copy_in_parts_that_fails_leaves_no_object_and_no_upload(s3_store):
    store, client, bucket = s3_store
    store.copy_limit, store.copy_part = 6 * 2**20, 5 * 2**20
    s3 = store._s3()
    real = s3.upload_part_copy

    def failing(**kwargs):
        if kwargs["PartNumber"] == 2:
            raise OSError("the connection broke")
        return real(**kwargs)

    s3.upload_part_copy = failing
    with pytest.raises(AdapterError, match="part 2"):
        await store.put(key(store, NEW), chunks_of(os.urandom(11 * 2**20)), {}, dict)
    assert client.list_objects_v2(Bucket=bucket).get("Contents", []) == []
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
