"""Background work that is never fire-and-forget: kept in a set, drained on shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger("opsbot.tasks")


class TaskSet:
    """Keeps every background task until it ends; ``drain`` waits for them within a bound."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self.accepting = True

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str | None = None) -> asyncio.Task[Any]:
        """Start ``coro`` as a kept task; its failure is logged, never lost."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())

    def __len__(self) -> int:
        return len(self._tasks)

    async def drain(self, timeout: float) -> int:
        """Stop accepting, wait up to ``timeout`` s for running tasks; cancel the rest. Returns how many were cut."""
        self.accepting = False
        pending = set(self._tasks)
        if not pending:
            return 0
        log.info("draining %d running task(s), up to %.0f s", len(pending), timeout)
        _, still = await asyncio.wait(pending, timeout=timeout)
        for task in still:
            task.cancel()
        if still:
            await asyncio.wait(still, timeout=5)
            log.warning("cut %d task(s) that did not finish within %.0f s", len(still), timeout)
        return len(still)
