"""ops.yml's second-round sections: every key validated, every mistake reported with its dotted path,
and every configured section that opsbot does not act on yet said so by ``opsbot check``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.config import not_acted_on, validate_config

ROOT = Path(__file__).resolve().parents[2]


def example() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "examples" / "ops.yml").read_text())


def problems(data: dict[str, Any]) -> dict[str, str]:
    config, found = validate_config(data)
    assert config is None, "expected the config to be refused"
    return {p.path: p.message for p in found}


def test_the_example_reads_every_new_section() -> None:
    config, found = validate_config(example())
    assert found == [] and config is not None
    assert config.requirements is not None
    assert config.requirements.hardware.cpu_cores == 2 and config.requirements.hardware.memory_gb == 4
    assert config.requirements.software.docker == "20.10" and config.requirements.software.postgres == "15"
    assert [(p.service, p.port) for p in config.requirements.ports] == [("postgres", 5432), ("redis", 6379)]
    assert config.monitoring is not None and config.monitoring.prometheus is not None
    assert set(config.monitoring.prometheus.queries) == {"error_rate_percent", "response_time_ms"}
    alerting = config.alerting
    assert alerting is not None and alerting.critical is not None and alerting.info is not None
    assert alerting.critical.to == ["pagerduty", "slack"] and alerting.critical.escalate_after == 300
    assert alerting.info.digest_at == "09:00" and alerting.repeat_after == 4 * 3600
    assert alerting.timezone == "Europe/Berlin"
    assert alerting.pagerduty is not None and alerting.pagerduty.routing_key_env == "PAGERDUTY_ROUTING_KEY"
    assert alerting.email is not None and alerting.email.from_ == "opsbot@example.com"
    maintenance = config.maintenance
    assert maintenance is not None
    window = maintenance.windows["prod"][0]
    assert window.days == ["sun"] and window.from_ == "02:00" and window.to == "04:00"
    assert [t.task for t in maintenance.tasks] == ["db_maintenance", "cert_check", "image_age"]
    assert maintenance.tasks[1].warning_days == 21 and maintenance.tasks[1].critical_days == 7
    assert maintenance.tasks[0].every == 7 * 86400
    duties = {d.item: d for d in config.security_maintenance}
    assert duties["rotate_secrets"].every == 90 * 86400
    assert duties["security_scan"].before == "deploy"
    assert duties["security_scan"].command == ["/usr/local/bin/scan", "--fail-on", "high"]
    files = config.environments["prod"].backup.files  # type: ignore[union-attr]
    assert files is not None and files.from_ == "s3://production-files/" and files.to == "s3://backup-files/prod/"


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        (lambda d: d["maintenance"]["windows"]["prod"][0].update({"from": "25:00"}),
         "maintenance.windows.prod.0.from", "invalid time '25:00'"),
        (lambda d: d["maintenance"]["windows"]["prod"][0].update({"days": ["funday"]}),
         "maintenance.windows.prod.0.days.0", "invalid day 'funday'"),
        (lambda d: d["maintenance"]["windows"]["prod"][0].update({"to": 120}),
         "maintenance.windows.prod.0.to", "write it in quotes"),
        (lambda d: d["maintenance"]["windows"]["prod"].append({"days": ["sun"], "from": "03:00", "to": "05:00"}),
         "maintenance.windows.prod.1", "overlaps window maintenance.windows.prod.0"),
        (lambda d: d["maintenance"]["windows"]["prod"].append({"days": ["sat"], "from": "23:00", "to": "02:30"}),
         "maintenance.windows.prod.1", "overlaps window"),
        (lambda d: d["maintenance"]["windows"].update({"qa": [{"days": ["mon"], "from": "01:00", "to": "02:00"}]}),
         "maintenance.windows.qa", "unknown environment 'qa'"),
        (lambda d: d["maintenance"]["windows"]["prod"][0].update({"from": "04:00"}),
         "maintenance.windows.prod.0", "at least a minute"),
        (lambda d: d["maintenance"]["tasks"][0].pop("command"),
         "maintenance.tasks.0", "db_maintenance needs a command"),
        (lambda d: d["maintenance"]["tasks"][1].update({"warning_days": 3}),
         "maintenance.tasks.1", "warning_days (3) must be more days before expiry"),
        (lambda d: d["maintenance"]["tasks"][2].update({"critical_days": 10}),
         "maintenance.tasks.2", "warning_days (30) must be a younger age"),
        (lambda d: d["maintenance"]["tasks"][1].update({"command": ["openssl"]}),
         "maintenance.tasks.1", "cert_check runs no command"),
        (lambda d: d["maintenance"]["tasks"][1].update({"task": "defrag"}),
         "maintenance.tasks.1.task", "input should be"),
        (lambda d: d["maintenance"]["tasks"][1].update({"env": "qa"}),
         "maintenance.tasks.1.env", "unknown environment 'qa'"),
        (lambda d: d["alerting"]["critical"].update({"to": ["pagerduty", "sms"]}),
         "alerting.critical.to.1", "input should be"),
        (lambda d: d["alerting"].pop("pagerduty"),
         "alerting", "critical goes to pagerduty: add alerting.pagerduty"),
        (lambda d: d["alerting"].pop("email"), "alerting", "info goes to email"),
        (lambda d: d["slack"]["alert_channels"].pop("warning"),
         "alerting.warning.to", "slack.alert_channels has no warning channel"),
        (lambda d: d["alerting"]["warning"].update({"digest_at": "09:00"}),
         "alerting.warning", "digest_at is the time of the email digest"),
        (lambda d: d["alerting"].update({"timezone": "Mars/Olympus"}),
         "alerting.timezone", "unknown time zone 'Mars/Olympus'"),
        (lambda d: d["alerting"].update({"repeat_after": "-1h"}), "alerting.repeat_after", "invalid duration"),
        (lambda d: d["alerting"]["pagerduty"].update({"routing_key_env": "pd key"}),
         "alerting.pagerduty.routing_key_env", "invalid environment variable name"),
        (lambda d: d["alerting"]["email"].update({"smtp_url": "smtp://ops:hunter2@mail:25"}),
         "alerting.email", "must not carry a password"),
        (lambda d: d["alerting"]["email"].update({"smtp_url": "http://mail"}), "alerting.email", "smtp_url must be"),
        (lambda d: d["alerting"]["email"].update({"to": ["not an address"]}),
         "alerting.email.to.0", "invalid email address"),
        (lambda d: d["alerting"]["critical"].update({"page": True}), "alerting.critical.page", "unknown key 'page'"),
        (lambda d: d["requirements"]["software"].update({"docker": 20.10}),
         "requirements.software.docker", "write the version in quotes"),
        (lambda d: d["requirements"]["software"].update({"postgres": "fifteen"}),
         "requirements.software.postgres", "invalid version 'fifteen'"),
        (lambda d: d["requirements"]["hardware"].update({"cpu_cores": 0}),
         "requirements.hardware.cpu_cores", "greater than or equal to 1"),
        (lambda d: d["requirements"]["ports"][0].update({"port": 70000}),
         "requirements.ports.0.port", "less than or equal to 65535"),
        (lambda d: d["requirements"]["ports"][0].update({"service": "mysql"}),
         "requirements.ports.0.service", "unknown service 'mysql'"),
        (lambda d: d["monitoring"]["prometheus"]["queries"].update({"queue_depth": "sum(q)"}),
         "monitoring.prometheus.queries.queue_depth", "input should be"),
        (lambda d: d["monitoring"]["prometheus"].update({"url": "127.0.0.1:9090"}),
         "monitoring.prometheus.url", "must be an http:// or https:// URL"),
        (lambda d: d["monitoring"].update({"cloudwatch": {"queries": {"error_rate_percent": {
            "namespace": "Shop", "metric": "ErrorRate"}}}}),
         "monitoring", "measured by both prometheus and cloudwatch"),
        (lambda d: d["monitoring"].update({"prometheus": None, "cloudwatch": {"queries": {"error_rate_percent": {
            "namespace": "Shop", "metric": "ErrorRate", "period": 45}}}}),
         "monitoring.cloudwatch.queries.error_rate_percent", "period 45 must be"),
        (lambda d: d["monitoring"].update({"prometheus": None, "cloudwatch": {"queries": {"error_rate_percent": {
            "namespace": "Shop", "metric": "ErrorRate", "stat": "Median"}}}}),
         "monitoring.cloudwatch.queries.error_rate_percent", "invalid stat 'Median'"),
        (lambda d: d["security_maintenance"].append({"item": "rotate_secrets", "title": "again", "every": "1d"}),
         "security_maintenance.4.item", "duplicate item 'rotate_secrets'"),
        (lambda d: d["security_maintenance"][3].pop("command"),
         "security_maintenance.3", "before: deploy needs a command"),
        (lambda d: d["security_maintenance"][0].pop("every"),
         "security_maintenance.0", "give every"),
        (lambda d: d["security_maintenance"][0].update({"command": ["rotate"]}),
         "security_maintenance.0", "a command is a gate"),
        (lambda d: d["security_maintenance"][3].update({"command": "scan --fail-on high"}),
         "security_maintenance.3.command", "not a shell string"),
        (lambda d: d["environments"]["prod"]["backup"]["files"].update({"to": "s3://production-files/copy/"}),
         "environments.prod.backup.files", "must not overlap"),
        (lambda d: d["environments"]["prod"]["backup"]["files"].update({"from": "file:///srv/files"}),
         "environments.prod.backup.files.from", "must be s3://bucket/prefix/"),
        (lambda d: d["environments"]["prod"]["backup"]["files"].update({"from": "s3://Bad_Bucket/"}),
         "environments.prod.backup.files.from", "invalid S3 bucket name"),
    ],
)
def test_each_mistake_is_reported_with_its_path(change: Any, path: str, words: str) -> None:
    data = example()
    change(data)
    got = problems(data)
    assert path in got, got
    assert words.lower() in got[path].lower(), got[path]


def test_windows_next_to_each_other_and_across_midnight_are_fine() -> None:
    data = example()
    data["maintenance"]["windows"]["prod"] = [
        {"days": ["sun"], "from": "02:00", "to": "04:00"},
        {"days": ["sun"], "from": "04:00", "to": "05:00"},
        {"days": ["Saturday"], "from": "22:00", "to": "01:00"},
    ]
    config, found = validate_config(data)
    assert found == [] and config is not None
    assert config.maintenance is not None and config.maintenance.windows["prod"][2].days == ["sat"]


def test_a_window_past_sunday_midnight_that_overlaps_monday_is_caught() -> None:
    data = example()
    data["maintenance"]["windows"]["prod"] = [
        {"days": ["sun"], "from": "23:00", "to": "02:00"},
        {"days": ["mon"], "from": "01:00", "to": "03:00"},
    ]
    assert "overlaps" in problems(data)["maintenance.windows.prod.1"]


def test_every_configured_section_not_acted_on_is_named() -> None:
    config, _ = validate_config(example())
    assert config is not None
    named = {p.path for p in not_acted_on(config)}
    assert named == set()  # every section is acted on
    bare = example()
    for key in ("requirements", "monitoring", "alerting", "maintenance", "security_maintenance"):
        del bare[key]
    config, _ = validate_config(bare)
    assert config is not None and not_acted_on(config) == []
    emailed = example()
    emailed["alerting"]["warning"]["to"] = ["slack", "email"]
    config, _ = validate_config(emailed)
    assert config is not None
    [note] = not_acted_on(config)
    assert note.path == "alerting.warning.to" and "not emailed" in note.message


def test_opsbot_check_says_what_is_not_acted_on(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bot", "check", "--config", str(ROOT / "examples" / "ops.yml")],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    notes = [line for line in out.stdout.splitlines() if line.startswith("note: ")]
    assert notes == []
