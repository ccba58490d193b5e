"""The exported guide's sections 5 to 8 and its Document History: the procedures as opsbot runs them."""

from __future__ import annotations

from bot.config import EnvironmentConfig
from bot.core.guide_facts import GuideFacts
from bot.core.schedule_state import task_words
from bot.render.markdown import argv, block, duration, table, todo


def _names(names: list[str]) -> str:
    return ", ".join(names)


def _checks(env: EnvironmentConfig) -> str:
    return _names([c.name for c in env.health_checks]) or "none configured"


def approval_text(env: EnvironmentConfig) -> str:
    """Who must approve a change in ``env``, and how long the request waits."""
    a = env.approval
    if a.required == 0:
        return f"the requester confirms (approval.required: 0); the request expires after {duration(a.expires_in)}"
    return (f"{a.required} approver{'s' if a.required > 1 else ''} other than the requester (access.approvers or "
            f"admins), within {duration(a.expires_in)}")  # fmt: skip


def deployment(f: GuideFacts) -> list[str]:
    """5. Deployment: environments, deploy and rollback as opsbot runs them."""
    envs = [
        [name, env.url or todo("url"), env.purpose or todo("purpose")] for name, env in f.config.environments.items()
    ]
    manual: list[str] = []
    rollback: list[str] = []
    for name, env in f.config.environments.items():
        services = [f"{s} ({env.services[s].image}:<version>)" for s in env.deploy_services]
        replace = (
            "a service update per service, one task at a time (Swarm rolls a failing task back itself)"
            if env.runtime.kind == "swarm"
            else "each container in turn, keeping its whole configuration; the old one is kept until verified"
        )
        steps = [f"1. Request it: `/ops deploy {name} <version>` (`--services a,b` for some, `--dry-run` for the plan)",
                 f"2. Approval: {approval_text(env)}"]  # fmt: skip
        if env.migrate is not None:
            steps.append(f"3. Migrate: `{argv(env.migrate.command)}` in a one-off container of {env.migrate.service}'s "
                         "new image; a failure stops the deploy before anything is replaced")  # fmt: skip
        n = len(steps) + 1
        steps += [
            f"{n}. Replace {_names(services) or todo('services with deploy: true')}: {replace}",
            f"{n + 1}. Verify: every container running and healthy, then the health checks ({_checks(env)})",
            f"{n + 2}. Verification failed: opsbot puts the previous containers back by itself and verifies again",
        ]
        manual += [f"**{name}** ({env.runtime.kind} project {env.runtime.project}):", "", *steps, ""]
        rollback += [
            f"**{name}**:", "",
            f"1. `/ops rollback {name}` puts back the images that ran before the newest successful deploy "
            f"(recorded by it; `/ops history {name}` lists them), or `--to <version>`",
            f"2. Approval: {approval_text(env)}",
            f"3. Replace and verify as a deploy does (health checks: {_checks(env)})", "",
        ]  # fmt: skip
    return [
        "## 5. Deployment", "", "### 5.1 Deployment Environments", *table(["Environment", "URL", "Purpose"], envs), "",
        "### 5.2 Deployment Process", "", "#### CI/CD Pipeline (Recommended)",
        todo("the pipeline that tests, builds and pushes the images; its deploy step can hand over to opsbot:"),
        *block(["opsbot run --as <the pipeline's Slack user id> deploy <env> <version>   # waits for approval"],
               "bash"), "",
        "#### Manual Deployment", "", *manual, "### 5.3 Rollback Procedure", "", *rollback, "---", "",
    ]  # fmt: skip


def _stage_lines(stages: list[list[str]], verb: str, env: EnvironmentConfig) -> list[str]:
    out = []
    for i, stage in enumerate(stages, 1):
        grace = [f"{s} {duration(t)}" for s in stage if (t := env.services[s].stop_timeout)]
        extra = f" (grace: {', '.join(grace)})" if grace and verb == "Stop" else ""
        out.append(f"{i}. {verb} {_names(stage)}{extra}")
    return out


def operations(f: GuideFacts) -> list[str]:
    """6. Operations: daily tasks, startup and shutdown, monitoring and alerting, logging."""
    c = f.config
    names = {"health_check": "Health check", "verify_backup": "Backup verification", "backup": "Backup",
             "backup_files": "File-storage backup"}
    commands = {"health_check": "health", "verify_backup": "verify-backup", "backup": "backup"}
    daily = [[names[s.task], f"every {duration(s.every)} ({s.env}, automated)",
              f"`/ops {' '.join(task_words(s.task, s.env))}`; warning/critical posted to slack.alert_channels"]
             for s in c.schedules]  # fmt: skip
    for task in ("health_check", "verify_backup"):
        if not any(s.task == task for s in c.schedules):
            daily.append([names[task], todo("add it to schedules"), f"`/ops {commands[task]} <env>`"])
    daily.append(["Log review", todo("how often, by whom"), "`/ops logs <env> <service> --grep ERROR`"])
    sequences: list[str] = []
    for name, env in c.environments.items():
        checks = f"{len(env.startup) + 1}. Verify health checks ({_checks(env)})"
        sequences += [
            f"**Startup Sequence:** ({name}; each stage running and healthy before the next)", "",
            *([*_stage_lines(env.startup, "Start", env), checks] if env.startup else [todo("startup stages")]), "",
            *block([f"/ops startup {name}"], "bash"), "",
            f"**Shutdown Sequence:** ({name}; each container gets its stop timeout to drain)", "",
            *(_stage_lines(env.shutdown, "Stop", env) if env.shutdown else [todo("shutdown stages")]), "",
            *block([f"/ops shutdown {name}"], "bash"), "",
        ]  # fmt: skip
    return [
        "## 6. Operations", "", "### 6.1 Daily Operations", *table(["Task", "Frequency", "Procedure"], daily), "",
        "### 6.2 Startup/Shutdown", "", *sequences, "### 6.3 Monitoring", "", "#### Metrics to Monitor",
        *table(["Metric", "Warning", "Critical", "Tool"], _metrics(f)), "", "#### Alerting",
        *table(["Alert", "Channel", "Escalation"], _alerts(f)), "", "### 6.4 Logging", "", "**Log Locations:**",
        *table(["Log Type", "Location", "Retention"], [
            ["Application", "each container's log on its engine: `/ops logs <env> <service>` (secrets redacted)",
             todo("the engines' log driver retention")],
            ["Audit", "opsbot's SQLite database (OPSBOT_DB), table audit; `opsbot audit list`",
             "kept: append-only, hash-chained (`opsbot audit verify`)"],
            ["opsbot", "the opsbot process's stderr", todo("where the process's output is kept")],
        ]), "", "**Log Format:**", "", "opsbot's own lines (its request id is in the audit log too):",
        *block(["[TIMESTAMP] [LEVEL] [REQUEST_ID] [MESSAGE]"]), "", todo("the services' own log format"), "",
        "---", "",
    ]  # fmt: skip


def _metrics(f: GuideFacts) -> list[list[str]]:
    t, m = f.config.thresholds, f.config.monitoring
    sources: dict[str, str] = {}
    if m is not None and m.prometheus is not None:
        sources.update({k: f"Prometheus ({m.prometheus.url})" for k in m.prometheus.queries})
    if m is not None and m.cloudwatch is not None:
        sources.update({k: "CloudWatch" for k in m.cloudwatch.queries})
    rows = [
        ("CPU Usage", t.cpu_percent, "%", "cpu_percent", "Docker stats (`/ops status`)"),
        ("Memory Usage", t.memory_percent, "%", "memory_percent", "Docker stats (`/ops status`)"),
        ("Response Time", t.response_time_ms, "ms", "response_time_ms", "health checks' latency (`/ops health`)"),
        ("Error Rate", t.error_rate_percent, "%", "error_rate_percent", todo("where the error rate is measured")),
        ("Disk Usage", t.disk_percent, "%", "disk_percent", "df in the containers (`/ops troubleshoot`)"),
    ]
    return [[name, f">= {limit.warning:g}{unit}", f">= {limit.critical:g}{unit}", sources.get(key, tool)]
            for name, limit, unit, key, tool in rows]  # fmt: skip


def _alerts(f: GuideFacts) -> list[list[str]]:
    a, channels = f.config.alerting, f.config.slack.alert_channels
    out = []
    for severity in ("critical", "warning", "info"):
        route = getattr(a, severity) if a is not None else None
        slack = f"Slack {channels[severity]}" if severity in channels else None
        if route is None:
            out.append([severity.title(), slack or todo(f"slack.alert_channels.{severity}"),
                        todo(f"alerting.{severity}")])  # fmt: skip
            continue
        where = []
        for to in route.to:
            if to == "slack":
                where.append(slack or "Slack")
            elif to == "pagerduty" and a is not None and a.pagerduty is not None:
                where.append(f"PagerDuty (key in {a.pagerduty.routing_key_env})")
            elif to == "email" and a is not None and a.email is not None:
                where.append(f"Email to {', '.join(a.email.to)}")
        when = []
        if route.escalate_after:
            when.append(f"not acknowledged within {duration(route.escalate_after)}: next escalation level")
        if route.digest_at:
            when.append(f"one digest at {route.digest_at} ({a.timezone if a else 'UTC'}), Monday to Friday")
        out.append([severity.title(), ", ".join(where), "; ".join(when) or todo(f"alerting.{severity}")])
    return out


def troubleshooting(f: GuideFacts) -> list[str]:
    """8. Troubleshooting: common issues, diagnostic commands, the escalation path."""
    c = f.config
    issues = [[t.issue, ", ".join(t.symptoms), t.resolution] for t in c.troubleshooting]
    diagnostics = [
        "# built in: containers, health, logs, stats, disk",
        "/ops status <env>",
        "/ops health <env>",
        "/ops logs <env> <service> --since 15m --grep ERROR",
        "/ops troubleshoot <symptom words>",
    ]
    for name, env in c.environments.items():
        for key, d in env.diagnostics.items():
            diagnostics.append(f"# {key} ({name}, in service {d.service}; part of troubleshoot)")
            diagnostics.append(argv(d.command))
    levels = [[e.level, e.contact, e.when] for e in c.escalation]
    return [
        "## 8. Troubleshooting", "", "### 8.1 Common Issues",
        *table(["Issue", "Symptoms", "Resolution"], issues or [[todo("troubleshooting"), "", ""]]), "",
        "`/ops troubleshoot <symptom>` finds the issue, runs its diagnostics and shows the path below.", "",
        "### 8.2 Diagnostic Commands", *block(diagnostics, "bash"), "", "### 8.3 Escalation Path",
        *table(["Level", "Contact", "When"], levels or [[todo("escalation"), "", ""]]), "",
        "`/ops escalate <level>` mentions that contact in the channel.", "", "---", "",
    ]  # fmt: skip


def history(f: GuideFacts) -> list[str]:
    """The Document History: ops.yml's changes and the deploys and rollbacks, from the audit log."""
    rows = [[h.version, h.date, h.author, h.changes] for h in f.history]
    if not rows:
        rows = [
            [f.version, f"{f.generated_at:%Y-%m-%d}", "opsbot", "exported; no change recorded in the audit log yet"]
        ]
    return ["## Document History", "", *table(["Version", "Date", "Author", "Changes"], rows), "", "---"]
