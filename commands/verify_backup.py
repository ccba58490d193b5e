"""Verify a backup (default: the newest): it exists, its sha256 matches, its compressed stream (zstd or
gzip) is complete, and it is younger than its schedule's period (`schedules: verify_backup`, 24 h when none).

The object is read once, streamed: its sha256 is compared with the one recorded with it (and in
opsbot's database, when opsbot made it). `--restore-test` also restores it into a scratch database
(`psql` restore commands), runs a sanity query and drops the scratch database; as it writes to the
database server, it needs the operators role (the plain check is for viewers too).

Guide: 6.1 Daily operations (the daily backup verification).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field

from adapters.errors import OpsError
from adapters.stores.pipeline import check_object, compression_of
from commands.base import Args, CommandSpec, Ctx, EnvName, Result, Severity, Version, worst
from commands.dbstream import BackupRow, backup_config, find, meter, size_text, step
from commands.scratch import restore_test

DEFAULT_PERIOD = timedelta(hours=24)


class VerifyArgs(Args):
    """Arguments of ``verify-backup``."""

    env: EnvName
    id: Version | None = None
    restore_test: bool = False

    def writes(self) -> bool:
        """``--restore-test`` creates and drops a scratch database: an operator's to ask."""
        return self.restore_test


class VerifyCheck(BaseModel):
    """One check of the backup."""

    name: str
    severity: Literal["ok", "warning", "critical"]
    detail: str


class VerifyResult(Result):
    """The backup and each check."""

    kind = "verify-backup"
    environment: str
    backup: BackupRow
    ok: bool
    checks: list[VerifyCheck] = Field(default_factory=list)

    def severity(self) -> Severity:
        """The worst check."""
        return worst(c.severity for c in self.checks)


def period(ctx: Ctx, env: str) -> timedelta:
    """The period of the environment's verify_backup (else backup) schedule; 24 h when none."""
    for task in ("verify_backup", "backup"):
        for s in ctx.config.schedules:
            if s.env == env and s.task == task:
                return timedelta(seconds=s.every)
    return DEFAULT_PERIOD


async def run(ctx: Ctx, args: VerifyArgs) -> VerifyResult:
    """Find it, read it, check it."""
    assert args.env is not None
    backup_config(ctx, args.env)
    command = f"verify-backup {args.env}"
    found = await find(ctx, args.env, args.id)
    row = BackupRow.of(found)
    checks = [VerifyCheck(name="exists", severity="ok", detail=f"{found.location}, {size_text(found.size)}")]
    records = ctx.extras.get("backups")
    record = await records.get(args.env, found.id) if records is not None else None
    expected = {v for v in (found.sha256, (record or {}).get("sha256")) if v}
    m = meter(ctx, f"Verifying {found.id}")
    read = await check_object(ctx.backends.store(args.env), found.key, m, compression_of(found))
    if not expected:
        checks.append(VerifyCheck(name="sha256", severity="warning", detail=f"{read.sha256} (no checksum recorded "
                                  "with the object or in opsbot's database: put there by hand?)"))  # fmt: skip
    elif expected == {read.sha256}:
        checks.append(VerifyCheck(name="sha256", severity="ok", detail=f"{read.sha256} matches"))
    else:
        checks.append(VerifyCheck(name="sha256", severity="critical", detail=f"MISMATCH: read {read.sha256} "
                                  f"({read.size} bytes), recorded {', '.join(sorted(expected))}"))  # fmt: skip
    recorded = found.metadata.get("size") or (str(record["size"]) if record else None)
    if recorded is not None and recorded != str(read.size):
        detail = f"read {read.size} bytes, recorded {recorded}"
        checks.append(VerifyCheck(name="size", severity="critical", detail=detail))
    checks.append(VerifyCheck(name=read.compression or "compression", severity="ok" if read.stream_ok else "critical",
                              detail=f"complete ({size_text(read.raw_size)} of dump)" if read.stream_ok
                              else read.stream_problem or "incomplete"))  # fmt: skip
    limit, age = period(ctx, args.env), datetime.now(UTC) - found.created_at
    checks.append(VerifyCheck(name="age", severity="ok" if age <= limit else "critical",
                              detail=f"{_hours(age)} old (limit {_hours(limit)})"))  # fmt: skip
    if args.restore_test:
        if all(c.severity != "critical" for c in checks):
            try:
                detail = await restore_test(ctx, args.env, found)
                checks.append(VerifyCheck(name="restore test", severity="ok", detail=detail))
            except OpsError as exc:
                checks.append(VerifyCheck(name="restore test", severity="critical", detail=ctx.redactor.text(str(exc))))
        else:
            detail = "not run: the backup is damaged"
            checks.append(VerifyCheck(name="restore test", severity="critical", detail=detail))
    result = VerifyResult(environment=args.env, backup=row, ok=False, checks=checks)
    result.ok = result.severity() != "critical"
    summary = f"{found.id}: " + "; ".join(f"{c.name} {c.severity}" for c in checks)
    event = "backup-verified" if result.ok else "backup-verify-failed"
    await step(ctx, command, args.env, event, summary, location=found.location)
    return result


def _hours(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


SPEC = CommandSpec(
    name="verify-backup",
    summary="the backup (default newest) exists, its checksum matches, it is younger than its schedule",
    help=__doc__ or "",
    args=VerifyArgs,
    run=run,
    usage="verify-backup <env> [id] [--restore-test]",
    positionals=("env", "id"),
    guide="6.1",
    verb="Verifying the backup of",
    examples=("verify-backup prod", "verify-backup prod 20240131T020000Z-a1b2c3 --restore-test"),
    results=(VerifyResult,),
)
