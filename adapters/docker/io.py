"""Reading the Docker engine's answers: image tags, times, stats, multiplexed streams, log lines.

Pure functions and small classes with no SDK in them, shared by the Docker runtimes.
"""

from __future__ import annotations

import collections
import re
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from adapters.docker.spool import LineSpool

#: a log line is cut at this many characters
MAX_LINE = 4096
#: at most this many characters of log lines are kept per read (the newest ones): 5000 lines of 4 KiB
#: would be 20 MB, held, redacted and rendered several times over by every concurrent request
MAX_LOG_TEXT = 2 * 2**20
#: an exec's output is cut at this many bytes
MAX_EXEC_OUTPUT = 64 * 1024
#: streams are read this many bytes at a time
BLOCK = 64 * 1024


def image_version(image: str) -> str | None:
    """The tag of an image reference: ``shop/api:1.4.2`` -> ``1.4.2``.

    None when there is no tag: ``shop/api``, ``reg:5000/shop/api`` (a registry port is not a tag),
    ``shop/api@sha256:...`` (a digest) or an image id.
    """
    name = image.split("@", 1)[0]
    if name.startswith("sha256:"):
        return None
    _, colon, tag = name.rsplit("/", 1)[-1].rpartition(":")
    return tag if colon and tag else None


def parse_time(value: str | None) -> datetime | None:
    """Docker's RFC 3339 times (with nanoseconds) as aware UTC datetimes; None for the zero time."""
    if not value or value.startswith("0001-"):
        return None
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?$", value)
    if not match:
        return None
    base, fraction, zone = match.groups()
    micro = (fraction or "")[:6].ljust(6, "0")
    offset = "+00:00" if zone in (None, "Z") else zone
    return datetime.fromisoformat(f"{base}.{micro}{offset}").astimezone(UTC)


def time_key(stamp: str) -> str:
    """A sortable form of an engine timestamp (the engine drops trailing zeros of the fraction)."""
    base, _, rest = stamp.partition(".")
    return f"{base}.{rest.rstrip('Z').ljust(9, '0')}" if rest else f"{base.rstrip('Z')}.000000000"


def cpu_percent(sample: dict[str, Any]) -> float | None:
    """CPU use of one stats sample, by the docker CLI's formula (100% = one CPU busy)."""
    try:
        cpu, pre = sample["cpu_stats"], sample.get("precpu_stats") or {}
        delta = cpu["cpu_usage"]["total_usage"] - (pre.get("cpu_usage") or {}).get("total_usage", 0)
        system = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
        cpus = cpu.get("online_cpus") or len(cpu["cpu_usage"].get("percpu_usage") or []) or 1
    except (KeyError, TypeError):
        return None
    return round(delta / system * cpus * 100.0, 2) if system > 0 and delta > 0 else 0.0


def memory_usage(sample: dict[str, Any]) -> tuple[float | None, int | None]:
    """(percent of the limit, bytes) without the page cache, by the docker CLI's formula."""
    mem = sample.get("memory_stats") or {}
    usage, limit = mem.get("usage"), mem.get("limit")
    if usage is None or not limit:
        return None, None
    detail = mem.get("stats") or {}
    for key in ("total_inactive_file", "inactive_file", "cache"):  # cgroup v1, v2, old engines
        if key in detail and detail[key] < usage:
            usage -= detail[key]
            break
    return round(usage / limit * 100.0, 2), int(usage)


def frames(raw: Any, *, tty: bool, stop: threading.Event) -> Iterator[tuple[int, bytes]]:
    """(stream, payload) pairs of an engine stream: 1 stdout, 2 stderr (a TTY stream is all 1).

    Without a TTY the engine multiplexes: an 8-byte header (stream, 3 zero bytes, big-endian length)
    before each payload. Reads 64 KiB at a time; ends early when ``stop`` is set.
    """
    read = getattr(raw, "read1", raw.read)
    pending = bytearray()
    while not stop.is_set():
        block = read(BLOCK)
        if not block:
            return
        if tty:
            yield 1, bytes(block)
            continue
        pending += block
        pos = 0
        while len(pending) - pos >= 8:
            length = int.from_bytes(pending[pos + 4 : pos + 8], "big")
            if len(pending) - pos - 8 < length:
                break
            yield pending[pos], bytes(pending[pos + 8 : pos + 8 + length])
            pos += 8 + length
        del pending[:pos]


def newest_within(lines: Sequence[tuple[Any, str]], budget: int = MAX_LOG_TEXT) -> list[str]:
    """The texts of the newest ``lines`` (oldest first) that fit in ``budget`` characters (at least one)."""
    total, start = 0, len(lines)
    while start > 0 and (total + len(lines[start - 1][1]) <= budget or start == len(lines)):
        start -= 1
        total += len(lines[start][1])
    return [text for _, text in lines[start:]]


class LineReader:
    """Splits stream payloads into lines and keeps the newest ``keep`` (matching ``grep``) ones.

    Each line arrives as ``<timestamp> <text>``; kept as ``(timestamp, prefix + text)``, decoded
    (invalid UTF-8 replaced) and cut at ``MAX_LINE`` characters. Memory: ``keep`` lines, at most
    ``budget`` characters of them (the oldest go first), plus one partial line per stream.
    """

    def __init__(
        self,
        keep: int,
        grep: str | None,
        *,
        prefix: str = "",
        budget: int = MAX_LOG_TEXT,
        spool: LineSpool | None = None,
    ) -> None:
        #: with a spool, kept lines go there (on disk, bounded by ``keep``), not to memory
        self.spool = spool
        self.kept: collections.deque[tuple[str, str]] = collections.deque()
        self.keep = keep
        self.budget = budget
        #: characters of the kept lines
        self.size = 0
        self.needle = grep.lower() if grep else None
        self.prefix = prefix
        self.partial: dict[int, bytes] = {}
        self.skipping: set[int] = set()

    def feed(self, stream: int, payload: bytes) -> None:
        """Take one payload of ``stream``."""
        if stream in self.skipping:  # the rest of a line that was cut
            end = payload.find(b"\n")
            if end < 0:
                return
            self.skipping.discard(stream)
            payload = payload[end + 1 :]
        *complete, rest = (self.partial.pop(stream, b"") + payload).split(b"\n")
        for raw in complete:
            self._line(raw)
        if len(rest) > MAX_LINE * 4:  # a line without end: keep its start, drop the rest
            self._line(rest)
            self.skipping.add(stream)
        elif rest:
            self.partial[stream] = rest

    def _line(self, raw: bytes) -> None:
        stamp, _, text = raw.decode("utf-8", errors="replace").partition(" ")
        self._take(stamp, self.prefix, text)

    def _take(self, stamp: str, prefix: str, text: str) -> None:
        """Keep ``prefix + text`` (cut at ``MAX_LINE``) when it matches: in the spool, or held in memory."""
        text = text.rstrip("\r")[:MAX_LINE]
        if self.keep > 0 and (self.needle is None or self.needle in text.lower()):
            if self.spool is not None:
                self.spool.add(stamp, prefix + text)
            else:
                self._hold(stamp, prefix + text)

    def _hold(self, stamp: str, line: str) -> None:
        self.kept.append((stamp, line))
        self.size += len(line)
        while len(self.kept) > self.keep or (self.size > self.budget and len(self.kept) > 1):
            self.size -= len(self.kept.popleft()[1])

    def _end(self) -> None:
        """Take a last line without newline; the spool's lines are all written."""
        for stream in list(self.partial):
            self._line(self.partial.pop(stream))
        if self.spool is not None:
            self.spool.finish()

    def close(self) -> list[tuple[str, str]]:
        """The kept lines, oldest first (a last line without newline included)."""
        self._end()
        return list(self.kept)


def reason(exc: BaseException) -> str:
    """Why the engine cannot be reached, in a few words (from the whole chain of causes)."""
    text = " ".join(str(e) for e in _chain(exc))
    for needle, words in (
        ("No such file", "no such socket"),
        ("Connection refused", "connection refused"),
        ("Permission denied", "permission denied"),
        ("Name or service not known", "host not found"),
        ("timed out", "timed out"),
    ):
        if needle.lower() in text.lower():
            return words
    first = str(exc).strip().splitlines()
    return first[0][:160] if first else type(exc).__name__


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def parse_df(output: str) -> tuple[str, int, int, float] | None:
    """(mount, size bytes, used bytes, percent) from ``df -P`` output; None when it cannot be read."""
    rows = [row.split() for row in output.splitlines()[1:] if row.strip()]
    fields = rows[-1] if rows else []
    if len(fields) < 6 or not (fields[1].isdigit() and fields[2].isdigit()):
        return None
    size, used = int(fields[1]) * 1024, int(fields[2]) * 1024
    capacity = fields[4].rstrip("%")
    percent = float(capacity) if capacity.isdigit() else (round(used / size * 100, 1) if size else 0.0)
    return " ".join(fields[5:]), size, used, percent
