"""A command on the bot's host as a stream (``host_process``): real processes, both ways, and their ends."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys

import pytest

from adapters.errors import AdapterError
from adapters.procstream import CHUNK, host_process


async def test_megabytes_in_and_out_at_once():
    data = os.urandom(9 * 2**20 + 123)
    async with host_process(["cat"], stdin=True) as proc:

        async def feed() -> None:
            for i in range(0, len(data), 300_000):
                await proc.write(data[i : i + 300_000])
            await proc.close_stdin()

        out, sizes = bytearray(), []
        writer = asyncio.create_task(feed())
        while chunk := await proc.read():
            out += chunk
            sizes.append(len(chunk))
        await writer
        assert await proc.wait() == 0
    assert hashlib.sha256(out).digest() == hashlib.sha256(data).digest()
    assert max(sizes) <= CHUNK
    assert len(sizes) < len(data) // 65536  # fewer reads than one per 64 KiB (a 1 MiB pipe, reads gathered)


async def test_a_process_that_stops_reading_is_said_and_its_exit_code_kept():
    async with host_process(["head", "-c", "10"], stdin=True) as proc:
        with pytest.raises(AdapterError, match="head on the bot's host stopped reading its input"):
            for _ in range(100):
                await proc.write(b"x" * CHUNK)
        assert await proc.read() == b"xxxxxxxxxx"
        assert await proc.wait() == 0


async def test_stderr_tail_and_exit_code():
    script = "import sys; sys.stderr.write('e' * 10000 + 'the end'); sys.exit(3)"
    async with host_process([sys.executable, "-c", script]) as proc:
        assert await proc.read() == b""
        assert await proc.wait() == 3
        assert proc.stderr().endswith("the end") and len(proc.stderr()) <= 4096


async def test_leaving_the_block_kills_it_even_while_a_read_waits():
    async with host_process(["sleep", "60"]) as proc:
        read = asyncio.create_task(proc.read())
        await asyncio.sleep(0.3)  # timing: the read has begun waiting (the test holds either way)
        pid = proc.proc.pid
    assert proc.proc.returncode is not None  # killed, and its threads ended
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    read.cancel()


async def test_argv_only_and_missing_programs():
    with pytest.raises(AdapterError, match="never a shell string"):
        async with host_process("ls -l"):  # type: ignore[arg-type]
            pass
    with pytest.raises(AdapterError, match="no-such-program-here is not installed"):
        async with host_process(["no-such-program-here"]):
            pass
