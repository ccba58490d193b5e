"""The log format: one line per record, whatever text a user or a library puts in it."""

from __future__ import annotations

import io
import logging
import re

import pytest

from bot.core.logs import GuideFormatter, escape_control, request_id

LINE = re.compile(
    r"^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\] \[(DEBUG|INFO|WARNING|ERROR|CRITICAL)\] \[[^\]]*\] \[.*\]$"
)
FORGED = "[2026-01-01T00:00:00.000Z] [INFO] [-] [deploy prod v9 approved by U0ADMIN]"
#: every way a line can be ended or a terminal repainted
BREAKERS = ["\n", "\r", "\r\n", "\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x00"]
HOSTILE = [b + FORGED for b in BREAKERS] + ["\x1b[2K\x1b[1A" + FORGED, "\u202e" + FORGED, "a\tb\x7fc\x9bd"]


@pytest.fixture
def capture():
    """A logger writing through the guide's formatter (with a redactor) into a buffer."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(GuideFormatter(lambda text: text.replace("hunter2", "[REDACTED]")))
    logger = logging.getLogger("opsbot.test-logs")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    yield logger, stream
    logger.handlers[:] = []


def lines(stream: io.StringIO) -> list[str]:
    # str.splitlines breaks on every separator a log tool might honour (\x1c, \x85, \u2028, ...)
    return stream.getvalue().splitlines()


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_text_never_makes_a_line_of_its_own(capture, hostile):
    logger, stream = capture
    logger.debug("audit 7 requested %s", hostile)  # in an argument
    logger.info("/ops " + hostile.replace("%", "%%"))  # in the message itself
    try:
        raise ValueError(hostile)
    except ValueError:
        logger.exception("failed: %s", hostile)  # in the exception and its traceback
    token = request_id.set(hostile)
    try:
        logger.warning("with a hostile request id")
    finally:
        request_id.reset(token)
    logger.error("extra %s", "x", extra={"request_id": hostile})
    out = lines(stream)
    assert len(out) == 5, out
    assert all(LINE.match(line) for line in out), out
    escaped = escape_control(hostile)
    assert all(escaped in line for line in out[:4]), out
    raw = stream.getvalue()
    assert raw.count("\n") == 5  # the handler's own line ends, nothing else
    for char in set(hostile) - set(escape_control(hostile)) - {"\n"}:
        assert char not in raw


def test_escapes_are_readable_and_plain_text_is_kept():
    assert escape_control("a\nb\rc\td") == "a\\nb\\rc\\td"
    assert escape_control("\x1b[31mred") == "\\x1b[31mred"
    assert escape_control("x\u2028y\u2029z\x85") == "x\\u2028y\\u2029z\\x85"
    assert escape_control("\u202eevil") == "\\u202eevil"
    plain = "Zürich 東京 ✅ 👩‍💻 C:\\path [brackets] 100%"
    assert escape_control(plain) == plain


def test_a_traceback_stays_in_its_record_and_is_redacted(capture):
    logger, stream = capture
    try:
        raise RuntimeError("auth failed for app using hunter2")
    except RuntimeError:
        logger.exception("procedure failed")
    [line] = lines(stream)
    assert LINE.match(line)
    assert "procedure failed\\nTraceback (most recent call last):\\n" in line
    assert "RuntimeError: auth failed for app using [REDACTED]" in line and "hunter2" not in line
