"""A small mutation check: deliberate breakages of the request path, approvals, redaction and the
audit chain, one at a time, on a copy of the tree; the unit tests named for each must catch it.

    python scripts/mutate.py [--list] [NAME ...]        (make mutate)

Each mutant replaces one exact piece of code (it must be found exactly once: a mutant that no longer
applies fails the run, so that the check cannot silently go blind after a refactoring) and runs only
the unit tests that guard that code. Exit 1 when a mutant survives (its tests still pass) or no
longer applies; 0 when every one was caught. Nothing in the working tree is touched.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: what is copied: the code and its tests, nothing else
COPY = ("bot", "commands", "adapters", "tests", "examples", "spec", "pyproject.toml", "app-manifest.yml")


@dataclass(frozen=True)
class Mutant:
    """One breakage: in ``path``, ``old`` (found exactly once) becomes ``new``; ``tests`` must catch it."""

    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


MUTANTS = (
    # ------------------------------------------------------------------ the request path
    Mutant("authorize lets anyone run anything", "bot/core/access.py",
           "        if roles & needed:\n            return roles\n", "        return roles\n",
           ("tests/unit/test_engine.py",)),
    Mutant("a result is rendered unredacted", "bot/core/engine.py",
           "        return kind.model_validate(self.redactor.data(dumped))",
           "        return kind.model_validate(dumped)", ("tests/unit/test_engine.py",)),
    Mutant("a change runs at once, without approval", "bot/core/approvals.py",
           "            state = APPROVED if len(approvers) >= needed else PENDING\n",
           "            state = APPROVED\n", ("tests/unit/test_approvals_state.py", "tests/unit/test_changes.py")),
    Mutant("the same delivery twice runs twice", "bot/core/dedupe.py",
           "            return cur.rowcount == 1\n", "            return True\n",
           ("tests/unit/test_engine.py", "tests/unit/test_scheduler.py", "tests/unit/test_dedupe.py")),
    # ------------------------------------------------------------------ approvals
    Mutant("the requester approves their own change", "bot/core/approvals.py",
           "if user == a.requester and a.required > 0:", "if False:",
           ("tests/unit/test_approvals_state.py",)),
    Mutant("an approved change can be claimed twice", "bot/core/approvals.py",
           "if a.state != APPROVED or len(a.approvers) < max(a.required, 1):",
           "if a.state not in (APPROVED, RUNNING) or len(a.approvers) < max(a.required, 1):",
           ("tests/unit/test_approvals_state.py",)),
    Mutant("an expired approval can still be decided", "bot/core/approvals.py",
           "        if a.state == PENDING and now >= a.expires_at:\n            raise",
           "        if False:\n            raise", ("tests/unit/test_approvals_state.py",)),
    Mutant("one approver counts twice", "bot/core/approvals.py",
           "        if user in a.approvers:\n", "        if False:\n", ("tests/unit/test_approvals_state.py",)),
    # ------------------------------------------------------------------ redaction
    Mutant("known secret values are not masked", "bot/config/redact.py",
           "            value = re.compile(\"|\".join(map(re.escape, hits))).sub(MASK, value)\n", "            pass\n",
           ("tests/unit/test_redact.py", "tests/unit/test_engine.py")),
    Mutant("secret-looking variable names are not recognised", "bot/config/redact_names.py",
           "            return True\n    return False", "            return False\n    return False",
           ("tests/unit/test_redact.py", "tests/unit/test_engine.py")),
    Mutant("nested data is not redacted", "bot/config/redact.py",
           "            return {k: self.data(v) for k, v in value.items()}", "            return dict(value)",
           ("tests/unit/test_redact.py", "tests/unit/test_engine.py")),
    # ------------------------------------------------------------------ the audit chain
    Mutant("a row's hash leaves out who acted", "bot/core/audit_chain.py",
           '"id", "ts", "actor", "source",', '"id", "ts", "source",', ("tests/unit/test_audit.py",)),
    Mutant("verify does not check the links", "bot/core/audit_chain.py",
           "        if prev is not None and prev_hash != prev:\n", "        if False:\n",
           ("tests/unit/test_audit.py",)),
    Mutant("verify does not check the head (rows cut from the end go unseen)", "bot/core/audit.py",
           "            if end != head:", "            if False:", ("tests/unit/test_audit.py",)),
)


def copy_tree(dest: Path) -> None:
    """The code and tests, into ``dest``."""
    for name in COPY:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif source.exists():
            shutil.copy2(source, dest / name)


def run_tests(tree: Path, tests: tuple[str, ...]) -> tuple[int, str]:
    """(exit code, last lines of output) of the unit tests ``tests`` in ``tree``."""
    existing = [t for t in tests if (tree / t).exists()]
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    argv = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
            "-o", "addopts=", "--timeout=300", *existing]  # fmt: skip
    done = subprocess.run(argv, cwd=tree, env=env, capture_output=True, text=True, timeout=1800)
    return done.returncode, "\n".join((done.stdout + done.stderr).strip().splitlines()[-3:])


def main(argv: list[str]) -> int:
    """Apply each mutant in turn; 1 when one survives or no longer applies."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="only the mutants whose name contains one of these")
    parser.add_argument("--list", action="store_true", help="list the mutants and their tests")
    opts = parser.parse_args(argv)
    chosen = [m for m in MUTANTS if not opts.names or any(n in m.name for n in opts.names)]
    if opts.list:
        for m in chosen:
            print(f"{m.name}  ({m.path}; {', '.join(m.tests)})")
        return 0
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="opsbot-mutate-") as tmp:
        tree = Path(tmp)
        copy_tree(tree)
        guards = tuple(sorted({t for m in chosen for t in m.tests}))
        code, tail = run_tests(tree, guards)
        if code != 0:
            print(f"the unit tests fail without any mutant; fix them first:\n{tail}")
            return 1
        for m in chosen:
            target = tree / m.path
            original = target.read_text()
            if original.count(m.old) != 1:
                problems.append(f"NO LONGER APPLIES  {m.name}: {m.path} has {original.count(m.old)} copies of its code")
                print(problems[-1])
                continue
            target.write_text(original.replace(m.old, m.new))
            start = time.monotonic()
            try:
                code, tail = run_tests(tree, m.tests)
            finally:
                target.write_text(original)
            took = time.monotonic() - start
            if code == 0:
                problems.append(f"SURVIVED  {m.name} ({m.path}): {', '.join(m.tests)} still pass")
                print(problems[-1])
            else:
                print(f"caught    {m.name} ({took:.0f} s)")
    print(f"{len(chosen) - len(problems)} of {len(chosen)} mutants caught")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
