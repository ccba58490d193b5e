"""deploy, rollback, flag, startup and shutdown through the engine, on the real Docker engine."""

from __future__ import annotations

import secrets
import time

import pytest
import yaml

from bot.config.settings import Settings
from bot.core.app import App
from tests.helpers.changes import change
from tests.helpers.docker_engine import build_image, busybox_tar, run_service
from tests.helpers.http_servers import free_port
from tests.helpers.socket_proxy import UnixProxy

pytestmark = pytest.mark.docker

#: like the shop's api, but a release built with BROKEN=1 in its image answers /health/db "down"
API = (
    'mkdir -p /www/health && echo \'{"status": "ok"}\' > /www/health/index.html && '
    'if [ -n "$BROKEN" ]; then s=down; else s=ok; fi; echo "{\\"status\\": \\"$s\\"}" > /www/health/db && '
    "exec httpd -f -p 127.0.0.1:$PORT -h /www"
)
WORKER = "trap 'exit 0' TERM; echo \"worker up FEATURE_X=$FEATURE_X\"; while true; do sleep 1; done"


@pytest.fixture(scope="module")
def project(docker_engine):
    client = docker_engine.client
    for tag in ("1.0", "1.1", "1.2"):
        build_image(client, "dep/api", tag)
        build_image(client, "dep/worker", tag)
    client.api.import_image_from_data(busybox_tar(), repository="dep/api", tag="6.6", changes=["ENV BROKEN=1"])
    build_image(client, "dep/worker", "6.6")
    name = f"dep{secrets.token_hex(3)}"
    port = free_port()
    health = {"test": ["CMD", "wget", "-q", "-O-", f"http://127.0.0.1:{port}/health"],
              "interval": 300_000_000, "timeout": 2_000_000_000, "retries": 2}  # fmt: skip
    made = [
        run_service(client, name, "api", "dep/api:1.0", ["sh", "-c", API], env={"PORT": str(port)}, healthcheck=health),
        run_service(client, name, "worker", "dep/worker:1.0", ["sh", "-c", WORKER], env={"FEATURE_X": "on"}),
        run_service(client, name, "cache", "dep/worker:1.0", ["sh", "-c", WORKER]),
    ]  # fmt: skip
    yield {"name": name, "port": port, "client": client, "host": docker_engine.host}
    for c in client.containers.list(all=True, filters={"label": f"com.docker.compose.project={name}"}):
        c.remove(force=True)
    del made


@pytest.fixture
async def app(project, tmp_path):
    app = build_app(project, tmp_path, project["host"])
    yield app
    await app.close()


def build_app(project, tmp_path, docker_host: str) -> App:
    """The bot on the test project, the engine reached at ``docker_host``."""
    config = {
        "project": "dep",
        "access": {"operators": ["U0OPERATOR"], "approvers": ["U0APPROVER1"], "admins": ["U0ADMIN"]},
        "environments": {"prod": {
            "url": f"http://127.0.0.1:{project['port']}",
            "runtime": {"kind": "compose", "project": project["name"], "docker_host": docker_host},
            "approval": {"required": 1},
            "services": {"api": {"image": "dep/api", "deploy": True, "stop_timeout": "1s"},
                         "worker": {"image": "dep/worker", "deploy": True, "stop_timeout": "5s"},
                         "cache": {"stop_timeout": "5s"}},
            "health_checks": [{"name": "API", "url": "{url}/health", "expect": {"status": "ok"}},
                              {"name": "DB", "url": "{url}/health/db", "expect": {"status": "ok"}, "timeout": "2s"}],
            "migrate": {"service": "api", "command": ["sh", "-c", "echo migrating; test -z \"$FAIL_MIGRATION\""]},
            "startup": [["cache"], ["api", "worker"]],
            "shutdown": [["api", "worker"], ["cache"]],
        }},
    }  # fmt: skip
    path = tmp_path / "ops.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    app = App.build(Settings(opsbot_config=str(path), opsbot_db=str(tmp_path / "d.db")))
    import commands.rollout as rollout

    rollout.WAIT_CHECKS = 4.0  # a broken release is given 4 s, not a minute
    return app


def running_images(project) -> dict[str, str]:
    found = project["client"].containers.list(filters={"label": f"com.docker.compose.project={project['name']}"})
    return {c.labels["com.docker.compose.service"]: c.attrs["Config"]["Image"] for c in found}


async def test_deploy_verified_broken_release_rolled_back_and_rollback(app, project):
    reply = await change(app, "deploy prod 1.1")
    result = reply.to_json()["result"]
    assert result["ok"], result["problem"]
    assert "migrating" in result["migration"]["output"]
    assert running_images(project)["api"] == "dep/api:1.1" and running_images(project)["worker"] == "dep/worker:1.1"

    reply = await change(app, "deploy prod 6.6")  # its /health/db answers "down"
    result = reply.to_json()["result"]
    assert result["rolled_back"] and not result["ok"] and reply.exit_code == 1
    assert (
        "health check DB failed" in result["problem"]
        and "previous version runs and verifies again" in result["problem"]
    )
    assert running_images(project)["api"] == "dep/api:1.1"
    names = [c.name for c in project["client"].containers.list(all=True)]
    assert not [n for n in names if "opsbot-old" in n]  # nothing left behind
    steps = [r["outcome"] for r in reversed(await app.engine.audit.entries(limit=12)) if r["event"] == "step"]
    assert steps[-7:-3] == ["migration `sh -c echo migrating; test -z \"$FAIL_MIGRATION\"` on dep/api:6.6: exit 0",
                            "replaced api: dep/api:1.1 -> dep/api:6.6",
                            "replaced worker: dep/worker:1.1 -> dep/worker:6.6", steps[-4]]  # fmt: skip
    assert steps[-4].startswith("verification of api, worker: health check DB failed")
    assert steps[-3:] == ["put back worker: dep/worker:1.1", "put back api: dep/api:1.1",
                          "verification of the previous version: passed"]  # fmt: skip

    reply = await change(app, "deploy prod 1.2")
    assert reply.to_json()["result"]["ok"]
    reply = await change(app, "rollback prod")  # back to what 1.2 replaced: 1.1
    assert reply.to_json()["result"]["ok"]
    assert running_images(project)["api"] == "dep/api:1.1"
    history = [(d["kind"], d["version"], d["outcome"]) for d in await app.engine.deploys.list("prod")]
    assert history[:3] == [("rollback", "before 1.2", "succeeded"), ("deploy", "1.2", "succeeded"),
                           ("deploy", "6.6", "rolled-back")]  # fmt: skip


async def test_failing_migration_changes_no_service(app, project):
    before = running_images(project)
    client = project["client"]
    api = next(c for c in client.containers.list() if c.name.endswith("-api-1") and project["name"] in c.name)
    # the migration runs with the service's configuration: give it FAIL_MIGRATION through a flag-like env change
    from adapters.compose.runtime import ComposeRuntime

    rt = ComposeRuntime(project["host"], project["name"])
    replacement = await rt.replace("api", api.attrs["Config"]["Image"], env={"FAIL_MIGRATION": "1"})
    await rt.commit(replacement)
    await rt.wait_running("api", timeout=30)
    before = running_images(project)
    reply = await change(app, "deploy prod 1.2")
    result = reply.to_json()["result"]
    assert not result["ok"] and result["problem"] == "the migration exited with 1: no service was changed"
    assert running_images(project) == before
    replacement = await rt.replace("api", before["api"], env={"FAIL_MIGRATION": None})
    await rt.commit(replacement)
    await rt.close()


async def test_flag_and_stages_in_order(app, project):
    reply = await change(app, "flag prod FEATURE_X off")
    assert reply.to_json()["result"]["ok"]
    worker = next(c for c in project["client"].containers.list() if "-worker-1" in c.name and project["name"] in c.name)
    assert "FEATURE_X=off" in worker.attrs["Config"]["Env"]

    since = f"{time.time():.9f}"  # the engine filters events by the nanosecond: only this test's
    reply = await change(app, "shutdown prod")
    assert reply.to_json()["result"]["ok"]
    reply = await change(app, "startup prod")
    assert reply.to_json()["result"]["ok"], reply.to_json()["result"]["problem"]
    events = project["client"].events(since=since, until=f"{time.time():.9f}", decode=True,
                                      filters={"label": f"com.docker.compose.project={project['name']}"})  # fmt: skip
    order = [(e["status"], e["Actor"]["Attributes"]["com.docker.compose.service"]) for e in events
             if e.get("status") in ("stop", "start")]  # fmt: skip
    stops = [s for what, s in order if what == "stop"]
    starts = [s for what, s in order if what == "start"]
    assert sorted(stops[:2]) == ["api", "worker"] and stops[2:] == ["cache"]
    assert starts[0] == "cache" and sorted(starts[1:]) == ["api", "worker"]


async def test_the_engine_going_away_mid_deploy_is_reported_truthfully(project, tmp_path):
    before = running_images(project)
    proxy = UnixProxy(project["host"].removeprefix("unix://"), str(tmp_path / "relay.sock"))
    app = build_app(project, tmp_path, proxy.url)
    said: list[str] = []

    async def progress(text):
        said.append(text)
        if "replacing worker" in text and not proxy.stopped.is_set():
            proxy.cut()  # api is replaced; the engine stops answering before worker

    try:
        reply = await change(app, f"deploy prod {'1.2' if before['api'].endswith('1.1') else '1.1'}", progress)
        result = reply.to_json()["result"]
        assert not result["ok"] and not result["rolled_back"] and reply.exit_code == 1
        problem = result["problem"]
        where = f"Docker engine at {proxy.url} does not answer"
        assert problem.startswith(f"replacing worker failed: {where}"), problem
        assert "Putting the previous version back FAILED for api (putting back service 'api' failed" in problem
        assert where in problem.partition("FAILED")[2]
        assert problem.endswith("api may still run the new version. Check `status prod` and roll back when the engine"
                                " answers.")  # fmt: skip
        # what it said is what is: api runs the new release (its old container kept aside), worker the old one
        now = running_images(project)
        assert now["api"] != before["api"] and now["worker"] == before["worker"]
        [last] = (await app.engine.deploys.list("prod"))[:1]
        assert (last["outcome"], last["detail"]) == ("failed", problem)
        rows = await app.engine.audit.entries(limit=5)
        assert [r["details"] for r in rows if r["event"] == "failed"], rows
    finally:
        await app.close()
        # put the project back as it was for the other tests
        from adapters.compose.runtime import ComposeRuntime

        rt = ComposeRuntime(project["host"], project["name"])
        for service, image in before.items():
            if running_images(project)[service] != image:
                await rt.commit(await rt.replace(service, image))
        client = project["client"]
        for c in client.containers.list(all=True, filters={"label": f"com.docker.compose.project={project['name']}"}):
            if "opsbot-old" in c.name:
                c.remove(force=True)
        await rt.close()
