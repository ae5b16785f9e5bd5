"""The compiler core: naming rules, imports, presets and overrides, IR invariants, memory liveness and
receptive-field merging, each checked against numbers worked out by hand in the comments."""

from __future__ import annotations

import textwrap

import pytest

import cnndsl
from cnndsl.ir import lint_ir
from cnndsl.loader import zoo_index
from cnndsl.passes.receptive import ReceptiveField


def write(tmp_path, text: str, name: str = "net.cnn"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def load(tmp_path, text: str, **params):
    return cnndsl.load(str(write(tmp_path, text)), **params)


# ---------------------------------------------------------------- naming


def test_labelled_sequences_number_members_by_position_like_nn_sequential(tmp_path):
    net = load(tmp_path, """
        network n() {
            input x: 3x32x32
            y = x -> features: [conv(8, 3, pad=1), relu, maxpool(2), [conv(8, 1), batchnorm]]
            output y = y
        }
    """)
    assert net.order == ["x", "features.0", "features.1", "features.2", "features.3.0", "features.3.1"]
    assert net.scopes["features"].kind == "sequence"
    assert net.scopes["features.3"].children == ["features.3.0", "features.3.1"]


def test_block_instances_open_scopes_and_unlabelled_nodes_are_named_after_their_op(tmp_path):
    net = load(tmp_path, """
        block unit(x, c) {
            return x -> conv1: conv(c, 3, pad=1) -> relu -> conv2: conv(c, 3, pad=1) -> relu
        }
        network n() {
            input x: 3x16x16
            output y = x -> stage: [unit(4), unit(4)]
        }
    """)
    assert "stage.0.conv1" in net.order and "stage.1.conv2" in net.order
    assert "stage.0.relu" in net.order and "stage.0.relu_1" in net.order
    assert net.scopes["stage.0"].block == "unit" and net.scopes["stage.0"].args["c"] == 4


def test_auto_names_avoid_explicit_names_given_later(tmp_path):
    # the first unlabelled relu must not take the name 'relu' that a later node claims explicitly
    net = load(tmp_path, """
        network n() {
            input x: 3x8x8
            y = x -> relu -> conv(3, 1) -> relu: relu
            output y = y
        }
    """)
    assert net.order == ["x", "relu_1", "conv", "relu"]


def test_interpolated_labels(tmp_path):
    net = load(tmp_path, """
        network n() {
            input x: 4x8x8
            y = x
            for i in range(3) { y = y -> denselayer{i + 1}: conv(4, 1) }
            output y = y
        }
    """)
    assert net.order[1:] == ["denselayer1", "denselayer2", "denselayer3"]


def test_mul_of_a_node_with_itself_keeps_both_inputs(tmp_path):
    net = load(tmp_path, """
        network n() {
            input x: 3x8x8
            output y = sq: x * x
        }
    """)
    assert net.node("sq")["inputs"] == ["x", "x"]
    assert net.graph.number_of_edges("x", "sq") == 2
    lint_ir(net)


# ---------------------------------------------------------------- language features


def test_conditional_shortcut_uses_the_input_shape(tmp_path):
    text = """
        block res(x, c, stride=1) {
            y = x -> conv1: conv(c, 3, stride=stride, pad=1)
            s = x
            if stride != 1 or x.channels != c { s = x -> downsample: conv(c, 1, stride=stride) }
            return y + s
        }
        network n(c=8, stride=1) {
            input x: 8x16x16
            output y = x -> b: res(c, stride=stride)
        }
    """
    same = load(tmp_path, text)
    assert not any(name.startswith("b.downsample") for name in same.order)
    wider = load(tmp_path, text, c=16)
    assert "b.downsample" in wider.order
    strided = load(tmp_path, text, stride=2)
    assert strided.type_of(strided.outputs["y"]).shape == (8, 8, 8)


def test_generated_lists_build_vgg_style_features(tmp_path):
    net = load(tmp_path, """
        cfg = [8, "M", 16, 16, "M"]
        network n(bn=false) {
            input x: 3x32x32
            output y = x -> features: [
                for v in cfg {
                    if v == "M" { maxpool(2, stride=2) }
                    else { conv(v, 3, pad=1), if bn { batchnorm }, relu },
                },
            ]
        }
    """)
    ops = [net.node(n)["op"] for n in net.order[1:]]
    assert ops == ["conv", "relu", "maxpool", "conv", "relu", "conv", "relu", "maxpool"]
    assert net.order[-1] == "features.7"
    assert net.type_of("features.7").shape == (16, 8, 8)


def test_make_divisible_matches_torchvision():
    from torchvision.models._utils import _make_divisible

    from cnndsl.values import make_divisible

    for v in [3.2, 8, 12.5, 16 * 0.75, 24 * 1.4, 32 * 0.35, 96 * 0.5, 1280 * 1.3, 7.9]:
        for d in (4, 8):
            assert make_divisible(v, d) == _make_divisible(v, d)


def test_presets_settings_and_input_overrides(tmp_path):
    path = write(tmp_path, """
        network n(width=8, depth=2) {
            input x: 3x32x32
            y = x
            for i in range(depth) { y = y -> conv(width, 3, pad=1) }
            output y = y
        }
        preset small = n(width=4) "a small one"
    """)
    from cnndsl.elaborate import elaborate, parse_setting
    from cnndsl.loader import load_program, program_target

    program = load_program(path)
    net = elaborate(program_target(program, "small"))
    assert net.name == "small" and net.doc == "a small one"
    assert net.type_of(net.outputs["y"]).shape == (4, 32, 32)
    net = elaborate(program_target(program, "small"), [parse_setting("depth=3", "--set")],
                    [parse_setting("x=3x8x8", "--input")])
    assert len(net.order) == 4 and net.type_of(net.outputs["y"]).shape == (4, 8, 8)


def test_imports_share_blocks_and_resolve_relative_to_the_importing_file(tmp_path):
    (tmp_path / "lib").mkdir()
    write(tmp_path, """
        width = 6
        block stem(x) { return x -> conv(width, 3) }
    """, "lib/common.cnn")
    net = load(tmp_path, """
        import "lib/common.cnn"
        network n() {
            input x: 3x10x10
            output y = x -> s: stem
        }
    """)
    assert net.type_of("s.conv").shape == (6, 8, 8)


def test_several_outputs_and_token_inputs(tmp_path):
    net = load(tmp_path, """
        network n() {
            input t: tokens 5x16
            h = t -> attn: attention(4)
            output a = h
            output b = h -> head: linear(3)
        }
    """)
    assert net.type_of(net.outputs["b"]).shape == (5, 3)
    assert net.type_of("t").tokens


# ---------------------------------------------------------------- passes


def test_peak_memory_follows_liveness_on_a_residual_block(tmp_path):
    # x:4x8x8 (256 elements = 1024 bytes). a=conv(x) 1024 B, b=conv(a) 1024 B, s=a+b 1024 B, f=flatten(s) is a view.
    # step x: {x}=1024; a: {x,a}=2048 (x is still read? no: only a reads x, so x dies after a) -> 2048
    # b: {a,b}=2048; s: {a,b,s}=3072; f: {s} (view of s, output) = 1024. peak 3072.
    net = load(tmp_path, """
        network n() {
            input x: 4x8x8
            a = x -> ca: conv(4, 3, pad=1)
            b = a -> cb: conv(4, 3, pad=1)
            output f = (s: a + b) -> flatten
        }
    """)
    totals = cnndsl.analyze(net)
    assert [net.node(n)["live_bytes"] for n in net.order] == [1024, 2048, 2048, 3072, 1024]
    assert totals["peak_activation_bytes"] == 3072
    assert totals["activation_bytes"] == 4 * 1024  # the flatten view owns no memory


def test_receptive_field_formula_and_merge_marking(tmp_path):
    # branch 1: conv k3 s1 -> size 3; branch 2: conv k5 s1 -> size 5; sum: largest (5), marked merged.
    # then maxpool k2 s2: size 5 + (2-1)*1 = 6, jump 2; then conv k3 d2 pad 2: 6 + 2*(3-1)*2 = 14, padding 2 + 2*2 = 6
    net = load(tmp_path, """
        network n() {
            input x: 1x64x64
            a = x -> c3: conv(2, 3, pad=1)
            b = x -> c5: conv(2, 5, pad=2)
            y = (s: a + b) -> p: maxpool(2) -> d: conv(2, 3, dilation=2, pad=2)
            output y = y -> gap: global_avgpool
        }
    """)
    cnndsl.analyze(net)
    assert net.node("c3")["rf"] == ReceptiveField((3, 3), (1, 1), (1, 1))
    s = net.node("s")["rf"]
    assert s.size == (5, 5) and s.padding == (2, 2) and s.merged
    d = net.node("d")["rf"]
    assert (d.size, d.stride, d.padding) == ((14, 14), (2, 2), (6, 6))
    assert net.node("gap")["rf"] == "global"


def test_every_bundled_architecture_elaborates_lints_and_analyzes():
    for name in sorted(zoo_index()):
        net = cnndsl.load(name)
        lint_ir(net)
        totals = cnndsl.analyze(net)
        lint_ir(net)
        assert totals["params"] > 0, name


def test_the_core_never_imports_torch():
    import subprocess
    import sys

    code = ("import sys, cnndsl.cli; cnndsl.cli.main(['analyze', 'resnet50', '--format', 'json']); "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, "analyze imported torch"


@pytest.mark.parametrize("text", ["network n() { input x: 3x8x8\n output y = x -> conv(4, 3) }"])
def test_the_grammar_has_no_conflicts_and_parses(text, tmp_path):
    from lark import Lark

    from cnndsl.resources import grammar_text
    from cnndsl.syntax import _Newlines, parse
    from cnndsl.errors import Source

    Lark(grammar_text(), parser="lalr", lexer="basic", postlex=_Newlines(), strict=True, start=["start", "chain"])
    assert parse(Source("t.cnn", text)).items[0].name == "n"
