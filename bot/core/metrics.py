"""The process's Prometheus metrics, kept by ``prometheus-client`` in a registry of their own.

Every metric is declared here, with its help text and label names; the rest of the bot adds to them
by name (``metrics.inc("opsbot_requests_total", command="status", outcome="ok")``). ``render()`` is
the text ``/metrics`` serves, the process's own figures (CPU, memory, open files) included.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    gc_collector,
    generate_latest,
    platform_collector,
    process_collector,
)

#: histogram buckets, seconds
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
#: the content type of ``render()``'s text: the classic text format, which every Prometheus reads
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "opsbot_requests_total": ("requests by command and outcome", ("command", "outcome")),
    "opsbot_duplicates_total": ("deliveries recognised as duplicates and not run", ("kind",)),
    "opsbot_slack_errors_total": ("Web API calls that failed after retries", ("method",)),
    "opsbot_http_requests_total": ("verified requests on /slack/events", ("route",)),
    "opsbot_http_rejected_total": (
        "requests to /slack/events refused before Bolt saw them (unsigned, forged, stale, too large, "
        "too slow, malformed), by reason",
        ("reason",),
    ),
    "opsbot_back_held_jobs_total": (
        "jobs for the back process that waited while the front answered Slack (10 ms after the last "
        "answer, at most 0.5 s)",
        (),
    ),
    "opsbot_http_connections_closed_total": (
        "connections the server closed itself: a request not sent in time (slow), idle too long, "
        "closed to make room (evicted) or refused at the connection limit",
        ("reason",),
    ),
}
HISTOGRAMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "opsbot_ack_seconds": ("time from receiving a slash command to acknowledging it", ()),
    "opsbot_run_seconds": ("duration of procedures by command", ("command",)),
}
GAUGES: dict[str, str] = {
    "opsbot_pending_approvals": "approvals waiting for a decision",
    "opsbot_running_procedures": "procedures running now",
    "opsbot_http_connections": "HTTP connections open now",
    "opsbot_http_connection_limit": "the most HTTP connections kept open at once",
    "opsbot_slack_seconds_since_last_event": "seconds since Socket Mode last heard Slack",
    "opsbot_slack_reconnects": "Socket Mode reconnections made by the watchdog",
}


class Metrics:
    """Counters, histograms and gauges by name, in a registry of their own (two bots in one test never mix)."""

    def __init__(self) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # no `_created` series: one line per value, as before
        self.registry = CollectorRegistry()
        process_collector.ProcessCollector(registry=self.registry)
        platform_collector.PlatformCollector(registry=self.registry)
        gc_collector.GCCollector(registry=self.registry)
        self._counters = {
            name: Counter(name, text, labels, registry=self.registry) for name, (text, labels) in COUNTERS.items()
        }
        self._histograms = {
            name: Histogram(name, text, labels, buckets=BUCKETS, registry=self.registry)
            for name, (text, labels) in HISTOGRAMS.items()
        }
        self._gauges = {name: Gauge(name, text, registry=self.registry) for name, text in GAUGES.items()}

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        """Add ``amount`` to a counter (0 makes the series appear)."""
        counter = self._counters[name]
        (counter.labels(**labels) if labels else counter).inc(amount)

    def observe(self, name: str, value: float, **labels: str) -> None:
        """Record a histogram observation (seconds)."""
        histogram = self._histograms[name]
        (histogram.labels(**labels) if labels else histogram).observe(value)

    def gauge(self, name: str, read: Callable[[], float]) -> None:
        """A gauge whose value is read when scraped."""
        self._gauges[name].set_function(read)

    def set(self, name: str, value: float) -> None:
        """A gauge set to ``value`` (kept until set again)."""
        self._gauges[name].set(value)

    def render(self) -> bytes:
        """Everything, in Prometheus text format (``CONTENT_TYPE``)."""
        return generate_latest(self.registry)
