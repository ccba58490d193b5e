"""The backup codecs: zstd and gzip both ways, decoding in bounded pieces (a bomb cannot fill memory),
streams cut short or not compressed at all are said."""

from __future__ import annotations

import gzip
import os
import random
import shutil
import subprocess
import tracemalloc

import pytest
import zstandard

from adapters.fakes import InMemoryStore
from adapters.stores.codecs import PIECE, DecodeError, decoder, encoder, of_bytes, of_name
from adapters.stores.pipeline import DumpFailed, Meter, check_object, dump_to_store, store_to_process

KINDS = ("zstd", "gzip")
TEXT = b"".join(b"INSERT INTO t VALUES (%d, 'row %d');\n" % (i, i * 7) for i in range(40_000))


def encode(kind: str, data: bytes, chunk: int = 2**20) -> bytes:
    e = encoder(kind)
    return b"".join(e.compress(data[i : i + chunk]) for i in range(0, len(data), chunk)) + e.flush()


def decode(kind: str, data: bytes, chunk: int = 2**20) -> tuple[bytes, bool, int]:
    """(the bytes, complete, the longest piece)."""
    d, out, longest = decoder(kind), [], 0
    for i in range(0, len(data), chunk):
        d.push(data[i : i + chunk])
        while piece := d.pull():
            longest = max(longest, len(piece))
            out.append(piece)
    return b"".join(out), d.complete(), longest


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("data", [b"a", TEXT, os.urandom(3 * 2**20) + TEXT], ids=["one byte", "text", "random"])
def test_round_trip_in_any_chunking(kind, data):
    stored = encode(kind, data)
    assert of_bytes(stored) == kind
    for chunk in (2**20, 4099, 7):
        got, complete, longest = decode(kind, stored[:300_000] if chunk == 7 else stored, chunk)
        if chunk != 7:
            assert got == data and complete and longest <= PIECE
        else:
            assert data.startswith(got)  # a prefix fed in 7-byte chunks: what it holds so far, in order


@pytest.mark.parametrize("kind", KINDS)
def test_a_bomb_comes_out_in_bounded_pieces_and_memory(kind):
    bomb = encode(kind, b"\0" * (256 * 2**20), chunk=16 * 2**20)
    assert len(bomb) < 2**20  # a small object...
    tracemalloc.start()
    try:
        d, total, longest = decoder(kind), 0, 0
        d.push(bomb)
        while piece := d.pull():
            total, longest = total + len(piece), max(longest, len(piece))
            del piece
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == 256 * 2**20 and longest <= PIECE and d.complete()
    assert peak < 8 * 2**20, peak  # ...that expands 256 MiB never holds more than a few pieces


def test_zstd_made_elsewhere_several_frames_and_skippable_ones():
    frames = [
        zstandard.ZstdCompressor(level=19).compress(TEXT),
        (0x184D2A53).to_bytes(4, "little") + (5).to_bytes(4, "little") + b"12345",  # skippable
        zstandard.ZstdCompressor(write_content_size=False, write_checksum=False).compress(b"second " * 50_000),
    ]
    got, complete, _ = decode("zstd", b"".join(frames), chunk=3)
    assert got == TEXT + b"second " * 50_000 and complete
    if shutil.which("zstd"):  # the command-line tool's output (its own frames and threads)
        made = subprocess.run(["zstd", "-q", "-c", "-3", "-T2"], input=TEXT, capture_output=True, check=True).stdout
        assert decode("zstd", made)[:2] == (TEXT, True)


def test_gzip_made_elsewhere_several_members():
    got, complete, _ = decode("gzip", gzip.compress(b"a") + gzip.compress(TEXT, 9), chunk=5)
    assert got == b"a" + TEXT and complete


@pytest.mark.parametrize("kind", KINDS)
def test_cut_short_anywhere_is_never_complete(kind):
    stored = encode(kind, TEXT[:200_000] + os.urandom(100_000))
    for cut in [*range(1, 30), *random.Random(7).sample(range(30, len(stored)), 150), len(stored) - 1]:
        d = decoder(kind)
        d.push(stored[:cut])
        try:
            while d.pull():
                pass
        except DecodeError:
            continue
        assert not d.complete(), cut


def test_damage_and_foreign_bytes_are_decode_errors():
    stored = bytearray(encode("zstd", TEXT))
    stored[len(stored) // 2] ^= 0x10
    with pytest.raises(DecodeError):
        decode("zstd", bytes(stored))  # the frame's checksum (or its structure) catches it
    for kind in KINDS:
        with pytest.raises(DecodeError):
            decode(kind, b"-- plain SQL, not compressed\n" * 10)
    params = zstandard.ZstdCompressionParameters(window_log=27, enable_ldm=True)
    stream = zstandard.ZstdCompressor(compression_params=params).compressobj()  # size unknown: the window stays
    huge_window = stream.compress(TEXT) + stream.flush()
    with pytest.raises(DecodeError, match="memory"):
        decode("zstd", huge_window)  # a window that would take 128 MiB to decode is refused


def test_names_and_magic():
    assert of_name("p/prod/db/x.sql.zst") == "zstd" and of_name("x.sql.gz") == "gzip" and of_name("x.sql") is None
    assert of_bytes(b"\x1f\x8b\x08") == "gzip" and of_bytes(b"\x28\xb5\x2f\xfd\x00") == "zstd"
    assert of_bytes(b"CREATE") is None


async def test_restore_writes_pieces_of_at_most_a_mebibyte_and_check_reads_either():
    class Psql:
        description = "psql"
        longest = total = 0

        async def write(self, data: bytes) -> None:
            self.longest, self.total = max(self.longest, len(data)), self.total + len(data)

        async def read(self) -> bytes:
            return b""

        async def wait(self) -> int:
            return 0

        def stderr(self) -> str:
            return ""

        async def close_stdin(self) -> None:
            pass

    store = InMemoryStore()
    for kind in KINDS:
        store.add(f"k-{kind}", encode(kind, b"\0" * (64 * 2**20)))  # no name, no metadata: told by its bytes
        psql = Psql()
        await store_to_process(store, f"k-{kind}", psql, Meter())
        assert psql.total == 64 * 2**20 and psql.longest <= PIECE
        read = await check_object(store, f"k-{kind}", Meter())
        assert read.stream_ok and read.compression == kind and read.raw_size == 64 * 2**20
    store.add("cut", encode("zstd", TEXT)[:-100])
    read = await check_object(store, "cut", Meter())
    assert not read.stream_ok and read.stream_problem == "the zstd stream is incomplete (the object was cut short)"
    with pytest.raises(DumpFailed, match="the backup's zstd stream is incomplete"):
        await store_to_process(store, "cut", Psql(), Meter())


@pytest.mark.parametrize("kind", KINDS)
async def test_a_dump_in_chunks_of_any_size_is_stored_byte_for_byte(kind):
    """A stream without ``readinto`` (the Docker exec one): its chunks are copied into the reused buffers,
    one chunk across two buffers where it does not fit; what is stored decodes to the very dump."""
    data = random.Random(5).randbytes(3 * 2**20) + TEXT
    sizes = [700_001, 900_000, 2**20, 5, 400_000, 1, 2**20]

    class Dump:
        description = "pg_dump in service db"
        at = 0

        async def read(self) -> bytes:
            size = sizes[len(reads) % len(sizes)]
            chunk = data[self.at : self.at + size]
            self.at += len(chunk)
            reads.append(len(chunk))
            return chunk

        async def wait(self) -> int:
            return 0

        def stderr(self) -> str:
            return ""

    reads: list[int] = []
    store, meter = InMemoryStore(), Meter()
    put = await dump_to_store(Dump(), store, "k", {}, dict, meter, kind)
    stored = b"".join([chunk async for chunk in store.get("k")])
    assert put.size == len(stored) and meter.raw == len(data)
    restored, complete, _ = decode(kind, stored)
    assert complete and restored == data
