"""Plain text of the alert commands (``alerts``, ``ack``, ``silence``) and of the email digest."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.config import OpsConfig
from bot.config.windows import timezone_of
from bot.core.incident import RESOLVED, Incident
from commands.ack import AckResult
from commands.alerts import AlertsResult
from commands.silence import SilenceResult

MARK = {"critical": "CRIT", "warning": "WARN", "info": "INFO", "ok": "OK  "}


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def _alert_row(a: dict[str, Any]) -> list[str]:
    who = a.get("acked_by") or "-"
    return [a["id"], MARK.get(a["severity"], a["severity"]), a["state"], a["environment"], a["what"],
            a["failing_since"], who, a.get("level") or "-", a["summary"][:80]]  # fmt: skip


def alerts_text(r: AlertsResult) -> list[str]:
    """Open alerts, silences, running maintenance tasks, windows."""
    where = f" in {r.environment}" if r.environment else ""
    out = [f"{len(r.alerts)} open alert{'s' if len(r.alerts) != 1 else ''}{where}"]
    if r.alerts:
        out += _table([["ID", "SEV", "STATE", "ENV", "WHAT", "SINCE", "ACKED BY", "LEVEL", "SUMMARY"],
                       *(_alert_row(a) for a in r.alerts)])  # fmt: skip
    if r.silences:
        out += ["", "Silences:"]
        out += [f"  {s['environment']}/{s['what']} until {s['until']} by {s['created_by']}"
                + (f": {s['reason']}" if s.get("reason") else "") for s in r.silences]  # fmt: skip
    if r.maintenance:
        out += ["", "Maintenance tasks running (each holds the alerts of what it touches until it ends):"]
        out += [f"  {m['environment']}: {m['task']} since {m['started_at']} by {m['actor']}: holds "
                + (", ".join(m["holds"]) or "nothing") for m in r.maintenance]  # fmt: skip
    if r.windows:
        out += ["", "Maintenance windows (a window holds no alert by itself; its tasks hold what they touch):"]
        out += [f"  {w['environment']}: {w['window']}: " + (f"OPEN until {w['until']}" if w["open"]
                else f"next {w['next_start']}") for w in r.windows]  # fmt: skip
    return out


def ack_text(r: AckResult) -> list[str]:
    """The acknowledged alert."""
    a = r.alert
    return [f"alert {a['id']} ({a['environment']}: {a['what']}) acknowledged by {a['acked_by']}: escalation stopped"]


def silence_text(r: SilenceResult) -> list[str]:
    """The silence and what it holds."""
    s = r.silence
    until = datetime.fromtimestamp(float(s["until"]), UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    out = [f"silenced {s['environment']}/{s['what']} until {until} (silence {s['id']})"
           + (f": {s['reason']}" if s.get("reason") else "")]  # fmt: skip
    out += [f"  holds alert {a['id']} ({a['severity']}: {a['summary'][:80]})" for a in r.alerts]
    return out


def digest_email(config: OpsConfig, date: str, incidents: list[Incident], since: float,
                 until: float) -> tuple[str, str]:  # fmt: skip
    """The digest's subject and text: the info alerts (guide 6.3, "Info -> Email, next business day") open
    now, and those resolved since the last digest. Warning and critical ones are not in it: they went to
    Slack and PagerDuty when they happened."""
    tz = timezone_of(config)

    def when(ts: float) -> str:
        return datetime.fromtimestamp(ts, UTC).astimezone(tz).strftime("%a %d %b %H:%M")

    info = [i for i in incidents if i.severity == "info"]
    still = [i for i in info if i.state != RESOLVED and i.opened_at <= until]
    done = [i for i in info
            if i.state == RESOLVED and i.resolved_at is not None and since <= i.resolved_at <= until]  # fmt: skip
    subject = f"[{config.project}] opsbot digest {date}: {len(still)} open, {len(done)} resolved"
    lines = [f"Info alerts of {config.project} from {when(since)} to {when(until)} ({tz.key}); warning and "
             "critical ones are told in Slack (and PagerDuty) when they happen, not here.", ""]  # fmt: skip
    lines.append(f"Open now ({len(still)}):")
    lines += [f"  [{i.severity}] {i.environment} {i.what}: {i.summary} (since {when(i.failing_since)}, "
              f"{i.state}" + (f", acknowledged by {i.acked_by}" if i.acked_by else "") + ")"
              for i in still] or ["  none"]  # fmt: skip
    lines += ["", f"Resolved ({len(done)}):"]
    lines += [f"  [{i.severity}] {i.environment} {i.what}: {i.summary} ({when(i.failing_since)} to "
              f"{when(i.resolved_at or until)}, {i.count} failed checks)" for i in done] or ["  none"]  # fmt: skip
    lines += ["", "`/ops alerts` in Slack lists the open ones; `/ops ack <id>` acknowledges one."]
    return subject, "\n".join(lines)
