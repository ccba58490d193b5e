"""Listings across environments apply each environment's own access rules (issue 11, finding 3)."""

from __future__ import annotations

import copy
import json

import pytest

from adapters.fakes import FakeBackends, FakeProbe, FakeRuntime
from bot.config.redact import Redactor
from bot.core.db import Database
from bot.core.engine import Engine, Request
from tests.unit.conftest import BASE, make_config

#: prod: everyone may read (top-level viewers: []); secure: only U0SECURE reads, U0SECOPS changes
SECURE = {
    "runtime": {"kind": "compose", "project": "shop-secure"},
    "services": {"api": {"image": "shop/api", "deploy": True}},
    "approval": {"required": 1},
    "access": {"viewers": ["U0SECURE"], "operators": ["U0SECOPS"], "approvers": ["U0SECURE"]},
}


@pytest.fixture
async def engine(tmp_path):
    envs = copy.deepcopy(BASE["environments"])
    envs["prod"]["approval"] = {"required": 1}
    envs["secure"] = SECURE
    runtimes = {}
    for name, project in (("prod", "shop"), ("secure", "shop-secure")):
        rt = FakeRuntime()
        rt.add("api", env={"COMPOSE_PROJECT": project})
        runtimes[name] = rt
    engine = Engine(make_config(environments=envs), FakeBackends(runtimes, FakeProbe()), Database(tmp_path / "v.db"),
                    Redactor())  # fmt: skip
    yield engine
    engine.db.close()


async def run(engine, text, actor):
    return await engine.handle(Request(actor=actor, door="slack", text=text))


async def test_audit_and_pending_show_only_the_environments_the_caller_may_read(engine):
    assert (await run(engine, "restart secure api", "U0SECOPS")).result.kind == "approval"
    assert (await run(engine, "restart secure api --break-glass 'db on fire'", "U0SECOPS")).exit_code == 2
    assert (await run(engine, "restart prod api", "U0OPERATOR")).result.kind == "approval"
    assert (await run(engine, "status secure", "U0SECURE")).exit_code in (0, 1)

    # the stranger is refused secure by name...
    assert (await run(engine, "audit --env secure", "U0STRANGER")).exit_code == 2
    assert (await run(engine, "pending secure", "U0STRANGER")).exit_code == 2
    # ... and sees none of its rows or approvals in the listings across environments
    for text in ("audit --limit 500", "audit --user U0SECOPS", "audit --user U0SECURE", "pending"):
        reply = await run(engine, text, "U0STRANGER")
        assert reply.error is None, (text, reply.error)
        shown = json.dumps(reply.to_json())
        assert "secure" not in shown, (text, shown)
    prod_rows = (await run(engine, "audit --limit 500", "U0STRANGER")).to_json()["entries"]
    assert {e["environment"] for e in prod_rows} == {"prod", None}
    [waiting] = (await run(engine, "pending", "U0STRANGER")).to_json()["approvals"]
    assert waiting["environment"] == "prod"

    # the secure viewer sees both environments (prod's top-level rules let everyone read)
    rows = (await run(engine, "audit --limit 500", "U0SECURE")).to_json()["entries"]
    assert {"prod", "secure"} <= {e["environment"] for e in rows}
    assert {a["environment"] for a in (await run(engine, "pending", "U0SECURE")).to_json()["approvals"]} == {
        "prod",
        "secure",
    }
    # the console (a local operator) sees everything
    assert len((await run(engine, "pending", "local:alice")).to_json()["approvals"]) == 2


async def test_rows_of_an_environment_ops_yml_no_longer_has_are_for_admins_only(engine):
    await engine.audit.append(actor="U0X", source="slack", command="status gone", event="succeeded",
                              outcome="ok", environment="gone")  # fmt: skip
    stranger = json.dumps((await run(engine, "audit", "U0STRANGER")).to_json())
    admin = json.dumps((await run(engine, "audit", "U0ADMIN")).to_json())
    assert "status gone" not in stranger and "status gone" in admin
