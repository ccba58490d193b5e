"""Session-wide fixtures: one private Docker engine and one test project, shared by every test."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

from tests.helpers.docker_engine import Engine, EngineMissing, Shop, start_engine, start_shop
from tests.helpers.http_servers import free_port

IN_CI = os.environ.get("CI", "").lower() == "true"


def missing(reason: str) -> None:
    """Skip, except in CI where a missing engine is a failure."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: a missing engine fails the run)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[Engine]:
    """A private dockerd for the whole session."""
    if os.geteuid() != 0:
        missing("the private Docker engine needs root")
    try:
        engine = start_engine()
    except EngineMissing as exc:
        missing(str(exc))
    try:
        yield engine
    finally:
        engine.stop()


@pytest.fixture(scope="session")
def shop(docker_engine: Engine) -> Iterator[Shop]:
    """The test project: api (healthy httpd), worker (logs, a secret), postgres, redis (exited)."""
    project = f"shoptest{secrets.token_hex(3)}"
    shop = start_shop(docker_engine, project, free_port(), f"s3cr3t-{secrets.token_hex(6)}")
    try:
        yield shop
    finally:
        for container in shop.containers.values():
            try:
                container.remove(force=True)
            except Exception:
                pass
