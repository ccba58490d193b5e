"""Notifiers: where alerts go, behind the ``Notifier`` protocol of ``adapters.notify.base``:
``SlackNotifier`` (the Web API over httpx), ``PagerDutyNotifier`` (Events API v2) and ``SmtpNotifier``.

May import adapters' interfaces, models and errors, and httpx; never bot or commands.
"""
