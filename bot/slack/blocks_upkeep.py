"""Block Kit rendering of maintenance (guide 7.3) and security duties (7.4): ``maintenance``, ``security``."""

from __future__ import annotations

from bot.render.upkeep import local, window_line
from bot.slack.mrkdwn import ICON, Rendered, code, esc, mention
from commands.maintenance import MaintenanceResult
from commands.maintenance_tasks import TaskResult
from commands.security import SecurityDoneResult, SecurityResult
from commands.security_report import AccessReport


def maintenance_blocks(r: MaintenanceResult) -> Rendered:
    """Windows and tasks."""
    out = Rendered(header=f"Maintenance of {r.environment}")
    windows = ", ".join(code(w) for w in r.windows)
    out.sections.append((f"*Windows* {windows} ({esc(r.timezone)})\n" if r.windows else "") + esc(window_line(r)))
    if not r.tasks:
        out.sections.append("No maintenance tasks for this environment.")
    for t in r.tasks:
        if t.running:
            last = ":hourglass_flowing_sand: running now"
        elif t.last_run:
            icon = ICON.get(t.last_severity or "", "")
            last = (f"{icon} last {esc(local(t.last_run, r.timezone))} by {mention(t.last_actor or '-')}: "
                    f"{esc(t.last_summary or '')}")  # fmt: skip
        else:
            last = "never run"
        out.sections.append(f"*{esc(t.task)}* every {esc(t.every)} · next {esc(local(t.next_run, r.timezone))}\n"
                            f"{last}")  # fmt: skip
    return out


def task_blocks(r: TaskResult) -> Rendered:
    """One task's run."""
    out = Rendered(header=f"{r.task} in {r.environment}: {r.outcome.upper()}")
    out.sections.append(f"{ICON[r.outcome]} {esc(r.summary)} ({r.duration_s:.1f} s)")
    if len(r.rows) > 1 or (r.rows and r.rows[0].detail != r.summary):
        out.sections.append("\n".join(f"{ICON[row.severity]} *{esc(row.name)}* {esc(row.detail)}" for row in r.rows))
    if r.output:
        out.sections.append("```" + esc(r.output[-2500:]).replace("```", "'''") + "```")
    return out


def report_blocks(report: AccessReport) -> list[str]:
    """The access review's report, as sections."""
    head = (f"*Access report* {report.since:%Y-%m-%d %H:%M} .. {report.until:%Y-%m-%d %H:%M} UTC\n"
            f"{esc(report.summary())}")  # fmt: skip
    sections = [head]
    if report.activity:
        sections.append("\n".join(f"{mention(a.actor)}: " + ", ".join(f"{code(c)} x{n}" for c, n in
                                                                      sorted(a.commands.items()))
                                  for a in report.activity))  # fmt: skip
    for title, lines in (("Refused", report.refused), ("Break-glass", report.break_glass),
                         ("Approvals", report.approvals)):  # fmt: skip
        if lines:
            sections.append(f"*{title}*\n" + "\n".join(f"{esc(e.ts[:16])} {mention(e.actor)} {code(e.command)}: "
                                                     f"{esc(e.outcome)}" for e in lines))  # fmt: skip
    return sections


def security_blocks(r: SecurityResult) -> Rendered:
    """The duties."""
    out = Rendered(header=f"Security duties ({r.environment})")
    if not r.duties:
        out.sections.append("No security duties in ops.yml (`security_maintenance`).")
    for d in r.duties:
        if d.state == "gate":
            due = "gate before every deploy"
        else:
            due = f"due {esc(local(d.due_at))}" + (f" ({d.overdue_days} d overdue)" if d.overdue_days else "")
        done = (f"last done {esc(local(d.last_done_at))} by {mention(d.last_done_by)}" if d.last_done_by
                else "never recorded as done")  # fmt: skip
        line = f"{ICON[d.severity]} *{esc(d.title)}* ({code(d.item)}{', every ' + esc(d.every) if d.every else ''})"
        text = f"{line}\n{done} · {due}" + (f"\n_{esc(d.note)}_" if d.note else "")
        if d.gate:
            text += f"\ngate {code(d.gate)}" + (f" · last: {esc(d.gate_outcome or '')}" if d.gate_outcome else "")
        out.sections.append(text)
    if r.report:
        out.sections += report_blocks(r.report)
    return out


def security_done_blocks(r: SecurityDoneResult) -> Rendered:
    """A duty recorded."""
    head = "Dry run: " if r.dry_run else ""
    out = Rendered(header=f"{head}{r.title}: done")
    out.sections.append(f"{ICON['ok']} {code(r.item)} done by {mention(r.done_by)} at {esc(local(r.done_at))}; "
                        f"next due {esc(local(r.next_due))}" + (f"\n_{esc(r.note)}_" if r.note else ""))  # fmt: skip
    if r.report:
        out.sections += report_blocks(r.report)
    return out
