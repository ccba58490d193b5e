"""Count time used as synchronisation in tests: fixed sleeps and wall-clock assertions.

    python scripts/timing_audit.py [DIR ...]      (default: tests/)   exit 1 when any is found

A *fixed sleep* is a ``sleep(x)`` call (time or asyncio, x not the literal 0) outside a loop: a
test that waits a set time and hopes. A sleep inside a ``while``/``for`` is a poll interval and is
fine. A *wall-clock assertion* is an ``assert`` comparing a time difference (``perf_counter() -
start``, ``monotonic() - t``, a name assigned from one, ``elapsed``) with a bound; a comparison with
a ``deadline`` is a poll's own limit and is fine. A line may carry ``# timing: <why>`` when the time
is the behaviour itself (a stand-in that answers slowly), never as synchronisation; those are
listed, not counted. Timing goals belong in bench/.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

CLOCKS = {"perf_counter", "monotonic", "time"}


def _clock(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in CLOCKS


def _stopwatch(node: ast.AST) -> bool:
    """``clock() - start`` (a stopwatch read: a clock minus a name, not minus a constant)."""
    return (
        isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub) and _clock(node.left)
        and isinstance(node.right, ast.Name | ast.Attribute)
    )


def _difference(node: ast.AST) -> bool:
    """A stopwatch read anywhere in ``node``."""
    return any(_stopwatch(n) for n in ast.walk(node))


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def audit(path: Path) -> tuple[list[str], list[str], list[str]]:
    """(fixed sleeps, wall-clock assertions, allowed with a reason) in one file, as ``path:line``."""
    source = path.read_text()
    lines = source.splitlines()
    tree = ast.parse(source)
    parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
    timed = {"elapsed", "took"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and _stopwatch(node.value):
            timed |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    sleeps, walls, allowed = [], [], []
    for node in ast.walk(tree):
        where = f"{path}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "sleep":
            if node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value == 0:
                continue  # a yield to the event loop, not a wait
            parent, in_loop = parents.get(node), False
            while parent is not None and not isinstance(parent, ast.FunctionDef | ast.AsyncFunctionDef):
                if isinstance(parent, ast.While | ast.For | ast.AsyncFor):
                    in_loop = True
                    break
                parent = parents.get(parent)
            if not in_loop:
                (allowed if "# timing:" in lines[node.lineno - 1] else sleeps).append(where)
        elif isinstance(node, ast.Assert):
            for cmp in (n for n in ast.walk(node.test) if isinstance(n, ast.Compare)):
                names = _names(cmp)
                if any("deadline" in n for n in names):
                    continue
                if any(_difference(part) for part in (cmp.left, *cmp.comparators)) or names & timed:
                    (allowed if "# timing:" in lines[node.lineno - 1] else walls).append(where)
                    break
    return sleeps, walls, allowed


def main(argv: list[str]) -> int:
    """Print the findings; 1 when there is a fixed sleep or a wall-clock assertion."""
    roots = [Path(a) for a in argv] or [Path(__file__).resolve().parents[1] / "tests"]
    sleeps, walls, allowed = [], [], []
    for root in roots:
        for path in sorted(root.rglob("*.py")) if root.is_dir() else [root]:
            s, w, a = audit(path)
            sleeps += s
            walls += w
            allowed += a
    for title, found in (("fixed sleeps", sleeps), ("wall-clock assertions", walls), ("allowed (# timing:)", allowed)):
        print(f"{title}: {len(found)}")
        for item in found:
            print(f"  {item}")
    return 1 if sleeps or walls else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
