"""README.md is true: every `$ cnndsl ...` example prints what the README shows, run in a folder that
holds the README's own `mistake.cnn`."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from cnndsl.cli import main

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"^```[a-z]*\n(.*?)^```", README, re.MULTILINE | re.DOTALL)
SESSIONS = [b for b in BLOCKS if b.startswith("$ cnndsl ")]


def test_the_readme_shows_command_sessions():
    assert len(SESSIONS) >= 3


@pytest.mark.parametrize("block", SESSIONS, ids=[b.splitlines()[0][2:] for b in SESSIONS])
def test_each_session_prints_what_the_readme_shows(block, tmp_path, monkeypatch):
    mistake = next(b for b in BLOCKS if b.startswith("network mistake()"))
    (tmp_path / "mistake.cnn").write_text(mistake, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    command, *shown = block.rstrip("\n").splitlines()
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        main(shlex.split(command)[2:])  # "$ cnndsl ARGS"
    assert out.getvalue().rstrip("\n").splitlines() == shown
