"""Deploy gates (guide 7.4 "run security scans before release"): ``security_maintenance`` items with
``before: deploy`` and a ``command``.

Every deploy runs each gate's argv in a one-off container of each NEW image (with its service's
configuration, as the migration runs) after the images are checked and before anything changes. A
non-zero exit refuses the deploy with the command's output (redacted, its end); a gate that does not
finish within the item's ``timeout`` is killed and refuses the deploy too, saying so. The gates are
steps of the deploy's plan, their results part of its result and of the audit log, and each gate's
last result is kept (``security`` shows it).
"""

from __future__ import annotations

import time

from pydantic import BaseModel

from adapters.errors import AdapterError, AdapterTimeout
from bot.config.guide import SecurityDuty
from bot.config.models import OpsConfig
from commands.base import Ctx

#: at most this much of a gate's output is kept (its end)
MAX_OUTPUT = 4000


class GateRow(BaseModel):
    """One gate's run on one image."""

    item: str
    title: str
    service: str
    image: str
    command: list[str]
    passed: bool
    exit_code: int | None = None
    detail: str
    #: the end of its output, redacted
    output: str | None = None
    duration_s: float = 0.0


def gates_of(config: OpsConfig) -> list[SecurityDuty]:
    """The deploy gates of ops.yml, in order."""
    return [d for d in config.security_maintenance if d.before == "deploy" and d.command]


def gate_targets(images: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(service, image) once per distinct new image, in order."""
    seen: dict[str, str] = {}
    for service, image in images:
        seen.setdefault(image, service)
    return [(service, image) for image, service in seen.items()]


def gate_steps(config: OpsConfig, images: list[tuple[str, str]]) -> list[str]:
    """The plan's lines for the gates of a deploy of these (service, new image) pairs."""
    return [
        f"security gate {g.item} ({g.title}): `{' '.join(g.command or [])}` in a one-off container of {image}, "
        f"at most {g.timeout:g} s; a non-zero exit refuses the deploy before anything changes"
        for g in gates_of(config)
        for _, image in gate_targets(images)
    ]


async def run_gates(ctx: Ctx, env: str, images: list[tuple[str, str]]) -> tuple[list[GateRow], str | None]:
    """Run every gate on every new image; the rows, and why the deploy is refused (None: all passed)."""
    runtime = ctx.backends.runtime(env)
    duties = ctx.extras.get("duties")
    rows: list[GateRow] = []
    for gate in gates_of(ctx.config):
        argv = list(gate.command or [])
        for service, image in gate_targets(images):
            await ctx.progress(f"Security gate {gate.item}: `{' '.join(argv)}` on {image}")
            started = time.monotonic()
            row = GateRow(item=gate.item, title=gate.title, service=service, image=image, command=argv,
                          passed=False, detail="")  # fmt: skip
            try:
                ran = await runtime.run_oneoff(service, image, argv, timeout=gate.timeout)
            except AdapterTimeout:
                row.detail = (f"security gate {gate.item} did not finish within {gate.timeout:g} s on {image} (it "
                              "was stopped): the deploy is refused, nothing was changed")  # fmt: skip
            except AdapterError as exc:
                row.detail = (f"security gate {gate.item} could not run on {image}: {ctx.redactor.text(str(exc))}; "
                              "the deploy is refused, nothing was changed")  # fmt: skip
            else:
                row.exit_code = ran.exit_code
                row.output = ctx.redactor.text(ran.output)[-MAX_OUTPUT:] or None
                row.passed = ran.exit_code == 0
                row.detail = (f"security gate {gate.item} passed on {image}" if row.passed else
                              f"security gate {gate.item} ({gate.title}) exited with {ran.exit_code} on {image}: "
                              "the deploy is refused, nothing was changed")  # fmt: skip
            row.duration_s = round(time.monotonic() - started, 3)
            rows.append(row)
            await ctx.step("deploy", env, "gate", row.detail, item=gate.item, image=image, exit_code=row.exit_code,
                           passed=row.passed, output=(row.output or "")[-1000:])  # fmt: skip
            if duties is not None:
                await duties.record_gate(gate.item, "passed" if row.passed else f"refused: {row.detail}", image,
                                         time.time())  # fmt: skip
            if not row.passed:
                return rows, row.detail
    return rows, None
