"""Show each service's environment (secrets redacted) and its feature flags.

For every container of the environment (or of one service): its environment variables, with the
values of those whose names look secret (SECRET, PASSWORD, TOKEN, KEY, CREDENTIAL...) replaced by
[REDACTED], and its feature flags: the variables named `FEATURE_*`. Change a flag with
`flag <env> <FEATURE_NAME> on|off`.

Guide: 4.1 Configuration, 4.3 Feature flags.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from commands.base import Args, CommandSpec, Ctx, EnvName, Result, ServiceName
from commands.inspect import containers

FLAG_PREFIX = "FEATURE_"


class ServiceConfigView(BaseModel):
    """One container's configuration, for display."""

    service: str
    container: str
    image: str
    environment: dict[str, str] = Field(default_factory=dict)
    flags: dict[str, str] = Field(default_factory=dict)


class ConfigArgs(Args):
    """Arguments of ``config``."""

    env: EnvName
    service: ServiceName | None = None


class ConfigResult(Result):
    """The services' environments and flags."""

    kind = "config"
    environment: str
    services: list[ServiceConfigView] = Field(default_factory=list)


async def run(ctx: Ctx, args: ConfigArgs) -> ConfigResult:
    """Read the containers' environments; redact by name and by value."""
    assert args.env is not None
    views = []
    for info in await containers(ctx, args.env, stats=False):
        if args.service is not None and info.service != args.service:
            continue
        shown = ctx.redactor.env(info.env)
        views.append(
            ServiceConfigView(
                service=info.service,
                container=info.name,
                image=info.image,
                environment=dict(sorted(shown.items())),
                flags={k: v for k, v in sorted(shown.items()) if k.startswith(FLAG_PREFIX)},
            )
        )
    return ConfigResult(environment=args.env, services=views)


SPEC = CommandSpec(
    name="config",
    summary="each service's environment (secrets redacted) and its feature flags",
    help=__doc__ or "",
    args=ConfigArgs,
    run=run,
    usage="config <env> [service]",
    positionals=("env", "service"),
    guide="4.1, 4.3",
    verb="Reading the configuration of",
    examples=("config prod", "config prod worker"),
    results=(ConfigResult,),
)
