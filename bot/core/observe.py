"""What a scheduled run saw, as observations for the incidents: one per check, metric, service, or the run.

``status``/``health`` give a row per health check (source ``health``), metric (``metric``) and service
(``container``, only when the engine answered: a service that could not be seen is not "recovered"),
and the engine itself (``runtime``). Any other task (``verify-backup``, ``backup``) and any error is one
observation of the task itself (``schedule``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.core.incident import Observation
from bot.core.request import Reply
from commands.base import worst


def _symptoms(*parts: Any) -> str:
    """Words for matching ``troubleshooting`` symptoms (``504``, ``timeout``, ``refused``, ``slow``...)."""
    text = " ".join(str(p) for p in parts if p not in (None, ""))
    low = text.lower()
    if "timed out" in low or "did not answer within" in low:
        text += " timeout"
    if "latency" in low:
        text += " slow"
    return text


def _check(c: dict[str, Any]) -> Observation:
    if c.get("error"):
        summary = f"HTTP {c['status_code']}: {c['error']}" if c.get("status_code") and "HTTP" not in c["error"] \
            else str(c["error"])  # fmt: skip
    elif c.get("severity") != "ok":
        summary = f"latency {c.get('latency_ms') or 0:.0f} ms"
    else:
        summary = "ok"
    return Observation("health", c["name"], c["severity"], summary, _symptoms(c.get("status_code"), summary))


def _metric(m: dict[str, Any]) -> Observation:
    if m.get("value") is None:
        summary = str(m.get("error") or "could not measure")
    else:
        summary = f"{m['value']:.4g}{m.get('unit') or ''}"
    extra = "latency" if m["name"] == "response_time_ms" else ""
    return Observation("metric", m["name"], m["severity"], f"{m['name']} {summary}", _symptoms(extra, summary))


def _services(rows: Sequence[dict[str, Any]]) -> list[Observation]:
    by: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by.setdefault(r["name"], []).append(r)
    out = []
    for name, containers in by.items():
        severity = worst(c["severity"] for c in containers)
        reasons = sorted({reason for c in containers for reason in c.get("reasons") or []})
        state = ", ".join(sorted({c["state"] for c in containers}))
        summary = f"{state}: {'; '.join(reasons)}" if reasons else state
        out.append(Observation("container", name, severity, summary, _symptoms(summary)))
    return out


def observations(task: str, reply: Reply) -> tuple[list[str], list[Observation]]:
    """The sources this run covers (their open incidents not seen again are resolved), and what it saw.

    A status run covers health checks, metrics, the engine and (when the engine answered) the containers;
    any other task covers only itself, through its own observation."""
    if reply.result is not None and reply.result.kind in ("status", "health"):
        data = reply.result.model_dump(mode="json")
        seen = [_check(c) for c in data.get("checks", [])] + [_metric(m) for m in data.get("metrics", [])]
        scope = ["health", "metric"]
        if reply.result.kind == "status":
            errors = list(data.get("errors") or [])
            scope.append("runtime")
            if errors:
                seen.append(Observation("runtime", "engine", "critical", errors[0], _symptoms(errors[0])))
            else:
                seen.append(Observation("runtime", "engine", "ok", "answers"))
                scope.append("container")
                seen += _services(data.get("services", []))
        return scope, seen
    severity = "critical" if reply.error else reply.severity
    summary = reply.error or f"{reply.command or task}: {severity}"
    # no scope: a run of one task says nothing of the others (a good backup does not resolve verify_backup)
    return [], [Observation("schedule", task, severity, summary, _symptoms(summary))]
