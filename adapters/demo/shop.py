"""The demo shop's contents: its containers, their logs, its releases and its database.

Everything here is made up and says so: the project is ``shop-demo``, the secrets are demo values
(present so that redaction can be seen at work), and the database is a few rows in memory that
``pg_dump`` and ``psql`` (played by ``DemoDatabase``) dump and restore as SQL text.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from adapters.fakes import AfterRestart, FakeRuntime, exec_not_found
from adapters.models import ExecResult

PROJECT = "shop-demo"
#: the releases a pull finds; 1.2 is the broken one
RELEASES = ("1.0", "1.1", "1.2")
BAD_RELEASE = "1.2"
#: why release 1.2 fails its health check, as its /health says
BAD_REASON = "migration 0042 expects column orders.discount, which does not exist"
IMAGES = {"api": "shop/api", "worker": "shop/worker"}


def _lines(minutes_ago: float, *lines: str) -> tuple[datetime, tuple[str, ...]]:
    return datetime.now(UTC) - timedelta(minutes=minutes_ago), lines


def _history(secret: str) -> dict[str, list[tuple[datetime, tuple[str, ...]]]]:
    """The log lines each service wrote over the last hour (a few errors, one secret to redact)."""
    return {
        "api": [
            _lines(55, "INFO  shop-api 1.0 listening on :8080", "INFO  connected to postgres://app@postgres:5432/app"),
            _lines(41, "INFO  GET /api/orders 200 38ms", "INFO  POST /api/orders 201 64ms"),
            _lines(23, "WARN  pool: 20 of 20 database connections in use, requests queue"),
            _lines(22, "ERROR GET /api/orders upstream timed out after 30000ms: returning 504 Gateway Timeout"),
            _lines(21, "ERROR POST /api/checkout upstream timed out after 30000ms: returning 504 Gateway Timeout"),
            _lines(12, "INFO  GET /api/orders 200 41ms"),
        ],
        "worker": [
            _lines(54, "INFO  worker 1.0 started, 4 threads, queue orders"),
            _lines(30, f"ERROR payment gateway refused key {secret}: 401 Unauthorized (order 4411)"),
            _lines(29, "INFO  order 4411 retried, paid"),
            _lines(8, "INFO  processed 118 orders in the last 15 minutes"),
        ],
        "postgres": [
            _lines(56, "LOG:  database system is ready to accept connections"),
            _lines(22, "LOG:  duration: 29841.113 ms  statement: SELECT * FROM orders o JOIN order_lines l USING (id)"),
        ],
        "redis": [_lines(56, "* Ready to accept connections tcp")],
    }


@dataclass
class DemoDatabase:
    """The shop's database in memory; ``handler`` plays ``pg_dump`` (dump) and ``psql`` (restore, queries)."""

    orders: list[tuple[int, str, str]] = field(
        default_factory=lambda: [(4409, "ada", "42.00"), (4410, "grace", "17.50"), (4411, "linus", "99.90")]
    )
    #: connections in use, as pg_stat_activity counts them (the 504 story: close to max_connections)
    connections: int = 97

    HEADER = "-- PostgreSQL database dump (opsbot demo: database app of shop-demo)"

    def dump(self) -> bytes:
        """The database as SQL text, the way ``pg_dump --clean --if-exists`` writes it."""
        rows = "".join(f"{i}\t{who}\t{total}\n" for i, who, total in self.orders)
        return (
            f"{self.HEADER}\nSET client_encoding = 'UTF8';\nDROP TABLE IF EXISTS public.orders;\n"
            "CREATE TABLE public.orders (id integer PRIMARY KEY, customer text, total numeric(10,2));\n"
            f"COPY public.orders (id, customer, total) FROM stdin;\n{rows}\\.\n"
        ).encode()

    def restore(self, sql: bytes) -> tuple[int, bytes, bytes]:
        """Read a dump back (``psql -v ON_ERROR_STOP=1``): exit 3 and nothing changed when it is not one."""
        text = sql.decode("utf-8", errors="replace")
        first = text.split("\n", 1)[0]
        if first != self.HEADER:
            near = first.split(" ", 1)[0][:40] or "end of input"
            return 3, b"", f'psql:<stdin>:1: ERROR:  syntax error at or near "{near}"\n'.encode()
        orders: list[tuple[int, str, str]] = []
        copying = False
        for line in text.splitlines():
            if line.startswith("COPY public.orders"):
                copying = True
            elif line == "\\.":
                copying = False
            elif copying:
                number, who, total = line.split("\t")
                orders.append((int(number), who, total))
        self.orders = orders
        out = f"SET\nDROP TABLE\nCREATE TABLE\nCOPY {len(orders)}\n"
        return 0, out.encode(), b""

    def handler(self, argv: list[str], stdin: bytes) -> tuple[int, bytes, bytes]:
        """A streamed command in the postgres container: ``pg_dump ...`` or ``psql ...`` reading a dump."""
        if argv[0] == "pg_dump":
            return 0, self.dump(), b""
        if argv[0] == "psql":
            return self.restore(stdin)
        return 127, b"", f'exec: "{argv[0]}": executable file not found in $PATH\n'.encode()

    def query(self, argv: list[str]) -> ExecResult:
        """``psql ... -c SQL`` in the postgres container: the two queries the demo's diagnostics ask."""
        sql = argv[-1].lower() if argv else ""
        if argv[:1] != ["psql"]:
            return exec_not_found(argv)
        if "pg_stat_activity" in sql:
            return ExecResult(exit_code=0, output=f"{self.connections}\n")
        if "from orders" in sql:
            return ExecResult(exit_code=0, output=f"{len(self.orders)}\n")
        return ExecResult(exit_code=1, output="psql: the demo database answers only the demo's diagnostics\n")


def migrate(service: str, image: str, argv: list[str]) -> ExecResult:
    """A one-off container of a new image running its migration (``npm run migrate``)."""
    if argv != ["npm", "run", "migrate"]:
        return ExecResult(exit_code=127, output=f'exec: "{argv[0]}": executable file not found in $PATH\n')
    version = image.rpartition(":")[2]
    return ExecResult(exit_code=0, output=f"> shop-api@{version} migrate\nmigrations up to date for {version}\n")


def build_runtime(db: DemoDatabase) -> tuple[FakeRuntime, str]:
    """The shop's containers on an in-process runtime, and the demo secret its worker holds."""
    secret = f"demo-pk-{secrets.token_hex(8)}"
    runtime = FakeRuntime(project=PROJECT, description="demo runtime (in-process, no Docker)")
    runtime.add("postgres", image="postgres:15.6", health="healthy", cpu=3.2, memory=41.0,
                env={"POSTGRES_PASSWORD": f"demo-{secrets.token_hex(6)}"})  # fmt: skip
    runtime.add("redis", image="redis:7.2", cpu=0.8, memory=12.5)
    runtime.add("api", image=f"{IMAGES['api']}:1.0", health="healthy", cpu=18.4, memory=52.0,
                env={"DATABASE_URL": "postgres://app@postgres:5432/app", "FEATURE_NEW_CHECKOUT": "off"})  # fmt: skip
    runtime.add("worker", image=f"{IMAGES['worker']}:1.0", cpu=9.6, memory=63.5,
                env={"PAYMENT_API_KEY": secret, "FEATURE_NEW_CHECKOUT": "off"})  # fmt: skip
    for service, entries in _history(secret).items():
        for at, lines in entries:
            runtime.log(f"{PROJECT}-{service}-1", *lines, at=at)
    runtime.disk_percent.update(postgres=46.0, redis=12.0, api=23.0, worker=23.0)
    for release in RELEASES:
        runtime.registry.update(f"{image}:{release}" for image in IMAGES.values())
    for service, image in IMAGES.items():
        for release in RELEASES:
            started = f"INFO  {'shop-api' if service == 'api' else 'worker'} {release} started"
            after = AfterRestart(logs=(started,))
            if release == BAD_RELEASE and service == "api":
                after = AfterRestart(
                    health="unhealthy", check="exit 1: wget: server returned error: HTTP/1.1 503 Service Unavailable",
                    logs=(started, f"ERROR health: {BAD_REASON}"),
                )  # fmt: skip
            runtime.after_replace[f"{image}:{release}"] = after
    runtime.exec_handler = lambda service, argv: db.query(argv) if service == "postgres" else exec_not_found(argv)
    runtime.oneoff_handler = migrate
    runtime.stream_handler = db.handler
    return runtime, secret
