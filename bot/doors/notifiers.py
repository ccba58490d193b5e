"""The notifiers of ``opsbot serve``, from the settings and ``alerting``: Slack always, PagerDuty and SMTP when set."""

from __future__ import annotations

import os

from adapters.notify.base import Notifier
from adapters.notify.pagerduty import PagerDutyNotifier
from adapters.notify.slack import SlackNotifier
from adapters.notify.smtp import SmtpNotifier
from bot.core.app import App


def build_notifiers(app: App) -> dict[str, Notifier]:
    """Slack (the bot token), PagerDuty (``alerting.pagerduty``) and email (``alerting.email``)."""
    settings, alerting = app.settings, app.config.alerting
    notifiers: dict[str, Notifier] = {}
    if settings.slack_bot_token:
        notifiers["slack"] = SlackNotifier(settings.slack_bot_token, settings.slack_api_url)
    if alerting is not None and alerting.pagerduty is not None:
        name = alerting.pagerduty.routing_key_env
        key = os.environ.get(name) or None
        if key:
            app.redactor.add([key])
        notifiers["pagerduty"] = PagerDutyNotifier(key, settings.pagerduty_events_url, key_name=name)
    if alerting is not None and alerting.email is not None:
        email = alerting.email
        notifiers["email"] = SmtpNotifier(email.smtp_url, email.from_, password=settings.smtp_password)
    return notifiers
