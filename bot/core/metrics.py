"""A few Prometheus metrics, written in the text exposition format (no extra dependency)."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable

#: histogram buckets, seconds
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


def _labels(pairs: tuple[tuple[str, str], ...]) -> str:
    if not pairs:
        return ""
    inner = ",".join(f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"' for k, v in pairs)
    return "{" + inner + "}"


class Metrics:
    """Counters and histograms by label set; gauges read at scrape time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(dict)
        self._hist: dict[str, dict[tuple[tuple[str, str], ...], list[float]]] = defaultdict(dict)
        self._help: dict[str, tuple[str, str]] = {}
        self._gauges: dict[str, Callable[[], float]] = {}

    def describe(self, name: str, kind: str, text: str) -> None:
        """Declare a metric's type and help line."""
        self._help[name] = (kind, text)

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        """Add to a counter."""
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._counters[name][key] = self._counters[name].get(key, 0.0) + amount

    def observe(self, name: str, value: float, **labels: str) -> None:
        """Record a histogram observation (seconds)."""
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._hist[name].setdefault(key, [0.0] * (len(BUCKETS) + 2))
            for i, bound in enumerate(BUCKETS):
                if value <= bound:
                    series[i] += 1
            series[-2] += 1  # count
            series[-1] += value  # sum

    def gauge(self, name: str, read: Callable[[], float]) -> None:
        """A gauge whose value is read when scraped."""
        self._gauges[name] = read

    def set(self, name: str, value: float) -> None:
        """A gauge set to ``value`` (kept until set again)."""
        self._gauges[name] = lambda: float(value)

    def render(self) -> str:
        """Everything in Prometheus text format."""
        lines: list[str] = []
        with self._lock:
            for name, series in sorted(self._counters.items()):
                lines += self._head(name, "counter")
                lines += [f"{name}{_labels(k)} {v:g}" for k, v in sorted(series.items())]
            for name, hseries in sorted(self._hist.items()):
                lines += self._head(name, "histogram")
                for key, values in sorted(hseries.items()):
                    for i, bound in enumerate(BUCKETS):
                        lines.append(f"{name}_bucket{_labels((*key, ('le', f'{bound:g}')))} {values[i]:g}")
                    lines.append(f"{name}_bucket{_labels((*key, ('le', '+Inf')))} {values[-2]:g}")
                    lines.append(f"{name}_count{_labels(key)} {values[-2]:g}")
                    lines.append(f"{name}_sum{_labels(key)} {values[-1]:g}")
        for name, read in sorted(self._gauges.items()):
            lines += self._head(name, "gauge")
            lines.append(f"{name} {read():g}")
        return "\n".join(lines) + "\n"

    def _head(self, name: str, kind: str) -> list[str]:
        kind, text = self._help.get(name, (kind, name))
        return [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
