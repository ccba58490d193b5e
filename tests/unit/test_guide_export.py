"""``opsbot guide export`` on fakes: every section and table of the template, nothing that contradicts ops.yml,
a TODO where ops.yml cannot tell, secrets redacted, and the Document History from the audit log."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapters.errors import EngineUnavailable
from adapters.fakes import FakeBackends, FakeProbe, FakeRuntime
from adapters.preflight.engine import EngineFacts
from bot.config import OpsConfig, parse_duration, validate_config
from bot.config.redact import Redactor
from bot.core.config_history import record_config
from bot.core.db import Database
from bot.core.engine import Engine, Request
from bot.core.guide_facts import gather
from bot.doors.cli import main
from bot.render.guide import guide_markdown
from tests.conftest import missing
from tests.helpers.guide_template import COPY, TEMPLATE, structure

ROOT = Path(__file__).resolve().parents[2]
SECRET = "pg-pass-0123456789"
#: the template's placeholders: none may be left in the export (a TODO line says what is missing instead)
PLACEHOLDERS = ("[X]", "[PROJECT_NAME]", "[NAME]", "YYYY-MM-DD", "[Database]", "[Other]", "[Purpose]",
                "[Prometheus/CloudWatch]", "[APM tool]", "[Monitoring]", "[DEPLOYMENT_REPO_URL]", "[COMMIT_SHA]",
                "[project]", "[Ubuntu 22.04 / etc.]")  # fmt: skip


def example() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "ops.yml").read_text())
    data["access"]["approvers"] = ["U0APPROVER1"]
    return data


def load(data: dict[str, Any]) -> OpsConfig:
    config, problems = validate_config(data)
    assert config is not None, problems
    return config


def runtime() -> FakeRuntime:
    rt = FakeRuntime()
    rt.add("api", image="shop/api:1.4.2", health="healthy", env={"PORT": "8080", "LOG_LEVEL": "info"})
    rt.add("worker", image="shop/worker:1.4.2", env={"DB_PASSWORD": SECRET, "FEATURE_CHECKOUT": "on"})
    rt.add("postgres", image="postgres:15.4")
    rt.add("redis", image="redis:7")
    rt.images |= {"shop/api:1.5.0", "shop/worker:1.5.0"}
    return rt


async def engine_facts(host: str) -> EngineFacts:
    return EngineFacts(host=host, version="24.0.7", os="Debian GNU/Linux 12 (bookworm)", cpus=4,
                       memory_bytes=8 * 2**30, name="docker-1")  # fmt: skip


async def export(tmp_path: Path, data: dict[str, Any], rt: FakeRuntime | None = None) -> str:
    config = load(data)
    db = Database(tmp_path / "g.db")
    try:
        record_config(db, config, "ops.yml")
        backends = FakeBackends({"prod": rt or runtime()})
        facts = await gather(config, "ops.yml", backends, db, timeout=5, engines=engine_facts)
        return guide_markdown(facts, Redactor())
    finally:
        db.close()


def tables(markdown: str) -> dict[str, list[dict[str, str]]]:
    """Every table under its nearest heading: heading -> rows as {column: cell} (the first table per heading)."""
    out: dict[str, list[dict[str, str]]] = {}
    heading, header, fenced = "", None, False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if fenced:
            continue
        if line.startswith("#"):
            heading, header = line.lstrip("# ").strip(), None
        elif line.startswith("|") and not set(line) <= set("|- "):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if header is None:
                header = cells
                out.setdefault(heading, [])
            else:
                out[heading].append(dict(zip(header, cells, strict=True)))
        elif not line.startswith("|"):
            header = None
    return out


def test_the_structure_copy_matches_the_template() -> None:
    if not TEMPLATE.exists():
        missing(f"the guide template {TEMPLATE} is not beside the checkout")
    assert structure(TEMPLATE.read_text()) == COPY.read_text().splitlines()


async def test_every_section_and_table_of_the_template_is_there(tmp_path: Path) -> None:
    text = await export(tmp_path, example())
    want = COPY.read_text().splitlines()
    got = structure(text)
    assert [h for h in got if h.startswith("#")] == [h for h in want if h.startswith("#")]
    rest = iter(got)  # every table header and label of the template, in the template's order
    missing_ = [line for line in want if not any(g.startswith(line) for g in rest)]
    assert missing_ == []
    for placeholder in PLACEHOLDERS:
        assert placeholder not in text, placeholder


async def test_no_value_contradicts_ops_yml(tmp_path: Path) -> None:
    data = example()
    config = load(data)
    text = await export(tmp_path, data)
    t = tables(text)
    prod = config.environments["prod"]
    assert t["5.1 Deployment Environments"] == [{"Environment": "prod", "URL": prod.url, "Purpose": prod.purpose}]
    metrics = {r["Metric"]: r for r in t["Metrics to Monitor"]}
    for name, key in (("CPU Usage", "cpu_percent"), ("Memory Usage", "memory_percent"),
                      ("Response Time", "response_time_ms"), ("Error Rate", "error_rate_percent"),
                      ("Disk Usage", "disk_percent")):  # fmt: skip
        limit = getattr(config.thresholds, key)
        assert float(re.sub(r"[^\d.]", "", metrics[name]["Warning"])) == limit.warning
        assert float(re.sub(r"[^\d.]", "", metrics[name]["Critical"])) == limit.critical
    assert [(r["Issue"], r["Resolution"]) for r in t["8.1 Common Issues"]] == [
        (e.issue, e.resolution) for e in config.troubleshooting]
    assert [r["Symptoms"] for r in t["8.1 Common Issues"]] == [", ".join(e.symptoms) for e in config.troubleshooting]
    assert [(r["Level"], r["When"]) for r in t["8.3 Escalation Path"]] == [(e.level, e.when) for e in config.escalation]
    assert [r["Contact"] for r in t["8.3 Escalation Path"]][:2] == ["@S0ONCALL", "@U0SENIOR"]
    hardware = {r["Component"]: r["Minimum"] for r in t["2.1 Hardware Requirements"]}
    assert config.requirements is not None
    assert (hardware["CPU"], hardware["Memory"], hardware["Storage"]) == ("2 cores", "4 GB", "20 GB")
    software = {r["Software"]: r["Version"] for r in t["2.2 Software Requirements"]}
    assert software["Docker"] == "20.10+" and software["PostgreSQL"] == "15+" and software["api (prod)"] == "1.4.2"
    ports = {(r["Port"], r["Purpose"]) for r in t["2.3 Network Requirements"] if r["Protocol"] == "TCP"}
    assert ports == {(str(p.port), p.service) for p in config.requirements.ports}
    daily = {r["Task"]: r["Frequency"] for r in t["6.1 Daily Operations"]}
    for schedule in config.schedules:
        name = {"health_check": "Health check", "verify_backup": "Backup verification"}[schedule.task]
        assert parse_duration(daily[name].split()[1]) == schedule.every
    stages = text[text.index("### 6.2 Startup/Shutdown") : text.index("### 6.3 Monitoring")]
    startup = re.findall(r"^\d+\. Start (.+)$", stages, re.MULTILINE)
    assert [s.split(", ") for s in startup] == prod.startup
    shutdown = re.findall(r"^\d+\. Stop ([^(\n]+?)(?: \(grace.*)?$", stages, re.MULTILINE)
    assert [s.split(", ") for s in shutdown] == prod.shutdown
    assert prod.backup is not None and " ".join(prod.backup.database.dump) in text
    checks = {r["Check"]: r for r in t["3.3 Post-Installation Verification"]}
    assert list(checks) == [c.name for c in prod.health_checks]
    assert checks["API Health"]["Command"] == "`curl http://127.0.0.1:18080/health`"
    assert f'project: "{config.project}"' in text and "1 approver other than the requester" in text
    windows = {r["Window"] for r in t["7.3 Scheduled Maintenance"]}
    assert windows == {"sun 02:00-04:00 Europe/Berlin"}


async def test_what_ops_yml_cannot_tell_stays_a_todo(tmp_path: Path) -> None:
    data = example()
    for key in ("requirements", "troubleshooting", "escalation", "maintenance", "security_maintenance", "alerting"):
        data.pop(key)
    data["schedules"] = []
    text = await export(tmp_path, data)
    t = tables(text)
    assert t["2.1 Hardware Requirements"][0]["Minimum"] == "TODO: requirements.hardware.cpu_cores"
    assert t["8.1 Common Issues"][0]["Issue"] == "TODO: troubleshooting"
    assert t["8.3 Escalation Path"][0]["Level"] == "TODO: escalation"
    critical = {"Alert": "Critical", "Channel": "Slack C0CRITICAL", "Escalation": "TODO: alerting.critical"}
    assert t["Alerting"][0] == critical
    assert "- [ ] TODO: security_maintenance" in text and 'author: "TODO: the owner of this guide"' in text
    assert t["6.1 Daily Operations"][0]["Frequency"] == "TODO: add it to schedules"


async def test_the_engines_fill_versions_variables_and_flags_with_secrets_redacted(tmp_path: Path) -> None:
    text = await export(tmp_path, example())
    assert SECRET not in text
    t = tables(text)
    variables = {r["Variable"]: r for r in t["4.1 Environment Variables"]}
    assert variables["`DB_PASSWORD`"]["Default"] == "`[REDACTED]` now in worker (prod)"
    assert variables["`PORT`"]["Default"] == "`8080` now in api (prod)"
    assert [r["Flag"] for r in t["4.3 Feature Flags"]] == ["`FEATURE_CHECKOUT`"]
    software = {r["Software"]: r for r in t["2.2 Software Requirements"]}
    assert software["OS"]["Version"] == "Debian GNU/Linux 12 (bookworm)"
    assert "running 24.0.7 (prod)" in software["Docker"]["Purpose"]

    down = runtime()
    down.fail = EngineUnavailable("Docker engine at unix:///x does not answer")
    (tmp_path / "down").mkdir()
    text = await export(tmp_path / "down", example(), down)
    t = tables(text)
    assert t["4.1 Environment Variables"][0]["Variable"] == "TODO: variables"
    assert "TODO: not read: prod: Docker engine at unix:///x does not answer" in text
    assert {r["Version"] for r in t["2.2 Software Requirements"] if r["Software"].endswith("(prod)")} == {"not running"}


async def test_the_history_has_the_config_changes_and_the_deploys(tmp_path: Path) -> None:
    data = example()
    for key in ("maintenance", "security_maintenance"):  # no window or gate in the way of the deploy
        data.pop(key)
    data["environments"]["prod"].pop("migrate")
    db = Database(tmp_path / "h.db")
    try:
        assert record_config(db, load(data), "ops.yml") is not None
        assert record_config(db, load(data), "ops.yml") is None  # unchanged: nothing recorded
        changed = copy.deepcopy(data)
        changed["thresholds"]["cpu_percent"] = {"warning": 60, "critical": 85}
        config = load(changed)
        assert record_config(db, config, "ops.yml") is not None
        rt = runtime()
        probe = FakeProbe()
        for path in ("/health", "/health/db", "/health/cache"):
            probe.answer(f"http://127.0.0.1:18080{path}")
        backends = FakeBackends({"prod": rt}, probe)
        engine = Engine(config, backends, db, Redactor())
        reply = await engine.handle(Request(actor="U0OPERATOR", door="cli", text="deploy prod 1.5.0"))
        approval = reply.to_json()["approval"]["id"]
        await engine.decide(Request(actor="U0APPROVER1", door="cli", text=f"approve {approval}"), approval, "approve")
        facts = await gather(config, "ops.yml", backends, db, timeout=5, engines=engine_facts)
        assert (await engine.audit.verify()).ok
    finally:
        db.close()
    text = guide_markdown(facts, Redactor())
    rows = tables(text)["Document History"]
    assert [(r["Version"], r["Author"]) for r in rows] == [
        ("1.0", "opsbot (ops.yml loaded)"), ("1.1", "opsbot (ops.yml loaded)"), ("1.1", "U0APPROVER1")]
    assert rows[0]["Changes"].startswith("ops.yml first loaded")
    assert rows[1]["Changes"] == "ops.yml changed: thresholds"
    assert rows[2]["Changes"] == "`deploy prod 1.5.0`: done (ok), approved by U0APPROVER1"
    assert 'version: "1.1"' in text


def test_export_into_a_missing_directory_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "no" / "such" / "guide.md"
    code = main(["guide", "export", "--config", str(ROOT / "examples" / "ops.yml"), "--out", str(out)])
    _, err = capsys.readouterr()
    assert code == 2 and f"the directory {out.parent} does not exist" in err and err.count("\n") == 1
    assert not out.parent.exists()
