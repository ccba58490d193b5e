"""Block Kit rendering of the backup results (``backup``, ``backup --files``, ``backups``, ``verify-backup``,
``restore``)."""

from __future__ import annotations

from bot.slack.mrkdwn import ICON, Rendered, code, esc, mention
from commands.backup import BackupResult
from commands.backups import BackupsResult
from commands.dbstream import size_text
from commands.files_backup import FileProblem, FilesBackupResult
from commands.restore import RestoreResult
from commands.verify_backup import VerifyResult


def backup_blocks(r: BackupResult) -> Rendered:
    """A stored backup."""
    b = r.backup
    out = Rendered(header=f"Backup of {r.environment}: stored")
    out.sections.append(f"*{esc(b.id)}* · {esc(size_text(b.size))} · {b.duration_s or 0:.1f} s\n"
                        f"{code(b.location)}\nsha256 {code(b.sha256 or '-')}")  # fmt: skip
    if r.deleted:
        out.sections.append("Retention deleted: " + ", ".join(code(d) for d in r.deleted))
    return out


def backups_blocks(r: BackupsResult) -> Rendered:
    """The listing, newest first."""
    out = Rendered(header=f"Backups of {r.environment}")
    if not r.backups:
        out.sections.append(f"No backups in {code(r.store)}.")
    for b in r.backups:
        by = f" · by {mention(b.requester)}" if b.requester else ""
        out.sections.append(f"*{esc(b.id)}* · {b.created_at:%Y-%m-%d %H:%M} UTC · {esc(size_text(b.size))}{by}\n"
                            f"{code(b.location)} · sha256 {code((b.sha256 or '-')[:16])}")  # fmt: skip
    return out


def verify_blocks(r: VerifyResult) -> Rendered:
    """Each check."""
    out = Rendered(header=f"Backup {r.backup.id} of {r.environment}: {'verified' if r.ok else 'FAILED'}")
    out.sections.append("\n".join(f"{ICON[c.severity]} *{esc(c.name)}* {esc(c.detail)}" for c in r.checks))
    return out


def restore_blocks(r: RestoreResult) -> Rendered:
    """Each step, the safety backup, the problem."""
    out = Rendered(header=f"Restore of {r.environment} from {r.backup_id}: {'done' if r.ok else 'FAILED'}")
    out.sections.append("\n".join(f"{ICON['ok'] if s.ok else ICON['critical']} {i}. {esc(s.name)} — {esc(s.detail)}"
                                  for i, s in enumerate(r.steps, 1)) or "No step ran.")  # fmt: skip
    if r.safety_backup:
        out.sections.append(f"Safety backup: *{esc(r.safety_backup.id)}* {code(r.safety_backup.location)}")
    if r.problem:
        out.sections.append(f"{ICON['critical']} {esc(r.problem)}")
    return out


def _problems(title: str, rows: list[FileProblem], count: int) -> str:
    lines = [f"*{title}* ({count:,})"] + [f"{code(p.key)} {esc(p.reason)}" for p in rows[:20]]
    if count > min(len(rows), 20):
        lines.append(f"... and {count - min(len(rows), 20):,} more")
    return "\n".join(lines)


def files_blocks(r: FilesBackupResult) -> Rendered:
    """The copy of the file storage: counts, the verification, failures with their reasons."""
    ok = r.severity() == "ok"
    out = Rendered(header=f"Files of {r.environment}: {'backed up' if ok else 'FAILED'}")
    out.sections.append(f"{code(r.source)} → {code(r.target)}\n*{r.copied:,}* copied ({esc(size_text(r.copied_bytes))})"
                        f" · *{r.unchanged:,}* unchanged · *{r.failed_count:,}* failed · {r.objects:,} objects "
                        f"({esc(size_text(r.bytes))}) · {r.duration_s:.1f} s")  # fmt: skip
    if r.stopped:
        out.sections.append(f"{ICON['critical']} Stopped: {esc(r.stopped)} ({r.not_attempted:,} objects not tried; "
                            "the next run copies them)")  # fmt: skip
    out.sections.append(f"{ICON['ok'] if r.verified else ICON['critical']} Verified: {esc(r.verification)}")
    if r.delete:
        out.sections.append(f"Deleted in the target: {r.deleted:,} of {r.extra:,} objects the source does not have")
    elif r.extra:
        out.sections.append(f"{r.extra:,} objects only in the target: kept (`--delete` deletes them, after approval)")
    if r.delete_note:
        out.sections.append(f"{ICON['warning']} {esc(r.delete_note)}")
    if r.failed_count:
        out.sections.append(_problems("Failed", r.failed, r.failed_count))
    if r.skipped_count:
        out.sections.append(_problems("Changed at the source meanwhile (next run)", r.skipped, r.skipped_count))
    return out
