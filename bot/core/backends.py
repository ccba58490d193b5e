"""The real outside world for commands: a runtime per environment, one HTTP probe."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the interfaces, for annotations; each adapter is imported when first used
    from adapters.buckets import Buckets
    from adapters.certs import CertSource
    from adapters.metrics.base import Metrics
    from adapters.probe import Probe
    from adapters.runtime import Runtime
    from adapters.store import BackupStore
    from bot.config import OpsConfig


class RealBackends:
    """Creates adapters lazily and keeps one per environment for the life of the process."""

    def __init__(self, config: OpsConfig, *, timeout: float | None = None) -> None:
        self.config = config
        #: the bound of each call to an engine or S3 (None: the adapters' defaults)
        self.timeout = timeout
        self._runtimes: dict[str, Runtime] = {}
        self._probe: Probe | None = None

    @property
    def probe(self) -> Probe:
        """The shared HTTP probe (created on first use, inside the event loop)."""
        if self._probe is None:
            from adapters.http.probe import HttpProbe  # imports httpx: only when a check runs

            self._probe = HttpProbe()
        return self._probe

    @property
    def certs(self) -> CertSource:
        """The TLS certificate reader of ``cert_check`` (the system's trusted authorities)."""
        found: CertSource | None = self.__dict__.get("_certs")
        if found is None:
            from adapters.tls.inspector import TlsInspector

            found = self.__dict__["_certs"] = TlsInspector()
        return found

    @property
    def buckets(self) -> Buckets:
        """S3 buckets, server side, for ``backup --files`` (created on first use, kept for the process)."""
        found: Buckets | None = self.__dict__.get("_buckets")
        if found is None:
            from adapters.stores.buckets import S3Buckets  # imports boto3: only when needed

            found = self.__dict__["_buckets"] = S3Buckets() if self.timeout is None else S3Buckets(timeout=self.timeout)
        return found

    def runtime(self, env: str) -> Runtime:
        """The runtime of ``env``, as its ``runtime`` section says (Compose project or Swarm stack)."""
        if env not in self._runtimes:
            _, env_config = self.config.env(env)
            rt = env_config.runtime
            bound = {"timeout": self.timeout} if self.timeout is not None else {}
            # the adapters import the docker SDK: only when needed
            if rt.kind == "swarm":
                from adapters.swarm.runtime import SwarmRuntime

                self._runtimes[env] = SwarmRuntime(rt.docker_host, rt.project, **bound)
            else:
                from adapters.compose.runtime import ComposeRuntime

                self._runtimes[env] = ComposeRuntime(rt.docker_host, rt.project, **bound)
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
                from adapters.stores.s3 import S3Store  # imports boto3: only when needed

                stores[env] = S3Store(url, **({"timeout": self.timeout} if self.timeout is not None else {}))
            else:
                from adapters.stores.file import FileStore

                stores[env] = FileStore(url)
        return stores[env]

    def metrics(self, source: str) -> Metrics:
        """The metrics source ``prometheus`` or ``cloudwatch`` of ``monitoring``, kept for the process."""
        sources: dict[str, Metrics] = self.__dict__.setdefault("_metrics", {})
        if source not in sources:
            monitoring = self.config.monitoring
            if source == "prometheus" and monitoring is not None and monitoring.prometheus is not None:
                from adapters.metrics.prometheus import PrometheusMetrics  # imports httpx: only when needed

                p = monitoring.prometheus
                sources[source] = PrometheusMetrics(p.url, timeout=p.timeout)
            elif source == "cloudwatch" and monitoring is not None and monitoring.cloudwatch is not None:
                from adapters.metrics.cloudwatch import CloudWatchMetrics  # imports boto3: only when needed

                cw = monitoring.cloudwatch
                sources[source] = CloudWatchMetrics(cw.region, timeout=cw.timeout)
            else:
                from adapters.errors import UserError

                raise UserError(f"monitoring.{source} is not set in ops.yml")
        return sources[source]

    async def close(self) -> None:
        """Close every adapter."""
        for source in self.__dict__.pop("_metrics", {}).values():
            await source.close()
        buckets: Buckets | None = self.__dict__.pop("_buckets", None)
        if buckets is not None:
            await buckets.close()
        stores: dict[str, BackupStore] = self.__dict__.pop("_stores", {})
        for store in stores.values():
            await store.close()
        runtimes, self._runtimes = list(self._runtimes.values()), {}
        for runtime in runtimes:
            await runtime.close()
        probe, self._probe = self._probe, None
        if probe is not None:
            await probe.close()
