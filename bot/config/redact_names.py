"""Which names hold secrets, and which forms of a secret value must be masked.

Shared by the redactor's two uses of names: an environment variable's name (``DB_PASS``: its value
is learnt as a secret and shown masked by ``config``) and a key in free text (``"password": "..."``,
``--db-password x``, ``PGPASSWORD x``).
"""

from __future__ import annotations

import base64
import binascii
import html
import json
import re
from functools import lru_cache
from urllib.parse import quote, quote_plus, unquote

#: a name's parts that are secrets on their own (``api_key``, ``STRIPE_SK``, ``JWT_SIGNING``)
EXACT_PARTS = frozenset(
    "pass passwd password passphrase passcode pwd pw secret secrets token tokens key keys privkey apikey "
    "dsn signing credential credentials creds private auth sk salt".split()
)
#: a part ending like this is a secret (``pgpassword``, ``dbpass``, ``accesstoken``, ``apikey``)
ENDINGS = ("password", "passwd", "passphrase", "pass", "pwd", "secret", "token", "key", "dsn", "credential",
           "credentials")  # fmt: skip
#: a part starting like this is a secret (``passwordhash``, ``secretvalue``, ``privatekey``)
STARTS = ("password", "passwd", "secret", "credential", "private", "signing", "apikey")
#: words that only look like the above
NOT_SECRET_PARTS = frozenset(
    "bypass compass surpass overpass trespass monkey donkey turkey hockey jockey whiskey keyboard".split()
)
#: a last part that makes the name describe a secret rather than hold it (``DB_PASSWORD_FILE``,
#: ``TOKEN_TTL``, ``PASSWORD_MIN_LENGTH``, ``API_KEY_ID``)
ABOUT_PARTS = frozenset(
    "file path dir ttl timeout expiry expires expiration length len min max size count enabled enable "
    "disabled port host hostname user username name type algorithm alg header interval version mode url "
    "uri endpoint id ids prefix location format policy rotation stdin required".split()
)
#: environment variables that are never secrets whatever they contain (``PWD`` is the working directory)
NOT_SECRET_NAMES = frozenset({"PWD", "OLDPWD"})

_PARTS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")

#: values shorter than this are not learnt (they would mask ordinary words)
MIN_SECRET_LENGTH = 4
#: values that are settings, never secrets, even under a secret-looking name
NOT_SECRET_VALUES = frozenset("true false yes no on off none null nil enabled disabled required".split())
#: base64 forms are looked for only for secrets at least this long (shorter cores are too common)
MIN_BASE64 = 6


def name_parts(name: str) -> list[str]:
    """``name`` split at non-letters and camelCase humps, lower-cased: ``dbPassword_FILE`` -> db, password, file."""
    return [p.lower() for p in _PARTS.findall(name)]


@lru_cache(maxsize=8192)
def is_secret_name(name: str) -> bool:
    """True when a variable or key of this name holds a secret (PASS, PWD, SECRET, TOKEN, KEY, DSN, ...)."""
    if name.upper() in NOT_SECRET_NAMES:
        return False
    parts = name_parts(name)
    if not parts or parts[-1] in ABOUT_PARTS:
        return False
    for part in parts:
        if part in NOT_SECRET_PARTS:
            continue
        if part in EXACT_PARTS or part.endswith(ENDINGS) or part.startswith(STARTS):
            return True
    return False


def is_compound_secret_name(name: str) -> bool:
    """A secret name that is more than a bare keyword (``PGPASSWORD``, ``DB_PASS``; not ``PASSWORD``)."""
    parts = name_parts(name)
    return is_secret_name(name) and (len(parts) > 1 or parts[0] not in EXACT_PARTS)


def learnable(value: str | None) -> bool:
    """True when ``value`` may be learnt as a secret: long enough, and not a setting like ``true``."""
    if not value or len(value.strip()) < MIN_SECRET_LENGTH:
        return False
    if value.strip().lower() in NOT_SECRET_VALUES:
        return False
    return not (value.isdigit() and len(value) < 6)  # a port or a count, not a PIN


def url_secrets(value: str) -> list[str]:
    """The password (and, for DSNs like ``https://KEY@sentry.io/1``, the user part) of URLs in ``value``."""
    found: list[str] = []
    for word in value.split():
        at = word.find("://")
        if at < 0 or "@" not in word:
            continue
        authority = re.split(r"[/?#]", word[at + 3 :], maxsplit=1)[0]
        userinfo = authority.rpartition("@")[0]
        user, colon, password = userinfo.partition(":")
        for secret in (password, unquote(password)) if colon else (user, unquote(user)):
            if learnable(secret):
                found.append(secret)
    return found


def _base64_cores(raw: bytes) -> list[str]:
    """Substrings that the base64 encoding of any text containing ``raw`` contains, whatever its offset."""
    cores: list[str] = []
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw).decode()
        start = 4 if shift else 0
        end = len(encoded) - (4 if (shift + len(raw)) % 3 else 0)
        core = encoded[start:end]
        if len(core) >= 8:
            cores.append(core)
            cores.append(core.replace("+", "-").replace("/", "_"))  # the URL-safe alphabet
    return cores


def variants(secret: str) -> set[str]:
    """The forms ``secret`` takes in logs and messages: as is, URL-encoded, HTML/JSON-escaped, base64."""
    forms = {secret, quote(secret, safe=""), quote_plus(secret, safe=""), quote(secret),
             html.escape(secret, quote=False), json.dumps(secret)[1:-1]}  # fmt: skip
    raw = secret.encode()
    if len(raw) >= MIN_BASE64:
        forms.update(_base64_cores(raw))
    return {f for f in forms if len(f) >= MIN_SECRET_LENGTH}


def decodes_to_credentials(value: str) -> bool:
    """True when ``value`` is base64 of ``user:password`` (an ``Authorization: Basic`` value)."""
    try:
        decoded = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    return b":" in decoded
