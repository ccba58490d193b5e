"""Plain-text rendering of the backup results (``backup``, ``backup --files``, ``backups``, ``verify-backup``,
``restore``)."""

from __future__ import annotations

from commands.backup import BackupResult
from commands.backups import BackupsResult
from commands.dbstream import BackupRow, size_text
from commands.files_backup import FilesBackupResult
from commands.restore import RestoreResult
from commands.verify_backup import VerifyResult

MARK = {"ok": "OK  ", "warning": "WARN", "critical": "CRIT"}


def _when(row: BackupRow) -> str:
    return row.created_at.strftime("%Y-%m-%d %H:%M:%S UTC")


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def backup_text(r: BackupResult) -> list[str]:
    """A stored backup."""
    b = r.backup
    out = [f"backup of {r.environment}: stored {b.id}", f"  {b.location}",
           f"  {size_text(b.size)} ({b.size} bytes), sha256 {b.sha256}, {b.duration_s or 0:.1f} s"]  # fmt: skip
    if r.deleted:
        out.append(f"  retention deleted: {', '.join(r.deleted)}")
    return out


def backups_text(r: BackupsResult) -> list[str]:
    """The listing."""
    if not r.backups:
        return [f"No backups of {r.environment} in {r.store}."]
    table = [["ID", "CREATED", "SIZE", "SHA256", "BY", "LOCATION"]]
    for b in r.backups:
        table.append([b.id, _when(b), size_text(b.size), (b.sha256 or "-")[:16], b.requester or "-", b.location])
    return [f"Backups of {r.environment} ({r.store}), newest first", *_table(table)]


def verify_text(r: VerifyResult) -> list[str]:
    """Each check."""
    out = [f"verify-backup {r.backup.id} of {r.environment}: {'OK' if r.ok else 'FAILED'}", f"  {r.backup.location}"]
    return out + [f"{MARK[c.severity]}  {c.name}: {c.detail}" for c in r.checks]


def restore_text(r: RestoreResult) -> list[str]:
    """Each step, the safety backup, the problem."""
    out = [f"restore {r.environment} from {r.backup_id}: {'OK' if r.ok else 'FAILED'}"]
    out += [f"  {i}. {s.name}: {'ok' if s.ok else 'FAILED'} {s.detail}".rstrip() for i, s in enumerate(r.steps, 1)]
    if r.safety_backup:
        out.append(f"  safety backup: {r.safety_backup.id} ({r.safety_backup.location})")
    if r.problem:
        out.append(f"CRIT  {r.problem}")
    return out


def files_text(r: FilesBackupResult) -> list[str]:
    """The copy of the file storage: counts, the verification, failures with their reasons."""
    state = "OK" if r.severity() == "ok" else "FAILED"
    out = [f"backup of the files of {r.environment}: {state}", f"  {r.source} -> {r.target}",
           f"  {r.objects:,} objects ({size_text(r.bytes)}) in the source: {r.copied:,} copied "
           f"({size_text(r.copied_bytes)}), {r.unchanged:,} unchanged, {r.failed_count:,} failed, "
           f"{r.duration_s:.1f} s"]  # fmt: skip
    if r.stopped:
        out.append(f"CRIT  stopped: {r.stopped} ({r.not_attempted:,} objects not tried; the next run copies them)")
    out.append(f"{'OK  ' if r.verified else 'CRIT'}  verified: {r.verification}")
    if r.delete:
        out.append(f"  deleted in the target: {r.deleted:,} of {r.extra:,} objects the source does not have")
    elif r.extra:
        out.append(f"  {r.extra:,} objects only in the target: kept (--delete deletes them, after approval)")
    if r.delete_note:
        out.append(f"WARN  {r.delete_note}")
    out += [f"  failed: {f.key}: {f.reason}" for f in r.failed]
    if r.failed_count > len(r.failed):
        out.append(f"  ... and {r.failed_count - len(r.failed):,} more failed")
    out += [f"  skipped: {f.key}: {f.reason}" for f in r.skipped]
    if r.skipped_count > len(r.skipped):
        out.append(f"  ... and {r.skipped_count - len(r.skipped):,} more changed at the source meanwhile")
    return out
