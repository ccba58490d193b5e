"""ComposeRuntime: what only the real engine can show (big logs, dead engines, timeouts), and its parsers."""

from __future__ import annotations

import asyncio
import io
import socket
import threading
import time
from datetime import UTC, datetime

import pytest

import adapters.compose.runtime as compose
from adapters.compose.runtime import ComposeRuntime
from adapters.docker.cgroups import Cgroups
from adapters.docker.io import LineReader, cpu_percent, frames, image_version, memory_usage, parse_df, parse_time
from adapters.docker.stats import cpu_between, usage
from adapters.errors import AdapterError, AdapterTimeout, EngineUnavailable, OpsError
from adapters.fakes import FakeRuntime
from adapters.lifecycle import Look, check_text, describe, grace_seconds, verdict
from adapters.models import ContainerInfo
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


def test_what_a_waited_for_container_means():
    base = ContainerInfo(id="1", name="p-s-1", service="s", state="running", image="i")

    def judge(healthy: bool = True, **state) -> str:
        return verdict(Look(base.model_copy(update=state)), healthy=healthy)

    assert judge() == judge(health="healthy") == judge(health="unhealthy", healthy=False) == "ready"
    assert judge(health="starting") == "waiting" and judge(health="unhealthy") == "failed"
    assert judge(state="exited", exit_code=0) == judge(state="dead", exit_code=1) == "failed"
    assert judge(state="restarting") == judge(state="created") == judge(state="paused") == "waiting"
    restarting = base.model_copy(update={"state": "restarting", "exit_code": 2})
    assert describe(Look(restarting)) == "p-s-1 is restarting (it exited with code 2)"
    dead = base.model_copy(update={"state": "dead", "exit_code": 137, "health": "unhealthy"})
    assert describe(Look(dead, "exit 1")) == "p-s-1 is dead (exit code 137), health unhealthy (last check: exit 1)"
    assert check_text(1, "a\nb\n\n") == "exit 1: b" and check_text(-1, None) == "exit -1"
    assert [grace_seconds(x) for x in (None, 0, 0.5, 1, 2.01)] == [None, 0, 1, 1, 3]


async def test_a_crash_quotes_at_most_20_lines_of_its_log():
    rt = FakeRuntime()
    rt.add("db", state="exited", exit_code=2, logs=[f"line {i}" for i in range(30)])
    with pytest.raises(AdapterError) as caught:
        await rt.wait_running("db", timeout=5)
    first, *tail = str(caught.value).splitlines()
    assert first == "service 'db' did not come up: shop-db-1 exited with code 2; the last 20 lines of its log:"
    assert tail == [f"  line {i}" for i in range(10, 30)]


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
    assert spy.seen == CHATTY_LINES + 1 and spy.keep == 3 and len(spy.kept) == 3 and not spy.partial
    await rt.close()


@docker
async def test_exec_timeout_is_one_clear_line(shop):
    rt = ComposeRuntime(shop.host, shop.project)
    with pytest.raises(AdapterTimeout) as info:  # without the timeout, sleep would end normally (exit 0)
        await rt.exec("postgres", ["sleep", "600"], timeout=0.5)
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


@pytest.fixture
def cpu_project(docker_engine, shop):
    """Its own project: busy (a busy loop), idle (2), stopped."""
    project = f"{shop.project}cpu"
    client = docker_engine.client
    made = [run_service(client, project, "busy", "shop/worker:1.0", ["sh", "-c", "while :; do :; done"]),
            run_service(client, project, "idle", "shop/worker:1.0", ["sleep", "100000"]),
            run_service(client, project, "idle", "shop/worker:1.0", ["sleep", "100000"], number=2),
            run_service(client, project, "stopped", "shop/worker:1.0", ["true"], start=False)]  # fmt: skip
    yield project
    for c in made:
        c.remove(force=True)


async def spied_stats(rt: ComposeRuntime) -> tuple[dict, list[tuple[str, dict]]]:
    """``containers(stats=True)`` by (service, number), and the SDK calls it made."""
    await rt.containers()  # the client exists
    api = rt._api()
    calls: list[tuple[str, dict]] = []
    for name in ("containers", "inspect_container", "stats"):
        original = getattr(api, name)

        def spy(*args, _original=original, _name=name, **kwargs):
            calls.append((_name, kwargs))
            return _original(*args, **kwargs)

        setattr(api, name, spy)
    return {(i.service, i.number): i for i in await rt.containers(stats=True)}, calls


def assert_figures(by: dict) -> None:
    busy, idle = by[("busy", 1)], by[("idle", 1)]
    assert idle.cpu_percent is not None and by[("idle", 2)].cpu_percent is not None
    quiet = max(idle.cpu_percent, by[("idle", 2)].cpu_percent, 0.05)
    # a busy loop takes what the (shared, loaded) machine gives it: far more than a sleeping container
    assert busy.cpu_percent is not None and busy.cpu_percent > 1 and busy.cpu_percent > 10 * quiet
    assert idle.memory_bytes and idle.memory_percent is not None and 0 <= idle.memory_percent < 100
    assert by[("stopped", 1)].cpu_percent is None and by[("stopped", 1)].memory_bytes is None


@docker
async def test_stats_on_the_engines_host_come_from_the_cgroups(shop, cpu_project):
    rt = ComposeRuntime(shop.host, cpu_project)
    try:
        by, calls = await spied_stats(rt)
    finally:
        await rt.close()
    names = [name for name, _ in calls]
    # what status costs the engine here: one list, one inspect per container, no stats request
    assert names.count("containers") == 1 and names.count("inspect_container") == 4 and "stats" not in names
    assert_figures(by)


@docker
async def test_stats_elsewhere_are_two_one_shot_samples_from_the_engine(shop, cpu_project, monkeypatch):
    monkeypatch.setattr(Cgroups, "locate", lambda self, pid, cid: None)  # as if opsbot ran on another host
    rt = ComposeRuntime(shop.host, cpu_project)
    try:
        by, calls = await spied_stats(rt)
    finally:
        await rt.close()
    names = [name for name, _ in calls]
    assert names.count("containers") == 1 and names.count("inspect_container") == 4
    assert names.count("stats") == 6  # two quick samples per running container
    assert all(kw == {"stream": False, "one_shot": True} for name, kw in calls if name == "stats")
    assert_figures(by)


def test_cpu_between_two_samples():
    first = {"read": "2026-01-01T00:00:00Z", "cpu_stats": {"cpu_usage": {"total_usage": 1_000_000_000},
                                                            "system_cpu_usage": 10**12, "online_cpus": 2}}  # fmt: skip
    second = {"read": "2026-01-01T00:00:00.5Z", "cpu_stats": {"cpu_usage": {"total_usage": 1_250_000_000},
                                                               "system_cpu_usage": 10**12 + 10**9, "online_cpus": 2},
              "memory_stats": {"usage": 300, "limit": 1000, "stats": {"inactive_file": 100}}}  # fmt: skip
    assert cpu_between(first, second) == 50.0  # 0.25 s of CPU in 0.5 s: half a CPU
    no_stamps = {k: v for k, v in second.items() if k != "read"}
    assert cpu_between(first, no_stamps) == 50.0  # docker's formula: 0.25e9 / 1e9 of the host x 2 CPUs
    restarted = {**second, "cpu_stats": {"cpu_usage": {"total_usage": 5}}}
    assert cpu_between(first, restarted) is None and cpu_between({}, second) is None
    assert usage(first, second) == (50.0, 20.0, 200) and usage(None, second) == (None, 20.0, 200)
    assert usage(first, None) is None


# ---------------------------------------------------------------------- restarts on the real engine
#
# Own project (the shared shop is never restarted). Every container says "up" once its SIGTERM trap
# is set, so a test waits for that before it stops it again (a TERM before the trap would be ignored:
# PID 1 has no default action). quick (2 containers) exits at once on TERM; graceful takes 2 s in its
# handler, then exits 0; ownstop is graceful with its own StopTimeout of 1 s.

QUICK = "trap 'echo bye; exit 0' TERM; echo up; while true; do sleep 0.1; done"
GRACEFUL = "trap 'echo got TERM; sleep 2; echo clean exit; exit 0' TERM; echo up; while true; do sleep 0.1; done"


@pytest.fixture(scope="module")
def lifecycle(docker_engine, shop):
    """(project, service -> [container ids]) of the restart project on the real engine."""
    c, project = docker_engine.client, f"{shop.project}lifecycle"
    image = "shop/worker:1.0"
    made = [
        run_service(c, project, "quick", image, ["sh", "-c", QUICK]).id,
        run_service(c, project, "quick", image, ["sh", "-c", QUICK], number=2).id,
        run_service(c, project, "graceful", image, ["sh", "-c", GRACEFUL]).id,
    ]
    labels = {
        "com.docker.compose.project": project,
        "com.docker.compose.service": "ownstop",
        "com.docker.compose.container-number": "1",
        "com.docker.compose.oneoff": "False",
    }
    made.append(
        c.api.create_container(
            image, ["sh", "-c", GRACEFUL], name=f"{project}-ownstop-1", labels=labels, stop_timeout=1,
            host_config=c.api.create_host_config(network_mode="host"),
        )["Id"]
    )  # fmt: skip
    c.api.start(made[-1])
    try:
        for cid in made:
            _wait_for_ups(c, cid, 1)
        services: dict[str, list[str]] = {}
        for cid in made:
            labels = c.api.inspect_container(cid)["Config"]["Labels"]
            services.setdefault(labels["com.docker.compose.service"], []).append(cid)
        yield project, services
    finally:
        for cid in made:
            c.api.remove_container(cid, force=True)


def _wait_for_ups(client, cid: str, count: int, timeout: float = 20) -> None:
    """Wait until the container has said "up" ``count`` times (its trap is set)."""
    deadline = time.monotonic() + timeout
    while client.api.logs(cid).count(b"up\n") < count:
        assert time.monotonic() < deadline, f"{cid[:12]} did not say up {count} times"
        time.sleep(0.05)


def _events(client, ids: list[str], since: str, until: str, event: str | None = None) -> list[dict]:
    """The engine's events for the containers between ``since`` and ``until`` (unix times with nanoseconds)."""
    filters: dict = {"container": ids} if event is None else {"container": ids, "event": event}
    return list(client.events(since=since, until=until, decode=True, filters=filters))


def _now() -> str:
    return f"{time.time():.9f}"


def _later() -> str:
    return f"{time.time() + 0.3:.9f}"  # events are recorded before the engine answers; a margin all the same


@docker
async def test_restart_starts_each_container_exactly_once_in_turn(docker_engine, shop, lifecycle):
    project, services = lifecycle
    client, ids = docker_engine.client, services["quick"]
    rt = ComposeRuntime(shop.host, project)
    names = [f"{project}-quick-{n}" for n in (1, 2)]
    said: list[str] = []

    async def progress(line: str) -> None:
        said.append(line)

    since = _now()
    for round_ in (1, 2):
        infos = await rt.restart("quick", progress=progress)  # no grace given, no StopTimeout: the engine's 10 s
        assert [i.name for i in infos] == names and all(i.state == "running" for i in infos)
        for cid in ids:
            await asyncio.to_thread(_wait_for_ups, client, cid, round_ + 1)
    until = _later()
    await rt.close()
    assert said == [f"restarting {names[0]} (1 of 2)", f"restarting {names[1]} (2 of 2)"] * 2
    # each stopped at once on SIGTERM, nobody waited out a grace: SIGTERM only (no SIGKILL), exit 0 (below)
    for cid in ids:  # the count the engine keeps: one start per container per restart
        starts = await asyncio.to_thread(_events, client, [cid], since, until, "start")
        assert [e["Action"] for e in starts] == ["start", "start"]
    events = await asyncio.to_thread(_events, client, ids, since, until)
    seen = [(e["Action"], ids.index(e["id"]) + 1) for e in events]
    one_by_one = [(action, n) for n in (1, 2) for action in ("kill", "die", "stop", "start")]
    assert seen == one_by_one * 2  # container 2 is stopped only once container 1 started again
    assert [e["Actor"]["Attributes"]["signal"] for e in events if e["Action"] == "kill"] == ["15"] * 4
    assert [e["Actor"]["Attributes"]["exitCode"] for e in events if e["Action"] == "die"] == ["0"] * 4


async def _restart_timed(rt, service: str, stop_timeout, client, cid: str, ups: int) -> tuple[float, list[dict]]:
    """Restart ``service``, wait until it is up again; (seconds from SIGTERM to the container's end, as
    the engine timed them in its own events -- not this busy test process's clock -- and the events)."""
    since = _now()
    await rt.restart(service, stop_timeout=stop_timeout)
    await asyncio.to_thread(_wait_for_ups, client, cid, ups)
    events = await asyncio.to_thread(_events, client, [cid], since, _later())
    term = next(e for e in events if e["Action"] == "kill" and e["Actor"]["Attributes"]["signal"] == "15")
    died = next(e for e in events if e["Action"] == "die")
    return (died["timeNano"] - term["timeNano"]) / 1e9, events


def _signals_and_exit(events: list[dict]) -> tuple[list[str], list[str]]:
    kills = [e["Actor"]["Attributes"]["signal"] for e in events if e["Action"] == "kill"]
    return kills, [e["Actor"]["Attributes"]["exitCode"] for e in events if e["Action"] == "die"]


@docker
async def test_the_stop_grace_is_respected(docker_engine, shop, lifecycle):
    project, services = lifecycle
    client, (cid,) = docker_engine.client, services["graceful"]
    # the runtime's own timeout (1 s) is shorter than the handler (2 s): the stop's bound is grace + timeout
    rt = ComposeRuntime(shop.host, project, timeout=1)
    ups = client.api.logs(cid).count(b"up\n")
    stopping, events = await _restart_timed(rt, "graceful", 5, client, cid, ups + 1)
    assert _signals_and_exit(events) == (["15"], ["0"])  # SIGTERM only; the handler's own exit 0
    assert stopping >= 2 and [e["Action"] for e in events].count("start") == 1  # its handler's 2 s were waited
    assert client.api.logs(cid).count(b"clean exit\n") == 1
    # 0.5 s: the engine counts whole seconds, so it is 1 s (rounded up, never down to 0) -- then SIGKILL
    assert grace_seconds(0.5) == 1
    stopping, events = await _restart_timed(rt, "graceful", 0.5, client, cid, ups + 2)
    assert _signals_and_exit(events) == (["15", "9"], ["137"])
    assert stopping >= 1  # the grace (1 s) was given; killed before the handler's 2 s were over (no clean exit):
    assert client.api.logs(cid).count(b"clean exit\n") == 1 and client.api.logs(cid).count(b"got TERM\n") == 2
    await rt.close()


@docker
async def test_without_a_grace_the_containers_own_stop_timeout_counts(docker_engine, shop, lifecycle):
    project, services = lifecycle
    client, (cid,) = docker_engine.client, services["ownstop"]
    assert client.api.inspect_container(cid)["Config"]["StopTimeout"] == 1
    rt = ComposeRuntime(shop.host, project)
    ups = client.api.logs(cid).count(b"up\n")
    stopping, events = await _restart_timed(rt, "ownstop", None, client, cid, ups + 1)
    assert _signals_and_exit(events) == (["15", "9"], ["137"])
    assert 1 <= stopping < 10  # its own 1 s (as the engine timed it), not the engine's default 10 s
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
        calls = (
            rt.containers(),
            rt.logs("api"),
            rt.exec("api", ["true"]),
            rt.restart("api"),
            rt.wait_running("api", timeout=5),
        )
        for call in calls:
            with pytest.raises(AdapterTimeout) as info:
                await asyncio.wait_for(call, 60)  # a backstop: without its timeout the call would never end
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
    # a timeout far beyond the backstop: a call that waited for it (instead of failing at once) fails the test
    rt = ComposeRuntime(f"unix://{path}", "shop", timeout=600)
    words = "no such socket" if kind == "missing" else "connection refused"
    calls = (rt.containers(stats=True), rt.logs("api"), rt.exec("api", ["true"]), rt.disk("api"), rt.restart("api"),
             rt.wait_running("api", timeout=600))  # fmt: skip
    for call in calls:
        with pytest.raises(EngineUnavailable) as info:
            await asyncio.wait_for(call, 60)
        assert str(info.value) == f"Docker engine at unix://{path} does not answer ({words})"
        assert isinstance(info.value, OpsError) and info.value.__cause__ is not None
    await rt.close()


async def test_client_is_made_lazily_and_closed(tmp_path):
    rt = ComposeRuntime(f"unix://{tmp_path}/none.sock", "shop")
    assert rt._client is None and rt.description == f"Docker engine at unix://{tmp_path}/none.sock"
    await asyncio.gather(*(rt.close() for _ in range(2)))
