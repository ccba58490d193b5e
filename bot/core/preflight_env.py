"""An environment's checks in ``opsbot check --live``: its engine and hosts, database, ports, URLs and stores."""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from adapters.errors import AdapterError, OpsError
from adapters.models import ExecResult
from adapters.preflight.host import run_on_host
from adapters.preflight.net import tcp_connect, tls_certificate
from adapters.preflight.s3 import s3_access
from bot.config import EnvironmentConfig
from bot.core.preflight_rows import (
    GIB,
    Check,
    Context,
    PreflightRow,
    Severity,
    at_least,
    gib,
    health_request,
    version_tuple,
)


class EnvChecks:
    """The checks of one environment."""

    def __init__(self, ctx: Context, name: str, env: EnvironmentConfig) -> None:
        self.ctx = ctx
        self.name = name
        self.env = env
        self.host = env.runtime.docker_host
        requirements = ctx.config.requirements
        self.hardware = requirements.hardware if requirements is not None else None
        self.software = requirements.software if requirements is not None else None
        self.ports = [p for p in requirements.ports if p.service in env.services] if requirements is not None else []

    def _row(self, check: str, target: str, severity: Severity, reason: str) -> PreflightRow:
        return self.ctx.row(self.name, check, target, severity, reason)

    def checks(self) -> list[Check]:
        """Every check of the environment, in the order they are shown."""
        host = self.host
        out: list[Check] = [
            ("Docker engine", host, self.engine), ("CPU", host, self.cpu), ("Memory", host, self.memory),
            ("Disk", host, self.disk),
        ]  # fmt: skip
        backup = self.env.backup
        if backup is not None and self._is_postgres():
            where = f"service {backup.database.service}" if backup.database.service else "the bot's host"
            out.append(("Database", where, self.database))
        out += [("Port", f"{p.service}:{p.port}", partial(self.port, p.service, p.port)) for p in self.ports]
        out += [("Health", c.name, partial(self.health, i)) for i, c in enumerate(self.env.health_checks)]
        out += [("TLS", url, partial(self.tls, url)) for url in self._https_urls()]
        if backup is not None:
            out.append(("Backup store", backup.store, self.store))
            buckets = [backup.store] + ([backup.files.from_, backup.files.to] if backup.files is not None else [])
            names = dict.fromkeys(urlsplit(u).netloc for u in buckets if u.startswith("s3://"))
            out += [("S3 credentials", f"s3://{b}", partial(self.s3, b)) for b in names]
        return out

    def _is_postgres(self) -> bool:
        assert self.env.backup is not None
        db = self.env.backup.database
        programs = {PurePosixPath(db.restore[0]).name, PurePosixPath(db.dump[0]).name}
        return bool(self.software and self.software.postgres) or bool(programs & {"psql", "pg_dump", "pg_restore",
                                                                                 "pg_dumpall"})  # fmt: skip

    def _https_urls(self) -> list[str]:
        urls = [self.env.url] if self.env.url else []
        for check in self.env.health_checks:
            try:
                urls.append(self.env.expand(check.url))
            except OpsError:
                continue
        seen: dict[tuple[str, int], str] = {}
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme == "https" and parts.hostname:
                seen.setdefault((parts.hostname, parts.port or 443), f"https://{parts.netloc}/")
        return list(seen.values())

    # ------------------------------------------------------------------ the engine and its hosts

    async def engine(self) -> list[PreflightRow]:
        """The engine answers; its version against requirements.software.docker."""
        facts = await self.ctx.facts(self.host)
        about = f"Docker {facts.version} ({facts.os or '?'}, host {facts.name or '?'})"
        need = self.software.docker if self.software else None
        if need is None:
            return [self._row("Docker engine", self.host, "ok", f"{about}; no minimum in requirements.software")]
        if not at_least(facts.version, need):
            return [
                self._row(
                    "Docker engine",
                    self.host,
                    "critical",
                    f"{about} is older than the minimum {need} (requirements.software.docker)",
                )
            ]
        return [self._row("Docker engine", self.host, "ok", f"{about}; the minimum is {need}")]

    async def _hosts(self) -> list[tuple[str, float, int]]:
        """(host name, CPUs, memory bytes) of each Docker host: a Swarm's nodes, else the engine's own."""
        if self.env.runtime.kind == "swarm":
            nodes = await self.ctx.engine(self.host).nodes()
            return [(n.hostname, n.cpus, n.memory_bytes) for n in nodes if n.state == "ready"]
        facts = await self.ctx.facts(self.host)
        return [(facts.name or self.host, float(facts.cpus), facts.memory_bytes)]

    async def cpu(self) -> list[PreflightRow]:
        """Each host's CPUs against requirements.hardware.cpu_cores."""
        need = self.hardware.cpu_cores if self.hardware else None
        rows = []
        for name, cpus, _ in await self._hosts():
            about = f"{cpus:g} CPU{'s' if cpus != 1 else ''} on {name}"
            if need is None:
                rows.append(self._row("CPU", name, "ok", f"{about}; no minimum in requirements.hardware"))
            elif cpus < need:
                rows.append(
                    self._row(
                        "CPU",
                        name,
                        "critical",
                        f"{about}, fewer than the minimum {need} (requirements.hardware.cpu_cores)",
                    )
                )
            else:
                rows.append(self._row("CPU", name, "ok", f"{about}; the minimum is {need}"))
        return rows

    async def memory(self) -> list[PreflightRow]:
        """Each host's memory against requirements.hardware.memory_gb (up to 10% below: a warning)."""
        need = self.hardware.memory_gb if self.hardware else None
        rows = []
        for name, _, total in await self._hosts():
            about = f"{gib(total)} of memory on {name}"
            if need is None:
                rows.append(self._row("Memory", name, "ok", f"{about}; no minimum in requirements.hardware"))
            elif total >= need * GIB:
                rows.append(self._row("Memory", name, "ok", f"{about}; the minimum is {need:g} GB"))
            elif total >= 0.9 * need * GIB:
                rows.append(self._row("Memory", name, "warning",
                                      f"{about}, just under the minimum {need:g} GB (requirements.hardware.memory_gb): "
                                      "the kernel keeps some for itself; check the machine has it"))  # fmt: skip
            else:
                rows.append(
                    self._row(
                        "Memory",
                        name,
                        "critical",
                        f"{about}, less than the minimum {need:g} GB (requirements.hardware.memory_gb)",
                    )
                )
        return rows

    async def _disk_use(self, root: str) -> tuple[int, int, str] | None:
        """(free, size, how) of the engine's data root: df in a running container (its root filesystem lives
        there), else statvfs of the data root when the engine is on this host; None when neither works."""
        runtime = self.ctx.backends.runtime(self.name)
        running = dict.fromkeys(c.service for c in await runtime.containers() if c.state == "running")
        for service in [s for s in running if s in self.env.services][:3]:
            try:
                use = await runtime.disk(service)
            except AdapterError:
                continue
            return use.size_bytes - use.used_bytes, use.size_bytes, f"df in {use.container}"
        if self.host.startswith("unix://") and root:
            local = self.ctx.local_free(root)
            if local is not None:
                return local[0], local[1], "statvfs on this host"
        return None

    async def disk(self) -> list[PreflightRow]:
        """Free disk of the engine's data root; its size against requirements.hardware.disk_gb, use against
        thresholds.disk_percent."""
        facts = await self.ctx.facts(self.host)
        root = facts.root_dir or "?"
        measured = await self._disk_use(facts.root_dir)
        if measured is None:
            return [self._row("Disk", root, "warning",
                              f"not measured: no running container of {self.env.runtime.project} has df, and the "
                              f"data root {root} is not on this host")]  # fmt: skip
        free, size, how = measured
        percent = 100.0 * (size - free) / size if size else 0.0
        about = f"{gib(free)} free of {gib(size)} ({percent:.0f}% used) on the data root {root} ({how})"
        need = self.hardware.disk_gb if self.hardware else None
        limits = self.ctx.config.thresholds.disk_percent
        if need is not None and size < need * GIB:
            return [self._row("Disk", root, "critical",
                              f"{about}: the filesystem is smaller than the minimum {need:g} GB "
                              "(requirements.hardware.disk_gb)")]  # fmt: skip
        if percent >= limits.critical or percent >= limits.warning:
            severity: Severity = "critical" if percent >= limits.critical else "warning"
            level = limits.critical if severity == "critical" else limits.warning
            return [self._row("Disk", root, severity, f"{about}: at or above {level:g}% (thresholds.disk_percent)")]
        return [self._row("Disk", root, "ok", about + (f"; the minimum is {need:g} GB" if need is not None else ""))]

    # ------------------------------------------------------------------ the database and the ports

    async def _run(self, service: str | None, argv: list[str]) -> ExecResult:
        if service is None:
            return await run_on_host(argv, timeout=self.ctx.timeout)
        return await self.ctx.backends.runtime(self.name).exec(service, argv, timeout=self.ctx.timeout)

    async def database(self) -> list[PreflightRow]:
        """The database server's version (``SHOW server_version`` through the restore command's psql, else
        ``postgres --version``, else ``psql -V``) against requirements.software.postgres."""
        assert self.env.backup is not None
        db = self.env.backup.database
        where = f"service {db.service}" if db.service else "the bot's host"
        place = f"in service {db.service}" if db.service else "on the bot's host"
        tries: list[tuple[str, list[str]]] = []
        if PurePosixPath(db.restore[0]).name == "psql":
            tries.append(("SHOW server_version", [*db.restore, "-XAtc", "SHOW server_version"]))
        tries += [("postgres --version", ["postgres", "--version"]), ("psql -V (the client)", ["psql", "-V"])]
        failures = []
        for how, argv in tries:
            result = await self._run(db.service, argv)
            found = version_tuple(result.output) if result.exit_code == 0 else None
            if found is None:
                failures.append(f"{argv[0]}: {(result.output.strip().splitlines() or ['no output'])[-1][:120]}")
                continue
            version = ".".join(str(p) for p in found)
            about = f"PostgreSQL {version} ({how} {place})"
            need = self.software.postgres if self.software else None
            if need is not None and not at_least(version, need):
                return [
                    self._row(
                        "Database",
                        where,
                        "critical",
                        f"{about} is older than the minimum {need} (requirements.software.postgres)",
                    )
                ]
            tail = f"; the minimum is {need}" if need else "; no minimum in requirements.software"
            return [self._row("Database", where, "ok", about + tail)]
        return [self._row("Database", where, "critical", "could not read the server's version: " + "; ".join(failures))]

    async def port(self, service: str, port: int) -> list[PreflightRow]:
        """Each running container of ``service`` accepts TCP on ``port`` (its own address, or where it is published)."""
        target = f"{service}:{port}"
        rt = self.env.runtime
        found = await self.ctx.engine(self.host).addresses(rt.kind, rt.project, service)
        if not found:
            return [self._row("Port", target, "critical", f"{service} has no running container to connect to")]
        good, bad = [], []
        for container in found:
            places = [(h, port) for h in container.hosts] + ([container.published[port]]
                                                             if port in container.published else [])  # fmt: skip
            if not places:
                bad.append(f"{container.container} has no address reachable from here")
                continue
            tried = await asyncio.gather(*(tcp_connect(h, p, timeout=self.ctx.timeout) for h, p in places),
                                         return_exceptions=True)  # fmt: skip
            ok = [(place, ms) for place, ms in zip(places, tried, strict=True) if isinstance(ms, float)]
            if ok:
                (h, p), ms = ok[0]
                good.append(f"{container.container} at {h}:{p} ({ms:g} ms)")
            else:
                why = "; ".join(str(e) for e in tried if isinstance(e, BaseException))
                bad.append(f"{container.container}: {why}")
        if bad:
            return [self._row("Port", target, "critical", f"nobody accepts TCP on port {port} of {service}: "
                              + "; ".join(bad))]  # fmt: skip
        return [self._row("Port", target, "ok", f"{service} accepts TCP: {', '.join(good)}")]

    # ------------------------------------------------------------------ URLs and stores

    async def health(self, index: int) -> list[PreflightRow]:
        """One health check (as ``health`` runs it), its latency against thresholds.response_time_ms."""
        request = health_request(self.env, index, self.ctx.timeout)
        [result] = await self.ctx.backends.probe.check([request])
        target = f"{request.name} ({request.url})"
        if not result.ok:
            code = f" (HTTP {result.status_code})" if result.status_code and "HTTP" not in (result.error or "") else ""
            return [self._row("Health", target, "critical", f"{result.error or 'failed'}{code}")]
        latency = result.latency_ms or 0.0
        limits = self.ctx.config.thresholds.response_time_ms
        about = f"HTTP {result.status_code} in {latency:g} ms"
        if latency >= limits.warning:
            severity: Severity = "critical" if latency >= limits.critical else "warning"
            level = limits.critical if severity == "critical" else limits.warning
            return [self._row("Health", target, severity, f"{about}: at or above {level:g} ms "
                              "(thresholds.response_time_ms)")]  # fmt: skip
        return [self._row("Health", target, "ok", about)]

    async def tls(self, url: str) -> list[PreflightRow]:
        """The certificate of an https URL verifies; its days left against the cert_check task's (or 21 / 7)."""
        cert = await tls_certificate(url, timeout=self.ctx.timeout)
        days = cert.days_left()
        warning, critical = self.ctx.cert_days(self.name)
        about = f"{cert.subject}, issued by {cert.issuer}, expires {cert.not_after:%Y-%m-%d}"
        if days < 0:
            return [self._row("TLS", url, "critical", f"{about}: expired {-days:.0f} days ago")]
        if days < warning:
            severity: Severity = "critical" if days < critical else "warning"
            under = critical if severity == "critical" else warning
            return [self._row("TLS", url, severity, f"{about}: {days:.0f} days left, fewer than {under}")]
        return [self._row("TLS", url, "ok", f"{about}: {days:.0f} days left")]

    async def store(self) -> list[PreflightRow]:
        """A tiny object written to the backup store and removed."""
        store = self.ctx.backends.store(self.name)
        key = self.ctx.test_key(store.prefix, self.name)
        put = await store.put(key, self.ctx.tiny_object(), {"kind": "preflight", "requester": "opsbot check --live"},
                              dict)  # fmt: skip
        try:
            await store.delete(key)
        except AdapterError as exc:
            return [self._row("Backup store", store.url, "warning",
                              f"wrote {put.location} but could not remove it: {exc}")]  # fmt: skip
        return [self._row("Backup store", store.url, "ok", f"wrote and removed a {put.size}-byte object ({key})")]

    async def s3(self, bucket: str) -> list[PreflightRow]:
        """boto3 finds credentials and the bucket accepts them."""
        access = await s3_access(bucket, timeout=self.ctx.timeout)
        return [
            self._row(
                "S3 credentials",
                f"s3://{bucket}",
                "ok",
                f"bucket {bucket} accepts the access key …{access.key_hint} (from {access.source})",
            )
        ]
