"""SwarmRuntime on a real one-node swarm: tasks, logs, exec, forced updates, image updates that Swarm
rolls back by itself, its own rollback, scaling, and engines that do not answer.

The stack (tests/helpers/swarm.py): ``<stack>_api`` (busybox httpd on the host network with a Docker
health check; stop-first updates) and ``<stack>_worker`` (2 tasks, no network; start-first updates).
Updates are watched 2 s per task (``monitor``), health checks run every 0.5 s.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import socket
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from adapters.docker.io import time_key
from adapters.docker.spool import LineSpool
from adapters.errors import AdapterError, AdapterTimeout, EngineUnavailable, NotFound
from adapters.fakes.swarm import FakeSwarmRuntime
from adapters.models import Replacement
from adapters.runtime import Runtime
from adapters.swarm.info import KEPT_REPLICAS, restarts, short_name, strip_digest, task_info, with_env
from adapters.swarm.runtime import NewestLines, SwarmRuntime
from tests.helpers.docker_engine import build_image
from tests.helpers.http_servers import free_port
from tests.helpers.swarm import build_broken_image, create_service, start_stack, swarm_engine  # noqa: F401

DIGEST = "@sha256:" + "a" * 64

# ---------------------------------------------------------------------- parsers (no engine)


def test_names_images_and_env():
    assert strip_digest("shop/api:1.1" + DIGEST) == "shop/api:1.1"
    assert strip_digest("reg:5000/shop/api:1.1" + DIGEST) == "reg:5000/shop/api:1.1"
    assert strip_digest("shop/api" + DIGEST) == "shop/api" + DIGEST  # the digest is all that names it
    assert strip_digest("shop/api:1.1") == "shop/api:1.1"
    assert short_name("shop_api", "shop") == "api" and short_name("other", "shop") == "other"
    assert short_name("shop_", "shop") == "shop_"
    env = ["A=1", "B=2", "C=x=y"]
    assert with_env(env, {"B": None, "C": "3", "D": "4"}) == ["A=1", "C=3", "D=4"]
    assert with_env(None, {"A": "1", "B": None}) == ["A=1"]


def _task(tid, slot, state, *, created, spec=None, desired="running", container=None, exit_code=0):
    status = {"State": state, "Timestamp": "2026-11-26T10:00:00Z", "ContainerStatus": {"ExitCode": exit_code}}
    if container:
        status["ContainerStatus"]["ContainerID"] = container
    spec = spec or {"ContainerSpec": {"Image": "shop/api:1.0" + DIGEST, "Env": ["PORT=1"]}}
    return {"ID": tid, "Slot": slot, "Status": status, "DesiredState": desired, "CreatedAt": created, "Spec": spec}


def test_tasks_as_containers():
    running = _task("t3", 1, "running", created="2026-11-26T10:00:03Z", container="c" * 64)
    info = task_info(running, service_name="shop_api", service="api", container=None, healthcheck=True)
    assert (info.name, info.id, info.number) == ("shop_api.1.t3", "c" * 12, 1)
    assert (info.state, info.health) == ("running", "healthy")
    assert (info.image, info.version, info.env, info.exit_code) == ("shop/api:1.0", "1.0", {"PORT": "1"}, None)
    starting = task_info(_task("t4", 2, "starting", created="x"), service_name="s", service="a", container=None,
                         healthcheck=False)  # fmt: skip
    assert (starting.state, starting.health, starting.id) == ("running", "starting", "t4")
    local = {"State": {"Health": {"Status": "unhealthy"}, "StartedAt": "2026-11-26T10:00:05Z"}}
    mine = task_info(running, service_name="s", service="a", container=local, healthcheck=True)
    assert mine.health == "unhealthy" and mine.started_at == datetime(2026, 11, 26, 10, 0, 5, tzinfo=UTC)
    # Swarm still says running, but the container on this node has stopped: the container wins
    stopped = {"State": {"Status": "exited", "ExitCode": 3, "StartedAt": "2026-11-26T10:00:05Z"}}
    crashed = task_info(running, service_name="s", service="a", container=stopped, healthcheck=False)
    assert (crashed.state, crashed.exit_code, crashed.health) == ("exited", 3, None)
    failed = task_info(_task("t1", 1, "failed", created="x", exit_code=137), service_name="s", service="a",
                       container=None, healthcheck=True)  # fmt: skip
    assert (failed.state, failed.exit_code, failed.health) == ("exited", 137, None)
    assert task_info(_task("t0", 1, "pending", created="x"), service_name="s", service="a", container=None,
                     healthcheck=False).state == "created"  # fmt: skip
    # restarts: the slot's earlier failed tasks with the same spec (another spec, another slot: not counted)
    history = [
        _task("t1", 1, "failed", created="2026-11-26T10:00:01Z", desired="shutdown"),
        _task("t2", 1, "rejected", created="2026-11-26T10:00:02Z", desired="shutdown"),
        _task("t0", 1, "failed", created="2026-11-26T10:00:00Z", desired="shutdown",
              spec={"ContainerSpec": {"Image": "shop/api:0.9"}}),
        _task("u1", 2, "failed", created="2026-11-26T10:00:01Z", desired="shutdown"),
        running,
    ]  # fmt: skip
    assert restarts(running, history) == 2


def test_newest_lines_keep_the_newest_by_time_bounded():
    reader = NewestLines(3, None, {"t1": "api.1: ", "t2": "api.2: "})
    detail = "com.docker.swarm.node.id=n,com.docker.swarm.service.id=s,com.docker.swarm.task.id="
    stamps = [f"2026-11-26T10:00:0{i}Z" for i in range(6)]
    lines = [(stamps[4], "t2", "e"), (stamps[0], "t1", "a"), (stamps[5], "t1", "f"), (stamps[2], "t2", "c")]
    payload = "".join(f"{s} {detail}{t} {text}\n" for s, t, text in lines).encode()
    reader.feed(1, payload[:50])
    reader.feed(1, payload[50:] + f"{stamps[3]} {detail}t1 d".encode())  # the last line has no newline
    assert reader.lines() == ["api.1: d", "api.2: e", "api.1: f"]
    grep = NewestLines(5, "B", {})
    grep.feed(2, f"{stamps[1]} {detail}t1 a b c\n{stamps[2]} {detail}t1 xyz\n{stamps[3]} plain b\n".encode())
    assert grep.lines() == ["a b c", "plain b"]
    assert len(reader.heap) <= 3


# ---------------------------------------------------------------------- the real swarm


@pytest.fixture(scope="module")
def stack(swarm_engine):  # noqa: F811
    """The test stack for this module, removed at its end."""
    made = start_stack(swarm_engine, free_port())
    try:
        yield made
    finally:
        made.remove()


@pytest.fixture
async def rt(stack):
    runtime = SwarmRuntime(stack.host, stack.name, timeout=10, update_timeout=90, monitor=2)
    yield runtime
    await runtime.close()


async def _services(rt):
    by: dict[str, list] = {}
    for info in await rt.containers():
        by.setdefault(info.service, []).append(info)
    return by


@pytest.mark.docker
async def test_tasks_replicas_and_counts(rt, stack):
    assert isinstance(rt, Runtime) and rt.description == f"Docker engine at {stack.host}"
    by = await _services(rt)
    assert sorted(by) == ["api", "worker"]
    [api] = by["api"]
    assert (api.state, api.health, api.number) == ("running", "healthy", 1)
    assert (api.image, api.version) == ("shop/api:1.0", "1.0")
    assert api.name.startswith(f"{stack.name}_api.1.") and api.started_at < datetime.now(UTC)
    assert api.env["PORT"] == str(stack.port) and api.exit_code is None and api.restarts == 0
    assert [w.number for w in by["worker"]] == [1, 2] and {w.health for w in by["worker"]} == {None}
    assert by["worker"][0].env["DB_PASSWORD"] == stack.secret
    assert await rt.replicas() == {"api": (1, 1), "worker": (2, 2)}
    assert await rt.replica_counts() == {"api": 1, "worker": 2}
    with_stats = await rt.containers(stats=True)
    assert all(i.memory_bytes and i.cpu_percent is not None for i in with_stats)
    assert await rt.wait_running("api", timeout=5) == [api]


@pytest.mark.docker
async def test_logs_of_the_service(rt, stack):
    deadline = time.monotonic() + 60
    while len(await rt.logs("worker", grep="TICK", lines=3)) < 3:  # the workers tick once a second
        assert time.monotonic() < deadline, "the workers did not tick three times"
        await asyncio.sleep(0.2)
    lines = await rt.logs("worker", lines=4)
    assert len(lines) == 4 and all(line.startswith(("worker.1: ", "worker.2: ")) for line in lines)
    errors = await rt.logs("worker", grep="error")
    assert sorted(errors) == ["worker.1: ERROR timeout talking to db", "worker.2: ERROR timeout talking to db"]
    with LineSpool(200) as spool:  # as the logs command reads: into a spool
        assert await rt.logs("worker", grep="error", spool=spool) == [] and list(spool.lines()) == errors
    ticks = await rt.logs("worker", grep="TICK", lines=3)
    assert len(ticks) == 3 and all(" tick " in f" {t} " for t in ticks)
    assert await rt.logs("worker", lines=0) == []
    # the whole log first, then its last 1.5 s: with `since` ignored the second is never shorter. Poll: a
    # fresh stack's lines may all be younger than 1.5 s, and a loaded machine may leave a window empty
    while True:
        whole = await rt.logs("worker", lines=10_000)
        recent = await rt.logs("worker", since=timedelta(seconds=1.5))
        if recent and len(recent) < len(whole):
            break
        assert time.monotonic() < deadline + 60, f"since=1.5s: {len(recent)} lines of {len(whole)} for a minute"
        await asyncio.sleep(0.2)
    assert await rt.logs("api") == []  # httpd writes nothing
    with pytest.raises(NotFound, match=f"service 'nosuch' is not in stack '{stack.name}'"):
        await rt.logs("nosuch")


#: 3000 lines of about 4 KB from each task, then nothing: far more than the 2 MiB a read in memory keeps
CHATTY_SCRIPT = (
    'pad=$(head -c 4000 /dev/zero | tr "\\0" x); i=0; '
    'while [ $i -lt 3000 ]; do echo "line $i $pad"; i=$((i+1)); done; exec sleep 100000'
)


def _engine_lines(client, service, short: str) -> list[str]:
    """What ``logs`` must give, read from the engine independently: every line of each of the service's task
    containers, ``<short>.<slot>: `` before it when the tasks span several slots, ordered by time."""
    tasks = [t for t in client.api.tasks(filters={"service": service.id}) if t["Status"].get("ContainerStatus")]
    several = len({t["Slot"] for t in tasks}) > 1
    found = []
    for task in tasks:
        raw = client.api.logs(task["Status"]["ContainerStatus"]["ContainerID"], timestamps=True)
        for line in raw.decode().split("\n"):
            if line:
                stamp, _, text = line.partition(" ")
                found.append((time_key(stamp), f"{short}.{task['Slot']}: " * several + text.rstrip("\r")))
    return [text for _, text in sorted(found)]


def _written(client, service, text: str) -> bool:
    """Whether each task of the service has written ``text`` as its last line (read from its container)."""
    tasks = client.api.tasks(filters={"service": service.id, "desired-state": "running"})
    ids = [t["Status"].get("ContainerStatus", {}).get("ContainerID") for t in tasks]
    return bool(ids) and all(cid and text.encode() in client.api.logs(cid, tail=1) for cid in ids)


async def spooled(rt, service: str, **kw) -> list[str]:
    """``rt.logs`` into a spool of ``lines`` (as the logs command reads): the lines it holds."""
    with LineSpool(kw.get("lines", 200)) as spool:
        assert await rt.logs(service, spool=spool, **kw) == []
        return list(spool.lines())


@pytest.mark.docker
async def test_logs_of_long_lines_into_a_spool_are_every_newest_line(rt, stack, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the spools are made: none must be left
    client = stack.engine.client
    chatty = create_service(client, stack.name, "chatty", "shop/worker:1.0", ["sh", "-c", CHATTY_SCRIPT], replicas=2)
    stack.services["chatty"] = chatty
    try:
        await rt.wait_running("chatty", timeout=60)
        deadline = time.monotonic() + 120
        while not _written(client, chatty, "line 2999 "):
            assert time.monotonic() < deadline, "the two chatty tasks did not write their 3000 lines"
            await asyncio.sleep(0.5)
        expected = _engine_lines(client, chatty, "chatty")
        assert len(expected) == 6000 and {line[:10] for line in expected} == {"chatty.1: ", "chatty.2: "}
        got = await spooled(rt, "chatty", lines=2500)
        assert got == expected[-2500:]  # every one of the newest 2500 (10 MB), in time order
        # without a spool: the newest of them within 2 MiB (the service's own log endpoint never ended here)
        kept = await rt.logs("chatty", lines=2500)
        assert 400 < len(kept) < 2500 and kept == expected[-len(kept):] and sum(map(len, kept)) <= 2 * 2**20
        # grep: the whole log streamed through, the newest 550 of the 600 matches kept (numbers ending in 7)
        matches = [line for line in expected if "7 x" in line.partition(": ")[2]]
        assert len(matches) == 600 and await spooled(rt, "chatty", lines=550, grep="7 X") == matches[-550:]
        assert await spooled(rt, "chatty", lines=0) == [] and await spooled(rt, "chatty", grep="nothing like it") == []
    finally:
        chatty.remove()
        del stack.services["chatty"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.docker
async def test_logs_of_one_slot_and_its_earlier_tasks_into_a_spool(rt, stack, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    client = stack.engine.client
    script = "echo started $(hostname); echo ready; exec sleep 100000"  # with a TTY: lines end in \r\n
    solo = create_service(client, stack.name, "solo", "shop/worker:1.0", ["sh", "-c", script], tty=True)
    stack.services["solo"] = solo
    try:
        [first] = await rt.wait_running("solo", timeout=60)
        deadline = time.monotonic() + 60
        while await rt.logs("solo") != [f"started {first.id}", "ready"]:  # (one task: read into the spool itself)
            assert time.monotonic() < deadline, await rt.logs("solo")
            await asyncio.sleep(0.2)
        assert await spooled(rt, "solo") == [f"started {first.id}", "ready"]
        await rt.restart("solo", stop_timeout=1)  # a second task in the same slot; the first keeps its log
        [second] = await rt.wait_running("solo", timeout=60)
        want = [f"started {first.id}", "ready", f"started {second.id}", "ready"]
        while await rt.logs("solo") != want:
            assert time.monotonic() < deadline + 60, await rt.logs("solo")
            await asyncio.sleep(0.2)
        assert _engine_lines(client, solo, "solo") == want  # one slot: no prefix
        for kw in ({}, {"lines": 3}, {"grep": "STARTED"}, {"since": timedelta(hours=1)}, {"lines": 1, "grep": "ready"}):
            assert await spooled(rt, "solo", **kw) == await rt.logs("solo", **kw), kw
        assert await spooled(rt, "solo", lines=3) == want[-3:]
    finally:
        solo.remove()
        del stack.services["solo"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.docker
async def test_exec_and_disk_in_a_task(rt, stack):
    result = await rt.exec("api", ["cat", "/www/health/db"])
    assert (result.exit_code, result.output.strip()) == (0, '{"status": "ok"}')
    assert (await rt.exec(f"{stack.name}_api", ["sh", "-c", "echo $PLAIN; exit 3"])).model_dump() == {
        "exit_code": 3, "output": "visible\n", "truncated": False}  # fmt: skip
    missing = await rt.exec("worker", ["no-such-binary"])
    assert missing.exit_code == 126 and "executable file not found" in missing.output
    with pytest.raises(AdapterError, match="argv"):
        await rt.exec("api", "cat /etc/passwd")
    with pytest.raises(AdapterTimeout, match=r"sleep in service .api. did not finish within 0\.5s"):
        await rt.exec("api", ["sleep", "3"], timeout=0.5)
    disk = await rt.disk("api")
    assert disk.service == "api" and disk.container.startswith(f"{stack.name}_api.1.") and disk.size_bytes > 0


@pytest.mark.docker
async def test_exec_stream_in_a_task_both_ways(rt, stack):
    # what a backup's dump (stdout out) and a restore (stdin in) run in the database service's task
    data = secrets.token_bytes(2 * 2**20)
    async with rt.exec_stream("worker", ["sha256sum"], stdin=True) as proc:
        for i in range(0, len(data), 100_000):
            await proc.write(data[i : i + 100_000])
        await proc.close_stdin()
        out = b""
        while chunk := await proc.read():
            out += chunk
        assert await proc.wait() == 0
    assert out.decode().split()[0] == hashlib.sha256(data).hexdigest()
    async with rt.exec_stream("worker", ["sh", "-c", "echo $DB_PASSWORD; echo bad >&2; exit 4"]) as proc:
        assert await proc.read() == f"{stack.secret}\n".encode()  # the task's own environment
        assert await proc.wait() == 4 and proc.stderr().strip() == "bad"
    with pytest.raises(AdapterError, match="argv"):
        async with rt.exec_stream("worker", "cat /etc/passwd"):
            pass


@pytest.mark.docker
async def test_image_available_and_oneoff(rt, stack):
    assert await rt.image_available("shop/api:1.0")
    assert not await rt.image_available(f"127.0.0.1:{free_port()}/shop/api:9.9")  # a registry nobody serves
    ran = await rt.run_oneoff("api", "shop/api:1.0", ["sh", "-c", "echo $PLAIN $PORT; echo oops >&2; exit 3"])
    # stdout and stderr are separate streams: their order across the two is not kept
    assert ran.exit_code == 3 and sorted(ran.output.splitlines()) == ["oops", f"visible {stack.port}"]
    nobin = await rt.run_oneoff("worker", "shop/worker:1.0", ["nosuch"])
    assert nobin.exit_code == 127 and "executable file not found" in nobin.output
    left = stack.engine.client.containers.list(all=True, filters={"label": "io.opsbot.oneoff=True"})
    assert left == []
    with pytest.raises(NotFound, match=r"image shop/api:0\.0 is not on the"):
        await rt.run_oneoff("api", "shop/api:0.0", ["true"])


@pytest.mark.docker
async def test_restart_replaces_every_task(rt, stack):
    before = {w.name for w in (await _services(rt))["worker"]}
    said: list[str] = []

    async def progress(line):
        said.append(line)

    after = await rt.restart("worker", stop_timeout=1, progress=progress)
    assert said == [f"restarting {stack.name}_worker (a forced update): 2 tasks, one at a time, start-first"]
    assert len(after) == 2 and not {a.name for a in after} & before and {a.state for a in after} == {"running"}
    old = [t for t in stack.services["worker"].tasks() if f"{stack.name}_worker.{t['Slot']}.{t['ID']}" in before]
    assert {t["DesiredState"] for t in old} == {"shutdown"}  # the old tasks are shut down


@pytest.mark.docker
async def test_update_image_then_its_own_rollback(rt, stack):
    build_image(stack.engine.client, "shop/api", "1.1")
    await rt.update_image("api", "shop/api:1.1")
    [api] = await rt.wait_running("api", timeout=20)
    assert (api.image, api.version, api.health) == ("shop/api:1.1", "1.1", "healthy")
    assert (await rt.exec("api", ["wget", "-q", "-O-", f"http://127.0.0.1:{stack.port}/health"])).exit_code == 0
    assert await rt.rollback("api") == "shop/api:1.0"
    [api] = await rt.wait_running("api", timeout=20)
    assert api.image == "shop/api:1.0"


@pytest.mark.docker
async def test_a_release_that_fails_its_health_check_is_rolled_back_by_swarm(rt, stack):
    broken = build_broken_image(stack.engine.client, "shop/api", "1.2-broken")
    said: list[str] = []

    async def progress(line):
        said.append(line)

    with pytest.raises(AdapterError) as info:
        await rt.update_image("api", broken, progress=progress)
    text = str(info.value)
    assert text.startswith(f"the update of service 'api' to {broken} failed and Swarm rolled it back by itself: task ")
    assert "unhealthy container" in text and "last health check: exit 1" in text
    assert text.endswith("service 'api' runs shop/api:1.0 again") and "\n" not in text
    # the rollback is told whether or not a look caught it running ("update rolled back due to ...")
    assert said[0].endswith("1 task, one at a time, stop-first") and "rolled" in said[-1] and len(said) == 2
    [api] = await rt.wait_running("api", timeout=20)
    assert api.image == "shop/api:1.0" and api.health == "healthy"
    with pytest.raises(AdapterError, match="service 'api' has no previous version to roll back to"):
        await rt.rollback("api")  # Swarm keeps no previous spec after a rollback


@pytest.mark.docker
async def test_replace_with_env_then_revert(rt):
    record = await rt.replace("worker", "shop/worker:1.0", env={"FEATURE_CHECKOUT": "off", "PLAIN": None})
    assert record == Replacement(service="worker", image_before="shop/worker:1.0", image_after="shop/worker:1.0")
    workers = await rt.wait_running("worker", timeout=20)
    assert len(workers) == 2 and all(w.env.get("FEATURE_CHECKOUT") == "off" and "PLAIN" not in w.env for w in workers)
    await rt.revert(record)
    await rt.commit(record)
    workers = await rt.wait_running("worker", timeout=20)
    assert len(workers) == 2 and all(w.env["FEATURE_CHECKOUT"] == "on" and w.env["PLAIN"] == "visible" for w in workers)


@pytest.mark.docker
async def test_scale_to_zero_and_back_and_stop_start(rt, stack):
    counts = await rt.replica_counts()
    await rt.scale("worker", 0)
    assert "worker" not in await _services(rt) and (await rt.replicas())["worker"] == (0, 0)
    assert not [c for c in stack.engine.client.containers.list() if ".worker." in c.name or "_worker." in c.name]
    with pytest.raises(NotFound, match=r"'worker' of stack .* is scaled to 0"):
        await rt.wait_running("worker", timeout=1)
    await rt.scale("worker", counts["worker"])
    assert len(await rt.wait_running("worker", timeout=20)) == 2
    assert await rt.stop("worker", timeout=1) == []
    labels = stack.engine.client.api.inspect_service(f"{stack.name}_worker")["Spec"]["Labels"]
    assert labels[KEPT_REPLICAS] == "2" and (await rt.replica_counts())["worker"] == 0
    assert await rt.stop("worker") == []  # already stopped: left as it is, the count still remembered
    await rt.start("worker")
    assert len(await rt.wait_running("worker", timeout=20)) == 2
    assert KEPT_REPLICAS not in stack.engine.client.api.inspect_service(f"{stack.name}_worker")["Spec"]["Labels"]
    for bad in (-1, 1.5, True):
        with pytest.raises(AdapterError, match="replicas must be a whole number"):
            await rt.scale("worker", bad)


@pytest.mark.docker
async def test_a_crashing_service_fails_the_wait_with_its_log(rt, stack):
    crasher = create_service(stack.engine.client, stack.name, "crasher", "shop/worker:1.0",
                             ["sh", "-c", "echo starting; echo cannot connect >&2; exit 3"])  # fmt: skip
    stack.services["crasher"] = crasher
    try:
        with pytest.raises(AdapterError) as info:  # it fails fast: the wait allows 600 s, the backstop 120
            await asyncio.wait_for(rt.wait_running("crasher", timeout=600), 120)
        assert not isinstance(info.value, AdapterTimeout)
        text = str(info.value)
        assert text.startswith("service 'crasher' did not come up: its tasks failed ")
        assert "task: non-zero exit (3)" in text
        # stdout and stderr are logged by separate copiers: their order within a millisecond is not kept
        tail = text.partition("; the last 2 lines of its log:\n")[2]
        assert sorted(tail.splitlines()) == ["  cannot connect", "  starting"]
    finally:
        crasher.remove()
        del stack.services["crasher"]


# ---------------------------------------------------------------------- engines that do not answer


async def test_an_engine_that_is_not_there_is_one_clear_line(tmp_path):
    path = tmp_path / "d.sock"
    # a timeout far beyond the backstop: a call that waited for it (instead of failing at once) fails the test
    rt = SwarmRuntime(f"unix://{path}", "shop", timeout=600)
    calls = (rt.containers(), rt.replicas(), rt.replica_counts(), rt.logs("api"), rt.exec("api", ["true"]),
             rt.disk("api"), rt.restart("api"), rt.wait_running("api", timeout=600), rt.update_image("api", "a:1"),
             rt.rollback("api"), rt.scale("api", 0), rt.stop("api"), rt.start("api"))  # fmt: skip
    for call in calls:
        with pytest.raises(EngineUnavailable) as info:
            await asyncio.wait_for(call, 60)
        assert str(info.value) == f"Docker engine at unix://{path} does not answer (no such socket)"
    await rt.close()


async def test_an_engine_that_never_answers_times_out(tmp_path):
    path = str(tmp_path / "silent.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    rt = SwarmRuntime(f"unix://{path}", "shop", timeout=0.5)
    try:
        for call in (rt.containers(), rt.update_image("api", "a:1"), rt.wait_running("api", timeout=5)):
            with pytest.raises(AdapterTimeout) as info:  # (a backstop, should its timeout not hold)
                await asyncio.wait_for(call, 60)
            assert str(info.value) == f"Docker engine at unix://{path} did not answer within 0.5s (listing services)"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()
        await rt.close()


# ---------------------------------------------------------------------- the fake's Swarm answers, held to Swarm's


async def _swarm_steps(rt, settle) -> list[tuple]:
    """replace, revert, stop and start the service ``contract``; (replicas, replica count, previous image)
    after each, once ``settle(rt)`` says the tasks are where they are going."""
    seen = []

    async def look() -> None:
        await settle(rt)
        replicas, counts, previous = await rt.replicas(), await rt.replica_counts(), await rt.previous_images()
        seen.append((replicas["contract"], counts["contract"], previous.get("contract")))

    await look()
    record = await rt.replace("contract", "shop/worker:1.1")
    await look()
    await rt.revert(record)
    await rt.commit(record)
    await look()
    await rt.stop("contract")
    await look()
    await rt.start("contract")
    await look()
    return seen


@pytest.mark.docker
async def test_the_fake_counts_replicas_and_previous_images_as_swarm_does(rt, stack):
    client = stack.engine.client
    build_image(client, "shop/worker", "1.1")
    service = create_service(client, stack.name, "contract", "shop/worker:1.0", ["sh", "-c", "sleep 100000"],
                             replicas=2)  # fmt: skip
    stack.services["contract"] = service

    async def settled(runtime) -> None:  # every task wanted runs, and no other
        deadline = time.monotonic() + 90
        while True:
            desired, running = (await runtime.replicas())["contract"]
            tasks = [i for i in await runtime.containers() if i.service == "contract" and i.state == "running"]
            if running == desired == len(tasks):
                return
            assert time.monotonic() < deadline, (desired, running, tasks)
            await asyncio.sleep(0.2)

    try:
        real = await _swarm_steps(rt, settled)
    finally:
        service.remove()
        del stack.services["contract"]
    fake = FakeSwarmRuntime()
    for number in (1, 2):
        fake.add("contract", image="shop/worker:1.0", number=number)
    fake.images.add("shop/worker:1.1")

    async def nothing_to_wait_for(runtime) -> None:
        return None

    assert await _swarm_steps(fake, nothing_to_wait_for) == real
    assert real == [
        ((2, 2), 2, None),
        ((2, 2), 2, "shop/worker:1.0"),
        ((2, 2), 2, None),
        ((0, 0), 0, "shop/worker:1.0"),  # scaling is an update too: the spec before it is the previous one
        ((2, 2), 2, "shop/worker:1.0"),
    ]
