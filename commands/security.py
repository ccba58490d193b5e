"""The security duties of guide 7.4: when each is due, when it was last done and by whom; record one.

`security [env]` lists every `security_maintenance` item: its period (`every`), when it was last done,
by whom and with what note, when it is due next (an item never recorded as done is due from the day
opsbot first saw it), and for a deploy gate (`before: deploy` with a `command`) its last result. The
access review (`access_review`) comes with a report made from the audit log since it was last done:
who did what, refusals, break-glass uses, approvals and denials, and actors seen for the first time.

`security done <item> [--note TEXT]` records that you did it now (operators; audited; `--dry-run`
records nothing). A due item is reminded in `slack.alert_channels.warning` by the scheduler, once a
day while it stays overdue, as one message edited (and said again in its thread), until it is done.
An environment named `done` cannot be listed by name here: `done` is the word that records.

Guide: 7.4 Security maintenance.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any, Self

from pydantic import BaseModel, Field, ValidationInfo, model_validator

from adapters.errors import UserError
from bot.config.guide import SecurityDuty
from commands.base import Args, CommandSpec, Ctx, EnvName, Result, Severity, Text, env_field, shown, worst
from commands.maintenance_tasks import period_text
from commands.security_report import AccessReport

#: the item whose report is made from the audit log
ACCESS_REVIEW = "access_review"


class SecurityArgs(Args):
    """Arguments of ``security``: ``security [env]`` or ``security done <item> [--note TEXT]``."""

    target: str | None = None
    item: str | None = None
    note: Text | None = None
    dry_run: bool = False
    env: EnvName = env_field()

    @model_validator(mode="before")
    @classmethod
    def _words(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("target") not in (None, "done") and data.get("env") is None:
            data = {**data, "env": data["target"]}
        return data

    @model_validator(mode="after")
    def _checked(self, info: ValidationInfo) -> Self:
        if not self.recording:
            if self.item is not None:
                raise UserError(f"unexpected argument {shown(self.item)}: record a duty with `security done <item>`")
            if self.note is not None or self.dry_run:
                raise UserError("--note and --dry-run go with `security done <item>`")
            return self
        if self.item is None:
            raise UserError("security done needs an item: security done <item> [--note TEXT]")
        config = (info.context or {}).get("config")
        if config is not None:
            duty_of(config.security_maintenance, self.item)
        return self

    @property
    def recording(self) -> bool:
        """``security done ...``: records, so it needs an operator."""
        return self.target == "done"

    def writes(self) -> bool:
        """``done`` records who did a duty: an operator's act."""
        return self.recording


def duty_of(duties: list[SecurityDuty], item: str) -> SecurityDuty:
    """The item ``item``; ``UserError`` naming the ones there are."""
    for duty in duties:
        if duty.item == item:
            return duty
    known = ", ".join(d.item for d in duties) or "none in ops.yml (security_maintenance)"
    raise UserError(f"unknown security item {shown(item)} (items: {known})")


def due_at(duty: SecurityDuty, row: dict[str, Any] | None, now: float) -> float | None:
    """When ``duty`` is due: ``every`` after it was last done, or from when opsbot first saw it; None for
    a gate without a period."""
    if duty.every is None:
        return None
    if row is None:
        return now
    if row.get("last_done_at") is not None:
        return float(row["last_done_at"]) + duty.every
    return float(row.get("first_seen") or now)


class DutyRow(BaseModel):
    """One duty as listed."""

    item: str
    title: str
    every: str | None = None
    gate: str | None = None
    last_done_at: datetime | None = None
    last_done_by: str | None = None
    note: str | None = None
    due_at: datetime | None = None
    #: ``ok`` (not due yet), ``due`` (due now or overdue) or ``gate`` (a gate without a period)
    state: str
    overdue_days: int = 0
    severity: Severity = "ok"
    gate_at: datetime | None = None
    gate_outcome: str | None = None
    gate_image: str | None = None


class SecurityResult(Result):
    """The duties, and the access review's report for its current period."""

    kind = "security"
    environment: str
    now: datetime
    duties: list[DutyRow] = Field(default_factory=list)
    report: AccessReport | None = None

    def severity(self) -> Severity:
        """Warning while a duty is due."""
        return worst(d.severity for d in self.duties)


class SecurityDoneResult(Result):
    """A duty recorded as done."""

    kind = "security_done"
    environment: str
    item: str
    title: str
    done_at: datetime
    done_by: str
    note: str | None = None
    next_due: datetime | None = None
    dry_run: bool = False
    #: for the access review: the report of the period it closes
    report: AccessReport | None = None


def _when(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None


def duty_row(duty: SecurityDuty, row: dict[str, Any] | None, now: float) -> DutyRow:
    """A duty's row: last done, due, state."""
    due = due_at(duty, row, now)
    row = row or {}
    state, overdue = "gate", 0
    severity: Severity = "ok"
    if due is not None:
        state = "due" if due <= now else "ok"
        severity = "warning" if state == "due" else "ok"
        overdue = int((now - due) // 86400) if state == "due" else 0
    gate = " ".join(duty.command) if duty.before == "deploy" and duty.command else None
    return DutyRow(
        item=duty.item, title=duty.title, every=period_text(duty.every) if duty.every else None, gate=gate,
        last_done_at=_when(row.get("last_done_at")), last_done_by=row.get("last_done_by"), note=row.get("note"),
        due_at=_when(due), state=state, overdue_days=overdue, severity=severity,
        gate_at=_when(row.get("gate_at")), gate_outcome=row.get("gate_outcome"), gate_image=row.get("gate_image"),
    )  # fmt: skip


async def review_report(
    ctx: Ctx, duty: SecurityDuty, row: dict[str, Any] | None, until: datetime
) -> AccessReport | None:
    """The access review's report: the audit log since it was last done (or one period back)."""
    duties = ctx.extras.get("duties")
    if duties is None or duty.item != ACCESS_REVIEW:
        return None
    last = (row or {}).get("last_done_at")
    since = _when(last) if last is not None else until - timedelta(seconds=duty.every or 30 * 86400)
    report: AccessReport = await duties.access_report(since, until)
    return report


async def run(ctx: Ctx, args: SecurityArgs) -> Result:
    """List the duties, or record one as done."""
    assert args.env is not None
    duties = ctx.extras.get("duties")
    if duties is None:
        raise UserError("security duties need opsbot's database, which this door does not have")
    items = ctx.config.security_maintenance
    rows: dict[str, dict[str, Any]] = await duties.rows([d.item for d in items])
    now = time.time()
    if args.recording:
        assert args.item is not None
        return await _done(ctx, args, duty_of(items, args.item), rows.get(args.item), now)
    listed = [duty_row(d, rows.get(d.item), now) for d in items]
    review = next((d for d in items if d.item == ACCESS_REVIEW), None)
    at = datetime.fromtimestamp(now, UTC)
    report = await review_report(ctx, review, rows.get(ACCESS_REVIEW), at) if review else None
    return SecurityResult(environment=args.env, now=at, duties=listed, report=report)


async def _done(ctx: Ctx, args: SecurityArgs, duty: SecurityDuty, row: dict[str, Any] | None,
                now: float) -> SecurityDoneResult:  # fmt: skip
    assert args.env is not None
    if duty.every is None:
        raise UserError(f"{duty.item} is a deploy gate: it runs by itself before every deploy; nothing to record")
    at = datetime.fromtimestamp(now, UTC)
    report = await review_report(ctx, duty, row, at)
    result = SecurityDoneResult(environment=args.env, item=duty.item, title=duty.title, done_at=at,
                                done_by=ctx.actor, note=args.note, next_due=_when(now + duty.every),
                                dry_run=args.dry_run, report=report)  # fmt: skip
    if args.dry_run:
        return result
    await ctx.extras["duties"].done(duty.item, ctx.actor, args.note, now)
    details: dict[str, Any] = {"item": duty.item, "note": args.note}
    if report is not None:
        details["report"] = report.summary()
    await ctx.step("security done", args.env, "security-done",
                   f"{duty.item} ({duty.title}) done by {ctx.actor}" + (f": {args.note}" if args.note else ""),
                   **details)  # fmt: skip
    return result


SPEC = CommandSpec(
    name="security",
    summary="the 7.4 security duties: due dates, last done by whom; `security done <item>` records one",
    help=__doc__ or "",
    args=SecurityArgs,
    run=run,
    usage="security [env] | security done <item> [--note TEXT] [--dry-run]",
    positionals=("target", "item"),
    guide="7.4",
    verb="Reading security duties of",
    examples=("security", "security prod", 'security done rotate_secrets --note "rotated DB and API keys"'),
    results=(SecurityResult, SecurityDoneResult),
)
