"""The code base passes ruff (style, bugbear, pyupgrade, public type hints)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_clean():
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is not installed; it is part of the test extra: pip install -e '.[test]'")
    proc = subprocess.run([ruff, "check", "ddpg_tf", "tests", "benchmarks", "train.py"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cli_reference_documents_every_flag():
    import dataclasses

    from ddpg_tf.config import Config

    from ddpg_tf.cli import flag_table_markdown

    reference = (ROOT / "docs" / "cli.md").read_text()
    assert flag_table_markdown() in reference, \
        "docs/cli.md flag table is stale: python -m ddpg_tf.cli docs/cli.md"
    missing = [f.name for f in dataclasses.fields(Config)
               if f"`--{f.name.replace('_', '-')}`" not in reference]
    assert not missing, f"docs/cli.md flag reference lacks: {missing}"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    command = 'pip install -e ".[test]" && python -m pytest'
    assert f"```bash\n{command}\n```" in readme
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert command in ci_lines
