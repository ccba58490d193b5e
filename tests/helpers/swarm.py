"""A one-node Docker Swarm on the test session's engine, and a test stack on it.

``swarm_engine`` (session): the private engine of ``docker_engine`` made a one-node swarm manager
(``docker swarm init --advertise-addr 127.0.0.1``, listening on 127.0.0.1 only). A swarm on that engine
leaves its Compose-labelled containers alone (same engine, same host network; swarm init adds only the
``ingress`` overlay network, which nothing here attaches to), so the session keeps one engine; the swarm
is left (``docker swarm leave --force``) at the end of the session, before the engine stops.

Networking: the engine runs with ``--bridge=none --iptables=false``, so there is no routing mesh to
publish through. ``api`` runs on the host network (``networks=["host"]``, endpoint mode ``dnsrr``: a
host-network service has no virtual IP), so its busybox httpd answers on 127.0.0.1:PORT for the HTTP
health checks, exactly as the Compose test project does. ``worker`` has no network at all (no ports,
talks to nobody), which lets two of its tasks run side by side: the start-first updates are tested on
it, the stop-first ones (host network: two httpd would collide on the port) on ``api``.

Images come from ``build_image`` (``docker import``): the engine has them locally. A swarm agent still
asks a registry for an image by tag before it creates a task, finds none here, and uses the local one.

To use the fixtures from another module: ``from tests.helpers.swarm import swarm_engine  # noqa: F401``
(or list it in ``tests/conftest.py``). Module-level imports of the same session fixture share one swarm:
``init_swarm`` reuses a swarm the engine already has.
"""

from __future__ import annotations

import contextlib
import random
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import docker
import docker.errors
import pytest
from docker.types import EndpointSpec, Healthcheck, RestartPolicy, ServiceMode

from tests.helpers.docker_engine import API_SCRIPT, WORKER_SCRIPT, Engine, build_image, busybox_tar
from tests.helpers.http_servers import free_port


def free_udp_port() -> int:
    """A UDP port nobody uses now, for the swarm's VXLAN data path (Docker takes 1024-49151 only)."""
    while True:
        port = random.randrange(20000, 30000)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port


STACK_LABEL = "com.docker.stack.namespace"
#: api's start: with ``OPSBOT_BROKEN`` set (by the image: see ``build_broken_image``) its /health is a 404,
#: so its Docker health check fails and Swarm sees an unhealthy task
SWARM_API_SCRIPT = (
    'if [ -n "$OPSBOT_BROKEN" ]; then mkdir -p /empty && exec httpd -f -p 127.0.0.1:$PORT -h /empty; fi; ' + API_SCRIPT
)
#: short health checks and stop grace so that an update takes seconds (nanoseconds, as Swarm counts)
SECOND = 1_000_000_000
HEALTH = {"interval": SECOND // 2, "timeout": 2 * SECOND, "retries": 2, "start_period": 0}


def init_swarm(client: docker.DockerClient) -> None:
    """Make the engine a one-node swarm manager on 127.0.0.1 (nothing to do when it already is one)."""
    if client.info().get("Swarm", {}).get("LocalNodeState") == "active":
        return
    # ports of its own: test sessions running side by side (pytest-xdist workers) each have a swarm
    port = free_port()
    address = f"127.0.0.1:{port}"
    client.swarm.init(advertise_addr=address, listen_addr=address, data_path_port=free_udp_port())


def leave_swarm(client: docker.DockerClient) -> None:
    """Leave the swarm (its services and their tasks go with it); best effort."""
    with contextlib.suppress(docker.errors.APIError):
        client.swarm.leave(force=True)


@pytest.fixture(scope="session")
def swarm_engine(docker_engine: Engine) -> Iterator[Engine]:
    """The session's engine, made a one-node swarm manager for the rest of the session."""
    init_swarm(docker_engine.client)
    try:
        yield docker_engine
    finally:
        leave_swarm(docker_engine.client)


def build_broken_image(client: docker.DockerClient, repo: str, tag: str) -> str:
    """``repo:tag``: busybox with ``ENV OPSBOT_BROKEN=1``, so the stack's api fails its health check."""
    client.api.import_image_from_data(busybox_tar(), repository=repo, tag=tag, changes=["ENV OPSBOT_BROKEN=1"])
    return f"{repo}:{tag}"


@dataclass
class Stack:
    """The test stack: api (httpd on the host network, health checked), worker (2 tasks, logs, a secret)."""

    engine: Engine
    name: str
    port: int
    secret: str
    services: dict[str, Any] = field(default_factory=dict)

    @property
    def host(self) -> str:
        """The engine's DOCKER_HOST."""
        return self.engine.host

    @property
    def url(self) -> str:
        """The api's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def remove(self) -> None:
        """Remove the stack's services (their tasks stop with them)."""
        for service in self.services.values():
            with contextlib.suppress(docker.errors.APIError):
                service.remove()


def create_service(client: docker.DockerClient, stack: str, name: str, image: str, args: list[str], **kw: Any) -> Any:
    """A service as ``docker stack deploy`` leaves it: named ``<stack>_<name>``, labelled with the stack.

    ``args`` are the spec's ``Args`` (a compose file's ``command:``); ``ContainerSpec.Command`` would be its
    ``entrypoint:``. One replica unless ``replicas`` is given; a 1 s stop grace, restarts after 0.2 s.
    """
    labels = {STACK_LABEL: stack}
    replicas = kw.pop("replicas", 1)
    return client.services.create(
        image, name=f"{stack}_{name}", args=args, labels=labels, container_labels=labels,
        mode=ServiceMode("replicated", replicas), stop_grace_period=SECOND,
        restart_policy=RestartPolicy(condition="any", delay=SECOND // 5), **kw,
    )  # fmt: skip


def start_stack(engine: Engine, port: int, *, timeout: float = 60.0) -> Stack:
    """Create the test stack ``swarmtest<random>`` and wait until api is healthy and both workers run."""
    client = engine.client
    for repo, tag in (("shop/api", "1.0"), ("shop/worker", "1.0")):
        build_image(client, repo, tag)
    stack = Stack(engine=engine, name=f"swarmtest{secrets.token_hex(3)}", port=port, secret=secrets.token_hex(8))
    stack.services["api"] = create_service(
        client, stack.name, "api", "shop/api:1.0", ["sh", "-c", SWARM_API_SCRIPT],
        env=[f"PORT={port}", "PLAIN=visible"], networks=["host"], endpoint_spec=EndpointSpec(mode="dnsrr"),
        healthcheck=Healthcheck(test=["CMD", "wget", "-q", "-O-", f"http://127.0.0.1:{port}/health"], **HEALTH),
    )  # fmt: skip
    stack.services["worker"] = create_service(
        client, stack.name, "worker", "shop/worker:1.0", ["sh", "-c", WORKER_SCRIPT], replicas=2,
        env=[f"DB_PASSWORD={stack.secret}", "PLAIN=visible", "FEATURE_CHECKOUT=on"],
    )  # fmt: skip
    try:
        wait_stack(client, stack, {"api": 1, "worker": 2}, timeout)
    except BaseException:
        stack.remove()
        raise
    return stack


def wait_stack(client: docker.DockerClient, stack: Stack, want: dict[str, int], timeout: float) -> None:
    """Until each service has ``want`` tasks running (Swarm marks a task running once it is healthy)."""
    deadline = time.monotonic() + timeout
    while True:
        running = {
            name: sum(t["Status"]["State"] == "running" and t["DesiredState"] == "running" for t in service.tasks())
            for name, service in stack.services.items()
        }
        if all(running.get(name, 0) >= count for name, count in want.items()):
            return
        if time.monotonic() > deadline:
            tasks = {
                name: [(t["Status"]["State"], t["Status"].get("Err")) for t in service.tasks()]
                for name, service in stack.services.items()
            }
            raise RuntimeError(f"the swarm stack did not come up within {timeout}s: {tasks}")
        time.sleep(0.2)
