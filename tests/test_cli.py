"""The `cnndsl` command line: exit codes of analyze, check and zoo; the JSON report; mistakes in --set, --input
and the target, each reported with its place and exit code 1, never a traceback.

ResNet-50's figures are torchvision's resnet50 (ResNet50_Weights.IMAGENET1K_V1 in torchvision's model docs:
25,557,032 parameters, 4.09 GFLOPS). The exact count 4,089,184,256 is the multiply-accumulates of its convs
(4,087,136,256) and its linear layer (2048 x 1000 = 2,048,000), as fvcore's FlopCountAnalysis counts them for
torchvision.models.resnet50 on a 1x3x224x224 input.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from cnndsl.cli import main

RESNET50_PARAMS = 25_557_032
RESNET50_MACS = 4_089_184_256
RESNET50_FC = 2048 * 1000 + 1000  # its classifier: nn.Linear(2048, 1000), weight and bias

HEAD = re.compile(r"^(?P<path>.+?):(?P<line>\d+):(?P<col>\d+): error: (?P<message>.+)$")


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_user_error(code: int, stdout: str, stderr: str) -> str:
    """Exit 1, nothing on stdout, no traceback; returns the first stderr line."""
    assert "Traceback" not in stderr, stderr
    assert "internal error" not in stderr, stderr
    assert code == 1, (code, stdout, stderr)
    assert stdout == "", "a failed command prints no (partial) report"
    return stderr.splitlines()[0]


def assert_located(stderr: str, where: str, col: int) -> re.Match:
    """The first line is `WHERE:1:COL: error: ...`, then the argument and a caret under COL."""
    lines = stderr.splitlines()
    head = HEAD.match(lines[0])
    assert head and head["path"] == where and int(head["col"]) == col, lines[0]
    gutter = lines[1].index("| ") + 2
    assert re.fullmatch(r" +\| [ \t]*\^+", lines[2]), lines[2]
    assert lines[2].index("^") - gutter + 1 == col, stderr
    return head


# ---------------------------------------------------------------- zoo, check, analyze: success


def test_zoo_lists_the_bundled_presets_with_a_description(capsys):
    code, out, err = run(capsys, "zoo")
    assert code == 0 and err == ""
    rows = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    for name in ("resnet18", "resnet50"):
        assert name in rows
        assert len(rows[name].split(None, 1)) == 2, f"{name} has no description"


def test_check_of_a_bundled_preset_succeeds(capsys):
    code, out, err = run(capsys, "check", "resnet50")
    assert (code, err) == (0, "")
    assert "ok" in out


def test_check_of_a_file_succeeds(capsys, tmp_path):
    path = tmp_path / "tiny.cnn"
    path.write_text("network tiny() {\n    input x: 3x8x8\n    output y = x -> conv(4, 3) -> relu\n}\n")
    code, out, err = run(capsys, "check", str(path))
    assert (code, err) == (0, "")
    assert "ok" in out


@pytest.mark.parametrize("fmt", ["table", "markdown"])
def test_analyze_text_formats_succeed_and_show_the_parameter_count(capsys, fmt):
    code, out, err = run(capsys, "analyze", "resnet50", "--format", fmt)
    assert (code, err) == (0, "")
    assert f"{RESNET50_PARAMS:,}" in out


def test_analyze_csv_rows_add_up_to_the_parameter_count(capsys):
    import csv
    import io

    code, out, err = run(capsys, "analyze", "resnet50", "--format", "csv")
    assert (code, err) == (0, "")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert sum(int(row["params"]) for row in rows) == RESNET50_PARAMS
    assert sum(int(row["macs"]) for row in rows) == RESNET50_MACS


# ---------------------------------------------------------------- --format json


@pytest.fixture(scope="module")
def resnet50_json():
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["analyze", "resnet50", "--format", "json"])
    assert code == 0
    return buf.getvalue()


def test_json_is_exactly_one_document(resnet50_json):
    decoder = json.JSONDecoder()
    doc, end = decoder.raw_decode(resnet50_json)
    assert resnet50_json[end:].strip() == "", "anything after the JSON document breaks `| jq`"
    assert isinstance(doc, dict)


def test_json_has_the_documented_keys(resnet50_json):
    doc = json.loads(resnet50_json)
    for key in ("network", "inputs", "outputs", "totals", "receptive_field", "layers"):
        assert key in doc, key
    assert doc["network"] == "resnet50"
    assert doc["inputs"] == {"x": [3, 224, 224]}
    assert doc["outputs"] == {"logits": [1000]}
    totals = doc["totals"]
    for key in ("params", "trainable_params", "buffers", "macs", "flops", "activation_bytes",
                "peak_activation_bytes"):
        assert isinstance(totals[key], int) and not isinstance(totals[key], bool), key
    assert totals["params"] == RESNET50_PARAMS
    assert totals["trainable_params"] == RESNET50_PARAMS  # every torchvision resnet50 parameter is trainable
    assert totals["macs"] == RESNET50_MACS
    assert totals["flops"] >= 2 * RESNET50_MACS  # a MAC is two FLOPs; elementwise ops only add to that


def test_json_layers_are_complete_and_add_up_to_the_totals(resnet50_json):
    doc = json.loads(resnet50_json)
    layers = doc["layers"]
    names = [layer["name"] for layer in layers]
    assert len(set(names)) == len(names)
    seen = set()
    for layer in layers:
        for key in ("name", "op", "inputs", "shape", "params", "macs", "rf"):
            assert key in layer, (layer.get("name"), key)
        assert all(i in seen for i in layer["inputs"]), f"{layer['name']} reads a layer listed after it"
        seen.add(layer["name"])
        assert all(isinstance(d, int) and d > 0 for d in layer["shape"])
        _check_rf(layer["rf"])
    assert next(layer for layer in layers if layer["op"] == "input")["name"] == "x"
    assert sum(layer["params"] for layer in layers) == doc["totals"]["params"]
    assert sum(layer["macs"] for layer in layers) == doc["totals"]["macs"]
    assert layers[-1]["name"] == "fc" and layers[-1]["params"] == RESNET50_FC
    assert layers[-1]["rf"] == "global"  # a linear layer after global pooling sees the whole image


def test_json_receptive_field_is_reported_per_output(resnet50_json):
    doc = json.loads(resnet50_json)
    assert doc["receptive_field"], "the network's receptive field is missing"
    names = {layer["name"] for layer in doc["layers"]}
    for name, rf in doc["receptive_field"].items():
        assert name in names
        _check_rf(rf)


def _check_rf(rf):
    if rf is None or rf == "global":
        return
    assert set(rf) >= {"size", "stride", "padding"}, rf
    sizes = [rf[k] for k in ("size", "stride", "padding")]
    assert all(isinstance(v, list) and all(isinstance(i, int) for i in v) for v in sizes), rf
    assert len({len(v) for v in sizes}) == 1, rf


def test_json_follows_set_and_input(capsys):
    code, out, err = run(capsys, "analyze", "resnet50", "--format", "json", "--set", "num_classes=10",
                         "--input", "x=3x64x64")
    assert (code, err) == (0, "")
    doc = json.loads(out)
    assert doc["inputs"] == {"x": [3, 64, 64]}
    assert doc["outputs"] == {"logits": [10]}
    # Only the classifier depends on num_classes (nn.Linear(2048, 10) now); no parameter depends on resolution.
    assert doc["totals"]["params"] == RESNET50_PARAMS - RESNET50_FC + (2048 * 10 + 10)


def test_json_through_a_real_process_is_one_document(tmp_path):
    r = subprocess.run([sys.executable, "-m", "cnndsl", "analyze", "resnet18", "--format", "json"], cwd=tmp_path,
                       check=False, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["network"] == "resnet18"


# ---------------------------------------------------------------- mistakes on the command line


def test_set_unknown_parameter_suggests_the_closest(capsys):
    code, out, err = run(capsys, "check", "resnet50", "--set", "num_clases=10")
    first = assert_user_error(code, out, err)
    assert_located(err, "--set", 1)
    assert "has no parameter 'num_clases'" in first
    assert "did you mean 'num_classes'?" in first


def test_set_unknown_parameter_lists_the_parameters(capsys):
    code, out, err = run(capsys, "check", "resnet50", "--set", "depth=3")
    first = assert_user_error(code, out, err)
    assert_located(err, "--set", 1)
    assert "num_classes" in first and "layers" in first


def test_set_with_a_syntax_error_in_the_value_points_into_the_value(capsys):
    code, out, err = run(capsys, "check", "resnet50", "--set", "width=0.7.5")
    first = assert_user_error(code, out, err)
    assert_located(err, "--set", 10)  # width=0.7.5: the second '.5' starts at column 10
    assert "unexpected number '.5'" in first


def test_set_with_a_syntax_error_lists_only_what_could_follow(capsys):
    code, out, err = run(capsys, "check", "resnet50", "--set", "width=0.7.5")
    first = assert_user_error(code, out, err)
    assert "')'" not in first and "..." not in first, first


def test_set_with_an_unclosed_list_points_at_the_open_bracket(capsys):
    code, out, err = run(capsys, "check", "resnet50", "--set", "layers=[1, 1")
    first = assert_user_error(code, out, err)
    assert_located(err, "--set", 8)  # the '[' that was never closed
    assert "end of file" not in first and "'}'" not in first, first
    assert "']'" in first


@pytest.mark.parametrize("arg", ["num_classes", "=10", "10"])
def test_set_without_a_name_and_equals_sign(capsys, arg):
    code, out, err = run(capsys, "check", "resnet50", "--set", arg)
    first = assert_user_error(code, out, err)
    assert_located(err, "--set", 1)
    assert "NAME=VALUE" in first and repr(arg) in first


def test_set_without_a_value(capsys):
    code, out, err = run(capsys, "check", "resnet50", "--set", "num_classes=")
    first = assert_user_error(code, out, err)
    assert_located(err, "--set", len("num_classes=") + 1)
    assert "needs a value" in first


def test_set_with_an_unknown_name_in_the_value(capsys):
    code, out, err = run(capsys, "check", "resnet50", "--set", "unit=bottelneck")
    first = assert_user_error(code, out, err)
    assert_located(err, "--set", 6)
    assert "did you mean 'bottleneck'?" in first


def test_input_unknown_name_lists_the_inputs(capsys):
    code, out, err = run(capsys, "check", "resnet50", "--input", "image=3x64x64")
    first = assert_user_error(code, out, err)
    assert_located(err, "--input", 1)
    assert "has no input 'image'" in first and "x" in first


def test_input_with_a_zero_dimension(capsys):
    code, out, err = run(capsys, "check", "resnet50", "--input", "x=3x0x5")
    first = assert_user_error(code, out, err)
    assert_located(err, "--input", 3)
    assert "must be positive" in first and "3x0x5" in first


def test_input_that_is_not_a_shape(capsys):
    code, out, err = run(capsys, "check", "resnet50", "--input", 'x="big"')
    first = assert_user_error(code, out, err)
    assert_located(err, "--input", 3)
    assert "3x224x224" in first  # it shows what a shape looks like


def test_set_value_the_network_refuses_is_reported_where_the_network_uses_it(capsys):
    code, out, err = run(capsys, "check", "resnet50", "--set", "num_classes=0")
    first = assert_user_error(code, out, err)
    head = HEAD.match(first)
    assert head and head["path"] == "architectures/resnet.cnn", first
    assert "'out' must be an integer >= 1, got the number 0" in first
    assert re.fullmatch(r" +\| [ \t]*\^+", err.splitlines()[2])


def test_set_value_the_network_refuses_has_a_note_pointing_at_the_set(capsys):
    code, out, err = run(capsys, "check", "resnet50", "--set", "num_classes=0", "--set", "layers=[2, 2, 2, 2]")
    assert_user_error(code, out, err)
    notes = [line for line in err.splitlines() if line.startswith("--set:1:") and ": note: " in line]
    assert any("'num_classes' was given by --set" in line for line in notes), err
    assert len(notes) == 1, err  # layers was read too, but the failing line names num_classes only
    code, out, err = run(capsys, "check", "resnet50", "--set", "num_classes=10", "--set", "layers=[2, 0.5, 2, 2]")
    assert_user_error(code, out, err)  # the error lies inside the file; the note names the suspect
    assert any(line.startswith("--set:1:") and "'layers' was given by --set" in line for line in err.splitlines()), err


def test_unknown_architecture_suggests_the_closest_name(capsys):
    code, out, err = run(capsys, "check", "resnt50")
    first = assert_user_error(code, out, err)
    assert "unknown architecture 'resnt50'" in first
    assert "did you mean 'resnet50'?" in first
    assert "cnndsl zoo" in first


@pytest.mark.parametrize("command", ["check", "analyze"])
def test_unknown_architecture_fails_for_every_command(capsys, command):
    code, out, err = run(capsys, command, "resnet-50")
    first = assert_user_error(code, out, err)
    assert "did you mean 'resnet50'?" in first


def test_missing_file(capsys, tmp_path):
    code, out, err = run(capsys, "check", str(tmp_path / "missing.cnn"))
    first = assert_user_error(code, out, err)
    assert "missing.cnn" in first


def test_file_without_a_network(capsys, tmp_path):
    path = tmp_path / "blocks.cnn"
    path.write_text("block unit(x) {\n    return x -> relu\n}\n")
    code, out, err = run(capsys, "check", str(path))
    first = assert_user_error(code, out, err)
    assert "declares no network" in first


def test_analyze_json_of_a_broken_file_prints_no_json(capsys, tmp_path):
    path = tmp_path / "broken.cnn"
    path.write_text("network n() {\n    input x: 3x8x8\n    output y = x -> convv(4, 3)\n}\n")
    code, out, err = run(capsys, "analyze", str(path), "--format", "json")
    assert_user_error(code, out, err)
    assert_located(err, str(path), 21)


@pytest.mark.parametrize("argv", [[], ["frobnicate"], ["check"], ["analyze", "resnet50", "--format", "yaml"],
                                  ["analyze", "resnet50", "--depth", "deep"], ["zoo", "extra"]])
def test_argument_mistakes_exit_1_with_usage(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "usage: cnndsl" in err and "error:" in err and "Traceback" not in err


def test_help_exits_0(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "analyze" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["check", "resnet50", "--set", "num_clases=10"],
                                  ["check", "resnet50", "--input", "x=3x0x5"],
                                  ["check", "resnt50"]])
def test_command_line_mistakes_through_a_real_process(argv, tmp_path):
    r = subprocess.run([sys.executable, "-m", "cnndsl", *argv], cwd=tmp_path, check=False, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1, r.stderr
    assert r.stdout == ""
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    assert ": error: " in r.stderr.splitlines()[0]
