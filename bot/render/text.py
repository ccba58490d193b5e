"""Plain-text rendering of replies, for the console and the command line."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from bot.core.changes import ApprovalResult, PlanResult
from bot.core.request import Reply
from bot.render.alerts import ack_text, alerts_text, silence_text
from bot.render.backup import backup_text, backups_text, files_text, restore_text, verify_text
from bot.render.plain import plain
from bot.render.upkeep import maintenance_text, security_done_text, security_text, task_text
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

MARK = {"ok": "OK  ", "warning": "WARN", "critical": "CRIT"}

#: what a terminal would act on, shown escaped: C0 and C1 controls (ANSI escapes, \r, \n), DEL, the
#: Unicode line and paragraph separators and the bidirectional overrides. A tab stays a tab.
_ESCAPES: dict[int, str] = {
    c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if c != 0x09
} | {0x0A: "\\n", 0x0D: "\\r"} | {c: f"\\u{c:04x}" for c in (0x2028, 0x2029, *range(0x202A, 0x202F),
                                                              *range(0x2066, 0x206A))}  # fmt: skip


def printable(text: str) -> str:
    """``text`` with every control or line-separator character escaped (``\\n``, ``\\x1b``, ``\\u2028``), so
    that a stored value can neither forge a line nor colour or move the terminal."""
    return text.translate(_ESCAPES)


def _table(rows: list[list[str]]) -> list[str]:
    if not rows:
        return []
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def _services(rows: list[ServiceRow]) -> list[str]:
    table = [["", "SERVICE", "STATE", "VERSION", "HEALTH", "CPU", "MEM", "RESTARTS", "NOTES"]]
    for r in rows:
        table.append(
            [
                MARK[r.severity],
                r.name,
                r.state,
                r.version or "-",
                r.health or "-",
                f"{r.cpu_percent:.1f}%" if r.cpu_percent is not None else "-",
                f"{r.memory_percent:.1f}%" if r.memory_percent is not None else "-",
                str(r.restarts),
                "; ".join(r.reasons),
            ]
        )
    return _table(table)


def _checks(rows: list[CheckRow]) -> list[str]:
    table = [["", "CHECK", "RESULT", "LATENCY", "URL"]]
    for c in rows:
        result = f"HTTP {c.status_code}" if c.status_code else "no answer"
        if c.error:
            result += f" ({c.error})"
        table.append(
            [
                MARK[c.severity],
                c.name,
                result,
                f"{c.latency_ms:.0f} ms" if c.latency_ms is not None else "-",
                c.url,
            ]
        )
    return _table(table)


def _metrics(rows: list[MetricRow]) -> list[str]:
    table = [["", "METRIC", "VALUE", "WARN/CRIT", "SOURCE"]]
    for m in rows:
        value = f"{m.value:.4g} {m.unit}".strip() if m.value is not None else (m.error or "-")
        levels = f"{m.warning:g}/{m.critical:g} {m.unit}".strip() if m.warning is not None else "-"
        table.append([MARK[m.severity], m.name, value, levels, m.source])
    return _table(table)


def _status(r: StatusResult | HealthResult) -> list[str]:
    out = [f"{r.environment}: {r.overall.upper()}"]
    for e in getattr(r, "errors", []):
        out.append(f"CRIT  {e}")
    if r.services:
        out += ["", *_services(r.services)]
    if r.checks:
        out += ["", *_checks(r.checks)]
    elif isinstance(r, HealthResult):
        out.append("no health checks configured")
    if r.metrics:
        out += ["", *_metrics(r.metrics)]
    return out


def _logs(r: LogsResult) -> list[str]:
    return [logs_head(r), *r.lines] if r.lines else [logs_head(r), "(no log lines)"]


def logs_head(r: LogsResult, *, whole: bool = False) -> str:
    """The first line of a ``logs`` answer: where, how many lines, and (unless ``whole``: every line
    follows) whether only the newest follow."""
    window = f" since {r.since}" if r.since else ""
    grep = f" matching {r.grep!r}" if r.grep else ""
    head = f"{r.environment}/{r.service}: {r.total} lines{window}{grep}"
    if r.total > len(r.lines) and not whole:
        head += f"; the newest {len(r.lines)} below"
    return head


def _troubleshoot(r: TroubleshootResult) -> list[str]:
    out: list[str] = []
    if not r.matches:
        out += [f"No guide entry matches {r.query!r}. Known issues:", *(f"  - {k}" for k in r.known_issues)]
    for m in r.matches:
        how = " (closest match)" if m.how == "fuzzy" else ""
        out += [f"Issue: {m.issue}{how}  [matched: {', '.join(m.matched)}]", f"Resolution: {m.resolution}"]
        for f in m.diagnostics:
            out.append(f"  {MARK[f.severity]} {f.name}: {f.summary}")
            out += [f"         {line}" for line in f.lines]
        out.append("")
    if r.escalation:
        out.append("Escalation: " + " -> ".join(f"{c.level} {c.contact} ({c.when})" for c in r.escalation))
    return out


def _escalate(r: EscalateResult) -> list[str]:
    if r.mention:
        c = r.path[0]
        return [f"Escalating to {c.level}: {c.contact} ({c.when})"]
    return ["Escalation path:", *(f"  {c.level}: {c.contact} ({c.when})" for c in r.path)]


def _help(r: HelpResult) -> list[str]:
    if r.detail:
        d = r.detail
        out = [f"Usage: {d.usage}", "", d.summary]
        if d.description:
            out += ["", *d.description.splitlines()]
        out += ["", f"Changes anything: {'yes' if d.changes else 'no'}" + (f"   Guide: {d.guide}" if d.guide else "")]
        if d.examples:
            out += ["Examples:", *(f"  {e}" for e in d.examples)]
        return out
    width = max(len(c.usage) for c in r.commands)
    return [
        "Commands:",
        *(f"  {c.usage.ljust(width)}  {c.summary}" for c in r.commands),
        "",
        "help <command> for more.",
    ]


def _audit(r: AuditResult) -> list[str]:
    if r.verification is not None:
        v = r.verification
        if v.ok:
            return [f"audit log intact: {v.rows} entries, chain verified"]
        return [f"CRIT  audit log broken at entry {v.bad_id}: {v.reason} ({v.rows} entries walked)"]
    table = [["ID", "TIME", "ACTOR", "DOOR", "ENV", "EVENT", "OUTCOME", "COMMAND"]]
    for e in r.entries:
        table.append(
            [str(e.id), e.ts, e.actor, e.source, e.environment or "-", e.event, e.outcome[:60], e.command[:80]]
        )
    return _table(table) if r.entries else ["no audit entries"]


def _plan(p: Plan) -> list[str]:
    out = [f"Plan: {p.summary}", *(f"  {i}. {step}" for i, step in enumerate(p.steps, 1))]
    if p.verify:
        out.append("Then verify: " + "; ".join(p.verify))
    return out


def _plan_result(r: PlanResult) -> list[str]:
    return ["Dry run: nothing was changed.", *([f"Note: {r.note}"] if r.note else []), *_plan(r.plan)]


def _restart(r: RestartResult) -> list[str]:
    head = f"restart {r.service} in {r.environment}: {'OK' if r.ok else 'FAILED'}"
    out = [head] + ([f"CRIT  {r.problem}"] if r.problem else [])
    return [*out, "", *_services(r.containers), "", *_checks(r.checks)]


def _approval(r: ApprovalResult) -> list[str]:
    a = r.approval
    by = f", approved by {', '.join(a['approvers'])}" if a["approvers"] else ""
    out = [f"Approval {a['id']}: {a['state']} ({r.message}){by}", f"  requested by {a['requester']}, "
           f"needs {a['required']} approver(s), expires {a['expires_at']}", *_plan(r.plan)]  # fmt: skip
    if a["state"] == "pending":
        out.append(
            f"Approve with: opsbot approve {a['id']} --as <approver id>   (deny: opsbot deny {a['id']} --as ...)"
        )
    if r.result is not None and r.result_kind in RESULT_TYPES:
        out += ["", *render_result(RESULT_TYPES[r.result_kind].model_validate(r.result))]
    return out


def _pending(r: PendingResult) -> list[str]:
    if not r.approvals:
        return ["No approvals waiting."]
    table = [["ID", "ENV", "COMMAND", "REQUESTER", "APPROVALS", "EXPIRES"]]
    for a in r.approvals:
        table.append([a["id"], a["environment"] or "-", a["command"], a["requester"],
                      f"{len(a['approvers'])}/{a['required']}", a["expires_at"]])  # fmt: skip
    return _table(table)


def _config(r: ConfigResult) -> list[str]:
    out = [f"Configuration of {r.environment}"]
    for v in r.services:
        out += ["", f"{v.service} ({v.container}, {v.image})"]
        out += [f"  {k}={val}" for k, val in v.environment.items()]
        out.append("  flags: " + (", ".join(f"{k}={val}" for k, val in v.flags.items()) or "none"))
    return out


def _rollout(r: RolloutResult) -> list[str]:
    what = f"{r.action} {r.version or ''}".strip()
    state = "OK" if r.ok else ("ROLLED BACK" if r.rolled_back else "FAILED")
    out = [f"{what} in {r.environment}: {state}"]
    out += [f"  {c.service}: {c.image_before or '(none)'} -> {c.image_after}" for c in r.changes]
    out += [f"  security gate {g.item} on {g.image}: " + ("passed" if g.passed else g.detail) for g in r.gates]
    if r.migration:
        out.append(f"  migration exited {r.migration['exit_code']}")
    if r.problem:
        out.append(f"CRIT  {r.problem}")
    if r.output:
        out += ["", "Output:", *r.output.splitlines()[-20:]]
    return [*out, "", *_services(r.containers), "", *_checks(r.checks)]


def _history(r: HistoryResult) -> list[str]:
    if not r.deploys:
        return [f"No deploys recorded for {r.environment}."]
    table = [["ID", "WHEN", "WHAT", "OUTCOME", "REQUESTED BY", "APPROVED BY", "IMAGES"]]
    for d in r.deploys:
        when = datetime.fromtimestamp(d["finished_at"], UTC).strftime("%Y-%m-%d %H:%M")
        images = ", ".join(f"{s}:{(d['after'].get(s) or '').rsplit(':', 1)[-1]}" for s in d["services"])
        table.append([str(d["id"]), when, f"{d['kind']} {d['version'] or ''}".strip(), d["outcome"], d["requester"],
                      ", ".join(d["approvers"]) or "-", images])  # fmt: skip
    return _table(table)


def _stages(r: StagesResult) -> list[str]:
    out = [f"{r.action} of {r.environment}: {'OK' if r.ok else 'FAILED'}"]
    out += [f"  stage {i}: {', '.join(s.services)}: {'ok' if s.ok else 'FAILED ' + (s.problem or '')}"
            for i, s in enumerate(r.stages, 1)]  # fmt: skip
    if r.problem:
        out.append(f"CRIT  {r.problem}")
    return [*out, "", *_services(r.services), *(["", *_checks(r.checks)] if r.checks else [])]


RENDERERS: dict[type[Result], Callable[[Any], list[str]]] = {
    AlertsResult: alerts_text,
    AckResult: ack_text,
    SilenceResult: silence_text,
    BackupResult: backup_text,
    FilesBackupResult: files_text,
    BackupsResult: backups_text,
    VerifyResult: verify_text,
    RestoreResult: restore_text,
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
    MaintenanceResult: maintenance_text,
    TaskResult: task_text,
    SecurityResult: security_text,
    SecurityDoneResult: security_done_text,
}


RESULT_TYPES: dict[str, type[Result]] = {t.kind: t for t in RENDERERS}


def render_result(result: Result) -> list[str]:
    """One result as lines of text, each with its control characters escaped (``printable``)."""
    renderer = RENDERERS.get(type(result))
    if renderer is None:
        return result.model_dump_json(indent=2).splitlines()
    return [printable(line) for line in renderer(result)]


def render_text(reply: Reply) -> str:
    """The reply as plain text (no Slack markup: ``bot.render.plain``): the rendered result, or ``error: ...``;
    no stored value can forge a line."""
    if reply.result is None:
        return plain(f"error: {printable(reply.error or '')}")
    return plain("\n".join(render_result(reply.result)).rstrip())


def text_lines(reply: Reply, redact: Callable[[str], str]) -> Iterator[str]:
    """The reply as plain text, redacted, a line at a time: a ``logs`` answer with more lines than it holds
    gives every one of them, read from its spool as they are used (bounded memory; its lines were
    redacted as they were spooled, ``redact`` does the rest); any other reply is ``render_text``'s."""
    r = reply.result
    if isinstance(r, LogsResult) and r.total > len(r.lines):
        yield plain(redact(logs_head(r, whole=True)))
        for line in r.all_lines():
            yield plain(line)
    else:
        yield redact(render_text(reply))
