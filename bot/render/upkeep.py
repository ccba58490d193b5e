"""Plain-text rendering of maintenance (guide 7.3) and security duties (7.4): ``maintenance``, ``security``."""

from __future__ import annotations

import zoneinfo
from datetime import datetime

from commands.maintenance import MaintenanceResult
from commands.maintenance_tasks import TaskResult
from commands.security import SecurityDoneResult, SecurityResult
from commands.security_report import AccessReport

MARK = {"ok": "OK  ", "warning": "WARN", "critical": "CRIT"}


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def local(moment: datetime | None, zone: str = "UTC") -> str:
    """A time in ``zone``: ``Sun 2026-12-13 02:00 CET``; ``-`` for none."""
    if moment is None:
        return "-"
    shown = moment.astimezone(zoneinfo.ZoneInfo(zone))
    return f"{shown:%a %Y-%m-%d %H:%M} {shown.tzname() or ''}".strip()


def window_line(r: MaintenanceResult) -> str:
    """Open now (until when) or closed (next start)."""
    if not r.windows:
        return "no maintenance windows: changes are not bound to windows"
    if r.open:
        return f"OPEN now, closes {local(r.closes_at, r.timezone)}"
    return f"closed; the next opens {local(r.next_start, r.timezone)}"


def maintenance_text(r: MaintenanceResult) -> list[str]:
    """Windows and tasks."""
    out = [f"maintenance of {r.environment} (times in {r.timezone})"]
    if r.windows:
        out.append(f"  windows: {', '.join(r.windows)}")
    out.append(f"  {window_line(r)}")
    if not r.tasks:
        return [*out, "", "No maintenance tasks for this environment."]
    table = [["TASK", "EVERY", "LAST RUN", "BY", "RESULT", "NEXT RUN"]]
    for t in r.tasks:
        result = "running now" if t.running else (f"{(t.last_severity or '').upper()}: {t.last_summary or ''}"
                                                   if t.last_run else "never run")  # fmt: skip
        table.append([t.task, t.every, local(t.last_run, r.timezone), t.last_actor or "-", result[:80],
                      local(t.next_run, r.timezone)])  # fmt: skip
    return [*out, "", *_table(table)]


def task_text(r: TaskResult) -> list[str]:
    """One task's run."""
    out = [f"{r.task} in {r.environment}: {r.outcome.upper()} ({r.duration_s:.1f} s)", f"  {r.summary}"]
    if len(r.rows) > 1 or (r.rows and r.rows[0].detail != r.summary):
        out += ["", *_table([[MARK[row.severity], row.name, row.detail] for row in r.rows])]
    if r.output:
        out += ["", "output (end):", *("  " + line for line in r.output.splitlines()[-40:])]
    return out


def report_text(report: AccessReport) -> list[str]:
    """The access review's report."""
    out = [f"access report {report.since:%Y-%m-%d %H:%M} .. {report.until:%Y-%m-%d %H:%M} UTC: {report.summary()}"]
    for a in report.activity:
        out.append(f"  {a.actor}: " + ", ".join(f"{cmd} x{n}" for cmd, n in sorted(a.commands.items())))
    for title, lines in (("refused", report.refused), ("break-glass", report.break_glass),
                         ("approvals", report.approvals)):  # fmt: skip
        for e in lines:
            out.append(f"  {title}: {e.ts} {e.actor} `{e.command}`: {e.outcome}")
    return out


def security_text(r: SecurityResult) -> list[str]:
    """The duties."""
    if not r.duties:
        return ["No security duties in ops.yml (security_maintenance)."]
    table = [["", "ITEM", "EVERY", "LAST DONE", "BY", "DUE", "NOTE"]]
    for d in r.duties:
        due = "before every deploy" if d.state == "gate" else local(d.due_at)
        if d.state == "due":
            due = f"DUE {due}" + (f" ({d.overdue_days} d overdue)" if d.overdue_days else "")
        note = d.note or ""
        if d.gate:
            note = f"gate `{d.gate}`" + (f"; last: {d.gate_outcome} on {d.gate_image}" if d.gate_outcome else "")
        table.append([MARK[d.severity], d.item, d.every or "-", local(d.last_done_at), d.last_done_by or "-", due,
                      note[:100]])  # fmt: skip
    out = [f"security duties ({r.environment})", *_table(table)]
    return out + (["", *report_text(r.report)] if r.report else [])


def security_done_text(r: SecurityDoneResult) -> list[str]:
    """A duty recorded."""
    head = "dry run, not recorded: " if r.dry_run else ""
    out = [f"{head}{r.item} ({r.title}) done by {r.done_by} at {local(r.done_at)}; next due {local(r.next_due)}"]
    if r.note:
        out.append(f"  note: {r.note}")
    return out + (["", *report_text(r.report)] if r.report else [])
