"""Slack's mrkdwn and Block Kit basics: limits, escaping, mentions, and the pieces of a message.

Shared by every Block Kit renderer (``bot.slack.blocks``, ``bot.slack.blocks_backup``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

MAX_BLOCKS = 50
MAX_SECTION = 3000
MAX_HEADER = 150
#: chat.update fails with msg_too_long above 4,000 characters of top-level text
MAX_FALLBACK_TEXT = 3000
#: total characters of block text we allow before summarising (Slack truncates at 40,000)
MAX_MESSAGE = 30000
ICON = {"ok": ":large_green_circle:", "warning": ":warning:", "critical": ":red_circle:"}


def esc(text: str) -> str:
    """Escape text for Slack: &, < and > (so that nothing a user typed or a service logged becomes a
    mention, a link or a broadcast). The one helper: every user- or engine-supplied string in every
    mrkdwn text and every top-level ``text`` goes through it. Not escaped: ``plain_text`` (headers,
    buttons: Slack never parses markup there), mentions we build from checked user ids (``mention``),
    and escalation contacts, which ops.yml writes as mentions on purpose."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def cut(text: str, limit: int) -> str:
    """Escaped ``text`` cut to ``limit`` characters, never inside an entity (``&amp;``, ``&lt;``, ``&gt;``)."""
    if len(text) <= limit:
        return text
    text = text[:limit]
    amp = text.rfind("&", max(0, limit - 4))
    return text[:amp] if amp >= 0 and ";" not in text[amp:] else text


def code(text: str) -> str:
    """Inline code, with backquotes that would end it replaced."""
    return "`" + esc(text).replace("`", "'") + "`"


@dataclass
class Rendered:
    """The pieces of a message before packing."""

    header: str
    sections: list[str] = field(default_factory=list)
    context: str = ""
    #: set when the sections are a summary of something longer, which should be attached as a file
    attach: bool = False


@dataclass
class Message:
    """A Slack message: top-level text (notifications, fallback) and blocks; maybe a file to attach."""

    text: str
    blocks: list[dict[str, Any]]
    #: (filename, content) of the whole output when the message only summarises it
    file: tuple[str, str] | None = None
    #: (filename, its lines given a redaction function) of a file too big to hold: written and uploaded as read
    lines: tuple[str, Callable[[Callable[[str], str]], Iterator[str]]] | None = None


def mention(actor: str) -> str:
    """A Slack mention for a user id; other identities (``local:alice``) as plain text."""
    if actor[:1] in "UW" and actor.isalnum():
        return f"<@{actor}>"
    return esc(actor)
