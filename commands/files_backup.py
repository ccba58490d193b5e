"""``backup <env> --files``: the file storage (``backup.files``) copied to its backup, changed objects only, verified.

Both sides are listed (every page); each object of ``from`` missing under ``to``, or different there
in size or ETag, is copied server side (``CopyObject``; in parts above 5 GiB), ``concurrency`` at a time,
with progress in objects and bytes. The target is then listed again and compared with the source.
Nothing is ever deleted in the target unless ``--delete`` is given: then the objects only the target has
are deleted, after approval, and never when the source is empty or a copy failed.
"""

from __future__ import annotations

import asyncio
import hashlib
import time

from pydantic import BaseModel, Field

from adapters.buckets import Buckets
from adapters.errors import AdapterError, UserError
from bot.config.guide import FilesBackupConfig
from commands.base import Ctx, Plan, Result, Severity
from commands.dbstream import backup_config, size_text, step
from commands.files_sync import KEEP, Diff, Tally, compare, copy_all, settle, verify


class FileProblem(BaseModel):
    """An object that was not copied (or not deleted), and why."""

    key: str
    reason: str


class FilesBackupResult(Result):
    """How the copy of the file storage went: counts, failures with reasons, the verification."""

    kind = "files-backup"
    environment: str
    source: str
    target: str
    #: objects and bytes under the source when it was listed
    objects: int
    bytes: int
    copied: int = 0
    copied_bytes: int = 0
    unchanged: int = 0
    failed_count: int = 0
    #: the first failures, with their reasons
    failed: list[FileProblem] = Field(default_factory=list)
    #: changed or gone at the source after it was listed: left for the next run
    skipped_count: int = 0
    skipped: list[FileProblem] = Field(default_factory=list)
    #: why the copy stopped before its end (the endpoint went away), and how many objects it left untried
    stopped: str | None = None
    not_attempted: int = 0
    #: objects only the target has: kept, or deleted with --delete
    extra: int = 0
    delete: bool = False
    deleted: int = 0
    delete_note: str | None = None
    verified: bool = False
    verification: str = ""
    duration_s: float = 0.0
    #: the first keys copied (all of them are counted in ``copied``)
    copied_keys: list[str] = Field(default_factory=list)

    def severity(self) -> Severity:
        """Critical when anything failed, the copy stopped, or the listings do not match."""
        return "critical" if self.failed_count or self.stopped or not self.verified else "ok"


def files_config(ctx: Ctx, env: str) -> FilesBackupConfig:
    """The environment's ``backup.files``; ``UserError`` when there is none."""
    files = backup_config(ctx, env).files
    if files is None:
        raise UserError(f"environments.{env}.backup.files is not set in ops.yml: {env} has no file storage to "
                        f"back up (from: s3://bucket/prefix/, to: s3://backup-bucket/prefix/)")  # fmt: skip
    return files


def buckets_of(ctx: Ctx) -> tuple[Buckets, bool]:
    """The backends' buckets, or a new S3 one (True: to be closed after use)."""
    found = getattr(ctx.backends, "buckets", None)
    if isinstance(found, Buckets):
        return found, False
    from adapters.stores.buckets import S3Buckets  # boto3: only when needed

    return S3Buckets(), True


async def listings(buckets: Buckets, files: FilesBackupConfig) -> Diff:
    """Both sides listed at once, compared."""
    try:
        source, target = await asyncio.gather(buckets.listing(files.from_), buckets.listing(files.to))
    except AdapterError as exc:
        raise type(exc)(f"could not list the file storage, nothing was copied: {exc}") from exc
    return compare(source, target)


def _digest(keys: list[str]) -> str:
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()


async def files_plan(ctx: Ctx, env: str, *, delete: bool, dry_run: bool) -> Plan:
    """What the copy does; with ``--delete`` (or ``--dry-run``) what it would do now, from both listings.

    An approval of ``--delete`` is bound to the set of objects it deletes: if that set changes before it
    runs, it does not run. New objects to copy do not change the plan.
    """
    files = files_config(ctx, env)
    buckets, own = buckets_of(ctx)
    steps = [
        f"list {files.from_} and {files.to} (every page)",
        f"copy, server side, {buckets.concurrency} at a time, each object of {files.from_} missing under "
        f"{files.to} or different there in size or ETag (in parts above {size_text(buckets.multipart_threshold)})",
    ]
    targets: list[dict[str, object]] = [{"from": files.from_, "to": files.to}]
    if delete:
        steps.append(f"delete each object under {files.to} that {files.from_} does not have (not when the source "
                     "is empty or a copy failed)")  # fmt: skip
    try:
        if delete or dry_run:
            diff = await listings(buckets, files)
            if dry_run:
                same = await settle(buckets, files.to, diff)
                recorded = f" ({len(same):,} by the source ETag their copy recorded)" if same else ""
                steps.append(f"now: {len(diff.copy):,} objects ({size_text(diff.copy_bytes)}) to copy, "
                             f"{diff.unchanged:,} unchanged{recorded}, {len(diff.extra):,} only in the target")
            if delete:
                shown = ", ".join(diff.extra[:10]) + (", ..." if len(diff.extra) > 10 else "")
                steps.append(f"now: delete {len(diff.extra):,} objects" + (f": {shown}" if diff.extra else ""))
                targets.append({"delete": len(diff.extra), "keys_sha256": _digest(diff.extra)})
    finally:
        if own:
            await buckets.close()
    summary = f"back up the file storage of {env}: {files.from_} -> {files.to}" + (" (with --delete)" if delete else "")
    check = f"list {files.to} again: each object of {files.from_} there with its size and ETag"
    return Plan(summary=summary, steps=steps, targets=targets, verify=[check])


async def run_files(ctx: Ctx, env: str, *, delete: bool, command: str) -> FilesBackupResult:
    """List, copy what differs, delete with ``--delete``, verify; audited step by step."""
    files = files_config(ctx, env)
    buckets, own = buckets_of(ctx)
    try:
        return await _run(ctx, env, files, buckets, delete=delete, command=command)
    finally:
        if own:
            await buckets.close()


async def _run(ctx: Ctx, env: str, files: FilesBackupConfig, buckets: Buckets, *, delete: bool,
               command: str) -> FilesBackupResult:  # fmt: skip
    t0 = time.monotonic()
    await ctx.progress(f"Backing up the files of {env}: listing {files.from_} and {files.to}")
    diff = await listings(buckets, files)
    same = await settle(buckets, files.to, diff)
    total = sum(o.size for o in diff.source.values())
    await step(ctx, command, env, "files-backup-started",
               f"{files.from_} -> {files.to}: {len(diff.source):,} objects, {len(diff.copy):,} to copy "
               f"({size_text(diff.copy_bytes)})", source=files.from_, target=files.to)  # fmt: skip
    await ctx.progress(f"Backing up the files of {env}: {len(diff.copy):,} of {len(diff.source):,} objects "
                       f"({size_text(diff.copy_bytes)}) to copy")  # fmt: skip
    tally = await copy_all(buckets, files.from_, files.to, diff.copy, ctx.progress) if diff.copy else Tally(0, 0)
    result = FilesBackupResult(environment=env, source=files.from_, target=files.to, objects=len(diff.source),
                               bytes=total, unchanged=diff.unchanged, extra=len(diff.extra), delete=delete)  # fmt: skip
    deleted = await _delete(buckets, files.to, diff, tally, result) if delete else set()
    if tally.copied or deleted:
        await ctx.progress(f"Backing up the files of {env}: {tally.line()}; verifying")
        try:
            after = await buckets.listing(files.to)
        except AdapterError as exc:
            after = None
            result.verification = f"could not list {files.to} again to verify: {exc}"
    else:
        after = diff.target
    if after is not None:
        verdict = verify(diff, tally, same, after, deleted)
        result.verified, result.verification = verdict.ok, verdict.detail
        for key, why in verdict.unconfirmed.items():  # nothing is reported as copied that the target does not show
            tally.copied.pop(key, None)
            tally.failed[key] = why
        if verdict.unconfirmed:
            tally.copied_bytes = sum(diff.source[k].size for k in tally.copied)
    _fill(result, tally, len(diff.copy), time.monotonic() - t0)
    event = "files-backup-copied" if result.severity() == "ok" else "files-backup-failed"
    await step(ctx, command, env, event,
               f"{result.copied:,} copied ({size_text(result.copied_bytes)}), {result.unchanged:,} unchanged, "
               f"{result.failed_count:,} failed, {result.deleted:,} deleted; {result.verification}",
               copied=result.copied, failed=result.failed_count, deleted=result.deleted,
               verified=result.verified)  # fmt: skip
    return result


async def _delete(buckets: Buckets, target: str, diff: Diff, tally: Tally, result: FilesBackupResult) -> set[str]:
    """``--delete``: the objects only the target has, unless the source is empty or a copy did not finish."""
    if not diff.extra:
        return set()
    if not diff.source:
        result.delete_note = "the source is empty: nothing was deleted (a --delete would have emptied the backup)"
        return set()
    if tally.failed or tally.stopped:
        result.delete_note = "a copy failed: nothing was deleted (run it again once the copies succeed)"
        return set()
    try:
        failed = await buckets.delete(target, diff.extra)
    except AdapterError as exc:
        result.delete_note = f"the deletion failed: {exc}"
        tally.failed.update({k: f"not deleted: {exc}" for k in diff.extra[:KEEP]})
        return set()
    for key, why in failed.items():
        tally.failed[key] = f"not deleted: {why}"
    done = {k for k in diff.extra if k not in failed}
    result.deleted = len(done)
    return done


def _fill(result: FilesBackupResult, tally: Tally, planned: int, duration: float) -> None:
    result.copied, result.copied_bytes = len(tally.copied), tally.copied_bytes
    result.copied_keys = sorted(tally.copied)[:20]
    result.failed_count = len(tally.failed)
    result.failed = [FileProblem(key=k, reason=v) for k, v in sorted(tally.failed.items())[:KEEP]]
    result.skipped_count = len(tally.skipped)
    result.skipped = [FileProblem(key=k, reason=v) for k, v in sorted(tally.skipped.items())[:KEEP]]
    result.stopped = tally.stopped
    result.not_attempted = planned - tally.attempted if tally.stopped else 0
    result.duration_s = round(duration, 3)

