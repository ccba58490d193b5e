"""``PagerDutyNotifier``: PagerDuty Events API v2 (``POST /v2/enqueue``), on httpx.

The body is the event without its routing key (``event_action``, ``dedup_key``, ``payload``); the key is
added here, from the environment variable ``alerting.pagerduty.routing_key_env`` names, at send time,
so that it is never stored. PagerDuty deduplicates on ``dedup_key``, so a resend is harmless. 202 is
delivered; 429 and 5xx are worth trying again; 400 (a bad routing key, a malformed event) is permanent.
"""

from __future__ import annotations

from typing import Any

import httpx

from adapters.notify.base import DeliveryError, Outgoing

DEFAULT_URL = "https://events.pagerduty.com/v2/enqueue"
ACTIONS = frozenset({"trigger", "acknowledge", "resolve"})


class PagerDutyNotifier:
    """Events to one endpoint (``PAGERDUTY_EVENTS_URL``, default PagerDuty's) with one routing key."""

    name = "pagerduty"

    def __init__(self, routing_key: str | None, url: str | None = None, *, key_name: str = "PAGERDUTY_ROUTING_KEY",
                 timeout: float = 10.0, transport: httpx.AsyncBaseTransport | None = None) -> None:  # fmt: skip
        self.routing_key = routing_key
        self.key_name = key_name
        self.url = url or DEFAULT_URL
        self._client = httpx.AsyncClient(transport=transport, timeout=timeout,
                                         headers={"User-Agent": "opsbot-alerts"})  # fmt: skip

    async def send(self, out: Outgoing) -> dict[str, Any]:
        """Enqueue the event; PagerDuty's answer (``dedup_key``)."""
        if not self.routing_key:
            raise DeliveryError(f"{self.key_name} is not set: PagerDuty needs its routing key", permanent=True,
                                code="no_routing_key")  # fmt: skip
        event = {"routing_key": self.routing_key, **out.body}
        try:
            response = await self._client.post(self.url, json=event)
        except httpx.TimeoutException as exc:
            raise DeliveryError("PagerDuty did not answer in time", code="timeout") from exc
        except httpx.HTTPError as exc:
            raise DeliveryError(f"PagerDuty cannot be reached ({type(exc).__name__})", code="unreachable") from exc
        status = response.status_code
        if status == 429:
            wait = response.headers.get("Retry-After", "")
            after = float(wait) if wait.isdigit() else None
            raise DeliveryError("PagerDuty rate limit (429)", retry_after=after, code="http_429")
        if status >= 500:
            raise DeliveryError(f"PagerDuty answered HTTP {status}", code="http_5xx")
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if status == 400:
            errors = "; ".join(str(e) for e in (answer.get("errors") or [])) or str(answer.get("message") or "")
            raise DeliveryError(f"PagerDuty refused the event (HTTP 400: {errors[:300] or 'bad request'}); check "
                                f"{self.key_name}", permanent=True, code="http_400")  # fmt: skip
        if not 200 <= status < 300:
            raise DeliveryError(f"PagerDuty answered HTTP {status}", permanent=status in (401, 403, 404),
                                code=f"http_{status}")  # fmt: skip
        return {"dedup_key": answer.get("dedup_key"), "status": answer.get("status")}

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()
