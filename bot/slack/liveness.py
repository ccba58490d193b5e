"""Is Slack reachable? The time since Slack last said anything, and why not when it cannot be reached.

In Socket Mode every message on the socket counts (events, ``hello``, the answers to the client's pings);
``SocketWatchdog`` (``bot.slack.socket``) reconnects a socket silent for longer than ``silent_after``. In
both modes Web API calls count: a run of failures (timeouts, refused connections, 5xx) lasting longer than
``unreachable_after`` makes ``problem()`` say so, and ``/health`` answers 503 with it, so that whatever
runs the bot (Docker, systemd, Kubernetes) restarts it.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class SlackLiveness:
    """What the bot has heard from Slack, and when."""

    def __init__(self, *, socket_mode: bool, silent_after: float = 60.0, unreachable_after: float = 120.0,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.socket_mode = socket_mode
        self.silent_after = silent_after
        self.unreachable_after = unreachable_after
        self.clock = clock
        self.started = clock()
        self.last_event: float | None = None
        self.failing_since: float | None = None
        self.failure: str | None = None
        self.reconnects = 0

    def heard(self, at: float | None = None) -> None:
        """Something arrived from Slack (a socket message, a pong)."""
        at = self.clock() if at is None else at
        if self.last_event is None or at > self.last_event:
            self.last_event = at

    def api_ok(self) -> None:
        """A Web API call succeeded."""
        self.failing_since, self.failure = None, None

    def api_failed(self, reason: str) -> None:
        """A Web API call failed because Slack could not be reached (not because it refused the call)."""
        if self.failing_since is None:
            self.failing_since = self.clock()
        self.failure = reason

    def seconds_since_last_event(self) -> float:
        """Seconds since Slack last said anything on the socket (since start when it never did)."""
        return max(0.0, self.clock() - (self.last_event if self.last_event is not None else self.started))

    def silent(self) -> bool:
        """The socket has been silent too long: time to reconnect."""
        return self.socket_mode and self.seconds_since_last_event() > self.silent_after

    def problem(self) -> str | None:
        """Why Slack cannot be reached, or None."""
        now = self.clock()
        if self.socket_mode and self.seconds_since_last_event() > self.unreachable_after:
            return (f"nothing from Slack's Socket Mode for {self.seconds_since_last_event():.0f} s "
                    f"({self.reconnects} reconnects)")  # fmt: skip
        if self.failing_since is not None and now - self.failing_since > self.unreachable_after:
            return f"Slack's Web API has not answered for {now - self.failing_since:.0f} s ({self.failure})"
        return None
