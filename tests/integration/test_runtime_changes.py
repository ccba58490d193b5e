"""Changes through a Runtime -- images, one-offs, replace / revert / commit, stop / start -- fake and real.

The first part runs the same assertions against FakeRuntime and against ComposeRuntime on the
session's engine (the fake cannot drift). Every test has a fresh Compose project of its own (never
the shared ``shop``, which other tests read). The second part is what only the engine can show: the
configuration kept field by field, the engine's events, the stop grace, registries that do not answer.
Images are made on the engine (``build_image`` and ``docker commit``): nothing is ever pulled from
Docker Hub -- a missing image is named on a loopback registry nobody serves.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import docker
import pytest

from adapters.compose.runtime import ComposeRuntime
from adapters.errors import AdapterError, AdapterTimeout, EngineUnavailable, NotFound
from adapters.fakes import AfterRestart, FakeRuntime
from adapters.models import ExecResult, Replacement
from adapters.runtime import Runtime
from tests.helpers.contract import signature_mismatches
from tests.helpers.docker_engine import build_image
from tests.helpers.http_servers import free_port

RUNTIMES = ["fake", pytest.param("docker", marks=pytest.mark.docker)]
MS = 1_000_000  # nanoseconds
#: a service that says "up" once its TERM trap is set and exits 0 at once on TERM
UP = "trap 'echo bye; exit 0' TERM INT; echo up; while true; do sleep 1 & wait $!; done"
HEALTH = {"Test": ["CMD", "true"], "Interval": 200 * MS, "Timeout": 2000 * MS, "Retries": 2}
MIGRATE = ["sh", "-c", "echo migrating $MODE; echo careful >&2"]
FAILING = ["sh", "-c", "echo 'relation users already exists' >&2; exit 3"]
V10, V11 = "shop/api:1.0", "shop/api:1.1"
EXITS, NOBIN = "shop/api:exits", "shop/api:nobin"
#: what the engine says when it cannot start a container of NOBIN
NOBIN_TEXT = (
    "failed to create task for container: failed to create shim task: OCI runtime create failed: runc create "
    'failed: unable to start container process: exec: "nosuch": executable file not found in $PATH: unknown'
)


def image_with(client: docker.DockerClient, ref: str, *changes: str) -> str:
    """``ref`` as the busybox image with Dockerfile-style ``changes`` (ENV, LABEL, ENTRYPOINT...), made once."""
    try:
        client.api.inspect_image(ref)
        return ref
    except docker.errors.ImageNotFound:
        pass
    base = build_image(client, "opsbot-test/busybox", "base")
    cid = client.api.create_container(base, ["true"])["Id"]
    repo, tag = ref.rsplit(":", 1)
    client.api.commit(cid, repository=repo, tag=tag, changes=list(changes))
    client.api.remove_container(cid)
    return ref


def make(client, project: str, service: str, image: str, command: list[str], *, number: int = 1,
         env: dict[str, str] | None = None, labels: dict[str, str] | None = None, health: dict | None = HEALTH,
         stop_timeout: int | None = 2, host: dict[str, Any] | None = None, start: bool = True,
         **config: Any) -> str:  # fmt: skip
    """A container as Compose leaves it (Compose's labels, named project-service-N), by the low-level API."""
    all_labels = {
        "com.docker.compose.project": project,
        "com.docker.compose.service": service,
        "com.docker.compose.container-number": str(number),
        "com.docker.compose.oneoff": "False",
        **(labels or {}),
    }
    host_config = client.api.create_host_config(**{"network_mode": "host", **(host or {})})
    cid = client.api.create_container(
        image, command, name=f"{project}-{service}-{number}", labels=all_labels, environment=env or {},
        host_config=host_config, healthcheck=health, stop_timeout=stop_timeout, **config,
    )["Id"]  # fmt: skip
    if start:
        client.api.start(cid)
    return cid


def wait_for_ups(client, cid: str, count: int = 1, timeout: float = 20) -> None:
    """Wait until the container said "up" ``count`` times (its trap is set)."""
    deadline = time.monotonic() + timeout
    while client.api.logs(cid).count(b"up\n") < count:
        assert time.monotonic() < deadline, f"{cid[:12]} did not say up {count} times"
        time.sleep(0.05)


def leftovers(client, project: str) -> list[str]:
    """Names of the project's containers a change may leave behind: kept old ones and one-offs."""
    found = client.containers.list(all=True, filters={"label": f"com.docker.compose.project={project}"})
    return sorted(c.name for c in found if "-opsbot-old-" in c.name or "-run-" in c.name)


def remove_project(client, project: str) -> None:
    for c in client.containers.list(all=True, filters={"label": f"com.docker.compose.project={project}"}):
        c.remove(force=True)


@dataclass
class Subject:
    """The runtime under test, its project, and a look behind it (does a container id still exist?)."""

    rt: Any
    project: str
    client: Any = None

    async def exists(self, cid: str) -> bool:
        if self.client is None:
            return any(c.id == cid for c in self.rt.items) or cid in self.rt.kept
        try:
            await asyncio.to_thread(self.client.api.inspect_container, cid)
        except docker.errors.NotFound:
            return False
        return True

    def leftovers(self) -> list[str]:
        if self.client is None:
            return sorted(kept.name for kept, _ in self.rt.kept.values())
        return leftovers(self.client, self.project)


def fake_project() -> FakeRuntime:
    """The changes project as a FakeRuntime, as ``real_project`` leaves it on the engine."""
    rt = FakeRuntime(project="shopchanges")
    for number in (1, 2):
        rt.add("api", number=number, image=V10, health="healthy", env={"MODE": "blue", "FEATURE_X": "on"})
    rt.add("cron", image=V10, state="exited", exit_code=0)
    rt.images |= {V11, EXITS, NOBIN}
    rt.after_replace[EXITS] = AfterRestart(state="exited", exit_code=3, logs=("broken build",))
    rt.unstartable[NOBIN] = NOBIN_TEXT
    rt.oneoff_results[("api", *MIGRATE)] = ExecResult(exit_code=0, output="migrating blue\ncareful\n")
    rt.oneoff_results[("api", *FAILING)] = ExecResult(exit_code=3, output="relation users already exists\n")
    return rt


def real_project(client, project: str) -> dict[str, list[str]]:
    """api (two containers, healthy, MODE and FEATURE_X) and cron (exited 0) on the engine; service -> ids."""
    for ref in (V10, V11):
        build_image(client, *ref.split(":"))
    image_with(client, EXITS, 'ENTRYPOINT ["sh", "-c", "echo broken build; exit 3"]')
    image_with(client, NOBIN, 'ENTRYPOINT ["nosuch"]')
    env = {"MODE": "blue", "FEATURE_X": "on"}
    api = [make(client, project, "api", V10, ["sh", "-c", UP], number=n, env=env) for n in (1, 2)]
    cron = make(client, project, "cron", V10, ["sh", "-c", "echo done"], health=None)
    for cid in api:
        wait_for_ups(client, cid)
    deadline = time.monotonic() + 30
    while True:
        states = [client.api.inspect_container(cid)["State"] for cid in [*api, cron]]
        if [(s.get("Health") or {}).get("Status") for s in states[:2]] == ["healthy"] * 2 and not states[2]["Running"]:
            return {"api": api, "cron": [cron]}
        assert time.monotonic() < deadline, f"the changes project did not settle: {states}"
        time.sleep(0.1)


@pytest.fixture(params=RUNTIMES)
async def subject(request):
    """A fresh changes project: a FakeRuntime, or a ComposeRuntime on a new project of the real engine."""
    if request.param == "fake":
        yield Subject(fake_project(), "shopchanges")
        return
    shop, engine = request.getfixturevalue("shop"), request.getfixturevalue("docker_engine")
    project = f"{shop.project}ch{secrets.token_hex(2)}"
    try:
        await asyncio.to_thread(real_project, engine.client, project)
        rt = ComposeRuntime(shop.host, project)
        yield Subject(rt, project, engine.client)
        await rt.close()
    finally:
        await asyncio.to_thread(remove_project, engine.client, project)


def started_later(after, before) -> bool:
    """Each container of ``after`` started after its counterpart in ``before``."""
    pairs = zip(after, before, strict=True)
    return all(a.started_at and b.started_at and a.started_at > b.started_at for a, b in pairs)


async def _service(rt, service: str):
    return [i for i in await rt.containers() if i.service == service]


# ---------------------------------------------------------------------- contract: fake and real


async def test_both_have_the_change_operations(subject):
    assert isinstance(subject.rt, Runtime)
    # the same parameters (names, kinds, defaults) as the Protocol: a call that works on one works on both
    assert signature_mismatches(subject.rt, Runtime) == []


async def test_image_available(subject):
    rt = subject.rt
    assert await rt.image_available(V10) and await rt.image_available(V11)
    # a registry nobody serves: not available, at once (a backstop well below the pull timeout of 300 s)
    assert not await asyncio.wait_for(rt.image_available(f"127.0.0.1:{free_port()}/shop/api:9.9"), 60)
    for bad in ("shop/api:1.0; rm -rf /", "", " shop/api", "shop/api:1.0\n"):
        with pytest.raises(AdapterError, match="is not an image reference"):
            await rt.image_available(bad)


async def test_replace_then_commit(subject):
    rt = subject.rt
    before = await _service(rt, "api")
    assert [(i.version, i.state) for i in before] == [("1.0", "running")] * 2
    said: list[str] = []

    async def progress(line: str) -> None:
        said.append(line)

    record = await rt.replace("api", V11, progress=progress)
    names = [i.name for i in before]
    assert said == [f"replacing {names[0]} (1 of 2)", f"replacing {names[1]} (2 of 2)"]
    assert isinstance(record, Replacement) and record.service == "api"
    assert record.image_before == V10 and record.image_after == V11
    assert [c.name for c in record.containers] == names and all(c.was_running for c in record.containers)
    assert [c.old_id[:12] for c in record.containers] == [i.id for i in before]
    assert [c.kept_as for c in record.containers] == [f"{i.name}-opsbot-old-{i.id}" for i in before]
    after = await _service(rt, "api")  # the kept old ones are not listed
    assert [i.name for i in after] == names and [i.version for i in after] == ["1.1", "1.1"]
    assert [i.id for i in after] == [n[:12] for n in record.new_ids]
    assert not {i.id for i in after} & {i.id for i in before}
    assert all(i.state == "running" and i.env == {"MODE": "blue", "FEATURE_X": "on"} for i in after)
    ready = await rt.wait_running("api", timeout=30)
    assert [(i.state, i.health, i.image) for i in ready] == [("running", "healthy", V11)] * 2
    assert sorted(subject.leftovers()) == sorted(c.kept_as for c in record.containers)
    assert all([await subject.exists(cid) for cid in record.old_ids])
    await rt.commit(record)
    assert not any([await subject.exists(cid) for cid in record.old_ids])
    assert all([await subject.exists(cid) for cid in record.new_ids])
    assert subject.leftovers() == []
    assert [i.version for i in await _service(rt, "api")] == ["1.1", "1.1"]
    await rt.commit(record)  # twice: nothing left to remove, no error


async def test_revert_puts_the_old_version_back(subject):
    rt = subject.rt
    before = await _service(rt, "api")
    record = await rt.replace("api", V11)
    await rt.revert(record)
    after = await _service(rt, "api")
    assert [(i.id, i.name, i.image, i.state) for i in after] == [(i.id, i.name, V10, "running") for i in before]
    assert started_later(after, before)
    assert not any([await subject.exists(cid) for cid in record.new_ids]) and subject.leftovers() == []
    assert [i.health for i in await rt.wait_running("api", timeout=30)] == ["healthy"] * 2


async def test_commit_after_revert_and_revert_after_commit_change_nothing(subject):
    rt = subject.rt
    before = await _service(rt, "api")
    record = await rt.replace("api", V11)
    await rt.revert(record)
    await rt.revert(record)  # twice: already put back
    await rt.commit(record)  # the old containers are the service again: kept, not removed
    assert [(i.id, i.image) for i in await rt.wait_running("api", timeout=30)] == [(i.id, V10) for i in before]
    record = await rt.replace("api", V11)
    await rt.commit(record)
    with pytest.raises(AdapterError) as caught:
        await rt.revert(record)
    one, two = record.containers
    assert str(caught.value) == (
        f"putting back service 'api' failed: {two.name}: its old container {two.kept_as} is gone (was the "
        f"replacement committed?); the new one was left as it is; {one.name}: its old container {one.kept_as} is "
        "gone (was the replacement committed?); the new one was left as it is"
    )
    running = await rt.wait_running("api", timeout=30)
    assert [(i.id, i.image) for i in running] == [(n[:12], V11) for n in record.new_ids]


async def test_a_stopped_container_is_replaced_by_a_running_one_and_reverted_to_stopped(subject):
    rt = subject.rt
    (before,) = await _service(rt, "cron")
    assert before.state == "exited"
    record = await rt.replace("cron", V11)
    assert [c.was_running for c in record.containers] == [False]
    (new,) = await _service(rt, "cron")
    assert new.image == V11 and new.started_at is not None  # started: the real one echoes and exits at once
    await rt.revert(record)
    (back,) = await _service(rt, "cron")
    assert (back.id, back.state, back.image, back.started_at) == (before.id, "exited", V10, before.started_at)


async def test_env_changes_set_and_remove_variables(subject):
    rt = subject.rt
    record = await rt.replace("api", V10, env={"FEATURE_X": "off", "FEATURE_NEW": "on"})
    assert record.image_before == record.image_after == V10
    assert [i.env for i in await _service(rt, "api")] == [{"MODE": "blue", "FEATURE_X": "off", "FEATURE_NEW": "on"}] * 2
    await rt.commit(record)
    await rt.commit(await rt.replace("api", V10, env={"FEATURE_NEW": None, "NOT_THERE": None}))
    assert [i.env for i in await _service(rt, "api")] == [{"MODE": "blue", "FEATURE_X": "off"}] * 2
    for bad in ({"BAD-NAME": "1"}, {"1X": "1"}, {"X": 1}, {"X": "a\x00b"}):
        with pytest.raises(AdapterError, match=r"environment variable name|must be a string"):
            await rt.replace("api", V10, env=bad)


async def test_a_new_version_that_exits_is_reverted(subject):
    rt = subject.rt
    before = await _service(rt, "api")
    record = await rt.replace("api", EXITS)  # the engine starts it; it exits right after
    with pytest.raises(AdapterError) as caught:
        await rt.wait_running("api", timeout=20)
    assert not isinstance(caught.value, AdapterTimeout)
    first, *tail = str(caught.value).splitlines()
    assert first.startswith(f"service 'api' did not come up: {before[0].name} exited with code 3")
    assert "  broken build" in tail
    await rt.revert(record)
    ready = await rt.wait_running("api", timeout=30)
    assert [(i.id, i.image, i.health) for i in ready] == [(i.id, V10, "healthy") for i in before]
    assert subject.leftovers() == []


async def test_a_replace_that_fails_midway_puts_back_what_it_replaced(subject):
    rt = subject.rt
    before = await _service(rt, "api")
    with pytest.raises(AdapterError) as caught:  # the engine refuses to start the first new container
        await rt.replace("api", NOBIN)
    name = before[0].name
    text = str(caught.value)
    assert text.startswith(f"replacing {name} of service 'api' with {NOBIN} failed: {rt.description} refused")
    assert "executable file not found" in text and text.endswith("; the containers replaced before were put back")
    calls = 0

    async def progress(line: str) -> None:  # fails before the second container: the first was replaced
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("slack is down")

    with pytest.raises(RuntimeError, match="slack is down"):
        await rt.replace("api", V11, progress=progress)
    after = await rt.wait_running("api", timeout=30)
    assert [(i.id, i.name, i.image, i.state) for i in after] == [(i.id, i.name, V10, "running") for i in before]
    assert subject.leftovers() == []


async def test_replace_refuses_before_changing_anything(subject):
    rt = subject.rt
    before = await _service(rt, "api")
    missing = f"127.0.0.1:{free_port()}/shop/api:9.9"
    with pytest.raises(NotFound) as caught:
        await rt.replace("api", missing)
    assert str(caught.value) == f"image {missing} is not on the {rt.description}: nothing was changed"
    with pytest.raises(NotFound, match="no container for service 'nosuch' in project"):
        await rt.replace("nosuch", V11)
    with pytest.raises(AdapterError, match="is not an image reference"):
        await rt.replace("api", "shop/api:$(reboot)")
    after = await _service(rt, "api")
    assert [(i.id, i.image, i.state, i.started_at) for i in after] == [
        (i.id, i.image, i.state, i.started_at) for i in before
    ]


async def test_run_oneoff(subject):
    rt = subject.rt
    before = await rt.containers()
    ok = await rt.run_oneoff("api", V11, MIGRATE, timeout=30)
    assert ok.exit_code == 0 and not ok.truncated
    assert sorted(ok.output.splitlines()) == ["careful", "migrating blue"]  # the service's environment
    failed = await rt.run_oneoff("api", V11, FAILING, timeout=30)
    assert (failed.exit_code, failed.output) == (3, "relation users already exists\n")
    missing = await rt.run_oneoff("api", V11, ["nosuch", "--now"])
    assert missing.exit_code == 127 and 'exec: "nosuch": executable file not found' in missing.output
    assert [i.id for i in await rt.containers()] == [i.id for i in before]  # nothing listed, nothing left
    assert subject.leftovers() == []
    with pytest.raises(NotFound, match="no container for service 'nosuch'"):
        await rt.run_oneoff("nosuch", V11, ["true"])
    with pytest.raises(NotFound, match="is not on the"):
        await rt.run_oneoff("api", f"127.0.0.1:{free_port()}/x:1", ["true"])
    for bad in ("migrate --all", [], ["ls", 3]):
        with pytest.raises(AdapterError, match="argv"):
            await rt.run_oneoff("api", V11, bad)


async def test_stop_and_start(subject):
    rt = subject.rt
    before = await _service(rt, "api")
    stopped = await rt.stop("api", timeout=5)
    assert [(i.id, i.state, i.exit_code) for i in stopped] == [(i.id, "exited", 0) for i in before]
    assert [(i.state, i.exit_code) for i in await rt.stop("api")] == [("exited", 0)] * 2  # already stopped
    started = await rt.start("api")
    assert [i.state for i in started] == ["running"] * 2
    assert started_later(started, before)
    again = await rt.start("api")  # already running: left alone
    assert [i.started_at for i in again] == [i.started_at for i in started]
    assert [i.health for i in await rt.wait_running("api", timeout=30)] == ["healthy"] * 2
    for call in (rt.stop("nosuch"), rt.start("nosuch")):
        with pytest.raises(NotFound, match="no container for service 'nosuch'"):
            await call
    with pytest.raises(AdapterError, match="stop timeout must be a number of seconds >= 0"):
        await rt.stop("api", timeout=-1)


async def test_fake_registry_and_records():
    rt = fake_project()
    rt.registry.add("reg.example/shop/api:2.0")
    assert await rt.image_available("reg.example/shop/api:2.0") and "reg.example/shop/api:2.0" in rt.images
    await rt.run_oneoff("api", V11, MIGRATE)
    assert rt.oneoffs == [("api", V11, MIGRATE)]
    big = "x" * 70_000 + "END\n"
    rt.oneoff_handler = lambda service, image, argv: ExecResult(exit_code=0, output=big)
    result = await rt.run_oneoff("api", V11, ["dump"])
    assert result.truncated and len(result.output) == 64 * 1024 and result.output.endswith("END\n")
    await rt.stop("api", timeout=0.5)
    assert rt.calls[-1] == "stop api grace=1"


# ---------------------------------------------------------------------- the real engine only

real = pytest.mark.docker


@pytest.fixture
def project(docker_engine, shop):
    """A fresh project name on the session's engine; its containers (and network) removed at the end."""
    name = f"{shop.project}x{secrets.token_hex(3)}"
    for ref in (V10, V11):
        build_image(docker_engine.client, *ref.split(":"))
    yield name
    remove_project(docker_engine.client, name)
    for network in docker_engine.client.networks.list(names=[f"{name}_default"]):
        network.remove()


def _events(client, ids: list[str], since: str, until: str) -> list[dict]:
    return list(client.events(since=since, until=until, decode=True, filters={"container": ids}))


def _now() -> str:
    return f"{time.time():.9f}"


def _later() -> str:
    return f"{time.time() + 0.3:.9f}"


def _mounts(attrs: dict) -> set[tuple]:
    return {(m["Type"], m.get("Name") or m["Source"], m["Destination"], m["RW"]) for m in attrs["Mounts"]}


@real
async def test_replace_keeps_the_configuration_field_by_field(docker_engine, shop, project, tmp_path):
    client = docker_engine.client
    old_ref = image_with(client, "shop/full:1.0", "ENV FROM_IMAGE=1.0", "LABEL from.image=1.0")
    new_ref = image_with(client, "shop/full:1.1", "ENV FROM_IMAGE=1.1", "LABEL from.image=1.1")
    old_id = client.api.inspect_image(old_ref)["Id"]
    volume = f"{project}_data"
    client.volumes.create(volume, labels={"com.docker.compose.project": project})
    (tmp_path / "conf").write_text("from the host\n")
    cid = make(
        client, project, "full", old_ref, ["sh", "-c", UP], env={"MODE": "blue", "SECRET_TOKEN": "t0k"},
        labels={"team": "shop", "com.docker.compose.image": old_id, "org.opencontainers.image.version": "1.0",
                "com.docker.compose.version": "2.24.0"},
        health={"Test": ["CMD-SHELL", "test -d /data"], "Interval": 300 * MS, "Timeout": 1000 * MS, "Retries": 3,
                "StartPeriod": 100 * MS},
        stop_timeout=3, stop_signal="SIGINT", user="root", working_dir="/data", volumes=["/cache"],
        host={"binds": [f"{tmp_path}:/mnt/host:ro", f"{volume}:/data:rw"], "extra_hosts": {"db.local": "127.0.0.2"},
              "restart_policy": {"Name": "on-failure", "MaximumRetryCount": 2}, "shm_size": "32m"},
    )  # fmt: skip
    await asyncio.to_thread(wait_for_ups, client, cid)
    rt = ComposeRuntime(shop.host, project)
    wrote = await rt.exec("full", ["sh", "-c", "echo kept > /data/x && echo anon > /cache/y && cat /mnt/host/conf"])
    assert wrote.output == "from the host\n"
    before = client.api.inspect_container(cid)
    record = await rt.replace("full", new_ref)
    (new_id,) = record.new_ids
    after = client.api.inspect_container(new_id)
    assert after["Name"] == before["Name"] and after["Image"] == client.api.inspect_image(new_ref)["Id"]
    b, a = before["Config"], after["Config"]
    assert a["Image"] == new_ref
    assert sorted(a["Env"]) == sorted(["MODE=blue", "SECRET_TOKEN=t0k", "FROM_IMAGE=1.1"])  # the image's own is new
    assert b["Labels"]["from.image"] == "1.0" and a["Labels"]["from.image"] == "1.1"
    changed = {"com.docker.compose.image": after["Image"], "org.opencontainers.image.version": "1.1"}
    changed["from.image"] = "1.1"
    assert a["Labels"] == {**b["Labels"], **changed}  # Compose's labels kept; its tool version too
    for key in ("Cmd", "Entrypoint", "Healthcheck", "StopTimeout", "StopSignal", "User", "WorkingDir", "Hostname",
                "Domainname", "Tty", "OpenStdin", "ExposedPorts"):  # fmt: skip
        assert a.get(key) == b.get(key), key
    for key, value in before["HostConfig"].items():
        if key != "Binds":
            assert after["HostConfig"][key] == value, key
    host = after["HostConfig"]
    assert host["NetworkMode"] == "host" and host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert after["HostConfig"]["Binds"][:2] == before["HostConfig"]["Binds"]  # + the anonymous volume, by name
    assert _mounts(after) == _mounts(before)  # bind, named volume, the same anonymous volume
    await asyncio.to_thread(wait_for_ups, client, new_id)
    read = await rt.exec("full", ["sh", "-c", "cat /data/x /cache/y /mnt/host/conf; pwd; id -u"])
    assert read.output == "kept\nanon\nfrom the host\n/data\n0\n"
    (ready,) = await rt.wait_running("full", timeout=30)
    assert ready.health == "healthy" and ready.image == new_ref
    await rt.commit(record)
    assert {v.name for v in client.volumes.list()} >= {volume, *(m["Name"] for m in after["Mounts"] if m.get("Name"))}
    await rt.close()


@real
async def test_replace_keeps_networks_aliases_and_hostname(docker_engine, shop, project):
    client = docker_engine.client
    network = client.networks.create(f"{project}_default", driver="bridge")
    name = f"{project}-web-1"
    cid = make(
        client, project, "web", V10, ["sh", "-c", UP], hostname="web-host",
        host={"network_mode": network.name, "port_bindings": {8080: ("127.0.0.1", free_port())}},
        ports=[8080], networking_config=client.api.create_networking_config(
            {network.name: client.api.create_endpoint_config(aliases=["web", name])}
        ),
    )  # fmt: skip
    await asyncio.to_thread(wait_for_ups, client, cid)
    rt = ComposeRuntime(shop.host, project)
    before = client.api.inspect_container(cid)
    record = await rt.replace("web", V11)
    after = client.api.inspect_container(record.new_ids[0])
    (net,) = after["NetworkSettings"]["Networks"]
    assert net == network.name and after["Config"]["Hostname"] == "web-host"
    aliases = set(after["NetworkSettings"]["Networks"][net]["Aliases"])
    assert {"web", name} <= aliases and before["Id"][:12] not in aliases
    assert after["HostConfig"]["PortBindings"] == before["HostConfig"]["PortBindings"]
    assert after["Config"]["ExposedPorts"] == before["Config"]["ExposedPorts"]
    await rt.revert(record)
    back = client.api.inspect_container(cid)
    assert back["State"]["Running"] and set(back["NetworkSettings"]["Networks"][net]["Aliases"]) >= {"web", name}
    await rt.close()


@real
async def test_flag_change_on_the_engine(docker_engine, shop, project):
    client = docker_engine.client
    cid = make(client, project, "worker", V10, ["sh", "-c", UP], env={"FEATURE_X": "on", "FEATURE_Y": "on", "A": "1"})
    await asyncio.to_thread(wait_for_ups, client, cid)
    rt = ComposeRuntime(shop.host, project)
    record = await rt.replace("worker", V10, env={"FEATURE_X": "off", "FEATURE_Y": None})
    env = client.api.inspect_container(record.new_ids[0])["Config"]["Env"]
    assert sorted(env) == ["A=1", "FEATURE_X=off"]
    await asyncio.to_thread(wait_for_ups, client, record.new_ids[0])
    said = await rt.exec("worker", ["sh", "-c", "echo $FEATURE_X ${FEATURE_Y:-unset}"])
    assert said.output == "off unset\n"
    await rt.revert(record)
    assert sorted(client.api.inspect_container(cid)["Config"]["Env"]) == ["A=1", "FEATURE_X=on", "FEATURE_Y=on"]
    await rt.close()


@real
async def test_replace_events_stop_the_old_before_the_new_starts(docker_engine, shop, project):
    client = docker_engine.client
    cid = make(client, project, "api", V10, ["sh", "-c", UP])
    await asyncio.to_thread(wait_for_ups, client, cid)
    rt = ComposeRuntime(shop.host, project)
    since = _now()
    record = await rt.replace("api", V11)
    (new_id,) = record.new_ids
    await asyncio.to_thread(wait_for_ups, client, new_id)
    await rt.revert(record)
    events = await asyncio.to_thread(_events, client, [cid, new_id], since, _later())
    lifecycle = {"kill", "die", "stop", "rename", "create", "start", "destroy"}  # not the health checks' exec_*
    events = [e for e in events if e["Action"] in lifecycle]
    seen = [(e["Action"], "old" if e["id"] == cid else "new") for e in events]
    replace = [("kill", "old"), ("die", "old"), ("stop", "old"), ("rename", "old"), ("create", "new"), ("start", "new")]
    revert = [("kill", "new"), ("die", "new"), ("stop", "new"), ("destroy", "new"), ("rename", "old"), ("start", "old")]
    assert seen == replace + revert
    kills = [e["Actor"]["Attributes"]["signal"] for e in events if e["Action"] == "kill"]
    assert kills == ["15", "15"]  # each stopped by its stop signal within its grace, never killed
    renames = [e["Actor"]["Attributes"]["name"] for e in events if e["Action"] == "rename"]
    assert renames == [f"{project}-api-1-opsbot-old-{cid[:12]}", f"{project}-api-1"]
    await rt.close()


GRACEFUL = (
    "trap 'echo got TERM; sleep 2; echo clean exit; exit 0' TERM; echo up; while true; do sleep 1 & wait $!; done"
)


@real
async def test_stop_respects_the_grace(docker_engine, shop, project):
    client = docker_engine.client
    cid = make(client, project, "graceful", V10, ["sh", "-c", GRACEFUL], stop_timeout=None, health=None)
    rt = ComposeRuntime(shop.host, project, timeout=1)  # shorter than the handler: the bound is grace + timeout
    # (grace, signals, exit codes, at least this long from SIGTERM to the end as the engine timed it)
    for round_, (grace, signals, codes, low) in enumerate(((5, ["15"], ["0"], 2), (0.5, ["15", "9"], ["137"], 1)), 1):
        await asyncio.to_thread(wait_for_ups, client, cid, round_)
        since = _now()
        (info,) = await rt.stop("graceful", timeout=grace)
        events = await asyncio.to_thread(_events, client, [cid], since, _later())
        assert [e["Actor"]["Attributes"]["signal"] for e in events if e["Action"] == "kill"] == signals
        assert [e["Actor"]["Attributes"]["exitCode"] for e in events if e["Action"] == "die"] == codes
        term, died = next(e for e in events if e["Action"] == "kill"), next(e for e in events if e["Action"] == "die")
        assert (died["timeNano"] - term["timeNano"]) / 1e9 >= low and info.state == "exited"
        (info,) = await rt.start("graceful")
        assert info.state == "running"
    assert client.api.logs(cid).count(b"clean exit\n") == 1  # the second stop killed it after 1 s (0.5 rounded up)
    await rt.close()


@real
async def test_oneoff_runs_with_the_service_configuration_and_is_removed(docker_engine, shop, project, tmp_path):
    client = docker_engine.client
    volume = f"{project}_data"
    client.volumes.create(volume)
    cid = make(
        client, project, "api", V10, ["sh", "-c", "echo seed > /data/seed; " + UP], env={"MODE": "green"},
        user="root", working_dir="/data", host={"binds": [f"{volume}:/data"]},
    )  # fmt: skip
    await asyncio.to_thread(wait_for_ups, client, cid)
    rt = ComposeRuntime(shop.host, project)
    since = _now()
    ran = await rt.run_oneoff("api", V11, ["sh", "-c", "pwd; id -u; cat seed; echo $MODE; echo to stderr >&2"])
    lines = ran.output.splitlines()  # the engine copies stdout and stderr apart: their order may mix
    assert ran.exit_code == 0 and "to stderr" in lines  # both streams
    assert [x for x in lines if x != "to stderr"] == ["/data", "0", "seed", "green"]  # working dir, user, volume, env
    creates = [e for e in await asyncio.to_thread(_events, client, [], since, _later()) if e["Action"] == "create"]
    (created,) = [e for e in creates if e["Actor"]["Attributes"].get("com.docker.compose.oneoff") == "True"]
    attrs = created["Actor"]["Attributes"]
    assert attrs["name"].startswith(f"{project}-api-run-") and attrs["image"] == V11
    assert attrs["com.docker.compose.project"] == project and attrs["com.docker.compose.service"] == "api"
    assert leftovers(client, project) == []
    big = await rt.run_oneoff("api", V11, ["sh", "-c", "yes 0123456789abcdef | head -c 100000; echo; echo END"])
    assert big.truncated and len(big.output.encode()) == 64 * 1024 and big.output.endswith("\nEND\n")
    with pytest.raises(AdapterTimeout) as caught:  # a backstop: without its timeout it would take 600 s
        await asyncio.wait_for(rt.run_oneoff("api", V11, ["sleep", "600"], timeout=1), 60)
    assert str(caught.value) == (
        "sleep in a one-off container of service 'api' did not finish within 1s (it was killed and removed)"
    )
    assert leftovers(client, project) == []
    (api,) = await rt.containers()
    assert api.id == cid[:12] and api.state == "running"  # the service itself was never touched
    await rt.close()


def _silent_registry() -> tuple[socket.socket, list[socket.socket], threading.Event, threading.Thread]:
    """A TCP port on loopback that accepts connections and never answers (a registry that hangs)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
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
    return server, held, stop, thread


@real
async def test_a_registry_that_does_not_answer_is_false_within_the_pull_timeout(shop):
    server, held, stop, thread = _silent_registry()
    rt = ComposeRuntime(shop.host, "nothing", pull_timeout=1.5)
    try:
        # a generous backstop for a 1.5-s pull timeout (how quickly: the pull timeout's own message is the log's)
        assert not await asyncio.wait_for(rt.image_available(f"127.0.0.1:{server.getsockname()[1]}/shop/api:9.9"), 30)
        assert held  # the engine did ask it
        assert await rt.image_available(V10)  # the runtime still works
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()
        await rt.close()


async def test_engine_not_there_is_one_clear_line_for_every_change(tmp_path):
    path = tmp_path / "d.sock"
    # a timeout far beyond the backstop: a call that waited for it (instead of failing at once) fails the test
    rt = ComposeRuntime(f"unix://{path}", "shop", timeout=600)
    record = Replacement(service="api", image_after=V11)
    calls = (rt.image_available(V11), rt.run_oneoff("api", V11, ["true"]), rt.replace("api", V11),
             rt.stop("api"), rt.start("api"))  # fmt: skip
    for call in calls:
        with pytest.raises(EngineUnavailable) as info:
            await asyncio.wait_for(call, 60)
        assert str(info.value) == f"Docker engine at unix://{path} does not answer (no such socket)"
    await rt.revert(record)  # nothing to put back, nothing asked
    await rt.commit(record)
    await rt.close()
