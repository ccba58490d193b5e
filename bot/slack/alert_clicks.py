"""The buttons of an alert's message (``Acknowledge``, ``Silence 1h``, ``Troubleshoot``) as requests.

A click becomes the words a person would type (``ack <id>``, ``silence <env> <what> 1h``,
``troubleshoot <symptoms> --env <env>``) and takes the one request path as the clicking user: access,
audit and redaction apply unchanged. An alert of an environment the user may not read is answered as an
unknown one (nothing tells it exists).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from adapters.errors import UserError
from bot.core.incident import Incident
from commands.ack import UNKNOWN_OR_NOT_YOURS

#: what the Silence 1h button silences for
BUTTON_SILENCE = "1h"


@dataclass(frozen=True)
class AlertClick:
    """One click on an alert's button."""

    verb: str
    alert_id: str
    user: str
    channel: str
    message_ts: str
    key: str


class IncidentReader(Protocol):
    """Reads an incident (``bot.core.incidents.Incidents``)."""

    async def get(self, alert_id: str) -> Incident:
        """The incident; ``UserError`` when unknown."""
        ...


def alert_click(body: dict[str, Any]) -> AlertClick | None:
    """The click in a block_actions body, or None when it is not one of ours."""
    action = (body.get("actions") or [{}])[0]
    verb = str(action.get("action_id", "")).partition(":")[2]
    user = str((body.get("user") or {}).get("id") or "")
    alert_id = str(action.get("value") or "")
    if verb not in ("ack", "silence", "troubleshoot") or not user or not alert_id:
        return None
    container = body.get("container") or {}
    channel = str(container.get("channel_id") or (body.get("channel") or {}).get("id") or "")
    message_ts = str(container.get("message_ts") or "")
    team = (body.get("team") or {}).get("id")
    key = f"click:{team}:{user}:{action.get('action_id')}:{message_ts}:{action.get('action_ts')}"
    return AlertClick(verb=verb, alert_id=alert_id, user=user, channel=channel, message_ts=message_ts, key=key)


class Readers(Protocol):
    """Who may read an environment (``bot.core.access.Access``)."""

    async def may_read(self, actor: str, env: str) -> bool:
        """Whether ``actor`` may read ``env``."""
        ...


async def alert_words(incidents: IncidentReader, click: AlertClick, readers: Readers) -> list[str]:
    """The request a click stands for (``UserError`` for an alert unknown or of an environment the user
    may not read, alike)."""
    if click.verb == "ack":
        return ["ack", click.alert_id]  # the engine decides in the alert's environment
    hidden = UserError(UNKNOWN_OR_NOT_YOURS.format(alert_id=click.alert_id))
    try:
        inc = await incidents.get(click.alert_id)
    except UserError:
        raise hidden from None
    if not await readers.may_read(click.user, inc.environment):
        raise hidden
    if click.verb == "silence":
        return ["silence", inc.environment, inc.what, BUTTON_SILENCE, "--reason", "Silence 1h button"]
    words = [w for w in (inc.symptoms or inc.summary).split() if not w.startswith("-")][:29] or [inc.what]
    return ["troubleshoot", *words, "--env", inc.environment]
