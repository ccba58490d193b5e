"""The preflight's judgments without the outside world: versions, bounds, the PagerDuty key, the scopes
opsbot needs (the same as app-manifest.yml's), and the table it prints."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapters.errors import AdapterTimeout
from adapters.fakes.runtime import FakeBackends
from bot.config import validate_config
from bot.core.preflight import PreflightReport, PreflightRow, bounded
from bot.core.preflight_rows import REQUIRED_SCOPES, Context, at_least, version_tuple
from bot.core.preflight_shared import pagerduty, shared_checks
from bot.render.preflight import preflight_text
from tests.unit.conftest import BASE

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("found", "minimum", "ok"),
    [
        ("20.10.24+dfsg1", "20.10", True), ("19.03.15", "20.10", False), ("24.0.5", "20.10", True),
        ("20.10", "20.10.1", False), ("15", "15.0", True), ("15.4 (Debian 15.4-1.pgdg120+1)", "15", True),
        ("14.9", "15", False), ("psql (PostgreSQL) 16.1", "15", True),
    ],
)  # fmt: skip
def test_versions_compare_by_their_numbers(found: str, minimum: str, ok: bool) -> None:
    assert at_least(found, minimum) is ok


def test_a_version_is_read_from_what_the_tools_print() -> None:
    assert version_tuple("postgres (PostgreSQL) 15.4 (Debian 15.4-2)") == (15, 4)
    assert version_tuple("no digits here") is None


def test_the_scopes_checked_are_the_manifests() -> None:
    manifest = yaml.safe_load((ROOT / "app-manifest.yml").read_text())
    assert list(REQUIRED_SCOPES) == manifest["oauth_config"]["scopes"]["bot"]


async def test_a_check_that_hangs_or_fails_is_a_critical_row() -> None:
    async def hang() -> list[PreflightRow]:
        await asyncio.Event().wait()
        return []

    async def fails() -> list[PreflightRow]:
        raise AdapterTimeout("Docker engine at unix:///x did not answer within 2s")

    async def bug() -> list[PreflightRow]:
        raise KeyError("a bug")

    [cut] = await bounded("prod", "Docker engine", "unix:///x", hang, 0.05)
    assert (cut.severity, cut.reason, cut.environment) == ("critical", "no answer within 0.05s", "prod")
    [failed] = await bounded("prod", "Docker engine", "unix:///x", fails, 5)
    assert failed.severity == "critical" and failed.reason.endswith("within 2s") and failed.ms is not None
    [unexpected] = await bounded(None, "Slack", "x", bug, 5)
    assert unexpected.severity == "critical" and unexpected.reason.startswith("unexpected error (ref ")
    assert "a bug" not in unexpected.reason


def _context(config: dict[str, Any], environ: dict[str, str]) -> Context:
    ops, problems = validate_config(config)
    assert ops is not None, problems
    return Context(ops, FakeBackends(), environ=environ, slack_token=None, slack_api_url="http://x/api/", timeout=1)


@pytest.mark.parametrize(
    ("value", "routed", "severity", "words"),
    [
        ("", True, "critical", "is not set: alerts routed to pagerduty cannot page anyone"),
        ("", False, "warning", "is not set: pagerduty cannot be used"),
        ("short", True, "warning", "5 characters long"),
        ("k" * 32, True, "ok", "is set (32 characters; no event sent)"),
    ],
)
async def test_the_pagerduty_key_is_present(value: str, routed: bool, severity: str, words: str) -> None:
    config = copy.deepcopy(BASE)
    config["alerting"] = {"critical": {"to": ["pagerduty" if routed else "slack"]},
                          "pagerduty": {"routing_key_env": "PD_KEY"}}  # fmt: skip
    config.setdefault("slack", {})["alert_channels"] = {"critical": "C0CRIT"}
    ctx = _context(config, {"PD_KEY": value} if value else {})
    [row] = await pagerduty(ctx)
    assert row.severity == severity and words in row.reason
    assert not value or value not in row.reason  # the key itself is never shown
    assert [c[0] for c in shared_checks(ctx)] == ["Slack", "PagerDuty key"]


def test_the_table_groups_rows_by_environment_and_says_the_verdict() -> None:
    rows = [
        PreflightRow(environment="prod", check="Docker engine", target="unix:///d.sock", severity="ok",
                     reason="Docker 24.0.5"),
        PreflightRow(environment="prod", check="Port", target="postgres:5432", severity="critical",
                     reason="nobody accepts TCP on port 5432 of postgres"),
        PreflightRow(environment=None, check="Slack", target="https://slack.com/api/", severity="warning",
                     reason="SLACK_BOT_TOKEN is not set"),
    ]  # fmt: skip
    report = PreflightReport(project="shop", environments=["prod"], rows=rows, duration_ms=1234.0, timeout=10)
    text = preflight_text(report)
    lines = text.splitlines()
    assert lines[0].startswith("check --live of shop: prod (3 checks")
    assert lines.index("prod") < lines.index("shared by every environment")
    assert any(line.split()[:3] == ["critical", "Port", "postgres:5432"] for line in lines)
    assert lines[-1] == "overall: critical (1 critical, 1 warning, 1 ok)"
    assert report.exit_code == 1
    ok = PreflightReport(project="shop", environments=["prod"], rows=rows[:1], duration_ms=1, timeout=10)
    assert ok.exit_code == 0 and ok.overall == "ok"
    warned = PreflightReport(project="shop", environments=["prod"], rows=[rows[0], rows[2]], duration_ms=1, timeout=10)
    assert warned.overall == "warning" and warned.exit_code == 0
