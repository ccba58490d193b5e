"""Slack's markup as plain text, for the doors that print (console, command line, attached files).

ops.yml may hold Slack markup (an escalation contact ``<!subteam^S0ONCALL>`` or ``<@U0SENIOR>``):
Slack shows it as a mention, a terminal would show the brackets. ``plain`` turns each piece of markup
into what Slack would show: ``@name`` / ``#name`` when the markup carries the name (``<@U0SENIOR|ana>``),
the id when it does not (``@U0SENIOR``), ``@here`` for the special mentions, a link as its text and
address. Text that only looks alike (``<env>`` in a usage line) is left as it is.
"""

from __future__ import annotations

import re

#: ``<@U123>``, ``<#C123|name>``, ``<!subteam^S123|@team>``, ``<!here>``, ``<!date^...|fallback>``,
#: ``<https://...|text>``, ``<mailto:...>``: Slack's angle-bracket markup
MARKUP = re.compile(
    r"<(?P<kind>[@#!]|(?=(?:https?|mailto|ftp|slack|tel):))"
    r"(?P<body>[^<>|\s]+)(?:\|(?P<label>[^<>]*))?>"
)
SPECIAL = ("here", "channel", "everyone")


def _one(match: re.Match[str]) -> str:
    kind, body, label = match["kind"], match["body"], match["label"]
    if kind in ("@", "#"):
        name = (label or body).lstrip(kind)
        return f"{kind}{name}"
    if kind == "!":
        command, _, rest = body.partition("^")
        if command == "subteam":
            return "@" + (label or rest).lstrip("@")
        if command in SPECIAL:
            return f"@{command}"
        return label if label else match[0]  # a date or an unknown command: its fallback text
    # a link: its text, and where it goes when that is not the text itself
    address = body.removeprefix("mailto:")
    return address if not label or label == address else f"{label} ({address})"


def plain(text: str) -> str:
    """``text`` with Slack's mention, channel and link markup as plain text (see the module's docstring)."""
    return MARKUP.sub(_one, text)
