"""Find the guide's entry for a symptom, run its live diagnostics, and show who to escalate to.

The symptom words are matched against each `troubleshooting` entry's symptoms: numbers such as
`504` exactly, words and phrases case-insensitively, then, when nothing matches, by similarity
(typos). For each matching entry: the issue, its resolution, and the findings of its `diagnose`
items (built-ins: containers, health, logs, stats, disk; or the environment's own `diagnostics`),
all run concurrently in `--env` (default: the default environment). The escalation path closes
the answer. No match: the known issues are listed.

Guide: 8.1 Common issues, 8.2 Diagnostics, 8.3 Escalation.
"""

from __future__ import annotations

import difflib
import re
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from commands.base import Args, CommandSpec, Ctx, EnvName, Result, Severity, Text, env_field, worst
from commands.diagnostics import Finding, run_all

if TYPE_CHECKING:
    from bot.config import TroubleshootingEntry

FUZZY_CUTOFF = 0.75


class TroubleshootArgs(Args):
    """Arguments of ``troubleshoot``."""

    symptoms: list[Text] = Field(min_length=1, max_length=30)
    env: EnvName = env_field()


class Match(BaseModel):
    """A guide entry that matches the symptom, with what its diagnostics found."""

    issue: str
    symptoms: list[str]
    matched: list[str]
    how: Literal["exact", "fuzzy"]
    resolution: str
    diagnostics: list[Finding] = Field(default_factory=list)


class Contact(BaseModel):
    """One level of the escalation path."""

    level: str
    contact: str
    when: str


class TroubleshootResult(Result):
    """Matching entries with live findings, and the escalation path."""

    kind = "troubleshoot"
    environment: str
    query: str
    matches: list[Match] = Field(default_factory=list)
    known_issues: list[str] = Field(default_factory=list)
    escalation: list[Contact] = Field(default_factory=list)

    def severity(self) -> Severity:
        """The worst finding of every match."""
        return worst(f.severity for m in self.matches for f in m.diagnostics)


def _words(text: str) -> list[str]:
    return re.findall(r"[\w.]+", text.lower())


def _matches(symptom: str, query: str, words: list[str]) -> bool:
    s = symptom.lower().strip()
    if s.isdigit():
        return s in words
    return re.search(rf"(?<![\w]){re.escape(s)}(?![\w])", query) is not None


def _fuzzy(symptom: str, query: str, words: list[str]) -> bool:
    s = symptom.lower().strip()
    if s.isdigit():
        return False
    if difflib.SequenceMatcher(None, s, query).ratio() >= FUZZY_CUTOFF:
        return True
    parts = s.split()
    if len(parts) == 1:
        return bool(difflib.get_close_matches(s, words, n=1, cutoff=FUZZY_CUTOFF))
    return False


def find(entries: list[TroubleshootingEntry], text: str) -> list[tuple[TroubleshootingEntry, list[str], str]]:
    """The entries matching ``text``, best first: (entry, matched symptoms, "exact" or "fuzzy")."""
    query = " ".join(text.lower().split())
    words = _words(query)
    found = []
    for index, entry in enumerate(entries):
        hit = [s for s in entry.symptoms if _matches(s, query, words)]
        if hit:
            found.append((entry, hit, "exact", index))
    if not found:
        for index, entry in enumerate(entries):
            hit = [s for s in entry.symptoms if _fuzzy(s, query, words)]
            if hit:
                found.append((entry, hit, "fuzzy", index))
    # more matched symptoms first, then longer (more specific) phrases, then guide order
    found.sort(key=lambda f: (-len(f[1]), -max(len(s) for s in f[1]), f[3]))
    return [(e, hit, how) for e, hit, how, _ in found]


async def run(ctx: Ctx, args: TroubleshootArgs) -> TroubleshootResult:
    """Match, then diagnose every match concurrently."""
    assert args.env is not None
    query = " ".join(args.symptoms)
    matches: list[Match] = []
    for entry, hit, how in find(list(ctx.config.troubleshooting), query):
        await ctx.progress(f"Diagnosing {entry.issue} in {args.env}...")
        findings = await run_all(ctx, args.env, list(entry.diagnose), args.symptoms)
        matches.append(
            Match(
                issue=entry.issue,
                symptoms=list(entry.symptoms),
                matched=hit,
                how=how,
                resolution=entry.resolution,
                diagnostics=findings,
            )
        )
    return TroubleshootResult(
        environment=args.env,
        query=query,
        matches=matches,
        known_issues=[] if matches else [f"{e.issue} ({', '.join(e.symptoms)})" for e in ctx.config.troubleshooting],
        escalation=[Contact(level=e.level, contact=e.contact, when=e.when) for e in ctx.config.escalation],
    )


SPEC = CommandSpec(
    name="troubleshoot",
    summary="the guide's entry for a symptom, live diagnostics, and who to escalate to",
    help=__doc__ or "",
    args=TroubleshootArgs,
    run=run,
    usage="troubleshoot <symptom words> [--env prod]",
    positionals=("symptoms",),
    guide="8.1-8.3",
    verb="Troubleshooting",
    examples=("troubleshoot 504", "troubleshoot out of memory --env prod"),
    results=(TroubleshootResult,),
)
