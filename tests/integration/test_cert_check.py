"""cert_check against real HTTPS servers (aiohttp) with certificates made by trustme: valid, expiring,
expired, for another host, untrusted, self-signed; a host that refuses, one that never answers, and
plain HTTP on the TLS port. Through the inspector, then through the engine as the scheduler runs it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import yaml

from adapters.tls.inspector import TlsInspector
from bot.config.settings import Settings
from bot.core.app import App
from bot.core.engine import Request
from tests.helpers.tls import tls_world


@pytest.fixture
async def world(tmp_path):
    async with tls_world(tmp_path) as w:
        yield w


async def test_the_inspector_reads_what_each_server_presents(world):
    inspector = TlsInspector(cafile=world.cafile)
    valid = await inspector.inspect(world.url("valid"), timeout=5)
    assert valid.verified and valid.error is None and valid.names == ["127.0.0.1"] and "trustme" in valid.issuer
    assert 89 <= (valid.not_after - datetime.now(UTC)).days <= 90
    expired = await inspector.inspect(world.url("expired"), timeout=5)
    assert not expired.verified and expired.problem_kind == "expired" and expired.not_after < datetime.now(UTC)
    other = await inspector.inspect(world.url("other_host"), timeout=5)
    assert other.problem_kind == "wrong_host" and other.names == ["other.example"]
    untrusted = await inspector.inspect(world.url("untrusted"), timeout=5)
    assert untrusted.problem_kind == "untrusted" and untrusted.not_after is not None
    mine = await inspector.inspect(world.url("self_signed"), timeout=5)
    assert mine.problem_kind == "self_signed" and mine.self_signed and not mine.verified
    allowed = await inspector.inspect(world.url("self_signed"), timeout=5, allow_self_signed=True)
    assert allowed.verified and allowed.problem is None and allowed.not_after is not None
    refused = await inspector.inspect(world.url("refused"), timeout=5)
    assert refused.error == "no answer: connection refused"
    silent = await inspector.inspect(world.url("silent"), timeout=1)
    assert silent.error == "no answer within 1s (TCP or TLS handshake)"
    plain = await inspector.inspect(world.url("plain_http"), timeout=5)
    assert plain.error is not None and plain.error.startswith(f"not TLS: port {world.ports['plain_http']} answers "
                                                             "in plain HTTP")  # fmt: skip


async def test_cert_check_through_the_engine_judges_every_url(world, tmp_path, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", world.cafile)  # the system's trust, as OpenSSL reads it, is our CA
    names = ["expiring", "expired", "other_host", "untrusted", "self_signed", "refused", "silent", "plain_http"]
    config = {
        "project": "tls", "access": {"operators": ["U0OPERATOR"], "admins": ["U0ADMIN"]},
        "environments": {"prod": {
            "url": world.url("valid", ""),
            "runtime": {"kind": "compose", "project": "tls", "docker_host": "unix:///nonexistent.sock"},
            "services": {"api": {}},
            "health_checks": [{"name": "API", "url": "{url}/health"}]
            + [{"name": n, "url": world.url(n)} for n in names],
        }},
        "slack": {"alert_channels": {"critical": "C0CRIT", "warning": "C0WARN", "info": "C0INFO"}},
        "maintenance": {"tasks": [{"task": "cert_check", "env": "prod", "every": "24h", "warning_days": 21,
                                   "critical_days": 7}]},
    }  # fmt: skip
    path = tmp_path / "ops.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    app = App.build(Settings(opsbot_config=str(path), opsbot_db=str(tmp_path / "o.db")))
    try:
        reply = await app.engine.handle(Request(actor="scheduler", door="scheduler",
                                                words=["maintenance", "prod", "cert_check"]))  # fmt: skip
        data = reply.to_json()
        assert reply.exit_code == 1 and data["outcome"] == "critical", data
        rows = {int(r["name"].rsplit(":", 1)[1]): r for r in data["rows"]}
        by = {name: rows[port] for name, port in world.ports.items()}
        assert len(rows) == 9  # {url}/health is the url's own host and port: connected to once
        assert by["valid"]["severity"] == "ok" and "valid for 90 days" in by["valid"]["detail"]
        assert by["expiring"]["severity"] == "critical" and "expires in 3 days" in by["expiring"]["detail"]
        assert by["expired"]["severity"] == "critical" and by["expired"]["detail"].startswith("expired on")
        assert by["other_host"]["detail"] == "issued for other.example, not for 127.0.0.1"
        assert "its chain is not trusted (unable to get local issuer certificate" in by["untrusted"]["detail"]
        assert by["self_signed"]["detail"].startswith("self-signed (not allowed")
        assert by["refused"]["detail"] == "no answer: connection refused"
        assert by["silent"]["detail"].startswith("no answer within 10s")
        assert "answers in plain HTTP" in by["plain_http"]["detail"]
        assert all(r["severity"] == "critical" for n, r in by.items() if n != "valid")
        last = await app.engine.maintenance.last("prod", "cert_check")
        assert last["severity"] == "critical" and last["actor"] == "scheduler"
    finally:
        await app.close()
