"""What an incident's change must tell, written to the outbox inside the transaction that changed it.

Slack rows carry only what the message or reply is about (``event``); the worker renders them from the
incident as it stands when they are delivered. PagerDuty rows carry the Events API v2 body but the
routing key, which is read from the environment when sent.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from bot.config import OpsConfig
from bot.core import outbox
from bot.core.incident import Incident, Route, alert_channels, iso, repeat_after, route_of

PD_SEVERITY = {"critical": "critical", "warning": "warning", "info": "info", "ok": "info"}


class Tell:
    """Adds the notifications of one transaction, at one time ``now``."""

    def __init__(self, conn: sqlite3.Connection, config: OpsConfig, now: float) -> None:
        self.conn = conn
        self.config = config
        self.now = now
        self.added = 0

    def _add(self, **kw: Any) -> bool:
        done = outbox.add(self.conn, now=self.now, **kw)
        self.added += int(done)
        return done

    # ---------------------------------------------------------------- Slack: one message per incident

    def post(self, inc: Incident, channel: str) -> None:
        """The incident's own message, in ``channel``."""
        inc.set(channel=channel, edited_at=self.now)
        self._add(grp=f"slack:{inc.id}", notifier="slack", op="post", incident=inc.id, payload={"channel": channel})

    def update(self, inc: Incident) -> None:
        """Edit the incident's message (or its storm's summary) to show it as it stands."""
        if inc.storm_id:
            row = self.conn.execute("SELECT channel FROM storms WHERE id = ?", (inc.storm_id,)).fetchone()
            if row is not None and row[0]:
                inc.set(edited_at=self.now)
                self.storm_update(inc.storm_id, str(row[0]))
            return
        if inc.channel is None:
            return
        inc.set(edited_at=self.now)
        self._add(grp=f"slack:{inc.id}", notifier="slack", op="update", incident=inc.id,
                  payload={"channel": inc.channel})  # fmt: skip

    def reply(self, inc: Incident, event: dict[str, Any]) -> None:
        """A reply in the incident's thread (when it has a message)."""
        if inc.channel is None or inc.storm_id:
            return
        self._add(grp=f"slack:{inc.id}", notifier="slack", op="reply", incident=inc.id,
                  payload={"channel": inc.channel, "event": {**event, "at": self.now}})  # fmt: skip

    def storm_post(self, storm_id: str, channel: str) -> None:
        """The summary message of a storm of incidents."""
        self._add(grp=f"slack:storm:{storm_id}", notifier="slack", op="post", payload={"channel": channel,
                  "storm": storm_id})  # fmt: skip

    def storm_update(self, storm_id: str, channel: str) -> None:
        """Edit the storm's summary to show its incidents as they stand."""
        self._add(grp=f"slack:storm:{storm_id}", notifier="slack", op="update", payload={"channel": channel,
                  "storm": storm_id})  # fmt: skip

    def storm_reply(self, storm_id: str, channel: str, event: dict[str, Any], dedupe: str | None = None) -> None:
        """A reply in the storm summary's thread."""
        self._add(grp=f"slack:storm:{storm_id}", notifier="slack", op="reply", dedupe=dedupe,
                  payload={"channel": channel, "storm": storm_id, "event": {**event, "at": self.now}})  # fmt: skip

    def pointer(self, inc: Incident, channel: str) -> None:
        """One line in ``channel`` pointing at the incident's message elsewhere (its severity was raised)."""
        self._add(grp=f"slack:{inc.id}", notifier="slack", op="pointer", incident=inc.id,
                  dedupe=f"pointer:{inc.id}:{inc.severity}", payload={"channel": channel})  # fmt: skip

    def notice(self, severity: str, text: str, dedupe: str) -> None:
        """A one-off line in the alert channel of ``severity`` (at most once per ``dedupe``)."""
        channel = alert_channels(self.config).get(severity)
        if channel:
            self._add(grp="slack:notices", notifier="slack", op="notice", dedupe=dedupe,
                      payload={"channel": channel, "text": text})  # fmt: skip

    # ---------------------------------------------------------------- PagerDuty, diagnostics

    def page(self, inc: Incident, action: str) -> None:
        """A PagerDuty Events API v2 event (trigger, acknowledge, resolve) with the fingerprint as dedup_key."""
        body: dict[str, Any] = {"event_action": action, "dedup_key": inc.fingerprint}
        if action == "trigger":
            body["payload"] = {
                "summary": f"[{inc.environment}] {inc.what}: {inc.summary}"[:1024],
                "source": f"{self.config.project}/{inc.environment}",
                "severity": PD_SEVERITY.get(inc.severity, "error"),
                "timestamp": iso(inc.failing_since),
                "component": inc.what[:255],
                "group": inc.environment,
                "class": inc.source,
                "custom_details": {"alert": inc.id, "failing_since": iso(inc.failing_since), "count": inc.count},
            }
            inc.set(paged=1)
        elif action == "resolve":
            inc.set(paged=0)
        self._add(grp=f"pagerduty:{inc.id}", notifier="pagerduty", op=action, incident=inc.id, payload=body)

    def diagnose(self, inc: Incident) -> None:
        """Run the matching ``troubleshooting`` entry's diagnostics into the incident's thread."""
        inc.set(diagnosed_at=self.now)
        self._add(grp=f"diagnose:{inc.id}", notifier="opsbot", op="diagnose", incident=inc.id,
                  payload={"environment": inc.environment, "symptoms": inc.symptoms or inc.summary})  # fmt: skip

    # ---------------------------------------------------------------- composed

    def announce(self, inc: Incident, *, storm: tuple[str, str, bool] | None = None) -> None:
        """A firing incident is told: its message (or its storm's), its page, its diagnosis; escalation starts."""
        route: Route = route_of(self.config, inc.severity)
        inc.set(escalated_at=self.now, level=max(inc.level, 1 if self.config.escalation else 0))
        if storm is not None:
            storm_id, channel, new = storm
            inc.set(storm_id=storm_id, channel=None)
            if new:
                self.storm_post(storm_id, channel)
            else:
                self.storm_update(storm_id, channel)
        elif route.slack_channel and inc.channel is None:
            self.post(inc, route.slack_channel)
        elif inc.channel is not None:
            self.update(inc)
        if route.pagerduty and not inc.paged:
            self.page(inc, "trigger")
        self.maybe_diagnose(inc)

    def maybe_diagnose(self, inc: Incident) -> None:
        """Diagnose when a ``troubleshooting`` entry matches and none ran within ``repeat_after``."""
        if inc.channel is None or inc.storm_id is not None:
            return
        if inc.diagnosed_at is not None and self.now - inc.diagnosed_at < repeat_after(self.config):
            return
        from commands.troubleshoot import find  # the guide's table and its diagnostics: only for an alert

        if find(list(self.config.troubleshooting), inc.symptoms or inc.summary):
            self.diagnose(inc)
