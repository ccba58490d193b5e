"""Maintenance windows in time: open or not, next start, past midnight, in the configured time zone."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bot.config import validate_config
from bot.config.windows import describe, window_state
from tests.helpers.configs import example_config


def config_with(windows: list[dict[str, Any]], timezone: str = "UTC") -> Any:
    data = example_config(second_round=True)
    data["maintenance"]["windows"]["prod"] = windows
    data["alerting"]["timezone"] = timezone
    config, problems = validate_config(data)
    assert problems == [] and config is not None
    return config


SUNDAY_2_TO_4 = [{"days": ["sun"], "from": "02:00", "to": "04:00"}]


@pytest.mark.parametrize(
    ("now", "is_open", "next_start"),
    [
        (datetime(2026, 12, 6, 2, 30, tzinfo=UTC), True, datetime(2026, 12, 13, 2, 0, tzinfo=UTC)),  # a Sunday
        (datetime(2026, 12, 6, 4, 0, tzinfo=UTC), False, datetime(2026, 12, 13, 2, 0, tzinfo=UTC)),  # closed at 4
        (datetime(2026, 12, 6, 1, 59, tzinfo=UTC), False, datetime(2026, 12, 6, 2, 0, tzinfo=UTC)),
        (datetime(2026, 12, 3, 9, 0, tzinfo=UTC), False, datetime(2026, 12, 6, 2, 0, tzinfo=UTC)),  # a Thursday
    ],
)
def test_open_and_next_start(now: datetime, is_open: bool, next_start: datetime) -> None:
    state = window_state(config_with(SUNDAY_2_TO_4), "prod", now)
    assert state.bound and state.open is is_open and state.next_start == next_start
    assert (state.closes_at == datetime(2026, 12, 6, 4, 0, tzinfo=UTC)) is is_open


def test_a_window_past_midnight_is_open_the_next_morning() -> None:
    config = config_with([{"days": ["sat"], "from": "23:00", "to": "01:00"}])
    assert window_state(config, "prod", datetime(2026, 12, 6, 0, 30, tzinfo=UTC)).open  # Sunday 00:30
    assert not window_state(config, "prod", datetime(2026, 12, 6, 1, 0, tzinfo=UTC)).open


def test_windows_are_read_in_the_configured_time_zone() -> None:
    config = config_with(SUNDAY_2_TO_4, timezone="Europe/Berlin")  # CET = UTC+1 in December
    assert window_state(config, "prod", datetime(2026, 12, 6, 1, 30, tzinfo=UTC)).open
    assert not window_state(config, "prod", datetime(2026, 12, 6, 3, 30, tzinfo=UTC)).open
    summer = window_state(config, "prod", datetime(2026, 7, 5, 0, 30, tzinfo=UTC))  # CEST = UTC+2
    assert summer.open


def test_an_environment_without_windows_is_not_bound() -> None:
    data = example_config()
    config, _ = validate_config(data)
    assert config is not None
    state = window_state(config, "prod")
    assert not state.bound and state.next_start is None
    assert describe(config_with(SUNDAY_2_TO_4).maintenance.windows["prod"][0]) == "sun 02:00-04:00"
