"""The ResNet family (architectures/resnet.cnn) and MobileNetV2 (architectures/mobilenet_v2.cnn).

Every expected number comes from torchvision's model built here with weights=None (parameters, buffers,
state_dict names and shapes, intermediate shapes, MACs through torch's FlopCounterMode), from an
independent measurement on that model (receptive fields from the support of an input gradient), or from
a published figure cited where it is used.
"""

from __future__ import annotations

import json
import re
import textwrap

import pytest

import torch
import torchvision.models as tvm

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import cnndsl
from cnndsl.cli import main as cli_main

from reference import (assert_module_output_shapes, buffers, conv_and_linear_modules, flop_counts, ir_state,
                       matmul_macs, node_macs_checked, reference_macs, torch_state, trainable)

# The presets of these files. Their published parameter counts and GFLOPS (reference.PUBLISHED, WEIGHTS), their
# parameters, buffers, state_dict and MACs against torchvision's models: tests/test_zoo_classic.py, for every
# preset of the zoo.
PRESETS = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "mobilenet_v2"]


# ---------------------------------------------------------------- every preset against torchvision


@pytest.mark.parametrize("preset", PRESETS)
def test_output_is_one_logit_per_class(preset, tv, ours):
    net, _ = ours(preset)
    assert list(net.outputs) == ["logits"]
    with torch.no_grad():
        out = tv(preset)(torch.zeros(1, 3, 224, 224, device="meta"))
    assert net.type_of(net.outputs["logits"]).shape == tuple(out.shape[1:]) == (1000,)


@pytest.mark.parametrize("preset", ["resnet18", "resnet50", "mobilenet_v2"])
def test_macs_of_every_conv_and_linear_node_equal_flop_counter_per_module(preset, tv, ours):
    net, _ = ours(preset)
    model = tv(preset)
    checked = node_macs_checked(net, model, {"conv": 1, "dwconv": 1, "linear": 1})
    assert checked == conv_and_linear_modules(model)


def test_resnet50_macs_are_fvcores_figure(ours):
    # fvcore 0.1.5, FlopCountAnalysis(torchvision resnet50, 1x3x224x224).by_operator() counts one
    # multiply-add as one "flop": conv 4,087,136,256 + linear 2,048,000 = 4,089,184,256 (its total adds
    # batch norm and pooling, which are not MACs).
    _, totals = ours("resnet50")
    assert totals["macs"] == 4_089_184_256


def test_resnet50_macs_equal_fvcore_when_installed(tv, ours):
    import fvcore.nn as fvcore_nn
    analysis = fvcore_nn.FlopCountAnalysis(tv("resnet50", device="cpu"), torch.zeros(1, 3, 224, 224))
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    by_op = analysis.by_operator()
    _, totals = ours("resnet50")
    assert totals["macs"] == by_op["conv"] + by_op["linear"]


def test_paper_figures():
    # He et al. 2015, Table 1: the 18-layer net costs 1.8 x 10^9 FLOPs (multiply-adds); the basic block
    # is unchanged in torchvision (the 50/101/152-layer figures differ: torchvision strides the 3x3 conv).
    assert round(cnndsl.analyze(cnndsl.load("resnet18"))["macs"] / 1e9, 1) == 1.8
    # Sandler et al. 2018, Table 4: MobileNetV2 (1.0, 224x224) takes "300M" multiply-adds, a rounded
    # figure (torchvision's exact count is 300.8M, checked above): agree to within 0.5%.
    assert cnndsl.analyze(cnndsl.load("mobilenet_v2"))["macs"] == pytest.approx(300e6, rel=0.005)


# ---------------------------------------------------------------- overrides: --set and --input


def test_resnet50_at_160_matches_torchvisions_intermediate_shapes(tv, ours):
    net, totals = ours("resnet50", inputs={"x": "3x160x160"})
    model = tv("resnet50")
    # every module of torchvision is named in the IR (the IR adds the functional flatten and adds), with
    # torchvision's output shape
    mine = assert_module_output_shapes(net, model, (3, 160, 160))
    assert mine["layer4"] == (2048, 5, 5)  # 160 / 32
    assert totals["macs"] == reference_macs(model, (3, 160, 160))


@pytest.mark.parametrize("width", [0.35, 0.5, 0.75, 1.4])
def test_mobilenet_v2_width_multiplier_is_torchvisions_width_mult(width, tv, ours):
    net, totals = ours("mobilenet_v2", width=width)
    model = tv("mobilenet_v2", width_mult=width)
    assert ir_state(net) == torch_state(model)
    assert totals["trainable_params"] == trainable(model)
    assert totals["buffers"] == buffers(model)
    assert totals["macs"] == reference_macs(model)


def test_mobilenet_v2_round_nearest_is_torchvisions(tv, ours):
    net, totals = ours("mobilenet_v2", width=0.6, round_nearest=1)
    model = tv("mobilenet_v2", width_mult=0.6, round_nearest=1)
    assert ir_state(net) == torch_state(model)
    assert totals["macs"] == reference_macs(model)


def test_mobilenet_v2_width_and_resolution_together(tv, ours):
    net, totals = ours("mobilenet_v2", inputs={"x": "3x160x160"}, width=0.75)
    model = tv("mobilenet_v2", width_mult=0.75)
    assert_module_output_shapes(net, model, (3, 160, 160))
    assert totals["macs"] == reference_macs(model, (3, 160, 160))


def test_mobilenet_v2_dropout_is_torchvisions_and_can_be_set(tv, ours):
    net, _ = ours("mobilenet_v2")
    assert net.node("classifier.0")["op"] == "dropout"
    assert net.node("classifier.0")["attrs"]["p"] == tv("mobilenet_v2").classifier[0].p
    net, _ = ours("mobilenet_v2", dropout=0.5)
    assert net.node("classifier.0")["attrs"]["p"] == tv("mobilenet_v2", dropout=0.5).classifier[0].p


@pytest.mark.slow  # a property over many built models: CI runs it (pytest runs every test)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(width=st.sampled_from([k / 20 for k in range(4, 31)]), side=st.integers(32, 256))
def test_mobilenet_v2_any_width_and_resolution(width, side):
    net = cnndsl.load("mobilenet_v2", inputs={"x": f"3x{side}x{side}"}, width=width)
    totals = cnndsl.analyze(net)
    model = tvm.mobilenet_v2(weights=None, width_mult=width).eval()
    assert ir_state(net) == torch_state(model)
    assert totals["macs"] == reference_macs(model, (3, side, side))


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(preset=st.sampled_from(["resnet18", "resnet50"]), layers=st.lists(st.integers(1, 3), min_size=4, max_size=4),
       num_classes=st.integers(1, 1000))
def test_resnet_layers_and_classes_overrides(preset, layers, num_classes):
    # the preset fixes the block (basic for resnet18, bottleneck for resnet50); --set changes the rest
    net = cnndsl.load(preset, layers=layers, num_classes=num_classes)
    cnndsl.analyze(net)
    block = tvm.resnet.BasicBlock if preset == "resnet18" else tvm.resnet.Bottleneck
    model = tvm.ResNet(block, layers, num_classes=num_classes)
    assert ir_state(net) == torch_state(model)
    assert net.type_of(net.outputs["logits"]).shape == (num_classes,)


def test_cli_set_chooses_the_block_by_name(capsys, tv):
    # `--set unit=basic_block` names a block of resnet.cnn: the generic network becomes ResNet-18
    code = cli_main(["analyze", "resnet", "--set", "unit=basic_block", "--set", "layers=[2, 2, 2, 2]",
                     "--input", "x=3x96x96", "--format", "json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    model = tv("resnet18")
    assert report["totals"]["trainable_params"] == trainable(model)
    assert report["totals"]["macs"] == reference_macs(model, (3, 96, 96))
    assert report["outputs"]["logits"] == [1000]
    layer4 = [row for row in report["layers"] if row["name"] == "layer4.1.relu_1"]
    assert layer4 and layer4[0]["shape"] == [512, 3, 3]  # 96 / 32


def test_analyze_table_depth_one_rows_are_torchvisions_top_modules(capsys, tv):
    assert cli_main(["analyze", "resnet50", "--depth", "1", "--format", "markdown"]) == 0
    rows = {}
    for line in capsys.readouterr().out.splitlines():
        m = re.match(r"\| `([\w.]+)` \| (\w+) \| ([\dx]+) \| ([\d,]+) \| ([\d,]+) \|", line)
        if m:
            rows[m[1]] = (m[2], int(m[4].replace(",", "")), int(m[5].replace(",", "")))
    model = tv("resnet50")
    counts = flop_counts(model)
    assert list(rows) == ["x", "conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4",
                          "avgpool", "flatten", "fc"]
    for name, module in model.named_children():
        _, params, macs = rows[name]
        assert params == trainable(module), name
        assert macs == matmul_macs(counts.get(f"ResNet.{name}", {})), name


# ---------------------------------------------------------------- receptive fields


def measured_receptive_field(features: nn.Module, side: int, unit: int) -> tuple[int, int]:
    """(size, first input row) of the input region an output position depends on, measured as the
    support of the gradient of that position's channels with respect to the input. Weights are set to
    positive averages and the input to a small positive constant, so no ReLU (or ReLU6) blocks a path;
    the caller swaps max pooling for average pooling of the same window, whose gradient reaches every
    tap (a max pool's reaches one)."""
    with torch.no_grad():
        for m in features.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.fill_(1.0 / m.weight[0].numel())
    x = torch.full((1, 3, side, side), 1e-3, requires_grad=True)
    features.eval()(x)[0, :, unit, unit].sum().backward()
    grad = x.grad[0].abs().sum(0)
    rows = torch.nonzero(grad.sum(1)).flatten()
    cols = torch.nonzero(grad.sum(0)).flatten()
    assert (rows.min(), rows.max()) == (cols.min(), cols.max())
    return int(rows.max() - rows.min() + 1), int(rows.min())


@pytest.mark.parametrize("preset, side, unit, last", [
    ("resnet18", 448, 7, "layer4"),
    ("resnet50", 448, 7, "layer4"),
    ("mobilenet_v2", 512, 8, "features"),
])
def test_receptive_field_equals_gradient_support_on_torchvision(preset, side, unit, last):
    # the input is large enough for the field of output `unit` to lie inside it
    net = cnndsl.load(preset, inputs={"x": f"3x{side}x{side}"})
    cnndsl.analyze(net)
    end = [n for n in net.order if n.startswith(last + ".")][-1]
    rf = net.node(end)["rf"]
    model = getattr(tvm, preset)(weights=None)
    if preset.startswith("resnet"):
        features = nn.Sequential(model.conv1, model.bn1, model.relu, nn.AvgPool2d(3, 2, 1),
                                 model.layer1, model.layer2, model.layer3, model.layer4)
    else:
        features = model.features
    size, first = measured_receptive_field(features, side, unit)
    assert rf.size == (size, size)
    assert rf.stride == (32, 32)
    assert unit * rf.stride[0] - rf.padding[0] == first  # the field of output i starts at i * stride - padding
    # residual paths of unequal fields meet at the last add; the largest is reported and the add is marked
    adds = [n for n in net.order if n.startswith(last + ".") and net.node(n)["op"] == "add"]
    if adds:
        assert net.node(adds[-1])["rf"].merged and not rf.merged


def test_receptive_field_of_resnet50_table():
    # the RF column of `cnndsl analyze resnet50` (size of each stage's output), from the Araujo et al.
    # recurrence worked by hand: conv1 7 (jump 2), maxpool 7 + 2*2 = 11 (jump 4); each 3x3 conv adds
    # 2 * jump: layer1 11 + 3*8 = 35; layer2 35 + 8 (first 3x3 still at jump 4) + 3*16 = 91 (jump 8);
    # layer3 91 + 16 + 5*32 = 267; layer4 267 + 32 + 2*64 = 427 (jump 32).
    net = cnndsl.load("resnet50")
    cnndsl.analyze(net)
    for stage, size, jump in [("maxpool", 11, 4), ("layer1.2.relu_2", 35, 4), ("layer2.3.relu_2", 91, 8),
                              ("layer3.5.relu_2", 267, 16), ("layer4.2.relu_2", 427, 32)]:
        rf = net.node(stage)["rf"]
        assert (rf.size, rf.stride) == ((size, size), (jump, jump)), stage


TF_SLIM_RESNET_V1_50 = """
# TF-Slim's resnet_v1_50 (tensorflow/models research/slim/nets/resnet_v1.py), the layout Araujo et al.
# measured: conv2d_same pads explicitly (3 for the 7x7/2, 1 for a 3x3), the stem's max pool is SAME
# (no padding on the left at 112), and each stage downsamples in its LAST unit, with a 1x1 max pool
# ("subsample") on the shortcut where the channels already agree.
block unit(x, depth, stride) {
    y = x -> conv(depth // 4, 1, bias=false) -> batchnorm -> relu
          -> conv(depth // 4, 3, stride=stride, pad=1, bias=false) -> batchnorm -> relu
          -> conv(depth, 1, bias=false) -> batchnorm
    if x.channels == depth {
        s = x -> maxpool(1, stride=stride)
    } else {
        s = x -> conv(depth, 1, stride=stride, bias=false) -> batchnorm
    }
    return relu(y + s)
}

network resnet_v1_50() {
    input x: 3x224x224
    y = x -> conv(64, 7, stride=2, pad=3, bias=false) -> batchnorm -> relu -> maxpool(3, stride=2, ceil_mode=true)
    for i, n in enumerate([3, 4, 6, 3]) {
        y = y -> stage{i + 1}: [for j in range(n) { unit(256 * 2 ** i, stride=2 if i < 3 and j == n - 1 else 1) }]
    }
    output y = y
}
"""


def test_receptive_field_pass_reproduces_araujo_et_al_for_tf_slim_resnet_v1_50(tmp_path):
    # Araujo, Norris & Sim 2019, "Computing Receptive Fields of Convolutional Neural Networks" (Distill):
    # their library's table (google-research/receptive_field, RECEPTIVE_FIELD_TABLE.md) lists
    # resnet_v1_50 at 224x224, end-points block1..block4: RF 35/99/291/483, effective stride 8/16/32/32,
    # effective padding 15/47/143/239. (That is TF-Slim's layout; torchvision's ResNet-50, which strides
    # the first unit of a stage, has 427: see the tests above.)
    path = tmp_path / "resnet_v1_50.cnn"
    path.write_text(textwrap.dedent(TF_SLIM_RESNET_V1_50))
    net = cnndsl.load(str(path))
    cnndsl.analyze(net)
    assert net.type_of(net.outputs["y"]).shape == (2048, 7, 7)
    for stage, size, stride, padding in [(1, 35, 8, 15), (2, 99, 16, 47), (3, 291, 32, 143), (4, 483, 32, 239)]:
        end = [n for n in net.order if n.startswith(f"stage{stage}.")][-1]
        rf = net.node(end)["rf"]
        assert (rf.size, rf.stride, rf.padding) == ((size,) * 2, (stride,) * 2, (padding,) * 2), stage


# ---------------------------------------------------------------- the files themselves


@pytest.mark.parametrize("preset", PRESETS)
def test_presets_have_descriptions_and_cite_the_paper(preset):
    net = cnndsl.load(preset)
    assert net.doc and ("He et al. 2015" in net.doc or "Sandler et al. 2018" in net.doc)
