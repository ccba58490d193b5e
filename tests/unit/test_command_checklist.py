"""The checklist of a command: what every registered command must bring along (README, "Where to add a command").

A new command that lacks its help, its usage, a valid example, a declared result type, a text and a Block
Kit renderer for it, a plan when it changes something, a line in the README, or a test that runs it,
fails here, named.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import load_config
from bot.core.grammar import parse, split
from bot.render.text import RENDERERS as TEXT
from bot.slack.blocks import RENDERERS as BLOCKS
from commands import REGISTRY, WHERE, Registry
from commands.base import CommandSpec

ROOT = Path(__file__).resolve().parents[2]
CONFIG = load_config(ROOT / "examples" / "ops.yml")
README = (ROOT / "README.md").read_text()
TESTS = {
    p: p.read_text()
    for p in (ROOT / "tests").rglob("test_*.py")
    if p.name != Path(__file__).name
}


def problems_of(spec: CommandSpec) -> list[str]:
    """What ``spec`` lacks of the checklist (empty when it has all of it)."""
    out = []
    if not spec.summary.strip():
        out.append("no one-line summary (the first line of the module's docstring)")
    if len(spec.help.strip()) <= len(spec.summary.strip()):
        out.append("no help beyond the summary (the module's docstring explains the command)")
    if not spec.usage.startswith(spec.name):
        out.append(f"usage {spec.usage!r} does not start with the command's name")
    if not spec.examples:
        out.append("no example")
    for example in spec.examples:
        try:
            parsed = parse(split(example), REGISTRY, CONFIG)
        except Exception as exc:
            out.append(f"example {example!r} does not parse: {exc}")
            continue
        if parsed.spec.name != spec.name:
            out.append(f"example {example!r} runs {parsed.spec.name}")
    if not spec.results:
        out.append("no result type declared (CommandSpec.results)")
    for result in spec.results:
        if result not in TEXT:
            out.append(f"{result.__name__} has no text renderer (bot/render)")
        if result not in BLOCKS:
            out.append(f"{result.__name__} has no Block Kit renderer (bot/slack)")
    if spec.changes and spec.plan is None:
        out.append("changes something but has no plan (approvals are bound to the plan)")
    if f"`{spec.name}" not in README:
        out.append("not in README.md's table of commands")
    request = re.compile(rf"""["'](?:/ops )?{re.escape(spec.name)}(?:\s|["'])""")
    if not any(request.search(text) for text in TESTS.values()):
        out.append("no test runs it (no test file sends a request starting with its name)")
    return out


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_command_brings_its_checklist(name: str) -> None:
    assert problems_of(REGISTRY[name]) == []


def test_the_checklist_catches_a_command_that_lacks_everything() -> None:
    async def run(ctx: object, args: object) -> None:
        raise AssertionError("never run")

    bare = CommandSpec(
        name="frobnicate", summary="", help="", args=REGISTRY["status"].args, run=run,  # type: ignore[arg-type]
        usage="frob", changes=True,
    )
    found = problems_of(bare)
    for words in ("summary", "help beyond", "usage", "no example", "no result type", "no plan", "README",
                  "no test runs it"):  # fmt: skip
        assert any(words in problem for problem in found), (words, found)


def test_every_module_that_defines_a_command_registers_it() -> None:
    defined = {
        (path.stem, name)
        for path in (ROOT / "commands").glob("*.py")
        for name in re.findall(r"^(\w+) = CommandSpec\(", path.read_text(), re.M)
    }
    assert defined == set(WHERE.values())


def test_the_registry_imports_a_command_only_when_it_is_asked_for() -> None:
    code = (
        "import sys, commands\n"
        "before = sorted(m for m in sys.modules if m in {'commands.status', 'commands.deploy', 'commands.backup'})\n"
        "spec = commands.REGISTRY['backup']\n"
        "print(before, spec.name, 'commands.backup' in sys.modules, 'commands.status' in sys.modules,\n"
        "      'status' in commands.REGISTRY, len(commands.REGISTRY))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["[]", "backup", "True", "False", "True", str(len(WHERE))]


def test_the_registry_refuses_a_spec_under_another_name() -> None:
    wrong = Registry({"health": ("status", "SPEC")})
    with pytest.raises(TypeError, match="not the spec of 'health'"):
        wrong["health"]
    with pytest.raises(KeyError):
        wrong["nope"]
