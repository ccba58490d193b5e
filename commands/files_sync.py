"""The copy of file storage, bucket to bucket: what differs, the copies (bounded), the verification.

Used by ``backup <env> --files`` (``commands/files_backup.py``). Pure logic over the ``Buckets``
interface: the same code runs against S3 and against the in-memory fake.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from adapters.buckets import BucketObject, Buckets, in_parts
from adapters.errors import AdapterError, AdapterTimeout, EngineUnavailable, NotFound, SourceChanged

#: so many failed copies in a row stop the sync (something is wrong with more than one object)
MAX_FAILURES_IN_A_ROW = 50
#: a progress report at most this often, in seconds
PROGRESS_EVERY = 2.0
#: how many failures, skips and keys a result keeps (the counts are always whole)
KEEP = 50


@dataclass
class Diff:
    """Both listings, compared: what to copy, what is the same, what only the target has."""

    source: dict[str, BucketObject]
    target: dict[str, BucketObject]
    copy: list[BucketObject] = field(default_factory=list)
    unchanged: int = 0
    #: same size, different ETags, at least one of them from a copy in parts: the target's metadata decides
    ask: list[BucketObject] = field(default_factory=list)
    #: keys under the target that the source does not have
    extra: list[str] = field(default_factory=list)

    @property
    def copy_bytes(self) -> int:
        """Bytes to copy."""
        return sum(o.size for o in self.copy)


def compare(source: dict[str, BucketObject], target: dict[str, BucketObject]) -> Diff:
    """What differs between the two listings (by size and ETag)."""
    diff = Diff(source, target)
    for key, obj in source.items():
        there = target.get(key)
        if there is None or there.size != obj.size:
            diff.copy.append(obj)
        elif there.etag == obj.etag:
            diff.unchanged += 1
        elif in_parts(obj.etag) or in_parts(there.etag):
            diff.ask.append(obj)
        else:
            diff.copy.append(obj)
    diff.extra = sorted(k for k in target if k not in source)
    return diff


async def settle(buckets: Buckets, target: str, diff: Diff) -> set[str]:
    """Decide the objects of ``diff.ask`` by the source ETag their copy recorded; the keys found unchanged."""
    same: set[str] = set()

    async def one(obj: BucketObject) -> None:
        if await buckets.copied_from(target, obj.key) == obj.etag:
            same.add(obj.key)
        else:
            diff.copy.append(obj)

    for start in range(0, len(diff.ask), 256):
        await asyncio.gather(*(one(o) for o in diff.ask[start : start + 256]))
    diff.unchanged += len(same)
    diff.ask = []
    return same


@dataclass
class Tally:
    """How the copies went, as they go."""

    total: int
    total_bytes: int
    #: key -> the ETag S3 gave the copy
    copied: dict[str, str] = field(default_factory=dict)
    copied_bytes: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    stopped: str | None = None
    attempted: int = 0
    in_a_row: int = 0

    def line(self) -> str:
        """``1,234 of 10,000 objects (45.6 MiB of 120.0 MiB) copied, 2 failed``."""
        from commands.dbstream import size_text

        extra = f", {len(self.failed)} failed" if self.failed else ""
        extra += f", {len(self.skipped)} changed at the source meanwhile" if self.skipped else ""
        return (f"{len(self.copied):,} of {self.total:,} objects ({size_text(self.copied_bytes)} of "
                f"{size_text(self.total_bytes)}) copied{extra}")  # fmt: skip


async def copy_all(
    buckets: Buckets,
    source: str,
    target: str,
    todo: list[BucketObject],
    progress: Callable[[str], Awaitable[None]],
) -> Tally:
    """Copy ``todo`` (largest first), ``buckets.concurrency`` at a time; stop when the endpoint goes away."""
    tally = Tally(len(todo), sum(o.size for o in todo))
    pending = iter(sorted(todo, key=lambda o: o.size, reverse=True))
    last = [time.monotonic()]

    async def worker() -> None:
        for obj in pending:  # one iterator shared by the workers: each object is taken once
            if tally.stopped is not None:
                return
            tally.attempted += 1
            try:
                etag = await buckets.copy(source, target, obj)
            except SourceChanged as exc:
                tally.skipped[obj.key] = str(exc)
            except (EngineUnavailable, AdapterTimeout, NotFound) as exc:
                tally.failed[obj.key] = str(exc)
                tally.stopped = tally.stopped or str(exc)
            except AdapterError as exc:
                tally.failed[obj.key] = str(exc)
                tally.in_a_row += 1
                if tally.in_a_row >= MAX_FAILURES_IN_A_ROW:
                    tally.stopped = f"{tally.in_a_row} copies in a row failed; the last: {exc}"
            else:
                tally.copied[obj.key] = etag
                tally.copied_bytes += obj.size
                tally.in_a_row = 0
            if time.monotonic() - last[0] >= PROGRESS_EVERY:
                last[0] = time.monotonic()
                await progress(tally.line())

    await asyncio.gather(*(worker() for _ in range(max(1, min(buckets.concurrency, len(todo))))))
    return tally


@dataclass
class Verdict:
    """The verification: do the listings match now, and which copies the target does not show."""

    ok: bool
    detail: str
    #: keys counted as copied that the target's listing does not show as copied
    unconfirmed: dict[str, str] = field(default_factory=dict)


def verify(diff: Diff, tally: Tally, same: set[str], after: dict[str, BucketObject], deleted: set[str]) -> Verdict:
    """Compare the source's listing with the target's, listed again after the copy.

    Each source object must be in the target with its size, and the ETag of the source, of this run's
    copy, or of an earlier copy in parts that recorded it (``same``). Skipped objects (changed at the
    source meanwhile) are left for the next run and said so; ``deleted`` keys must be gone.
    """
    missing = different = 0
    unconfirmed: dict[str, str] = {}
    for key, obj in diff.source.items():
        if key in tally.skipped:
            continue
        there = after.get(key)
        fine = there is not None and there.size == obj.size and (
            there.etag in (obj.etag, tally.copied.get(key)) or key in same
        )
        if fine:
            continue
        if there is None:
            missing += 1
        else:
            different += 1
        if key in tally.copied:
            unconfirmed[key] = "copied, but the target's listing does not show the copy"
    left = sorted(k for k in deleted if k in after)
    problems = []
    if missing:
        problems.append(f"{missing:,} missing from the target")
    if different:
        problems.append(f"{different:,} different in the target")
    if left:
        problems.append(f"{len(left):,} deleted but still listed")
    checked = len(diff.source) - len(tally.skipped)
    if problems:
        return Verdict(False, f"the listings differ: {', '.join(problems)} (of {checked:,} objects)", unconfirmed)
    skipped = f"; {len(tally.skipped):,} changed at the source meanwhile, next run" if tally.skipped else ""
    return Verdict(True, f"the listings match: {checked:,} objects, each with its size and ETag{skipped}")
