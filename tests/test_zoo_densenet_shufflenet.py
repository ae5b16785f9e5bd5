"""DenseNet (architectures/densenet.cnn) and ShuffleNet V2 (architectures/shufflenet_v2.cnn).

Every expected number comes from an independent source: torchvision's models built here with
weights=None (parameters, buffers, state_dict names and shapes, intermediate shapes, MACs through torch's
FlopCounterMode), torchvision's documentation (the weights' meta), or the papers' tables, cited where used.
Counting runs on PyTorch's "meta" device (same constructor, names, shapes and forward pass, no memory);
only the output comparisons build real weights, at a reduced resolution.
"""

from __future__ import annotations

import ast
import re
import warnings

import pytest

import torch
import torchvision.models as tvm

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import cnndsl
from cnndsl.cli import main as cli_main
from cnndsl.resources import architectures_dir

from reference import (assert_module_output_shapes, conv_and_linear_modules, ir_output_shapes, ir_state,
                       node_macs_checked, output_error, random_input, reference_macs, torch_state, unused_definitions)

DENSENETS = ["densenet121", "densenet161", "densenet169", "densenet201"]
SHUFFLENETS = ["shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0"]
PRESETS = DENSENETS + SHUFFLENETS

# Their published parameter counts and GFLOPS (reference.PUBLISHED, WEIGHTS; the table gives the
# DenseNets and shufflenet_v2_x1_0), their parameters, buffers, state_dict and MACs against torchvision's
# models: tests/test_zoo_classic.py, for every preset of the zoo.

SMALL = (3, 64, 64)  # both families reach 2x2 at their last stage (stride 32)

# backends/pytorch.py, TorchGenerator._make_class: a literal that varies between instances of a block
# and matches no candidate gets a constructor argument named after the last two steps of its path
# (`nn_batchnorm2d_0`); two such literals at different places get the same name, and `dict(candidates)`
# keeps the last one's values, so every one of them is built with the last one's value. DenseNet-169 shares
# one class between dense blocks 3 and 4 (both 32 layers); all but the first of its dense layers get the
# last one's norm1/conv1 width, so the generated model's shapes are wrong. (DenseNet-121, -161 and -201
# have no two blocks of equal length, so each block has a class of its own, with literal widths.)
SLOT_NAME_CLASH = ("backends/pytorch.py _make_class: fallback constructor-argument names collide "
                   "(nn_batchnorm2d_0 for every dense layer's width), so DenseNet-169's class shared by dense "
                   "blocks 3 and 4 builds its layers with the last layer's width")
WRONG_SHAPES: set[str] = set()  # none since the slot names were made unique


SLOW = {"densenet161", "densenet201"}  # real weights: 28.7 M and 20 M parameters, built twice


def case(preset, exc=Exception, slow=False):
    """The preset as a test parameter, marked xfail where the generated code is known wrong."""
    marks = [pytest.mark.xfail(strict=True, raises=exc, reason=SLOT_NAME_CLASH)] if preset in WRONG_SHAPES else []
    if slow and preset in SLOW:
        marks.append(pytest.mark.slow)
    return pytest.param(preset, marks=marks)


# ---------------------------------------------------------------- builders and helpers


def randomize_norms(model: nn.Module) -> nn.Module:
    """Batch norms with statistics and affine terms away from the identity, so eval mode tests them."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=g) * 0.2 - 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.rand(n, generator=g) * 0.2 - 0.1)
    return model


def same_output(net, reference: nn.Module, shape=SMALL) -> float:
    """Relative error between cnndsl.to_torch(net) loaded with the reference's state_dict (strict) and the
    reference, both in eval mode, on one random batch (on one thread: see reference.one_thread)."""
    return output_error(net, reference, random_input(2, *shape, seed=0), threads=1)


# ---------------------------------------------------------------- every preset against torchvision


@pytest.mark.parametrize("preset", ["densenet121", "shufflenet_v2_x1_0"])
def test_macs_of_every_conv_and_linear_equal_flop_counter_per_module(preset, ours, tv):
    net, _ = ours(preset)
    model = tv(preset)
    checked = node_macs_checked(net, model, {"conv": 1, "dwconv": 1, "linear": 1})
    assert checked == conv_and_linear_modules(model)


@pytest.mark.parametrize("preset, shape", [
    ("densenet121", (3, 224, 224)), ("densenet161", (3, 160, 128)),
    ("shufflenet_v2_x1_0", (3, 224, 224)), ("shufflenet_v2_x0_5", (3, 96, 160)),
])
def test_every_module_output_shape_is_torchvisions(preset, shape, ours, tv):
    net, totals = ours(preset, inputs={"x": "x".join(map(str, shape))})
    model = tv(preset)
    # every module torchvision calls is a node or a scope of ours, with torchvision's output shape
    assert_module_output_shapes(net, model, shape)
    with torch.no_grad():
        logits = model(torch.zeros(1, *shape, device="meta"))
    assert net.type_of(net.outputs["logits"]).shape == tuple(logits.shape[1:]) == (1000,)
    assert totals["macs"] == reference_macs(model, shape)


# ---------------------------------------------------------------- the generated PyTorch module


@pytest.mark.parametrize("preset", [case(p, RuntimeError, slow=True) for p in PRESETS])
def test_generated_module_loads_torchvisions_weights_and_computes_the_same(preset, ours):
    net, _ = ours(preset, inputs={"x": "x".join(map(str, SMALL))})
    torch.manual_seed(0)
    reference = randomize_norms(getattr(tvm, preset)(weights=None))
    assert same_output(net, reference) < 1e-5


@pytest.mark.parametrize("preset", [case(p, AssertionError) for p in PRESETS])
def test_generated_module_state_dict_is_the_irs(preset, ours):
    # independent of torchvision: what the generated code builds is what the IR describes
    net, _ = ours(preset)
    with torch.device("meta"):
        model = cnndsl.to_torch(net)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == {k: s for k, (s, _) in ir_state(net).items()}


def test_slot_name_clash_minimal_reproducer(tmp_path):
    # The smallest file that shows the bug above: two instances of one block whose two convs' widths vary
    # and match no block parameter. The generated Unit names both widths `nn_conv2d_1` and builds the first
    # conv with the second one's width: 8 -> 13 channels where the IR says 8 -> 11.
    path = tmp_path / "slots.cnn"
    path.write_text(
        "block unit(x) {\n"
        "    return x -> conv(x.channels + 3, 1) -> conv(x.channels + 5, 1)\n"
        "}\n"
        "network slots() {\n"
        "    input x: 8x4x4\n"
        "    output y = x -> unit -> conv(16, 1) -> unit\n"
        "}\n")
    net = cnndsl.load(str(path))
    assert net.node("unit.conv")["type"].shape == (11, 4, 4)
    with torch.device("meta"):
        model = cnndsl.to_torch(net)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == {k: s for k, (s, _) in ir_state(net).items()}


def test_densenet_dropout_is_torchvisions_drop_rate(ours):
    # torchvision applies F.dropout(p=drop_rate) after each dense layer (a function, not a module, so the
    # state_dict is unchanged); here it is a dropout node at the end of each dense layer
    kwargs = {"growth_rate": 8, "block_config": [2, 3], "num_init_features": 16, "bn_size": 2}
    net, _ = ours("densenet", inputs={"x": "3x32x32"}, drop_rate=0.25, **kwargs)
    drops = [d for d in net.nodes() if d["op"] == "dropout"]
    assert len(drops) == 5 and all(d["attrs"]["p"] == 0.25 for d in drops)
    assert all(re.fullmatch(r"features\.denseblock\d\.denselayer\d\.\w+", d["name"]) for d in drops)
    torch.manual_seed(0)
    reference = randomize_norms(tvm.DenseNet(drop_rate=0.25, **{**kwargs, "block_config": (2, 3)}))
    assert ir_state(net) == torch_state(reference)
    assert same_output(net, reference, (3, 32, 32)) < 1e-5  # eval mode: dropout is the identity


# ---------------------------------------------------------------- parameters against torchvision's constructors


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(growth_rate=st.integers(1, 48), block_config=st.lists(st.integers(1, 4), min_size=1, max_size=4),
       num_init_features=st.integers(1, 96), bn_size=st.integers(1, 4), num_classes=st.integers(1, 1000),
       side=st.integers(32, 96))
def test_densenet_parameters_are_torchvisions_constructor(growth_rate, block_config, num_init_features, bn_size,
                                                          num_classes, side):
    # the stem divides the side by 4 and each of the (at most 3) transitions by 2: 32 leaves at least 1
    params = {"growth_rate": growth_rate, "num_init_features": num_init_features, "bn_size": bn_size,
              "num_classes": num_classes}
    net = cnndsl.load("densenet", inputs={"x": f"3x{side}x{side}"}, block_config=block_config, **params)
    totals = cnndsl.analyze(net)
    with torch.device("meta"):
        model = tvm.DenseNet(block_config=tuple(block_config), **params).eval()
    assert ir_state(net) == torch_state(model)
    assert totals["macs"] == reference_macs(model, (3, side, side))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(repeats=st.lists(st.integers(1, 4), min_size=3, max_size=3),
       halves=st.lists(st.integers(1, 64), min_size=5, max_size=5), num_classes=st.integers(1, 1000))
def test_shufflenet_parameters_are_torchvisions_constructor(repeats, halves, num_classes):
    # torchvision needs even stage widths (a stride-1 unit splits its input in two equal halves)
    channels = [2 * h for h in halves]
    net = cnndsl.load("shufflenetv2", inputs={"x": "3x64x64"}, stages_repeats=repeats,
                      stages_out_channels=channels, num_classes=num_classes)
    totals = cnndsl.analyze(net)
    with torch.device("meta"):
        model = tvm.ShuffleNetV2(repeats, channels, num_classes=num_classes).eval()
    assert ir_state(net) == torch_state(model)
    assert totals["macs"] == reference_macs(model, (3, 64, 64))


# ---------------------------------------------------------------- the papers' tables


@pytest.mark.parametrize("preset, depth", [("densenet121", 121), ("densenet161", 161), ("densenet169", 169),
                                           ("densenet201", 201)])
def test_densenet_depth_is_its_name(preset, depth, ours):
    # Huang et al. 2017, Table 1: the depth counts the weighted layers: the 7x7 conv, two convs per dense
    # layer, one per transition and the classifier (121 = 1 + 2 * (6 + 12 + 24 + 16) + 3 + 1)
    net, _ = ours(preset)
    assert sum(d["op"] in ("conv", "linear") for d in net.nodes()) == depth


def test_densenet121_output_sizes_are_table_1(ours):
    # Huang et al. 2017, Table 1 (k = 32): output size of each stage at 224x224
    net, _ = ours("densenet121")
    shapes = ir_output_shapes(net)
    expected = {"features.conv0": 112, "features.pool0": 56, "features.denseblock1": 56,
                "features.transition1.conv": 56, "features.transition1": 28, "features.denseblock2": 28,
                "features.transition2": 14, "features.denseblock3": 14, "features.transition3": 7,
                "features.denseblock4": 7, "global_avgpool": 1}
    assert {k: shapes[k][1:] for k in expected} == {k: (v, v) for k, v in expected.items()}
    # Table 1's dense blocks: [1x1 conv, 3x3 conv] x 6, 12, 24, 16
    for b, n in enumerate([6, 12, 24, 16], 1):
        layers = {m[1] for name in net.order if (m := re.match(rf"features\.denseblock{b}\.(denselayer\d+)\.", name))}
        assert len(layers) == n


@pytest.mark.parametrize("preset, k, k0", [("densenet121", 32, 64), ("densenet161", 48, 96)])
def test_dense_connectivity(preset, k, k0, ours):
    # Huang et al. 2017, Section 3, "Dense connectivity": layer l receives the concatenation of the block's
    # input and the feature maps of layers 1 .. l-1, "x_l = H_l([x_0, x_1, ..., x_{l-1}])", and has
    # k0 + k * (l - 1) input channels; "Growth rate": each layer adds k; "Bottleneck layers": the 1x1 conv
    # makes 4k maps. Compression 0.5 halves the channels in each transition.
    net, _ = ours(preset)
    channels = k0
    source = "features.pool0"
    blocks = {"densenet121": [6, 12, 24, 16], "densenet161": [6, 12, 36, 24]}[preset]
    for b, n in enumerate(blocks, 1):
        block = f"features.denseblock{b}"
        outputs = [source]
        for l in range(1, n + 1):  # noqa: E741 - the paper's l
            norm1 = net.node(f"{block}.denselayer{l}.norm1")
            (cat,) = norm1["inputs"]
            assert net.node(cat)["op"] == "concat" and net.node(cat)["inputs"] == outputs
            assert net.type_of(cat).shape[0] == channels + k * (l - 1)
            assert net.node(f"{block}.denselayer{l}.conv1")["attrs"]["out"] == 4 * k
            assert net.type_of(f"{block}.denselayer{l}.conv2").shape[0] == k
            outputs.append(f"{block}.denselayer{l}.conv2")
        last = [name for name in net.order if name.startswith(block + ".")][-1]
        assert net.node(last)["op"] == "concat" and net.node(last)["inputs"] == outputs
        channels += k * n
        if b < len(blocks):
            source = f"features.transition{b}.pool"
            assert net.type_of(source).shape[0] == channels // 2
            channels //= 2


# Ma et al. 2018, Table 5: output channels of Conv1, Stage2, Stage3, Stage4, Conv5 per width; the number of
# weights (millions, one decimal) and the complexity (MFLOPs, counted as multiply-adds). The authors' code
# lists the same FLOPs and #Params (github.com/megvii-model/ShuffleNet-Series, ShuffleNetV2/README.md).
TABLE_5 = {
    "shufflenet_v2_x0_5": ([24, 48, 96, 192, 1024], 1.4, 41),
    "shufflenet_v2_x1_0": ([24, 116, 232, 464, 1024], 2.3, 146),
    "shufflenet_v2_x1_5": ([24, 176, 352, 704, 1024], 3.5, 299),
    "shufflenet_v2_x2_0": ([24, 244, 488, 976, 2048], 7.4, 591),
}


@pytest.mark.parametrize("preset", SHUFFLENETS)
def test_shufflenet_stages_are_table_5(preset, ours):
    # Table 5: Conv1 3x3/2 (112), MaxPool 3x3/2 (56), Stage2 28 (1 unit of stride 2, 3 of stride 1),
    # Stage3 14 (1 + 7), Stage4 7 (1 + 3), Conv5 1x1 (7), GlobalPool, FC 1000
    net, totals = ours(preset)
    channels, weights, mflops = TABLE_5[preset]
    shapes = ir_output_shapes(net)
    stages = ["conv1", "stage2", "stage3", "stage4", "conv5"]
    assert [shapes[s] for s in stages] == [(c, s, s) for c, s in zip(channels, [112, 28, 14, 7, 7])]
    assert shapes["maxpool"] == (channels[0], 56, 56)
    for stage, units in zip(stages[1:4], [4, 8, 4]):
        assert {name.split(".")[1] for name in net.order if name.startswith(stage + ".")} == set(map(str, range(units)))
    assert round(totals["params"] / 1e6, 1) == weights
    # The paper's complexity is rounded and was counted by the authors' own tool: agree to within 2 %
    # (torchvision's exact counts, checked above, are 40.5, 144.9, 295.8, 583.3 M).
    assert totals["macs"] == pytest.approx(mflops * 1e6, rel=0.02)


@pytest.mark.parametrize("preset", ["shufflenet_v2_x0_5", "shufflenet_v2_x2_0"])
def test_shufflenet_units_split_concatenate_and_shuffle(preset, ours):
    # Ma et al. 2018, Fig. 3(c): a stride-1 unit splits its c input channels into two halves; the first is
    # kept, the second goes through the branch; the two are concatenated, then shuffled (2 groups).
    # Fig. 3(d): a stride-2 unit feeds the whole input to both branches.
    net, _ = ours(preset)
    units = sorted({m[0] for name in net.order if (m := re.match(r"stage\d\.\d+", name))})
    assert len(units) == 16
    for unit in units:
        shuffle = [n for n in net.order if n.startswith(unit + ".")][-1]
        assert net.node(shuffle)["op"] == "channel_shuffle" and net.node(shuffle)["attrs"]["groups"] == 2
        (cat,) = net.node(shuffle)["inputs"]
        left, right = net.node(cat)["inputs"]
        c = net.type_of(cat).shape[0]
        if unit.endswith(".0"):
            assert left.startswith(unit + ".branch1.") and right.startswith(unit + ".branch2.")
        else:
            a = net.node(left)
            assert a["op"] == "slice" and (a["attrs"]["start"], a["attrs"]["stop"]) == (0, c // 2)
            first = net.node(f"{unit}.branch2.0")
            (split,) = first["inputs"]
            assert net.node(split)["op"] == "slice" and net.node(split)["attrs"]["start"] == c // 2
            assert right == f"{unit}.branch2.7"


# ---------------------------------------------------------------- the files themselves


@pytest.mark.parametrize("filename, presets", [("densenet.cnn", DENSENETS), ("shufflenet_v2.cnn", SHUFFLENETS)])
def test_files_check_and_compile_without_warnings(filename, presets, capsys):
    path = architectures_dir() / filename
    text = path.read_text(encoding="utf-8")
    first = text.splitlines()[0]
    assert first.startswith("# ") and ("Huang" in first or "Ma" in first) and ("2017" in first or "2018" in first)
    assert cli_main(["check", str(path)]) == 0
    out = capsys.readouterr()
    assert out.err == "" and "ok" in out.out
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for preset in presets:
            net = cnndsl.load(f"{path}:{preset}")  # a preset selected in the file
            cnndsl.analyze(net)
            ast.parse(cnndsl.compile(net, "torch"))


@pytest.mark.parametrize("preset", PRESETS)
def test_presets_are_in_the_zoo_with_descriptions_citing_the_paper(preset, capsys):
    assert cli_main(["zoo"]) == 0
    line = [row for row in capsys.readouterr().out.splitlines() if re.match(rf"\s*{preset}\b", row)]
    assert len(line) == 1
    cite = "Huang et al. 2017" if preset.startswith("densenet") else "Ma et al. 2018"
    assert cite in line[0] and f"torchvision's {preset}" in line[0]
    assert cite in cnndsl.load(preset).doc


# ---------------------------------------------------------------- generated code that reads badly (see the report)


def generated_classes(source: str, block: str) -> list[str]:
    tree = ast.parse(source)
    return [node.name for node in tree.body if isinstance(node, ast.ClassDef)
            and f"Block `{block}`" in (ast.get_docstring(node) or "")]


def test_shufflenet_units_are_one_class_as_torchvisions_inverted_residual(ours):
    # the split's bounds are written from the input's shape (torchvision: x.chunk(2, dim=1)), not as each
    # stage's literal (x[:, :58]); the strided unit's branch1 is built and run only at stride 2, and branch2's
    # first conv reads half the channels at stride 1 (torchvision: `inp if (self.stride > 1) else branch_features`)
    net, _ = ours("shufflenet_v2_x1_0")
    source = cnndsl.compile(net)
    assert generated_classes(source, "inverted_residual") == ["InvertedResidual"]
    assert ("        if self.use_slice:\n            left = x[:, :x.shape[1] // 2]\n"
            "            right = x[:, x.shape[1] // 2:]\n        if self.branch1 is not None:\n"
            "            left = self.branch1(x)\n        right = self.branch2(right)\n") in source
    assert "in_channels - in_channels // 2 if stride == 1 else in_channels" in source


def test_densenet_dense_blocks_share_one_class(ours):
    net, _ = ours("densenet121")
    assert len(generated_classes(cnndsl.compile(net), "dense_block")) == 1


def test_shufflenet_generated_code_defines_nothing_unused(ours):
    # slices are written x[:, a:b] and the shuffle calls a function: no Slice or ChannelShuffle class
    net, _ = ours("shufflenet_v2_x1_0")
    assert unused_definitions(cnndsl.compile(net)) == []
