"""The fakes the unit tests lean on, held to the real thing: the same assertions on both.

``exec_stream`` (a dump or restore streamed through a container) on ``FakeRuntime`` and on
``ComposeRuntime`` against the shop's postgres container; the fault hooks (``fail``, ``delay``) against
an engine that is not there and one that never answers; ``FakeProbe`` against ``HttpProbe`` on real
HTTP servers. (Stores: test_store_contract.py; Swarm's replicas and previous images:
test_swarm_runtime.py.)
"""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest

from adapters.compose.runtime import ComposeRuntime
from adapters.errors import AdapterError, AdapterTimeout, EngineUnavailable, NotFound
from adapters.fakes import FakeProbe, FakeRuntime
from adapters.http.probe import HttpProbe
from adapters.models import ProbeRequest
from adapters.procstream import CHUNK, ProcessStream
from tests.helpers.http_servers import free_port, health_app, serve

RUNTIMES = ["fake", pytest.param("docker", marks=pytest.mark.docker)]
BIG = 3 * 2**20 + 17  # more than one chunk of stdout


def play(argv: list[str], stdin: bytes) -> tuple[int, bytes, bytes]:
    """What the shop's postgres container does with the commands below, as the fake's stream handler."""
    if argv == ["sh", "-c", "echo out; echo err >&2; exit 3"]:
        return 3, b"out\n", b"err\n"
    if argv == ["cat"]:
        return 0, stdin, b""
    if argv == ["head", "-c", str(BIG), "/dev/zero"]:
        return 0, bytes(BIG), b""
    return 126, b"", f'exec: "{argv[0]}": executable file not found in $PATH'.encode()


@pytest.fixture(params=RUNTIMES)
async def runtime(request):
    if request.param == "fake":
        rt = FakeRuntime()
        rt.add("postgres", image="shop/postgres:15")
        rt.add("redis", image="shop/redis:7", state="exited", exit_code=1)
        rt.stream_handler = play
    else:
        shop = request.getfixturevalue("shop")
        rt = ComposeRuntime(shop.host, shop.project)
    yield rt
    await rt.close()


async def read_all(proc: ProcessStream) -> tuple[bytes, int]:
    """(stdout, the largest chunk read)."""
    out, largest = bytearray(), 0
    while chunk := await proc.read():
        out += chunk
        largest = max(largest, len(chunk))
    return bytes(out), largest


# ---------------------------------------------------------------------- exec_stream


async def test_exec_stream_stdout_stderr_and_exit_code(runtime):
    async with runtime.exec_stream("postgres", ["sh", "-c", "echo out; echo err >&2; exit 3"]) as proc:
        assert isinstance(proc, ProcessStream)
        assert proc.description == "sh in service postgres"
        out, _ = await read_all(proc)
        assert (out, await proc.wait(), proc.stderr()) == (b"out\n", 3, "err")
        assert await proc.read() == b""  # the end stays the end


async def test_exec_stream_stdin_both_ways_and_bounded_chunks(runtime):
    data = bytes(range(256)) * 4096  # 1 MiB
    async with runtime.exec_stream("postgres", ["cat"], stdin=True) as proc:
        writing = asyncio.create_task(_write_then_close(proc, data))
        out, largest = await read_all(proc)
        await writing
        assert out == data and await proc.wait() == 0 and proc.stderr() == ""
        assert largest <= CHUNK
    async with runtime.exec_stream("postgres", ["head", "-c", str(BIG), "/dev/zero"]) as proc:
        out, largest = await read_all(proc)
        assert len(out) == BIG and out.count(0) == BIG and 0 < largest <= CHUNK and await proc.wait() == 0


async def _write_then_close(proc: ProcessStream, data: bytes) -> None:
    for start in range(0, len(data), 65536):
        await proc.write(data[start : start + 65536])
    await proc.close_stdin()


async def test_exec_stream_of_a_missing_program_fails_with_126(runtime):
    async with runtime.exec_stream("postgres", ["no-such-binary"]) as proc:
        out, _ = await read_all(proc)
        code = await proc.wait()
    assert code in (126, 127) and "no-such-binary" in (out.decode() + proc.stderr())


async def test_exec_stream_refuses_what_it_cannot_run(runtime):
    with pytest.raises(NotFound, match="no running container for service 'redis' in project"):
        async with runtime.exec_stream("redis", ["true"]):
            pass
    with pytest.raises(NotFound, match=r"no (running )?container for service 'nosuch' in project"):
        async with runtime.exec_stream("nosuch", ["true"]):
            pass
    for bad in ("pg_dump -U app", [], ["pg_dump", 1]):
        with pytest.raises(AdapterError, match="never a shell string"):
            async with runtime.exec_stream("postgres", bad):
                pass


# ---------------------------------------------------------------------- fault hooks


@pytest.fixture
def silent_socket(tmp_path):
    """A unix socket that accepts connections and never answers: an engine that hangs."""
    path = str(tmp_path / "silent.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(16)
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
    yield f"unix://{path}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def calls(rt):
    return {
        "containers": lambda: rt.containers(),
        "logs": lambda: rt.logs("api"),
        "exec": lambda: rt.exec("api", ["true"]),
        "disk": lambda: rt.disk("api"),
        "restart": lambda: rt.restart("api"),
        "wait_running": lambda: rt.wait_running("api", timeout=600),
    }


@pytest.mark.parametrize("kind", ["fake", "real"])
async def test_an_engine_that_is_not_there(kind, tmp_path):
    host = f"unix://{tmp_path}/d.sock"
    if kind == "fake":
        rt = FakeRuntime(description=f"Docker engine at {host}")
        rt.add("api")
        rt.go_away("no such socket")
    else:
        rt = ComposeRuntime(host, "shop", timeout=600)
    for name, call in calls(rt).items():
        with pytest.raises(EngineUnavailable) as info:
            await asyncio.wait_for(call(), 60)
        assert str(info.value) == f"Docker engine at {host} does not answer (no such socket)", name
    await rt.close()


@pytest.mark.parametrize("kind", ["fake", "real"])
async def test_an_engine_that_never_answers(kind, silent_socket):
    if kind == "fake":
        rt = FakeRuntime(description=f"Docker engine at {silent_socket}", timeout=0.5)
        rt.add("api")
        rt.delay = 3600  # every call would take an hour: the engine-call timeout ends it
    else:
        rt = ComposeRuntime(silent_socket, "shop", timeout=0.5)
    for name, call in calls(rt).items():
        with pytest.raises(AdapterTimeout) as info:
            await asyncio.wait_for(call(), 60)
        assert str(info.value) == f"Docker engine at {silent_socket} did not answer within 0.5s (listing containers)", (
            name
        )  # fmt: skip
    await rt.close()


async def test_a_command_that_outlives_its_timeout(runtime):
    if isinstance(runtime, FakeRuntime):
        runtime.slow_commands = {("postgres", "sleep", "600")}  # the fake's hook: this command never ends
    with pytest.raises(AdapterTimeout) as info:
        await asyncio.wait_for(runtime.exec("postgres", ["sleep", "600"], timeout=0.5), 60)
    assert str(info.value) == (
        "sleep in service 'postgres' did not finish within 0.5s (it may still be running in the container)"
    )


# ---------------------------------------------------------------------- probes


@pytest.fixture(params=["fake", "real"])
async def probe_and_base(request):
    """(probe, base URL of a real server): the fake answers as the server does, from its table."""
    app = health_app()
    async with serve(app) as base:
        if request.param == "real":
            probe = HttpProbe()
        else:
            probe = FakeProbe()
            probe.answer(f"{base}/health", latency=3)
            probe.answer(f"{base}/500", ok=False, status=500, error="HTTP 500")
            probe.answer(f"{base}/hang", delay=3600)
        yield probe, base
        await probe.close()


async def test_probe_results_in_request_order_with_their_names(probe_and_base):
    probe, base = probe_and_base
    refused = f"http://127.0.0.1:{free_port()}/health"
    requests = [
        ProbeRequest(name="a", url=f"{base}/health"),
        ProbeRequest(name="b", url=f"{base}/500"),
        ProbeRequest(name="c", url=refused),
        ProbeRequest(name="d", url=f"{base}/health"),
    ]
    results = await probe.check(requests)
    assert [(r.name, r.url) for r in results] == [(q.name, q.url) for q in requests]
    assert [(r.ok, r.status_code) for r in results] == [(True, 200), (False, 500), (False, None), (True, 200)]
    assert results[0].error is None and results[1].error == "HTTP 500"
    assert results[2].error == "connection refused"
    assert all(r.latency_ms is not None and r.latency_ms >= 0 for r in results if r.ok)
    assert await probe.check([]) == []


async def test_probe_timeout_is_the_request_s(probe_and_base):
    probe, base = probe_and_base
    [hung] = await asyncio.wait_for(probe.check([ProbeRequest(name="h", url=f"{base}/hang", timeout=0.5)]), 60)
    assert (hung.ok, hung.status_code, hung.error) == (False, None, "timed out")
