"""The classic architectures of the zoo: LeCun et al. 1989, LeNet-5, AlexNet and VGG (the checks every preset
gets are in tests/test_zoo.py).

Every expected number comes from an independent source: the papers' own figures (cited where used),
Karpathy's lecun1989 reproduction, torchvision's documentation, or torchvision's models built here.
The torchvision models are built on PyTorch's "meta" device: same constructor, same parameter and
buffer names and shapes, same forward pass for shapes and FLOP counting, but no memory and no
initialisation, so even VGG-19 builds in milliseconds. The reference models and published figures of the
other presets are in tests/reference.py.
"""

from __future__ import annotations

from math import prod

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import torch

import cnndsl

from reference import PUBLISHED, ir_state, reference_macs, torch_numbers

# ---------------------------------------------------------------- helpers


def node(net, name):
    return net.node(name)


def node_params(net, name, kinds=("trainable", "fixed")):
    return sum(p.numel for p in node(net, name)["params"] if p.kind in kinds)


def shape(net, name):
    return tuple(node(net, name)["type"].shape)


def successor(net, name):
    """The one node that consumes `name`'s output."""
    users = [d for d in net.nodes() if name in d["inputs"]]
    assert len(users) == 1, f"{name} has {len(users)} users"
    return users[0]


# ---------------------------------------------------------------- LeCun et al. 1989

# LeCun et al. 1989, "Backpropagation Applied to Handwritten Zip Code Recognition", the network's
# description: H1 has 19,968 connections (768 units times 26 inputs) but 1,068 free parameters (768
# biases plus 12 kernels of 25 weights); H2 38,592 connections (192 units times 201 inputs) but 2,592
# free parameters (12 x 200 weights plus 192 biases); H3 5,790 and the output layer 310 (fully
# connected). In all: 1,256 units, 64,660 connections and 9,760 independent parameters.
LECUN1989_PARAMS = {"h1": 1_068, "h2": 2_592, "h3": 5_790, "out": 310}
LECUN1989_CONNECTIONS = {"h1": 19_968, "h2": 38_592, "h3": 5_790, "out": 310}
LECUN1989_TOTAL_PARAMS = 9_760
LECUN1989_TOTAL_CONNECTIONS = 64_660
LECUN1989_UNITS = 1_256

# Karpathy's reproduction (github.com/karpathy/lecun1989-repro, model in repro.py): its parameters.
# H3w and outw are stored (in, out) there; nn.Linear and cnndsl store (out, in).
KARPATHY_SHAPES = {"H1w": (12, 1, 5, 5), "H1b": (12, 8, 8), "H2w": (12, 8, 5, 5), "H2b": (12, 4, 4),
                   "H3w": (192, 30), "H3b": (30,), "outw": (30, 10), "outb": (10,)}


def test_lecun1989_parameters_per_layer_match_the_paper(ours):
    net, totals = ours("lecun1989")
    assert {n: node_params(net, n) for n in LECUN1989_PARAMS} == LECUN1989_PARAMS
    assert sum(LECUN1989_PARAMS.values()) == LECUN1989_TOTAL_PARAMS
    assert totals["params"] == totals["trainable_params"] == LECUN1989_TOTAL_PARAMS
    assert totals["fixed_params"] == 0 and totals["buffers"] == 0


def test_lecun1989_connections_match_the_paper(ours):
    # A connection is a multiply-accumulate or a bias: MACs plus one bias per output unit.
    net, totals = ours("lecun1989")
    connections = {n: node(net, n)["macs"] + prod(shape(net, n)) for n in LECUN1989_CONNECTIONS}
    assert connections == LECUN1989_CONNECTIONS
    biases = sum(prod(shape(net, n)) for n in LECUN1989_CONNECTIONS)
    assert totals["macs"] + biases == LECUN1989_TOTAL_CONNECTIONS


def test_lecun1989_shapes_and_units(ours):
    net, _ = ours("lecun1989")
    expected = {"x": (1, 16, 16), "h1": (12, 8, 8), "h2": (12, 4, 4), "h3": (30,), "out": (10,)}
    assert {n: shape(net, n) for n in expected} == expected
    assert tuple(node(net, net.outputs["logits"])["type"].shape) == (10,)
    assert sum(prod(s) for s in expected.values()) == LECUN1989_UNITS


def test_lecun1989_layers_match_karpathys_repro(ours):
    net, _ = ours("lecun1989")
    ours = {k: s for k, (s, _) in ir_state(net).items()}
    k = KARPATHY_SHAPES
    assert ours["h1.weight"] == k["H1w"] and ours["h1.bias"] == k["H1b"]
    assert prod(ours["h2.weight"]) == prod(k["H2w"]) and ours["h2.bias"] == k["H2b"]
    assert ours["h3.weight"] == k["H3w"][::-1] and ours["h3.bias"] == k["H3b"]
    assert ours["out.weight"] == k["outw"][::-1] and ours["out.bias"] == k["outb"]
    for name in ("h1", "h2"):
        a = node(net, name)["attrs"]
        # repro: F.pad(x, (2, 2, 2, 2), 'constant', -1.0), then F.conv2d(..., stride=2), bias per unit
        assert a["kernel"] == (5, 5) and a["stride"] == (2, 2) and a["padding"] == ((2, 2), (2, 2))
        assert a["pad_value"] == -1 and a["bias"] == "untied"
    # repro: H2 maps 0-3 see H1 maps 0-7 (x[:, 0:8]), maps 4-7 see 4-11 (x[:, 4:12]),
    # maps 8-11 see 0-3 and 8-11 (torch.cat((x[:, 0:4], x[:, 8:12]))).
    table = node(net, "h2")["attrs"]["table"]
    expected = [set(range(8))] * 4 + [set(range(4, 12))] * 4 + [set(range(4)) | set(range(8, 12))] * 4
    assert [set(row) for row in table] == expected
    assert [successor(net, n)["op"] for n in ("h1", "h2", "h3", "out")] == ["tanh", "tanh", "tanh", "tanh"]


# ---------------------------------------------------------------- LeNet-5

# LeCun, Bottou, Bengio, Haffner 1998, "Gradient-Based Learning Applied to Document Recognition",
# Section II.B (LeNet-5): C1 has 156 trainable parameters and 122,304 connections; S2 12 and 5,880;
# C3 1,516 and 151,600; S4 32 and 2,000; C5 48,120 trainable connections; F6 10,164 trainable
# parameters. The output layer's RBF units compare F6's 84 values with fixed, hand-chosen prototypes
# (Fig. 3's 7x12 bitmaps): 10 x 84 = 840 values, not trained.
LENET5_PARAMS = {"c1": 156, "s2": 12, "c3": 1_516, "s4": 32, "c5": 48_120, "f6": 10_164}
LENET5_CONNECTIONS = {"c1": 122_304, "s2": 5_880, "c3": 151_600, "s4": 2_000, "c5": 48_120, "f6": 10_164}
LENET5_FIXED = 10 * 84


def test_lenet5_parameters_per_layer_match_the_paper(ours):
    net, totals = ours("lenet5")
    assert {n: node_params(net, n) for n in LENET5_PARAMS} == LENET5_PARAMS
    assert node_params(net, "out", ("trainable",)) == 0
    assert node_params(net, "out", ("fixed",)) == LENET5_FIXED
    assert totals["trainable_params"] == sum(LENET5_PARAMS.values()) == 60_000
    assert totals["fixed_params"] == LENET5_FIXED
    assert totals["params"] == 60_000 + LENET5_FIXED
    assert totals["buffers"] == 0


def test_lenet5_connections_match_the_paper(ours):
    net, _ = ours("lenet5")
    for name in ("c1", "c3", "c5", "f6"):  # weighted layers: MACs plus one bias per output unit
        assert node(net, name)["macs"] + prod(shape(net, name)) == LENET5_CONNECTIONS[name], name
    for name in ("s2", "s4"):  # each unit: its 2x2 window plus the bias
        kernel = node(net, name)["attrs"]["kernel"]
        assert kernel == (2, 2)
        assert prod(shape(net, name)) * (prod(kernel) + 1) == LENET5_CONNECTIONS[name], name
    assert node(net, "out")["macs"] == LENET5_FIXED  # one (x_j - w_ij)^2 term per prototype entry


def test_lenet5_shapes(ours):
    net, _ = ours("lenet5")
    # Section II.B: C1 6@28x28, S2 6@14x14, C3 16@10x10, S4 16@5x5, C5 120@1x1, F6 84, output 10
    expected = {"x": (1, 32, 32), "c1": (6, 28, 28), "s2": (6, 14, 14), "c3": (16, 10, 10), "s4": (16, 5, 5),
                "c5": (120, 1, 1), "f6": (84,), "out": (10,)}
    assert {n: shape(net, n) for n in expected} == expected
    assert [shape(net, n)[-1] for n in ("c1", "s2", "c3", "s4", "c5")] == [28, 14, 10, 5, 1]
    assert tuple(node(net, net.outputs["penalties"])["type"].shape) == (10,)


def test_lenet5_c3_connection_table_is_table_I(ours):
    # Section II.B: the first six C3 maps take their inputs from every contiguous subset of three S2
    # maps, the next six from every contiguous subset of four, the next three from some discontinuous
    # subsets of four (Table I's columns 12, 13, 14 name them), and the last one from all six.
    net, _ = ours("lenet5")
    table = [set(row) for row in node(net, "c3")["attrs"]["table"]]
    expected = ([{(j + k) % 6 for k in range(3)} for j in range(6)]
                + [{(j + k) % 6 for k in range(4)} for j in range(6)]
                + [{0, 1, 3, 4}, {1, 2, 4, 5}, {0, 2, 3, 5}]
                + [set(range(6))])
    assert table == expected
    assert node(net, "c3")["attrs"]["kernel"] == (5, 5)


def test_lenet5_squashing_and_rbf_output(ours):
    net, _ = ours("lenet5")
    for name in LENET5_PARAMS:  # Appendix A: f(a) = A tanh(S a), A = 1.7159, S = 2/3
        act = successor(net, name)
        assert act["op"] == "scaled_tanh", name
        assert act["attrs"]["a"] == pytest.approx(1.7159) and act["attrs"]["s"] == pytest.approx(2 / 3)
    out = node(net, "out")
    assert out["op"] == "rbf"
    assert [(p.name, tuple(p.shape), p.kind) for p in out["params"]] == [("weight", (10, 84), "fixed")]
    assert [node(net, n)["op"] for n in ("s2", "s4")] == ["subsample", "subsample"]


# ---------------------------------------------------------------- AlexNet and VGG against torchvision

TORCHVISION = ["alexnet", "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"]

# torchvision's model documentation (docs.pytorch.org/vision/stable/models.html, the "GFLOPS" column; also
# each Weights enum's meta["_ops"]). The "Params" column is reference.PUBLISHED, checked below for every preset.
PUBLISHED_GFLOPS = {
    "alexnet": 0.714,
    "vgg11": 7.609, "vgg13": 11.308, "vgg16": 15.470, "vgg19": 19.632,
    "vgg11_bn": 7.609, "vgg13_bn": 11.308, "vgg16_bn": 15.470, "vgg19_bn": 19.632,
}
# fvcore.nn.FlopCountAnalysis(torchvision.models.vgg16(), torch.zeros(1, 3, 224, 224)).by_operator():
# conv 15,346,630,656 + linear 123,633,664 (its total adds 25,088 for the adaptive average pool).
VGG16_FVCORE_MACS = 15_346_630_656 + 123_633_664


# torchvision module type -> cnndsl op
TORCH_OPS = {"Conv2d": "conv", "BatchNorm2d": "batchnorm", "ReLU": "relu", "MaxPool2d": "maxpool",
             "AdaptiveAvgPool2d": "adaptive_avgpool", "Dropout": "dropout", "Linear": "linear"}


def pair(v) -> tuple[int, int]:
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def torch_layer(module) -> tuple:
    """What cnndsl should say of a torchvision leaf module: its op and settings."""
    kind = type(module).__name__
    if kind == "Conv2d":
        return ("conv", module.out_channels, module.kernel_size, module.stride,
                tuple((p, p) for p in module.padding), module.bias is not None)
    if kind == "MaxPool2d":
        return ("maxpool", pair(module.kernel_size), pair(module.stride), pair(module.padding), module.ceil_mode)
    if kind == "AdaptiveAvgPool2d":
        return ("adaptive_avgpool", pair(module.output_size))
    if kind == "Dropout":
        return ("dropout", module.p)
    if kind == "Linear":
        return ("linear", module.out_features, module.bias is not None)
    return (TORCH_OPS[kind],)


def ir_layer(data) -> tuple:
    a = data["attrs"]
    if data["op"] == "conv":
        return ("conv", a["out"], a["kernel"], a["stride"], a["padding"], a["bias"] is not False)
    if data["op"] == "maxpool":
        return ("maxpool", a["kernel"], a["stride"], a["pad"], a["ceil_mode"])
    if data["op"] == "adaptive_avgpool":
        return ("adaptive_avgpool", a["size"])
    if data["op"] == "dropout":
        return ("dropout", a["p"])
    if data["op"] == "linear":
        return ("linear", a["out"], a["bias"])
    return (data["op"],)


def module_outputs(model, input_shape=(3, 224, 224)) -> dict[str, tuple]:
    """(layer, output shape without the batch) of every leaf module, in the order the forward pass runs."""
    seen, hooks = {}, []
    for name, module in model.named_modules():
        if name and not list(module.children()):
            hooks.append(module.register_forward_hook(
                lambda m, i, o, name=name: seen.__setitem__(name, (torch_layer(m), tuple(o.shape[1:])))))
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device="meta"))
    finally:
        for h in hooks:
            h.remove()
    return seen


def ir_outputs(net) -> dict[str, tuple]:
    """The same for cnndsl's nodes: every node but the input and torch.flatten (a function in
    torchvision's forward, not a module)."""
    return {d["name"]: (ir_layer(d), tuple(d["type"].shape))
            for d in net.nodes() if d["kind"] == "op" and d["op"] != "flatten"}


@pytest.mark.parametrize("name", TORCHVISION)
def test_published_parameter_counts_and_gflops(ours, name):
    _, totals = ours(name)
    assert totals["params"] == totals["trainable_params"] == PUBLISHED[name]
    assert totals["fixed_params"] == 0
    assert round(totals["macs"] / 1e9, 3) == pytest.approx(PUBLISHED_GFLOPS[name])


@pytest.mark.parametrize("name", TORCHVISION)
def test_nodes_are_torchvision_modules_in_order_with_their_output_shapes(ours, tv, name):
    net, _ = ours(name)
    modules = module_outputs(tv(name))
    mine = ir_outputs(net)
    assert mine == modules
    assert list(mine) == list(modules)  # execution order
    assert tuple(node(net, net.outputs["logits"])["type"].shape) == (1000,)


@settings(max_examples=20, deadline=None)
@given(name=st.sampled_from(["alexnet", "vgg11", "vgg16_bn"]), height=st.integers(63, 320),
       width=st.integers(63, 320))
def test_any_input_size_matches_torchvision(ours, tv, name, height, width):
    # shapes of every layer and the MACs agree with torchvision's forward pass at any input size
    net, totals = ours(name, inputs={"x": f"3x{height}x{width}"})
    model = tv(name)
    assert ir_outputs(net) == module_outputs(model, (3, height, width))
    assert totals["macs"] == reference_macs(model, (3, height, width))


def test_vgg16_macs_equal_fvcore(ours):
    _, totals = ours("vgg16")
    assert totals["macs"] == VGG16_FVCORE_MACS == 15_470_264_320


def test_vgg_features_follow_make_layers(ours):
    # torchvision's make_layers: conv, [bn,] relu per number of the cfg; a 2x2/2 max pool per "M".
    # Table 1 of Simonyan & Zisserman: configurations A, B, D, E have 8, 10, 13, 16 conv layers + 3 FC.
    for preset, convs in (("vgg11", 8), ("vgg13", 10), ("vgg16", 13), ("vgg19", 16)):
        for suffix, per_conv in (("", 2), ("_bn", 3)):
            net, _ = ours(preset + suffix)
            features = [d for d in net.nodes() if d["name"].startswith("features.")]
            assert len(features) == convs * per_conv + 5
            assert [d["name"] for d in features] == [f"features.{i}" for i in range(len(features))]
            assert sum(d["op"] == "conv" for d in features) == convs
            assert sum(d["op"] == "batchnorm" for d in features) == (convs if suffix else 0)
            pools = [d for d in features if d["op"] == "maxpool"]
            assert len(pools) == 5
            assert all(p["attrs"]["kernel"] == (2, 2) and p["attrs"]["stride"] == (2, 2) for p in pools)


@pytest.mark.parametrize("name", ["alexnet", "vgg11"])
def test_num_classes_and_dropout_parameters(ours, tv, name):
    net, totals = ours(name, num_classes=10, dropout=0.25)
    model = tv(name, num_classes=10, dropout=0.25)
    assert {k: totals[k] for k in ("trainable_params", "buffers")} == {
        k: v for k, v in torch_numbers(model).items() if k != "fixed_params"}
    drops = {n: m.p for n, m in model.named_modules() if type(m).__name__ == "Dropout"}
    assert len(drops) == 2
    assert {n: node(net, n)["attrs"]["p"] for n in drops} == drops
    assert tuple(node(net, net.outputs["logits"])["type"].shape) == (10,)


@pytest.mark.parametrize("name, smallest", [("alexnet", 63), ("vgg16", 32)])
def test_smallest_input_is_torchvisions_min_size(ours, name, smallest):
    # torchvision's Weights meta["min_size"]: (63, 63) for AlexNet, (32, 32) for VGG
    ours(name, inputs={"x": f"3x{smallest}x{smallest}"})
    with pytest.raises(cnndsl.CnnError, match="shrinks|zero"):
        cnndsl.load(name, inputs={"x": f"3x{smallest - 1}x{smallest - 1}"})


@pytest.mark.parametrize("name", ["lecun1989", "lenet5", *TORCHVISION])
def test_cli_analyze_reads_the_description(name, capsys):
    from cnndsl.cli import main

    assert main(["analyze", name, "--depth", "1"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith(f"{name}: ") and len(first) > len(name) + 10
