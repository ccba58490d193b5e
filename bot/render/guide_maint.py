"""The exported guide's section 7: backup and restore as opsbot runs them, scheduled and security maintenance."""

from __future__ import annotations

from bot.config import EnvironmentConfig
from bot.core.guide_facts import GuideFacts
from bot.render.guide_ops import approval_text
from bot.render.markdown import argv, block, duration, table, todo


def _stopped_for_restore(env: EnvironmentConfig) -> list[str]:
    """The services a restore stops: those of the shutdown stages before the database's stage."""
    assert env.backup is not None
    db = env.backup.database.service
    out: list[str] = []
    for stage in env.shutdown:
        if db in stage:
            break
        out += stage
    return out


def backups(f: GuideFacts) -> tuple[list[str], list[str]]:
    """The lines of 7.1 (database and file storage backups) and of 7.2 (database restore)."""
    backup_lines: list[str] = []
    files_lines: list[str] = []
    restore_lines: list[str] = []
    schedules = {(s.env, s.task): s.every for s in f.config.schedules}
    for name, env in f.config.environments.items():
        b = env.backup
        if b is None:
            continue
        where = f"in service {b.database.service}" if b.database.service else "on the bot's host"
        every = schedules.get((name, "backup"))
        when = f"automated every {duration(every)}" if every else "by hand (no backup schedule)"
        backup_lines += [
            f"**{name}**: `/ops backup {name}`, {when}:", "",
            *block([f"# {where}, argv (no shell), streamed through gzip and sha256 into the store",
                    argv(b.database.dump),
                    f"# stored as {b.store}{name}/db/<UTC time>-<id>.sql.gz, deleted after {b.retention_days} days "
                    "(never the newest)"], "bash"), "",
        ]  # fmt: skip
        if b.files is not None:
            files_lines += [f"**{name}**: objects of {b.files.from_} copied to {b.files.to} when missing or changed, "
                            "then verified:", "", *block([f"/ops backup {name} --files"], "bash"), ""]  # fmt: skip
        stopped = _stopped_for_restore(env)
        restore_lines += [
            f"**{name}**: `/ops restore {name} <backup id>` (`/ops backups {name}` lists them):", "",
            "1. Check the backup: its sha256 matches and its gzip stream is complete (nothing changes before)",
            f"2. Approval: {approval_text(env)}",
            "3. Take a safety backup (its id undoes a wrong restore)",
            f"4. Stop {', '.join(stopped) or 'nothing (no shutdown stage before the database)'}",
            f"5. Stream the backup through gunzip into `{argv(b.database.restore)}` {where}",
            "6. Start them again in startup order",
            f"7. Verify the health checks ({', '.join(c.name for c in env.health_checks) or 'none configured'})", "",
        ]  # fmt: skip
    if not backup_lines:
        backup_lines = [todo("environments.<env>.backup: how the database is dumped and where it is kept"), ""]
        restore_lines = [todo("environments.<env>.backup.database.restore"), ""]
    if not files_lines:
        files_lines = [todo("environments.<env>.backup.files: the file storage's backup"), ""]
    return (["**Database Backup:**", "", *backup_lines, "**File Storage Backup:**", "", *files_lines],
            ["**Database Restore:**", "", *restore_lines])  # fmt: skip


def scheduled(f: GuideFacts) -> list[list[str]]:
    """The rows of 7.3: maintenance tasks with their windows."""
    m = f.config.maintenance
    zone = f.config.alerting.timezone if f.config.alerting is not None else "UTC"
    if m is None or not m.tasks:
        return [[todo("maintenance.tasks"), "", todo("maintenance.windows"), ""]]
    what = {"db_maintenance": "DB maintenance", "cert_check": "Certificate check", "image_age": "Security patches"}
    rows = []
    for task in m.tasks:
        windows = m.windows.get(task.env, [])
        window = "; ".join(f"{', '.join(w.days)} {w.from_}-{w.to} {zone}" for w in windows) or "none"
        if task.task == "db_maintenance":
            assert task.command is not None
            how = f"`{argv(task.command)}`"
        elif task.task == "cert_check":
            how = f"TLS certificates of the https URLs: warning {task.warning_days} days, critical {task.critical_days}"
        else:
            how = f"images built long ago: warning {task.warning_days} days, critical {task.critical_days}"
        rows.append([f"{what[task.task]} ({task.env})", f"every {duration(task.every)}", window, how])
    return rows


def security(f: GuideFacts) -> list[str]:
    """The checklist of 7.4."""
    duties = f.config.security_maintenance
    if not duties:
        return [f"- [ ] {todo('security_maintenance: the duties and how often')}"]
    out = []
    for d in duties:
        if d.before is not None and d.command is not None:
            out.append(f"- [ ] {d.title}: before every deploy, `{argv(d.command)}` in a one-off container of the new "
                       "image")  # fmt: skip
        else:
            every = f"every {duration(d.every)}" if d.every else ""
            out.append(f"- [ ] {d.title} {every} (`/ops security done {d.item}`)".replace("  ", " "))
    return out


def maintenance(f: GuideFacts) -> list[str]:
    """7. Maintenance."""
    backup, restore = backups(f)
    return [
        "## 7. Maintenance", "", "### 7.1 Backup Procedures", "", *backup, "### 7.2 Restore Procedures", "",
        *restore, "### 7.3 Scheduled Maintenance", *table(["Task", "Frequency", "Window", "Procedure"], scheduled(f)),
        "", "### 7.4 Security Maintenance", *security(f), "", "---", "",
    ]  # fmt: skip
