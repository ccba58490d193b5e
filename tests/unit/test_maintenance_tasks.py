"""The maintenance tasks on fakes: db_maintenance (streamed, bounded, holding the database's alerts),
cert_check's judgement of every kind of certificate, image_age's thresholds."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest

from adapters.certs import CertInfo
from adapters.fakes import FakeBackends, FakeProbe, FakeRuntime
from bot.config.guide import MaintenanceTask
from bot.config.redact import Redactor
from bot.core.db import Database
from bot.core.engine import Engine, Request
from commands.cert_check import judge
from tests.unit.conftest import BASE, make_config

NOW = datetime(2026, 12, 6, 2, 30, tzinfo=UTC)  # a Sunday, inside the window
SECRET = "pg-secret-value-1234"


def config(**task):
    envs = copy.deepcopy(BASE["environments"])
    envs["prod"]["url"] = "https://shop.example"
    envs["prod"]["health_checks"].append({"name": "Admin", "url": "https://admin.example:8443/health"})
    envs["prod"]["backup"] = {"store": "file:///tmp/none/", "database": {
        "service": "postgres", "dump": ["pg_dump", "app"], "restore": ["psql", "app"]}}  # fmt: skip
    tasks = [
        {"task": "db_maintenance", "env": "prod", "every": "7d",
         "command": ["vacuumdb", "--all", "--analyze", f"--password={SECRET}"], **task},
        {"task": "cert_check", "env": "prod", "every": "1d", "warning_days": 21, "critical_days": 7},
    ]  # fmt: skip
    windows = {"prod": [{"days": ["sun"], "from": "02:00", "to": "04:00"}]}
    return make_config(environments=envs, maintenance={"windows": windows, "tasks": tasks})


@pytest.fixture
def backends():
    rt = FakeRuntime()
    for service in ("api", "worker", "postgres"):
        rt.add(service)
    return FakeBackends({"prod": rt}, FakeProbe())


async def make_engine(tmp_path, backends, **task):
    engine = Engine(config(**task), backends, Database(tmp_path / "t.db"), Redactor([SECRET]))
    engine.changes.clock = lambda: NOW
    return engine


async def test_db_maintenance_streams_its_output_and_holds_the_database_alerts(tmp_path, backends):
    engine = await make_engine(tmp_path, backends)
    seen: list[tuple[str, object]] = []

    def vacuumdb(argv, stdin):
        out = "".join(f"vacuumdb: vacuuming database \"db{i}\"\n" for i in range(3)).encode()
        return 0, out, b""

    backends.runtime("prod").stream_handler = vacuumdb

    async def progress(message):
        seen.append((message, await engine.maintenance.holding("prod", "postgres")))

    reply = await engine.handle(Request(actor="U0OPERATOR", door="cli", text="maintenance prod db_maintenance",
                                        progress=progress))  # fmt: skip
    data = reply.to_json()
    assert reply.exit_code == 0 and data["outcome"] == "ok", data
    assert "done in service postgres" in data["summary"] and SECRET not in str(data)
    assert 'vacuuming database "db2"' in data["output"]
    lines = [m for m, _ in seen if "vacuuming" in m]
    assert len(lines) == 3 and all(held is not None and held["task"] == "db_maintenance" for m, held in seen
                                   if "vacuuming" in m)  # fmt: skip
    assert await engine.maintenance.holding("prod", "postgres") is None  # released
    assert await engine.maintenance.holding("prod", "api") is None
    last = await engine.maintenance.last("prod", "db_maintenance")
    assert last["severity"] == "ok" and last["holds"] == '["postgres"]'
    events = [e["event"] for e in await engine.audit.entries(limit=20)]
    assert {"maintenance-started", "maintenance-step", "maintenance-finished"} <= set(events)
    engine.db.close()


async def test_db_maintenance_failing_is_critical_with_its_stderr(tmp_path, backends):
    engine = await make_engine(tmp_path, backends)
    backends.runtime("prod").stream_handler = lambda argv, _: (
        1, b"", b'vacuumdb: error: could not connect: database "app" is not currently accepting connections\n')
    reply = await engine.handle(Request(actor="U0OPERATOR", door="cli", text="maintenance prod db_maintenance"))
    data = reply.to_json()
    assert reply.exit_code == 1 and data["outcome"] == "critical"
    assert "exited with 1" in data["summary"] and "not currently accepting connections" in data["summary"]
    assert (await engine.maintenance.last("prod", "db_maintenance"))["severity"] == "critical"
    engine.db.close()


async def test_db_maintenance_command_not_found_says_so(tmp_path, backends):
    engine = await make_engine(tmp_path, backends)
    backends.runtime("prod").stream_handler = lambda argv, _: (
        127, b'OCI runtime exec failed: exec: "vacuumdb": executable file not found in $PATH\r\n', b"")
    request = Request(actor="U0OPERATOR", door="cli", text="maintenance prod db_maintenance")
    data = (await engine.handle(request)).to_json()
    assert data["outcome"] == "critical" and data["summary"] == (
        "vacuumdb is not found in service postgres (exit 127): check the task's command in ops.yml")
    engine.db.close()


async def test_db_maintenance_is_bounded_in_time(tmp_path, backends):
    engine = await make_engine(tmp_path, backends, timeout="1s")
    backends.runtime("prod").delay = 30.0  # the command never answers
    reply = await engine.handle(Request(actor="U0OPERATOR", door="cli", text="maintenance prod db_maintenance"))
    data = reply.to_json()
    assert data["outcome"] == "critical" and "did not finish within 1s: it was stopped" in data["summary"]
    assert await engine.maintenance.holding("prod") is None
    engine.db.close()


async def test_db_maintenance_plan(tmp_path, backends):
    engine = await make_engine(tmp_path, backends)
    data = (await engine.handle(Request(actor="U0OPERATOR", door="cli",
                                        text="maintenance prod db_maintenance --dry-run"))).to_json()  # fmt: skip
    steps = "\n".join(data["plan"]["steps"])
    assert "in service postgres" in steps and "hold the alerts of postgres" in steps and "1h" in steps
    # a dry run only reads (the environment's secrets are learnt first); nothing runs in a container
    assert backends.runtime("prod").calls == ["containers"]
    engine.db.close()


TASK = MaintenanceTask(task="cert_check", env="prod", every=86400.0, warning_days=21, critical_days=7)


def cert(**kw) -> CertInfo:
    base = {"url": "https://shop.example", "host": "shop.example", "port": 443, "verified": True,
            "not_after": NOW + timedelta(days=90), "names": ["shop.example"], "issuer": "CN=Test CA"}  # fmt: skip
    return CertInfo(**{**base, **kw})


@pytest.mark.parametrize(
    ("info", "severity", "words"),
    [
        (cert(), "ok", "valid for 90 days, until 2027-03-06, issued by CN=Test CA"),
        (cert(not_after=NOW + timedelta(days=15)), "warning", "expires in 15 days"),
        (cert(not_after=NOW + timedelta(days=3)), "critical", "expires in 3 days"),
        (cert(verified=False, problem="certificate has expired", problem_kind="expired",
              not_after=NOW - timedelta(days=2)), "critical", "expired on 2026-12-04 (2 days ago)"),
        (cert(verified=False, problem="Hostname mismatch", problem_kind="wrong_host", names=["other.example"]),
         "critical", "issued for other.example, not for shop.example"),
        (cert(verified=False, problem="self-signed certificate", problem_kind="self_signed", self_signed=True),
         "critical", "self-signed (not allowed"),
        (cert(verified=False, problem="unable to get local issuer certificate", problem_kind="untrusted"),
         "critical", "its chain is not trusted (unable to get local issuer certificate; issuer CN=Test CA)"),
        (cert(error="no answer: connection refused", verified=False), "critical", "no answer: connection refused"),
        (cert(error="not TLS: port 443 answers in plain HTTP (WRONG_VERSION_NUMBER)", verified=False), "critical",
         "answers in plain HTTP"),
    ],
)  # fmt: skip
def test_cert_check_judges_each_kind(info, severity, words):
    row = judge(info, TASK, NOW)
    assert row.severity == severity and words in row.detail, row.detail
    assert row.name == "shop.example:443"


async def test_cert_check_connects_to_every_https_url_once(tmp_path, backends):
    engine = await make_engine(tmp_path, backends)
    backends.certs.answers["https://shop.example"] = cert()
    data = (await engine.handle(Request(actor="U0OPERATOR", door="cli", text="maintenance prod cert_check"))).to_json()
    # the url, and the admin check on another port; {url}/health is the same host and port as the url
    assert backends.certs.asked == ["https://shop.example", "https://admin.example:8443/health"]
    rows = {r["name"]: r for r in data["rows"]}
    assert rows["shop.example:443"]["severity"] == "ok" and rows["admin.example:8443"]["severity"] == "critical"
    assert data["outcome"] == "critical" and data["summary"] == "2 certificate(s): 1 critical, 1 ok"
    engine.db.close()
