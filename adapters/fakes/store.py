"""In-memory stand-ins for backups: ``InMemoryStore`` and streamed processes (``FakeProcess``).

``InMemoryStore`` behaves like the real stores: the object appears only when the stream ended
normally, keys are listed newest first, metadata carries size and sha256 of the stored bytes.
``FakeProcess`` runs a Python function instead of a command: ``handler(argv, stdin) -> (exit code,
stdout, stderr)``, called when stdout is first read (no stdin) or when stdin is closed.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from adapters.errors import AdapterError, NotFound
from adapters.store import PutResult, StoredObject, id_of, newest_first, time_of

#: ``handler(argv, stdin bytes) -> (exit code, stdout bytes, stderr bytes)``
ProcessHandler = Callable[[list[str], bytes], tuple[int, bytes, bytes]]


class InMemoryStore:
    """A store in a dict: ``objects`` (key -> bytes), ``meta`` (key -> metadata), ``times`` (key -> time)."""

    def __init__(self, url: str = "s3://fake-bucket/backups/") -> None:
        self.url = url
        self.prefix = url.split("://", 1)[1].partition("/")[2] if url.startswith("s3://") else ""
        self.objects: dict[str, bytes] = {}
        self.meta: dict[str, dict[str, str]] = {}
        self.times: dict[str, datetime] = {}
        #: set to make every call raise it
        self.fail: AdapterError | None = None
        #: fail a ``put`` after this many bytes (a store that breaks midway)
        self.fail_after: int | None = None
        self.calls: list[str] = []

    def _enter(self, what: str) -> None:
        self.calls.append(what)
        if self.fail is not None:
            raise self.fail

    def location(self, key: str) -> str:
        """Where ``key`` is."""
        return self.url.split("://", 1)[0] + "://" + (self.url.split("://", 1)[1].split("/", 1)[0] + "/" + key)

    def add(self, key: str, data: bytes, meta: dict[str, str] | None = None, at: datetime | None = None) -> None:
        """Put an object directly (as by hand)."""
        self.objects[key], self.meta[key], self.times[key] = data, dict(meta or {}), at or datetime.now(UTC)

    async def put(
        self, key: str, chunks: AsyncIterator[bytes], metadata: dict[str, str], final: Callable[[], dict[str, str]]
    ) -> PutResult:
        """Gather the chunks; store them only if the stream ended normally."""
        self._enter(f"put {key}")
        data = bytearray()
        async for chunk in chunks:
            data += chunk
            if self.fail_after is not None and len(data) > self.fail_after:
                raise AdapterError(f"{self.url} stopped answering; the upload was aborted, no object was left")
        digest = hashlib.sha256(data).hexdigest()
        self.add(key, bytes(data), {**metadata, **final(), "size": str(len(data)), "sha256": digest})
        return PutResult(key=key, size=len(data), sha256=digest, location=self.location(key))

    def _object(self, key: str) -> StoredObject:
        meta = self.meta.get(key, {})
        return StoredObject(
            key=key, id=id_of(key), created_at=time_of(id_of(key), self.times[key]), size=len(self.objects[key]),
            sha256=meta.get("sha256"), location=self.location(key), metadata=meta,
        )  # fmt: skip

    async def list(self, prefix: str) -> list[StoredObject]:
        """Newest first."""
        self._enter(f"list {prefix}")
        return newest_first([self._object(k) for k in self.objects if k.startswith(prefix)])

    async def head(self, key: str) -> StoredObject:
        """One object."""
        self._enter(f"head {key}")
        if key not in self.objects:
            raise NotFound(f"no backup {self.location(key)}")
        return self._object(key)

    async def get(self, key: str) -> AsyncIterator[bytes]:
        """The bytes in chunks of 64 KiB."""
        self._enter(f"get {key}")
        if key not in self.objects:
            raise NotFound(f"no backup {self.location(key)}")
        data = self.objects[key]
        for i in range(0, len(data), 65536):
            yield data[i : i + 65536]

    async def delete(self, key: str) -> None:
        """Remove it."""
        self._enter(f"delete {key}")
        self.objects.pop(key, None)
        self.meta.pop(key, None)
        self.times.pop(key, None)

    async def close(self) -> None:
        """Nothing to release."""


class FakeProcess:
    """A ``ProcessStream`` whose work is ``handler(argv, stdin)``."""

    def __init__(self, handler: ProcessHandler, argv: list[str], where: str, *, stdin: bool = False) -> None:
        self.handler, self.argv = handler, argv
        self.description = f"{argv[0]} {where}"
        self._stdin = bytearray()
        #: with stdin, output comes once stdin is closed (the handler needs all of it)
        self._closed = asyncio.Event()
        if not stdin:
            self._closed.set()
        self._result: tuple[int, bytes, bytes] | None = None
        self._offset = 0

    def _run(self) -> tuple[int, bytes, bytes]:
        if self._result is None:
            self._result = self.handler(self.argv, bytes(self._stdin))
        return self._result

    async def read(self) -> bytes:
        """Stdout in chunks of 64 KiB (with stdin: once stdin is closed)."""
        await self._closed.wait()
        out = self._run()[1]
        chunk = out[self._offset : self._offset + 65536]
        self._offset += len(chunk)
        return chunk

    async def write(self, data: bytes) -> None:
        """Gathered for the handler."""
        self._stdin += data

    async def close_stdin(self) -> None:
        """The handler runs now."""
        self._run()
        self._closed.set()

    async def wait(self) -> int:
        """The handler's exit code."""
        return self._run()[0]

    def stderr(self) -> str:
        """The handler's stderr."""
        return self._run()[2].decode("utf-8", errors="replace").strip()[-4096:]

    async def kill(self) -> None:
        """Nothing runs."""


class FakeStreams:
    """``exec_stream`` for ``FakeRuntime``: ``stream_handler`` plays the command."""

    stream_handler: ProcessHandler | None = None

    if TYPE_CHECKING:

        async def _enter(self, what: str) -> None: ...
        def _of(self, service: str, *, running: bool) -> list[Any]: ...

    @asynccontextmanager
    async def exec_stream(self, service: str, argv: list[str], *, stdin: bool = False) -> AsyncIterator[FakeProcess]:
        """The service must have a running container; the handler plays ``argv``."""
        if isinstance(argv, str) or not argv or not all(isinstance(a, str) for a in argv):
            raise AdapterError("exec takes a non-empty list of arguments (argv), never a shell string")
        await self._enter(f"exec_stream {service} {argv}")
        self._of(service, running=True)
        handler = self.stream_handler or (lambda a, _: (126, b"", f"exec: {a[0]!r}: not found".encode()))
        yield FakeProcess(handler, list(argv), f"in service {service}", stdin=stdin)
