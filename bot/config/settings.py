"""The process's settings, from environment variables (CONTRACT.md, "Environment")."""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Settings(BaseModel):
    """Environment variables opsbot reads; command-line options override some of them.

    ``Settings()`` reads the process's environment (a variable's name in any case), and keyword
    arguments override it. A plain model rather than pydantic-settings' BaseSettings, which costs
    15-25 ms of imports at every start for what these lines do.
    """

    model_config = ConfigDict(extra="ignore", validate_default=True)

    def __init__(self, **values: Any) -> None:
        fields = type(self).model_fields
        found = {name.lower(): value for name, value in os.environ.items() if name.lower() in fields}
        super().__init__(**{**found, **values})

    opsbot_config: str = Field("./ops.yml", description="path of ops.yml")
    opsbot_db: str = Field("./opsbot.db", description="path of the SQLite database")
    slack_bot_token: str | None = None
    slack_signing_secret: str | None = None
    slack_app_token: str | None = None
    slack_api_url: str = "https://slack.com/api/"
    port: int = 3000
    opsbot_host: str = Field("0.0.0.0", description="address the HTTP server binds")  # noqa: S104
    opsbot_drain_seconds: float = Field(60.0, description="how long SIGTERM waits for running procedures")
    log_level: str = "info"
    opsbot_http_read_timeout: float = Field(
        5.0, gt=0, le=300, description="seconds a client has to send a request's head, and then its body"
    )
    opsbot_http_max_connections: int = Field(
        512, ge=1, description="HTTP connections open at once (lowered to leave a quarter of the open-file limit)"
    )
    opsbot_scheduler: bool = Field(True, description="run ops.yml's schedules in `opsbot serve` (off: never)")
    pagerduty_events_url: str | None = Field(None, description="PagerDuty Events API v2 endpoint (tests, proxies)")
    smtp_password: str | None = Field(None, description="password of the user in alerting.email.smtp_url")
    opsbot_slack_silent_after: float = Field(60.0, description="reconnect a Socket Mode socket silent this long (s)")
    opsbot_slack_unreachable_after: float = Field(120.0, description="/health is 503 after Slack is gone this long (s)")

    def secrets(self) -> list[str]:
        """The bot's own secrets, which the redactor must never let through."""
        return [s for s in (self.slack_bot_token, self.slack_signing_secret, self.slack_app_token,
                            self.smtp_password) if s]  # fmt: skip
