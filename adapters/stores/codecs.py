"""Backup compression: zstd (the default) and gzip, each with a streaming encoder and a bounded decoder.

zstd at level 1 with two worker threads (``zstandard``): measured on a 1 GiB plain pg_dump on two
cores, level 1 keeps up with the dump (level 3 took 2.4x its CPU time and could not) and its output
was smaller than gzip -6's. Frames carry a content checksum, so a damaged byte is found even without
the recorded sha256.

A decoder is fed the stored bytes (``push``) and gives the dump back in pieces of at most 1 MiB
(``pull``), whatever the input: a bomb (a small object that expands enormously) cannot fill memory.
gzip does this with zlib's ``max_length``. ``zstandard`` has no such bound on its incremental
decompressor, so ``ZstdDecoder`` walks the frame and block headers itself (RFC 8878) and feeds the
decompressor a few whole blocks at a time: a block regenerates at most 128 KiB. The same walk says
whether the stream ended at the end of a frame (complete) or was cut short.
"""

from __future__ import annotations

import zlib
from typing import Literal, Protocol

import zstandard

#: the compressions a backup may have
Compression = Literal["zstd", "gzip"]
#: what a backup's object name ends with, per compression
SUFFIXES: dict[Compression, str] = {"zstd": ".sql.zst", "gzip": ".sql.gz"}
#: zstd's level and worker threads (see the module's docstring for the measurement)
ZSTD_LEVEL = 1
ZSTD_THREADS = 2
#: bytes each zstd worker takes at a time: its smallest job (the ratio is the same, the memory a third)
ZSTD_JOB = 512 * 1024
#: gzip's level (gzip's own default)
GZIP_LEVEL = 6
#: a decoder's pieces are at most this long
PIECE = 1 * 2**20
#: a zstd frame asking for a larger window (``--long``, ``--ultra``) is refused: it would take that much memory
ZSTD_MAX_WINDOW = 32 * 2**20
_BLOCK_MAX = 128 * 1024
_BLOCKS_PER_PULL = PIECE // _BLOCK_MAX - 1  # one block begun in the previous pull may end in this one
_ZSTD_MAGIC = 0xFD2FB528
_SKIPPABLE = 0x184D2A50
_MAGICS: dict[bytes, Compression] = {b"\x28\xb5\x2f\xfd": "zstd", b"\x1f\x8b": "gzip"}


class DecodeError(ValueError):
    """The bytes are not a valid stream of the expected compression."""


class Encoder(Protocol):
    """Compresses a stream: ``compress`` each chunk, then ``flush`` once."""

    def compress(self, data: bytes | memoryview) -> bytes:
        """The compressed bytes ready so far (maybe none)."""
        ...

    def flush(self) -> bytes:
        """The rest, ending the stream."""
        ...


class Decoder(Protocol):
    """Decompresses a stream with bounded memory: ``push`` stored bytes, ``pull`` until it gives ``b""``."""

    def push(self, data: bytes) -> None:
        """Hand over the next stored bytes (after the previous ones were pulled out)."""
        ...

    def pull(self) -> bytes:
        """The next piece of at most ``PIECE`` bytes; ``b""`` when it needs more input. ``DecodeError`` when invalid."""
        ...

    def complete(self) -> bool:
        """True when what was pushed so far ends at the end of a whole stream (nothing cut short)."""
        ...


def suffix(compression: Compression) -> str:
    """``.sql.zst`` or ``.sql.gz``."""
    return SUFFIXES[compression]


def of_name(key: str) -> Compression | None:
    """The compression an object's name says, if it says one."""
    for compression, end in SUFFIXES.items():
        if key.endswith(end):
            return compression
    return None


def of_bytes(head: bytes) -> Compression | None:
    """The compression the first bytes of an object show (its magic number), if any."""
    for magic, compression in _MAGICS.items():
        if head.startswith(magic):
            return compression
    return None


def encoder(compression: Compression) -> Encoder:
    """A fresh encoder."""
    if compression == "gzip":
        return zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
    params = zstandard.ZstdCompressionParameters.from_level(
        ZSTD_LEVEL, threads=ZSTD_THREADS, job_size=ZSTD_JOB, write_checksum=True
    )
    return _ZstdEncoder(zstandard.ZstdCompressor(compression_params=params).compressobj())


class _ZstdEncoder:
    def __init__(self, obj: zstandard.ZstdCompressionObj) -> None:
        self._obj = obj

    def compress(self, data: bytes | memoryview) -> bytes:
        return self._obj.compress(data)

    def flush(self) -> bytes:
        return self._obj.flush()


def decoder(compression: Compression) -> Decoder:
    """A fresh decoder."""
    return GzipDecoder() if compression == "gzip" else ZstdDecoder()


class GzipDecoder:
    """gzip (several members too), in pieces of at most ``PIECE`` bytes."""

    def __init__(self) -> None:
        self._d = zlib.decompressobj(31)
        self._tail = b""
        self._started = False
        self._full = False  # the last piece filled its bound: zlib may hold more output

    def push(self, data: bytes) -> None:
        """More stored bytes."""
        self._tail = self._tail + data if self._tail else data

    def pull(self) -> bytes:
        """The next piece, or ``b""``."""
        try:
            while self._tail or self._full:
                self._started = True
                piece = self._d.decompress(self._tail, PIECE)
                self._full = len(piece) == PIECE
                if self._d.eof:
                    self._tail, self._full, self._started = self._d.unused_data, False, False
                    self._d = zlib.decompressobj(31)
                else:
                    self._tail = self._d.unconsumed_tail
                if piece:
                    return piece
        except zlib.error as exc:
            raise DecodeError(str(exc)) from exc
        return b""

    def complete(self) -> bool:
        """Ended at the end of a member."""
        return not self._started and not self._tail


class ZstdDecoder:
    """zstd (several frames, skippable ones too), a few whole blocks at a time: pieces of at most ``PIECE`` bytes."""

    def __init__(self) -> None:
        dctx = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW)
        self._obj = dctx.decompressobj(write_size=PIECE, read_across_frames=True)
        self._buf = memoryview(b"")  # the bytes pushed; those before self._at are fed already
        self._at = 0
        self._base = 0  # stream offset of self._buf[0]
        self._next = 0  # stream offset of the next header to read
        self._expect: Literal["frame", "block"] = "frame"
        self._checksum = False

    def push(self, data: bytes) -> None:
        """More stored bytes."""
        rest = self._buf[self._at :]  # not fed yet: at most a header cut by the end of the last push
        self._base += self._at
        self._buf, self._at = memoryview(bytes(rest) + data if len(rest) else data), 0

    def pull(self) -> bytes:
        """The next piece, or ``b""``."""
        while True:
            self._walk()
            end = min(self._next - self._base, len(self._buf))
            if end <= self._at:
                return b""
            data, self._at = self._buf[self._at : end], end
            try:
                piece = self._obj.decompress(data)
            except zstandard.ZstdError as exc:
                raise DecodeError(str(exc)) from exc
            if piece:
                return piece

    def _walk(self) -> None:
        """Read headers from ``_next`` on, over at most ``_BLOCKS_PER_PULL`` blocks, while they are whole."""
        blocks, buf = 0, self._buf
        while blocks < _BLOCKS_PER_PULL:
            at = self._next - self._base
            if self._expect == "frame":
                if len(buf) - at < 5:
                    return
                magic = int.from_bytes(buf[at : at + 4], "little")
                if magic & 0xFFFFFFF0 == _SKIPPABLE:
                    if len(buf) - at < 8:
                        return
                    self._next += 8 + int.from_bytes(buf[at + 4 : at + 8], "little")
                    continue
                if magic != _ZSTD_MAGIC:
                    raise DecodeError(f"unknown frame descriptor at byte {self._next}")
                fhd = buf[at + 4]
                if fhd & 0x08:
                    raise DecodeError(f"reserved bit set in the frame header at byte {self._next}")
                single = fhd >> 5 & 1
                fcs = (single, 2, 4, 8)[fhd >> 6]
                self._next += 5 + (0 if single else 1) + (0, 1, 2, 4)[fhd & 3] + fcs
                self._checksum, self._expect = bool(fhd & 0x04), "block"
            else:
                if len(buf) - at < 3:
                    return
                header = int.from_bytes(buf[at : at + 3], "little")
                kind, size = header >> 1 & 3, header >> 3
                if kind == 3 or size > _BLOCK_MAX:
                    raise DecodeError(f"invalid block header at byte {self._next}")
                self._next += 3 + (1 if kind == 1 else size)
                blocks += 1
                if header & 1:  # the frame's last block
                    self._next += 4 if self._checksum else 0
                    self._expect = "frame"

    def complete(self) -> bool:
        """Ended at the end of a frame."""
        return self._expect == "frame" and self._at == len(self._buf) and self._next == self._base + self._at
