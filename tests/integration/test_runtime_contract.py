"""One set of assertions, run against ComposeRuntime on the real engine and against FakeRuntime.

The fake is built to mirror the test project (``tests/helpers/docker_engine.py``: ``start_shop``), so
any behaviour the two disagree on fails here: the fake cannot drift from the real thing.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from adapters.compose.runtime import ComposeRuntime
from adapters.docker.spool import LineSpool
from adapters.errors import AdapterError, AdapterTimeout, NotFound
from adapters.fakes import AfterRestart, FakeRuntime
from adapters.models import ExecResult
from adapters.runtime import Runtime
from tests.helpers.contract import signature_mismatches
from tests.helpers.docker_engine import API_SCRIPT, run_service
from tests.helpers.http_servers import free_port

SECRET = "s3cr3t-fake"
PSQL = ["psql", "-tA", "-U", "app", "-c", "SELECT count(*) FROM pg_stat_activity"]
BIG = ["sh", "-c", "yes 0123456789abcdef | head -c 100000"]
DF = "Filesystem 1024-blocks Used Available Capacity Mounted on\noverlay 1000000 250000 750000 25% /\n"
RUNTIMES = ["fake", pytest.param("docker", marks=pytest.mark.docker)]


def fake_shop() -> FakeRuntime:
    """The test project as a FakeRuntime, line for line what start_shop leaves on the engine."""
    rt = FakeRuntime(
        exec_results={
            ("postgres", *PSQL): ExecResult(exit_code=0, output="3\n"),
            ("postgres", *BIG): ExecResult(exit_code=0, output="0123456789abcdef\n" * 5882 + "012345"),
            ("api", "df", "-P", "/"): ExecResult(exit_code=0, output=DF),
        }
    )
    rt.add("api", image="shop/api:1.0", health="healthy", env={"PORT": "8080", "PLAIN": "visible"})
    rt.add("postgres", image="shop/postgres:15")
    rt.add("redis", image="shop/redis:7", state="exited", exit_code=1)
    worker = rt.add("worker", image="shop/worker:1.0", env={"DB_PASSWORD": SECRET, "PLAIN": "visible"})
    start = datetime.now(UTC) - timedelta(minutes=1)
    rt.log(worker.name, f"worker starting, connecting with password {SECRET}", at=start)
    rt.log(worker.name, "ERROR timeout talking to db", at=start)
    rt.log(worker.name, "tick 1", "tick 2", "tick 3", "tick 4", "tick 5", at=start + timedelta(seconds=5))
    rt.log(worker.name, "WARN slow query 5", "tick 6")
    return rt


@pytest.fixture(params=RUNTIMES)
async def runtime(request):
    """The runtime under test, with ``.secret`` (the worker's DB_PASSWORD)."""
    if request.param == "fake":
        rt, secret = fake_shop(), SECRET
    else:
        shop = request.getfixturevalue("shop")
        rt, secret = ComposeRuntime(shop.host, shop.project), shop.secret
    rt.secret = secret
    yield rt
    await rt.close()


async def test_both_are_runtimes(runtime):
    assert isinstance(runtime, Runtime)
    # the same methods with the same parameters (names, kinds, defaults): a call that works on one works on both
    assert signature_mismatches(runtime, Runtime) == []
    fake = isinstance(runtime, FakeRuntime)
    assert runtime.description == ("fake engine" if fake else f"Docker engine at {runtime.docker_host}")


async def test_containers(runtime):
    infos = await runtime.containers()
    assert [i.service for i in infos] == ["api", "postgres", "redis", "worker"]
    by = {i.service: i for i in infos}
    assert by["api"].state == "running" and by["api"].health == "healthy" and by["api"].version == "1.0"
    assert by["api"].image == "shop/api:1.0" and by["api"].number == 1 and by["api"].exit_code is None
    assert by["api"].started_at is not None and by["api"].started_at < datetime.now(UTC)
    assert by["redis"].state == "exited" and by["redis"].exit_code == 1
    assert by["redis"].started_at is not None  # it ran once
    assert by["postgres"].health is None and by["postgres"].version == "15"
    assert by["worker"].env["DB_PASSWORD"] == runtime.secret and by["worker"].env["PLAIN"] == "visible"
    assert all(i.cpu_percent is None and i.memory_bytes is None for i in infos)  # no stats asked
    assert all(i.name.endswith(f"-{i.service}-1") for i in infos)
    assert "DB_PASSWORD" not in by["worker"].model_dump_json()  # env is never serialised


async def test_stats_only_for_running_containers(runtime):
    by = {i.service: i for i in await runtime.containers(stats=True)}
    for service in ("api", "postgres", "worker"):
        info = by[service]
        assert info.cpu_percent is not None and info.cpu_percent >= 0
        assert info.memory_percent is not None and 0 <= info.memory_percent <= 100
        assert info.memory_bytes is not None and info.memory_bytes > 0
    assert by["redis"].cpu_percent is None and by["redis"].memory_percent is None and by["redis"].memory_bytes is None


async def test_logs_tail_grep_and_stderr(runtime):
    # the real worker writes its first lines when it starts, then a tick a second: wait for its third tick
    deadline = time.monotonic() + 60
    while len(ticked := await runtime.logs("worker", grep="tick")) < 3:
        assert time.monotonic() < deadline, f"the worker's ticks after 60 s: {ticked}"
        await asyncio.sleep(0.2)
    lines = await runtime.logs("worker", lines=2)
    assert len(lines) == 2 and all(line.startswith(("tick", "WARN slow query")) for line in lines)
    assert lines[-1].startswith("tick") or lines[-1].startswith("WARN")
    errors = await runtime.logs("worker", grep="error")  # case-insensitive; the real worker wrote it to stderr
    assert errors == ["ERROR timeout talking to db"]
    secret_lines = await runtime.logs("worker", grep="PASSWORD")
    assert secret_lines == [f"worker starting, connecting with password {runtime.secret}"]  # redaction is the bot's
    ticks = await runtime.logs("worker", grep="TICK", lines=3)
    assert len(ticks) == 3 and all(t.startswith("tick ") for t in ticks)
    assert [int(t.split()[1]) for t in ticks] == sorted(int(t.split()[1]) for t in ticks)  # oldest first
    assert await runtime.logs("worker", lines=0) == []
    assert await runtime.logs("redis") == []  # a container that wrote nothing
    with pytest.raises(NotFound, match="no container for service 'nosuch' in project"):
        await runtime.logs("nosuch")


async def test_logs_since(runtime):
    # the real worker writes its first lines when it starts, then a tick a second: once it has run for a
    # while, the last 2 s hold ticks only (polled: a `since` that let older lines through never gets there)
    deadline = time.monotonic() + 60
    while not ((recent := await runtime.logs("worker", since=timedelta(seconds=2)))
               and all(line.startswith(("tick", "WARN")) for line in recent)):  # fmt: skip
        assert time.monotonic() < deadline, f"the last 2 s of the worker's log: {recent}"
        await asyncio.sleep(0.2)
    assert len(recent) < len(await runtime.logs("worker", lines=10_000))


async def test_exec_argv_only(runtime):
    result = await runtime.exec("postgres", PSQL)
    assert result == ExecResult(exit_code=0, output="3\n", truncated=False)
    missing = await runtime.exec("postgres", ["no-such-binary"])
    assert missing.exit_code == 126 and "executable file not found" in missing.output
    big = await runtime.exec("postgres", BIG)
    assert big.truncated and len(big.output.encode()) == 64 * 1024 and big.output.startswith("0123456789abcdef\n")
    with pytest.raises(NotFound, match="no running container for service 'redis'"):
        await runtime.exec("redis", ["true"])
    with pytest.raises(NotFound, match="no running container for service 'nosuch'"):
        await runtime.exec("nosuch", ["true"])
    for bad in ("psql -c 'drop table x'", [], ["ls", 3]):
        with pytest.raises(AdapterError, match="argv"):
            await runtime.exec("postgres", bad)


async def test_disk(runtime):
    usage = await runtime.disk("api")
    assert usage.service == "api" and usage.mount == "/" and usage.container.endswith("-api-1")
    assert 0 <= usage.percent <= 100 and 0 < usage.used_bytes <= usage.size_bytes
    with pytest.raises(NotFound, match="no running container for service 'redis'"):
        await runtime.disk("redis")


# ---------------------------------------------------------------------- a service with two containers


@pytest.fixture(params=RUNTIMES)
async def pair(request):
    """A runtime whose service ``pair`` has two containers that wrote first, second, third in turn."""
    if request.param == "fake":
        rt = FakeRuntime(project="pairs")
        one, two = rt.add("pair", number=1), rt.add("pair", number=2)
        start = datetime.now(UTC) - timedelta(seconds=10)
        rt.log(one.name, "first", at=start)
        rt.log(two.name, "second", at=start + timedelta(seconds=1))
        rt.log(one.name, "third", at=start + timedelta(seconds=2))
        yield rt, [one.name, two.name]
        return
    shop, engine = request.getfixturevalue("shop"), request.getfixturevalue("docker_engine")
    project = f"{shop.project}pairs"
    image = "shop/worker:1.0"
    one = run_service(
        engine.client, project, "pair", image, ["sh", "-c", "echo first; sleep 1.5; echo third; exec sleep 100000"]
    )
    await _wait_for_log(one, b"first")
    two = run_service(
        engine.client, project, "pair", image, ["sh", "-c", "echo second >&2; exec sleep 100000"], number=2
    )
    await _wait_for_log(two, b"second")
    await _wait_for_log(one, b"third")
    rt = ComposeRuntime(shop.host, project)
    yield rt, [one.name, two.name]
    await rt.close()
    for container in (one, two):
        container.remove(force=True)


async def _wait_for_log(container, text: bytes, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while text not in await asyncio.to_thread(container.logs):
        assert time.monotonic() < deadline, f"{container.name} did not write {text!r}"
        await asyncio.sleep(0.1)


async def spooled(runtime, service: str, **kw) -> list[str]:
    """``runtime.logs`` into a spool (as the logs command reads): the lines it holds; the spool is removed."""
    with LineSpool(kw.get("lines", 200), lambda batch: [line.upper() for line in batch]) as spool:
        assert await runtime.logs(service, spool=spool, **kw) == []
        return [line.lower() for line in spool.lines()]


async def test_logs_into_a_spool_are_the_lines_read_in_memory(runtime):
    for kw in ({"grep": "error"}, {"grep": "PASSWORD"}, {"lines": 0}):
        assert await spooled(runtime, "worker", **kw) == [line.lower() for line in await runtime.logs("worker", **kw)]
    assert await spooled(runtime, "redis") == []
    with pytest.raises(NotFound):
        await spooled(runtime, "nosuch")


async def test_logs_of_several_containers_are_merged_by_time(pair):
    rt, (one, two) = pair
    assert await rt.logs("pair") == [f"{one}: first", f"{two}: second", f"{one}: third"]
    assert await rt.logs("pair", lines=2) == [f"{two}: second", f"{one}: third"]
    assert await rt.logs("pair", grep="IR") == [f"{one}: first", f"{one}: third"]
    assert await spooled(rt, "pair") == [f"{one}: first", f"{two}: second", f"{one}: third"]
    assert await spooled(rt, "pair", lines=2) == [f"{two}: second", f"{one}: third"]
    assert await spooled(rt, "pair", grep="IR") == [f"{one}: first", f"{one}: third"]
    assert (await rt.disk("pair")).container == one  # the first running container answers


# ---------------------------------------------------------------------- restart and wait_running
#
# On their own project (never the shared shop, whose services other tests read): api and redis as
# in the shop (redis writes two lines before it exits 1), flaky (restart policy on-failure: 1 retry,
# used up), sick (healthy until it is restarted, then its check fails) and stuck (a health check
# whose first run is an hour away: ``starting`` for ever).

REDIS_LINES = ("redis starting", "FATAL cannot open /data/dump.rdb")
REDIS_SCRIPT = f"echo '{REDIS_LINES[0]}'; echo '{REDIS_LINES[1]}' >&2; exit 1"
SICK_SCRIPT = (
    "if [ -f /tmp/started ]; then rm -f /tmp/ok; else touch /tmp/started /tmp/ok; fi; "
    "trap 'exit 0' TERM; while true; do sleep 0.1; done"
)
SICK_CHECK = "test -f /tmp/ok || { echo no /tmp/ok; exit 1; }"
MS = 1_000_000  # nanoseconds


def fake_restartable() -> FakeRuntime:
    """The restart project as a FakeRuntime, as ``restart_project`` leaves it on the engine."""
    rt = FakeRuntime(project="shoprestart")
    rt.add("api", image="shop/api:1.0", health="healthy")
    rt.add("redis", image="shop/redis:7", state="exited", exit_code=1, logs=REDIS_LINES)
    rt.add("flaky", image="shop/worker:1.0", state="exited", exit_code=3, restarts=1)
    rt.add("sick", image="shop/worker:1.0", health="healthy")
    rt.add("stuck", image="shop/worker:1.0", health="starting")
    rt.after_restart["redis"] = AfterRestart(state="exited", exit_code=1, logs=REDIS_LINES)
    rt.after_restart["flaky"] = AfterRestart(state="exited", exit_code=3)
    rt.after_restart["sick"] = AfterRestart(health="unhealthy", check="exit 1: no /tmp/ok")
    rt.after_restart["stuck"] = AfterRestart(health="starting")
    return rt


@pytest.fixture(scope="module")
def restart_project(docker_engine, shop):
    """The restart project on the real engine (its own Compose project name); removed at the end."""
    c, project, port = docker_engine.client, f"{shop.project}restart", free_port()
    made = [
        run_service(
            c, project, "api", "shop/api:1.0", ["sh", "-c", API_SCRIPT], env={"PORT": str(port)},
            healthcheck={"test": ["CMD", "wget", "-q", "-O-", f"http://127.0.0.1:{port}/health"],
                         "interval": 500 * MS, "timeout": 2000 * MS, "retries": 3, "start_period": 0},
        ),
        run_service(c, project, "redis", "shop/redis:7", ["sh", "-c", REDIS_SCRIPT]),
        run_service(
            c, project, "flaky", "shop/worker:1.0", ["sh", "-c", "sleep 1; exit 3"],
            restart_policy={"Name": "on-failure", "MaximumRetryCount": 1},
        ),
        run_service(
            c, project, "sick", "shop/worker:1.0", ["sh", "-c", SICK_SCRIPT],
            healthcheck={"test": ["CMD", "sh", "-c", SICK_CHECK], "interval": 200 * MS, "timeout": 2000 * MS,
                         "retries": 2, "start_period": 0},
        ),
        run_service(
            c, project, "stuck", "shop/worker:1.0", ["sh", "-c", "exec sleep 100000"],
            healthcheck={"test": ["CMD", "true"], "interval": 3600 * 1000 * MS, "retries": 1},
        ),
    ]  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            attrs = {x.labels["com.docker.compose.service"]: c.api.inspect_container(x.id) for x in made}
            health = {name: (a["State"].get("Health") or {}).get("Status") for name, a in attrs.items()}
            if (
                health["api"] == health["sick"] == "healthy"
                and attrs["redis"]["State"]["Status"] == "exited"
                and attrs["flaky"]["State"]["Status"] == "exited"
                and attrs["flaky"]["RestartCount"] == 1
            ):
                break
            assert time.monotonic() < deadline, f"the restart project did not settle: {health}"
            time.sleep(0.1)
        yield project
    finally:
        for container in made:
            container.remove(force=True)


@pytest.fixture(params=RUNTIMES)
async def restartable(request):
    """A runtime on the restart project: a fresh fake, or a ComposeRuntime on the real one."""
    if request.param == "fake":
        rt = fake_restartable()
    else:
        shop, project = request.getfixturevalue("shop"), request.getfixturevalue("restart_project")
        rt = ComposeRuntime(shop.host, project)
    yield rt
    await rt.close()


async def _one(rt, service):
    (info,) = [i for i in await rt.containers() if i.service == service]
    return info


async def test_restart_gives_running_containers_started_later(restartable):
    rt = restartable
    before = await _one(rt, "api")
    assert before.state == "running" and before.health == "healthy"
    said: list[str] = []

    async def progress(line: str) -> None:
        said.append(line)

    after = await rt.restart("api", stop_timeout=1, progress=progress)  # busybox httpd as PID 1 ignores SIGTERM
    assert said == [f"restarting {before.name} (1 of 1)"]
    assert [i.id for i in after] == [before.id]
    (info,) = after
    assert info.state == "running" and info.exit_code is None and info.restarts == 0
    assert info.started_at is not None and before.started_at is not None and info.started_at > before.started_at
    assert info.health in ("starting", "healthy")  # the engine resets health at start: no check has run yet
    (ready,) = await rt.wait_running("api", timeout=30)
    assert ready.id == before.id and ready.state == "running" and ready.health == "healthy"
    assert ready.started_at == info.started_at  # started once


async def test_wait_running_returns_running_and_healthy(restartable):
    rt = restartable
    (api,) = await rt.wait_running("api", timeout=30)
    assert api.state == "running" and api.health == "healthy" and api.service == "api"
    # running is enough: waiting for a health that never comes would end in AdapterTimeout
    (stuck,) = await rt.wait_running("stuck", timeout=30, healthy=False)
    assert stuck.state == "running" and stuck.health == "starting"


async def test_restart_and_wait_of_an_unknown_service(restartable):
    rt = restartable
    with pytest.raises(NotFound, match="no container for service 'nosuch' in project"):
        await rt.restart("nosuch")
    with pytest.raises(NotFound, match="no container for service 'nosuch' in project"):
        await rt.wait_running("nosuch", timeout=5)
    for bad in (-1, float("nan")):
        with pytest.raises(AdapterError, match="stop timeout must be a number of seconds >= 0"):
            await rt.restart("api", stop_timeout=bad)


async def test_restarted_redis_exits_again_and_wait_running_says_why(restartable):
    rt = restartable
    before = await _one(rt, "redis")
    assert before.state == "exited" and before.exit_code == 1
    (info,) = await rt.restart("redis", stop_timeout=0)
    assert info.started_at is not None and before.started_at is not None and info.started_at > before.started_at
    assert info.state in ("running", "exited")  # it may already have exited again
    with pytest.raises(AdapterError) as caught:
        await rt.wait_running("redis", timeout=20)
    assert not isinstance(caught.value, AdapterTimeout)  # it failed fast, before its timeout
    first, *tail = str(caught.value).splitlines()
    assert first == f"service 'redis' did not come up: {before.name} exited with code 1; the last 4 lines of its log:"
    # both runs (docker keeps the log across restarts), stdout and stderr; the engine copies the two
    # streams apart, so lines written in the same instant to both may be logged in either order
    assert sorted(tail) == sorted(f"  {line}" for line in REDIS_LINES * 2)
    after = await _one(rt, "redis")
    assert after.state == "exited" and after.exit_code == 1 and after.started_at == info.started_at


async def test_a_manual_restart_resets_the_restart_count(restartable):
    rt = restartable
    before = await _one(rt, "flaky")
    assert before.state == "exited" and before.exit_code == 3 and before.restarts == 1  # the policy's one retry
    (after,) = await rt.restart("flaky")
    assert after.state == "running" and after.restarts == 0  # RestartCount counts the policy's restarts only


async def test_wait_running_fails_fast_when_a_container_becomes_unhealthy(restartable):
    rt = restartable
    (restarted,) = await rt.restart("sick", stop_timeout=0)
    assert restarted.state == "running" and restarted.health == "starting"  # not a failure: waited for
    with pytest.raises(AdapterError) as caught:
        await rt.wait_running("sick", timeout=30)
    assert not isinstance(caught.value, AdapterTimeout)  # it failed fast, before its timeout
    assert str(caught.value) == (
        f"service 'sick' did not come up: {restarted.name} is running, health unhealthy"
        " (last check: exit 1: no /tmp/ok)"
    )
    (running,) = await rt.wait_running("sick", timeout=5, healthy=False)
    assert running.health == "unhealthy"


async def test_wait_running_times_out_clearly_while_a_check_is_starting(restartable):
    rt = restartable
    (restarted,) = await rt.restart("stuck", stop_timeout=0)
    assert restarted.health == "starting"
    with pytest.raises(AdapterTimeout) as caught:  # (a backstop, should its timeout not hold)
        await asyncio.wait_for(rt.wait_running("stuck", timeout=1), 60)
    assert str(caught.value) == f"service 'stuck' was not ready within 1s: {restarted.name} is running, health starting"
