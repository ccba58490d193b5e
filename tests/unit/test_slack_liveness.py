"""``SlackLiveness``: when the socket is silent too long, when Slack counts as unreachable, and why."""

from __future__ import annotations

from bot.slack.liveness import SlackLiveness


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_silent_socket_is_reconnected_then_reported_unreachable():
    clock = Clock()
    live = SlackLiveness(socket_mode=True, silent_after=60, unreachable_after=120, clock=clock)
    assert not live.silent() and live.problem() is None
    live.heard()
    clock.now += 59
    assert not live.silent() and live.seconds_since_last_event() == 59
    clock.now += 2
    assert live.silent() and live.problem() is None  # reconnect first
    live.reconnects = 3
    clock.now += 60
    assert live.problem() == "nothing from Slack's Socket Mode for 121 s (3 reconnects)"
    live.heard()
    assert not live.silent() and live.problem() is None


def test_an_older_pong_does_not_move_the_last_event_back():
    clock = Clock()
    live = SlackLiveness(socket_mode=True, clock=clock)
    live.heard()
    live.heard(clock.now - 30)
    assert live.seconds_since_last_event() == 0


def test_web_api_failures_for_long_enough_are_a_problem_in_both_modes():
    clock = Clock()
    live = SlackLiveness(socket_mode=False, unreachable_after=120, clock=clock)
    assert not live.silent()  # HTTP mode has no socket to be silent
    live.api_failed("chat.postMessage: ClientConnectorError")
    clock.now += 100
    live.api_failed("chat.update: TimeoutError")
    assert live.problem() is None
    clock.now += 21
    assert live.problem() == "Slack's Web API has not answered for 121 s (chat.update: TimeoutError)"
    live.api_ok()
    assert live.problem() is None
