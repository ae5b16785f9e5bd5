"""ResNeXt and Wide ResNet (presets of architectures/resnet.cnn), SqueezeNet (squeezenet.cnn), MnasNet
(mnasnet.cnn), RegNet (regnet.cnn), EfficientNetV2 (efficientnet_v2.cnn) and Inception v3 (inception_v3.cnn):
the torchvision classification models of issue 11 that the language's ops express.

Every expected number comes from an independent source: torchvision's models built here with weights=None (on
the meta device for counts and names, on the CPU for outputs), torch's FlopCounterMode run on them,
torchvision's own RegNet width rule (BlockParams), or a published figure cited where it is used. The whole-zoo
checks (published parameters and GFLOPS, parameters, buffers, state_dict and MACs against torchvision for
every preset) are in tests/test_zoo.py; the PyTorch backend's own checks of every preset (the module on the
meta device, and on the CPU against torchvision at a quarter of the input) in tests/test_torch_backend.py;
the NumPy backend against PyTorch at a reduced input in tests/test_numpy_backend.py. Here: each family's
outputs against torchvision with the element-wise error too, the parameters torchvision's builders take
(groups and width_per_group, alpha, RegNet's four numbers, aux_logits), and what the papers print.
"""

from __future__ import annotations

import os
from math import log

import pytest

import torch
import torchvision.models as tvm

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn
from torchvision.models import efficientnet as tv_efficientnet
from torchvision.models import regnet as tv_regnet

import cnndsl
from cnndsl.cli import main as cli_main

from reference import (PUBLISHED, REFERENCES, REGNETS, WEIGHTS, assert_state_dict_is_the_models, ir_state,
                       output_error, random_input, reference_macs, relative_error, torch_state,
                       torchvision_builder)

FAMILIES = {
    "resnext": ["resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d"],
    "wide_resnet": ["wide_resnet50_2", "wide_resnet101_2"],
    "squeezenet": ["squeezenet1_0", "squeezenet1_1"],
    "mnasnet": ["mnasnet0_5", "mnasnet0_75", "mnasnet1_0", "mnasnet1_3"],
    "regnet": REGNETS,
    "efficientnet_v2": ["efficientnet_v2_s", "efficientnet_v2_m", "efficientnet_v2_l"],
    "inception_v3": ["inception_v3"],
}
PRESETS = [preset for presets in FAMILIES.values() for preset in presets]
# Each file's citation, as its presets' descriptions give it.
CITATION = {"resnext": "Xie et al. 2016", "wide_resnet": "Zagoruyko & Komodakis 2016",
            "squeezenet": "Iandola et al. 2016", "mnasnet": "Tan et al. 2018", "regnet": "Radosavovic et al. 2020",
            "efficientnet_v2": "Tan & Le 2021", "inception_v3": "Szegedy et al. 2015"}

# Real (CPU) builds above 200M parameters only with CNNDSL_TEST_HUGE=1 (RegNetY-128GF: 645M parameters, 2.6 GB,
# twice), as tests/test_torch_backend.py.
RUN_HUGE = os.environ.get("CNNDSL_TEST_HUGE") == "1"


# One preset of each family runs in the fast suite (`pytest -m "not slow"`); tests/test_torch_backend.py also
# compares every preset under 50M parameters with torchvision there (norm-wise, at a quarter of the input).
FAST = {"resnext50_32x4d", "squeezenet1_1", "mnasnet0_5", "regnet_x_400mf", "regnet_y_400mf"}


def real(preset: str):
    params = PUBLISHED[preset]
    if params > 200_000_000:
        reason = (f"{params / 1e6:.0f}M parameters: too large for CI, on the meta device only; "
                  "CNNDSL_TEST_HUGE=1 builds it")
        marks = () if RUN_HUGE else pytest.mark.skip(reason=reason)
    else:
        marks = () if preset in FAST else pytest.mark.slow
    return pytest.param(preset, marks=marks, id=preset)


def family_of(preset: str) -> str:
    return next(family for family, presets in FAMILIES.items() if preset in presets)


def cpu_reference(name: str, **kwargs) -> nn.Module:
    """torchvision's model (weights=None) on the CPU, in eval mode, with every number mattering: torchvision
    zero-initialises biases and sets batch norm's statistics to 0 and 1, so these are randomised (then each
    epsilon, and the order of the layers, change the outputs). Not cached: the big ones are freed after use."""
    torch.manual_seed(0)
    model = (REFERENCES.get(name) or torchvision_builder(name))(**kwargs).eval()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.normal_(std=0.02, generator=generator)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(std=0.1, generator=generator)
                m.running_var.uniform_(0.5, 2.0, generator=generator)
    return model


# The side of the random input the outputs are compared at: the least that each family accepts comfortably
# (all are fully convolutional up to global pooling).
SIDE = {"resnext": 64, "wide_resnet": 64, "squeezenet": 64, "mnasnet": 64, "regnet": 64, "efficientnet_v2": 64}


# ---------------------------------------------------------------- every preset


def test_presets_take_torchvisions_crop_size_and_cite_the_paper(capsys):
    # the input is the one torchvision evaluates its weights at (and counts meta["_ops"] at); the description
    # cites the paper and names torchvision's model, and `cnndsl zoo` shows it
    for preset in PRESETS:
        net = cnndsl.load(preset)
        side = WEIGHTS[preset].transforms().crop_size[0]
        assert net.type_of(net.inputs["x"]).shape == (3, side, side), preset
        assert CITATION[family_of(preset)] in net.doc and f"torchvision's {preset}" in net.doc, preset
    assert cli_main(["zoo"]) == 0
    listed = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert all(CITATION[family_of(preset)] in listed[preset] for preset in PRESETS)


@pytest.mark.parametrize("family", ["squeezenet", "mnasnet", "regnet", "efficientnet_v2", "inception_v3"])
def test_files_open_with_a_comment_citing_the_paper(family):
    # the first paragraph: authors, year, title, arXiv (docs/gen_zoo.py shows it); torchvision's departures follow
    with open(cnndsl.load(FAMILIES[family][0]).source, encoding="utf-8") as f:
        text = f.read()
    head = text.split("\n#\n")[0]
    assert head.startswith("# ") and "arXiv:" in head and CITATION[family].split(" et al.")[0].split(" &")[0] in head
    assert "torchvision" in text.split("\n\n")[0]


# (Inception v3, whose generated model returns both outputs: test_inception_v3_aux_logits_... below)
@pytest.mark.parametrize("preset", [real(p) for p in PRESETS if p != "inception_v3"])
def test_generated_model_loads_torchvisions_state_dict_and_computes_the_same(preset, ours):
    side = SIDE[family_of(preset)]
    net, _ = ours(preset, inputs={"x": f"3x{side}x{side}"})
    reference = cpu_reference(preset)
    x = random_input(2, 3, side, side, seed=2)
    # relative_error: the larger of the norm-wise and the element-wise (max) error
    assert output_error(net, reference, x, threads=1) <= 1e-5
    del reference


# ---------------------------------------------------------------- ResNeXt and Wide ResNet


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(groups=st.sampled_from([1, 2, 8, 32, 64]), width_per_group=st.sampled_from([4, 8, 16, 64, 128]),
       layers=st.lists(st.integers(1, 3), min_size=4, max_size=4), side=st.sampled_from([64, 96, 224]))
def test_resnet_groups_and_width_per_group_are_torchvisions(groups, width_per_group, layers, side):
    # torchvision's ResNet(Bottleneck, layers, groups=..., width_per_group=...): the 3x3 conv has
    # int(planes * width_per_group / 64) * groups channels in groups groups
    net = cnndsl.load("resnet", layers=layers, groups=groups, width_per_group=width_per_group,
                      inputs={"x": f"3x{side}x{side}"})
    totals = cnndsl.analyze(net)
    with torch.device("meta"):
        model = tvm.ResNet(tvm.resnet.Bottleneck, layers, groups=groups, width_per_group=width_per_group).eval()
    assert ir_state(net) == torch_state(model)
    assert totals["macs"] == reference_macs(model, (3, side, side))
    assert net.node("layer1.0.conv2")["attrs"]["groups"] == model.layer1[0].conv2.groups == groups


def test_basic_block_refuses_groups_as_torchvision_does():
    # torchvision: "BasicBlock only supports groups=1 and base_width=64"; here the basic block has no such
    # parameters, and saying so is a located error
    with pytest.raises(cnndsl.CnnError, match="block 'basic_block' has no parameter 'groups'"):
        cnndsl.load("resnet18", groups=2)
    with pytest.raises(ValueError, match="BasicBlock only supports"):
        tvm.ResNet(tvm.resnet.BasicBlock, [2, 2, 2, 2], groups=2)


def test_resnext_50_is_the_papers_table_1(ours):
    # Xie et al. 2016, Table 1: ResNeXt-50 (32x4d) has 25.0 x 10^6 parameters and 4.2 x 10^9 FLOPs
    # (multiply-adds); the 3x3 convs of its four stages are 128, 256, 512 and 1024 wide, in 32 groups
    net, totals = ours("resnext50_32x4d")
    assert round(totals["params"] / 1e6, 1) == 25.0 and round(totals["macs"] / 1e9, 1) == 4.2
    assert [net.node(f"layer{i}.0.conv2")["attrs"]["out"] for i in range(1, 5)] == [128, 256, 512, 1024]
    assert {net.node(f"layer{i}.0.conv2")["attrs"]["groups"] for i in range(1, 5)} == {32}


def test_wide_resnet_doubles_the_inner_width_only(ours):
    # Zagoruyko & Komodakis 2016, as torchvision reads them: the bottleneck's 1x1 and 3x3 convs are twice as
    # wide as ResNet-50's, its output (4 * planes) is not
    wide, _ = ours("wide_resnet50_2")
    base, _ = ours("resnet50")
    for name in ["layer1.0.conv1", "layer2.3.conv2", "layer4.2.conv2"]:
        assert wide.node(name)["attrs"]["out"] == 2 * base.node(name)["attrs"]["out"]
    assert wide.type_of("layer4.2.relu_2").shape == base.type_of("layer4.2.relu_2").shape == (2048, 7, 7)


# ---------------------------------------------------------------- SqueezeNet


def test_squeezenet_is_the_papers_table_1(ours):
    # Iandola et al. 2016, Table 1: 1,248,424 parameters (before pruning), 1000 classes out of conv10; the
    # Fire modules' widths: fire2 s1x1 16, e1x1 64, e3x3 64 ... fire9 64, 256, 256
    net, totals = ours("squeezenet1_0")
    assert totals["params"] == 1_248_424
    fires = [n for n in net.scopes if f"{n}.squeeze" in net.order]
    assert [(net.node(f"{f}.squeeze")["attrs"]["out"], net.node(f"{f}.expand1x1")["attrs"]["out"],
             net.node(f"{f}.expand3x3")["attrs"]["out"]) for f in fires] == [
        (16, 64, 64), (16, 64, 64), (32, 128, 128), (32, 128, 128), (48, 192, 192), (48, 192, 192),
        (64, 256, 256), (64, 256, 256)]


def test_squeezenet_1_1_costs_2_4_times_less(ours):
    # the authors' README of SqueezeNet v1.1 (github.com/forresti/SqueezeNet): "2.4x less computation than
    # SqueezeNet v1.0, without sacrificing accuracy"; 2.35 times in MACs, within 3% of that figure
    _, v10 = ours("squeezenet1_0")
    _, v11 = ours("squeezenet1_1")
    assert v10["macs"] / v11["macs"] == pytest.approx(2.4, rel=0.03)


# ---------------------------------------------------------------- MnasNet


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(alpha=st.sampled_from([0.25, 0.35, 0.5, 0.6, 0.75, 1.0, 1.1, 1.3, 1.4, 2.0]), side=st.sampled_from([64, 224]))
def test_mnasnet_any_alpha_is_torchvisions(alpha, side):
    net = cnndsl.load("mnasnet", alpha=alpha, inputs={"x": f"3x{side}x{side}"})
    totals = cnndsl.analyze(net)
    with torch.device("meta"):
        model = tvm.MNASNet(alpha).eval()
    assert ir_state(net) == torch_state(model)
    assert totals["macs"] == reference_macs(model, (3, side, side))


def test_mnasnet_batch_norm_momentum_is_torchvisions(ours, tv):
    net, _ = ours("mnasnet1_0")
    model = tv("mnasnet1_0")
    bns = [n for n in net.order if net.node(n)["op"] == "batchnorm"]
    assert bns == [name for name, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]
    assert {net.node(n)["attrs"]["momentum"] for n in bns} == {m.momentum for m in model.modules()
                                                               if isinstance(m, nn.BatchNorm2d)}


# ---------------------------------------------------------------- RegNet

# torchvision's RegNet builders and their BlockParams.from_init_params arguments (torchvision/models/regnet.py)
REGNET_ARGS = {
    "regnet_y_400mf": dict(depth=16, w_0=48, w_a=27.89, w_m=2.09, group_width=8, se_ratio=0.25),
    "regnet_y_800mf": dict(depth=14, w_0=56, w_a=38.84, w_m=2.4, group_width=16, se_ratio=0.25),
    "regnet_y_1_6gf": dict(depth=27, w_0=48, w_a=20.71, w_m=2.65, group_width=24, se_ratio=0.25),
    "regnet_y_3_2gf": dict(depth=21, w_0=80, w_a=42.63, w_m=2.66, group_width=24, se_ratio=0.25),
    "regnet_y_8gf": dict(depth=17, w_0=192, w_a=76.82, w_m=2.19, group_width=56, se_ratio=0.25),
    "regnet_y_16gf": dict(depth=18, w_0=200, w_a=106.23, w_m=2.48, group_width=112, se_ratio=0.25),
    "regnet_y_32gf": dict(depth=20, w_0=232, w_a=115.89, w_m=2.53, group_width=232, se_ratio=0.25),
    "regnet_y_128gf": dict(depth=27, w_0=456, w_a=160.83, w_m=2.52, group_width=264, se_ratio=0.25),
    "regnet_x_400mf": dict(depth=22, w_0=24, w_a=24.48, w_m=2.54, group_width=16),
    "regnet_x_800mf": dict(depth=16, w_0=56, w_a=35.73, w_m=2.28, group_width=16),
    "regnet_x_1_6gf": dict(depth=18, w_0=80, w_a=34.01, w_m=2.25, group_width=24),
    "regnet_x_3_2gf": dict(depth=25, w_0=88, w_a=26.31, w_m=2.25, group_width=48),
    "regnet_x_8gf": dict(depth=23, w_0=80, w_a=49.56, w_m=2.88, group_width=120),
    "regnet_x_16gf": dict(depth=22, w_0=216, w_a=55.59, w_m=2.1, group_width=128),
    "regnet_x_32gf": dict(depth=23, w_0=320, w_a=69.86, w_m=2.0, group_width=168),
}


def stages(net) -> list[tuple[int, int, int]]:
    """(width, blocks, group width) of each stage of a RegNet in the IR."""
    out = []
    for s in range(1, 5):
        blocks = [n for n in net.scopes if n.startswith(f"trunk_output.block{s}.") and n.count(".") == 2]
        conv = net.node(f"{blocks[0]}.f.b.0")["attrs"]
        out.append((net.type_of(f"{blocks[0]}.activation").shape[0], len(blocks), conv["out"] // conv["groups"]))
    return out


@pytest.mark.parametrize("preset", REGNETS)
def test_regnet_widths_depths_and_groups_are_torchvisions_block_params(preset, ours):
    # the preset's four numbers, through the paper's quantized linear rule as the .cnn file computes it, give
    # the stages torchvision's BlockParams.from_init_params computes (with torch, in float32)
    net, _ = ours(preset)
    assert {k: net.params[k] for k in REGNET_ARGS[preset]} == REGNET_ARGS[preset]
    params = tv_regnet.BlockParams.from_init_params(**REGNET_ARGS[preset])
    assert stages(net) == list(zip(params.widths, params.depths, params.group_widths))


def test_regnet_quantized_linear_rule_as_the_paper_writes_it(ours):
    # Radosavovic et al. 2020, equations 2-4, in float64 with logarithms: u_j = w_0 + w_a j,
    # s_j = log(u_j / w_0) / log(w_m), w_j = w_0 w_m^round(s_j), rounded to a multiple of 8; runs of equal
    # widths are the stages; then (torchvision's _adjust_widths_groups_compatibilty) the group width is at most
    # the stage's width, and the width a multiple of it, rounded as make_divisible rounds
    for preset in REGNETS:
        a = REGNET_ARGS[preset]
        widths = [round(a["w_0"] * a["w_m"] ** round(log((a["w_0"] + a["w_a"] * j) / a["w_0"]) / log(a["w_m"])) / 8)
                  * 8 for j in range(a["depth"])]
        expected = []
        for w in dict.fromkeys(widths):
            g = min(a["group_width"], w)
            fitted = max(g, int(w + g / 2) // g * g)
            fitted += g if fitted < 0.9 * w else 0
            expected.append((fitted, widths.count(w), g))
        net, _ = ours(preset)
        assert stages(net) == expected, preset


@settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(depth=st.integers(6, 28), w_0=st.sampled_from([16, 24, 32, 48, 64, 96]),
       w_a=st.sampled_from([8.5, 14.28, 20.71, 27.89, 36.44, 50.0]), w_m=st.sampled_from([1.5, 2.0, 2.25, 2.5, 2.9]),
       group_width=st.sampled_from([8, 16, 24, 48]), se_ratio=st.sampled_from([0, 0.25]))
def test_regnet_design_space_is_torchvisions(depth, w_0, w_a, w_m, group_width, se_ratio):
    # any point of the design space, not only the presets: torchvision's RegNet(BlockParams.from_init_params)
    net = cnndsl.load("regnet", depth=depth, w_0=w_0, w_a=w_a, w_m=w_m, group_width=group_width, se_ratio=se_ratio,
                      inputs={"x": "3x64x64"})
    totals = cnndsl.analyze(net)
    params = tv_regnet.BlockParams.from_init_params(depth=depth, w_0=w_0, w_a=w_a, w_m=w_m, group_width=group_width,
                                                    se_ratio=se_ratio or None)
    with torch.device("meta"):
        model = tv_regnet.RegNet(params).eval()
    assert ir_state(net) == torch_state(model)
    assert totals["macs"] == reference_macs(model, (3, 64, 64))


def test_regnet_names_its_blocks_with_a_hyphen_as_torchvision(ours, tv):
    net, _ = ours("regnet_x_400mf")
    assert "trunk_output.block1.block1-0.f.b.0.weight" in tv("regnet_x_400mf").state_dict()
    assert net.node("trunk_output.block1.block1-0.f.b.0")["op"] == "conv"


def test_hyphenated_labels_outside_a_sequence_compile_and_run(tmp_path):
    # a hyphen joins label parts anywhere (not only inside a sequence, where nn.Sequential holds the name): the
    # generated module registers such a member with add_module and reaches it with get_submodule
    path = tmp_path / "hyphen.cnn"
    path.write_text('network n() {\n    input x: 4x8x8\n    y = x -> stem{"-"}{0}: conv(4, 3, pad=1)\n'
                    '    output y = y -> head{"-"}{1}: [conv(2, 1), relu]\n}\n')
    net = cnndsl.load(str(path))
    assert [n for n in net.order if n != "x"] == ["stem-0", "head-1.0", "head-1.1"]
    model = cnndsl.to_torch(net)
    assert list(model.state_dict()) == ["stem-0.weight", "stem-0.bias", "head-1.0.weight", "head-1.0.bias"]
    x = random_input(1, 4, 8, 8, seed=0)
    with torch.no_grad():
        want = torch.relu(model.get_submodule("head-1")[0](model.get_submodule("stem-0")(x)))
        assert torch.equal(model(x), want)
    for bad in ['a{"-"}', 'a{"-"}{-1}', 'a{"--"}b', 'a{"-."}b']:
        path.write_text(f'network n() {{\n    input x: 4x8x8\n    output y = x -> {bad}: relu\n}}\n')
        with pytest.raises(cnndsl.CnnError, match="not a valid name|cannot"):
            cnndsl.load(str(path))


# ---------------------------------------------------------------- EfficientNetV2


@pytest.mark.parametrize("preset", FAMILIES["efficientnet_v2"])
def test_efficientnet_v2_blocks_and_stochastic_depth_are_torchvisions(preset, ours, tv):
    net, _ = ours(preset)
    model = tv(preset)
    blocks = [(name, m) for name, m in model.features.named_modules()
              if isinstance(m, (tv_efficientnet.MBConv, tv_efficientnet.FusedMBConv))]
    # fused blocks where torchvision has FusedMBConv: no depthwise conv (groups 1 everywhere), no SE
    for name, m in blocks:
        convs = [n for n in net.order if n.startswith(f"features.{name}.block.") and net.node(n)["op"] == "conv"]
        ses = [n for n in net.order if n.startswith(f"features.{name}.block.") and net.node(n)["op"] == "se"]
        fused = isinstance(m, tv_efficientnet.FusedMBConv)
        assert all(net.node(n)["attrs"]["groups"] == 1 for n in convs) == fused
        assert (ses == []) == fused
    # stochastic depth 0.2 * index / blocks, a node only where a shortcut uses it (torchvision's use_res_connect)
    assert [m.stochastic_depth.p for _, m in blocks] == [0.2 * i / len(blocks) for i in range(len(blocks))]
    mine = {n.rsplit(".", 1)[0]: net.node(n)["attrs"]["p"] for n in net.order
            if net.node(n)["op"] == "stochastic_depth"}
    assert mine == {f"features.{name}": m.stochastic_depth.p for name, m in blocks if m.use_res_connect}
    assert {net.node(n)["attrs"]["eps"] for n in net.order if net.node(n)["op"] == "batchnorm"} == {1e-3}
    assert net.node("classifier.0")["attrs"]["p"] == model.classifier[0].p


def test_efficientnet_v2_paper_table_7(ours):
    # Tan & Le 2021, Table 7 (ImageNet, at 384 / 480 / 480): S 22M parameters and 8.8B FLOPs (multiply-adds),
    # M 54M and 24B, L 120M and 53B. torchvision's models, counted exactly in test_zoo.py, are within 6% (S:
    # 21.5M and 8.37 G; L: 118.5M and 56.1 G; the authors' code rounds the SE widths differently).
    for preset, params, macs in [("efficientnet_v2_s", 22e6, 8.8e9), ("efficientnet_v2_m", 54e6, 24e9),
                                 ("efficientnet_v2_l", 120e6, 53e9)]:
        _, totals = ours(preset)
        assert totals["params"] == pytest.approx(params, rel=0.03)
        assert totals["macs"] == pytest.approx(macs, rel=0.06)


# ---------------------------------------------------------------- Inception v3


@pytest.fixture(scope="module")
def inception_v3_cpu():
    return cpu_reference("inception_v3")


def test_inception_v3_aux_logits_are_torchvisions_auxiliary_classifier(ours, inception_v3_cpu):
    # aux_logits is a training output: in eval mode the generated model returns the logits as a tensor without
    # running AuxLogits, in training mode InceptionOutputs(logits, aux_logits), both as torchvision's
    net, _ = ours("inception_v3")
    assert list(net.outputs) == ["logits", "aux_logits"] and net.training_outputs == ["aux_logits"]
    reference = inception_v3_cpu
    model = cnndsl.to_torch(net).eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    calls = []
    hook = model.AuxLogits.register_forward_hook(lambda m, i, o: calls.append(o))
    x = random_input(1, 3, 299, 299, seed=3)
    try:
        with torch.no_grad():
            want, got = reference.eval()(x), model(x)
    finally:
        hook.remove()
    assert isinstance(got, torch.Tensor) and not calls
    assert relative_error(got, want) <= 1e-5
    # training mode: dropout draws in the same order in both, so equal seeds give equal masks
    x = random_input(2, 3, 299, 299, seed=4)
    with torch.no_grad():
        torch.manual_seed(7)
        want = reference.train()(x)
        torch.manual_seed(7)
        got = model.train()(x)
    reference.eval()
    assert type(want).__name__ == "InceptionOutputs" and got._fields == want._fields == ("logits", "aux_logits")
    for ours_, theirs in zip(got, want):
        assert relative_error(ours_, theirs) <= 1e-5


def test_inception_v3_without_aux_is_torchvisions_at_its_least_input(ours, tv):
    # aux_logits=false: torchvision's inception_v3(aux_logits=False), down to its weights' min_size 75x75
    net, totals = ours("inception_v3", aux_logits=False, inputs={"x": "3x75x75"})
    assert WEIGHTS["inception_v3"].meta["min_size"] == (75, 75)
    model = tv("inception_v3", aux_logits=False)
    assert_state_dict_is_the_models(net, model)
    assert totals["macs"] == reference_macs(model, (3, 75, 75))
    with pytest.raises(cnndsl.CnnError):
        cnndsl.load("inception_v3", aux_logits=False, inputs={"x": "3x74x74"})
    reference = cpu_reference("inception_v3", aux_logits=False)
    assert output_error(net, reference, random_input(2, 3, 75, 75, seed=4), threads=1) <= 1e-5


def test_inception_v3_macs_in_training_and_eval_mode(ours, tv):
    # the auxiliary classifier is a training output: `macs` counts the eval path (torchvision's documented
    # 5.713 GFLOPS, as without it), `training_macs` what torchvision computes in training mode
    _, totals = ours("inception_v3")
    _, without = ours("inception_v3", aux_logits=False)
    model = tv("inception_v3")
    assert totals["training_macs"] == reference_macs(model, (3, 299, 299), train=True)
    assert totals["macs"] == without["macs"] == reference_macs(model, (3, 299, 299))
    assert round(totals["macs"] / 1e9, 3) == WEIGHTS["inception_v3"].meta["_ops"]
    assert round(without["macs"] / 1e9, 3) == WEIGHTS["inception_v3"].meta["_ops"]
    assert without["params"] == PUBLISHED["inception_v3"] - sum(p.numel() for p in model.AuxLogits.parameters())


def test_inception_v3_factorised_convolutions_are_torchvisions(ours, tv):
    # the 17x17 and 8x8 modules' 1x7 / 7x1 and 1x3 / 3x1 kernels and paddings, conv by conv
    net, _ = ours("inception_v3")
    model = tv("inception_v3")
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            attrs = net.node(name)["attrs"]
            assert (attrs["kernel"], attrs["stride"], tuple(left for left, _ in attrs["padding"])) == \
                   (m.kernel_size, m.stride, m.padding), name
        if isinstance(m, nn.BatchNorm2d):
            assert net.node(name)["attrs"]["eps"] == m.eps == 0.001
