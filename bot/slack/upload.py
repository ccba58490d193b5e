"""Uploading a file too big to hold in memory (every line of a ``logs`` answer) to a Slack thread.

The lines are written to a private temporary file (0600 in a 0700 directory of its own) in the redaction
thread, then sent through Slack's upload flow -- ``files.getUploadURLExternal`` (its length), a POST of
the file to the URL Slack gave, read from disk as it is sent, and ``files.completeUploadExternal`` into
the thread -- and the file is removed whatever happens (a failure, a cancellation).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import aiohttp
from slack_sdk.web.async_client import AsyncWebClient

from bot.config.redact import off_loop


def write_private(lines: Iterator[str], directory: str) -> Path:
    """``lines`` (one a line) in a new 0600 file in ``directory``."""
    path = Path(directory) / "upload.txt"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(fd, "w", encoding="utf-8", errors="surrogatepass", newline="\n") as f:
        for line in lines:
            f.write(line + "\n")
    return path


async def upload_lines(
    client: AsyncWebClient,
    session: aiohttp.ClientSession,
    channel: str,
    ts: str | None,
    filename: str,
    lines: Iterator[str],
) -> None:
    """Attach ``lines`` (redacted) as ``filename`` in the thread ``ts`` of ``channel``; the memory used is
    bounded (the file is streamed from disk). Raises what the Web API calls raise (``SlackApiError``, ...)."""
    directory = tempfile.mkdtemp(prefix="opsbot-upload-")  # 0700
    try:
        path = await off_loop(write_private, lines, directory)
        got = await client.files_getUploadURLExternal(filename=filename, length=path.stat().st_size)
        f = await asyncio.to_thread(open, path, "rb")
        try:
            async with session.post(str(got["upload_url"]), data=f) as response:
                if response.status != 200:
                    raise OSError(f"the upload to Slack answered HTTP {response.status}")
        finally:
            f.close()
        await client.files_completeUploadExternal(
            files=[{"id": str(got["file_id"]), "title": filename}], channel_id=channel, thread_ts=ts
        )
    finally:
        shutil.rmtree(directory, ignore_errors=True)
