"""The plumbing of ``SwarmRuntime``: its engine client, bounded calls, and finding a stack's services and tasks.

As in ``ComposeRuntime`` the docker SDK is synchronous: every call runs in a worker thread of the
runtime's own pool, bounded by ``asyncio.wait_for`` (and by a socket timeout a little longer, so the
thread ends soon after), and the SDK's exceptions become ``adapters.errors`` with one clear line.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

import docker
import docker.errors
import requests

from adapters.dockerio import reason
from adapters.errors import AdapterError, AdapterTimeout, EngineUnavailable, NotFound
from adapters.swarminfo import STACK, short_name

T = TypeVar("T")
#: engines >= 20.10 speak 1.41 (``ServiceStatus`` in service lists needs it)
API_VERSION = "1.41"
#: at most this many requests to the engine at once: worker threads, and connections kept open
PARALLEL = 16


class SwarmBase:
    """Client, worker pool and lookups shared by the parts of ``SwarmRuntime``."""

    def __init__(
        self,
        docker_host: str,
        stack: str,
        *,
        timeout: float = 10.0,
        update_timeout: float = 300.0,
        monitor: float = 5.0,
        pull_timeout: float = 300.0,
    ) -> None:
        self.docker_host = docker_host
        self.stack = stack
        self.timeout = timeout
        self.update_timeout = update_timeout
        self.monitor = monitor
        self.pull_timeout = pull_timeout
        self.description = f"Docker engine at {docker_host}"
        self._client: docker.DockerClient | None = None
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    # ------------------------------------------------------------------ plumbing

    def _api(self) -> Any:
        """The SDK's low-level client, made on first use (in a worker thread: it may connect)."""
        with self._lock:
            if self._client is None:
                self._client = docker.DockerClient(
                    base_url=self.docker_host,
                    timeout=int(self.timeout) + 2,
                    version=API_VERSION,
                    max_pool_size=PARALLEL,
                )
            return self._client.api

    async def _call(self, fn: Callable[[], T], *, timeout: float | None = None, what: str = "") -> T:
        """Run a blocking SDK call in a thread, bounded, with its errors made ours."""
        limit = self.timeout if timeout is None else timeout
        try:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(PARALLEL, thread_name_prefix="opsbot-swarm")
            return await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(self._pool, fn), limit)
        except TimeoutError as exc:
            raise AdapterTimeout(f"{self.description} did not answer within {limit:g}s{what}") from exc
        except AdapterError:
            raise
        except docker.errors.NotFound as exc:
            raise NotFound(f"{self.description}: {explain(exc)}{what}") from exc
        except docker.errors.APIError as exc:
            text = explain(exc)
            if "not a swarm manager" in text or "not part of a swarm" in text:
                raise AdapterError(f"{self.description} is not a Docker Swarm manager{what}: {text}") from exc
            raise AdapterError(f"{self.description} refused{what}: {text}") from exc
        except requests.exceptions.Timeout as exc:  # a socket timeout: the engine went silent
            raise AdapterTimeout(f"{self.description} did not answer within {self.timeout:g}s{what}") from exc
        except (requests.exceptions.RequestException, docker.errors.DockerException, OSError) as exc:
            raise EngineUnavailable(f"{self.description} does not answer ({reason(exc)})") from exc

    async def _each(self, calls: list[Callable[[], T]], what: str) -> list[T | BaseException]:
        """Run ``calls`` concurrently (the pool bounds them); errors are returned, not raised."""
        return await asyncio.gather(*(self._call(fn, what=what) for fn in calls), return_exceptions=True)

    def _stream(self, method: str, path: str, read_timeout: float, **kw: Any) -> Any:
        """Open a streamed answer of the engine (raises our errors for 4xx/5xx)."""
        api = self._api()
        url = f"{api.base_url}/v{api.api_version}{path}"
        response = api.request(method, url, stream=True, timeout=(self.timeout, read_timeout), **kw)
        if response.status_code >= 400:
            try:
                message = response.json().get("message") or response.reason
            except ValueError:
                message = response.text[:200] or response.reason
            response.close()
            error = NotFound if response.status_code == 404 else AdapterError
            raise error(f"{self.description}: {message}")
        return response

    # ------------------------------------------------------------------ lookups

    def _list_services(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._api().services(filters={"label": f"{STACK}={self.stack}"}, status=True)
        return found

    async def _services(self) -> dict[str, dict[str, Any]]:
        """The stack's services by their short name (``api`` for ``shop_api``), with ``ServiceStatus``."""
        found = await self._call(self._list_services, what=" (listing services)")
        return {short_name(s["Spec"]["Name"], self.stack): s for s in found}

    async def _service(self, service: str) -> dict[str, Any]:
        """One service of the stack (short or full name), freshly inspected with its status."""
        services = await self._services()
        found = services.get(service) or next((s for s in services.values() if s["Spec"]["Name"] == service), None)
        if found is None:
            raise NotFound(f"service {service!r} is not in stack {self.stack!r}")
        return found

    def _inspect_service(self, service_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self._api().inspect_service(service_id)
        return found

    async def _tasks(self, service_ids: list[str]) -> list[dict[str, Any]]:
        """Every task the engine keeps of these services (current ones and their recent history)."""
        if not service_ids:
            return []
        found: list[dict[str, Any]] = await self._call(
            lambda: self._api().tasks(filters={"service": service_ids}), what=" (listing tasks)"
        )
        return found

    def _inspect_container(self, cid: str) -> dict[str, Any]:
        found: dict[str, Any] = self._api().inspect_container(cid)
        return found

    async def _containers(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Inspect data of the tasks' containers that are on this engine's node (others are left out)."""
        found = await self._each([partial(self._inspect_container, cid) for cid in ids], " (inspect)")
        for result in found:
            if isinstance(result, BaseException) and not isinstance(result, NotFound):
                raise result
        return {cid: r for cid, r in zip(ids, found, strict=True) if isinstance(r, dict)}

    def _inspect_network(self, network_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self._api().inspect_network(network_id)
        return found

    async def _networks(self, found: dict[str, Any]) -> list[dict[str, Any]]:
        """The networks the service's tasks are attached to (inspect data; one that vanished is left out)."""
        template = found["Spec"].get("TaskTemplate") or {}
        targets = [n["Target"] for n in template.get("Networks") or found["Spec"].get("Networks") or []]
        networks = await self._each([partial(self._inspect_network, t) for t in targets], " (inspect network)")
        for result in networks:
            if isinstance(result, BaseException) and not isinstance(result, NotFound):
                raise result
        return [n for n in networks if isinstance(n, dict)]

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
