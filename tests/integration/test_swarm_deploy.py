"""deploy, rollback, restart, status, shutdown and startup through the engine, on a real one-node Swarm.

The stack (made here as ``docker stack deploy`` leaves one): ``api`` (busybox httpd on the host network,
with a Docker health check on /health: stop-first updates), ``worker`` (2 replicas, no network:
start-first updates) and ``cache``. Release 6.6 answers /health/db "down" (its Docker health check
passes, opsbot's verification fails: opsbot puts the previous version back through Swarm's rollback);
release 6.7 fails its Docker health check (Swarm rolls the update back by itself).
"""

from __future__ import annotations

import secrets
import time

import pytest
import yaml
from docker.types import EndpointSpec, Healthcheck

from adapters.swarm.runtime import SwarmRuntime
from bot.config.settings import Settings
from bot.core.app import App
from bot.core.engine import Request
from tests.helpers.changes import change
from tests.helpers.docker_engine import build_image, busybox_tar
from tests.helpers.http_servers import free_port
from tests.helpers.swarm import HEALTH, SECOND, STACK_LABEL, create_service, swarm_engine, wait_stack  # noqa: F401

pytestmark = [pytest.mark.docker, pytest.mark.swarm]

API = (
    'if [ -n "$OPSBOT_BROKEN" ]; then mkdir -p /empty && exec httpd -f -p 127.0.0.1:$PORT -h /empty; fi; '
    'mkdir -p /www/health && echo \'{"status": "ok"}\' > /www/health/index.html && '
    'if [ -n "$BROKEN" ]; then s=down; else s=ok; fi; echo "{\\"status\\": \\"$s\\"}" > /www/health/db && '
    "exec httpd -f -p 127.0.0.1:$PORT -h /www"
)
WORKER = "trap 'exit 0' TERM; echo \"worker up FEATURE_X=$FEATURE_X\"; while true; do sleep 1; done"


@pytest.fixture(scope="module")
def stack(swarm_engine):  # noqa: F811
    client = swarm_engine.client
    for tag in ("1.0", "1.1", "1.2"):
        build_image(client, "sdep/api", tag)
        build_image(client, "sdep/worker", tag)
    client.api.import_image_from_data(busybox_tar(), repository="sdep/api", tag="6.6", changes=["ENV BROKEN=1"])
    client.api.import_image_from_data(busybox_tar(), repository="sdep/api", tag="6.7", changes=["ENV OPSBOT_BROKEN=1"])
    for tag in ("6.6", "6.7"):
        build_image(client, "sdep/worker", tag)
    name, port = f"sdep{secrets.token_hex(3)}", free_port()

    class Made:
        services: dict = {}

    made = Made()
    made.name, made.port, made.client, made.host = name, port, client, swarm_engine.host
    probe = ["CMD", "wget", "-q", "-O-", f"http://127.0.0.1:{port}/health"]
    made.services = {
        "api": create_service(client, name, "api", "sdep/api:1.0", ["sh", "-c", API], env=[f"PORT={port}"],
                              networks=["host"], endpoint_spec=EndpointSpec(mode="dnsrr"),
                              healthcheck=Healthcheck(test=probe, **HEALTH)),
        "worker": create_service(client, name, "worker", "sdep/worker:1.0", ["sh", "-c", WORKER], replicas=2,
                                 env=["FEATURE_X=on"]),
        "cache": create_service(client, name, "cache", "sdep/worker:1.0", ["sh", "-c", WORKER]),
    }  # fmt: skip
    try:
        wait_stack(client, made, {"api": 1, "worker": 2, "cache": 1}, 60)
        yield made
    finally:
        for service in made.services.values():
            service.remove()


@pytest.fixture
async def app(stack, tmp_path):
    config = {
        "project": "sdep",
        "access": {"operators": ["U0OPERATOR"], "approvers": ["U0APPROVER1"], "admins": ["U0ADMIN"]},
        "environments": {"prod": {
            "url": f"http://127.0.0.1:{stack.port}",
            "runtime": {"kind": "swarm", "project": stack.name, "docker_host": stack.host},
            "approval": {"required": 1},
            "services": {"api": {"image": "sdep/api", "deploy": True, "stop_timeout": "1s"},
                         "worker": {"image": "sdep/worker", "deploy": True, "stop_timeout": "1s"},
                         "cache": {"stop_timeout": "1s"}},
            "health_checks": [{"name": "API", "url": "{url}/health", "expect": {"status": "ok"}},
                              {"name": "DB", "url": "{url}/health/db", "expect": {"status": "ok"}, "timeout": "2s"}],
            "migrate": {"service": "api", "command": ["sh", "-c", "echo migrating on $PORT"]},
            "startup": [["cache"], ["api", "worker"]],
            "shutdown": [["api", "worker"], ["cache"]],
        }},
    }  # fmt: skip
    path = tmp_path / "ops.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    app = App.build(Settings(opsbot_config=str(path), opsbot_db=str(tmp_path / "d.db")))
    import commands.rollout as rollout

    rollout.WAIT_CHECKS = 4.0  # a broken release is given 4 s, not a minute
    runtime = app.backends.runtime("prod")
    assert isinstance(runtime, SwarmRuntime)  # what `kind: swarm` gives
    runtime.monitor = 1.0  # each new task watched 1 s (Swarm's default is 5 s)
    yield app
    await app.close()


def images(stack) -> dict[str, str]:
    """Each service's image as the orchestrator has it (the spec), without the digest."""
    found = {}
    for name, service in stack.services.items():
        service.reload()
        found[name] = service.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"].partition("@")[0]
    return found


async def test_deploy_broken_releases_rolled_back_and_rollback(app, stack):
    said: list[str] = []

    async def progress(text):
        said.append(text)

    reply = await change(app, "deploy prod 1.1", progress)
    result = reply.to_json()["result"]
    assert result["ok"], result["problem"]
    assert result["migration"]["output"].strip() == f"migrating on {stack.port}"  # the service's environment
    assert images(stack) == {"api": "sdep/api:1.1", "worker": "sdep/worker:1.1", "cache": "sdep/worker:1.0"}
    assert any("Step 2 of 4: replacing api with sdep/api:1.1" in s for s in said)
    assert any("one at a time, start-first" in s for s in said)  # worker: two tasks side by side
    assert {(c["name"], c["version"]) for c in result["containers"]} == {("api", "1.1"), ("worker", "1.1")}

    # 6.6: healthy to Docker, /health/db "down": opsbot's verification fails and it puts 1.1 back
    reply = await change(app, "deploy prod 6.6")
    result = reply.to_json()["result"]
    assert not result["ok"] and result["rolled_back"] and reply.exit_code == 1
    assert "health check DB failed" in result["problem"]
    assert "previous version runs and verifies again" in result["problem"]
    assert images(stack)["api"] == "sdep/api:1.1" and images(stack)["worker"] == "sdep/worker:1.1"

    # 6.7: fails its Docker health check: Swarm itself rolls the update back (failure_action rollback)
    reply = await change(app, "deploy prod 6.7 --services api")
    result = reply.to_json()["result"]
    assert not result["ok"] and result["rolled_back"]
    assert "Swarm rolled it back by itself" in result["problem"] and "unhealthy" in result["problem"]
    assert "previous version runs and verifies again" in result["problem"]
    assert images(stack)["api"] == "sdep/api:1.1"

    reply = await change(app, "deploy prod 1.2")
    assert reply.to_json()["result"]["ok"]
    reply = await change(app, "rollback prod")  # back to what 1.2 replaced: 1.1
    assert reply.to_json()["result"]["ok"], reply.to_json()["result"]["problem"]
    assert images(stack)["api"] == "sdep/api:1.1" and images(stack)["worker"] == "sdep/worker:1.1"
    history = [(d["kind"], d["version"], d["outcome"]) for d in await app.engine.deploys.list("prod")]
    assert history == [("rollback", "before 1.2", "succeeded"), ("deploy", "1.2", "succeeded"),
                       ("deploy", "6.7", "rolled-back"), ("deploy", "6.6", "rolled-back"),
                       ("deploy", "1.1", "succeeded")]  # fmt: skip


async def test_rollback_without_history_uses_the_services_previous_version(app, stack, tmp_path):
    # this app's database has no deploy: the images Swarm ran before the services' last update are used
    before = images(stack)
    runtime = app.backends.runtime("prod")
    await runtime.update_image("api", "sdep/api:1.2")
    plan = (await app.engine.handle(Request(actor="U0OPERATOR", door="cli", text="rollback prod --dry-run"))).to_json()
    assert f"sdep/api:1.2 -> {before['api']}" in str(plan), plan
    reply = await change(app, "rollback prod")
    result = reply.to_json()["result"]
    assert result["ok"], result["problem"]
    assert images(stack)["api"] == before["api"]
    # after a rollback, Swarm's previous spec is what was rolled back from: never offered again
    await runtime.rollback("api")  # back to 1.2 (the spec rolled back from)
    await runtime.rollback("api")  # and back again: the previous spec is 1.2, the state rollback_completed
    assert "api" not in await runtime.previous_images()


async def test_restart_status_and_stages(app, stack):
    reply = await app.engine.handle(Request(actor="U0OPERATOR", door="cli", text="status prod"))
    rows = reply.to_json()["services"]
    assert {(r["name"], r["replicas"]) for r in rows} == {("api", "1/1"), ("worker", "2/2"), ("cache", "1/1")}
    assert reply.to_json()["overall"] == "ok", rows

    old = {t["ID"] for t in stack.services["worker"].tasks(filters={"desired-state": "running"})}
    reply = await change(app, "restart prod worker")
    assert reply.to_json()["result"]["ok"], reply.to_json()["result"]
    new = {t["ID"] for t in stack.services["worker"].tasks(filters={"desired-state": "running"})}
    assert len(new) == 2 and not new & old  # a forced update: every task replaced

    # the forced update stops the old tasks after the new ones run: let them go before watching events
    deadline = time.monotonic() + 20
    while len(stack.client.containers.list(filters={"label": f"{STACK_LABEL}={stack.name}"})) > 4:
        assert time.monotonic() < deadline, "the old worker tasks did not stop"
        time.sleep(0.2)
    since = f"{time.time():.9f}"  # the engine filters events by the nanosecond: only this test's
    reply = await change(app, "shutdown prod")
    assert reply.to_json()["result"]["ok"], reply.to_json()["result"]
    for service in stack.services.values():
        service.reload()
        assert service.attrs["Spec"]["Mode"]["Replicated"]["Replicas"] == 0
    reply = await app.engine.handle(Request(actor="U0OPERATOR", door="cli", text="status prod"))
    down = reply.to_json()
    assert down["overall"] == "critical" and {r["replicas"] for r in down["services"]} == {"0/0"}
    assert all(r["reasons"] == ["scaled to 0 (no replica wanted)"] for r in down["services"])

    reply = await change(app, "startup prod")
    assert reply.to_json()["result"]["ok"], reply.to_json()["result"]
    wait_stack(stack.client, stack, {"api": 1, "worker": 2, "cache": 1}, 10)  # the remembered replica counts
    events = stack.client.events(since=since, until=f"{time.time():.9f}", decode=True,
                                 filters={"type": "container", "label": f"{STACK_LABEL}={stack.name}"})  # fmt: skip
    service_of = {f"{stack.name}_{n}": n for n in stack.services}
    order = [(e["status"], service_of[e["Actor"]["Attributes"]["com.docker.swarm.service.name"]]) for e in events
             if e.get("status") in ("die", "start")]  # fmt: skip
    stops = [s for what, s in order if what == "die"]
    starts = [s for what, s in order if what == "start"]
    assert sorted(stops[:3]) == ["api", "worker", "worker"] and stops[3:] == ["cache"], order
    assert starts[0] == "cache" and sorted(starts[1:]) == ["api", "worker", "worker"], order
    reply = await app.engine.handle(Request(actor="U0OPERATOR", door="cli", text="status prod"))
    assert reply.to_json()["overall"] == "ok"
