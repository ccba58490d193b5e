"""One set of assertions, run against ComposeRuntime on the real engine and against FakeRuntime.

The fake is built to mirror the test project (tests/helpers/docker_engine.py: start_shop), so any
behaviour the two disagree on fails here: the fake cannot drift from the real thing.
"""

from __future__ import annotations

import pytest

from adapters.compose import ComposeRuntime
from adapters.errors import AdapterError, NotFound
from adapters.fakes import FakeRuntime
from adapters.models import ExecResult

SECRET = "s3cr3t-fake"


def fake_shop() -> FakeRuntime:
    rt = FakeRuntime()
    rt.add("api", image="shop/api:1.0", health="healthy", env={"PORT": "8080", "PLAIN": "visible"})
    rt.add("postgres", image="shop/postgres:15")
    rt.add("redis", image="shop/redis:7", state="exited", exit_code=1)
    rt.add(
        "worker",
        image="shop/worker:1.0",
        env={"DB_PASSWORD": SECRET, "PLAIN": "visible", "FEATURE_CHECKOUT": "on"},
        logs=[f"worker starting, connecting with password {SECRET}", "ERROR timeout talking to db", "tick 1", "tick 2"],
    )
    rt.exec_results[("postgres", "psql", "-tA", "-U", "app", "-c", "SELECT count(*) FROM pg_stat_activity")] = (
        ExecResult(exit_code=0, output="3\n")
    )
    return rt


@pytest.fixture(params=["fake", "docker"])
async def runtime(request):
    if request.param == "fake":
        rt, secret = fake_shop(), SECRET
    else:
        shop = request.getfixturevalue("shop")
        rt, secret = ComposeRuntime(shop.host, shop.project), shop.secret
    rt.secret = secret
    yield rt
    await rt.close()


async def test_containers(runtime):
    infos = await runtime.containers()
    assert [i.service for i in infos] == ["api", "postgres", "redis", "worker"]
    by = {i.service: i for i in infos}
    assert by["api"].state == "running" and by["api"].health == "healthy" and by["api"].version == "1.0"
    assert by["api"].image == "shop/api:1.0"
    assert by["redis"].state == "exited" and by["redis"].exit_code == 1 and by["redis"].started_at is None
    assert by["postgres"].health is None and by["postgres"].version == "15"
    assert by["worker"].env["DB_PASSWORD"] == runtime.secret
    assert by["api"].started_at is not None and by["api"].number == 1
    assert all(i.cpu_percent is None for i in infos)  # no stats asked
    assert "DB_PASSWORD" not in by["worker"].model_dump_json()  # env never serialised


async def test_stats_only_for_running_containers(runtime):
    by = {i.service: i for i in await runtime.containers(stats=True)}
    assert by["api"].cpu_percent is not None and by["api"].memory_percent is not None
    assert 0 <= by["api"].cpu_percent and 0 <= by["api"].memory_percent <= 100
    assert by["redis"].cpu_percent is None and by["redis"].memory_percent is None


async def test_logs_tail_grep_and_stderr(runtime):
    lines = await runtime.logs("worker", lines=2)
    assert len(lines) == 2 and all(line.startswith(("tick", "WARN slow query")) for line in lines)
    errors = await runtime.logs("worker", grep="error")
    assert errors == ["ERROR timeout talking to db"]  # written to stderr by the real worker
    secret_lines = await runtime.logs("worker", grep="PASSWORD")
    assert secret_lines and runtime.secret in secret_lines[0]  # redaction is the bot's job, not the adapter's
    with pytest.raises(NotFound, match="no container for service 'nosuch'"):
        await runtime.logs("nosuch")


async def test_exec_argv_only(runtime):
    result = await runtime.exec("postgres", ["psql", "-tA", "-U", "app", "-c", "SELECT count(*) FROM pg_stat_activity"])
    assert result.exit_code == 0 and result.output.strip() == "3"
    missing = await runtime.exec("postgres", ["no-such-binary"])
    assert missing.exit_code != 0
    with pytest.raises(NotFound, match="no running container for service 'redis'"):
        await runtime.exec("redis", ["true"])
    with pytest.raises(AdapterError, match="argv"):
        await runtime.exec("postgres", "psql -c 'drop table x'")


async def test_disk(runtime):
    usage = await runtime.disk("api")
    assert usage.service == "api" and usage.mount == "/"
    assert 0 <= usage.percent <= 100 and usage.size_bytes > 0
    with pytest.raises(NotFound):
        await runtime.disk("redis")
