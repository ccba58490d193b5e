"""deploy, rollback, flag, startup and shutdown on fakes, through approvals."""

from __future__ import annotations

import copy

import pytest

from adapters.fakes import FakeBackends, FakeProbe, FakeRuntime
from adapters.fakes.changes import AfterRestart
from adapters.models import ExecResult
from bot.config.redact import Redactor
from bot.core.db import Database
from bot.core.engine import Engine, Request
from tests.unit.conftest import BASE, make_config

ACCESS = {"viewers": [], "operators": ["U0OPERATOR"], "approvers": ["U0APPROVER1"], "admins": ["U0ADMIN"]}
MIGRATE = ("api", "npm", "run", "migrate")


def config():
    envs = copy.deepcopy(BASE["environments"])
    prod = envs["prod"]
    prod["migrate"] = {"service": "api", "command": ["npm", "run", "migrate"]}
    prod["startup"] = [["postgres"], ["redis"], ["api", "worker"]]
    prod["shutdown"] = [["api", "worker"], ["redis"], ["postgres"]]
    return make_config(access=ACCESS, environments=envs)


@pytest.fixture
def rt():
    rt = FakeRuntime()
    rt.add("api", image="shop/api:1.0", health="healthy")
    rt.add("worker", image="shop/worker:1.0", env={"FEATURE_CHECKOUT": "on"})
    rt.add("postgres", image="shop/postgres:15")
    rt.add("redis", image="shop/redis:7")
    rt.images |= {f"shop/{s}:{v}" for s in ("api", "worker") for v in ("1.1", "1.2", "1.3")}
    rt.oneoff_results[MIGRATE] = ExecResult(exit_code=0, output="migrated 3 tables\n")
    return rt


@pytest.fixture
async def engine(tmp_path, rt):
    probe = FakeProbe()
    for path in ("/health", "/health/db"):
        probe.answer(f"http://127.0.0.1:18080{path}")
    db = Database(tmp_path / "r.db")
    engine = Engine(config(), FakeBackends({"prod": rt}, probe), db, Redactor())
    yield engine
    db.close()


async def change(engine, text):
    """Request as the operator, approve as the approver; the reply of the approval that ran it."""
    reply = await engine.handle(Request(actor="U0OPERATOR", door="cli", text=text))
    assert reply.error is None, reply.error
    approval_id = reply.to_json()["approval"]["id"]
    request = Request(actor="U0APPROVER1", door="cli", text=f"approve {approval_id}")
    return await engine.decide(request, approval_id, "approve")


def images(rt) -> dict[str, str]:
    return {c.service: c.image for c in rt.items}


async def test_deploy_migrates_replaces_verifies_and_records(engine, rt):
    reply = await engine.handle(Request(actor="U0OPERATOR", door="cli", text="deploy prod 1.1 --dry-run"))
    steps = reply.to_json()["plan"]["steps"]
    assert steps == ["migration: npm run migrate in a one-off container of shop/api:1.1",
                     "api: shop/api:1.0 -> shop/api:1.1", "worker: shop/worker:1.0 -> shop/worker:1.1"]  # fmt: skip
    reply = await change(engine, "deploy prod 1.1")
    result = reply.to_json()["result"]
    assert result["ok"] and result["migration"]["exit_code"] == 0 and reply.exit_code == 0
    assert images(rt)["api"] == "shop/api:1.1" and images(rt)["worker"] == "shop/worker:1.1"
    assert rt.oneoffs == [("api", "shop/api:1.1", ["npm", "run", "migrate"])]
    [entry] = (await engine.handle(Request(actor="U0OPERATOR", door="cli", text="history prod"))).to_json()["deploys"]
    assert entry["kind"] == "deploy" and entry["version"] == "1.1" and entry["outcome"] == "succeeded"
    assert entry["before"] == {"api": "shop/api:1.0", "worker": "shop/worker:1.0"}
    assert entry["requester"] == "U0OPERATOR" and entry["approvers"] == ["U0APPROVER1"]


async def test_a_release_that_does_not_verify_is_rolled_back_by_itself(engine, rt):
    rt.after_replace["shop/api:1.2"] = AfterRestart(health="unhealthy")
    reply = await change(engine, "deploy prod 1.2")
    result = reply.to_json()["result"]
    assert not result["ok"] and result["rolled_back"] and reply.exit_code == 1
    assert "Rolled back automatically: the previous version runs and verifies again" in result["problem"]
    assert images(rt)["api"] == "shop/api:1.0" and images(rt)["worker"] == "shop/worker:1.0"
    assert all(c.state == "running" for c in rt.items if c.service in ("api", "worker"))
    entry = (await engine.deploys.list("prod"))[0]
    assert entry["outcome"] == "rolled-back"


async def test_a_failing_migration_changes_no_service(engine, rt):
    rt.oneoff_results[MIGRATE] = ExecResult(exit_code=3, output="ERROR: relation users already exists\n")
    reply = await change(engine, "deploy prod 1.1")
    result = reply.to_json()["result"]
    assert not result["ok"] and not result["rolled_back"]
    assert result["problem"] == "the migration exited with 3: no service was changed"
    assert "relation users already exists" in result["output"]
    assert images(rt)["api"] == "shop/api:1.0" and not [c for c in rt.calls if c.startswith("replace")]


async def test_a_missing_image_changes_nothing(engine, rt):
    reply = await change(engine, "deploy prod 9.9")
    assert "shop/api:9.9 is not on the engine" in reply.to_json()["result"]["problem"]
    assert images(rt)["api"] == "shop/api:1.0" and rt.oneoffs == []


async def test_rollback_after_two_deploys_and_never_a_guess(engine, rt):
    reply = await engine.handle(Request(actor="U0OPERATOR", door="cli", text="rollback prod"))
    assert reply.exit_code == 2 and "no successful deploy of prod is recorded" in reply.error
    await change(engine, "deploy prod 1.1")
    await change(engine, "deploy prod 1.2")
    reply = await change(engine, "rollback prod")
    assert reply.to_json()["result"]["ok"]
    assert images(rt)["api"] == "shop/api:1.1" and images(rt)["worker"] == "shop/worker:1.1"
    await change(engine, "rollback prod --to 1.3")
    assert images(rt)["api"] == "shop/api:1.3"
    kinds = [(d["kind"], d["outcome"]) for d in await engine.deploys.list("prod")]
    assert kinds == [("rollback", "succeeded"), ("rollback", "succeeded"), ("deploy", "succeeded"),
                     ("deploy", "succeeded")]  # fmt: skip


async def test_flag_recreates_the_carriers_with_the_new_value(engine, rt):
    reply = await change(engine, "flag prod FEATURE_CHECKOUT off")
    assert reply.to_json()["result"]["ok"]
    worker = next(c for c in rt.items if c.service == "worker")
    assert worker.env["FEATURE_CHECKOUT"] == "off" and worker.image == "shop/worker:1.0"
    reply = await engine.handle(Request(actor="U0OPERATOR", door="cli", text="flag prod FEATURE_NOPE on"))
    assert reply.exit_code == 2 and "no service of prod carries FEATURE_NOPE" in reply.error


async def test_shutdown_and_startup_follow_the_stages(engine, rt):
    reply = await change(engine, "shutdown prod")
    assert reply.to_json()["result"]["ok"]
    stops = [c for c in rt.calls if c.startswith("stop")]
    assert [s.split()[1] for s in stops][:2] in (["api", "worker"], ["worker", "api"])
    assert [s.split()[1] for s in stops][2:] == ["redis", "postgres"]
    assert all(c.state != "running" for c in rt.items)
    reply = await change(engine, "startup prod")
    result = reply.to_json()["result"]
    assert result["ok"] and [s["services"] for s in result["stages"]] == [["postgres"], ["redis"], ["api", "worker"]]
    starts = [c.split()[1] for c in rt.calls if c.startswith("start ")]
    assert starts[:2] == ["postgres", "redis"] and sorted(starts[2:]) == ["api", "worker"]
    assert all(c.state == "running" for c in rt.items)


async def test_a_service_whose_own_replace_failed_is_put_back_too(engine, rt):
    # a Swarm update can fail without Swarm's own rollback (paused, timed out): opsbot puts it back itself
    from adapters.errors import AdapterError
    from adapters.models import Replacement

    real_replace, reverted = rt.replace, []

    async def replace(service, image, **kw):
        if service == "worker":
            raise AdapterError("the update of service 'worker' did not finish within 300s (updating: 1 of 2)")
        return await real_replace(service, image, **kw)

    async def revert(record: Replacement):
        reverted.append((record.service, record.image_before, record.image_after))

    rt.replace, rt.revert = replace, revert
    result = (await change(engine, "deploy prod 1.1")).to_json()["result"]
    assert not result["ok"] and result["problem"].startswith("replacing worker failed: the update of service")
    assert reverted == [("worker", "shop/worker:1.0", "shop/worker:1.1"), ("api", "shop/api:1.0", "shop/api:1.1")]
