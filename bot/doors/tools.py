"""The command line's setup tools: ``check --live``, ``init --from-compose`` and ``guide export``.

``bot.doors.cli`` builds the parser with :func:`add_check_options` and :func:`add_commands`, and hands
these commands to :func:`run_tool`. Each returns the process's exit code (CONTRACT.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
from pathlib import Path

from adapters.errors import ConfigError, UserError

#: the subcommands this module adds to ``opsbot``
COMMANDS = ("init", "guide")


def add_check_options(check: argparse.ArgumentParser) -> None:
    """``check --live [--env E] [--timeout S] [--json]``."""
    check.add_argument(
        "--live",
        action="store_true",
        help="the preflight (guide 2, 3.1): requirements and every outside party, ok/warning/critical",
    )
    check.add_argument("--env", help="with --live: only this environment (and the checks every environment shares)")
    check.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="with --live: the bound of each outside call (default 10)",
    )
    check.add_argument("--json", action="store_true", help="with --live: the rows as one JSON document")


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """``init --from-compose FILE [--out ops.yml]`` and ``guide export [--config PATH] [--out FILE]``."""
    init = sub.add_parser("init", help="write an ops.yml for a Compose project")
    init.add_argument(
        "--from-compose",
        dest="from_compose",
        metavar="FILE",
        required=True,
        help="the project's Compose file (docker-compose.yml / compose.yaml)",
    )
    init.add_argument("--out", default="ops.yml", help="where to write it (default ./ops.yml; - for stdout)")
    init.add_argument("--force", action="store_true", help="replace --out when it exists")
    guide = sub.add_parser("guide", help="the Product Operation Guide")
    guide_sub = guide.add_subparsers(dest="guide_command", required=True)
    export = guide_sub.add_parser("export", help="the whole guide as Markdown, from ops.yml and the engines")
    export.add_argument("--config", help="path of ops.yml")
    export.add_argument("--out", default="-", help="the Markdown file to write (default: stdout)")
    export.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                        help="the bound of each call to an engine (default 10)")  # fmt: skip


def _config_path(args: argparse.Namespace) -> str:
    from bot.config.settings import Settings  # the config's models: not for `opsbot --help`

    settings = Settings()
    return str(getattr(args, "config", None) or settings.opsbot_config)


def check_live(args: argparse.Namespace) -> int:
    """``opsbot check --live``: the table, or JSON; exit 0 all ok, 1 any warning or critical, 2 refused."""
    if not 0 < args.timeout <= 300:
        raise UserError(f"--timeout must be above 0 and at most 300 seconds, not {args.timeout:g}")
    from bot.config import load_config

    try:
        config = load_config(_config_path(args))
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    if args.env is not None:
        config.env(args.env)  # an unknown environment is refused before anything is checked
    # the adapters import docker, boto3 and httpx: only for the commands that use them
    from bot.config.redact import Redactor
    from bot.config.settings import Settings
    from bot.core.backends import RealBackends
    from bot.core.preflight import run_preflight
    from bot.render.preflight import preflight_text

    settings = Settings()
    redactor = Redactor(settings.secrets())
    report = asyncio.run(
        run_preflight(
            config, RealBackends(config, timeout=args.timeout), env=args.env, environ=os.environ,
            slack_token=settings.slack_bot_token, slack_api_url=settings.slack_api_url, timeout=args.timeout,
        )
    )  # fmt: skip
    if args.json:
        data = {"project": report.project, "overall": report.overall, "environments": report.environments,
                "rows": [r.model_dump() for r in report.rows]}  # fmt: skip
        print(json.dumps(redactor.data(data), indent=2, ensure_ascii=False))
    else:
        print(redactor.text(preflight_text(report)))
    return report.exit_code


def write_file(out: Path, text: str, *, force: bool = True) -> None:
    """Write ``text`` to ``out`` whole or not at all (a temporary file renamed); ``UserError`` when it cannot."""
    if not out.parent.is_dir():
        raise UserError(f"cannot write {out}: the directory {out.parent} does not exist")
    if out.is_dir():
        raise UserError(f"cannot write {out}: it is a directory")
    if out.exists() and not force:
        raise UserError(f"{out} exists: give another --out, or --force to replace it")
    temp = out.with_name(f".{out.name}.{secrets.token_hex(4)}.tmp")
    try:
        temp.write_text(text, encoding="utf-8")
        os.replace(temp, out)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise UserError(f"cannot write {out}: {exc.strerror or exc}") from None


def _init(args: argparse.Namespace) -> int:
    from bot.config.compose_init import init_from_compose, own_image

    text, project = init_from_compose(args.from_compose, os.environ)
    if args.out == "-":
        sys.stdout.write(text)
        return 0
    out = Path(args.out)
    write_file(out, text, force=args.force)
    deployed = [s.name for s in project.services.values() if own_image(s)[0]]
    print(
        f"wrote {out} for the Compose project {project.name}: {len(project.services)} services "
        f"({len(deployed)} deployed by version: {', '.join(deployed) or 'none'}).\n"
        f"Read its 'check:' comments, then: opsbot check --live --config {out}"
    )
    return 0


async def _export(args: argparse.Namespace, out: Path | None) -> int:
    from bot.config import load_config
    from bot.config.settings import Settings
    from bot.core import logs
    from bot.core.app import App
    from bot.core.backends import RealBackends
    from bot.core.guide_facts import gather
    from bot.render.guide import guide_markdown

    settings = Settings()
    if args.config:
        settings.opsbot_config = args.config
    config = load_config(settings.opsbot_config)
    app = App.build(settings, backends=RealBackends(config, timeout=args.timeout))  # records a changed ops.yml
    logs.setup(settings.log_level, app.redactor.text, tracebacks=False)
    try:
        facts = await gather(app.config, settings.opsbot_config, app.backends, app.db, timeout=args.timeout)
        text = guide_markdown(facts, app.redactor)
    finally:
        await app.close()
    if out is None:
        sys.stdout.write(text)
    else:
        write_file(out, text)
        print(f"wrote {out}: the Product Operation Guide of {facts.config.project}, version {facts.version}")
    unread = [f"{e.name}: {e.containers_error or e.engine_error}" for e in facts.envs.values()
              if e.containers_error or e.engine_error]  # fmt: skip
    for line in unread:
        print(f"note: not read from the engine, marked TODO in the guide: {app.redactor.text(line)}", file=sys.stderr)
    return 1 if unread else 0


def _guide(args: argparse.Namespace) -> int:
    """``guide export``: exit 0 written, 1 written but an engine could not be read, 2 refused."""
    if not 0 < args.timeout <= 300:
        raise UserError(f"--timeout must be above 0 and at most 300 seconds, not {args.timeout:g}")
    out = None if args.out == "-" else Path(args.out)
    if out is not None and not out.parent.is_dir():  # refused before anything is read
        raise UserError(f"cannot write {out}: the directory {out.parent} does not exist")
    return asyncio.run(_export(args, out))


def run_tool(args: argparse.Namespace) -> int:
    """Run ``init`` or ``guide export``."""
    if args.command == "init":
        return _init(args)
    if args.command == "guide":
        return _guide(args)
    raise UserError(f"unknown command {args.command!r}")
