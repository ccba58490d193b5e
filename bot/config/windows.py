"""Maintenance windows in time: is one open now, when does the next one start (guide 7.3).

Windows are weekly (``maintenance.windows.<env>``: days, from, to) in ``alerting.timezone`` (UTC when
absent); a window whose ``to`` is earlier than its ``from`` runs past midnight into the next day.
Daylight-saving changes are those of the time zone: a window is read in local wall-clock time.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.config.guide import WEEKDAYS, MaintenanceWindow, clock_minutes
from bot.config.models import OpsConfig


@dataclass(frozen=True)
class WindowState:
    """Where ``now`` stands against an environment's windows."""

    #: the environment has windows at all (without any, changes are not bound to windows)
    bound: bool
    #: a window is open now
    open: bool
    #: when the open window closes (UTC), if one is open
    closes_at: datetime | None
    #: when the next window opens (UTC), None without windows
    next_start: datetime | None


def timezone_of(config: OpsConfig) -> zoneinfo.ZoneInfo:
    """The time zone windows and digests are read in: ``alerting.timezone``, or UTC."""
    name = config.alerting.timezone if config.alerting is not None else "UTC"
    return zoneinfo.ZoneInfo(name)


def windows_of(config: OpsConfig, env: str) -> list[MaintenanceWindow]:
    """The maintenance windows of ``env`` (empty when it has none)."""
    if config.maintenance is None:
        return []
    return list(config.maintenance.windows.get(env, []))


def _occurrences(window: MaintenanceWindow, tz: zoneinfo.ZoneInfo, around: datetime) -> list[tuple[datetime, datetime]]:
    """Each (start, end) in UTC of ``window`` from the week before ``around`` to two weeks after it."""
    local = around.astimezone(tz)
    monday = (local - timedelta(days=local.weekday())).date()
    start_min, end_min = clock_minutes(window.from_), clock_minutes(window.to)
    length = end_min - start_min if end_min > start_min else end_min + 1440 - start_min
    out = []
    for week in (-1, 0, 1, 2):
        for day in window.days:
            date = monday + timedelta(days=7 * week + WEEKDAYS.index(day))
            start = datetime(date.year, date.month, date.day, start_min // 60, start_min % 60, tzinfo=tz)
            out.append((start.astimezone(UTC), (start + timedelta(minutes=length)).astimezone(UTC)))
    return out


def window_state(config: OpsConfig, env: str, now: datetime | None = None) -> WindowState:
    """Whether a window of ``env`` is open at ``now`` (default: the current time), and the next start."""
    windows = windows_of(config, env)
    if not windows:
        return WindowState(bound=False, open=False, closes_at=None, next_start=None)
    now = (now or datetime.now(UTC)).astimezone(UTC)
    tz = timezone_of(config)
    spans = sorted(span for w in windows for span in _occurrences(w, tz, now))
    current = [end for start, end in spans if start <= now < end]
    upcoming = [start for start, _ in spans if start > now]
    return WindowState(
        bound=True,
        open=bool(current),
        closes_at=max(current) if current else None,
        next_start=min(upcoming) if upcoming else None,
    )


def describe(window: MaintenanceWindow) -> str:
    """A window as a person reads it: ``sun 02:00-04:00``."""
    return f"{','.join(window.days)} {window.from_}-{window.to}"


def open_at(config: OpsConfig, env: str, at: datetime) -> datetime | None:
    """The first moment from ``at`` on when a window of ``env`` is open (``at`` itself when one is); None
    when ``env`` has no windows."""
    state = window_state(config, env, at)
    if not state.bound:
        return None
    return at.astimezone(UTC) if state.open else state.next_start


def local_text(config: OpsConfig, moment: datetime) -> str:
    """``moment`` as a person of the team reads it: ``Sun 2026-12-13 02:00 CET`` (in ``alerting.timezone``)."""
    local = moment.astimezone(timezone_of(config))
    return f"{local:%a %Y-%m-%d %H:%M} {local.tzname() or ''}".strip()


def until_text(now: datetime, then: datetime) -> str:
    """How long from ``now`` to ``then``, roughly: ``in 3 d 4 h``, ``in 25 min``, ``now``."""
    minutes = int((then - now).total_seconds() // 60)
    if minutes <= 0:
        return "now"
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    if days:
        return f"in {days} d {hours} h" if hours else f"in {days} d"
    if hours:
        return f"in {hours} h {mins} min" if mins else f"in {hours} h"
    return f"in {mins} min"


def closed_text(config: OpsConfig, env: str, state: WindowState, now: datetime) -> str:
    """Why a change waits: ``prod is outside its maintenance windows (sun 02:00-04:00 Europe/Berlin); the
    next opens Sun 2026-12-13 02:00 CET (in 3 d 4 h)``."""
    zone = timezone_of(config).key
    shown = ", ".join(describe(w) for w in windows_of(config, env))
    text = f"{env} is outside its maintenance windows ({shown} {zone})"
    if state.next_start is not None:
        text += f"; the next opens {local_text(config, state.next_start)} ({until_text(now, state.next_start)})"
    return text
