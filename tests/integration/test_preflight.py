"""``opsbot check --live`` against real parties: the test engine's project, PostgreSQL, moto's S3, the Slack
stand-in, Prometheus, an SMTP server, TLS servers with a test CA; and against parties that misbehave: an
engine that hangs, an S3 endpoint that refuses the write, a token without a scope, a port nobody listens on."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import missing
from tests.helpers.configs import example_config
from tests.helpers.http_servers import free_port
from tests.helpers.parties import (
    PartyMissing,
    hanging_engine,
    make_ca,
    prometheus_server,
    refusing_s3,
    smtp_server,
    tls_server,
)
from tests.helpers.slack import BOT_SCOPES, SlackStandIn

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "xoxb-preflight-0000-abcdefghijklmnop"


async def check_live(config: Path, env: dict[str, str], *extra: str, timeout: float = 5) -> tuple[int, dict[str, Any],
                                                                                                    str]:  # fmt: skip
    """Run ``opsbot check --live --json``; its exit code, its JSON and its stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "check", "--live", "--json", "--config", str(config), "--timeout", str(timeout),
        *extra, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, cwd=str(ROOT),
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 180)
    assert "Traceback" not in out.decode() + err.decode(), err.decode()
    assert proc.returncode is not None and out, err.decode()
    return proc.returncode, json.loads(out), err.decode()


def rows(report: dict[str, Any], check: str) -> list[dict[str, Any]]:
    return [r for r in report["rows"] if r["check"] == check]


def one(report: dict[str, Any], check: str) -> dict[str, Any]:
    [row] = rows(report, check)
    return row


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPSBOT_", "PAGERDUTY_", "SSL_"))}
    e["OPSBOT_DB"] = str(tmp_path / "opsbot.db")
    return e


@pytest.fixture(scope="module")
def prometheus() -> Iterator[str]:
    try:
        with prometheus_server() as url:
            yield url
    except PartyMissing as exc:
        missing(str(exc))


def write(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def shop_config(shop: Any, postgres: Any, *, store: str, tls_url: str, prometheus: str, smtp: str,
                requirements: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """The example's second-round config, pointed at the test project, the cluster and the parties."""
    config = example_config(second_round=True)
    prod = config["environments"]["prod"]
    prod["url"] = shop.url
    prod["runtime"].update(docker_host=shop.host, project=shop.project)
    prod["health_checks"] = [
        {"name": "API Health", "url": "{url}/health", "expect": {"status": "ok"}},
        {"name": "Front door", "url": f"{tls_url}/health", "expect": {"status": "ok"}},
    ]
    prod["backup"] = {
        "store": store,
        "database": {"dump": postgres.tool("pg_dump", "postgres"), "restore": postgres.tool("psql", "postgres")},
        "files": {"from": "s3://preflight-files/", "to": "s3://preflight-copies/prod/"},
    }
    config["requirements"] = requirements
    config["thresholds"]["response_time_ms"] = {"warning": 5000, "critical": 10000}  # a busy test machine
    config["maintenance"]["tasks"] = [t for t in config["maintenance"]["tasks"] if t["task"] != "db_maintenance"]
    config["monitoring"]["prometheus"]["url"] = prometheus
    config["alerting"]["email"]["smtp_url"] = smtp
    return config


async def test_a_ready_environment_is_ok_row_by_row_and_short_of_its_requirements_is_critical(
    tmp_path: Path, env: dict[str, str], shop: Any, postgres: Any, moto_s3: Any, prometheus: str
) -> None:
    s3 = moto_s3.client()
    for bucket in ("preflight-ok", "preflight-files", "preflight-copies"):
        s3.create_bucket(Bucket=bucket)
    ca = make_ca(tmp_path / "ca.pem")
    async with SlackStandIn() as slack, tls_server(ca, days=100) as tls_url:
        env.update(SLACK_API_URL=slack.url, SLACK_BOT_TOKEN=TOKEN, PAGERDUTY_ROUTING_KEY="r" * 32,
                   SSL_CERT_FILE=str(tmp_path / "ca.pem"))  # fmt: skip
        with smtp_server() as smtp:
            enough = {"hardware": {"cpu_cores": 1, "memory_gb": 0.5, "disk_gb": 1},
                      "software": {"docker": "20.10", "postgres": "12"},
                      "ports": [{"service": "api", "port": shop.port}]}  # fmt: skip
            config = shop_config(shop, postgres, store="s3://preflight-ok/prod/", tls_url=tls_url,
                                 prometheus=prometheus, smtp=smtp, requirements=enough)  # fmt: skip
            code, report, err = await check_live(write(tmp_path / "ops.yml", config), env)
            bad = [r for r in report["rows"] if r["severity"] != "ok"]
            assert bad == [] and code == 0 and report["overall"] == "ok", err

            checks = [r["check"] for r in report["rows"]]
            for name in ("Docker engine", "CPU", "Memory", "Disk", "Database", "Port", "Health", "TLS",
                         "Backup store", "S3 credentials", "Slack", "PagerDuty key", "SMTP", "Prometheus"):  # fmt: skip
                assert name in checks, name
            version = shop.engine.client.version()["Version"]
            assert f"Docker {version}" in one(report, "Docker engine")["reason"]
            assert "PostgreSQL" in one(report, "Database")["reason"]
            assert postgres.psql("SHOW server_version").split()[0] in one(report, "Database")["reason"]
            assert "SHOW server_version" in one(report, "Database")["reason"]
            assert f"127.0.0.1:{shop.port}" in one(report, "Port")["reason"]
            assert "free of" in one(report, "Disk")["reason"]
            assert "days left" in one(report, "TLS")["reason"] and one(report, "TLS")["target"].startswith("https://")
            assert {r["target"] for r in rows(report, "S3 credentials")} == {
                "s3://preflight-ok",
                "s3://preflight-files",
                "s3://preflight-copies",
            }
            assert "no event sent" in one(report, "PagerDuty key")["reason"]
            assert slack.calls_to("auth.test"), "auth.test was not called"
            # the store check leaves nothing behind
            assert s3.list_objects_v2(Bucket="preflight-ok").get("KeyCount", 0) == 0

            # the same environment held against requirements it does not meet
            short = {"hardware": {"cpu_cores": 4096, "memory_gb": 100000, "disk_gb": 1000000},
                     "software": {"docker": "99.1", "postgres": "99"}}  # fmt: skip
            async with tls_server(ca, days=3) as expiring:
                config = shop_config(shop, postgres, store="s3://preflight-ok/prod/", tls_url=expiring,
                                     prometheus=prometheus, smtp=smtp, requirements=short)  # fmt: skip
                code, report, _ = await check_live(write(tmp_path / "short.yml", config), env)
    assert code == 1 and report["overall"] == "critical"
    for name, words in (("Docker engine", "older than the minimum 99.1"), ("CPU", "fewer than the minimum 4096"),
                        ("Memory", "less than the minimum 100000 GB"), ("Disk", "smaller than the minimum"),
                        ("Database", "older than the minimum 99"), ("TLS", "fewer than 7")):  # fmt: skip
        row = one(report, name)
        assert row["severity"] == "critical" and words in row["reason"], row


async def test_an_engine_that_hangs_is_critical_within_the_bound(tmp_path: Path, env: dict[str, str]) -> None:
    config = example_config()
    prod = config["environments"]["prod"]
    prod["url"] = f"http://127.0.0.1:{free_port()}"
    prod.pop("backup")
    config["schedules"] = []
    config["requirements"] = {"hardware": {"cpu_cores": 1}, "ports": [{"service": "postgres", "port": 5432}]}
    async with hanging_engine(tmp_path) as host:
        prod["runtime"]["docker_host"] = host
        code, report, _ = await check_live(write(tmp_path / "ops.yml", config), env, timeout=2)
    assert code == 1
    engine = one(report, "Docker engine")
    assert engine["severity"] == "critical" and "within 2s" in engine["reason"], engine
    for name in ("CPU", "Memory", "Disk", "Port"):
        assert one(report, name)["severity"] == "critical"
    # every row is cut off at its bound (2 s and the grace of 1 s), not left to the engine
    assert max(r["ms"] for r in report["rows"]) < 3000 + 1000
    health = rows(report, "Health")  # the other rows went on meanwhile
    assert len(health) == 3 and all(r["severity"] == "critical" and "refused" in r["reason"] for r in health)


async def test_an_s3_endpoint_refusing_the_write_is_critical(tmp_path: Path, env: dict[str, str]) -> None:
    config = example_config()
    prod = config["environments"]["prod"]
    prod["runtime"]["docker_host"] = f"unix://{tmp_path}/no-docker.sock"
    prod["backup"]["store"] = "s3://refusing-bucket/prod/"
    async with refusing_s3() as (url, seen):
        env.update(AWS_ENDPOINT_URL=url, AWS_ACCESS_KEY_ID="AKIAPREFLIGHTTEST", AWS_SECRET_ACCESS_KEY="x" * 40,
                   AWS_DEFAULT_REGION="us-east-1")  # fmt: skip
        code, report, _ = await check_live(write(tmp_path / "ops.yml", config), env, "--env", "prod")
    assert code == 1
    store = one(report, "Backup store")
    assert store["severity"] == "critical" and "AccessDenied" in store["reason"], store
    assert any(s.startswith("POST /refusing-bucket/prod/opsbot-preflight-prod-") for s in seen), seen
    credentials = one(report, "S3 credentials")
    assert credentials["severity"] == "ok" and "…TEST" in credentials["reason"], credentials


async def test_a_slack_token_missing_a_scope_is_critical_and_names_it(tmp_path: Path, env: dict[str, str]) -> None:
    config = example_config()
    config["environments"]["prod"]["runtime"]["docker_host"] = f"unix://{tmp_path}/no-docker.sock"
    path = write(tmp_path / "ops.yml", config)
    async with SlackStandIn() as slack:
        env.update(SLACK_API_URL=slack.url, SLACK_BOT_TOKEN=TOKEN)
        slack.scopes = [s for s in BOT_SCOPES if s != "usergroups:read"]
        code, report, _ = await check_live(path, env)
        assert code == 1
        row = one(report, "Slack")
        assert row["severity"] == "critical" and "lacks the scope usergroups:read" in row["reason"], row
        slack.scopes = [s for s in BOT_SCOPES if s != "groups:history"]  # only a duplicate at worst: a warning
        _, report, _ = await check_live(path, env)
        row = one(report, "Slack")
        assert row["severity"] == "warning" and "lacks the scope groups:history (without it" in row["reason"], row
        slack.scopes = list(BOT_SCOPES)
        _, report, _ = await check_live(path, env)
        assert one(report, "Slack")["severity"] == "ok"
        env["SLACK_BOT_TOKEN"] = "xoxp-not-a-bot-token"
        _, report, _ = await check_live(path, env)
        row = one(report, "Slack")
        assert row["severity"] == "critical" and "invalid_auth" in row["reason"], row


async def test_a_port_nobody_listens_on_is_critical(tmp_path: Path, env: dict[str, str], shop: Any) -> None:
    config = example_config()
    prod = config["environments"]["prod"]
    prod["url"] = shop.url
    prod["runtime"].update(docker_host=shop.host, project=shop.project)
    nobody = free_port()
    config["requirements"] = {"ports": [{"service": "api", "port": shop.port}, {"service": "postgres", "port": nobody},
                                        {"service": "redis", "port": 6379}]}  # fmt: skip
    code, report, _ = await check_live(write(tmp_path / "ops.yml", config), env, "--env", "prod")
    assert code == 1
    ports = {r["target"]: r for r in rows(report, "Port")}
    assert ports[f"api:{shop.port}"]["severity"] == "ok"
    refused = ports[f"postgres:{nobody}"]
    assert refused["severity"] == "critical" and "connection refused" in refused["reason"], refused
    assert f"nobody accepts TCP on port {nobody} of postgres" in refused["reason"]
    stopped = ports["redis:6379"]  # the test project's redis exited
    assert stopped["severity"] == "critical" and "no running container" in stopped["reason"], stopped


async def test_an_unknown_environment_or_timeout_is_refused(tmp_path: Path, env: dict[str, str]) -> None:
    path = write(tmp_path / "ops.yml", example_config())
    for extra, words in ((("--env", "qa"), "unknown environment 'qa'"), (("--timeout", "0"), "--timeout")):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "check", "--live", "--config", str(path), *extra,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, cwd=str(ROOT),
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 2 and words in err.decode() and out == b"", (out, err)
