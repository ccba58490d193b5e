"""``opsbot check --live`` as plain text: a table per environment, the shared checks, the overall verdict."""

from __future__ import annotations

from bot.core.preflight import PreflightReport, PreflightRow

#: the widest target shown in its column; longer ones are cut in the column (the reason says the rest)
TARGET_WIDTH = 40


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _table(rows: list[PreflightRow]) -> list[str]:
    check_w = max(len(r.check) for r in rows)
    target_w = min(TARGET_WIDTH, max(len(r.target) for r in rows))
    return [
        f"  {r.severity:<8}  {r.check:<{check_w}}  {_cut(r.target, target_w):<{target_w}}  {r.reason}".rstrip()
        for r in rows
    ]


def preflight_text(report: PreflightReport) -> str:
    """The report as the command line prints it."""
    envs = ", ".join(report.environments)
    lines = [
        f"check --live of {report.project}: {envs} ({len(report.rows)} checks at once in "
        f"{report.duration_ms / 1000:.1f} s, each within {report.timeout:g} s)",
    ]
    for env in [*report.environments, None]:
        rows = [r for r in report.rows if r.environment == env]
        if rows:
            lines += ["", env if env is not None else "shared by every environment", *_table(rows)]
    counts = report.counts()
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    lines += ["", f"overall: {report.overall} ({summary or 'nothing checked'})"]
    return "\n".join(lines)
