"""The checks every environment shares: Slack's ``auth.test`` and scopes, the PagerDuty key, SMTP, Prometheus."""

from __future__ import annotations

from adapters.preflight.net import smtp_greeting
from adapters.preflight.web import prometheus_query, slack_auth
from bot.core.preflight_rows import HISTORY_SCOPES, REQUIRED_SCOPES, Check, Context, PreflightRow


def shared_checks(ctx: Context) -> list[Check]:
    """Slack always; PagerDuty, SMTP and Prometheus when ops.yml configures them."""
    out: list[Check] = [("Slack", ctx.slack_api_url, lambda: slack(ctx))]
    alerting, monitoring = ctx.config.alerting, ctx.config.monitoring
    if alerting is not None and alerting.pagerduty is not None:
        out.append(("PagerDuty key", alerting.pagerduty.routing_key_env, lambda: pagerduty(ctx)))
    if alerting is not None and alerting.email is not None:
        out.append(("SMTP", alerting.email.smtp_url, lambda: smtp(ctx)))
    if monitoring is not None and monitoring.prometheus is not None:
        out.append(("Prometheus", monitoring.prometheus.url, lambda: prometheus(ctx)))
    return out


async def slack(ctx: Context) -> list[PreflightRow]:
    """``auth.test`` with the bot token, and the scopes Slack lists for it (``x-oauth-scopes``)."""
    target = ctx.slack_api_url
    if not ctx.slack_token:
        return [ctx.row(None, "Slack", target, "warning",
                        "SLACK_BOT_TOKEN is not set: only the local console works, not Slack")]  # fmt: skip
    auth = await slack_auth(ctx.slack_api_url, ctx.slack_token, timeout=ctx.timeout)
    who = f"bot {auth.user or auth.bot_id or '?'} in {auth.team or '?'}"
    if auth.scopes is None:
        return [ctx.row(None, "Slack", target, "warning",
                        f"auth.test: {who}; Slack did not list the token's scopes (no x-oauth-scopes), so they "
                        "cannot be checked")]  # fmt: skip
    lacking = [s for s in REQUIRED_SCOPES if s not in auth.scopes]
    if lacking:
        many = len(lacking) > 1
        minor = all(s in HISTORY_SCOPES for s in lacking)
        why = " (without it an alert post whose answer was lost may be posted twice)" if minor else ""
        return [ctx.row(None, "Slack", target, "warning" if minor else "critical",
                        f"auth.test: {who}; the token lacks the scope{'s' if many else ''} {', '.join(lacking)}{why}: "
                        f"add {'them' if many else 'it'} under OAuth & Permissions (as in app-manifest.yml) and "
                        "reinstall the app")]  # fmt: skip
    return [ctx.row(None, "Slack", target, "ok", f"auth.test: {who}; scopes {', '.join(REQUIRED_SCOPES)}")]


async def pagerduty(ctx: Context) -> list[PreflightRow]:
    """The routing key's environment variable is set (no event is sent)."""
    alerting = ctx.config.alerting
    assert alerting is not None and alerting.pagerduty is not None
    name = alerting.pagerduty.routing_key_env
    value = ctx.environ.get(name, "").strip()
    if not value:
        routes = (alerting.critical, alerting.warning, alerting.info)
        routed = any(r is not None and "pagerduty" in r.to for r in routes)
        why = "alerts routed to pagerduty cannot page anyone" if routed else "pagerduty cannot be used"
        return [ctx.row(None, "PagerDuty key", name, "critical" if routed else "warning", f"{name} is not set: {why}")]
    if len(value) != 32:
        return [
            ctx.row(
                None,
                "PagerDuty key",
                name,
                "warning",
                f"{name} is set but is {len(value)} characters long; an Events API v2 routing key has 32",
            )
        ]
    return [ctx.row(None, "PagerDuty key", name, "ok", f"{name} is set (32 characters; no event sent)")]


async def smtp(ctx: Context) -> list[PreflightRow]:
    """The SMTP server greets and accepts EHLO (no mail is sent, no password either)."""
    alerting = ctx.config.alerting
    assert alerting is not None and alerting.email is not None
    url = alerting.email.smtp_url
    greeting = (await smtp_greeting(url, timeout=ctx.timeout))[:80]
    has_user = "@" in url.partition("://")[2].split("/", 1)[0]
    if has_user and not ctx.environ.get("SMTP_PASSWORD"):
        return [ctx.row(None, "SMTP", url, "warning",
                        f"reachable ({greeting}), but SMTP_PASSWORD is not set for its user")]  # fmt: skip
    return [ctx.row(None, "SMTP", url, "ok", f"reachable: {greeting or '220'}; no mail sent")]


async def prometheus(ctx: Context) -> list[PreflightRow]:
    """Prometheus' query API answers an instant query."""
    monitoring = ctx.config.monitoring
    assert monitoring is not None and monitoring.prometheus is not None
    url = monitoring.prometheus.url
    kind = await prometheus_query(url, "1", timeout=min(ctx.timeout, monitoring.prometheus.timeout))
    return [ctx.row(None, "Prometheus", url, "ok", f"the query API answers (an instant query gave a {kind})")]
