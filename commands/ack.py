"""Acknowledge an alert: its escalation stops, its message and page say who has it.

The alert's Slack message is edited (acknowledged by whom, when), its thread says so, and PagerDuty's
incident is acknowledged. An alert that is unknown, already acknowledged or resolved is refused. The
`Acknowledge` button of an alert's message does the same. Needs the operators role in the alert's own
environment (its `access`); no approval. An alert of an environment you may not read is answered as an
unknown one.

Guide: 6.3 Alerting, 8.3 Escalation.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator

from commands.base import ChangeArgs, CommandSpec, Ctx, Plan, Result, shown

ALERT_ID_RE = re.compile(r"[0-9a-f]{8}")


def check_alert_id(value: str) -> str:
    """An alert id as ``alerts`` shows it: 8 hexadecimal characters."""
    if not ALERT_ID_RE.fullmatch(value):
        raise ValueError(f"invalid alert id {shown(value)}: 8 characters 0-9 a-f, as `alerts` shows them")
    return value


AlertId = Annotated[str, AfterValidator(check_alert_id)]

#: the answer to an alert id that is unknown or of an environment the actor may not read (the same for both)
UNKNOWN_OR_NOT_YOURS = "alert {alert_id} is unknown or not yours: `alerts` lists the ones you may see"


class AckArgs(ChangeArgs):
    """Arguments of ``ack``."""

    alert_id: AlertId


class AckResult(Result):
    """The alert, acknowledged."""

    kind = "ack"
    alert: dict[str, Any]


async def alert_env(ctx: Ctx, args: AckArgs) -> str | None:
    """The environment of the alert (None: no such alert): its access rules decide."""
    return await ctx.extras["incidents"].env_of(args.alert_id)  # type: ignore[no-any-return]


async def plan(ctx: Ctx, args: AckArgs) -> Plan:
    """What acknowledging does (the alert must be open)."""
    inc = await ctx.extras["incidents"].get(args.alert_id)
    return Plan(
        summary=f"acknowledge alert {inc.id} ({inc.environment}: {inc.what})",
        steps=[f"mark alert {inc.id} acknowledged by {ctx.actor}: its escalation stops",
               "edit its Slack message and say so in its thread", "acknowledge its PagerDuty incident, if paged"],
        targets=[{"alert": inc.id, "state": inc.state}],
    )  # fmt: skip


async def run(ctx: Ctx, args: AckArgs) -> AckResult:
    """Acknowledge it (compare-and-set: of two clicks, one acknowledges)."""
    inc = await ctx.extras["incidents"].ack(args.alert_id, ctx.actor)
    ctx.extras["alert_changed"]()
    return AckResult(alert=inc.summary_json(ctx.config))


SPEC = CommandSpec(
    name="ack",
    summary="acknowledge an alert: its escalation stops; recorded",
    help=__doc__ or "",
    args=AckArgs,
    run=run,
    usage="ack <alert-id>",
    positionals=("alert_id",),
    changes=True,
    guide="6.3, 8.3",
    verb="Acknowledging",
    examples=("ack 3f9c2a1b",),
    results=(AckResult,),
    plan=plan,
    approval=False,
    lease=False,
    target_env=alert_env,
    unknown_target=UNKNOWN_OR_NOT_YOURS,
)
