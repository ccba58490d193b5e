"""Fixtures for the fast unit tests: a small config, and an engine on fakes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

BASE: dict[str, Any] = {
    "project": "shop",
    "default_environment": "prod",
    "access": {
        "viewers": [],
        "operators": ["U0OPERATOR"],
        "approvers": ["U0APPROVER1", "U0APPROVER2"],
        "admins": ["U0ADMIN"],
    },
    "environments": {
        "prod": {
            "url": "http://127.0.0.1:18080",
            "runtime": {"kind": "compose", "project": "shop"},
            "services": {
                "api": {"image": "shop/api", "deploy": True},
                "worker": {"image": "shop/worker", "deploy": True},
                "postgres": {},
                "redis": {},
            },
            "health_checks": [
                {"name": "API Health", "url": "{url}/health", "expect": {"status": "ok"}},
                {"name": "Database", "url": "{url}/health/db", "expect": {"status": "ok"}},
            ],
            "diagnostics": {
                "db_connections": {"service": "postgres", "command": ["psql", "-tA", "-c", "SELECT 1"]},
            },
        },
        "staging": {
            "runtime": {"kind": "compose", "project": "shop-staging"},
            "services": {"api": {"image": "shop/api", "deploy": True}},
        },
    },
    "troubleshooting": [
        {
            "issue": "API Timeout",
            "symptoms": ["504", "timeout", "gateway timeout"],
            "resolution": "Check DB connections, increase timeout",
            "diagnose": ["containers", "health", "logs", "db_connections"],
        },
        {
            "issue": "Out of Memory",
            "symptoms": ["OOM", "out of memory", "killed"],
            "resolution": "Increase memory, check for leaks",
            "diagnose": ["containers", "stats"],
        },
        {
            "issue": "High Latency",
            "symptoms": ["slow", "latency", "high latency"],
            "resolution": "Check DB queries, add caching",
            "diagnose": ["health", "stats"],
        },
        {
            "issue": "Connection Refused",
            "symptoms": ["502", "connection refused", "refused"],
            "resolution": "Restart services, check ports",
            "diagnose": ["containers", "health"],
        },
    ],
    "escalation": [
        {"level": "L1", "contact": "<!subteam^S0ONCALL>", "when": "First response"},
        {"level": "L2", "contact": "<@U0SENIOR>", "when": "Complex issues"},
    ],
}


def make_config(**overrides: Any):
    """A validated config: BASE with top-level keys replaced."""
    from bot.config import validate_config

    data = copy.deepcopy(BASE)
    data.update(overrides)
    config, problems = validate_config(data)
    assert not problems, problems
    return config


@pytest.fixture
def config():
    return make_config()


@pytest.fixture
async def world(tmp_path):
    """An alert world on fakes, in simulated time (``tests.helpers.alert_world``); closed after the test."""
    from tests.helpers.alert_world import AlertWorld

    w = AlertWorld(str(tmp_path / "a.db"))
    yield w
    w.close()
