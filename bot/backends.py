"""The real outside world for commands: a runtime per environment, one HTTP probe."""

from __future__ import annotations

from adapters.probe import Probe
from adapters.runtime import Runtime
from adapters.store import BackupStore
from bot.config import OpsConfig


class RealBackends:
    """Creates adapters lazily and keeps one per environment for the life of the process."""

    def __init__(self, config: OpsConfig) -> None:
        self.config = config
        self._runtimes: dict[str, Runtime] = {}
        self._probe: Probe | None = None

    @property
    def probe(self) -> Probe:
        """The shared HTTP probe (created on first use, inside the event loop)."""
        if self._probe is None:
            from adapters.http import HttpProbe  # imports httpx: only when a check runs

            self._probe = HttpProbe()
        return self._probe

    def runtime(self, env: str) -> Runtime:
        """The runtime of ``env``, as its ``runtime`` section says (Compose project or Swarm stack)."""
        if env not in self._runtimes:
            _, env_config = self.config.env(env)
            rt = env_config.runtime
            # the adapters import the docker SDK: only when needed
            if rt.kind == "swarm":
                from adapters.swarm import SwarmRuntime

                self._runtimes[env] = SwarmRuntime(rt.docker_host, rt.project)
            else:
                from adapters.compose import ComposeRuntime

                self._runtimes[env] = ComposeRuntime(rt.docker_host, rt.project)
        return self._runtimes[env]

    def store(self, env: str) -> BackupStore:
        """The backup store of ``env`` (its ``backup.store``: ``s3://`` or ``file://``), kept for the process."""
        stores: dict[str, BackupStore] = self.__dict__.setdefault("_stores", {})
        if env not in stores:
            _, env_config = self.config.env(env)
            if env_config.backup is None:
                from adapters.errors import UserError

                raise UserError(f"environments.{env}.backup is not set in ops.yml: {env} has no backups")
            url = env_config.backup.store
            if url.startswith("s3://"):
                from adapters.s3store import S3Store  # imports boto3: only when needed

                stores[env] = S3Store(url)
            else:
                from adapters.filestore import FileStore

                stores[env] = FileStore(url)
        return stores[env]

    async def close(self) -> None:
        """Close every adapter."""
        stores: dict[str, BackupStore] = self.__dict__.pop("_stores", {})
        for store in stores.values():
            await store.close()
        runtimes, self._runtimes = list(self._runtimes.values()), {}
        for runtime in runtimes:
            await runtime.close()
        probe, self._probe = self._probe, None
        if probe is not None:
            await probe.close()
