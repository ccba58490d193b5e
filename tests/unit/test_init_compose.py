"""``opsbot init --from-compose``: what it reads from a Compose file, what it writes, and what it refuses."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.config import load_config
from bot.config.compose_read import find_cycle, interpolate
from bot.doors.cli import main

SHOP = """\
x-common: &common
  restart: unless-stopped
services:
  postgres:
    image: postgres:15
    environment:
      POSTGRES_USER: app
      POSTGRES_DB: shop
      POSTGRES_PASSWORD: ${DB_PASSWORD:-not-in-ops-yml}
    ports: ["5432:5432"]
  redis:
    image: redis:7
  api:
    <<: *common
    image: ghcr.io/acme/shop-api:${TAG:-1.4.2}
    depends_on:
      postgres: {condition: service_healthy}
      redis: {condition: service_started}
    ports: ["127.0.0.1:8080:3000"]
    healthcheck:
      test: ["CMD-SHELL", "curl -fsS http://localhost:3000/health || exit 1"]
      timeout: 3s
    stop_grace_period: 1m30s
  worker:
    build: ./worker
    image: acme/shop-worker
    depends_on: [api]
  web:
    image: nginx:1.25
    depends_on: [api]
    healthcheck:
      test: wget -q -O- http://localhost/
"""


def init(tmp_path: Path, compose: str, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    file = tmp_path / "docker-compose.yml"
    file.write_text(compose)
    code = main(["init", "--from-compose", str(file), *extra])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_compose_project_becomes_a_valid_ops_yml(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/test/docker.sock")
    monkeypatch.delenv("COMPOSE_PROJECT_NAME", raising=False)
    out = tmp_path / "ops.yml"
    code, stdout, err = init(tmp_path, SHOP, capsys, "--out", str(out))
    assert code == 0, err
    assert f"wrote {out}" in stdout and "2 deployed by version: api, worker" in stdout
    config = load_config(out)  # valid as it stands
    assert config.project == tmp_path.name.lower().replace("_", "_")
    prod = config.environments["prod"]
    assert prod.runtime.docker_host == "unix:///run/test/docker.sock" and prod.runtime.project == config.project
    assert prod.deploy_services == ["api", "worker"]
    assert prod.services["api"].image == "ghcr.io/acme/shop-api" and prod.services["api"].stop_timeout == 90
    assert prod.services["postgres"].image is None and prod.services["web"].image is None
    assert prod.url == "http://127.0.0.1:8080"
    [check] = prod.health_checks
    assert prod.expand(check.url) == "http://127.0.0.1:8080/health" and check.timeout == 3
    assert prod.startup == [["postgres", "redis"], ["api"], ["worker", "web"]]
    assert prod.shutdown == [["worker", "web"], ["api"], ["postgres", "redis"]]
    assert prod.backup is not None and prod.backup.database.service == "postgres"
    assert prod.backup.database.dump[-3:] == ["-U", "app", "shop"]
    assert config.requirements is not None
    assert [(p.service, p.port) for p in config.requirements.ports] == [("postgres", 5432), ("api", 3000)]
    text = out.read_text()
    assert "not-in-ops-yml" not in text  # the database password stays in the Compose file
    assert "web's healthcheck fetches http://localhost/ but port 80 is not published" in text
    assert re.search(r"deploy: true +# check: its image ghcr.io/acme/shop-api looks like your own", text)


def test_the_project_name_and_variables_follow_compose(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("COMPOSE_PROJECT_NAME", "My.Shop_1")
    (tmp_path / ".env").write_text("# the tag\nTAG=2.0\nAPI_IMAGE='acme/api'\n")
    compose = "services:\n  api:\n    image: ${API_IMAGE}:${TAG}\n    network_mode: host\n" \
              "    healthcheck: {test: [CMD, wget, -qO-, 'http://127.0.0.1:${PORT:-9000}/ready']}\n"  # fmt: skip
    code, out, err = init(tmp_path, compose, capsys, "--out", "-")
    assert code == 0, err
    data: dict[str, Any] = yaml.safe_load(out)
    assert data["project"] == "myshop_1"
    env = data["environments"]["prod"]
    assert env["services"]["api"]["image"] == "acme/api"
    assert env["url"] == "http://127.0.0.1:9000" and env["health_checks"][0]["url"] == "{url}/ready"


def test_interpolation_defaults_and_escapes() -> None:
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET:-d} ${UNSET:-d} ${EMPTY:-d} ${EMPTY-d} $$SET $SET ${UNSET}", env) == "x d d  $SET x "


def test_a_cycle_is_found_and_named() -> None:
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"], "d": []}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": ["b"], "b": []}) is None


@pytest.mark.parametrize(
    ("compose", "words"),
    [
        ("services:\n  api: {image: a/api, depends_on: [worker]}\n  worker: {image: a/w, depends_on: [db]}\n"
         "  db: {image: postgres, depends_on: [api]}\n",
         "depends_on forms a cycle: api -> worker -> db -> api"),
        ("services:\n  api: {image: a/api}\nservics: {}\n",
         "unknown top-level key 'servics' (did you mean 'services'?)"),
        ("services:\n  api: {image: a/api}\ndeploy_to: prod\n", "unknown top-level key 'deploy_to' (allowed:"),
        ("services:\n  api: {ports: ['80:80']}\n", "the service 'api' has neither image: nor build:"),
        ("services:\n  api: [image: x\n", "YAML syntax error"),
        ("just some text, not a compose file\n", "not a Compose file: it needs a top-level services: mapping"),
        ("\x00\x01\x02binary", "YAML syntax error"),
        ("services:\n  api: {image: a/api, depends_on: [ghost]}\n", "depends_on names 'ghost'"),
        ("services:\n  api: {image: a/api}\n  api: {image: b/api}\n", "duplicate key 'api'"),
    ],
)  # fmt: skip
def test_a_compose_file_it_cannot_use_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], compose: str,
                                                 words: str) -> None:  # fmt: skip
    code, out, err = init(tmp_path, compose, capsys, "--out", str(tmp_path / "ops.yml"))
    assert code == 2 and words in err and out == "", err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "ops.yml").exists()


def test_it_does_not_overwrite_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ops.yml"
    out.write_text("mine\n")
    code, _, err = init(tmp_path, SHOP, capsys, "--out", str(out))
    assert code == 2 and "exists" in err and out.read_text() == "mine\n"
    code, _, err = init(tmp_path, SHOP, capsys, "--out", str(out), "--force")
    assert code == 0 and load_config(out).environments["prod"].deploy_services == ["api", "worker"]
    code, _, err = init(tmp_path, SHOP, capsys, "--out", str(tmp_path / "missing" / "ops.yml"))
    assert code == 2 and "does not exist" in err
    code = main(["init", "--from-compose", str(tmp_path / "nope.yml")])
    assert code == 2 and "no such file" in capsys.readouterr().err
