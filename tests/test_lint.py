"""The project's own Python (package, backends, tests, docs scripts, benchmarks) passes ruff with the rules
pyproject.toml pins (E, W, F at 120 columns), as the generated code does (tests/test_torch_backend.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_code_is_lint_clean():
    folders = [str(ROOT / f) for f in ("cnndsl", "backends", "tests", "docs", "benchmarks")]
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", *folders],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
