"""Session-wide fixtures: one private Docker engine and one test project, shared by every test."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

from tests.helpers.docker_engine import Engine, EngineMissing, Shop, start_engine, start_shop
from tests.helpers.http_servers import free_port
from tests.helpers.postgres import MotoS3, Postgres, PostgresMissing, start_postgres

IN_CI = os.environ.get("CI", "").lower() == "true"

#: the fixtures that start an engine, and the mark every test using one (directly or not) must carry
ENGINE_MARKS = {"docker_engine": "docker", "swarm_engine": "swarm", "postgres": "postgres", "moto_s3": "s3"}


def missing(reason: str) -> None:
    """Skip, except in CI where a missing engine is a failure."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: a missing engine fails the run)", pytrace=False)
    pytest.skip(reason)


def _who() -> str:
    import pwd

    uid = os.geteuid()
    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test that needs an engine carries its mark (``-m "not docker"`` leaves it out): added here
    from the fixtures it uses, directly or through others, so that no test can go unmarked."""
    for item in items:
        used = getattr(item, "fixturenames", ())
        for fixture, mark in ENGINE_MARKS.items():
            if fixture in used and item.get_closest_marker(mark) is None:
                item.add_marker(getattr(pytest.mark, mark))


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[Engine]:
    """A private dockerd for the whole session (never one left from before).

    ``.host`` is its DOCKER_HOST (``unix:///tmp/obd-.../d.sock``), ``.client`` a ``docker.DockerClient``
    on it. Skipped when dockerd or busybox-static is missing (a failure under ``CI=true``); stopped,
    with its containerd and directories, at the end of the session.
    """
    if os.geteuid() != 0:
        missing(f"the private Docker engine needs root; these tests run as {_who()}")
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
    """The test project ``shoptest<random>`` on ``docker_engine`` (tests/helpers/docker_engine.py).

    api (busybox httpd on ``.port``, /health, /health/db, /health/cache, healthy), worker (logs on
    stdout and stderr, ``DB_PASSWORD=.secret``), postgres (a psql stand-in that prints 3), redis
    (exited, code 1). Attributes: ``.project``, ``.port``, ``.url``, ``.secret``, ``.host``,
    ``.engine``, ``.containers`` (service -> docker container).
    """
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


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A throwaway PostgreSQL cluster for the session (tests/helpers/postgres.py), stopped at the end.

    Skipped when Debian's postgresql is missing or we are not root (a failure under ``CI=true``).
    """
    try:
        cluster = start_postgres()
    except PostgresMissing as exc:
        missing(str(exc))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3]:
    """moto's S3 server on loopback for the session; AWS_ENDPOINT_URL and dummy keys point boto3 at it."""
    try:
        import moto.server  # noqa: F401
    except ImportError as exc:
        missing(f"moto[server] is not installed: import moto.server failed ({exc}); pip install '.[test]'")
    server = MotoS3()
    server.start()
    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                            "AWS_DEFAULT_REGION")}  # fmt: skip
    os.environ.update({"AWS_ENDPOINT_URL": server.url, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"})  # fmt: skip
    try:
        yield server
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def prometheus():
    """A real Prometheus (Debian's ``prometheus``) scraping the test exporter every second, for the session.

    ``.url`` is its API; ``.exporter`` (tests/helpers/prometheus.py) serves ``http_requests_total`` and
    ``http_request_duration_seconds`` for env ``prod`` and ``staging``, driven through ``.exporter.traffic``.
    Skipped when prometheus is missing (a failure under ``CI=true``); stopped at the end of the session.
    """
    from tests.helpers.prometheus import Exporter, PrometheusMissing, start_prometheus

    exporter = Exporter(("prod", "staging")).start()
    try:
        server = start_prometheus([exporter.target])
    except PrometheusMissing as exc:
        exporter.stop()
        missing(str(exc))
    server.exporter = exporter
    try:
        yield server
    finally:
        server.stop()
        exporter.stop()
