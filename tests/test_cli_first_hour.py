"""The command line as a new user meets it: --version, show, help text, hints for shapes, errors that
name the loop iteration and the bundled file, titles that name the settings, -o that keeps permissions
and refuses symlinks, sizes no machine holds."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys

import pytest

import cnndsl
import cnndsl.cli
from cnndsl.resources import architectures_dir


def run(capsys, *argv) -> tuple[int, str, str]:
    try:
        code = cnndsl.cli.main(list(argv))
    except SystemExit as exc:  # argparse: --version, --help, usage errors
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


SMALL = "network n() {\n    input x: 3x8x8\n    output y = x -> conv(4, 3, pad=1) -> relu\n}\n"
HUGE = "network big() {\n    input x: 3x10000x10000\n    output y = x -> conv(1000000, 3, pad=1)\n}\n"


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"cnndsl {cnndsl.__version__}"


def test_show_prints_a_bundled_file_and_copies_it(capsys, tmp_path):
    code, out, _ = run(capsys, "show", "resnet50")
    assert code == 0 and out == (architectures_dir() / "resnet.cnn").read_text(encoding="utf-8")
    code, out, _ = run(capsys, "show", "resnet", "--path")
    assert code == 0 and out.strip() == str(architectures_dir() / "resnet.cnn")
    copy = tmp_path / "mine.cnn"
    code, _, err = run(capsys, "show", "lenet5", "-o", str(copy))
    assert code == 0 and "wrote" in err
    assert copy.read_text(encoding="utf-8") == (architectures_dir() / "lenet5.cnn").read_text(encoding="utf-8")
    assert run(capsys, "check", str(copy))[0] == 0  # the copy is a file the user can start from
    code, _, err = run(capsys, "show", "resnet5O")
    assert code == 1 and "did you mean 'resnet50'?" in err


def test_help_explains_formats_and_the_file_colon_name_target(capsys):
    code, out, _ = run(capsys, "analyze", "--help")
    assert code == 0
    text = " ".join(out.split())
    assert "FILE.cnn:NAME" in text and "csv (every layer" in text and "--max-nodes" in text


def test_no_message_has_a_question_mark_then_a_semicolon(capsys, tmp_path):
    path = tmp_path / "typo.cnn"
    path.write_text("network n() {\n    input x: 3x8x8\n    output y = x -> conv(4, 3, strde=2)\n}\n")
    code, _, err = run(capsys, "check", str(path))
    assert code == 1 and "did you mean 'stride'? It takes conv(" in err and "?;" not in err
    path.write_text("network n() {\n    input x: 3x8x8\n    c = x.chanels\n    output y = x -> relu\n}\n")
    code, _, err = run(capsys, "check", str(path))
    assert code == 1 and "did you mean 'channels'? It has" in err and "?;" not in err


@pytest.mark.parametrize("shape", ["3 x 32 x 32", "(3, 32, 32)"])
def test_a_shape_written_with_spaces_or_brackets_gets_a_hint(capsys, tmp_path, shape):
    path = tmp_path / "shape.cnn"
    path.write_text(f"network n() {{\n    input x: {shape}\n    output y = x -> relu\n}}\n")
    code, _, err = run(capsys, "check", str(path))
    assert code == 1 and "a shape is written without spaces or brackets: 3x32x32" in err
    code, _, err = run(capsys, "check", "resnet50", "--input", f"x={shape}")
    assert code == 1 and "a shape is written without spaces or brackets" in err


def test_an_input_that_changes_rank_is_a_warning(capsys):
    code, _, err = run(capsys, "check", "resnet50", "--input", "x=3x224")
    assert code == 0
    assert "warning: --input x=3x224 has 2 dimensions, but the network declares x as 3x224x224 (3)" in err
    code, _, err = run(capsys, "check", "resnet50", "--input", "x=3x160x160")
    assert code == 0 and "warning" not in err


def test_an_error_in_a_loop_names_its_iteration(capsys, tmp_path):
    path = tmp_path / "loop.cnn"
    path.write_text("network n() {\n    input x: 3x8x8\n    y = x\n    for i, k in enumerate([3, 5, 9, 3]) {\n"
                    "        y = y -> conv(4, k)\n    }\n    output out = y\n}\n")
    code, _, err = run(capsys, "check", str(path))
    assert code == 1
    assert "note: in iteration i, k = 2, 9 of the for at line 4" in err  # 8x8 -> 6x6 -> 2x2: a 9x9 kernel fails


def test_an_error_in_a_list_loop_names_its_iteration(capsys, tmp_path):
    path = tmp_path / "listfor.cnn"
    path.write_text("network n() {\n    input x: 3x8x8\n    c = [for k in [1, 0] { 10 // k }]\n"
                    "    output y = x -> relu\n}\n")
    code, _, err = run(capsys, "check", str(path))
    assert code == 1 and "error: division by zero" in err and "note: in iteration k = 0 of the for at line 3" in err


def test_a_bundled_files_error_says_where_it_is_and_how_to_copy_it(capsys):
    code, _, err = run(capsys, "check", "resnet50", "--set", "num_classes=0")
    assert code == 1
    where = re.search(r"note: architectures/resnet.cnn is bundled with cnndsl, at (\S+);", err)
    assert where and os.path.isfile(where[1]), err
    assert "'cnndsl show resnet -o resnet.cnn' copies it" in err


def test_settings_appear_in_the_title_and_json_writes_blocks_as_set_takes_them(capsys):
    code, out, _ = run(capsys, "analyze", "resnet", "--set", "unit=basic_block", "--set", "layers=[2, 2, 2, 2]",
                       "--depth", "1")
    assert code == 0 and out.splitlines()[0].startswith("resnet (--set unit=basic_block, --set layers=[2, 2, 2, 2]):")
    code, out, _ = run(capsys, "analyze", "resnet", "--format", "json")
    report = json.loads(out)
    assert report["parameters"]["unit"] == "bottleneck" and report["overrides"] == []
    unit = report["parameters"]["unit"]
    assert run(capsys, "check", "resnet", "--set", f"unit={unit}")[0] == 0


def test_depth_zero_is_refused(capsys):
    code, _, err = run(capsys, "analyze", "resnet18", "--depth", "0")
    assert code == 1 and "--depth is the number of block levels shown, 1 or more" in err


def test_the_receptive_field_summary_names_a_spatial_node(capsys):
    for name, node in [("vgg16", "avgpool"), ("lenet5", "scaled_tanh_4"), ("alexnet", "avgpool")]:
        code, out, _ = run(capsys, "analyze", name)
        line = next(line for line in out.splitlines() if line.startswith("receptive field"))
        assert line.startswith(f"receptive field   {node}: "), line
    # ViT: no map after the image; the patch embedding made the tokens, each seeing its patch
    code, out, _ = run(capsys, "analyze", "vit_b_16")
    assert "receptive field   conv_proj: 16x16, stride 16x16, padding 0x0" in out


def test_o_keeps_permissions_refuses_symlinks_and_empty_names(capsys, tmp_path):
    source = tmp_path / "small.cnn"
    source.write_text(SMALL)
    target = tmp_path / "model.py"
    target.write_text("old")
    os.chmod(target, 0o750)
    assert run(capsys, "compile", str(source), "-o", str(target))[0] == 0
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o750 and "class N" in target.read_text()
    real = tmp_path / "real.py"
    real.write_text("keep")
    link = tmp_path / "link.py"
    link.symlink_to(real)
    code, _, err = run(capsys, "compile", str(source), "-o", str(link))
    assert code == 1 and "is a symbolic link" in err
    assert link.is_symlink() and real.read_text() == "keep"
    code, _, err = run(capsys, "compile", str(source), "-o", "")
    assert code == 1 and "-o needs a file name" in err


def test_the_header_names_the_source_the_same_from_any_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    source = tmp_path / "sub" / "small.cnn"
    source.write_text(SMALL)
    outs = []
    for cwd, arg in [(tmp_path, "sub/small.cnn"), (tmp_path / "sub", "small.cnn"), ("/", str(source))]:
        proc = subprocess.run([sys.executable, "-m", "cnndsl", "compile", arg], cwd=cwd, capture_output=True,
                              text=True, check=True)
        outs.append(proc.stdout)
    assert outs[0] == outs[1] == outs[2] and "from small.cnn;" in outs[0]


def test_sizes_no_machine_holds_warn_in_analyze_and_are_refused_by_compile(capsys, tmp_path):
    path = tmp_path / "big.cnn"
    path.write_text(HUGE)
    code, _, err = run(capsys, "check", str(path))
    assert code == 0 and "warning: the network needs 363.8 TiB (400,001,312,000,000 bytes)" in err
    # 3x3 conv, 3 -> 10**6 channels: 27 * 10**6 weights + 10**6 biases, 4 bytes each; output 10**6 x 10**8 floats
    assert "(106.8 MiB of parameters and buffers" in err and "largest node is 'conv'" in err
    code, _, err = run(capsys, "analyze", str(path))
    assert code == 0 and "warning: the network needs" in err
    code, _, err = run(capsys, "compile", str(path))
    assert code == 1 and "error: the network needs 363.8 TiB" in err and "--force" in err
    code, out, _ = run(capsys, "compile", str(path), "--force")
    assert code == 0 and "class Big(nn.Module)" in out
    assert run(capsys, "compile", str(tmp_path / "big.cnn"), "--backend", "numpy")[0] == 1


def test_linear_of_a_trillion_is_refused_as_an_argument(capsys, tmp_path):
    path = tmp_path / "wide.cnn"
    path.write_text("network n() {\n    input x: 16\n    output y = x -> linear(10 ** 12)\n}\n")
    code, _, err = run(capsys, "check", str(path))
    assert code == 1 and "linear: 'out' must be at most 2,147,483,647" in err
