"""Background work that is never fire-and-forget: kept, drained on shutdown, and run off the front loop.

``TaskSet.spawn`` runs procedures on a worker event loop in a thread of its own, so that the loop
that answers Slack (acknowledgements within 3 seconds, health routes) never waits behind them.
Every task is kept until it ends; ``drain`` stops new work and waits for running work, within a bound.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger("opsbot.tasks")


class TaskSet:
    """Keeps every background task until it ends; ``drain`` waits for them within a bound."""

    def __init__(self, *, worker_thread: bool = True) -> None:
        self.accepting = True
        self._futures: set[concurrent.futures.Future[Any]] = set()
        self._local: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        if worker_thread:
            ready = threading.Event()

            def run() -> None:
                loop = asyncio.new_event_loop()
                asyncio.set_event_loop(loop)
                self._loop = loop
                ready.set()
                loop.run_forever()
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

            self._thread = threading.Thread(target=run, name="opsbot-worker", daemon=True)
            self._thread.start()
            ready.wait()

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str | None = None) -> concurrent.futures.Future[Any]:
        """Run ``coro`` on the worker loop (or this loop without one); its failure is logged, never lost."""
        if self._loop is not None:
            future: concurrent.futures.Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        else:
            task = asyncio.get_running_loop().create_task(coro, name=name)
            future = concurrent.futures.Future()
            task.add_done_callback(lambda t: _copy(t, future))
        self._futures.add(future)
        future.add_done_callback(lambda f: self._done(f, name))
        return future

    def spawn_here(self, coro: Coroutine[Any, Any, Any], *, name: str | None = None) -> asyncio.Task[Any]:
        """Run ``coro`` on the calling loop (short glue work that awaits this loop's futures); kept too."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._local.add(task)
        task.add_done_callback(self._local.discard)
        return task

    def _done(self, future: concurrent.futures.Future[Any], name: str | None) -> None:
        self._futures.discard(future)
        if not future.cancelled() and future.exception() is not None:
            log.error("background task %s failed", name, exc_info=future.exception())

    def __len__(self) -> int:
        return len(self._futures) + len(self._local)

    async def drain(self, timeout: float, *, finalizer: Callable[[], Coroutine[Any, Any, Any]] | None = None) -> int:
        """Stop accepting, wait up to ``timeout`` s for running tasks; cancel the rest. Returns how many were cut.

        ``finalizer`` runs last on the worker loop, to close what procedures opened there (sessions,
        clients) before the loop stops.
        """
        self.accepting = False
        cut = 0
        if self._local:
            _, still_local = await asyncio.wait(set(self._local), timeout=timeout)
            for task in still_local:
                task.cancel()
            cut += len(still_local)
        pending = {asyncio.wrap_future(f) for f in self._futures}
        if pending:
            log.info("draining %d running procedure(s), up to %.0f s", len(pending), timeout)
            _, still = await asyncio.wait(pending, timeout=timeout)
            for fut in still:
                fut.cancel()
            if still:
                await asyncio.wait(still, timeout=5)
                log.warning("cut %d procedure(s) that did not finish within %.0f s", len(still), timeout)
            cut += len(still)
        if finalizer is not None:
            if self._loop is not None:
                try:
                    await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(finalizer(), self._loop))
                except Exception:
                    log.exception("closing the worker loop's resources failed")
            else:
                await finalizer()
        self.close()
        return cut

    def close(self) -> None:
        """Stop the worker loop (after ``drain``)."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop = None


#: how long a cancelled loop (the scheduler, the alert outbox) is waited for before a shutdown goes on without it;
#: two of them, the drain and its 5 s to cut stay within the front's wait for the back (``EXIT_GRACE`` past the drain)
STOP_BOUND = 5.0


async def stop_task(task: asyncio.Task[Any], what: str, bound: float = STOP_BOUND) -> bool:
    """Cancel ``task`` and wait for it to end, at most ``bound`` s; False (and logged) when it did not.

    A loop that lost its cancel (a library that caught it) must not hold a shutdown forever: the
    procedures' drain still has to run, and the process to exit.
    """
    task.cancel()
    await asyncio.wait({task}, timeout=bound)
    if not task.done():
        log.error("%s did not stop within %g s of being cancelled; going on without it", what, bound)
        return False
    if not task.cancelled() and task.exception() is not None:
        log.error("%s failed while stopping", what, exc_info=task.exception())
    return True


def _copy(task: asyncio.Task[Any], future: concurrent.futures.Future[Any]) -> None:
    if task.cancelled():
        future.cancel()
    elif task.exception() is not None:
        future.set_exception(task.exception())
    else:
        future.set_result(task.result())
