"""What only a Swarm answers, on its fake: replicas in status, Swarm's previous image for a rollback."""

from __future__ import annotations

import pytest

from adapters.fakes import FakeBackends, FakeProbe
from adapters.fakes.swarm import FakeSwarmRuntime
from bot.config.redact import Redactor
from bot.core.db import Database
from bot.core.engine import Engine, Request
from tests.unit.conftest import make_config


@pytest.fixture
def swarm():
    rt = FakeSwarmRuntime()
    rt.add("api", image="shop/api:1.1", health="healthy")
    rt.add("worker", image="shop/worker:1.1", number=1)
    rt.add("worker", image="shop/worker:1.1", number=2, state="exited", exit_code=1)
    rt.add("postgres")
    rt.add("redis")
    rt.images |= {"shop/api:1.0", "shop/worker:1.0"}
    return rt


@pytest.fixture
async def engine(tmp_path, swarm):
    probe = FakeProbe()
    for path in ("/health", "/health/db"):
        probe.answer(f"http://127.0.0.1:18080{path}")
    db = Database(tmp_path / "s.db")
    yield Engine(make_config(), FakeBackends({"prod": swarm}, probe), db, Redactor())
    db.close()


async def test_status_shows_running_of_desired_tasks(engine):
    reply = await engine.handle(Request(actor="U0OPERATOR", door="cli", text="status prod"))
    rows = {(s["name"], s.get("replicas")) for s in reply.to_json()["services"]}
    assert ("worker", "1/2") in rows and ("api", "1/1") in rows
    worker = [s for s in reply.to_json()["services"] if s["name"] == "worker"]
    assert any("1 of 2 replicas running" in r for s in worker for r in s["reasons"])


async def test_rollback_without_a_recorded_deploy_uses_swarm_s_previous_images(engine, swarm):
    refused = await engine.handle(Request(actor="U0OPERATOR", door="cli", text="rollback prod"))
    assert refused.exit_code == 2 and "Swarm keeps no earlier image of its deploy services" in refused.error
    swarm.previous = {"api": "shop/api:1.0", "worker": "shop/worker:1.1"}  # worker's is the one it runs
    pending = await engine.handle(Request(actor="U0OPERATOR", door="cli", text="rollback prod"))
    assert pending.to_json()["plan"]["steps"] == ["api: shop/api:1.1 -> shop/api:1.0"]  # worker runs its own
