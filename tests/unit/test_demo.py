"""The demo world (``opsbot serve --demo``) through the real engine: the newcomer's first minute.

The runtime is the contract-tested fake, but the health checks are real HTTP on loopback, the backups
real files, the audit log and approvals real SQLite: what the demo shows is what opsbot does.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from bot.config.settings import Settings
from bot.core.app import App
from bot.core.changes import ApprovalResult
from bot.core.engine import Request
from bot.doors.demo import APPROVER, banner, demo_users, demo_world
from bot.render.text import render_text

ME = "local:newcomer"


@pytest.fixture
async def demo(tmp_path, monkeypatch):
    monkeypatch.delenv("OPSBOT_DEMO_USERS", raising=False)
    settings = Settings(opsbot_db=str(tmp_path / "real.db"), opsbot_config=str(tmp_path / "ops.yml"))
    with demo_world(settings) as world:
        app = App.build(settings, backends=world.backends())
        try:
            yield app, world
        finally:
            await app.close()
    assert not world.root.exists(), "the demo's directory is removed when it ends"
    assert not (tmp_path / "real.db").exists(), "the demo never touches OPSBOT_DB"


async def ask(app, text, actor=ME):
    reply = await app.engine.handle(Request(actor=actor, door="console", text=text))
    return reply, render_text(reply)


async def approve(app, reply, who=APPROVER):
    assert isinstance(reply.result, ApprovalResult) and reply.result.approval["state"] == "pending", render_text(reply)
    approval_id = reply.result.approval["id"]
    request = Request(actor=who, door="console", text=f"approve {approval_id}")
    done = await app.engine.decide(request, approval_id, "approve")
    return done, render_text(done)


async def test_the_first_minute(demo):
    app, world = demo
    assert app.config.project == "shop-demo" and list(app.config.environments) == ["demo"]
    assert Path(app.settings.opsbot_db).parent == world.root

    reply, text = await ask(app, "status demo")
    data = reply.to_json()
    assert {s["name"]: s["severity"] for s in data["services"]} == dict.fromkeys(("api", "worker", "postgres", "redis"),
                                                                                 "ok"), text  # fmt: skip
    # real HTTP on loopback (a slow answer on a loaded machine is a warning, as it should be)
    assert all(c["ok"] and c["status_code"] == 200 for c in data["checks"]) and world.url in text
    assert data["overall"] != "critical"

    reply, text = await ask(app, "troubleshoot 504")
    assert "Issue: API Timeout" in text and "504 Gateway Timeout" in text and "db_connections: 97" in text
    assert world.secret not in text and "refused key [REDACTED]" in text
    assert "@oncall" in text and "<!subteam" not in text and "<@" not in text

    reply, text = await ask(app, "deploy demo 1.1")
    done, text = await approve(app, reply)
    assert done.exit_code == 0 and "deploy 1.1 in demo: OK" in text, text
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{world.url}/health")).json() == {"status": "ok", "version": "1.1"}

    reply, text = await ask(app, "deploy demo 1.2")
    done, text = await approve(app, reply, who="U0BOB")
    assert done.exit_code == 1 and "deploy 1.2 in demo: ROLLED BACK" in text, text
    assert "HTTP/1.1 503" in text and "Rolled back automatically: the previous version runs and verifies again" in text
    versions = {c.service: c.version for c in world.runtime.items if c.state == "running"}
    assert versions["api"] == "1.1" and versions["worker"] == "1.1"

    reply, text = await ask(app, "history")
    rows = reply.to_json()["deploys"]
    assert [(d["version"], d["outcome"]) for d in rows] == [("1.2", "rolled-back"), ("1.1", "succeeded")]
    assert [d["approvers"] for d in rows] == [["U0BOB"], [APPROVER]]

    reply, text = await ask(app, "audit verify")
    assert reply.exit_code == 0 and "audit log intact" in text and "chain verified" in text


async def test_backup_and_restore_through_the_demo_store(demo):
    app, world = demo
    before = list(world.db.orders)
    reply, text = await ask(app, "backup demo")
    assert reply.exit_code == 0, text
    backup_id = reply.to_json()["backup"]["id"]
    listed = (await ask(app, "backups demo"))[0].to_json()["backups"]
    assert [b["id"] for b in listed] == [backup_id] and listed[0]["location"].startswith(f"file://{world.backups}")
    assert list(world.backups.rglob("*.sql.zst")), "a real file in the demo's store"

    world.db.orders.append((4412, "mallory", "0.01"))  # something to undo
    reply, text = await ask(app, f"restore demo {backup_id}")
    done, text = await approve(app, reply)
    assert done.exit_code == 0, text
    assert world.db.orders == before
    stopped = [c for c in world.runtime.calls if c.startswith(("stop ", "start "))]
    assert stopped[:2] == ["stop api", "stop worker"] and "start api" in stopped  # the guide's 7.2 order
    reply, text = await ask(app, "verify-backup demo")
    assert reply.exit_code == 0, text


async def test_the_demo_refuses_what_is_not_there(demo):
    app, _ = demo
    reply, text = await ask(app, "deploy demo 9.9")
    done, text = await approve(app, reply)
    assert done.exit_code == 1 and "not on the engine and no registry has it: nothing was changed" in text
    reply, text = await ask(app, "status prod")
    assert reply.exit_code == 2 and "prod" in text


async def test_a_broken_dump_is_refused_by_psql_and_changes_nothing(demo):
    _, world = demo
    code, _, err = world.db.handler(["psql", "-v", "ON_ERROR_STOP=1"], b"DROP TABLE orders;\n")
    assert code == 3 and b"syntax error" in err and len(world.db.orders) == 3


async def test_health_endpoints_follow_the_runtime(demo):
    _, world = demo
    async with httpx.AsyncClient() as client:
        world.runtime.set_state("postgres", "exited", health="unhealthy")
        r = await client.get(f"{world.url}/health/db")
        assert r.status_code == 503 and json.loads(r.text)["status"] == "error"
        world.runtime.set_state("api", "exited", health="unhealthy")
        assert (await client.get(f"{world.url}/health")).status_code == 502
        assert (await client.get(f"{world.url}/nothing")).status_code == 404


def test_demo_users_are_checked(monkeypatch):
    monkeypatch.setenv("OPSBOT_DEMO_USERS", "U0AAA, W0BBB")
    assert demo_users() == ["U0AAA", "W0BBB"]
    monkeypatch.setenv("OPSBOT_DEMO_USERS", "U0AAA,alice")
    from adapters.errors import ConfigError

    with pytest.raises(ConfigError, match="'alice' is not a Slack user id"):
        demo_users()


async def test_banner_says_demo_and_three_things(demo):
    _, world = demo
    text = banner(world, slack=False)
    assert text.startswith("opsbot DEMO") and "Three things to try" in text
    assert all(cmd in text for cmd in ("status demo", "troubleshoot 504", "deploy demo 1.1"))
    line = banner(world, slack=True)
    assert "\n" not in line and "/ops status demo" in line and "OPSBOT_DEMO_USERS" in line


async def test_the_readme_shows_what_make_run_shows(demo):
    _, world = demo
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    shown = readme.split("starts like this:\n\n```\n", 1)[1].split("```", 1)[0].splitlines()
    printed = banner(world, slack=False).splitlines()
    assert len(shown) == len(printed) - 1  # the README stops before the last line (your own system)
    for readme_line, line in zip(shown, printed, strict=False):
        if line.startswith("Its ops.yml, database and backups:"):
            assert re.fullmatch(r"Its ops.yml, database and backups: /tmp/opsbot-demo-\w+ \(removed at exit\).",
                                readme_line)  # fmt: skip
        else:
            assert readme_line == line
