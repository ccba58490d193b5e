"""The file a big ``logs`` answer is uploaded from: private while it exists, removed whatever happens."""

from __future__ import annotations

import stat
import tempfile
from pathlib import Path
from typing import Any

import pytest

from bot.slack.upload import upload_lines


class Client:
    """The two Web API calls of the upload flow, recorded."""

    def __init__(self) -> None:
        self.completed: list[dict[str, Any]] = []

    async def files_getUploadURLExternal(self, *, filename: str, length: int) -> dict[str, Any]:
        self.length = length
        return {"upload_url": "http://slack.invalid/upload/F1", "file_id": "F1"}

    async def files_completeUploadExternal(self, **kw: Any) -> dict[str, Any]:
        self.completed.append(kw)
        return {"ok": True}


class Session:
    """``aiohttp.ClientSession.post`` reading the file it is given (or failing as the network may)."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.sent = b""
        self.mode = 0
        self.directory_mode = 0

    def post(self, url: str, *, data: Any) -> Any:
        path = Path(data.name)
        self.mode, self.directory_mode = stat.S_IMODE(path.stat().st_mode), stat.S_IMODE(path.parent.stat().st_mode)
        self.sent = data.read()
        session = self

        class Response:
            status = 200

            async def __aenter__(self) -> Any:
                if session.fail:
                    raise OSError("connection reset")
                return self

            async def __aexit__(self, *exc: object) -> None:
                return None

        return Response()


def _uploads() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("opsbot-upload-*")}


async def test_the_lines_are_sent_from_a_private_file_that_is_removed_after():
    before = _uploads()
    client, session = Client(), Session()
    await upload_lines(client, session, "C1", "1.2", "logs-prod-x.txt", iter(["head", "line 1", "line 2"]))
    assert session.sent == b"head\nline 1\nline 2\n" and client.length == len(session.sent)
    assert (session.mode, session.directory_mode) == (0o600, 0o700)
    assert client.completed == [{"files": [{"id": "F1", "title": "logs-prod-x.txt"}], "channel_id": "C1",
                                 "thread_ts": "1.2"}]  # fmt: skip
    assert _uploads() == before


async def test_a_failed_upload_removes_its_file_too():
    before = _uploads()
    with pytest.raises(OSError):
        await upload_lines(Client(), Session(fail=True), "C1", None, "f.txt", iter(["a", "b"]))
    assert _uploads() == before
