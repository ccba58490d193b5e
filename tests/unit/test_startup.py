"""What an ``opsbot`` process does before it runs a command: nothing installed beside it joins in."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_no_pydantic_plugin_is_looked_for_nor_loaded(tmp_path: Path) -> None:
    """A pydantic plugin (any installed package's entry point) would see ops.yml and every request's arguments
    as they are validated: the entry point ``opsbot`` turns them off, so they are not even searched for."""
    code = (
        "import sys\n"
        "from bot.doors import cli\n"
        "code = cli.main(['run', '--config', sys.argv[1], '--json', 'help'])\n"
        "from pydantic.plugin import _loader\n"
        "print(code, _loader._plugins)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    env["OPSBOT_DB"] = str(tmp_path / "opsbot.db")
    run = subprocess.run([sys.executable, "-c", code, str(ROOT / "examples" / "ops.yml")], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True)  # fmt: skip
    assert run.stdout.split()[-2:] == ["0", "None"], run.stdout[-500:] + run.stderr[-500:]
