"""ops.yml for tests that build their own environments from the bundled example."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
#: the second round's top-level sections: they name the example's environments and services, so a test
#: that replaces ``environments`` drops them unless it is about them
SECOND_ROUND = ("requirements", "monitoring", "alerting", "maintenance", "security_maintenance")


def example_config(*, second_round: bool = False) -> dict[str, Any]:
    """examples/ops.yml as a fresh dict; without the second round's sections unless asked for."""
    config: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "ops.yml").read_text())
    if not second_round:
        for key in SECOND_ROUND:
            config.pop(key, None)
        for env in config["environments"].values():
            if isinstance(env.get("backup"), dict):
                env["backup"].pop("files", None)
    return config


#: the alert channels of the scheduled-health tests
ALERT_CHANNELS = {"critical": "C0CRITICAL", "warning": "C0WARNING", "info": "C0INFO"}


def scheduled_health(url: str) -> dict[str, Any]:
    """The example's ops.yml reduced to prod's API Health (``url``/health) checked every second, alerts in
    the channels of ``ALERT_CHANNELS``."""
    config = example_config()
    config["slack"] = {"alert_channels": ALERT_CHANNELS}
    config["environments"] = {"prod": {
        "url": url,
        "runtime": {"kind": "compose", "project": "nothing-here", "docker_host": "unix:///nonexistent.sock"},
        "services": {"api": {}},
        "health_checks": [{"name": "API Health", "url": "{url}/health", "expect": {"status": "ok"}, "timeout": "2s"}],
    }}  # fmt: skip
    config["troubleshooting"] = [
        {"issue": "Down", "symptoms": ["down"], "resolution": "Restart", "diagnose": ["health"]}
    ]
    config["schedules"] = [{"task": "health_check", "env": "prod", "every": "1s"}]
    return config


def schedule_config(path: Path, url: str) -> Path:
    """``scheduled_health(url)`` written to ``path``."""
    path.write_text(yaml.safe_dump(scheduled_health(url), sort_keys=False))
    return path
