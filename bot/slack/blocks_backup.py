"""Block Kit rendering of the backup results (``backup``, ``backups``, ``verify-backup``, ``restore``)."""

from __future__ import annotations

from bot.slack.mrkdwn import ICON, Rendered, code, esc, mention
from commands.backup import BackupResult
from commands.backups import BackupsResult
from commands.dbstream import size_text
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
