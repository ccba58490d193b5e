"""``opsbot init --from-compose``: an ops.yml that works at once for a Compose project, with comments.

From the Compose file (:mod:`bot.config.compose_read`): the services (``deploy: true`` for those whose
image looks like the project's own), health checks from the ``healthcheck:`` URLs the engine publishes,
startup stages from ``depends_on`` and the shutdown in reverse, the PostgreSQL service for backups,
and the ports the services declare as requirements. What is a guess says ``check:`` in its comment;
what the file cannot tell is listed at the end. The text is validated as ops.yml before it is given.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from adapters.errors import ConfigError
from bot.config.compose_read import ComposeProject, ComposeService, read_compose, stages
from bot.config.load import parse_yaml, validate_config
from bot.config.types import _check_image, parse_duration

#: images that are somebody else's software (databases, caches, proxies...), by their last path part
INFRA = frozenset("""
    postgres postgresql postgis timescaledb mysql mariadb mongo mongodb redis valkey keydb memcached rabbitmq
    nginx traefik caddy haproxy httpd envoy elasticsearch opensearch kibana grafana prometheus alertmanager
    minio zookeeper kafka mailhog mailpit adminer pgadmin4 localstack keycloak vault consul etcd jaeger loki
    promtail node-exporter cadvisor busybox alpine ubuntu debian pgbouncer clickhouse-server influxdb nats
""".split())  # fmt: skip
#: namespaces of published third-party images
VENDORS = frozenset("""
    library bitnami grafana prom confluentinc elastic minio traefik nginxinc dpage jaegertracing otel
    hashicorp localstack mailhog axllent wurstmeister timescale postgis clickhouse influxdata
""".split())  # fmt: skip
POSTGRES = frozenset({"postgres", "postgresql", "postgis", "timescaledb", "timescaledb-ha"})
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "0.0.0.0", "::1", "[::1]"})  # noqa: S104 - names, not binds
ENV_NAME = "prod"


def repository(image: str) -> str:
    """An image reference without its tag or digest: ``reg:5000/shop/api:1.2`` -> ``reg:5000/shop/api``."""
    name = image.split("@", 1)[0]
    head, _, last = name.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]


def own_image(service: ComposeService) -> tuple[bool, str]:
    """Whether the service's image looks like the project's own (deployed by version), and why."""
    if service.image is None:
        return False, "built here without an image: name (give it one to deploy versions of it)"
    repo = repository(service.image)
    parts = repo.split("/")
    registry = len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost")
    path = parts[1:] if registry else parts
    if service.build:
        return True, f"built from this project as {repo}"
    if len(path) == 1 or path[0] == "library":
        return False, f"{service.image} is an official image"
    if path[-1] in INFRA or path[0] in VENDORS:
        return False, f"{service.image} looks like third-party software"
    return True, f"its image {repo} looks like your own"


def _q(value: str) -> str:
    """A YAML scalar: plain when safe, else double-quoted (JSON's quoting is YAML's)."""
    if re.fullmatch(r"[A-Za-z0-9_./:@+-]+", value) and not re.fullmatch(r"[-+.\d:]+|true|false|yes|no|null|on|off|~",
                                                                           value, re.IGNORECASE):  # fmt: skip
        return value
    return json.dumps(value)


def _flow(values: list[str]) -> str:
    return "[" + ", ".join(_q(v) for v in values) + "]"


@dataclass
class _Doc:
    """Lines of YAML with their comments aligned."""

    lines: list[tuple[str, str]] = field(default_factory=list)

    def add(self, text: str, comment: str = "") -> None:
        self.lines.append((text, comment))

    def text(self) -> str:
        out = []
        for text, comment in self.lines:
            if comment and text:
                out.append(f"{text.ljust(max(34, len(text) + 1))} # {comment}")
            elif comment:
                indent = len(comment) - len(comment.lstrip(" "))
                out.append(f"{' ' * indent}# {comment.lstrip(' ')}")
            else:
                out.append(text)
        return "\n".join(out).rstrip() + "\n"


def _reachable(service: ComposeService, url: str) -> tuple[str | None, str]:
    """The URL from the Docker host for a URL a healthcheck fetches inside its container, and a note."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    tail = parts.path + (f"?{parts.query}" if parts.query else "")
    if "$" in url or (parts.hostname or "") not in LOCAL_HOSTS:
        return None, f"{service.name}'s healthcheck fetches {url}, which cannot be reached from outside its container"
    if service.network_mode == "host":
        return f"{parts.scheme}://127.0.0.1:{port}{tail}", f"{service.name}'s healthcheck, on the host network"
    for p in service.ports:
        if p.target == port and p.published:
            host = p.host_ip if p.host_ip not in ("", "0.0.0.0", "::") else "127.0.0.1"  # noqa: S104
            return (
                f"{parts.scheme}://{host}:{p.published}{tail}",
                f"{service.name}'s healthcheck, published on {p.published}",
            )
    return None, f"{service.name}'s healthcheck fetches {url} but port {port} is not published: publish it to check it"


def _duration(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        parse_duration(value)
    except ValueError:
        return None
    return value


def _database(project: ComposeProject) -> tuple[ComposeService, str, str] | None:
    for service in project.services.values():
        if service.image and repository(service.image).rsplit("/", 1)[-1] in POSTGRES:
            user = service.environment.get("POSTGRES_USER") or "postgres"
            return service, user, service.environment.get("POSTGRES_DB") or user
    return None


def render_ops_yml(project: ComposeProject, *, docker_host: str, source: str) -> str:
    """The ops.yml text for ``project`` (not yet validated)."""
    doc = _Doc()
    doc.add("", f"ops.yml for the Compose project {project.name!r}, written by `opsbot init --from-compose {source}`.")
    doc.add("", "A start, to be edited: comments that say 'check:' are guesses; the rest is read from the file.")
    doc.add("", "Then: `opsbot check` (the format), `opsbot check --live` (the preflight), `opsbot run status`.")
    doc.add("")
    doc.add(f"project: {_q(project.name)}")
    doc.add(f"default_environment: {ENV_NAME}")
    doc.add("")
    doc.add("access:", "Slack user ids (U...) or user group ids (S...) per role")
    doc.add("  viewers: []", "empty: everyone in the workspace may run read-only commands")
    doc.add("  operators: []", "check: who may request changes (deploy, restart, backup, ...)")
    doc.add("  approvers: []", "check: who may approve them")
    doc.add("  admins: []", "the local console and `opsbot run` act as an admin already")
    doc.add("")
    checks: list[tuple[str, str, str | None, str]] = []  # name, url, timeout, note
    skipped: list[str] = []
    for service in project.services.values():
        for url in service.health_urls:
            reached, note = _reachable(service, url)
            if reached is None:
                skipped.append(note)
                continue
            name = service.name if len(service.health_urls) == 1 else f"{service.name} {urlsplit(url).path or '/'}"
            checks.append((name, reached, _duration(service.health_timeout), note))
    base = None
    if checks:
        parts = urlsplit(checks[0][1])
        base = f"{parts.scheme}://{parts.netloc}"
    doc.add("environments:", "5.1 Deployment environments")
    doc.add(f"  {ENV_NAME}:", "check: the name of this deployment (prod, staging, ...)")
    if base:
        doc.add(f"    url: {base}", "{url} in health check urls expands to this")
    doc.add(f"    purpose: {_q(f'Compose project {project.name}')}")
    doc.add("    runtime:")
    doc.add("      kind: compose")
    doc.add(f"      docker_host: {_q(docker_host)}", "the engine the project runs on (DOCKER_HOST)")
    doc.add(f"      project: {_q(project.name)}", "com.docker.compose.project of its containers")
    doc.add("    approval:")
    doc.add("      required: 0", "check: 0 = the requester confirms; raise it once access.approvers has people")
    doc.add("      expires_in: 15m")
    doc.add("    services:", "the Compose services")
    for service in project.services.values():
        own, why = own_image(service)
        grace = _duration(service.stop_grace_period)
        repo = repository(service.image) if service.image else None
        if repo is not None:
            try:
                _check_image(repo)
            except ValueError:
                own, why, repo = False, f"{service.image} cannot be deployed by version here", None
        if not own or repo is None:
            body = f"{{stop_timeout: {grace}}}" if grace else "{}"
            doc.add(f"      {service.name}: {body}", f"not deployed by opsbot: {why}")
            continue
        doc.add(f"      {service.name}:")
        doc.add(f"        image: {_q(repo)}", f"deploy <version> runs {repo}:<version>")
        doc.add("        deploy: true", f"check: {why}")
        if grace:
            doc.add(f"        stop_timeout: {grace}", "its stop_grace_period")
    if checks:
        doc.add("    health_checks:", "3.3 Post-installation verification: all must pass after every change")
        for name, url, timeout, note in checks:
            shown = url.replace(base, "{url}", 1) if base and url.startswith(base + "/") else url
            doc.add(f"      - name: {_q(name)}")
            doc.add(f"        url: {json.dumps(shown)}", f"from {note}; add expect: {{status: ok}} for a JSON answer")
            doc.add(f"        timeout: {timeout or '5s'}")
    else:
        doc.add("    health_checks: []", "check: no healthcheck URL opsbot can reach: add the URLs that show health")
    for note in skipped:
        doc.add("", f"    not a health check: {note}")
    order = stages(project.services)
    doc.add(f"    startup: {_flow_stages(order)}", "6.2 from depends_on: each stage after what it depends on")
    doc.add(f"    shutdown: {_flow_stages(order[::-1])}", "the startup in reverse")
    _backup(doc, project)
    ports = [(s.name, p) for s in project.services.values() for p in dict.fromkeys(x.target for x in s.ports)]
    if ports:
        doc.add("")
        doc.add("requirements:", "2 System requirements: `opsbot check --live` holds the environment to them")
        doc.add("  ports:", "2.3 the ports the services declare: each must accept TCP")
        for name, port in ports:
            doc.add(f"    - {{service: {name}, port: {port}}}")
    doc.add("")
    doc.add("", "Not in a Compose file, to fill in (see examples/ops.yml): migrate (5.2), thresholds (6.3),")
    doc.add("", "troubleshooting (8.1), escalation (8.3), schedules (6.1), requirements.hardware and .software (2.1,")
    doc.add("", "2.2), slack.alert_channels, alerting, monitoring and maintenance.")
    return doc.text()


def _flow_stages(order: list[list[str]]) -> str:
    return "[" + ", ".join(_flow(stage) for stage in order) + "]"


def _backup(doc: _Doc, project: ComposeProject) -> None:
    found = _database(project)
    if found is None:
        doc.add("", "    backup: no PostgreSQL service recognised; see examples/ops.yml to add one (7.1)")
        return
    service, user, db = found
    doc.add("    backup:", f"7.1 from {service.name} ({service.image})")
    doc.add(f"      store: file:///var/backups/opsbot/{project.name}/",
            "check: where backups go (s3://bucket/prefix/, or a directory of the bot's host)")  # fmt: skip
    doc.add("      retention_days: 30")
    doc.add("      database:")
    doc.add(f"        service: {service.name}", "the commands run in its container")
    doc.add(f"        dump: {_flow(['pg_dump', '--no-owner', '--clean', '--if-exists', '-U', user, db])}",
            "check: POSTGRES_USER and POSTGRES_DB of the service")  # fmt: skip
    doc.add(f"        restore: {_flow(['psql', '-v', 'ON_ERROR_STOP=1', '-U', user, db])}")
    doc.add("    diagnostics:", "8.2 run in a service's container by troubleshoot")
    doc.add("      db_connections:")
    doc.add(f"        service: {service.name}")
    count = "SELECT count(*) FROM pg_stat_activity"
    doc.add(f"        command: {_flow(['psql', '-tA', '-U', user, '-c', count])}")


def init_from_compose(path: str, environ: Mapping[str, str]) -> tuple[str, ComposeProject]:
    """ops.yml's text for the Compose file at ``path`` (checked as ops.yml), and the project it read."""
    project = read_compose(path, environ)
    text = render_ops_yml(project, docker_host=environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock",
                          source=path)  # fmt: skip
    config, problems = validate_config(parse_yaml(text, "the generated ops.yml"))
    if config is None:
        lines = "; ".join(str(p) for p in problems)
        raise ConfigError(f"{path}: the ops.yml made from it does not validate ({lines}); please report this")
    return text, project
