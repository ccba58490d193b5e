"""``DockerClientBase``: the engine connection both runtimes (Compose, Swarm) share.

The docker SDK is synchronous: every call runs in a worker thread of the runtime's own pool (so a
slow engine cannot starve the loop's default executor, which has only cpu+4 threads), bounded by
``asyncio.wait_for`` and by a socket timeout a little longer (so the thread ends soon after), and the
SDK's exceptions become ``adapters.errors`` with one clear line.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, ClassVar, TypeVar

import docker
import docker.errors
import requests
import urllib3.exceptions

from adapters.docker.cgroups import Cgroup, Cgroups, Reading
from adapters.docker.io import reason
from adapters.docker.stats import GAP, Usage, between, usage
from adapters.errors import AdapterError, AdapterTimeout, EngineUnavailable, NotFound

T = TypeVar("T")
#: engines >= 20.10 speak 1.41; fixing it saves the version round trip (and Swarm's ``ServiceStatus`` needs it)
API_VERSION = "1.41"


class DockerClientBase:
    """A lazily made SDK client, a bounded worker pool, and calls whose errors are ours."""

    #: at most this many requests to the engine at once: worker threads, and connections kept open
    PARALLEL: ClassVar[int] = 32
    #: the name of the worker threads
    THREADS: ClassVar[str] = "opsbot-docker"

    def __init__(self, docker_host: str, *, timeout: float = 10.0) -> None:
        self.docker_host = docker_host
        self.timeout = timeout
        self.description = f"Docker engine at {docker_host}"
        self._client: docker.DockerClient | None = None
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._cgroups: Cgroups | None = None

    def _api(self) -> Any:
        """The SDK's low-level client, made on first use (in a worker thread: it may connect)."""
        with self._lock:
            if self._client is None:
                # the socket timeout is a backstop a little longer than our own bound, so that our
                # bound (AdapterTimeout) is what a caller sees and the thread still ends soon after
                self._client = docker.DockerClient(
                    base_url=self.docker_host,
                    timeout=int(self.timeout) + 2,
                    version=API_VERSION,
                    max_pool_size=self.PARALLEL,
                )
            return self._client.api

    def _refused(self, text: str, what: str) -> AdapterError:
        """The error for an engine's refusal (a subclass may recognise some)."""
        return AdapterError(f"{self.description} refused{what}: {text}")

    async def _call(self, fn: Callable[[], T], *, timeout: float | None = None, what: str = "") -> T:
        """Run a blocking SDK call in a thread, bounded, with its errors made ours."""
        limit = self.timeout if timeout is None else timeout
        try:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.PARALLEL, thread_name_prefix=self.THREADS)
            return await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(self._pool, fn), limit)
        except TimeoutError as exc:
            raise AdapterTimeout(f"{self.description} did not answer within {limit:g}s{what}") from exc
        except AdapterError:
            raise
        except docker.errors.NotFound as exc:
            raise NotFound(f"{self.description}: {explain(exc)}{what}") from exc
        except docker.errors.APIError as exc:
            raise self._refused(explain(exc), what) from exc
        except (requests.exceptions.Timeout, urllib3.exceptions.TimeoutError) as exc:  # a socket timeout: the
            # engine went silent (a raw stream's read times out in urllib3, not wrapped by requests)
            raise AdapterTimeout(f"{self.description} did not answer within {limit:g}s{what}") from exc
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, docker.errors.DockerException,
                OSError) as exc:  # fmt: skip
            raise EngineUnavailable(f"{self.description} does not answer ({reason(exc)})") from exc

    async def _each(self, calls: list[Callable[[], T]], what: str) -> list[T | BaseException]:
        """Run ``calls`` concurrently, at most ``PARALLEL`` at a time; errors are returned, not raised.

        The gate makes each call's time bound start when it runs, not while it waits for a thread.
        """
        gate = asyncio.Semaphore(self.PARALLEL)

        async def one(fn: Callable[[], T]) -> T:
            async with gate:
                return await self._call(fn, what=what)

        return await asyncio.gather(*(one(fn) for fn in calls), return_exceptions=True)

    def _stats_once(self, container_id: str) -> dict[str, Any]:
        """One sample of the container's stats (``one-shot``: no priming sample first; dockerd 20.10 still
        answers at the next tick of its 1 s collector, newer engines at once)."""
        sample: dict[str, Any] = self._api().stats(container_id, stream=False, one_shot=True)
        return sample

    async def _sample(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """One sample of each container, concurrently; those that cannot be read (stopped) left out."""
        found = await self._each([partial(self._stats_once, cid) for cid in ids], " (stats)")
        return {cid: sample for cid, sample in zip(ids, found, strict=True) if isinstance(sample, dict)}

    async def _usage(self, ids: list[str], pids: dict[str, int] | None = None) -> dict[str, Usage]:
        """cpu% and memory of each container (``adapters.docker.stats``): two rounds of samples ``GAP`` apart,
        read from the containers' cgroups when the engine is on this host and ``pids`` (id -> ``State.Pid``)
        lead there (``adapters.docker.cgroups``), else asked of the engine."""
        local: dict[str, Usage] = {}
        if pids and self.docker_host.startswith("unix://"):
            local = await self._cgroup_usage({cid: pids[cid] for cid in ids if cid in pids})
        rest = [cid for cid in ids if cid not in local]
        if not rest:
            return local
        before = await self._sample(rest)
        if not before:
            return local
        await asyncio.sleep(GAP)
        after = await self._sample(list(before))
        return local | {cid: figures for cid, sample in after.items() if (figures := usage(before.get(cid), sample))}

    async def _cgroup_usage(self, pids: dict[str, int]) -> dict[str, Usage]:
        """The containers whose cgroup is provably theirs here, read twice ``GAP`` apart (no engine call)."""
        if self._cgroups is None:
            self._cgroups = await asyncio.to_thread(Cgroups)
        groups = self._cgroups

        def locate() -> dict[str, tuple[Cgroup, Reading]]:
            found = {}
            for cid, pid in pids.items():
                if (where := groups.locate(pid, cid)) is not None and (first := groups.read(where)) is not None:
                    found[cid] = (where, first)
            return found

        def again(found: dict[str, tuple[Cgroup, Reading]]) -> dict[str, Usage]:
            return {cid: figures for cid, (where, first) in found.items()
                    if (figures := between(first, groups.read(where))) is not None}  # fmt: skip

        found = await asyncio.to_thread(locate)
        if not found:
            return {}
        await asyncio.sleep(GAP)
        return await asyncio.to_thread(again, found)

    def _url(self, path: str) -> str:
        api = self._api()
        return f"{api.base_url}/v{api.api_version}{path}"

    def _stream(self, method: str, path: str, read_timeout: float, **kw: Any) -> Any:
        """Open a streamed answer of the engine (raises our errors for 4xx/5xx)."""
        response = self._api().request(method, self._url(path), stream=True, timeout=(self.timeout, read_timeout), **kw)
        if response.status_code >= 400:
            try:
                message = response.json().get("message") or response.reason
            except ValueError:
                message = response.text[:200] or response.reason
            response.close()
            error = NotFound if response.status_code == 404 else AdapterError
            raise error(f"{self.description}: {message}")
        return response

    async def close(self) -> None:
        """Close the connections to the engine and stop the worker threads (the runtime can be used again)."""
        with self._lock:
            client, self._client = self._client, None
        pool, self._pool = self._pool, None
        if client is not None:
            await asyncio.to_thread(client.close)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def explain(exc: docker.errors.APIError) -> str:
    """The engine's own words for a refusal, on one line."""
    text = exc.explanation if isinstance(exc.explanation, str) else str(exc)
    text = text.strip()
    if text.startswith("rpc error:") and "desc = " in text:  # swarmkit's gRPC wrapping says nothing useful
        text = text.split("desc = ", 1)[1]
    return text.splitlines()[0][:300] if text else "no explanation"
