"""The changes ``SwarmRuntime`` makes: image updates, rollbacks, forced updates (restart) and scaling.

Every change is a service update (``POST /services/{id}/update`` with the service's whole spec and its
version, so a concurrent change is never overwritten), made with opsbot's update settings: one task at
a time, start-first unless two tasks of one replica would collide on a node (host network, ports
published in host mode), and ``failure_action: rollback`` with a ``monitor`` window, so a new task that
fails or turns unhealthy makes Swarm put the previous spec back by itself. Then the update is followed
(``UpdateStatus``) until it completed, rolled back or paused, within ``update_timeout``.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from adapters.docker.spec import check_env, check_image
from adapters.errors import AdapterError, AdapterTimeout, NotFound
from adapters.lifecycle import Progress, grace_seconds
from adapters.models import ContainerInfo, Replacement
from adapters.swarm.base import SwarmBase
from adapters.swarm.info import (
    EARLY,
    FAILED,
    KEPT_REPLICAS,
    UPDATE_DONE,
    container_id,
    container_spec,
    desired_tasks,
    last_task_check,
    ports_bind_the_host,
    replicas_of,
    short_name,
    spec_image,
    task_error,
    task_name,
    update_settings,
    with_env,
)

#: seconds between two looks at an update or a scaling
POLL = 0.25
#: an update the orchestrator has not picked up after this many seconds is looked at more closely
QUIET = 5.0


class SwarmChanges(SwarmBase):
    """Updates, rollbacks, restarts and scaling of a stack's services (mixed into ``SwarmRuntime``)."""

    if TYPE_CHECKING:

        async def containers(self, *, stats: bool = False) -> list[ContainerInfo]: ...

    # ------------------------------------------------------------------ the update machinery

    async def _order(self, found: dict[str, Any]) -> str:
        """``start-first`` where a replica's new task can run beside its old one, else ``stop-first``."""
        if ports_bind_the_host(found):
            return "stop-first"
        on_host = any(n.get("Driver") == "host" for n in await self._networks(found))
        return "stop-first" if on_host else "start-first"

    def _post_update(self, service_id: str, version: int, spec: dict[str, Any], rollback: bool) -> None:
        api = self._api()
        params: dict[str, Any] = {"version": version}
        if rollback:
            params["rollback"] = "previous"
        api._result(api._post_json(api._url("/services/{0}/update", service_id), data=spec, params=params), json=True)

    async def _change(
        self, service: str, mutate: Callable[[dict[str, Any]], None], *, rollback: bool = False
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Post the service's current spec changed by ``mutate``; (the service before, the spec posted).

        A change made by someone else in between (the engine says "update out of sequence") is read
        again and ``mutate`` applied to it, once.
        """
        for attempt in (1, 2):
            found = await self._service(service)
            spec = copy.deepcopy(found["Spec"])
            mutate(spec)
            post = partial(self._post_update, found["ID"], found["Version"]["Index"], spec, rollback)
            try:
                await self._call(post, what=f" (updating service {found['Spec']['Name']})")
            except AdapterError as exc:
                if attempt == 1 and "out of sequence" in str(exc):
                    continue
                raise
            return found, spec
        raise AssertionError("unreachable")

    async def _update(
        self, service: str, mutate: Callable[[dict[str, Any]], None], *, action: str, progress: Progress | None
    ) -> dict[str, Any]:
        """Update the service with opsbot's settings and follow the update; the service after it.

        ``AdapterError`` (saying what happened and why) when Swarm rolled the update back or paused it.
        """
        found = await self._service(service)
        order = await self._order(found)
        update, rollback = update_settings(order, self.monitor)

        def change(spec: dict[str, Any]) -> None:
            mutate(spec)
            spec["UpdateConfig"], spec["RollbackConfig"] = update, rollback

        before, spec = await self._change(service, change)
        if spec.get("TaskTemplate") == before["Spec"].get("TaskTemplate") or desired_tasks(before) == 0:
            return before  # no task to replace: nothing for the orchestrator to roll out
        if progress is not None:
            tasks = desired_tasks(before)
            await progress(f"{action}: {tasks} task{'s' * (tasks != 1)}, one at a time, {order}")
        final = await self._follow(service, before, spec, progress=progress)
        status = final.get("UpdateStatus") or {}
        state = status.get("State")
        if state in (None, "completed"):
            return final
        why = await self._failure(final, status)
        if state == "rollback_completed":
            raise AdapterError(
                f"{action} failed and Swarm rolled it back by itself: {why}; "
                f"service {service!r} runs {spec_image(final['Spec'])} again"
            )
        raise AdapterError(f"{action} failed and Swarm paused it ({status.get('Message') or state}): {why}")

    async def _follow(
        self, service: str, before: dict[str, Any], spec: dict[str, Any], *, progress: Progress | None
    ) -> dict[str, Any]:
        """Look at the service until the update it was just given ends; the service then."""
        seen = (before.get("UpdateStatus") or {}).get("StartedAt")
        loop = asyncio.get_running_loop()
        start = loop.time()
        told = False
        while True:
            current = await self._call(partial(self._inspect_service, before["ID"]), what=f" (service {service})")
            status = current.get("UpdateStatus") or {}
            if status.get("StartedAt") and status.get("StartedAt") != seen:
                if status.get("State") in UPDATE_DONE:
                    if str(status.get("State")).startswith("rollback") and progress is not None and not told:
                        # the rollback began and ended between two looks: say it all the same
                        await progress(f"service {service!r}: Swarm rolled the update back ({status.get('Message')})")
                    return current
                if status.get("State") == "rollback_started" and progress is not None and not told:
                    told = True
                    await progress(f"service {service!r}: {status.get('Message') or 'rolling back'}")
            elif loop.time() - start > QUIET and await self._settled(current, spec):
                return current  # the orchestrator found no task to change: nothing was rolled out
            if loop.time() - start > self.update_timeout:
                where = f"{status.get('State')}: {status.get('Message')}" if status else "not started"
                raise AdapterTimeout(
                    f"the update of service {service!r} did not finish within {self.update_timeout:g}s ({where})"
                )
            await asyncio.sleep(POLL)

    async def _settled(self, current: dict[str, Any], spec: dict[str, Any]) -> bool:
        """True when every task the service wants running already has the spec's image and restart counter."""
        want = (spec_image(spec), (spec.get("TaskTemplate") or {}).get("ForceUpdate") or 0)
        tasks = [t for t in await self._tasks([current["ID"]]) if t.get("DesiredState") == "running"]
        return all((spec_image(t.get("Spec") or {}), (t.get("Spec") or {}).get("ForceUpdate") or 0) == want
                   for t in tasks)  # fmt: skip

    async def _failure(self, final: dict[str, Any], status: dict[str, Any]) -> str:
        """The task that made an update fail, in the engine's words, with its last health check if here."""
        tasks = await self._tasks([final["ID"]])
        named = str(status.get("Message") or "").rsplit(" ", 1)[-1]
        since = str(status.get("StartedAt") or "")
        failed = [t for t in tasks if (t.get("Status") or {}).get("State") in FAILED]
        task = next((t for t in failed if t.get("ID") == named), None) or max(
            (t for t in failed if str(t.get("CreatedAt") or "") >= since),
            key=lambda t: str(t.get("CreatedAt") or ""),
            default=None,
        )
        if task is None:
            return str(status.get("Message") or "no task reported an error")
        text = f"task {task_name(final['Spec']['Name'], task)} failed: {task_error(task)}"
        cid = container_id(task)
        check = last_task_check((await self._containers([cid])).get(cid)) if cid else None
        return f"{text} (last health check: {check})" if check else text

    # ------------------------------------------------------------------ deploy, rollback, restart

    async def update_image(self, service: str, image: str, *, progress: Progress | None = None) -> None:
        """Update the service to ``image`` and follow the update to its end.

        Start-first where possible, one task at a time, each watched ``monitor`` seconds; a task that
        fails makes Swarm roll back by itself: then ``AdapterError`` saying so, with the task's error
        (and its last health check), and naming the image that runs again.
        """
        await self.replace(service, image, progress=progress)

    async def replace(
        self, service: str, image: str, *, env: dict[str, str | None] | None = None, progress: Progress | None = None
    ) -> Replacement:
        """The ``Runtime`` form of ``update_image``: ``env`` changes too; the record ``revert`` takes.

        Swarm keeps the previous spec itself (``PreviousSpec``), so nothing is kept aside: ``revert``
        is the service's own rollback and ``commit`` has nothing to do.
        """
        changes = check_env(env)
        ref = check_image(image)
        found = await self._service(service)

        def mutate(spec: dict[str, Any]) -> None:
            container = container_spec(spec)
            container["Image"] = ref
            if changes:
                container["Env"] = with_env(container.get("Env"), changes)

        before = spec_image(found["Spec"]) or None
        await self._update(service, mutate, action=f"the update of service {service!r} to {ref}", progress=progress)
        return Replacement(service=service, image_before=before, image_after=ref)

    async def revert(self, replacement: Replacement) -> None:
        """Put back what ``replace`` changed: the service's rollback, or an update to the image before."""
        service = replacement.service
        found = await self._service(service)
        now, previous = spec_image(found["Spec"]), spec_image(found.get("PreviousSpec") or {})
        if now == replacement.image_after and found.get("PreviousSpec") and previous == replacement.image_before:
            await self.rollback(service)
        elif now != replacement.image_before and replacement.image_before:
            await self.update_image(service, replacement.image_before)

    async def commit(self, replacement: Replacement) -> None:
        """Nothing to remove: Swarm keeps no old containers aside, only the previous spec."""

    async def rollback(self, service: str, *, progress: Progress | None = None) -> str:
        """The service's own rollback to its previous spec (``docker service rollback``); the image then.

        ``AdapterError`` when the service has no previous spec (never updated, or just rolled back: Swarm
        keeps one) or the rollback paused.
        """
        found = await self._service(service)
        if not found.get("PreviousSpec"):
            raise AdapterError(
                f"service {service!r} has no previous version to roll back to"
                " (Swarm keeps only the spec before the last update, and none after a rollback)"
            )
        if progress is not None:
            await progress(f"rolling service {service!r} back to {spec_image(found['PreviousSpec'])}")
        before, _ = await self._change(service, lambda spec: None, rollback=True)
        final = await self._follow(service, before, found["PreviousSpec"], progress=None)
        status = final.get("UpdateStatus") or {}
        if status.get("State") not in (None, "completed", "rollback_completed"):
            why = await self._failure(final, status)
            raise AdapterError(f"the rollback of service {service!r} did not finish ({status.get('Message')}): {why}")
        return spec_image(final["Spec"])

    async def restart(
        self, service: str, *, stop_timeout: float | None = None, progress: Progress | None = None
    ) -> list[ContainerInfo]:
        """Replace every task of the service by a new one: a forced update (``docker service update --force``).

        One task at a time, as an update (start-first where possible); the old tasks are stopped with
        the service's own stop grace period (Swarm stops a task with the grace its spec had, so
        ``stop_timeout`` is only checked). Returns the service's tasks once the update completed.
        """
        grace_seconds(stop_timeout)
        found = await self._service(service)
        if desired_tasks(found) == 0:
            raise NotFound(f"service {service!r} of stack {self.stack!r} is scaled to 0: nothing to restart")

        def force(spec: dict[str, Any]) -> None:
            template = spec.setdefault("TaskTemplate", {})
            template["ForceUpdate"] = int(template.get("ForceUpdate") or 0) + 1

        name = found["Spec"]["Name"]
        await self._update(service, force, action=f"restarting {name} (a forced update)", progress=progress)
        return [c for c in await self.containers() if c.service == short_name(name, self.stack)]

    # ------------------------------------------------------------------ scaling, stop and start

    async def scale(self, service: str, replicas: int) -> None:
        """Set the service's replicas; to 0, return once every task is gone; up, once the tasks exist.

        Whether they come up is for ``wait_running``. ``AdapterError`` for a global service (one task per
        node: it cannot be scaled).
        """
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
            raise AdapterError(f"replicas must be a whole number >= 0, not {replicas!r}")
        found = await self._global_check(service)
        if replicas_of(found) == replicas and replicas > 0:
            return

        def mutate(spec: dict[str, Any]) -> None:
            spec["Mode"]["Replicated"]["Replicas"] = replicas

        await self._change(service, mutate)
        await self._await_scale(service, found["ID"], replicas, mutate)

    async def _global_check(self, service: str) -> dict[str, Any]:
        found = await self._service(service)
        if replicas_of(found) is None:
            raise AdapterError(f"service {service!r} is global (one task per node): it cannot be scaled")
        return found

    async def _await_scale(
        self, service: str, service_id: str, replicas: int, mutate: Callable[[dict[str, Any]], None]
    ) -> None:
        """Until no task is left (``replicas`` 0) or ``replicas`` tasks are wanted running."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        nudged = False
        while True:
            tasks = await self._tasks([service_id])
            if replicas == 0:
                left = [t for t in tasks if (t.get("Status") or {}).get("State") in (*EARLY, "starting", "running")
                        or t.get("DesiredState") == "remove"]  # fmt: skip
                if not left:
                    return
            else:
                left = [t for t in tasks if t.get("DesiredState") == "running"]
                if len(left) >= replicas:
                    return
                if not nudged and loop.time() - start > QUIET:
                    # Swarm can miss a scale-up right after a scale-down (restart condition none): ask again
                    nudged = True
                    await self._change(service, mutate)
            if loop.time() - start > self.update_timeout:
                raise AdapterTimeout(
                    f"scaling service {service!r} to {replicas} did not finish within {self.update_timeout:g}s"
                    f" ({len(left)} task{'s' * (len(left) != 1)} {'left' if replicas == 0 else 'wanted running'})"
                )
            await asyncio.sleep(POLL)

    async def stop(self, service: str, *, timeout: float | None = None) -> list[ContainerInfo]:
        """Scale the service to 0, remembering its replicas (a service label) for ``start``; [] once gone.

        Swarm stops each task with the service's own stop grace period (``stop_grace_period`` of the
        stack), so ``timeout`` is only checked. A service already at 0 is left as it is.
        """
        grace_seconds(timeout)
        found = await self._global_check(service)
        count = replicas_of(found) or 0

        def mutate(spec: dict[str, Any]) -> None:
            spec["Mode"]["Replicated"]["Replicas"] = 0
            if count > 0:
                spec.setdefault("Labels", {})[KEPT_REPLICAS] = str(count)

        if count > 0:
            await self._change(service, mutate)
        await self._await_scale(service, found["ID"], 0, mutate)
        return []

    async def start(self, service: str) -> list[ContainerInfo]:
        """Scale a service at 0 back to the replicas ``stop`` remembered (1 without); its tasks then.

        A service that has replicas is left alone. Use ``wait_running`` to learn whether they came up.
        """
        found = await self._service(service)
        if replicas_of(found) == 0:
            kept = str((found["Spec"].get("Labels") or {}).get(KEPT_REPLICAS) or "")
            count = int(kept) if kept.isdigit() and int(kept) > 0 else 1

            def mutate(spec: dict[str, Any]) -> None:
                spec["Mode"]["Replicated"]["Replicas"] = count
                (spec.get("Labels") or {}).pop(KEPT_REPLICAS, None)

            await self._change(service, mutate)
            await self._await_scale(service, found["ID"], count, mutate)
        return [c for c in await self.containers() if c.service == short_name(found["Spec"]["Name"], self.stack)]
