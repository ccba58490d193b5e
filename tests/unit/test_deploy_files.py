"""deploy/: compose.yml runs opsbot as the README says, .env.example names every variable of the contract
and every one opsbot reads (each field of ``Settings``, ``OPSBOT_DEMO_USERS``)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

from adapters.notify.pagerduty import DEFAULT_URL as PAGERDUTY_URL
from bot.config import parse_duration
from bot.config.settings import Settings
from bot.doors.demo import USERS_VAR
from tests.conftest import missing

ROOT = Path(__file__).resolve().parents[2]
#: the contract lives in shared/ beside the checkout (CI lays a copy there too); OPSBOT_SPEC_DIR elsewhere
SPEC = Path(os.environ.get("OPSBOT_SPEC_DIR", ROOT.parent / "shared" / "spec"))
COMPOSE = yaml.safe_load((ROOT / "deploy" / "compose.yml").read_text())
ENV_EXAMPLE = (ROOT / "deploy" / ".env.example").read_text()


def contract_variables() -> list[str]:
    """The variables of CONTRACT.md's "Environment" table (``AWS_*`` as the four boto3 reads here)."""
    path = SPEC / "CONTRACT.md"
    if not path.exists():
        missing(f"{path} is missing (the contract beside the checkout; OPSBOT_SPEC_DIR points elsewhere)")
    table = path.read_text().split("## Environment", 1)[1].split("\n## ", 1)[0]
    names = re.findall(r"^\| `([A-Z_]+)`", table, re.M)
    assert "AWS_*" in table and len(names) >= 8, table
    return [*names, "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"]


def documented() -> dict[str, str]:
    """Each variable of .env.example (set or commented out) -> the comment line just above it."""
    found: dict[str, str] = {}
    lines = ENV_EXAMPLE.splitlines()
    for i, line in enumerate(lines):
        m = re.fullmatch(r"#? ?([A-Z][A-Z0-9_]+)=.*", line)
        if m and i > 0 and lines[i - 1].startswith("#") and not re.match(r"# ?[A-Z][A-Z0-9_]+=", lines[i - 1]):
            found[m[1]] = lines[i - 1]
        elif m:
            found.setdefault(m[1], "")
    return found


def test_env_example_names_every_contract_variable_with_a_comment():
    names = documented()
    for var in [*contract_variables(), "OPSBOT_HOST", "OPSBOT_DRAIN_SECONDS", "OPSBOT_SCHEDULER", "DOCKER_GID"]:
        assert var in names, f"{var} is not in deploy/.env.example"
        assert names[var].strip("# "), f"{var} in deploy/.env.example has no comment above it"
    assert not re.search(r"^(SLACK_BOT_TOKEN|SLACK_APP_TOKEN|SLACK_SIGNING_SECRET)=\S", ENV_EXAMPLE, re.M)


def spelled(default: object) -> str:
    """A default as .env.example writes it: ``on``/``off``, ``60`` for 60.0."""
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, float) and default.is_integer():
        return str(int(default))
    return str(default)


def test_env_example_names_every_variable_opsbot_reads_with_its_default():
    names = documented()
    for field_name, field in Settings.model_fields.items():
        var = field_name.upper()
        assert var in names, f"{var} (a field of bot.config.settings.Settings) is not in deploy/.env.example"
        assert names[var].strip("# "), f"{var} in deploy/.env.example has no comment above it"
        if field.default is not None:  # its default is the value shown, or the comment says it
            default = spelled(field.default)
            value = re.search(rf"^#? ?{var}=(.*)$", ENV_EXAMPLE, re.M)[1]
            stated = re.search(r"\(default ([^;,)]+)", names[var])
            assert (stated[1] if stated else value) == default, (var, default, value, names[var])
    assert USERS_VAR in names and names[USERS_VAR].strip("# "), f"{USERS_VAR} is not in deploy/.env.example"
    assert f"# PAGERDUTY_EVENTS_URL={PAGERDUTY_URL}" in ENV_EXAMPLE.splitlines()


def test_compose_gives_the_drain_its_time_and_keeps_the_state():
    bot = COMPOSE["services"]["opsbot"]
    drain = float(re.search(r"^OPSBOT_DRAIN_SECONDS=(\d+)", ENV_EXAMPLE, re.M)[1])
    assert parse_duration(bot["stop_grace_period"]) > drain
    assert bot["env_file"] == ".env" and bot["image"] == "opsbot"
    mounts = {m.removesuffix(":ro").rsplit(":", 1)[1]: m for m in bot["volumes"]}
    assert mounts["/data"].startswith("opsbot-data:") and "opsbot-data" in COMPOSE["volumes"]
    assert mounts["/config/ops.yml"] == "./ops.yml:/config/ops.yml:ro"
    assert mounts["/var/run/docker.sock"].endswith("/var/run/docker.sock")
    assert bot["read_only"] is True and bot["cap_drop"] == ["ALL"] and bot["group_add"]


def test_dockerfile_is_multi_stage_non_root_healthchecked():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE=", text, re.M) and len(re.findall(r"^FROM \$\{BASE\}", text, re.M)) == 2
    assert "COPY --from=build /opt/opsbot /opt/opsbot" in text and re.search(r"^USER opsbot$", text, re.M)
    assert re.search(r"^STOPSIGNAL SIGTERM$", text, re.M) and re.search(r"^HEALTHCHECK .*\n.*/health", text, re.M)
    assert re.search(r"^ARG PIP_NO_INDEX=", text, re.M) and re.search(r"^ARG PIP_FIND_LINKS=", text, re.M)
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignored[ignored.index("*") :][:1] == ["*"] and "!wheels" in ignored and "!.venv" not in ignored
