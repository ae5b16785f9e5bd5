"""Error messages: every user mistake is reported as `path:line:col: error: message`, then the source line
and a caret under the spot, exit code 1 and never a traceback.

Each tests/diagnostics/*.cnn holds one mistake and says what the compiler must answer in its header:

    # expect: LINE:COL: error: MESSAGE-SUBSTRING     the first stderr line (required, first line of the file)
    # expect: imports/x.cnn:LINE:COL: error: ...     ... when the mistake lies in an imported file
    # also: SUBSTRING                                 the first line also contains this (repeatable)
    # reject: SUBSTRING                               the first line does not contain this (repeatable)
    # note: LINE:COL: SUBSTRING                       a `path:LINE:COL: note: ...` line contains this (repeatable)
    # xfail: REASON                                   the message is wrong today (position or wording): the
                                                      message test is a strict xfail; the contract must hold
    # undetected: REASON                              the mistake is accepted today: both tests are strict xfails

Helper files that the mistakes import live in tests/diagnostics/imports/ and are not run on their own.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cnndsl.cli import main

HERE = Path(__file__).parent / "diagnostics"
FILES = sorted(HERE.glob("*.cnn"))

HEAD = re.compile(r"^(?P<path>.+?):(?P<line>\d+):(?P<col>\d+): error: (?P<message>.+)$")
NOTE = re.compile(r"^(?P<path>.+?):(?P<line>\d+):(?P<col>\d+): note: (?P<message>.+)$")
# lark's names for tokens, which must never reach a user (they see '(' and '->', not LPAR and __ANON_0)
RAW_TOKEN = re.compile(r"\b(LPAR|RPAR|LSQB|RSQB|LBRACE|RBRACE|COLON|COMMA|DOT|NAME|NUMBER|STRING|SHAPE|COMP_OP|"
                       r"ADD_OP|MUL_OP|_POW|_NL|__ANON_\d+)\b|\$END")


@dataclass
class Expectation:
    path: str | None  # relative to tests/diagnostics, when the error lies in another file
    line: int
    col: int
    message: str
    also: list[str] = field(default_factory=list)
    reject: list[str] = field(default_factory=list)
    notes: list[tuple[int, int, str]] = field(default_factory=list)
    xfail: str | None = None
    undetected: str | None = None


def expectation(path: Path) -> Expectation:
    lines = path.read_text(encoding="utf-8").splitlines()
    m = re.fullmatch(r"# expect: (?:(?P<path>[^:\s]+):)?(?P<line>\d+):(?P<col>\d+): error: (?P<message>.+)", lines[0])
    assert m, f"{path.name}: the first line must be '# expect: LINE:COL: error: MESSAGE'"
    exp = Expectation(m["path"], int(m["line"]), int(m["col"]), m["message"])
    for text in lines[1:]:
        if not text.startswith("# ") or ":" not in text:
            break
        key, _, value = text[2:].partition(": ")
        if key == "also":
            exp.also.append(value)
        elif key == "reject":
            exp.reject.append(value)
        elif key == "note":
            n = re.fullmatch(r"(\d+):(\d+): (.+)", value)
            assert n, f"{path.name}: '# note: LINE:COL: MESSAGE'"
            exp.notes.append((int(n[1]), int(n[2]), n[3]))
        elif key == "xfail":
            exp.xfail = value
        elif key == "undetected":
            exp.undetected = value
        else:
            break
    return exp


def run_check(path: Path, capsys) -> tuple[int, str, str]:
    code = main(["check", str(path)])
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_contract(code: int, stdout: str, stderr: str) -> re.Match:
    """What every mistake must give, whatever its wording: exit 1, a located first line, the source line, a
    caret line, and neither a traceback nor an 'internal error'."""
    assert "Traceback" not in stderr, stderr
    assert "internal error" not in stderr, stderr
    assert code == 1, f"exit code {code}; stdout {stdout!r}; stderr {stderr!r}"
    assert stdout == "", "nothing may be printed to stdout when the input has a mistake"
    lines = stderr.splitlines()
    assert len(lines) >= 3, stderr
    head = HEAD.match(lines[0])
    assert head, f"first line is not 'path:line:col: error: message': {lines[0]!r}"
    assert not RAW_TOKEN.search(head["message"]), f"a parser token name reached the user: {lines[0]!r}"
    gutter = f"{int(head['line']):>5} | "
    assert lines[1].startswith(gutter), f"second line must quote source line {head['line']}: {lines[1]!r}"
    assert re.fullmatch(r" +\| [ \t]*\^+", lines[2]), f"third line must be the caret line: {lines[2]!r}"
    return head


def caret_column(stderr: str) -> int:
    """The 1-based source column the caret line points at."""
    lines = stderr.splitlines()
    gutter = lines[1].index("| ") + 2
    return lines[2].index("^") - gutter + 1


def params(kind: str):
    out = []
    for path in FILES:
        exp = expectation(path)
        reason = exp.undetected if exp.undetected else (exp.xfail if kind == "message" else None)
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        out.append(pytest.param(path, exp, id=path.stem, marks=marks))
    return out


@pytest.mark.parametrize("path, exp", params("contract"))
def test_mistake_is_reported_at_a_place_without_a_traceback(path, exp, capsys):
    code, stdout, stderr = run_check(path, capsys)
    head = assert_contract(code, stdout, stderr)
    shown = Path(head["path"])
    if exp.path is None:
        assert head["path"] == str(path)
    else:
        assert shown.resolve() == (HERE / exp.path).resolve(), head["path"]
    quoted = stderr.splitlines()[1].split(" | ", 1)[1]
    assert quoted == shown.read_text(encoding="utf-8").splitlines()[int(head["line"]) - 1]
    assert caret_column(stderr) == int(head["col"]), "the caret must sit under the reported column"


@pytest.mark.parametrize("path, exp", params("message"))
def test_mistake_has_the_expected_message(path, exp, capsys):
    code, _, stderr = run_check(path, capsys)
    assert code == 1, stderr
    lines = stderr.splitlines()
    head = HEAD.match(lines[0])
    assert head, lines[0]
    assert (int(head["line"]), int(head["col"])) == (exp.line, exp.col), lines[0]
    assert caret_column(stderr) == exp.col, stderr
    message = head["message"]
    assert exp.message in message
    for text in exp.also:
        assert text in message
    for text in exp.reject:
        assert text not in message
    notes = [NOTE.match(line) for line in lines[1:]]
    notes = [(int(n["line"]), int(n["col"]), n["message"]) for n in notes if n]
    for line, col, text in exp.notes:
        assert any((nl, nc) == (line, col) and text in nm for nl, nc, nm in notes), (line, col, text, notes)


def test_every_diagnostics_file_names_one_mistake_and_the_helpers_are_not_run_alone():
    assert len(FILES) >= 40
    for path in FILES:
        expectation(path)  # a header that does not parse fails here, not as a confusing test failure
    for helper in (HERE / "imports").glob("*.cnn"):
        assert not helper.read_text(encoding="utf-8").startswith("# expect:"), helper


@pytest.mark.parametrize("path", [f for f in FILES if not expectation(f).undetected], ids=lambda p: p.stem)
def test_every_reported_spot_is_code_and_its_excerpt_is_the_files_line(path, capsys):
    # What the compiler prints, for the error and each note: the spot is on a line of code of the file it
    # names (not a comment, not white space), and the excerpt under it is that line with the caret there.
    _, _, err = run_check(path, capsys)
    assert_spots_are_code(err)


def assert_spots_are_code(err: str) -> None:
    """Every file:line:col the output names lies on a character of code of that file (not in a comment, not on
    white space; or just past the line's last character), and the two lines under it are that line and a caret
    under the column."""
    shown = err.splitlines()
    spots = [(i, m) for i, line in enumerate(shown) for m in [HEAD.match(line) or NOTE.match(line)] if m]
    assert spots, err
    for i, m in spots:
        line, col = int(m["line"]), int(m["col"])
        if m["path"].startswith("--"):
            continue  # a command-line argument, not a file
        lines = Path(m["path"]).read_text(encoding="utf-8").splitlines()
        assert 1 <= line <= len(lines), f"{m['path']}:{line} is not a line of the file"
        text = lines[line - 1]
        assert not text.lstrip().startswith("#"), f"{m['path']}:{line} is a comment"
        end = len(text.rstrip()) + 1  # just past the last character: where an unfinished line is reported
        assert 1 <= col <= end and (col == end or not text[col - 1].isspace()), f"{m['path']}:{line}:{col}"
        gutter = f"{line:>5} | "
        assert shown[i + 1] == gutter + text and shown[i + 2].index("^") == len(gutter) + col - 1, err


@pytest.mark.parametrize("line, col, caret, refused", [
    (1, 1, 0, "is a comment"), (2, 2, 0, r"(?m)f\.cnn:2:2$"), (2, 6, 0, r"(?m)f\.cnn:2:6$"),
    (2, 17, 0, r"(?m)f\.cnn:2:17$"), (4, 1, 0, "is not a line of the file"), (0, 1, 0, "is not a line of the file"),
    (2, 0, 0, r"(?m)f\.cnn:2:0$"), (2, 5, 1, "error: made up")])
def test_the_spot_check_refuses_comments_blanks_and_misdrawn_carets(tmp_path, line, col, caret, refused):
    # the negative control of assert_spots_are_code, on a made-up message: a comment, the indentation, the blank
    # between two tokens, past the line's end, past the file's end, before its first line, before a line's first
    # column, and a caret one column off, each refused by the check that names it (its message), not by an error
    # further on
    path = tmp_path / "f.cnn"
    path.write_text("# a comment\n    x = conv(1)\n")
    lines = path.read_text().splitlines() + ["", ""]
    gutter = f"{line:>5} | "
    err = (f"{path}:{line}:{col}: error: made up\n{gutter}{lines[line - 1]}\n"
           + " " * (len(gutter) + col - 1 + caret) + "^\n")
    with pytest.raises(AssertionError, match=refused):
        assert_spots_are_code(err)


# ---------------------------------------------------------------- through a real process

SUBPROCESS_FILES = ["syntax_missing_paren", "shape_add_mismatch", "import_cycle", "block_calls_itself",
                    "eval_division_by_zero"]


@pytest.mark.parametrize("name", SUBPROCESS_FILES)
def test_the_command_line_program_reports_mistakes_the_same_way(name, tmp_path):
    """`python -m cnndsl check FILE` in a clean directory: the installed program, not the test's imports."""
    path = HERE / f"{name}.cnn"
    r = subprocess.run([sys.executable, "-m", "cnndsl", "check", str(path)], cwd=tmp_path, check=False,
                       capture_output=True, text=True, timeout=60)
    head = assert_contract(r.returncode, r.stdout, r.stderr)
    exp = expectation(path)
    if exp.path is None:
        assert head["path"] == str(path)
    if not exp.xfail:
        assert (int(head["line"]), int(head["col"])) == (exp.line, exp.col)
        assert exp.message in head["message"]


# ---------------------------------------------------------------- values too large to compute

HUGE = {
    # each would need gigabytes (or hours) to evaluate; the compiler must refuse it with a located error
    "range_of_ten_billion": "c = range(10000000000)",
    "list_repeated_ten_billion_times": "c = [1] * 10000000000",
}


def _limited_run(args, tmp_path, seconds):
    def limit():  # a child that tries to build a 80 GB list gets MemoryError instead of the machine's memory
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    return subprocess.run([sys.executable, "-m", "cnndsl", *args], cwd=tmp_path, check=False, capture_output=True,
                          text=True, timeout=seconds, preexec_fn=limit)


@pytest.mark.skipif(sys.platform == "win32", reason="uses resource limits")
@pytest.mark.parametrize("name", sorted(HUGE))
def test_a_value_too_large_to_build_is_a_located_error(name, tmp_path):
    path = tmp_path / f"{name}.cnn"
    path.write_text(f"network n() {{\n    input x: 3x8x8\n    {HUGE[name]}\n    output y = x\n}}\n")
    r = _limited_run(["check", str(path)], tmp_path, 60)
    head = assert_contract(r.returncode, r.stdout, r.stderr)
    assert (head["line"], head["col"]) == ("3", "9")


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="uses resource limits")
def test_an_integer_too_large_to_compute_is_a_located_error(tmp_path):
    path = tmp_path / "power.cnn"
    path.write_text("network n() {\n    input x: 3x8x8\n    c = 10 ** 10 ** 10\n    output y = x\n}\n")
    r = _limited_run(["check", str(path)], tmp_path, 5)
    head = assert_contract(r.returncode, r.stdout, r.stderr)
    assert (head["line"], head["col"]) == ("3", "9")
