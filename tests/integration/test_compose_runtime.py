"""ComposeRuntime: what only the real engine can show (big logs, dead engines, timeouts), and its parsers."""

from __future__ import annotations

import asyncio
import io
import socket
import threading
import time
from datetime import UTC, datetime

import pytest

import adapters.compose as compose
from adapters.compose import ComposeRuntime
from adapters.dockerio import LineReader, cpu_percent, frames, image_version, memory_usage, parse_df, parse_time
from adapters.errors import AdapterTimeout, EngineUnavailable, OpsError
from tests.helpers.docker_engine import run_service

# ---------------------------------------------------------------------- parsers (no engine)


def test_image_versions():
    assert image_version("shop/api:1.4.2") == "1.4.2"
    assert image_version("reg.example:5000/shop/api:2.0") == "2.0"
    assert image_version("reg.example:5000/shop/api") is None
    assert image_version("shop/api") is None
    assert image_version("shop/api@sha256:" + "a" * 64) is None
    assert image_version("shop/api:1.1@sha256:" + "a" * 64) == "1.1"
    assert image_version("sha256:" + "b" * 64) is None


def test_times():
    assert parse_time("0001-01-01T00:00:00Z") is None and parse_time("") is None and parse_time(None) is None
    assert parse_time("2026-11-26T20:34:52.833470306Z") == datetime(2026, 11, 26, 20, 34, 52, 833470, tzinfo=UTC)
    assert parse_time("2026-11-26T21:34:52+01:00") == datetime(2026, 11, 26, 20, 34, 52, tzinfo=UTC)


def test_stats_formulas():
    sample = {
        "cpu_stats": {"cpu_usage": {"total_usage": 3_000}, "system_cpu_usage": 20_000, "online_cpus": 2},
        "precpu_stats": {"cpu_usage": {"total_usage": 1_000}, "system_cpu_usage": 10_000},
        "memory_stats": {"usage": 300, "limit": 1000, "stats": {"total_inactive_file": 100}},
    }
    assert cpu_percent(sample) == 40.0  # 2000/10000 of the machine, 2 CPUs -> 40% of one CPU
    assert memory_usage(sample) == (20.0, 200)
    v2 = {"memory_stats": {"usage": 300, "limit": 600, "stats": {"inactive_file": 60}}}
    assert memory_usage(v2) == (40.0, 240)
    assert memory_usage({"memory_stats": {}}) == (None, None) and cpu_percent({}) is None


def test_df():
    out = "Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/vda 1000 250 750 25% /\n"
    assert parse_df(out) == ("/", 1024_000, 256_000, 25.0)
    assert parse_df("df: /: No such file\n") is None


def _multiplexed(*frames_: tuple[int, bytes]) -> io.BytesIO:
    return io.BytesIO(b"".join(bytes([s, 0, 0, 0]) + len(p).to_bytes(4, "big") + p for s, p in frames_))


def test_frames_and_lines_are_bounded():
    raw = _multiplexed(
        (1, b"2026-01-01T00:00:01Z out one\n2026-01-01T00:00:02Z out "),
        (2, b"2026-01-01T00:00:02.5Z err \xff\xfe\n"),
        (1, b"two\n"),
        (1, b"2026-01-01T00:00:03Z " + b"x" * 20_000),  # no newline yet: cut, memory stays bounded
        (1, b"\n2026-01-01T00:00:04Z ERROR last"),
    )
    reader = LineReader(3, None)
    for stream, payload in frames(raw, tty=False, stop=threading.Event()):
        reader.feed(stream, payload)
    kept = reader.close()
    assert [text for _, text in kept] == ["out two", "x" * 4096, "ERROR last"]
    grep = LineReader(5, "err")
    for stream, payload in frames(
        _multiplexed((2, b"2026-01-01T00:00:01Z Err \xff\n")), tty=False, stop=threading.Event()
    ):
        grep.feed(stream, payload)
    assert grep.close() == [("2026-01-01T00:00:01Z", "Err \ufffd")]


# ---------------------------------------------------------------------- the real engine

docker = pytest.mark.docker
CHATTY_LINES = 200_000


@pytest.fixture(scope="module")
def chatty(docker_engine, shop):
    """Service ``chatty`` of its own project: a log of 200,000 lines (about 7 MB), then ``done``."""
    project = f"{shop.project}chatty"
    script = f"seq 0 {CHATTY_LINES - 1} | sed 's/.*/line & padding-padding-padding/'; echo done; exec sleep 100000"
    container = run_service(docker_engine.client, project, "chatty", "shop/worker:1.0", ["sh", "-c", script])
    deadline = time.monotonic() + 120
    while b"done" not in container.logs(tail=1):
        assert time.monotonic() < deadline, "chatty did not finish writing"
        time.sleep(0.1)
    yield project
    container.remove(force=True)


class SpyReader(LineReader):
    """A LineReader that counts the lines the engine sent."""

    made: list[SpyReader] = []

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.seen = 0
        SpyReader.made.append(self)

    def _line(self, raw: bytes) -> None:
        self.seen += 1
        super()._line(raw)


@docker
async def test_huge_log_is_read_bounded(shop, chatty, monkeypatch):
    monkeypatch.setattr(compose, "LineReader", SpyReader)
    rt = ComposeRuntime(shop.host, chatty)
    SpyReader.made.clear()
    lines = await rt.logs("chatty", lines=50)
    assert len(lines) == 50 and lines[-1] == "done" and lines[0] == "line 199951 padding-padding-padding"
    assert SpyReader.made[-1].seen == 50  # the engine sent only the tail
    # grep streams the whole log through, keeping only the newest matches (a deque of `lines`)
    matches = await rt.logs("chatty", lines=3, grep="LINE 1999")
    assert matches == [f"line {i} padding-padding-padding" for i in (199997, 199998, 199999)]
    spy = SpyReader.made[-1]
    assert spy.seen == CHATTY_LINES + 1 and spy.kept.maxlen == 3 and not spy.partial
    await rt.close()


@docker
async def test_exec_timeout_is_one_clear_line(shop):
    rt = ComposeRuntime(shop.host, shop.project)
    start = time.perf_counter()
    with pytest.raises(AdapterTimeout) as info:
        await rt.exec("postgres", ["sleep", "5"], timeout=0.5)
    assert time.perf_counter() - start < 1.5
    assert str(info.value) == (
        "sleep in service 'postgres' did not finish within 0.5s (it may still be running in the container)"
    )
    await rt.close()


@docker
async def test_listing_is_one_list_and_parallel_inspects(shop):
    rt = ComposeRuntime(shop.host, shop.project)
    await rt.containers()  # the client exists
    api = rt._api()
    calls: list[str] = []
    for name in ("containers", "inspect_container"):
        original = getattr(api, name)

        def spy(*args, _original=original, _name=name, **kwargs):
            calls.append(_name)
            return _original(*args, **kwargs)

        setattr(api, name, spy)
    infos = await rt.containers()
    assert calls.count("containers") == 1 and calls.count("inspect_container") == len(infos) == 4
    await rt.close()


def _silent_server(path: str) -> tuple[socket.socket, list[socket.socket], threading.Event, threading.Thread]:
    """A unix socket that accepts connections and never answers."""
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(8)
    server.settimeout(0.1)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    return server, held, stop, thread


async def test_engine_that_never_answers_times_out(tmp_path):
    path = str(tmp_path / "silent.sock")
    server, held, stop, thread = _silent_server(path)
    rt = ComposeRuntime(f"unix://{path}", "shop", timeout=0.5)
    try:
        for call in (rt.containers(), rt.logs("api"), rt.exec("api", ["true"])):
            start = time.perf_counter()
            with pytest.raises(AdapterTimeout) as info:
                await call
            assert time.perf_counter() - start < 1.0
            assert str(info.value) == f"Docker engine at unix://{path} did not answer within 0.5s (listing containers)"
            assert info.value.__cause__ is not None
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()
        await rt.close()


@pytest.mark.parametrize("kind", ["missing", "refused"])
async def test_engine_that_is_not_there_is_one_clear_line(tmp_path, kind):
    path = tmp_path / "d.sock"
    if kind == "refused":  # a socket file nobody listens on
        leftover = socket.socket(socket.AF_UNIX)
        leftover.bind(str(path))
        leftover.close()
    rt = ComposeRuntime(f"unix://{path}", "shop", timeout=3)
    words = "no such socket" if kind == "missing" else "connection refused"
    for call in (rt.containers(stats=True), rt.logs("api"), rt.exec("api", ["true"]), rt.disk("api")):
        start = time.perf_counter()
        with pytest.raises(EngineUnavailable) as info:
            await call
        assert time.perf_counter() - start < 1
        assert str(info.value) == f"Docker engine at unix://{path} does not answer ({words})"
        assert isinstance(info.value, OpsError) and info.value.__cause__ is not None
    await rt.close()


async def test_client_is_made_lazily_and_closed(tmp_path):
    rt = ComposeRuntime(f"unix://{tmp_path}/none.sock", "shop")
    assert rt._client is None and rt.description == f"Docker engine at unix://{tmp_path}/none.sock"
    await asyncio.gather(*(rt.close() for _ in range(2)))
