"""The redactor's text rules, each linear in its input.

Every rule is a regular expression that starts with a literal (``://``, ``eyJ``, ``token``), so
Python's engine skips to candidates at the speed of a substring search, and that never gives back
what it consumed (possessive quantifiers, bounded look-behinds), so no input makes it backtrack:
``tokentoken...`` costs what any line of that length costs. Rules that need a decision (is this key
a secret's name?) return candidates to Python, which resumes after the candidate's name, never
before. Case-insensitive rules search the lower-cased text and cut the original at the same places.
Nothing here crosses a line end, so long texts are redacted in chunks of whole lines.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from bot.config.redact_names import decodes_to_credentials, is_compound_secret_name, is_secret_name

MASK = "[REDACTED]"
#: a text longer than this is redacted in chunks of whole lines (rules never cross a line end); between
#: chunks the thread lets others run (``time.sleep(0)``): the event loop never waits for a whole text
CHUNK = 32 * 1024
#: the characters of a key name (``db_password``, ``spring.datasource.password``, ``--db-pass``)
NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_.-"
#: how far back a key name is looked for from its secret-looking word
NAME_BACK = 64

Span = tuple[int, int, str]

#: a value: quoted (an unterminated quote runs to the line's end: a cut line still hides its secret), or a word
_VALUE = r"""(?P<val>[bru]?"(?:[^"\\\n]|\\.)*+"?|[bru]?'(?:[^'\\\n]|\\.)*+'?|[^\s"',;&<>(){}\[\]]++)"""
_SEP = r"""(?P<sep>["']?[ \t]*+(?:=>|:=|[:=])[ \t]*+|[ \t]++)"""
#: key words of secret names, grouped by first letter so each search starts at a literal
#: (``sk`` and ``pw`` only as a part of their own: not in ``task``, ``disk``, ``upward``)
_KEY_WORDS = ("p(?:ass|wd|w(?<![a-z]pw)(?![a-z])|rivate)", "s(?:ecret|igning|k(?<![a-z]sk)(?![a-z])|alt)", "token",
              "key", "dsn", "cred", "auth")  # fmt: skip
_KEY_VALUE = tuple(re.compile(rf"(?:{word})[a-z0-9_.-]*+(?:{_SEP}{_VALUE})?") for word in _KEY_WORDS)
AUTH_SCHEMES = ("basic", "bearer", "token", "digest", "negotiate", "ntlm", "aws4-hmac-sha256")

#: well-known token shapes (detect-secrets' detectors' patterns), masked whole wherever they appear. Most
#: start at their ``_`` or ``-`` (one search for each of these two characters finds them all); a named
#: group says which matched and how many characters before the anchor belong to the token.
_UNDERSCORE = re.compile(  # every prefix ends in p, t, k, c or m: other underscores are passed over at once
    r"_(?<=[ptkcm]_)(?:(?P<gh3>(?<=gh[pousr]_)[A-Za-z0-9]{30,}+)"  # GitHub
    r"|(?P<ghpat10>(?<=github_pat_)[A-Za-z0-9_]{40,}+)"
    r"|(?P<stripe2>(?<![A-Za-z0-9][sr]k_)(?<=[sr]k_)(?:live|test)_[A-Za-z0-9]{10,}+)"  # Stripe keys
    r"|(?P<whsec5>(?<=whsec_)[A-Za-z0-9+/=]{20,}+)|(?P<npm3>(?<=npm_)[A-Za-z0-9]{36}))"  # Stripe webhooks, npm
)
_DASH = re.compile(  # every prefix ends in a letter: the dashes of dates and numbers are passed over at once
    r"-(?<=[a-z]-)(?:(?P<xox4>(?<=xox[a-z]-)[A-Za-z0-9-]{6,}+)|(?P<xapp4>(?<=xapp-)[A-Za-z0-9-]{8,}+)"  # Slack tokens
    r"|(?P<gl4>(?<=gl(?:dt|rt|ft)-)[A-Za-z0-9_-]{20,}+)|(?P<gl5>(?<=gl(?:pat|ptt|cbt|imt)-)[A-Za-z0-9_-]{20,}+)"
    r"|(?P<gl6>(?<=glsoat-)[A-Za-z0-9_-]{20,}+)"  # GitLab
    r"|(?P<sk2>(?<![A-Za-z0-9]sk-)(?<=sk-)(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}+)"  # OpenAI
    r"|(?P<pypi4>(?<=pypi-)AgE[A-Za-z0-9_-]{50,}+))"
)
#: shapes found from their own first characters, replaced as they stand
SHAPES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p), r"\1" + MASK if p.startswith("(") else MASK)
    for p in (
        r"A(?:KIA|SIA|BIA|CCA|3T[A-Z0-9])[A-Z0-9]{16}(?![A-Za-z0-9])|AIza[0-9A-Za-z_-]{35}",  # AWS key id, Google
        # SendGrid, Twilio
        # SendGrid, Twilio
        r"S(?:G\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}|K(?<![A-Za-z0-9]SK)[0-9a-f]{32}(?![0-9A-Za-z]))",
        # JWT: one try per run of base64url (not at each "eyJ" inside one: ``eyJeyJ...`` stays linear)
        r"eyJ(?<![A-Za-z0-9_-]eyJ)[A-Za-z0-9_-]{8,}+\.[A-Za-z0-9_-]{8,}+(?:\.[A-Za-z0-9_+/=-]*+)?",
        r"(hooks\.slack\.com/)(?:services|workflows|triggers)/[A-Za-z0-9_/+-]++",  # Slack webhooks
    )
)
_PEM = re.compile(
    r"-----BEGIN (?:[A-Z0-9]++ )*?PRIVATE KEY-----.*?(?:-----END (?:[A-Z0-9]++ )*?PRIVATE KEY-----|\Z)", re.DOTALL
)
#: scheme://user:password@host: the password may hold '@' (the last '@' before the path ends it)
_URL = re.compile(r"://(?P<user>[^\s/?#@:\"'<>]*+):(?P<pw>[^\s/?#\"'<>]*)@")
_BEARER = re.compile(r"bearer[ \t]++(?P<val>[a-z0-9._~+/=-]{8,}+)")
_BASIC = re.compile(r"basic[ \t]++(?P<val>[a-z0-9+/]{8,}+={0,2})")
#: mysql's -pPASSWORD (psql's -p is a port: only after "mysql" or "mariadb" on the same line)
_DASH_P = re.compile(r"-p(?<![\w-]-p)(?P<val>[^\s\"'-][^\s\"']*+)")
MYSQL_BACK = 256


def splice(text: str, spans: list[Span]) -> str:
    """``text`` with each (start, end) replaced by its string; spans in order, not overlapping."""
    if not spans:
        return text
    out: list[str] = []
    last = 0
    for start, end, new in spans:
        out.append(text[last:start])
        out.append(new)
        last = end
    out.append(text[last:])
    return "".join(out)


def lowered(text: str) -> str:
    """``text`` lower-cased, the same length (only U+0130 lower-cases to two characters)."""
    low = text.lower()
    return low if len(low) == len(text) else text.replace("\u0130", "I").lower()


def mask_value(value: str) -> str:
    """A value masked, its quotes (and a b/r/u prefix) kept."""
    for q in ('"', "'"):
        i = value.find(q)
        if 0 <= i <= 1 and value.endswith(q) and len(value) > i + 1:
            return value if len(value) == i + 2 else value[: i + 1] + MASK + q  # an empty value stays empty
    return MASK


def _name_start(low: str, at: int, floor: int) -> int:
    lo = max(floor, at - NAME_BACK)
    back = low[lo:at]
    return at - (len(back) - len(back.rstrip(NAME_CHARS)))


def _header_end(low: str, start: int) -> int:
    """Where a header's value ends: the line's end, or a quote before it (never searched past the line)."""
    line_end = low.find("\n", start)
    line_end = len(low) if line_end < 0 else line_end
    quotes = [i for i in (low.find('"', start, line_end), low.find("'", start, line_end)) if i >= 0]
    return min(quotes, default=line_end)


def _key_values(text: str, low: str, pattern: re.Pattern[str]) -> list[Span]:
    spans: list[Span] = []
    pos = floor = 0
    while (m := pattern.search(low, pos)) is not None:
        sep = m.group("sep")
        if sep is None or m.group("val") is None:
            pos = m.end()
            continue
        name_end = m.start("sep")
        name = text[_name_start(low, m.start(), floor) : name_end]
        vstart, vend = m.span("val")
        value = text[vstart:vend]
        assigned = "=" in sep or ":" in sep
        pos = name_end
        if value.startswith(MASK):
            continue
        if name.lower().endswith("authorization") and assigned:
            scheme = low[vstart:vend]
            if scheme in AUTH_SCHEMES and low.startswith(" ", vend):
                vstart = vend + 1
            if not value.startswith(('"', "'")):
                vend = _header_end(low, vstart)
                spans.append((vstart, vend, MASK))
                pos = floor = vend
                continue
        if not is_secret_name(name) or (not assigned and name.endswith(".")):  # "set THE_KEY. Then": prose
            continue
        if assigned or name.startswith("-") or (name == name.upper() and is_compound_secret_name(name)):
            spans.append((vstart, vend, mask_value(value)))
            pos = floor = vend
    return spans


def _sub_spans(text: str, low: str, pattern: re.Pattern[str], keep: Callable[[re.Match[str]], bool]) -> list[Span]:
    return [(m.start("val"), m.end("val"), MASK) for m in pattern.finditer(low) if keep(m)]


#: a text each rule needs (``in`` finds it at memchr speed, several times faster than a regex's own search); a
#: single character is found fastest (memchr), so a rare one is looked for before the longer text it is in
_SHAPE_NEEDS = ("A", "S", "J", "hooks.slack.com/")
_SHAPE_THEN = (None, None, "eyJ", None)
_KEY_NEEDS = (None, None, "token", "key", "dsn", "cred", "auth")


def redact_chunk(text: str) -> str:
    """One chunk (whole lines) with token shapes, URL passwords, auth headers and secret key values masked."""
    for (pattern, replacement), needs, then in zip(SHAPES, _SHAPE_NEEDS, _SHAPE_THEN, strict=True):
        if needs in text and (then is None or then in text):
            text = pattern.sub(replacement, text)
    for anchored, needs in ((_UNDERSCORE, "_"), (_DASH, "-")):
        if needs in text:
            text = splice(text, _anchored(text, anchored))
    if "://" in text:
        text = _URL.sub(lambda m: f"://{m.group('user')}:{MASK}@", text)
    low = lowered(text)
    spans = _sub_spans(text, low, _BEARER, lambda m: True) if "bearer" in low else []
    if spans:
        text = splice(text, spans)
        low = lowered(text)
    spans = (
        _sub_spans(text, low, _BASIC, lambda m: decodes_to_credentials(text[slice(*m.span(1))]))
        if "basic" in low
        else []
    )
    if spans:
        text = splice(text, spans)
        low = lowered(text)
    for pattern, word in zip(_KEY_VALUE, _KEY_NEEDS, strict=True):
        if word is not None and word not in low:
            continue
        spans = _key_values(text, low, pattern)
        if spans:
            text = splice(text, spans)
            low = lowered(text)
    if (("q" in low and "mysql" in low) or "mariadb" in low) and "-p" in low:  # "q" is rare: one memchr
        text = splice(text, _sub_spans(text, low, _DASH_P, lambda m: _after_mysql(low, m.start())))
    return text


def _anchored(text: str, pattern: re.Pattern[str]) -> list[Span]:
    spans: list[Span] = []
    for m in pattern.finditer(text):
        before = int((m.lastgroup or "x0").lstrip("abcdefghijklmnopqrstuvwxyz"))
        spans.append((m.start() - before, m.end(), MASK))
    return spans


def _after_mysql(low: str, at: int) -> bool:
    lo = max(low.rfind("\n", 0, at) + 1, at - MYSQL_BACK)
    return low.find("mysql", lo, at) >= 0 or low.find("mariadb", lo, at) >= 0


def redact_text(text: str) -> str:
    """``text`` with every rule applied: PEM private keys whole, then chunk by chunk."""
    if "-----BEGIN" in text:
        text = _PEM.sub(MASK, text)
    if len(text) <= CHUNK:
        return redact_chunk(text)
    parts: list[str] = []
    pos = 0
    while pos < len(text):
        cut = text.find("\n", pos + CHUNK)
        end = len(text) if cut < 0 else cut + 1
        parts.append(redact_chunk(text[pos:end]))
        pos = end
        time.sleep(0)  # give the GIL to a waiting thread (the event loop) between chunks
    return "".join(parts)
