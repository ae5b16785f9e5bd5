"""Every bound of cnndsl/limits.py, hit: values (64-bit integers, finite floats, torch's argument limit),
work (evaluation steps, list and string sizes, nodes, file size), output-sized ops, and confined imports.
Each test checks the message and its position, and that the answer comes quickly."""

from __future__ import annotations

import os
import time
from math import ceil

import pytest

import cnndsl
import cnndsl.cli
from cnndsl import limits
from cnndsl.ops.pool import largest_window

TEMPLATE = "network n() {{\n    input x: {shape}\n    c = {expr}\n    output y = x -> {layer}\n}}\n"


def error_of(tmp_path, text: str, name: str = "limits.cnn", **load) -> cnndsl.CnnError:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    t0 = time.perf_counter()
    with pytest.raises(cnndsl.CnnError) as info:
        cnndsl.analyze(cnndsl.load(str(path), **load))
    assert time.perf_counter() - t0 < 10, "a bound must answer quickly"
    return info.value


def expr_error(tmp_path, expr: str, shape: str = "3x8x8", layer: str = "relu") -> cnndsl.CnnError:
    return error_of(tmp_path, TEMPLATE.format(shape=shape, expr=expr, layer=layer))


# ---------------------------------------------------------------- values


@pytest.mark.parametrize("expr, message, col", [
    ("10 ** 400", "10 ** 400 is too large: integers must fit in 64 bits", 9),
    ("2 ** 63", "the result of '**' is too large: integers must fit in 64 bits", 9),
    ("(2 ** 62) * 4", "the result of '*' is too large", 9),
    ("9223372036854775807 + 1", "the result of '+' is too large", 9),
    ("99999999999999999999", "a number is too large: integers must fit in 64 bits", 9),
    ("-(-9223372036854775807 - 1)", "a number is too large", 9),
    ("1e400", "a number is not finite (inf)", 9),
    ("1e400 - 1e400", "a number is not finite (inf)", 9),
    ("1e300 * 1e300", "the result of '*' is not finite", 9),
    ("2.0 ** 2000", "the result of '**' is too large a number", 9),
    ("ceil(1e300)", "the result of ceil() is too large", 9),
    ("int(1e19)", "the result of int() is too large", 9),
    ("sum([9223372036854775807, 1])", "the result of sum() is too large", 9),
    ("round(5, -10 ** 18)", "round() digits must be an integer from -30 to 30", 9),
    ('int("1" * 1)', "cannot apply '*'", 13),
])
def test_numbers_stay_within_64_bits_and_finite(tmp_path, expr, message, col):
    err = expr_error(tmp_path, expr)
    assert message in err.message
    assert (err.span.line, err.span.column) == (3, col)


def test_squaring_in_a_loop_stops_at_the_bound_not_in_big_integer_arithmetic(tmp_path):
    text = ("network n() {\n    input x: 3x8x8\n    c = 3\n    for i in range(40) {\n        c = c * c\n    }\n"
            "    output y = x -> relu\n}\n")
    err = error_of(tmp_path, text)
    assert "the result of '*' is too large" in err.message and err.span.line == 5
    # after iteration i, c = 3 ** 2 ** (i + 1): 3 ** 32 < 2 ** 63 < 3 ** 64, made in iteration 5
    assert "in iteration i = 5 of the for at line 4" in err.format()


@pytest.mark.parametrize("layer, message", [
    ("conv(8, 3, stride=2 ** 40)", "conv: 'stride' must be at most 2,147,483,647 in size"),
    ("conv(2 ** 31, 1)", "conv: 'out' must be at most 2,147,483,647"),
    ("leaky_relu(1e400)", "not finite"),
    ("dropout(1e400 - 1e400)", "not finite"),
])
def test_op_arguments_within_torchs_limits(tmp_path, layer, message):
    err = expr_error(tmp_path, "0", layer=layer)
    assert message in err.message and err.span.line == 4


@pytest.mark.parametrize("shape, message", [
    ("3x4294967296x2", "input: a dimension of 4,294,967,296 is more than torch allows"),
    ("2147483647x2147483647x2147483647", "input: a tensor of"),
])
def test_input_shapes_within_limits(tmp_path, shape, message):
    err = expr_error(tmp_path, "0", shape=shape)
    assert message in err.message and (err.span.line, err.span.column) == (2, 14)


def test_an_op_output_beyond_the_element_limit_is_refused_at_the_op(tmp_path):
    err = expr_error(tmp_path, "0", shape="3x65536x65536", layer="conv(2147483647, 1)")
    assert "a tensor of" in err.message and "more than any machine holds" in err.message


# ---------------------------------------------------------------- work


@pytest.mark.parametrize("expr, message", [
    ("len(range(10 ** 9))", "range() of 1,000,000,000 elements is more than the 1,000,000 allowed"),
    ("[1] * 10 ** 10", "a list of 10,000,000,000 elements is more than the 1,000,000 allowed"),
    ("[1] * 1000 + [2] * 999999", "a list of 1,000,999 elements"),
    ('"ab" + "' + "c" * 99_999 + '"', "a string of 100,001 characters is longer than the 100,000 allowed"),
])
def test_list_and_string_sizes(tmp_path, expr, message):
    err = expr_error(tmp_path, expr)
    assert message in err.message and err.span.line == 3


def test_strings_doubled_in_a_loop_stop_at_the_string_limit(tmp_path):
    text = ('network n() {\n    input x: 3x8x8\n    s = "ab"\n    for i in range(40) {\n        s = s + s\n    }\n'
            "    output y = x -> relu\n}\n")
    err = error_of(tmp_path, text)
    assert "longer than the 100,000 allowed" in err.message and err.span.line == 5


def test_nested_loops_run_out_of_the_evaluation_budget(tmp_path):
    text = ("network n() {\n    input x: 3x8x8\n    c = 0\n    for i in range(1000000) {\n"
            "        for j in range(1000000) {\n            c = c + 1\n        }\n    }\n"
            "    output y = x -> relu\n}\n")
    err = error_of(tmp_path, text)
    assert f"more than {limits.WORK_MAX:,} evaluation steps" in err.message and "--max-nodes" in err.message
    assert "in iteration i = 0, " not in err.format() and "in iteration j = " in err.format()


def test_a_million_nodes_is_refused_at_the_node_limit_and_max_nodes_raises_it(tmp_path):
    text = ("network n() {\n    input x: 3x8x8\n    y = x\n    for i in range(1000000) {\n        y = y -> relu\n"
            "    }\n    output out = y\n}\n")
    t0 = time.perf_counter()
    err = error_of(tmp_path, text)
    assert time.perf_counter() - t0 < 8
    assert f"more than {limits.NODES_MAX:,} nodes" in err.message and "--max-nodes" in err.message
    assert err.span.line == 5
    err = error_of(tmp_path, text, max_nodes=200)
    assert "more than 200 nodes" in err.message
    small = text.replace("range(1000000)", "range(150)")
    (tmp_path / "small.cnn").write_text(small, encoding="utf-8")
    with pytest.raises(cnndsl.CnnError):
        cnndsl.load(str(tmp_path / "small.cnn"), max_nodes=100)
    assert len(cnndsl.load(str(tmp_path / "small.cnn"), max_nodes=200).order) == 151


def test_max_nodes_on_the_command_line(tmp_path, capsys):
    text = ("network n() {\n    input x: 3x8x8\n    y = x\n    for i in range(300) {\n        y = y -> relu\n"
            "    }\n    output out = y\n}\n")
    path = tmp_path / "many.cnn"
    path.write_text(text, encoding="utf-8")
    assert cnndsl.cli.main(["check", str(path), "--max-nodes", "100"]) == 1
    assert "more than 100 nodes" in capsys.readouterr().err
    assert cnndsl.cli.main(["check", str(path), "--max-nodes", "1000"]) == 0
    assert cnndsl.cli.main(["check", str(path), "--max-nodes", "0"]) == 1


def test_a_file_over_the_size_limit_is_refused_before_parsing(tmp_path):
    path = tmp_path / "big.cnn"
    line = "c = 1\n"
    path.write_text(line * (limits.FILE_MAX // len(line) + 1), encoding="utf-8")
    t0 = time.perf_counter()
    with pytest.raises(cnndsl.CnnError) as info:
        cnndsl.load(str(path))
    assert time.perf_counter() - t0 < 2
    assert "is larger than 512 KiB, the limit for a .cnn file" in info.value.message


@pytest.mark.parametrize("size", [7, 1, 224])
def test_adaptive_pooling_to_a_huge_size_answers_at_once(tmp_path, size):
    text = TEMPLATE.format(shape=f"3x{size}x{size}", expr="0", layer="adaptive_avgpool(10 ** 8)")
    path = tmp_path / "adaptive.cnn"
    path.write_text(text, encoding="utf-8")
    t0 = time.perf_counter()
    try:
        cnndsl.analyze(cnndsl.load(str(path)))
    except cnndsl.CnnError as err:
        assert "more than any machine holds" in err.message
    assert time.perf_counter() - t0 < 2


@pytest.mark.parametrize("size", range(1, 40))
def test_the_largest_adaptive_window_in_constant_time_equals_the_loop(size):
    for out in range(1, 60):
        loop = max(ceil((i + 1) * size / out) - (i * size) // out for i in range(out))
        assert largest_window(size, out) == loop, (size, out)


# ---------------------------------------------------------------- imports

NET = "network n() {\n    input x: 3x8x8\n    output y = x -> relu\n}\n"


@pytest.mark.parametrize("target, message", [
    ("/etc/passwd", "an import names a .cnn file"),
    ("/etc/x.cnn", "not an absolute path"),
    ("/proc/self/environ", "an import names a .cnn file"),
    ("../outside.cnn", "it is outside"),
    ("../../x.cnn", "cannot find"),
    ("blocks.txt", "an import names a .cnn file"),
    ("link.cnn", "it is outside"),
    ("fifo.cnn", "cannot find"),
    ("~/x.cnn", "not an absolute path"),
])
def test_imports_are_confined(tmp_path, target, message):
    project = tmp_path / "project"
    project.mkdir()
    secret = "SECRET-LINE network s() {}"
    (tmp_path / "outside.cnn").write_text(secret + "\n", encoding="utf-8")
    (project / "blocks.txt").write_text(secret + "\n", encoding="utf-8")
    (project / "link.cnn").symlink_to(tmp_path / "outside.cnn")
    if hasattr(os, "mkfifo"):
        os.mkfifo(project / "fifo.cnn")
    err = error_of(project, f'import "{target}"\n' + NET, name="main.cnn")
    assert message in err.message and (err.span.line, err.span.column) == (1, 1)
    assert "SECRET" not in err.format()


def test_imports_from_subfolders_the_library_and_named_folders(tmp_path, monkeypatch):
    project, shared = tmp_path / "project", tmp_path / "shared"
    (project / "sub").mkdir(parents=True)
    shared.mkdir()
    (project / "sub" / "a.cnn").write_text('import "../b.cnn"\nblock a(x) {\n    return x -> relu\n}\n')
    (project / "b.cnn").write_text("block b(x) {\n    return x -> relu\n}\n")
    (shared / "s.cnn").write_text("block s(x) {\n    return x -> relu\n}\n")
    main = project / "main.cnn"
    main.write_text('import "sub/a.cnn"\nimport "resnet.cnn"\nnetwork n() {\n    input x: 3x8x8\n'
                    "    output y = x -> a -> b -> basic_block(3)\n}\n")
    assert "y" in cnndsl.load(str(main)).outputs
    main.write_text('import "s.cnn"\n' + NET)
    with pytest.raises(cnndsl.CnnError, match="cannot find 's.cnn'"):
        cnndsl.load(str(main))
    monkeypatch.setenv("CNNDSL_PATH", str(shared))
    cnndsl.load(str(main))
    monkeypatch.delenv("CNNDSL_PATH")
    assert cnndsl.cli.main(["check", str(main), "--import-path", str(shared)]) == 0


@pytest.mark.parametrize("path", ["/dev/zero", pytest.param("/proc/self/environ", marks=pytest.mark.skipif(
    not os.path.exists("/proc/self/environ"), reason="no /proc on this system (Linux, where CI runs, has it)"))])
def test_devices_and_proc_files_are_not_read_as_targets(path, capsys):
    assert cnndsl.cli.main(["check", path]) == 1
    err = capsys.readouterr().err
    assert "a target file must be a .cnn file" in err
    assert "PATH=" not in err


def test_a_device_behind_a_cnn_name_is_not_read(tmp_path, capsys):
    (tmp_path / "zero.cnn").symlink_to("/dev/zero")
    assert cnndsl.cli.main(["check", str(tmp_path / "zero.cnn")]) == 1
    assert "not a regular file" in capsys.readouterr().err
