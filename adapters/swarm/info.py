"""From Docker Swarm's answers to the project's models: stack labels, task states, update settings.

Pure functions of the dicts the engine answers (``GET /services``, ``GET /tasks``, a task's container
inspect), no SDK in them. A Swarm task is what a Compose container is: one per replica (its ``Slot``)
and node, replaced by a new task on every restart or update, its history kept a while by the engine.
"""

from __future__ import annotations

from typing import Any

from adapters.docker.io import image_version, parse_time
from adapters.lifecycle import check_text
from adapters.models import ContainerInfo

#: the label ``docker stack deploy`` puts on a stack's services (and their containers)
STACK = "com.docker.stack.namespace"
#: the service label ``SwarmRuntime.stop`` keeps the replica count in, for ``start``
KEPT_REPLICAS = "io.opsbot.replicas-before-stop"
#: the states of an update that end it (``UpdateStatus.State``)
UPDATE_DONE = ("completed", "paused", "rollback_completed", "rollback_paused")
#: task states before its container runs
EARLY = ("new", "pending", "assigned", "accepted", "preparing", "ready")
#: task states of a task that ended on its own (not shut down by the orchestrator)
FAILED = ("failed", "rejected")
#: nanoseconds in a second: Swarm's durations
NS = 1_000_000_000


def strip_digest(image: str) -> str:
    """``shop/api:1.1@sha256:...`` -> ``shop/api:1.1``: the digest the CLI pins is noise to a person.

    An image named only by digest (``shop/api@sha256:...``) keeps it: without it, it names nothing.
    """
    name, at, _ = image.partition("@")
    return name if at and image_version(name) is not None else image


def short_name(full: str, stack: str) -> str:
    """The service's name in the stack: ``shop_api`` -> ``api`` (a name without the prefix stays)."""
    prefix = f"{stack}_"
    return full[len(prefix) :] if full.startswith(prefix) and len(full) > len(prefix) else full


def container_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The ContainerSpec of a service spec (``Spec``) or a task's spec (``Spec`` of a task)."""
    template = spec.get("TaskTemplate", spec)
    found: dict[str, Any] = template.get("ContainerSpec") or {}
    return found


def spec_image(spec: dict[str, Any]) -> str:
    """The image of a service or task spec, without the digest."""
    return strip_digest(str(container_spec(spec).get("Image") or ""))


def env_of(spec: dict[str, Any]) -> dict[str, str]:
    """The environment of a service or task spec (``Env``: ``NAME=value`` items)."""
    return dict(item.partition("=")[::2] for item in container_spec(spec).get("Env") or [])


def with_env(items: list[str] | None, changes: dict[str, str | None]) -> list[str]:
    """``Env`` items with ``changes`` applied: a value sets a variable, None removes it; order kept."""
    out, done = [], set()
    for item in items or []:
        name = item.partition("=")[0]
        if name in changes:
            done.add(name)
            if changes[name] is None:
                continue
            item = f"{name}={changes[name]}"
        out.append(item)
    out += [f"{n}={v}" for n, v in changes.items() if n not in done and v is not None]
    return out


def replicas_of(service: dict[str, Any]) -> int | None:
    """The replicas a replicated service asks for; None for a global one (one task per node)."""
    replicated = ((service.get("Spec") or {}).get("Mode") or {}).get("Replicated")
    return None if replicated is None else int(replicated.get("Replicas") or 0)


def desired_tasks(service: dict[str, Any]) -> int:
    """How many tasks the service should run (``ServiceStatus``, else its replicas)."""
    status = service.get("ServiceStatus") or {}
    if "DesiredTasks" in status:
        return int(status["DesiredTasks"])
    return replicas_of(service) or 0


def has_healthcheck(spec: dict[str, Any]) -> bool:
    """True when the spec sets a health check of its own (``NONE`` disables one)."""
    test = (container_spec(spec).get("Healthcheck") or {}).get("Test") or []
    return bool(test) and test[0] != "NONE"


def stop_grace(spec: dict[str, Any]) -> float:
    """The service's stop grace in seconds (``StopGracePeriod``; Docker's 10 s without one)."""
    value = container_spec(spec).get("StopGracePeriod")
    return value / NS if isinstance(value, int) and value >= 0 else 10.0


def update_settings(order: str, monitor: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """``UpdateConfig`` and ``RollbackConfig`` for an update opsbot makes.

    One task at a time, ``order`` (start-first where two tasks of a slot can run side by side), the
    engine rolls the update back by itself when a new task fails within ``monitor`` seconds of its
    start (``failure_action: rollback``; no failure is tolerated); a rollback that fails pauses.
    """
    common = {"Parallelism": 1, "Delay": 0, "Monitor": int(monitor * NS), "MaxFailureRatio": 0, "Order": order}
    return {**common, "FailureAction": "rollback"}, {**common, "FailureAction": "pause"}


def ports_bind_the_host(service: dict[str, Any]) -> bool:
    """True when the service publishes a port in host mode: two tasks on one node would collide."""
    ports = ((service.get("Spec") or {}).get("EndpointSpec") or {}).get("Ports") or []
    return any(p.get("PublishMode") == "host" and p.get("PublishedPort") for p in ports)


def task_name(service_name: str, task: dict[str, Any]) -> str:
    """The name Swarm gives a task's container: ``<service>.<slot>.<task id>`` (global: the node id)."""
    slot = task.get("Slot") or task.get("NodeID") or "0"
    return f"{service_name}.{slot}.{task.get('ID', '')}"


def task_id_of(name: str) -> str:
    """The task id at the end of a task's name."""
    return name.rsplit(".", 1)[-1]


def slot_key(task: dict[str, Any]) -> str:
    """What identifies a replica across its tasks: the slot, or the node for a global service."""
    return str(task.get("Slot") or task.get("NodeID") or "")


def container_id(task: dict[str, Any]) -> str | None:
    """The id of the task's container, once the agent has made one."""
    found = ((task.get("Status") or {}).get("ContainerStatus") or {}).get("ContainerID")
    return str(found) if found else None


def task_error(task: dict[str, Any]) -> str:
    """Why a task ended, in the engine's words (``Err``, else its status message)."""
    status = task.get("Status") or {}
    return str(status.get("Err") or status.get("Message") or status.get("State") or "unknown")


def restarts(task: dict[str, Any], history: list[dict[str, Any]]) -> int:
    """How often the task's replica failed and was started again with the same spec.

    Counts the slot's earlier tasks that failed (or were rejected) with a spec equal to this one's:
    a new image or a forced update (``restart``) starts the count again, as a manual restart resets
    Docker's RestartCount. The engine keeps a few tasks per slot (``TaskHistoryRetentionLimit``,
    5 by default), so the count stops there.
    """
    key, spec, created = slot_key(task), task.get("Spec"), str(task.get("CreatedAt") or "")
    return sum(
        1
        for t in history
        if slot_key(t) == key
        and t.get("ID") != task.get("ID")
        and (t.get("Status") or {}).get("State") in FAILED
        and t.get("Spec") == spec
        and str(t.get("CreatedAt") or "") < created
    )


def task_info(
    task: dict[str, Any],
    *,
    service_name: str,
    service: str,
    container: dict[str, Any] | None,
    healthcheck: bool,
    restart_count: int = 0,
) -> ContainerInfo:
    """A ``ContainerInfo`` for one task.

    ``container`` is the inspect data of its container when it runs on this engine's node (health,
    start time); None for a task on another node or without a container. Swarm marks a task
    ``running`` only once its health check passed (``starting`` until then) and replaces one that turns
    unhealthy, so a remote task's health follows from its state when its spec has a check. A local
    container that has stopped makes the task ``exited`` whatever Swarm says yet.
    """
    status = task.get("Status") or {}
    state = str(status.get("State") or "unknown")
    cstate = (container or {}).get("State") or {}
    health = (cstate.get("Health") or {}).get("Status")
    exit_code = (status.get("ContainerStatus") or {}).get("ExitCode")
    if state in ("running", "starting") and cstate.get("Status") in ("exited", "dead"):
        # the agent reports a task's end a little after its container stops: the container is the fresher
        # source (a task that crashes 3 ms after it starts can still say "running" half a second later)
        state = "failed"
    if state in ("running", "starting"):
        docker_state, exit_code = "running", None
        if health is None and (healthcheck or state == "starting"):
            health = "healthy" if state == "running" else "starting"
    elif state in EARLY:
        docker_state, exit_code = "created", None
    elif state == "rejected":
        docker_state = "dead"
    elif state in ("remove", "orphaned"):
        docker_state = "removing"
    else:  # complete, failed, shutdown
        docker_state = "exited"
        exit_code = cstate.get("ExitCode", exit_code)
    cid = container_id(task)
    image = spec_image(task.get("Spec") or {})
    return ContainerInfo(
        id=(cid or str(task.get("ID", "")))[:12],
        name=task_name(service_name, task),
        service=service,
        number=task.get("Slot") or None,
        state=docker_state,
        health=health,
        image=image,
        version=image_version(image),
        restarts=restart_count,
        started_at=parse_time(cstate.get("StartedAt")) or parse_time(status.get("Timestamp")),
        exit_code=None if exit_code is None else int(exit_code),
        env=env_of(task.get("Spec") or {}),
    )


def last_task_check(container: dict[str, Any] | None) -> str | None:
    """The last health check of a task's container ("exit 1: wget: ..."), when it is on this node."""
    runs = (((container or {}).get("State") or {}).get("Health") or {}).get("Log") or []
    return check_text(runs[-1].get("ExitCode"), runs[-1].get("Output")) if runs else None
