"""Block Kit of alerts: one incident's message (edited as it changes), its thread replies, a storm's summary.

Every piece of text that comes from a check, a service or a person is escaped here, once (``esc``);
contacts of the escalation path come from ops.yml and may be mentions, so they are not.
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime
from typing import Any

from bot.config import OpsConfig
from bot.config.windows import timezone_of
from bot.core.incident import ACKNOWLEDGED, RESOLVED, SILENCED, Incident, level_name
from bot.slack.mrkdwn import MAX_FALLBACK_TEXT, MAX_HEADER, MAX_SECTION, Message, Rendered, cut, esc, mention
from commands.ack import AckResult
from commands.alerts import AlertsResult
from commands.silence import SilenceResult

ICON = {
    "critical": ":red_circle:", "warning": ":warning:", "info": ":information_source:", "ok": ":large_green_circle:",
}  # fmt: skip
#: the buttons of an open incident, as CONTRACT.md names them
BUTTONS = (("Acknowledge", "ack", "primary"), ("Silence 1h", "silence", None), ("Troubleshoot", "troubleshoot", None))
STORM_SHOWN = 20


def clock(config: OpsConfig, ts: float) -> str:
    """``14:02`` in ``alerting.timezone`` (UTC without it)."""
    tz: zoneinfo.ZoneInfo = timezone_of(config)
    return datetime.fromtimestamp(ts, UTC).astimezone(tz).strftime("%H:%M")


def duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``2 h 5 min``, ``3 d 4 h``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h" + (f" {s % 3600 // 60} min" if s % 3600 // 60 else "")
    return f"{s // 86400} d" + (f" {s % 86400 // 3600} h" if s % 86400 // 3600 else "")


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": cut(text, MAX_SECTION)}}


def alert_buttons(inc: Incident) -> dict[str, Any]:
    """Acknowledge, Silence 1h, Troubleshoot (Acknowledge only while nobody has)."""
    elements = []
    for text, action, style in BUTTONS:
        if action == "ack" and inc.state == ACKNOWLEDGED:
            continue
        button: dict[str, Any] = {"type": "button", "text": {"type": "plain_text", "text": text},
                                  "action_id": f"alert:{action}", "value": inc.id}  # fmt: skip
        if style:
            button["style"] = style
        elements.append(button)
    return {"type": "actions", "block_id": f"alert-{inc.id}", "elements": elements}


def status_line(config: OpsConfig, inc: Incident, now: float) -> str:
    """Where the incident stands, in one line."""
    if inc.state == RESOLVED:
        end = inc.resolved_at or now
        return (f"*Resolved after {duration(end - inc.failing_since)}* ({clock(config, inc.failing_since)}"
                f" to {clock(config, end)})")  # fmt: skip
    line = (f"Still failing since {clock(config, inc.failing_since)} ({duration(now - inc.failing_since)}) · "
            f"failed {inc.count} time{'s' if inc.count != 1 else ''}")  # fmt: skip
    if inc.flaps:
        line += f" · flapped {inc.flaps} time{'s' if inc.flaps != 1 else ''}"
    return line


def incident_message(config: OpsConfig, inc: Incident, now: float) -> Message:
    """The incident's one message, as it stands at ``now``."""
    resolved = inc.state == RESOLVED
    icon = ICON["ok"] if resolved else ICON.get(inc.severity, ICON["critical"])
    word = "RESOLVED" if resolved else inc.severity.upper()
    head = f"{icon} *{esc(word)}* · {esc(inc.environment)} · *{esc(inc.what)}*"
    lines = [head, esc(inc.summary) if not resolved else f"~{esc(inc.summary)}~", status_line(config, inc, now)]
    if inc.acked_by:
        lines.append(f":white_check_mark: Acknowledged by {mention(inc.acked_by)} at "
                     f"{clock(config, inc.acked_at or now)}: escalation stopped")  # fmt: skip
    if inc.state == SILENCED and inc.held_until:
        until = f" until {clock(config, inc.held_until)}" if inc.silence_id else ""  # a task's: while it runs
        lines.append(f":zzz: Held{until} ({esc(inc.held_reason or 'silenced')})")
    level = level_name(config, inc.level)
    if level and not resolved and not inc.acked_by and config.escalation:
        step = config.escalation[min(inc.level, len(config.escalation)) - 1]
        verb = "Escalation" if inc.level <= 1 else "Escalated to"
        lines.append(f"{verb}: *{esc(step.level)}* {step.contact}")
    blocks: list[dict[str, Any]] = [_section("\n".join(lines))]
    if not resolved:
        blocks.append(alert_buttons(inc))
    context = f"alert `{esc(inc.id)}` · {esc(inc.fingerprint)} · `/ops ack {esc(inc.id)}`"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": cut(context, MAX_SECTION)}]})
    if resolved:
        after = duration((inc.resolved_at or now) - inc.failing_since)
        text = f"{icon} Resolved after {after}: {inc.environment} {inc.what}"
    else:
        text = f"{icon} {word} {inc.environment}: {inc.what}: {inc.summary}"
    return Message(text=cut(esc(text), MAX_FALLBACK_TEXT), blocks=blocks)


def reply_text(config: OpsConfig, inc: Incident, event: dict[str, Any]) -> str:
    """A thread reply for one event of the incident (mrkdwn, escaped)."""
    kind = event.get("kind")
    at = float(event.get("at") or 0)
    if kind == "repeat":
        return f"Still failing since {clock(config, float(event['since']))} ({event['count']} failed checks)."
    if kind == "resolved":
        gone = event.get("why") == "no longer checked"
        why = "No longer checked (gone from ops.yml?): closed" if gone else "Resolved"
        return f":large_green_circle: {why} after {duration(float(event['after']))}."
    if kind == "acked":
        return f":white_check_mark: Acknowledged by {mention(str(event['by']))}: escalation stopped."
    if kind == "silenced":
        reason = f": {esc(str(event['reason']))}" if event.get("reason") else ""
        return f":zzz: Silenced by {mention(str(event['by']))} until {clock(config, float(event['until']))}{reason}."
    if kind == "unheld":
        return f"The hold ended: still failing since {clock(config, float(event['since']))}."
    if kind == "severity":
        order = ("info", "warning", "critical")
        verb = "raised" if order.index(str(event["to"])) > order.index(str(event["from"])) else "lowered"
        icon = ICON.get(str(event["to"]), "")
        return f"{icon} Severity {verb} from {esc(str(event['from']))} to *{esc(str(event['to']))}*."
    if kind == "reopened":
        return f"{ICON.get(inc.severity, '')} Failing again (flapped {event['flaps']} times) at {clock(config, at)}."
    if kind == "escalated":
        return (f":rotating_light: Not acknowledged in time: escalating to *{esc(str(event['level']))}* "
                f"{event['contact']} ({esc(str(event['when']))}).")  # fmt: skip
    return esc(str(event))


def reply_message(config: OpsConfig, inc: Incident, event: dict[str, Any]) -> Message:
    """The reply as a message."""
    text = reply_text(config, inc, event)
    return Message(text=cut(text, MAX_FALLBACK_TEXT), blocks=[_section(text)])


def storm_message(config: OpsConfig, env: str, members: list[Incident], now: float) -> Message:
    """One summary for many incidents that opened together, edited as they change."""
    still = [i for i in members if i.state != RESOLVED]
    worst = "critical" if any(i.severity == "critical" for i in still) else "warning" if still else "ok"
    head = (f"{ICON[worst]} *{len(members)} alerts in {esc(env)} within a minute* · {len(still)} still open, "
            f"{len(members) - len(still)} resolved")  # fmt: skip
    lines = []
    for inc in sorted(members, key=lambda i: (i.state == RESOLVED, i.what))[:STORM_SHOWN]:
        state = "resolved" if inc.state == RESOLVED else inc.state
        lines.append(f"{ICON['ok'] if inc.state == RESOLVED else ICON.get(inc.severity, '')} `{esc(inc.id)}` "
                     f"*{esc(inc.what)}*: {esc(inc.summary[:120])} ({esc(state)})")  # fmt: skip
    if len(members) > STORM_SHOWN:
        lines.append(f"… and {len(members) - STORM_SHOWN} more: `/ops alerts {esc(env)}`")
    blocks = [_section(head), _section("\n".join(lines) or "-"),
              {"type": "context", "elements": [{"type": "mrkdwn", "text": esc("`/ops ack <id>` acknowledges one")}]}]
    text = f"{len(members)} alerts in {env} within a minute, {len(still)} still open"
    return Message(text=cut(esc(text), MAX_FALLBACK_TEXT), blocks=blocks)


def pointer_message(config: OpsConfig, inc: Incident) -> Message:
    """A line in the raised severity's channel pointing at the incident's message in its first channel."""
    icon = ICON.get(inc.severity, "")
    text = (f"{icon} *{esc(inc.severity.upper())}* now: {esc(inc.environment)} *{esc(inc.what)}*: "
            f"{esc(inc.summary[:300])}. Its alert (`{esc(inc.id)}`) is in <#{inc.channel}>.")  # fmt: skip
    return Message(text=cut(text, MAX_FALLBACK_TEXT), blocks=[_section(text)])


def notice_message(text: str) -> Message:
    """A one-off line in an alert channel (a receiver that refuses alerts...)."""
    return Message(text=cut(esc(text), MAX_FALLBACK_TEXT), blocks=[_section(f":warning: {esc(text)}")])


def header_of(text: str) -> str:
    """Text cut for a header block."""
    return text[:MAX_HEADER]


# ---------------------------------------------------------------- the alert commands' results


def alerts_blocks(r: AlertsResult) -> Rendered:
    """Open alerts, silences, running maintenance tasks and windows."""
    where = f" in {r.environment}" if r.environment else ""
    out = Rendered(header=f"{len(r.alerts)} open alert{'s' if len(r.alerts) != 1 else ''}{where}")
    for a in r.alerts:
        who = f" · acknowledged by {mention(a['acked_by'])}" if a.get("acked_by") else ""
        level = f" · {esc(a['level'])}" if a.get("level") else ""
        out.sections.append(f"{ICON.get(a['severity'], '')} `{esc(a['id'])}` *{esc(a['environment'])}* "
                            f"*{esc(a['what'])}* ({esc(a['state'])}): {esc(a['summary'][:200])}\n"
                            f"since {esc(a['failing_since'])}{who}{level}")  # fmt: skip
    if not r.alerts:
        out.sections.append("Nothing is firing.")
    if r.silences:
        out.sections.append("*Silences*\n" + "\n".join(
            f":zzz: {esc(s['environment'])}/{esc(s['what'])} until {esc(s['until'])} by {mention(s['created_by'])}"
            + (f": {esc(s['reason'])}" if s.get("reason") else "") for s in r.silences))  # fmt: skip
    if r.maintenance:
        runs = [f":wrench: {esc(m['environment'])}: {esc(m['task'])} since {esc(m['started_at'])} by "
                f"{mention(m['actor'])}: holds " + (esc(", ".join(m["holds"])) or "nothing") for m in r.maintenance]
        out.sections.append("*Maintenance tasks running* (each holds the alerts of what it touches until it ends)\n"
                            + "\n".join(runs))
    if r.windows:
        out.sections.append("*Maintenance windows* (a window holds no alert by itself)\n" + "\n".join(
            f"{esc(w['environment'])}: {esc(w['window'])}: " + (f"*open* until {esc(w['until'])}" if w["open"]
            else f"next {esc(str(w['next_start']))}") for w in r.windows))  # fmt: skip
    return out


def ack_blocks(r: AckResult) -> Rendered:
    """The acknowledged alert."""
    a = r.alert
    return Rendered(header=f"Alert {a['id']} acknowledged",
                    sections=[f":white_check_mark: {esc(a['environment'])} *{esc(a['what'])}* acknowledged by "
                              f"{mention(a['acked_by'] or '')}: escalation stopped"])  # fmt: skip


def silence_blocks(r: SilenceResult) -> Rendered:
    """The silence and what it holds."""
    s = r.silence
    reason = f": {esc(s['reason'])}" if s.get("reason") else ""
    out = Rendered(header=f"Silenced {s['environment']}/{s['what']}"[:MAX_HEADER])
    out.sections.append(f":zzz: until <!date^{int(s['until'])}^{{date_short_pretty}} {{time}}|"
                        f"{int(s['until'])}> by {mention(s['created_by'])}{reason}")  # fmt: skip
    out.sections += [f"holds `{esc(a['id'])}` {esc(a['summary'][:200])}" for a in r.alerts]
    return out
