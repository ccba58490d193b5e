"""Replacing a Compose service's containers by new ones, keeping the old until the change is verified.

A mixin of ``ComposeRuntime`` on top of ``ComposeChanges``. ``replace`` swaps each container in turn
(stop, rename to ``<name>-opsbot-old-<short id>``, create the new one under the name from the old
one's own configuration -- ``adapters/docker/spec.py`` --, start) and returns a ``Replacement``;
``revert`` puts the old containers back, ``commit`` removes them. The kept ones are hidden from
listings (``ComposeRuntime._inspect_all``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import Any

from adapters.compose.changes import ComposeChanges
from adapters.docker.info import container_name, own_grace
from adapters.docker.spec import check_env, check_image, container_body, gone, kept_name
from adapters.errors import AdapterError, NotFound, OpsError
from adapters.lifecycle import Progress
from adapters.models import ReplacedContainer, Replacement


class ComposeReplace(ComposeChanges):
    """Replace, revert and commit for the containers of one Compose project (mixed into ``ComposeRuntime``)."""

    def _remove(self, cid: str) -> None:
        self._api().remove_container(cid, force=True)

    def _remove_kept(self, one: ReplacedContainer) -> None:
        """Remove an old container if it is still kept (not when a revert gave it its name back)."""
        api = self._api()
        if container_name(api.inspect_container(one.old_id)) == one.kept_as:
            api.remove_container(one.old_id, force=True)

    async def replace(
        self, service: str, image: str, *, env: dict[str, str | None] | None = None, progress: Progress | None = None
    ) -> Replacement:
        """Replace each container of ``service`` in turn by one of ``image``, its configuration kept.

        Per container: stop (its own stop grace), rename to ``<name>-opsbot-old-<short id>``, create the
        new one under the name, start it. Everything is checked (image present, settings built) before
        the first stop. Any failure puts back what was replaced (each old container under its name,
        started if it was running) and raises, saying so.
        """
        changes = check_env(env)
        ref = check_image(image)
        containers = await self._service(service, running=False)
        olds = {str(a.get("Image", "")) for a in containers}
        found = await asyncio.gather(self._need_image(ref), *(self._image(i) for i in olds))
        new, images = found[0], dict(zip(olds, found[1:], strict=True))
        for attrs in containers:
            if (attrs.get("HostConfig") or {}).get("AutoRemove"):
                raise AdapterError(
                    f"{container_name(attrs)} is removed when it stops (--rm): it cannot be kept for a rollback"
                )
        bodies = [container_body(a, images[str(a.get("Image", ""))] or {}, ref, new, env=changes) for a in containers]
        first = (containers[0].get("Config") or {}).get("Image")
        done: list[ReplacedContainer] = []
        for index, (attrs, (body, networks)) in enumerate(zip(containers, bodies, strict=True), 1):
            name = container_name(attrs)
            try:
                if progress is not None:
                    await progress(f"replacing {name} ({index} of {len(containers)})")
                done.append(await self._swap(attrs, body, networks))
            except BaseException as exc:
                so_far = Replacement(service=service, image_before=first, image_after=ref, containers=done)
                undo = await asyncio.shield(self._put_back(so_far))
                if not isinstance(exc, OpsError):
                    raise
                back = "the containers replaced before were put back" if not undo else f"putting back failed: {undo}"
                raise type(exc)(f"replacing {name} of service {service!r} with {ref} failed: {exc}; {back}") from exc
        return Replacement(service=service, image_before=first, image_after=ref, containers=done)

    async def _swap(self, attrs: dict[str, Any], body: dict[str, Any], networks: dict[str, Any]) -> ReplacedContainer:
        """Stop, rename, create, start one container; on failure its own steps are undone before raising."""
        cid, name = str(attrs["Id"]), container_name(attrs)
        running = bool((attrs.get("State") or {}).get("Running"))
        kept = kept_name(name, cid)
        new_id = None
        try:
            await self._stop_one(cid, name, own_grace(attrs))
            await self._call(lambda: self._api().rename(cid, kept), what=f" (renaming {name} to {kept})")
            new_id = await self._create(body, name, networks)
            await self._call(partial(self._start, new_id), what=f" (starting the new {name})")
        except BaseException:
            one = ReplacedContainer(name=name, old_id=cid, new_id=new_id or "", kept_as=kept, was_running=running)
            await asyncio.shield(self._restore(one))
            raise
        return ReplacedContainer(name=name, old_id=cid, new_id=new_id, kept_as=kept, was_running=running)

    async def _restore(self, one: ReplacedContainer, *, graceful: bool = False) -> None:
        """Remove the new container, give the old its name back, start it if it was running.

        Nothing is touched when the old container is gone (the replacement was committed): the new one
        is all the service has.
        """
        try:
            current = await self._call(partial(self._inspect, one.old_id), what=f" (inspect {one.kept_as})")
        except NotFound as exc:
            raise NotFound(gone(one.kept_as)) from exc
        if one.new_id:
            if graceful:
                try:
                    attrs = await self._call(partial(self._inspect, one.new_id), what=f" (inspect {one.name})")
                    await self._stop_one(one.new_id, one.name, own_grace(attrs))
                except NotFound:
                    pass
            try:
                await self._call(partial(self._remove, one.new_id), what=f" (removing the new {one.name})")
            except NotFound:
                pass
        if container_name(current) != one.name:
            await self._call(lambda: self._api().rename(one.old_id, one.name), what=f" (renaming back {one.name})")
        if one.was_running:
            await self._call(partial(self._start, one.old_id), what=f" (starting the old {one.name})")

    async def _put_back(self, record: Replacement, *, graceful: bool = False) -> str:
        """Restore each replaced container, newest first; '' when all went well, else what failed."""
        failed = []
        for one in reversed(record.containers):
            try:
                await self._restore(one, graceful=graceful)
            except OpsError as exc:
                failed.append(f"{one.name}: {exc}")
        return "; ".join(failed)

    async def revert(self, replacement: Replacement) -> None:
        """Undo ``replace``: stop (their grace) and remove the new containers, put the old ones back, start them.

        Each container is put back even when another fails; then ``AdapterError`` says which failed.
        """
        failed = await self._put_back(replacement, graceful=True)
        if failed:
            raise AdapterError(f"putting back service {replacement.service!r} failed: {failed}")

    async def commit(self, replacement: Replacement) -> None:
        """The new containers are verified: remove the kept old ones (their named volumes stay).

        An old container already gone, or put back by ``revert``, is left alone.
        """
        calls: list[Callable[[], None]] = [partial(self._remove_kept, one) for one in replacement.containers]
        for result in await self._each(calls, f" (removing the old containers of {replacement.service})"):
            if isinstance(result, BaseException) and not isinstance(result, NotFound):
                raise result
