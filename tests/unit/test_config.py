"""ops.yml: the contract's example validates, and every kind of mistake is caught with its dotted path."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapters.errors import ConfigError, UserError
from bot.config import (
    BUILTIN_DIAGNOSTICS,
    AccessConfig,
    InvalidConfig,
    OpsConfig,
    Problem,
    config_json_schema,
    load_config,
    parse_duration,
    validate_config,
)
from tests.conftest import missing

ROOT = Path(__file__).resolve().parents[2]
# the contract's example, a copy kept in the repository (so the comparison below always runs) of the one
# in shared/ beside the checkout (where that exists, the copy must be the same file)
SPEC_EXAMPLE = ROOT / "spec" / "ops.example.yml"
SHARED_SPEC_EXAMPLE = ROOT.parent / "shared" / "spec" / "ops.example.yml"
EXAMPLES = [SPEC_EXAMPLE, ROOT / "examples" / "ops.yml"]
SPEC_LOCAL = ROOT / "examples" / "ops.yml"

MINIMAL: dict[str, Any] = {
    "project": "shop",
    "environments": {"prod": {"runtime": {"project": "shop"}, "services": {"api": {}}}},
}


def example() -> dict[str, Any]:
    """The bundled example config as a fresh dict."""
    return yaml.safe_load(SPEC_LOCAL.read_text())


def problems_of(data: Any) -> dict[str, str]:
    config, problems = validate_config(data)
    assert config is None
    assert problems
    return {p.path: p.message for p in problems}


def only_problem(data: Any) -> Problem:
    config, problems = validate_config(data)
    assert config is None
    assert len(problems) == 1, problems
    return problems[0]


# ---------------------------------------------------------------- the examples


def test_the_repository_s_copy_of_the_contract_example_is_the_contract_s() -> None:
    if not SHARED_SPEC_EXAMPLE.exists():
        missing(f"the contract's example {SHARED_SPEC_EXAMPLE} is not beside the checkout")
    assert SPEC_EXAMPLE.read_text() == SHARED_SPEC_EXAMPLE.read_text(), "copy shared/spec/ops.example.yml to spec/"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_the_examples_validate(path: Path) -> None:
    config = load_config(path)
    assert config.project == "shop"
    name, prod = config.env(None)
    assert name == "prod"
    assert [n for n, s in prod.services.items() if s.deploy] == ["api", "worker"]
    assert prod.approval.required == 1
    assert prod.approval.expires_in == 15 * 60
    assert prod.health_checks[0].timeout == 5
    assert prod.expand(prod.health_checks[0].url) == "http://127.0.0.1:18080/health"
    assert prod.startup == [["postgres"], ["redis"], ["api", "worker"]]
    assert prod.migrate is not None and prod.migrate.command == ["npm", "run", "migrate"]
    assert prod.backup is not None and prod.backup.database.service == "postgres"
    assert prod.diagnostics["db_connections"].timeout == 30
    assert config.troubleshooting[0].symptoms == ["504", "timeout", "gateway timeout"]
    assert config.thresholds.response_time_ms.critical == 2000
    assert [s.every for s in config.schedules] == [3600, 86400]
    assert config.slack.alert_channels["critical"] == "C0CRITICAL"
    assert config.escalation[0].contact == "<!subteam^S0ONCALL>"


def test_bundled_example_is_the_spec_example_with_a_file_store() -> None:
    local = load_config(SPEC_LOCAL)
    prod = local.environments["prod"]
    assert prod.backup is not None and prod.backup.store == "file:///var/tmp/opsbot-backups/prod/"
    assert prod.runtime.docker_host == "unix:///var/run/docker.sock"
    spec_lines = SPEC_EXAMPLE.read_text().splitlines()
    local_lines = SPEC_LOCAL.read_text().splitlines()
    assert len(spec_lines) == len(local_lines)
    differ = [(a, b) for a, b in zip(spec_lines, local_lines, strict=True) if a != b]
    assert len(differ) == 1 and "store:" in differ[0][1]


def test_minimal_config_gets_the_defaults() -> None:
    config, problems = validate_config(MINIMAL)
    assert problems == [] and config is not None
    name, env = config.env(None)
    assert name == "prod"
    assert env.runtime.kind == "compose"
    assert env.runtime.docker_host == "unix:///var/run/docker.sock"
    assert env.approval.required == 1 and env.approval.expires_in == 900
    assert env.url is None and env.health_checks == [] and env.startup == [] and env.backup is None
    assert env.services["api"].image is None and env.services["api"].deploy is False
    assert config.access == AccessConfig()
    assert config.thresholds.cpu_percent.warning == 70 and config.thresholds.cpu_percent.critical == 90
    assert config.thresholds.memory_percent.critical == 95
    assert config.thresholds.disk_percent.warning == 70
    assert config.thresholds.error_rate_percent.critical == 5
    assert config.troubleshooting == [] and config.escalation == [] and config.schedules == []


def test_env_lookup_and_default() -> None:
    data = example()
    data["environments"]["staging"] = {"runtime": {"project": "shop-staging"}, "services": {"api": {}}}
    data["default_environment"] = "staging"
    config, _ = validate_config(data)
    assert config is not None
    assert config.env(None)[0] == "staging"
    assert config.env("prod")[0] == "prod"
    with pytest.raises(UserError, match=r"unknown environment 'qa' \(known: prod, staging\)"):
        config.env("qa")
    del data["default_environment"]
    config, _ = validate_config(data)
    assert config is not None and config.env(None)[0] == "prod"  # the first environment


def test_access_for_overrides_role_by_role() -> None:
    data = example()
    data["environments"]["prod"]["access"] = {"operators": ["U0SRE"], "viewers": []}
    config, problems = validate_config(data)
    assert config is not None, problems
    top = config.access_for(None)
    assert top.operators == ["U0OPERATOR", "S0OPS"]
    prod = config.access_for("prod")
    assert prod.operators == ["U0SRE"]
    assert prod.approvers == ["U0APPROVER1", "U0APPROVER2"]  # inherited
    assert prod.admins == ["U0ADMIN"]
    with pytest.raises(UserError):
        config.access_for("nope")


def test_health_check_url_expansion() -> None:
    config, _ = validate_config(example())
    assert config is not None
    prod = config.environments["prod"]
    assert prod.expand("{url}/health/db") == "http://127.0.0.1:18080/health/db"
    assert prod.expand("http://other:1/x") == "http://other:1/x"
    prod.url = "http://h:1/"
    assert prod.expand("{url}/health") == "http://h:1/health"


# ---------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("5s", 5),
        ("15m", 900),
        ("1h", 3600),
        ("24h", 86400),
        ("7d", 604800),
        ("1h30m", 5400),
        ("1.5h", 5400),
        (" 2m ", 120),
        (30, 30),
        (0.25, 0.25),
    ],
)
def test_parse_duration_good(text: str | int | float, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "empty"),
        ("5", "unit is missing"),
        ("5x", "invalid duration"),
        ("h", "invalid duration"),
        ("-5s", "invalid duration"),
        ("0s", "greater than 0"),
        (0, "greater than 0"),
        (-1, "greater than 0"),
        ("30m1h", "largest first"),
        ("1m1m", "largest first"),
        ("5 s", "invalid duration"),
        (True, "invalid duration"),
        (None, "invalid duration"),
        (float("nan"), "greater than 0"),
        ("100000000d", "too long: at most 3650d"),
        ("9" * 400 + "s", "too long: at most 3650d"),
        (float("inf"), "too long: at most 3650d"),
        (1e300, "too long: at most 3650d"),
    ],
)
def test_parse_duration_bad(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(value)


def test_parse_duration_takes_a_smaller_maximum() -> None:
    assert parse_duration("2h", maximum=7200) == 7200
    with pytest.raises(ValueError, match="too long: at most 2h"):
        parse_duration("2h1s", maximum=7200)


def test_a_duration_too_long_for_dates_is_refused_with_its_path() -> None:
    data = example()
    data["environments"]["prod"]["approval"]["expires_in"] = "100000000d"
    problem = only_problem(data)
    assert problem.path == "environments.prod.approval.expires_in"
    assert "'100000000d' is too long: at most 3650d" in problem.message


def test_duration_fields_report_their_path() -> None:
    data = example()
    data["environments"]["prod"]["approval"]["expires_in"] = "15 minutes"
    problem = only_problem(data)
    assert problem.path == "environments.prod.approval.expires_in"
    assert "invalid duration '15 minutes'" in problem.message


# ---------------------------------------------------------------- cross-checks, one by one


def test_unknown_service_in_startup() -> None:
    data = example()
    data["environments"]["prod"]["startup"] = [["postgres"], ["ghost"]]
    problem = only_problem(data)
    assert problem.path == "environments.prod.startup.1.0"
    assert "unknown service 'ghost'" in problem.message and "api, worker, postgres, redis" in problem.message


def test_unknown_service_in_shutdown() -> None:
    data = example()
    data["environments"]["prod"]["shutdown"] = [["api", "wrker"], ["redis"], ["postgres"]]
    assert only_problem(data).path == "environments.prod.shutdown.0.1"


def test_service_twice_in_a_sequence() -> None:
    data = example()
    data["environments"]["prod"]["startup"] = [["postgres"], ["redis", "postgres"], ["api", "worker"]]
    problem = only_problem(data)
    assert problem.path == "environments.prod.startup.1.1"
    assert "already in startup (environments.prod.startup.0.0)" in problem.message


@pytest.mark.parametrize(
    ("where", "path"),
    [
        (("migrate", "service"), "environments.prod.migrate.service"),
        (("backup", "database", "service"), "environments.prod.backup.database.service"),
        (
            ("diagnostics", "db_connections", "service"),
            "environments.prod.diagnostics.db_connections.service",
        ),
    ],
)
def test_unknown_service_references(where: tuple[str, ...], path: str) -> None:
    data = example()
    node = data["environments"]["prod"]
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = "ghost"
    problem = only_problem(data)
    assert problem.path == path
    assert "unknown service 'ghost'" in problem.message


def test_migrate_needs_a_service_with_an_image() -> None:
    data = example()
    data["environments"]["prod"]["migrate"]["service"] = "postgres"
    problem = only_problem(data)
    assert problem.path == "environments.prod.migrate.service"
    assert "no image" in problem.message


def test_unknown_diagnostic_in_troubleshooting() -> None:
    data = example()
    data["troubleshooting"][0]["diagnose"] = ["containers", "health", "db_conections"]
    problem = only_problem(data)
    assert problem.path == "troubleshooting.0.diagnose.2"
    assert "unknown diagnostic 'db_conections'" in problem.message
    assert "db_connections" in problem.message and "containers" in problem.message


def test_diagnose_may_name_a_diagnostic_of_any_environment() -> None:
    data = example()
    data["environments"]["staging"] = {
        "runtime": {"project": "s"},
        "services": {"db": {}},
        "diagnostics": {"slow_queries": {"service": "db", "command": ["psql"]}},
    }
    data["troubleshooting"][0]["diagnose"].append("slow_queries")
    assert validate_config(data)[1] == []
    assert set(BUILTIN_DIAGNOSTICS) == {"containers", "health", "logs", "stats", "disk"}


def test_diagnostic_may_not_shadow_a_builtin() -> None:
    data = example()
    data["environments"]["prod"]["diagnostics"]["logs"] = {"service": "api", "command": ["cat", "/log"]}
    assert only_problem(data).path == "environments.prod.diagnostics.logs"


def test_unknown_default_environment() -> None:
    data = example()
    data["default_environment"] = "production"
    problem = only_problem(data)
    assert problem.path == "default_environment"
    assert problem.message == "unknown environment 'production' (known: prod)"


def test_unknown_schedule_environment() -> None:
    data = example()
    data["schedules"][1]["env"] = "staging"
    problem = only_problem(data)
    assert problem.path == "schedules.1.env"


def test_backup_schedules_need_a_backup_section() -> None:
    data = example()
    del data["environments"]["prod"]["backup"]
    got = problems_of(data)
    assert set(got) == {"schedules.1.task", "maintenance.tasks.0.task"}
    assert "db_maintenance runs in backup.database.service" in got["maintenance.tasks.0.task"]
    assert "verify_backup needs a backup section in environments.prod" in got["schedules.1.task"]


def test_url_placeholder_needs_an_environment_url() -> None:
    data = example()
    del data["environments"]["prod"]["url"]
    got = problems_of(data)
    assert set(got) == {f"environments.prod.health_checks.{i}.url" for i in range(3)}
    assert "uses {url} but environment prod has no url" in got["environments.prod.health_checks.0.url"]


@pytest.mark.parametrize("url", ["ftp://host/health", "/health", "{url}health x", "{uri}/health"])
def test_health_check_urls_must_be_http(url: str) -> None:
    data = example()
    data["environments"]["prod"]["health_checks"][1]["url"] = url
    assert only_problem(data).path == "environments.prod.health_checks.1.url"


def test_absolute_health_check_url_without_environment_url() -> None:
    data = copy.deepcopy(MINIMAL)
    data["environments"]["prod"]["health_checks"] = [{"name": "up", "url": "https://example.com/health"}]
    assert validate_config(data)[1] == []


def test_threshold_warning_below_critical() -> None:
    data = example()
    data["thresholds"]["cpu_percent"] = {"warning": 90, "critical": 90}
    problem = only_problem(data)
    assert problem.path == "thresholds.cpu_percent"
    assert problem.message == "warning (90) must be below critical (90)"


def test_partial_thresholds_keep_the_defaults() -> None:
    data = copy.deepcopy(MINIMAL)
    data["thresholds"] = {"disk_percent": {"warning": 60, "critical": 80}}
    config, _ = validate_config(data)
    assert config is not None
    assert config.thresholds.disk_percent.warning == 60
    assert config.thresholds.cpu_percent.critical == 90


def test_duplicate_health_check_names_and_escalation_levels() -> None:
    data = example()
    data["environments"]["prod"]["health_checks"][2]["name"] = "Database"
    data["escalation"][1]["level"] = "L1"
    assert set(problems_of(data)) == {"environments.prod.health_checks.2.name", "escalation.1.level"}


# ---------------------------------------------------------------- the models' own checks


def test_unknown_key_is_an_error_with_a_suggestion() -> None:
    data = example()
    data["environments"]["prod"]["helth_checks"] = []
    problem = only_problem(data)
    assert problem.path == "environments.prod.helth_checks"
    assert problem.message == "unknown key 'helth_checks' (did you mean 'health_checks'?)"


def test_unknown_top_level_key_lists_the_allowed_ones() -> None:
    data = example()
    data["whatever"] = 1
    problem = only_problem(data)
    assert problem.path == "whatever"
    assert "unknown key 'whatever'" in problem.message and "environments" in problem.message


def test_x_keys_at_the_top_hold_yaml_anchors() -> None:
    data = example()
    data["x-common"] = {"image": "shop/api"}
    assert validate_config(data)[1] == []


def test_approval_required_range() -> None:
    data = example()
    data["environments"]["prod"]["approval"]["required"] = 11
    problem = only_problem(data)
    assert problem.path == "environments.prod.approval.required"
    assert "10" in problem.message and "got 11" in problem.message
    data["environments"]["prod"]["approval"]["required"] = True
    assert only_problem(data).path == "environments.prod.approval.required"


def test_argv_is_never_a_shell_string() -> None:
    data = example()
    data["environments"]["prod"]["migrate"]["command"] = "npm run migrate"
    data["environments"]["prod"]["backup"]["database"]["dump"] = "pg_dump -U app app > /tmp/x"
    data["environments"]["prod"]["diagnostics"]["db_connections"]["command"] = []
    got = problems_of(data)
    migrate = got["environments.prod.migrate.command"]
    assert "must be a list of arguments (argv), not a shell string" in migrate
    assert "[npm, run, migrate]" in migrate
    assert "not a shell string" in got["environments.prod.backup.database.dump"]
    assert got["environments.prod.diagnostics.db_connections.command"] == "must not be empty"


def test_argv_numbers_become_text_but_floats_must_be_quoted() -> None:
    data = example()
    data["environments"]["prod"]["migrate"]["command"] = ["sleep", 5]
    config, _ = validate_config(data)
    assert config is not None
    assert config.environments["prod"].migrate is not None
    assert config.environments["prod"].migrate.command == ["sleep", "5"]
    data["environments"]["prod"]["migrate"]["command"] = ["sleep", 1.10]
    assert only_problem(data).path == "environments.prod.migrate.command.1"


@pytest.mark.parametrize(
    ("store", "ok"),
    [
        ("s3://shop-backups/prod/", True),
        ("s3://shop-backups/", True),
        ("file:///var/backups/opsbot/", True),
        ("file://./backups/", False),
        ("/var/backups", False),
        ("s3://Bad_Bucket/x/", False),
        ("gs://bucket/x/", False),
    ],
)
def test_backup_store(store: str, ok: bool) -> None:
    data = example()
    data["environments"]["prod"]["backup"]["store"] = store
    config, problems = validate_config(data)
    if ok:
        assert config is not None, problems
    else:
        assert [p.path for p in problems] == ["environments.prod.backup.store"]


def test_backup_store_gets_a_trailing_slash() -> None:
    data = example()
    data["environments"]["prod"]["backup"]["store"] = "s3://shop-backups/prod"
    config, _ = validate_config(data)
    assert config is not None
    backup = config.environments["prod"].backup
    assert backup is not None and backup.store == "s3://shop-backups/prod/"


def test_deploy_needs_an_image_without_a_tag() -> None:
    data = example()
    data["environments"]["prod"]["services"]["redis"] = {"deploy": True}
    data["environments"]["prod"]["services"]["api"]["image"] = "shop/api:1.4.2"
    got = problems_of(data)
    assert set(got) == {"environments.prod.services.redis.deploy", "environments.prod.services.api.image"}
    assert "needs an image" in got["environments.prod.services.redis.deploy"]
    assert "must not carry a tag" in got["environments.prod.services.api.image"]


def test_registry_with_a_port_is_not_a_tag() -> None:
    data = example()
    data["environments"]["prod"]["services"]["api"]["image"] = "registry.local:5000/shop/api"
    assert validate_config(data)[1] == []


@pytest.mark.parametrize("name", ["has space", "-dash", "", "x" * 64, "é"])
def test_bad_names(name: str) -> None:
    data = example()
    data["environments"]["prod"]["services"][name] = {}
    problem = only_problem(data)
    assert problem.path == f"environments.prod.services.{name}"
    assert "invalid name" in problem.message


def test_slack_ids_in_access() -> None:
    data = example()
    data["access"]["approvers"] = ["U0APPROVER1", "alice", "<@U0BOB>"]
    got = problems_of(data)
    assert set(got) == {"access.approvers.1", "access.approvers.2"}
    assert "(write U0BOB)" in got["access.approvers.2"]


def test_stages_must_be_lists_of_lists() -> None:
    data = example()
    data["environments"]["prod"]["startup"] = ["postgres", "redis"]
    problem = only_problem(data)
    assert problem.path == "environments.prod.startup"
    assert "[[postgres], [api, worker]]" in problem.message


def test_symptoms_numbers_become_strings() -> None:
    data = example()
    data["troubleshooting"][0]["symptoms"] = [504, "timeout"]
    config, _ = validate_config(data)
    assert config is not None and config.troubleshooting[0].symptoms == ["504", "timeout"]
    data["troubleshooting"][0]["symptoms"] = []
    assert only_problem(data).path == "troubleshooting.0.symptoms"


def test_missing_keys() -> None:
    got = problems_of({"environments": {"prod": {"services": {}}}})
    assert got == {
        "project": "required, but missing",
        "environments.prod.runtime": "required, but missing",
        "environments.prod.services": "must not be empty",
    }
    assert problems_of({"project": "x", "environments": {}}) == {"environments": "must not be empty"}


def test_many_problems_are_reported_at_once() -> None:
    data = example()
    prod = data["environments"]["prod"]
    prod["approval"]["required"] = -1
    prod["runtime"]["kind"] = "kubernetes"
    prod["startup"][2] = ["api", "ghost"]
    prod["health_checks"][0]["timeout"] = "soon"
    data["thresholds"]["memory_percent"] = {"warning": 99, "critical": 90}
    data["troubleshooting"][1]["diagnose"] = ["stats", "heap"]
    data["schedules"][0]["env"] = "qa"
    data["escalation"][0]["whne"] = "now"
    got = problems_of(data)
    assert set(got) == {
        "environments.prod.approval.required",
        "environments.prod.runtime.kind",
        "environments.prod.startup.2.1",
        "environments.prod.health_checks.0.timeout",
        "thresholds.memory_percent",
        "troubleshooting.1.diagnose.1",
        "schedules.0.env",
        "escalation.0.whne",
    }


def test_not_a_mapping() -> None:
    assert only_problem([1, 2]).message.startswith("the top level must be a mapping")
    assert "empty" in only_problem(None).message


def test_direct_model_validation_runs_the_cross_checks_too() -> None:
    data = copy.deepcopy(MINIMAL)
    data["default_environment"] = "qa"
    with pytest.raises(ValueError, match="default_environment: unknown environment 'qa'"):
        OpsConfig.model_validate(data)


# ---------------------------------------------------------------- reading files


def test_load_config_lists_every_problem_one_per_line(tmp_path: Path) -> None:
    data = example()
    data["environments"]["prod"]["approval"]["required"] = 11
    data["default_environment"] = "qa"
    path = tmp_path / "ops.yml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.exit_code == 2
    lines = str(info.value).splitlines()
    assert lines[0] == f"{path} is not valid (2 problems):"
    assert lines[1].startswith("environments.prod.approval.required: ")
    assert lines[2] == "default_environment: unknown environment 'qa' (known: prod)"
    assert isinstance(info.value, InvalidConfig) and len(info.value.problems) == 2


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.yml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        ("project: shop\nenvironments: [a, b\n", ":3:1:", "YAML syntax error"),
        ("project: shop\n  bad: indent\n", ":2:6:", "YAML syntax error"),
        ("project: shop\nproject: other\n", ":2:1:", "duplicate key 'project' (first on line 1)"),
    ],
)
def test_yaml_errors_have_line_and_column(tmp_path: Path, text: str, where: str, what: str) -> None:
    path = tmp_path / "ops.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}{where}")
    assert what in message
    assert "\n" not in message


@pytest.mark.parametrize("path", EXAMPLES, ids=["spec", "examples"])
def test_libyaml_and_pyyaml_read_ops_yml_alike(path: Path) -> None:
    """ops.yml is read with libyaml's parser (and PyYAML's own only to word an error): the same data."""
    from bot.config import load

    text = path.read_text()
    fast, own = yaml.load(text, Loader=load._FastLoader), yaml.load(text, Loader=load._Loader)
    assert fast == own and fast["environments"]
    for loader in (load._FastLoader, load._Loader):  # both refuse a key given twice
        with pytest.raises(yaml.YAMLError, match="duplicate key 'project'"):
            yaml.load("project: a\nproject: b\n", Loader=loader)


def test_ops_yml_is_read_without_libyaml_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """A PyYAML built without libyaml: PyYAML's own parser reads ops.yml, with the same errors."""
    from bot.config import load

    text = SPEC_EXAMPLE.read_text()
    fast = load.parse_yaml(text)
    monkeypatch.setattr(load, "_FastLoader", None)
    assert load.parse_yaml(text) == fast
    with pytest.raises(ConfigError, match=r"ops.yml:2:1: duplicate key 'project'"):
        load.parse_yaml("project: a\nproject: b\n")


def test_yaml_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "ops.yml"
    path.write_text(
        "x-service: &svc {image: shop/api, deploy: true}\n"
        "project: shop\n"
        "environments:\n"
        "  prod:\n"
        "    runtime: {project: shop}\n"
        "    services:\n"
        "      api: {<<: *svc}\n"
        "      worker: {<<: *svc, image: shop/worker}\n"
    )
    config = load_config(path)
    assert config.environments["prod"].services["worker"].image == "shop/worker"


@pytest.mark.parametrize(("text", "what"), [("", "empty"), ("- a\n- b\n", "must be a mapping")])
def test_empty_or_non_mapping_file(tmp_path: Path, text: str, what: str) -> None:
    path = tmp_path / "ops.yml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=what):
        load_config(path)


def test_json_schema() -> None:
    schema = config_json_schema()
    assert isinstance(schema, dict)
    assert {"project", "environments", "thresholds", "schedules"} <= set(schema["properties"])
    assert schema["required"] == ["project", "environments"]
    assert schema["additionalProperties"] is False
    env = schema["$defs"]["EnvironmentConfig"]
    assert "health_checks" in env["properties"]
