"""The changes ``FakeRuntime`` makes, as ``ComposeRuntime`` makes them on the engine (a mixin).

Images, one-off containers, replace / revert / commit, stop / start, in memory. The contract tests
(``tests/integration/test_runtime_changes.py``) run the same assertions against both.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from adapters.docker.io import MAX_EXEC_OUTPUT, image_version
from adapters.docker.spec import check_argv, check_env, check_image, gone, kept_name
from adapters.errors import AdapterError, NotFound, OpsError
from adapters.lifecycle import Progress, grace_seconds
from adapters.models import ContainerInfo, ExecResult, ReplacedContainer, Replacement


@dataclass(frozen=True)
class AfterRestart:
    """What a restarted fake container turns into, seen from the next call on (a hook for tests).

    The default is what a good restart gives: running, and ``healthy`` when it has a health check.
    ``AfterRestart(state="exited", exit_code=1, logs=("FATAL ...",))`` is a service that crashes at
    start; ``AfterRestart(health="unhealthy")`` one whose check fails; ``AfterRestart(health="starting")``
    one whose check never decides. ``health`` applies only to containers that have a health check.
    """

    state: str = "running"
    health: str = "healthy"
    exit_code: int | None = None
    #: lines the container writes to its log when it starts again
    logs: tuple[str, ...] = ()
    #: the outcome of its last health check as the engine words it ("exit 1: no /tmp/ok"), if one ran
    check: str | None = None


#: ``handler(service, image, argv)`` -> the result of a one-off container running ``argv``
OneoffHandler = Callable[[str, str, list[str]], ExecResult]


def not_runnable(argv: Sequence[str]) -> ExecResult:
    """What the engine says when a one-off's ``argv[0]`` does not exist in the image (the CLI's exit 127)."""
    return ExecResult(
        exit_code=127,
        output="failed to create task for container: failed to create shim task: OCI runtime create failed: "
        f'runc create failed: unable to start container process: exec: "{argv[0]}": executable file not found'
        " in $PATH: unknown\n",
    )


class FakeChanges:
    """Images, one-offs, replace / revert / commit, stop / start over the fake's containers.

    ``images``: images the fake engine has besides those its containers run; ``registry``: images a
    pull would fetch (``image_available`` adds them to ``images``). ``oneoff_results``:
    ``(service, *argv)`` -> canned result of a one-off; ``oneoff_handler`` for any other argv (else
    exit 127, not found, as on the engine); ``oneoffs`` records ``(service, image, argv)``.
    ``after_replace``: image -> what its containers turn into once started by ``replace`` or
    ``revert`` (default running and healthy); ``unstartable``: image -> the engine's refusal when a
    container of it is started (``replace`` puts back and raises). ``kept``: old id -> (old container,
    was running) until commit or revert.
    """

    if TYPE_CHECKING:
        project: str
        description: str
        items: list[ContainerInfo]
        calls: list[str]
        after_restart: dict[str, AfterRestart]
        _pending: dict[str, AfterRestart]

        async def _enter(self, what: str, timeout: float | None = None) -> None: ...
        async def _never_finishes(self, key: tuple[str, ...], timeout: float, message: str) -> None: ...
        def _of(self, service: str, *, running: bool) -> list[ContainerInfo]: ...
        def log(self, container: str, *lines: str, at: datetime | None = None) -> None: ...

    def _init_changes(self) -> None:
        self.images: set[str] = set()
        self.registry: set[str] = set()
        self.oneoff_results: dict[tuple[str, ...], ExecResult] = {}
        self.oneoff_handler: OneoffHandler | None = None
        self.oneoffs: list[tuple[str, str, list[str]]] = []
        self.after_replace: dict[str, AfterRestart] = {}
        self.unstartable: dict[str, str] = {}
        self.kept: dict[str, tuple[ContainerInfo, bool]] = {}
        #: image (reference or id) -> when it was built (``image_created``); None: it does not say
        self.image_dates: dict[str, datetime | None] = {}
        self._ids = itertools.count(0x100000)

    def _has(self, image: str) -> bool:
        return image in self.images or any(c.image == image for c in self.items)

    async def image_created(self, image: str) -> datetime | None:
        """When the fake engine's ``image`` was built (``image_dates``); ``NotFound`` for an image it lacks."""
        ref = check_image(image)
        await self._enter(f"image_created {ref}")
        if ref in self.image_dates:
            return self.image_dates[ref]
        if not self._has(ref):
            raise NotFound(f"{self.description}: No such image: {ref}")
        return None

    async def image_available(self, image: str) -> bool:
        """True when the fake engine has ``image`` or its registry does (then it is "pulled")."""
        ref = check_image(image)
        await self._enter(f"image_available {ref}")
        if not self._has(ref) and ref in self.registry:
            self.images.add(ref)
        return self._has(ref)

    def _need(self, image: str) -> str:
        ref = check_image(image)
        if not self._has(ref):
            raise NotFound(f"image {ref} is not on the {self.description}: nothing was changed")
        return ref

    async def run_oneoff(self, service: str, image: str, argv: list[str], *, timeout: float = 300.0) -> ExecResult:
        """A canned result for ``(service, *argv)``, else the handler's, else "executable file not found" (127)."""
        argv = check_argv(argv, "a one-off")
        await self._enter(f"run_oneoff {service} {image} {argv}", timeout)
        self._of(service, running=False)
        ref = self._need(image)
        await self._never_finishes(
            (service, *argv), timeout,
            f"{argv[0]} in a one-off container of service {service!r} did not finish within {timeout:g}s"
            " (it was killed and removed)",
        )  # fmt: skip
        self.oneoffs.append((service, ref, argv))
        result = self.oneoff_results.get((service, *argv))
        if result is None:
            result = self.oneoff_handler(service, ref, argv) if self.oneoff_handler else not_runnable(argv)
        data = result.output.encode()
        if len(data) > MAX_EXEC_OUTPUT:  # the engine's bound: the last 64 KiB
            text = data[-MAX_EXEC_OUTPUT:].decode("utf-8", errors="replace")
            result = result.model_copy(update={"output": text, "truncated": True})
        return result

    # ------------------------------------------------------------------ stop and start

    def _now_after(self, c: ContainerInfo) -> datetime:
        now = datetime.now(UTC)
        return c.started_at + timedelta(microseconds=1) if c.started_at and now <= c.started_at else now

    def _stopped(self, c: ContainerInfo) -> ContainerInfo:
        if c.state not in ("running", "restarting", "paused"):
            return c
        self._pending.pop(c.id, None)
        update = {"state": "exited", "exit_code": 0, "health": None if c.health is None else "unhealthy"}
        return c.model_copy(update=update)

    def _started(self, c: ContainerInfo, after: AfterRestart) -> ContainerInfo:
        update: dict[str, Any] = {"state": "running", "exit_code": None, "restarts": 0}
        update.update(started_at=self._now_after(c), health=None if c.health is None else "starting")
        started = c.model_copy(update=update)
        self.log(c.name, *after.logs, at=started.started_at)
        self._pending[c.id] = after
        return started

    def _put(self, old: ContainerInfo, new: ContainerInfo) -> None:
        self.items[self.items.index(old)] = new

    async def stop(self, service: str, *, timeout: float | None = None) -> list[ContainerInfo]:
        """Every container of the service stopped (exit 0); a stopped one is left as it is."""
        grace = grace_seconds(timeout)
        await self._enter(f"stop {service}" + ("" if grace is None else f" grace={grace}"))
        for c in self._of(service, running=False):
            self._put(c, self._stopped(c))
        return self._of(service, running=False)

    async def start(self, service: str) -> list[ContainerInfo]:
        """Every stopped container of the service started (then what ``after_restart`` says)."""
        await self._enter(f"start {service}")
        for c in self._of(service, running=False):
            if c.state != "running":
                self._put(c, self._started(c, self.after_restart.get(service, AfterRestart())))
        return self._of(service, running=False)

    # ------------------------------------------------------------------ replace, revert, commit

    async def replace(
        self, service: str, image: str, *, env: dict[str, str | None] | None = None, progress: Progress | None = None
    ) -> Replacement:
        """Each container swapped for one of ``image`` (same name and settings, ``env`` applied); old ones kept."""
        changes = check_env(env)
        await self._enter(f"replace {service} {image}" + (f" env={sorted(changes)}" if changes else ""))
        targets = self._of(service, running=False)
        ref = self._need(image)
        done: list[ReplacedContainer] = []
        for index, old in enumerate(targets, 1):
            try:
                if progress is not None:
                    await progress(f"replacing {old.name} ({index} of {len(targets)})")
                if ref in self.unstartable:
                    why = f"{self.description} refused (starting the new {old.name}): {self.unstartable[ref]}"
                    raise AdapterError(why)
            except BaseException as exc:
                self._undo(done)
                if not isinstance(exc, OpsError):
                    raise
                back = "the containers replaced before were put back"
                raise type(exc)(
                    f"replacing {old.name} of service {service!r} with {ref} failed: {exc}; {back}"
                ) from exc
            variables = dict(old.env)
            for name, value in changes.items():
                if value is None:
                    variables.pop(name, None)
                else:
                    variables[name] = value
            update = {"id": f"{next(self._ids):012x}", "image": ref, "version": image_version(ref)}
            blank = old.model_copy(update={**update, "env": variables, "started_at": None})
            new = self._started(blank, self.after_replace.get(ref, AfterRestart()))
            kept = self._stopped(old).model_copy(update={"name": kept_name(old.name, old.id)})
            self.kept[old.id] = (kept, old.state == "running")
            self._put(old, new)
            done.append(ReplacedContainer(name=old.name, old_id=old.id, new_id=new.id, kept_as=kept.name,
                                          was_running=old.state == "running"))  # fmt: skip
        first = targets[0].image if targets else None
        return Replacement(service=service, image_before=first, image_after=ref, containers=done)

    def _undo(self, done: list[ReplacedContainer]) -> str:
        """Put the kept old containers back in place of the new ones, newest first; '' or what failed."""
        failed = []
        for one in reversed(done):
            kept, running = self.kept.pop(one.old_id, (None, False))
            if kept is None:  # put back already (nothing to do), or committed (the new one stays)
                if not any(c.id == one.old_id for c in self.items):
                    failed.append(f"{one.name}: {gone(one.kept_as)}")
                continue
            old = kept.model_copy(update={"name": one.name})
            if running:
                old = self._started(old, self.after_replace.get(old.image, AfterRestart()))
            new = next((c for c in self.items if c.id == one.new_id), None)
            if new is not None:
                self._pending.pop(new.id, None)
                self._put(new, old)
            else:
                self.items.append(old)
        return "; ".join(failed)

    async def revert(self, replacement: Replacement) -> None:
        """The new containers removed, the old ones back under their names (started if they were running)."""
        await self._enter(f"revert {replacement.service}")
        failed = self._undo(list(replacement.containers))
        if failed:
            raise AdapterError(f"putting back service {replacement.service!r} failed: {failed}")

    async def commit(self, replacement: Replacement) -> None:
        """The kept old containers removed."""
        await self._enter(f"commit {replacement.service}")
        for one in replacement.containers:
            self.kept.pop(one.old_id, None)
