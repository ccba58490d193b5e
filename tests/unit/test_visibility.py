"""Listings across environments apply each environment's own access rules (issue 11, finding 3)."""

from __future__ import annotations

import copy
import json
import time
import types
from typing import Any

import pytest

from adapters.errors import UserError
from adapters.fakes import FakeBackends, FakeProbe, FakeRuntime
from bot.config.redact import Redactor
from bot.core.db import Database
from bot.core.dedupe import Deliveries
from bot.core.engine import Engine, Request
from bot.core.incident import Observation
from bot.slack.alert_clicks import AlertClick, alert_words
from bot.slack.door import SlackDoor
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


async def alert_of(engine, env, what, summary):
    await engine.incidents.observe(env, ["health_check"], [Observation("health_check", what, "critical", summary)],
                                   time.time())  # fmt: skip
    [inc] = [i for i in await engine.incidents.open(env) if i.what == what]
    return inc


async def test_alerts_without_an_environment_show_only_the_environments_the_caller_may_read(engine):
    await alert_of(engine, "prod", "API Health", "prod api down")
    await alert_of(engine, "secure", "api", "vault-breach-marker")
    await engine.incidents.silence("secure", "api", 3600, "quiet-secure-marker", "U0SECOPS")
    await engine.maintenance.start("secure", "db_maintenance", holds=["api"], actor="U0SECOPS-marker",
                                   door="slack", request_id="r1")  # fmt: skip

    assert (await run(engine, "alerts secure", "U0STRANGER")).exit_code == 2  # refused by name...
    stranger = (await run(engine, "alerts", "U0STRANGER")).to_json()  # ... and nothing of it across environments
    assert "secure" not in json.dumps(stranger) and "marker" not in json.dumps(stranger), stranger
    assert [a["summary"] for a in stranger["alerts"]] == ["prod api down"]
    for reader in ("U0SECURE", "U0ADMIN", "local:alice"):
        shown = (await run(engine, "alerts", reader)).to_json()
        assert {a["environment"] for a in shown["alerts"]} == {"prod", "secure"}, reader
        assert [s["reason"] for s in shown["silences"]] == ["quiet-secure-marker"], reader
        assert [(m["environment"], m["task"]) for m in shown["maintenance"]] == [("secure", "db_maintenance")]


async def test_ack_is_decided_by_the_alerts_own_environment_and_hides_what_it_may_not_read(engine):
    secret = await alert_of(engine, "secure", "api", "vault-breach-marker")
    prod = await alert_of(engine, "prod", "API Health", "prod api down")

    # a prod operator: the secure alert is answered exactly as an unknown one, and stays unacknowledged
    hidden = await run(engine, f"ack {secret.id}", "U0OPERATOR")
    unknown = await run(engine, "ack 0badc0de", "U0OPERATOR")
    assert hidden.exit_code == unknown.exit_code == 2
    assert hidden.error == f"alert {secret.id} is unknown or not yours: `alerts` lists the ones you may see"
    assert hidden.error.replace(secret.id, "0badc0de") == unknown.error
    assert (await engine.incidents.get(secret.id)).state == "firing"
    assert (await run(engine, f"ack {secret.id} --dry-run", "U0OPERATOR")).error == hidden.error
    refused = [e for e in await engine.audit.entries(limit=100) if e["command"].startswith("ack")]
    assert [(e["event"], e["environment"], e["outcome"]) for e in refused] == [
        ("refused", None, hidden.error), ("refused", None, unknown.error), ("refused", None, hidden.error)]  # fmt: skip
    # the click path (Silence 1h, Troubleshoot) answers the same, before anything names the environment
    for verb in ("silence", "troubleshoot"):
        click = AlertClick(verb=verb, alert_id=secret.id, user="U0OPERATOR", channel="C1", message_ts="1.0", key="k")
        with pytest.raises(UserError) as exc:
            await alert_words(engine.incidents, click, engine.access)
        assert str(exc.value) == hidden.error
    # a reader of secure who may not change it is told why, as elsewhere
    viewer = await run(engine, f"ack {secret.id}", "U0SECURE")
    assert viewer.exit_code == 2 and "may not run ack in secure: it needs the admins or operators role" in viewer.error
    # secure's operator acknowledges it, recorded under secure (so hidden from the stranger's `audit`)...
    assert (await run(engine, f"ack {secret.id}", "U0SECOPS")).exit_code == 0
    assert (await engine.incidents.get(secret.id)).acked_by == "U0SECOPS"
    done = [e for e in await engine.audit.entries(limit=100) if e["command"] == f"ack {secret.id}"
            and e["actor"] == "U0SECOPS"]  # fmt: skip
    assert done and {e["environment"] for e in done} == {"secure"}
    seen = (await run(engine, "audit --limit 500", "U0STRANGER")).to_json()["entries"]
    assert not [e for e in seen if e["actor"] == "U0SECOPS" or "vault" in json.dumps(e)], seen
    # ... but not prod's, whose (top-level) rules do not make them an operator; the prod operator does
    assert "needs the admins or operators role" in (await run(engine, f"ack {prod.id}", "U0SECOPS")).error
    assert (await run(engine, f"ack {prod.id}", "U0OPERATOR")).exit_code == 0


async def test_a_refused_alert_button_is_audited_and_tells_only_the_clicker_nothing_more(engine):
    secret = await alert_of(engine, "secure", "api", "vault-breach-marker")
    told: list[tuple[dict, Any]] = []

    class Door(SlackDoor):
        def __init__(self) -> None:  # only what a click's refusal uses: no Bolt app, no Slack
            self.app = types.SimpleNamespace(engine=engine)
            self.deliveries = Deliveries(engine.db)

        async def _ephemeral(self, body, message):
            told.append((body, message))

    for alert_id in (secret.id, "0badc0de"):
        click = AlertClick(verb="silence", alert_id=alert_id, user="U0OPERATOR", channel="C1", message_ts="1.0",
                           key=f"k-{alert_id}")  # fmt: skip
        await Door()._alert_action(click)
    assert [(body["user_id"], message.text) for body, message in told] == [
        ("U0OPERATOR", f":no_entry: alert {i} is unknown or not yours: `alerts` lists the ones you may see")
        for i in (secret.id, "0badc0de")]  # fmt: skip
    rows = [e for e in await engine.audit.entries(limit=10) if e["command"].startswith("silence button")]
    assert [(e["actor"], e["event"], e["environment"]) for e in rows] == [("U0OPERATOR", "refused", None)] * 2
    assert (await engine.incidents.get(secret.id)).state == "firing" and not await engine.incidents.silences(None)
