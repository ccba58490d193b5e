"""``opsbot guide export`` as a process on the test engine's project: versions, variables and flags as the
engine reports them, secrets redacted, the structure of the template, the history from the audit log."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers.configs import example_config
from tests.helpers.guide_template import COPY, structure

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parents[2]


def test_the_guide_of_a_running_project(tmp_path: Path, shop: Any) -> None:
    config = example_config()
    prod = config["environments"]["prod"]
    prod["url"] = shop.url
    prod["runtime"].update(docker_host=shop.host, project=shop.project)
    path = tmp_path / "ops.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "OPSBOT_"))}
    env["OPSBOT_DB"] = str(tmp_path / "opsbot.db")
    out = tmp_path / "guide.md"
    done = subprocess.run([sys.executable, "-m", "bot", "guide", "export", "--config", str(path), "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}" in done.stdout and "Traceback" not in done.stderr
    text = out.read_text()
    assert shop.secret not in text
    assert [h for h in structure(text) if h.startswith("#")] == [
        h for h in COPY.read_text().splitlines() if h.startswith("#")]
    version = shop.engine.client.version()["Version"]
    assert f"running {version} (prod)" in text
    assert "| api (prod) | 1.0 |" in text and "| redis (prod) | 7 |" in text
    assert "`FEATURE_CHECKOUT` | on in prod (worker)" in text
    assert "| `DB_PASSWORD` | TODO: required? | `[REDACTED]` now in worker (prod) |" in text
    assert "ops.yml first loaded" in text.split("## Document History", 1)[1]
