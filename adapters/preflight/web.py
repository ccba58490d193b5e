"""HTTP APIs of the outside parties: Slack's ``auth.test`` (with the token's scopes) and Prometheus' query API."""

from __future__ import annotations

import httpx
from pydantic import BaseModel

from adapters.errors import AdapterError, AdapterTimeout, EngineUnavailable


class SlackAuth(BaseModel):
    """Who the token is (``auth.test``) and the scopes Slack says it has (``x-oauth-scopes``)."""

    team: str = ""
    user: str = ""
    bot_id: str = ""
    #: None when Slack did not send the header
    scopes: list[str] | None = None


def _failed(what: str, exc: httpx.HTTPError, timeout: float) -> AdapterError:
    if isinstance(exc, httpx.TimeoutException):
        return AdapterTimeout(f"{what} did not answer within {timeout:g}s")
    if isinstance(exc, httpx.ConnectError):
        return EngineUnavailable(f"{what} does not answer (cannot connect)")
    return AdapterError(f"{what} failed: {type(exc).__name__}")


async def slack_auth(api_url: str, token: str, *, timeout: float) -> SlackAuth:
    """Call ``auth.test`` with ``token``; ``AdapterError`` with Slack's error code when it is refused."""
    url = api_url.rstrip("/") + "/auth.test"
    try:
        async with httpx.AsyncClient(timeout=timeout) as client:
            response = await client.post(url, headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        raise _failed(f"Slack's Web API at {api_url}", exc, timeout) from exc
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise AdapterError(f"Slack's Web API at {api_url} answered HTTP {response.status_code} without JSON")
    if not body.get("ok"):
        raise AdapterError(f"auth.test refused the bot token ({body.get('error') or f'HTTP {response.status_code}'})")
    header = response.headers.get("x-oauth-scopes")
    scopes = [s.strip() for s in header.split(",") if s.strip()] if header is not None else None
    return SlackAuth(
        team=str(body.get("team") or ""), user=str(body.get("user") or ""), bot_id=str(body.get("bot_id") or ""),
        scopes=scopes,
    )  # fmt: skip


async def prometheus_query(url: str, query: str, *, timeout: float) -> str:
    """Run an instant ``query`` through Prometheus' HTTP API; the result type it answered (``vector``...)."""
    endpoint = url.rstrip("/") + "/api/v1/query"
    try:
        async with httpx.AsyncClient(timeout=timeout) as client:
            response = await client.get(endpoint, params={"query": query})
    except httpx.HTTPError as exc:
        raise _failed(f"Prometheus at {url}", exc, timeout) from exc
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or body.get("status") != "success":
        said = body.get("error") if isinstance(body, dict) else None
        raise AdapterError(f"Prometheus at {url} answered HTTP {response.status_code}" + (f": {said}" if said else
                           " without its API's JSON"))  # fmt: skip
    data = body.get("data")
    return str(data.get("resultType") if isinstance(data, dict) else "?")
