"""Block Kit rendering of replies, within Slack's limits.

Each result type renders to a header, a list of mrkdwn sections and a context line; ``compose``
packs them into at most 50 blocks of at most 3,000 characters each. When the result does not fit
(long logs, big diagnostics), the message carries a summary and says so, and the door attaches the
whole text, redacted, as a file.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from bot.core.changes import ApprovalResult, PlanResult
from bot.core.engine import Reply
from bot.render.text import RESULT_TYPES, render_text, text_lines
from bot.slack.blocks_alert import ack_blocks, alerts_blocks, silence_blocks
from bot.slack.blocks_backup import backup_blocks, backups_blocks, files_blocks, restore_blocks, verify_blocks
from bot.slack.blocks_upkeep import maintenance_blocks, security_blocks, security_done_blocks, task_blocks
from bot.slack.mrkdwn import (
    ICON,
    MAX_BLOCKS,
    MAX_FALLBACK_TEXT,
    MAX_HEADER,
    MAX_MESSAGE,
    MAX_SECTION,
    Message,
    Rendered,
    code,
    esc,
    mention,
)
from bot.slack.mrkdwn import cut as cut_escaped
from commands.ack import AckResult
from commands.alerts import AlertsResult
from commands.audit import AuditResult
from commands.backup import BackupResult
from commands.backups import BackupsResult
from commands.base import Plan, Result
from commands.config import ConfigResult
from commands.escalate import EscalateResult
from commands.files_backup import FilesBackupResult
from commands.health import HealthResult
from commands.help import HelpResult
from commands.history import HistoryResult
from commands.inspect import CheckRow, ServiceRow
from commands.logs import LogsResult
from commands.maintenance import MaintenanceResult
from commands.maintenance_tasks import TaskResult
from commands.measure import MetricRow
from commands.pending import PendingResult
from commands.restart import RestartResult
from commands.restore import RestoreResult
from commands.rollout import RolloutResult
from commands.security import SecurityDoneResult, SecurityResult
from commands.silence import SilenceResult
from commands.stages import StagesResult
from commands.status import StatusResult
from commands.troubleshoot import TroubleshootResult
from commands.verify_backup import VerifyResult


def _service(r: ServiceRow) -> str:
    parts = [f"{ICON[r.severity]} *{esc(r.name)}* {code(r.state)}"]
    if r.version:
        parts.append(f"v{esc(r.version)}")
    if r.health:
        parts.append(esc(r.health))
    if r.cpu_percent is not None:
        parts.append(f"cpu {r.cpu_percent:.0f}%")
    if r.memory_percent is not None:
        parts.append(f"mem {r.memory_percent:.0f}%")
    if r.restarts:
        parts.append(f"{r.restarts} restarts")
    line = "  ".join(parts)
    if r.reasons:
        line += f"\n      _{esc('; '.join(r.reasons))}_"
    return line


def _check(c: CheckRow) -> str:
    result = f"HTTP {c.status_code}" if c.status_code else "no answer"
    latency = f" in {c.latency_ms:.0f} ms" if c.latency_ms is not None else ""
    error = f" ({esc(c.error)})" if c.error else ""
    return f"{ICON[c.severity]} *{esc(c.name)}*: {result}{latency}{error}"


def _metric(m: MetricRow) -> str:
    if m.value is None:
        return f"{ICON[m.severity]} *{esc(m.name)}*: {esc(m.error or 'could not measure')}"
    levels = f" (warning {m.warning:g}, critical {m.critical:g})" if m.warning is not None else ""
    return f"{ICON[m.severity]} *{esc(m.name)}*: {m.value:.4g}{esc(m.unit)}{levels} from {esc(m.source)}"


def _status(r: StatusResult | HealthResult) -> Rendered:
    out = Rendered(header=f"{r.environment}: {r.overall.upper()}")
    for e in getattr(r, "errors", []):
        out.sections.append(f"{ICON['critical']} {esc(e)}")
    out.sections += [_service(s) for s in r.services]
    if r.checks:
        out.sections.append("*Health checks*\n" + "\n".join(_check(c) for c in r.checks))
    if r.metrics:
        out.sections.append("*Metrics*\n" + "\n".join(_metric(m) for m in r.metrics))
    return out


def _logs(r: LogsResult) -> Rendered:
    window = f" since {esc(r.since)}" if r.since else ""
    grep = f" matching {code(r.grep)}" if r.grep else ""
    out = Rendered(header=f"Logs of {r.service} in {r.environment}")
    if not r.lines:
        out.sections.append(f"No log lines{window}{grep}.")
        return out
    body = "\n".join(r.lines)
    shown = r.lines[-40:]
    summary = f"{r.total} lines{window}{grep}"
    if len(shown) < r.total or len(body) > MAX_SECTION - 10:
        out.attach = True
        summary += f"; the last {len(shown)} below, all of them in the attached file"
    out.sections.append(summary)
    out.sections.append("```" + esc("\n".join(shown)).replace("```", "'''") + "```")
    return out


def _troubleshoot(r: TroubleshootResult) -> Rendered:
    if not r.matches:
        out = Rendered(header="No matching guide entry")
        known = "\n".join(f"• {esc(k)}" for k in r.known_issues)
        out.sections.append(f"Nothing in the troubleshooting guide matches {code(r.query)}. Known issues:\n{known}")
    else:
        out = Rendered(header=f"Troubleshooting: {r.matches[0].issue}")
    for m in r.matches:
        how = " _(closest match)_" if m.how == "fuzzy" else ""
        out.sections.append(
            f"*{esc(m.issue)}*{how}  matched {', '.join(code(s) for s in m.matched)}\n*Resolution:* {esc(m.resolution)}"
        )
        for f in m.diagnostics:
            text = f"{ICON[f.severity]} *{esc(f.name)}*: {esc(f.summary)}"
            if f.lines:
                lines = f.lines[:15]
                more = f"\n… {len(f.lines) - len(lines)} more lines in the attached file" if len(f.lines) > 15 else ""
                out.attach = out.attach or bool(more)
                text += "\n```" + esc("\n".join(lines)).replace("```", "'''") + "```" + more
            out.sections.append(text)
    if r.escalation:
        # contacts come from ops.yml and may be mentions (<@U..>, <!subteam^S..>): not escaped
        path = "\n".join(f"*{esc(c.level)}* {c.contact}: {esc(c.when)}" for c in r.escalation)
        out.sections.append(f"*Escalation*\n{path}")
    return out


def _escalate(r: EscalateResult) -> Rendered:
    if r.mention:
        c = r.path[0]
        return Rendered(header=f"Escalating to {c.level}", sections=[f"{c.contact}: {esc(c.when)}"])
    path = "\n".join(f"*{esc(c.level)}* {c.contact}: {esc(c.when)}" for c in r.path)
    return Rendered(header="Escalation path", sections=[path])


def _help(r: HelpResult) -> Rendered:
    if r.detail:
        d = r.detail
        text = f"{code('/ops ' + d.usage)}\n{esc(d.summary)}"
        sections = [text]
        if d.description:
            sections.append(esc(d.description))
        facts = f"Changes anything: {'yes' if d.changes else 'no'}" + (f" · Guide {esc(d.guide)}" if d.guide else "")
        if d.examples:
            facts += "\nExamples: " + ", ".join(code("/ops " + e) for e in d.examples)
        sections.append(facts)
        return Rendered(header=f"/ops {d.name}", sections=sections)
    lines = [f"{code(c.usage)} {esc(c.summary)}" for c in r.commands]
    return Rendered(header="/ops commands", sections=["\n".join(lines), "`/ops help <command>` for more."])


def _audit(r: AuditResult) -> Rendered:
    out = Rendered(header="Audit log")
    if r.verification is not None:
        v = r.verification
        out.header = "Audit log: chain intact" if v.ok else "Audit log: chain BROKEN"
        broken = f"{ICON['critical']} *broken at entry {v.bad_id}*: {esc(v.reason)} ({v.rows} entries walked)"
        out.sections.append(f"{ICON['ok']} intact: {v.rows} entries, chain verified" if v.ok else broken)
        return out
    if not r.entries:
        out.sections.append("No audit entries.")
    for e in r.entries:
        env = f" {esc(e.environment)}" if e.environment else ""
        out.sections.append(
            f"#{e.id} {esc(e.ts)} {mention(e.actor)} via {esc(e.source)}{env}: *{esc(e.event)}* "
            f"{code(e.command[:200])} → {esc(e.outcome[:200])}"
        )
    return out


def _plan_lines(p: Plan) -> str:
    steps = "\n".join(f"{i}. {esc(step)}" for i, step in enumerate(p.steps, 1))
    verify = f"\n*Then verify:* {esc('; '.join(p.verify))}" if p.verify else ""
    return f"*Plan:* {esc(p.summary)}\n{steps}{verify}"


def _plan_result(r: PlanResult) -> Rendered:
    note = [f"{ICON['warning']} {esc(r.note)}"] if r.note else []
    return Rendered(header=f"Dry run: {r.plan.summary}", sections=["Nothing was changed.", *note, _plan_lines(r.plan)])


def _restart(r: RestartResult) -> Rendered:
    out = Rendered(header=f"Restart of {r.service} in {r.environment}: {'done' if r.ok else 'FAILED'}")
    if r.problem:
        out.sections.append(f"{ICON['critical']} {esc(r.problem)}")
    out.sections += [_service(c) for c in r.containers]
    if r.checks:
        out.sections.append("*Health checks*\n" + "\n".join(_check(c) for c in r.checks))
    return out


STATE_LINE = {
    "pending": ":hourglass: Waiting for approval",
    "approved": ":white_check_mark: Approved",
    "running": ":gear: Running",
    "done": ":white_check_mark: Done",
    "failed": ":x: Failed",
    "denied": ":no_entry: Denied",
    "cancelled": ":heavy_multiplication_x: Cancelled",
    "expired": ":alarm_clock: Expired",
    "stale": ":warning: Not run: the plan changed",
    "interrupted": ":warning: Interrupted: the bot stopped during the run",
}


def _approval(r: ApprovalResult) -> Rendered:
    a = r.approval
    out = Rendered(header=f"{STATE_LINE.get(a['state'], a['state']).split(' ', 1)[1]}: {r.plan.summary}")
    need = f"{a['required']} approver{'s' if a['required'] != 1 else ''}" if a["required"] else "your confirmation"
    approvers = ", ".join(mention(u) for u in a["approvers"]) or "nobody yet"
    out.sections.append(
        f"{STATE_LINE.get(a['state'], esc(a['state']))}{': ' + esc(r.message) if r.message else ''}\n"
        f"*Requested by* {mention(a['requester'])} in *{esc(a['environment'] or '-')}* · needs {need} · "
        f"approved by {approvers} · expires {esc(a['expires_at'])} · id `{esc(a['id'])}`"
    )
    out.sections.append(_plan_lines(r.plan))
    if r.result is not None and r.result_kind:
        inner_type = RESULT_TYPES.get(r.result_kind)
        renderer = RENDERERS.get(inner_type) if inner_type else None
        if inner_type is not None and renderer is not None:
            inner = renderer(inner_type.model_validate(r.result))
            out.sections += [f"*{esc(inner.header)}*", *inner.sections]
            out.attach = out.attach or inner.attach
    return out


def _pending(r: PendingResult) -> Rendered:
    out = Rendered(header="Approvals waiting" + (f" in {r.environment}" if r.environment else ""))
    if not r.approvals:
        out.sections.append("No approvals waiting.")
    for a in r.approvals:
        out.sections.append(
            f"`{esc(a['id'])}` {code(a['command'])} by {mention(a['requester'])} · "
            f"{len(a['approvers'])} of {a['required']} approvals · expires {esc(a['expires_at'])}"
        )
    return out


def approval_buttons(approval_id: str) -> dict[str, Any]:
    """The actions block of a pending approval: Approve, Deny, Cancel (the requester's)."""

    def button(text: str, action: str, style: str | None = None) -> dict[str, Any]:
        b: dict[str, Any] = {"type": "button", "text": {"type": "plain_text", "text": text},
                             "action_id": f"approval:{action}", "value": approval_id}  # fmt: skip
        if style:
            b["style"] = style
        return b

    return {
        "type": "actions",
        "block_id": f"approval-{approval_id}",
        "elements": [
            button("Approve", "approve", "primary"),
            button("Deny", "deny", "danger"),
            button("Cancel", "cancel"),
        ],
    }


def _config(r: ConfigResult) -> Rendered:
    out = Rendered(header=f"Configuration of {r.environment}")
    if not r.services:
        out.sections.append("No containers.")
    for v in r.services:
        env = "\n".join(f"{k}={val}" for k, val in v.environment.items()) or "(empty)"
        flags = ", ".join(f"{code(k)} {esc(val)}" for k, val in v.flags.items()) or "none"
        out.sections.append(
            f"*{esc(v.service)}* ({esc(v.container)}, {code(v.image)})\n*Flags:* {flags}\n```{esc(env)}```"
        )
    return out


def _rollout(r: RolloutResult) -> Rendered:
    what = f"{r.action} {r.version or ''}".strip()
    state = "done" if r.ok else ("rolled back automatically" if r.rolled_back else "FAILED")
    out = Rendered(header=f"{what.capitalize()} in {r.environment}: {state}")
    out.sections.append(
        "\n".join(f"*{esc(c.service)}* {code(c.image_before or '(none)')} → {code(c.image_after)}" for c in r.changes)
    )
    if r.gates:
        out.sections.append("*Security gates*\n" + "\n".join(
            f"{ICON['ok'] if g.passed else ICON['critical']} {code(g.item)} on {code(g.image)}: "
            + ("passed" if g.passed else esc(g.detail)) for g in r.gates))  # fmt: skip
    if r.problem:
        out.sections.append(f"{ICON['critical']} {esc(r.problem)}")
    if r.output:
        out.sections.append("```" + esc(r.output[-2500:]).replace("```", "'''") + "```")
    out.sections += [_service(c) for c in r.containers]
    if r.checks:
        out.sections.append("*Health checks*\n" + "\n".join(_check(c) for c in r.checks))
    return out


def _history(r: HistoryResult) -> Rendered:
    out = Rendered(header=f"History of {r.environment}")
    if not r.deploys:
        out.sections.append("No deploys recorded.")
    for d in r.deploys:
        approvers = ", ".join(mention(a) for a in d["approvers"]) or "nobody (break glass or no approval needed)"
        after = ", ".join(code(v) for v in d["after"].values())
        out.sections.append(
            f"#{d['id']} *{esc(d['kind'])} {esc(d['version'] or '')}* → *{esc(d['outcome'])}* · {after}\n"
            f"requested by {mention(d['requester'])}, approved by {approvers}"
        )
    return out


def _stages(r: StagesResult) -> Rendered:
    out = Rendered(header=f"{r.action.capitalize()} of {r.environment}: {'done' if r.ok else 'FAILED'}")
    lines = [
        f"{ICON['ok'] if s.ok else ICON['critical']} stage {i}: {esc(', '.join(s.services))}"
        + (f" — {esc(s.problem)}" if s.problem else "")
        for i, s in enumerate(r.stages, 1)
    ]
    out.sections.append("\n".join(lines) or "No stage ran.")
    if r.problem:
        out.sections.append(f"{ICON['critical']} {esc(r.problem)}")
    out.sections += [_service(c) for c in r.services]
    if r.checks:
        out.sections.append("*Health checks*\n" + "\n".join(_check(c) for c in r.checks))
    return out


RENDERERS: dict[type[Result], Callable[[Any], Rendered]] = {
    BackupResult: backup_blocks,
    FilesBackupResult: files_blocks,
    BackupsResult: backups_blocks,
    VerifyResult: verify_blocks,
    RestoreResult: restore_blocks,
    RolloutResult: _rollout,
    HistoryResult: _history,
    StagesResult: _stages,
    ConfigResult: _config,
    PlanResult: _plan_result,
    ApprovalResult: _approval,
    RestartResult: _restart,
    PendingResult: _pending,
    StatusResult: _status,
    HealthResult: _status,
    LogsResult: _logs,
    TroubleshootResult: _troubleshoot,
    EscalateResult: _escalate,
    HelpResult: _help,
    AuditResult: _audit,
    MaintenanceResult: maintenance_blocks,
    TaskResult: task_blocks,
    SecurityResult: security_blocks,
    SecurityDoneResult: security_done_blocks,
    AlertsResult: alerts_blocks,
    AckResult: ack_blocks,
    SilenceResult: silence_blocks,
}


def _split(text: str, limit: int = MAX_SECTION) -> list[str]:
    """Cut ``text`` into pieces of at most ``limit`` characters, at line ends where possible."""
    pieces: list[str] = []
    while len(text) > limit:
        cut = text.rfind("\n", 0, limit)
        if cut <= 0:
            cut = limit
        pieces.append(text[:cut])
        text = text[cut:].lstrip("\n")
    if text:
        pieces.append(text)
    return pieces


def _pack(sections: list[str], room: int) -> tuple[list[str], bool]:
    """Sections merged/split to fit ``room`` blocks of ``MAX_SECTION``; True when something was cut."""
    pieces = [p for s in sections for p in _split(s)]
    if len(pieces) <= room and sum(map(len, pieces)) <= MAX_MESSAGE:
        return pieces, False
    merged: list[str] = []
    for p in pieces:
        if merged and len(merged[-1]) + 1 + len(p) <= MAX_SECTION:
            merged[-1] += "\n" + p
        else:
            merged.append(p)
    cut = False
    total = 0
    kept: list[str] = []
    for p in merged:
        if len(kept) >= room - 1 or total + len(p) > MAX_MESSAGE:
            cut = True
            break
        kept.append(p)
        total += len(p)
    if cut:
        kept.append(f"… {len(merged) - len(kept)} more sections in the attached file.")
    return kept, cut


def context_line(reply: Reply) -> str:
    """Environment, who asked, duration and audit id."""
    parts = []
    if reply.environment:
        parts.append(f"*{esc(reply.environment)}*")
    if reply.actor:
        parts.append(f"asked by {mention(reply.actor)}")
    parts.append(f"{reply.duration_ms / 1000:.1f} s")
    if reply.audit_id is not None:
        parts.append(f"audit #{reply.audit_id}")
    parts.append(f"ref {reply.request_id}")
    return " · ".join(parts)


def render_message(reply: Reply) -> Message:
    """The reply as a Slack message within every limit; long output summarised with a file."""
    if reply.result is None:
        text = f":no_entry: {esc(reply.error or 'failed')}"
        return Message(text=cut_escaped(text, MAX_FALLBACK_TEXT), blocks=[_section(cut_escaped(text, MAX_SECTION))])
    renderer = RENDERERS.get(type(reply.result))
    rendered = renderer(reply.result) if renderer else Rendered(header=reply.command or "result")
    header = rendered.header[:MAX_HEADER]
    judged = ("status", "health", "troubleshoot", "restart", "rollout", "stages", "maintenance_task", "security")
    icon = ICON[reply.severity] if reply.result.kind in judged else ""
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}}]
    pending = isinstance(reply.result, ApprovalResult) and reply.result.approval["state"] == "pending"
    sections, cut = _pack(rendered.sections, MAX_BLOCKS - 2 - int(pending))
    blocks += [_section(s) for s in sections]
    if pending:
        assert isinstance(reply.result, ApprovalResult)
        blocks.append(approval_buttons(reply.result.approval["id"]))
    context = cut_escaped(context_line(reply), MAX_SECTION)
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    text = esc(f"{icon} {header}".strip())  # the notification text is parsed as mrkdwn
    file = lines = None
    if rendered.attach or cut:
        name = f"{reply.command or 'result'}-{reply.environment or 'all'}-{reply.request_id}.txt"
        if isinstance(reply.result, LogsResult) and reply.result.total > len(reply.result.lines):
            lines = (name, partial(text_lines, reply))  # every line, from its spool: never all in memory
        else:
            file = (name, render_text(reply))
    return Message(text=cut_escaped(text, MAX_FALLBACK_TEXT), blocks=blocks, file=file, lines=lines)


def notice_message(text: str, reply: Reply | None = None) -> Message:
    """A notice for an alert channel (break glass, a scheduled run's alert): ``text`` is plain text,
    escaped here; with ``reply``, it heads the rendered reply (long output: the file to attach)."""
    head = esc(text)
    if reply is None:
        return Message(text=cut_escaped(head, MAX_FALLBACK_TEXT), blocks=[_section(cut_escaped(head, MAX_SECTION))])
    rendered = render_message(reply)
    blocks = [_section(cut_escaped(head, MAX_SECTION)), *rendered.blocks[: MAX_BLOCKS - 1]]
    return Message(text=cut_escaped(head, MAX_FALLBACK_TEXT), blocks=blocks, file=rendered.file, lines=rendered.lines)


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def progress_message(text: str) -> Message:
    """A progress line ("Checking prod..."), edited in place as work goes on."""
    line = cut_escaped(f":hourglass_flowing_sand: {esc(text)}", MAX_SECTION)
    return Message(text=cut_escaped(line, MAX_FALLBACK_TEXT), blocks=[_section(line)])
