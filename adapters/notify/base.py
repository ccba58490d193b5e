"""The ``Notifier`` interface: send one notification, or say why not and whether trying again can help.

A notifier sends what the outbox hands it (``Outgoing``: a delivery id and the receiver's body) and
returns what the receiver answered (a Slack message's ``ts``...). It never retries by itself: the
outbox owns retries, so that a restart, another bot process or a backoff all see one truth. A failure
is a ``DeliveryError`` saying whether it is worth trying again soon (``retry_after``: the receiver's
own Retry-After) or whether the receiver refuses it as it is (``permanent``: a bad routing key, a
refused login) and a person must fix something.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel

from adapters.errors import AdapterError


class Outgoing(BaseModel):
    """One notification: its delivery id (stable across retries) and the receiver's request body."""

    delivery_id: str
    body: dict[str, Any]


class DeliveryError(AdapterError):
    """A notification was not delivered; the outbox tries again later."""

    def __init__(self, message: str, *, retry_after: float | None = None, permanent: bool = False,
                 code: str = "") -> None:  # fmt: skip
        super().__init__(message)
        #: the receiver asked to wait this many seconds (HTTP 429 Retry-After)
        self.retry_after = retry_after
        #: the receiver refuses this as it is: retrying soon will not help, a person must fix something
        self.permanent = permanent
        #: a short machine-readable reason ("ratelimited", "invalid_auth", "http_400")
        self.code = code


@runtime_checkable
class Notifier(Protocol):
    """Delivers notifications to one kind of receiver."""

    #: "slack", "pagerduty" or "email"
    name: str

    async def send(self, out: Outgoing) -> dict[str, Any]:
        """Deliver ``out``; the receiver's answer. Raises ``DeliveryError``."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
