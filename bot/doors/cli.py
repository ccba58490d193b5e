"""The ``opsbot`` command line: serve, run, check, audit (CONTRACT.md, "Command line")."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from adapters.errors import ConfigError, OpsError
from bot.core import logs
from bot.doors import tools

if TYPE_CHECKING:
    from bot.config.settings import Settings
    from bot.core.app import App
    from commands.base import Backends


def _settings(args: argparse.Namespace) -> Settings:
    from bot.config.settings import Settings  # the config's models: imported for the commands that read them

    settings = Settings()
    if getattr(args, "config", None):
        settings.opsbot_config = args.config
    if getattr(args, "port", None):
        settings.port = args.port
    return settings


def _app(settings: Settings, *, tracebacks: bool = False, backends: Backends | None = None) -> App:
    from bot.core.app import App

    app = App.build(settings, backends=backends)
    logs.setup(settings.log_level, app.redactor.text, tracebacks=tracebacks)
    return app


def _print_json(data: object) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def _print_reply_json(reply: Any, redact: Callable[[Any], Any]) -> None:
    """The reply as JSON; a ``logs`` answer with more lines than it holds gets every line, printed a line at
    a time from its spool (its lines were redacted as they were spooled)."""
    data = redact(reply.to_json())
    result = reply.result
    if getattr(result, "kind", None) != "logs":  # ``commands.logs`` imported only for its own result
        _print_json(data)
        return
    from commands.logs import LogsResult

    if not isinstance(result, LogsResult) or result.total <= len(result.lines):
        _print_json(data)
        return
    data["lines"] = None  # stands for the lines, printed after the rest
    before, _, after = json.dumps(data, indent=2, ensure_ascii=False, default=str).partition('"lines": null')
    print(before + '"lines": [', end="")
    for i, line in enumerate(result.all_lines()):
        print(("," if i else "") + "\n    " + json.dumps(line, ensure_ascii=False), end="")
    print("\n  ]" + after)


async def _run(args: argparse.Namespace) -> int:
    from bot.core.access import local_operator
    from bot.core.engine import Request
    from commands.base import USER_RE

    actor = args.as_user or local_operator()
    if args.as_user and not USER_RE.fullmatch(args.as_user):
        print(f"error: --as needs a Slack user id like U0123ABCD, not {args.as_user!r}", file=sys.stderr)
        return 2
    app = _app(_settings(args))
    try:

        async def progress(message: str) -> None:
            if not args.json:
                print(f"... {app.redactor.text(message)}", file=sys.stderr, flush=True)

        reply = await app.engine.handle(Request(actor=actor, door="cli", words=args.words, progress=progress))
        try:
            if args.json:
                _print_reply_json(reply, app.redactor.data)
            else:  # a line at a time: every line of a big ``logs``, read from its spool as printed
                from bot.render.text import text_lines  # every command's renderer: not for --json

                out = sys.stdout if reply.result is not None else sys.stderr
                for text in text_lines(reply, app.redactor.text):
                    print(text, file=out)
        finally:
            if reply.result is not None:
                reply.result.close()
        return reply.exit_code
    finally:
        await app.close()


async def _decide(args: argparse.Namespace) -> int:
    from bot.core.engine import Request
    from bot.render.text import render_text
    from commands.base import USER_RE

    if not USER_RE.fullmatch(args.as_user):
        print(f"error: --as needs a Slack user id like U0123ABCD, not {args.as_user!r}", file=sys.stderr)
        return 2
    app = _app(_settings(args))
    try:

        async def progress(message: str) -> None:
            print(f"... {app.redactor.text(message)}", file=sys.stderr, flush=True)

        action = args.command
        request = Request(actor=args.as_user, door="cli", text=f"{action} {args.approval_id}", progress=progress)
        reply = await app.engine.decide(request, args.approval_id, action, getattr(args, "reason", None))
        text = app.redactor.text(render_text(reply))
        print(text, file=sys.stdout if reply.result is not None else sys.stderr)
        if reply.result is not None and app.settings.slack_bot_token:
            from bot.slack.door import update_approval_message

            await update_approval_message(app, reply)
        return reply.exit_code
    finally:
        await app.close()


async def _serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    slack = bool(settings.slack_app_token or settings.slack_signing_secret)
    if args.demo:
        from bot.doors.demo import banner, demo_world

        with demo_world(settings) as world:
            text = banner(world, slack=slack)
            if slack:
                logging.getLogger("opsbot.demo").info("%s", text)
            else:
                print(text, flush=True)
            return await _serve_app(settings, slack, world.backends())
    return await _serve_app(settings, slack, None)


def _serve_check(args: argparse.Namespace) -> None:
    """Refuse ``serve`` at once when its ops.yml is missing (pointing at the demo), or with --demo and --config."""
    if args.demo:
        if args.config:
            raise ConfigError("--demo runs on the demo's own ops.yml: give --demo or --config, not both")
        return
    path = _settings(args).opsbot_config
    if not os.path.exists(path):
        raise ConfigError(
            f"{path}: no such file (set OPSBOT_CONFIG or --config; examples/ops.yml shows the format);"
            " or try the demo world: opsbot serve --demo"
        )


async def _serve_app(settings: Settings, slack: bool, backends: Backends | None) -> int:
    if slack:
        from bot.doors.serve import serve_slack

        app = _app(settings, tracebacks=True, backends=backends)
        try:
            return await serve_slack(app, split=backends is None)
        finally:
            await app.close()
    from bot.doors.console import run_console

    app = _app(settings, tracebacks=False, backends=backends)
    try:
        return await run_console(app)
    finally:
        await app.close()


def _check(args: argparse.Namespace) -> int:
    from bot.config import config_json_schema, load_config, not_acted_on

    if args.schema:
        _print_json(config_json_schema())
        return 0
    if args.live:
        return tools.check_live(args)
    path = _settings(args).opsbot_config
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    envs = ", ".join(config.environments)
    print(f"{path} is valid: project {config.project}, environments {envs}")
    for problem in not_acted_on(config):
        print(f"note: {problem.path}: read and validated, not acted on yet: {problem.message}")
    return 0


async def _audit(args: argparse.Namespace) -> int:
    from bot.config.redact import Redactor
    from bot.core.audit import AuditLog
    from bot.core.db import Database

    settings = _settings(args)
    db = Database(settings.opsbot_db)
    try:
        log = AuditLog(db, Redactor(settings.secrets()))
        if args.audit_command == "verify":
            v = await log.verify()
            if v.ok:
                print(f"audit log intact: {v.rows} entries, chain verified")
                return 0
            print(f"audit log broken at entry {v.bad_id}: {v.reason}", file=sys.stderr)
            return 1
        rows = await log.entries(env=args.env, user=args.user, limit=args.limit)
        if args.json:
            _print_json(rows)
            return 0
        from bot.render.text import render_result
        from commands.audit import AuditEntry, AuditResult

        # the trusted local door: every row, whatever its environment; stored text printed escaped
        print("\n".join(render_result(AuditResult(entries=[AuditEntry(**r) for r in rows]))))
        return 0
    finally:
        db.close()


def parser() -> argparse.ArgumentParser:
    """The argument parser of ``opsbot``."""
    p = argparse.ArgumentParser(prog="opsbot", description="Runs your Product Operation Guide from Slack.")
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="the bot: Socket Mode, HTTP, or the local console")
    serve.add_argument("--config", help="path of ops.yml (default: $OPSBOT_CONFIG or ./ops.yml)")
    serve.add_argument("--port", type=int, help="HTTP port (default: $PORT or 3000)")
    serve.add_argument("--demo", action="store_true",
                       help="the demo world (an in-process shop: no Docker, no database) instead of ops.yml")

    run = sub.add_parser("run", help="run one command, as if typed in Slack")
    run.add_argument("--config", help="path of ops.yml")
    run.add_argument("--as", dest="as_user", metavar="USER_ID", help="act as this Slack user id")
    run.add_argument("--json", action="store_true", help="print the result as one JSON document")
    run.add_argument("words", nargs=argparse.REMAINDER, metavar="COMMAND [ARGS...]")

    for verb, text in (("approve", "approve a pending change"), ("deny", "deny a pending change"),
                       ("cancel", "cancel your own pending change")):  # fmt: skip
        decide = sub.add_parser(verb, help=text)
        decide.add_argument("approval_id", metavar="approval-id")
        decide.add_argument("--as", dest="as_user", metavar="USER_ID", required=True, help="your Slack user id")
        decide.add_argument("--config", help="path of ops.yml")
        if verb == "deny":
            decide.add_argument("--reason", help="why (shown and audited)")

    check = sub.add_parser("check", help="validate ops.yml")
    check.add_argument("--config", help="path of ops.yml")
    check.add_argument("--schema", action="store_true", help="print the JSON Schema of ops.yml")
    tools.add_check_options(check)
    tools.add_commands(sub)

    audit = sub.add_parser("audit", help="list or verify the audit log")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    lst = audit_sub.add_parser("list", help="the newest entries")
    lst.add_argument("--env")
    lst.add_argument("--user")
    lst.add_argument("--limit", type=int, default=20)
    lst.add_argument("--json", action="store_true")
    audit_sub.add_parser("verify", help="walk the hash chain; exit 1 at the first broken entry")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``opsbot`` console script; returns the exit code."""
    args = parser().parse_args(argv)
    logs.setup(os.environ.get("LOG_LEVEL", "info"), tracebacks=False)
    try:
        if args.command == "check":
            return _check(args)
        if args.command == "run":
            if not args.words:
                print("error: no command given; try 'opsbot run help'", file=sys.stderr)
                return 2
            return asyncio.run(_run(args))
        if args.command == "serve":
            _serve_check(args)
            return asyncio.run(_serve(args))
        if args.command == "audit":
            return asyncio.run(_audit(args))
        if args.command in ("approve", "deny", "cancel"):
            return asyncio.run(_decide(args))
        if args.command in tools.COMMANDS:
            return tools.run_tool(args)
    except OpsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("", file=sys.stderr)
        return 0
    except Exception:
        ref = secrets.token_hex(3)
        logging.getLogger("opsbot.cli").debug("unexpected error (ref %s)", ref, exc_info=True)
        print(f"error: unexpected error (ref {ref}); run with LOG_LEVEL=debug for details", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
