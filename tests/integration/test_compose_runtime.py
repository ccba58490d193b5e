"""ComposeRuntime on the real engine: what only the real one can show (big logs, time windows, dead engines)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from datetime import timedelta

import pytest

from adapters.compose import ComposeRuntime, image_version, parse_time
from adapters.errors import AdapterTimeout, EngineUnavailable
from tests.helpers.docker_engine import run_service


def test_image_versions():
    assert image_version("shop/api:1.4.2") == "1.4.2"
    assert image_version("reg.example:5000/shop/api:2.0") == "2.0"
    assert image_version("reg.example:5000/shop/api") is None
    assert image_version("shop/api") is None
    assert image_version("shop/api@sha256:" + "a" * 64) is None
    assert image_version("shop/api:1.1@sha256:" + "a" * 64) == "1.1"
    assert parse_time("0001-01-01T00:00:00Z") is None
    assert parse_time("2026-11-26T20:34:52.833470306Z").microsecond == 833470


@pytest.fixture(scope="module")
def chatty(docker_engine, shop):
    """A service whose log holds 200,000 lines."""
    container = run_service(
        docker_engine.client, shop.project, "chatty", "shop/worker:1.0",
        ["sh", "-c", "i=0; while [ $i -lt 200000 ]; do echo \"line $i padding-padding-padding\"; i=$((i+1)); done; "
                     "echo done; sleep 100000"],
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while b"done" not in container.logs(tail=1):
        assert time.monotonic() < deadline, "chatty did not finish writing"
        time.sleep(0.5)
    yield container
    container.remove(force=True)


async def test_huge_log_is_read_bounded(shop, chatty):
    rt = ComposeRuntime(shop.host, shop.project)
    lines = await rt.logs("chatty", lines=50)
    assert len(lines) == 50 and lines[-1] == "done" and lines[0] == "line 199951 padding-padding-padding"
    # grep streams the whole log but keeps only the newest matches
    matches = await rt.logs("chatty", lines=3, grep="LINE 1999")
    assert matches == [f"line {i} padding-padding-padding" for i in (199997, 199998, 199999)]
    await rt.close()


async def test_since_window(shop):
    rt = ComposeRuntime(shop.host, shop.project)
    await asyncio.sleep(1.5)
    recent = await rt.logs("worker", since=timedelta(seconds=1), lines=100)
    everything = await rt.logs("worker", lines=10_000)
    assert recent and len(recent) < len(everything)
    assert "ERROR timeout talking to db" not in recent  # written at start-up, not within the last second
    await rt.close()


async def test_engine_without_socket_is_one_clear_line(tmp_path):
    rt = ComposeRuntime(f"unix://{tmp_path}/missing.sock", "shop", timeout=3)
    start = time.perf_counter()
    with pytest.raises(EngineUnavailable) as info:
        await rt.containers()
    assert str(info.value) == f"Docker engine at unix://{tmp_path}/missing.sock does not answer (no such socket)"
    assert time.perf_counter() - start < 3


async def test_engine_that_never_answers_times_out(tmp_path):
    path = str(tmp_path / "silent.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                held.append(conn)  # accepted, never answered
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    rt = ComposeRuntime(f"unix://{path}", "shop", timeout=1.0)
    start = time.perf_counter()
    with pytest.raises((AdapterTimeout, EngineUnavailable)) as info:
        await rt.containers()
    elapsed = time.perf_counter() - start
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()
    assert elapsed < 3, elapsed
    assert "Docker engine at unix://" in str(info.value) and "Traceback" not in str(info.value)
