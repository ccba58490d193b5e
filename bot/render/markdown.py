"""Small pieces of Markdown for the exported guide: tables, cells, code, TODO lines, plain mentions."""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

#: how a value the guide cannot know is written: visible, never invented
TODO = "TODO:"


def todo(what: str) -> str:
    """A visible placeholder: ``TODO: what``."""
    return f"{TODO} {what}"


def plain(text: str) -> str:
    """Slack markup as plain text: ``<@U1>`` -> ``@U1``, ``<!subteam^S1>`` -> ``@S1``, ``<#C1|ops>`` -> ``#ops``,
    ``<url|label>`` -> ``label (url)``."""
    text = re.sub(r"<!subteam\^([A-Z0-9]+)(?:\|@?([^>]*))?>", lambda m: f"@{m.group(2) or m.group(1)}", text)
    text = re.sub(r"<@([UW][A-Z0-9]+)(?:\|([^>]*))?>", lambda m: f"@{m.group(2) or m.group(1)}", text)
    text = re.sub(r"<#(C[A-Z0-9]+)(?:\|([^>]*))?>", lambda m: f"#{m.group(2) or m.group(1)}", text)
    text = re.sub(r"<!(here|channel|everyone)>", r"@\1", text)
    return re.sub(r"<(https?://[^|>]+)\|([^>]+)>", r"\2 (\1)", text)


def cell(text: object) -> str:
    """A table cell: one line, ``|`` escaped, Slack markup made plain, ``<`` not read as HTML."""
    parts = plain(" ".join(str(text).split())).replace("|", "\\|").split("`")
    # outside code spans (the even parts), ``<`` would start an HTML tag; inside them it is shown as is
    value = "`".join(p.replace("<", "&lt;") if i % 2 == 0 else p for i, p in enumerate(parts))
    return value or "-"


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """A Markdown table (the header row as given, then a separator, then the rows)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("-" * (len(h) + 2) for h in header) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return lines


def code(text: str) -> str:
    """Inline code, with a fence long enough for backticks inside."""
    fence = "``" if "`" in text else "`"
    return f"{fence}{text}{fence}"


def argv(command: Sequence[str]) -> str:
    """An argv as a person would type it (quoted where needed); opsbot itself never runs a shell."""
    return shlex.join(command)


def block(lines: Sequence[str], lang: str = "") -> list[str]:
    """A fenced code block."""
    return [f"```{lang}", *lines, "```"]


def duration(seconds: float) -> str:
    """Seconds as ops.yml writes them: 90 -> 1m30s, 86400 -> 1d."""
    out, rest = "", round(seconds, 3)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if rest >= size:
            out += f"{int(rest // size)}{unit}"
            rest -= (rest // size) * size
    if rest:
        out += f"{rest:g}s" if rest >= 1 or not out else f"{rest * 1000:g}ms"
    return out or "0s"
