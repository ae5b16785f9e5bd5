"""The shape of the generated PyTorch code: what a careful person writes by hand.

- a loop in the .cnn file stays a loop: DenseNet's dense block builds its layers with a `for` loop and
  add_module(f"denselayer{i + 1}", ...), as torchvision's _DenseBlock does, and its forward() keeps the list
  of feature maps (one class per kind of layer, not one per block length);
- siblings that only look alike (GoogLeNet's conv2 and conv3, no loop in the .cnn file) are not looped;
- the generated DenseNet still loads torchvision's weights with strict=True and gives torchvision's outputs.

(No generated line over 120 columns, for every preset, is tests/test_torch_backend.py's
test_source_lines_fit_in_120_columns.)
"""

from __future__ import annotations

import ast
import re

import pytest

import cnndsl

DENSENETS = ["densenet121", "densenet161", "densenet169", "densenet201"]


def source(name: str) -> str:
    return cnndsl.compile(cnndsl.load(name))


def classes(text: str) -> dict[str, ast.ClassDef]:
    return {node.name: node for node in ast.parse(text).body if isinstance(node, ast.ClassDef)}


@pytest.mark.parametrize("name", DENSENETS)
def test_densenet_has_one_class_per_kind_of_layer(name):
    text = source(name)
    # torchvision's densenet.py has _DenseLayer, _DenseBlock, _Transition and DenseNet: before loops were
    # kept, every block length had its own class and every layer its own Sequential (929 to 1489 lines)
    assert set(classes(text)) == {"DenseLayer", "DenseBlock", "Transition", name.capitalize()}
    assert len(text.splitlines()) < 150, "every dense layer written out again?"
    assert text.count("torch.cat(") == 2  # one in the loop, one for the block's output


def test_dense_block_builds_its_layers_in_a_loop_and_keeps_a_list_of_features():
    text = source("densenet121")
    block = ast.get_source_segment(text, classes(text)["DenseBlock"])
    assert 'for i in range(num_layers):' in block
    # torchvision's _DenseBlock: _DenseLayer(num_input_features + i * growth_rate, growth_rate=..., bn_size=...)
    assert re.search(r'self\.add_module\(\s*f"denselayer\{i \+ 1\}", DenseLayer\(in_channels \+ i \* growth_rate, '
                     r'growth_rate, bn_size\)\s*\)', block), block
    assert "features = [x]" in block and "for layer in self.children():" in block
    assert "torch.cat(features, dim=1)" in block and "features.append(" in block
    root = ast.get_source_segment(text, classes(text)["Densenet121"])
    # the block lengths are DenseNet-121's 6-12-24-16 (Huang et al. 2017, Table 1)
    calls = [n for n in ast.walk(ast.parse(root)) if isinstance(n, ast.Call) and ast.unparse(n.func) == "DenseBlock"]
    assert [ast.literal_eval(c.args[1]) for c in calls] == [6, 12, 24, 16]


def test_dense_layer_is_a_sequential_subclass():
    text = source("densenet121")
    layer = classes(text)["DenseLayer"]
    assert [ast.unparse(b) for b in layer.bases] == ["nn.Sequential"]
    assert not any(isinstance(f, ast.FunctionDef) and f.name == "forward" for f in layer.body)


def test_look_alike_siblings_not_made_by_a_loop_stay_written_out():
    text = source("googlenet")
    assert "self.conv2 = BasicConv(" in text and "self.conv3 = BasicConv(" in text
    assert "add_module(f" not in text


def test_the_ir_records_which_loop_made_a_scope():
    net = cnndsl.load("densenet121")
    layers = [s for name, s in net.scopes.items() if name.startswith("features.denseblock1.denselayer")]
    assert len(layers) == 6 and len({s.loop for s in layers}) == 1 and layers[0].loop is not None
    assert {s.block for s in layers} == {"dense_layer"}  # the template block that made the sequence
    other = [s for name, s in net.scopes.items() if name.startswith("features.denseblock2.denselayer")]
    assert other[0].loop != layers[0].loop  # another run of the same for statement
    assert cnndsl.load("googlenet").scopes["conv2"].loop is None


@pytest.mark.slow
def test_generated_densenet121_loads_torchvision_weights_and_matches_outputs():
    import torch  # test dependencies: a broken install fails here instead of skipping
    import torchvision
    namespace: dict = {}
    exec(compile(source("densenet121"), "densenet121.py", "exec"), namespace)  # noqa: S102 - our own output
    ours = namespace["Densenet121"]().eval()
    torch.manual_seed(0)
    theirs = torchvision.models.densenet121(weights=None).eval()
    with torch.no_grad():  # random statistics, so that batch norm is no identity
        for m in theirs.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-4, atol=1e-4)


def test_a_condition_that_makes_a_layer_makes_it_once(tmp_path):
    """Recording a block's condition for the generated `if` must not evaluate it again: a condition that applies a
    labelled layer would make that layer twice ('the name k is already used')."""
    path = tmp_path / "c.cnn"
    path.write_text("""block b(x, c) {
    y = x -> conv(c, 1)
    if (x -> k: conv(4, 1)).channels == c { y = y -> relu }
    return y
}
network n() {
    input x: 3x8x8
    output o = x -> b1: b(4) -> b2: b(5)
}
""")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # k is computed but unused: the lint says so, which is right
        net = cnndsl.load(str(path))
    assert sum(name.endswith(".k") for name in net.order) == 2  # one per instance, b1.k and b2.k


def test_a_block_named_as_a_builtin_in_a_condition_is_made_once(tmp_path):
    """`max` here is the file's block, not the builtin: calling it makes a layer, so the condition is not pure."""
    path = tmp_path / "c.cnn"
    path.write_text("""block max(x, c) {
    return x -> k: conv(c, 1)
}
block b(x, c) {
    y = x -> conv(c, 1)
    if max(x, 4).channels == c { y = y -> relu }
    return y
}
network n() {
    input x: 3x8x8
    output o = x -> b1: b(4) -> b2: b(5)
}
""")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max's output is unused: the lint says so, which is right
        net = cnndsl.load(str(path), trace=True)
    assert sum(name.endswith(".k") for name in net.order) == 2  # b1.max.k and b2.max.k, once each


def test_resnet_stages_are_built_by_a_loop_as_torchvisions_make_layer():
    # torchvision's resnet50: layers=[3, 4, 6, 3]; each stage's first block strides (from layer2 on) and takes
    # the previous stage's 4 * planes channels, the others take this stage's (_make_layer's loop)
    text = source("resnet50")
    assert list(classes(text)) == ["Bottleneck", "Resnet50"]
    for planes, stride, blocks, inplanes in ((64, "", 3, 64), (128, ", stride=2", 4, 256), (256, ", stride=2", 6, 512),
                                             (512, ", stride=2", 3, 1024)):
        stage = f"layer{(64, 128, 256, 512).index(planes) + 1}"
        assert (f"layers = [Bottleneck({inplanes}, {planes}{stride})]\n"
                f"        for _ in range({blocks - 1}):\n"
                f"            layers.append(Bottleneck({planes * 4}, {planes}))\n"
                f"        self.{stage} = nn.Sequential(*layers)\n") in text
    # a stage of two blocks stays one nn.Sequential(...) (resnet18: a loop would be no shorter)
    assert "self.layer1 = nn.Sequential(\n            BasicBlock(64, 64),\n            BasicBlock(64, 64),\n" \
           in source("resnet18")


def test_a_list_with_if_members_is_built_by_appends_as_torchvisions_mobilenet_v2():
    # torchvision's InvertedResidual: `if expand_ratio != 1: layers.append(...)`, then the depthwise conv and
    # the projection, `self.conv = nn.Sequential(*layers)`, and one class for all seventeen blocks
    text = source("mobilenet_v2")
    assert list(classes(text)) == ["InvertedResidual", "MobilenetV2"]
    assert "        layers = []\n        if expand != 1:\n            layers.append(\n" in text
    assert "        self.conv = nn.Sequential(*layers)\n        self.use_add = stride == 1 and in_channels == out\n" \
           in text


def test_a_list_with_if_and_else_members_is_built_as_torchvisions_fused_mbconv():
    # torchvision's FusedMBConv: `if expanded_channels != cnf.input_channels:` the fused expansion and the
    # projection, `else:` one conv to the output width; then `result += input` where the shape is kept
    text = source("efficientnet_v2_s")
    assert [c for c in classes(text) if "Mbconv" in c] == ["FusedMbconv", "Mbconv"]
    fused = text[text.index("class FusedMbconv"):text.index("class Mbconv")]
    assert re.search(r"        if expanded != in_channels:\n            layers\.extend\(\n(.|\n)*?        else:\n"
                     r"            layers\.append\(\n", fused)
    assert "            y = self.stochastic_depth(y)\n            y += x\n" in fused


def test_a_block_used_at_two_depths_keeps_the_class_its_callers_were_planned_with(tmp_path):
    # Found by test_torch_backend's random networks: `res` with an unconditional projection at the top level and
    # inside `pair` (depth 1) had one class until the top-level instance joined it; remaking that class took
    # pair.first away from the merged class both Pair instances were planned with, so the second Pair built a
    # projection its .cnn never made (687 parameters for 678)
    torch = pytest.importorskip("torch")
    from test_torch_backend import RES_BLOCK  # the random networks' residual blocks: res, and pair of two

    path = tmp_path / "depths.cnn"
    path.write_text(RES_BLOCK + """
network depths() {
    input x: 2x4x4
    t2 = x -> res(1, stride=1)
    output y = t2 -> pair(3, stride=1) -> pair(3, stride=1)
}
""")
    net = cnndsl.load(str(path))
    model = cnndsl.to_torch(net)
    # the projections the program makes: res (2 -> 1 channels) and pair.first (1 -> 3), none in pair_1
    assert sorted(k for k in model.state_dict() if k.endswith("down.weight")) == ["pair.first.down.weight",
                                                                                   "res.down.weight"]
    assert sum(p.numel() for p in model.parameters()) == cnndsl.analyze(net)["trainable_params"] == 678
    assert model(torch.randn(2, 2, 4, 4)).shape == (2, 3, 4, 4)


def test_a_chosen_number_is_chosen_in_the_class_as_in_the_file():
    # mobilenet_v3.cnn: the depthwise conv strides `1 if dilation > 1 else stride`. No instance of
    # MobileNetV3-Large is dilated, so the class once wrote `stride=stride`, and InvertedResidual(..., dilation=2)
    # built by hand strided where torchvision's does not. Built by hand with dilation 2, it is torchvision's block
    import functools
    import types

    torch = pytest.importorskip("torch")
    from torchvision.models import mobilenetv3 as tvm

    text = source("mobilenet_v3_large")
    assert "stride=1 if dilation > 1 else stride," in text
    module = types.ModuleType("generated_mobilenet_v3_large")
    exec(compile(text, "<cnndsl mobilenet_v3_large>", "exec"), module.__dict__)  # noqa: S102 - our own output
    ours = module.InvertedResidual(40, 5, 120, 40, True, True, 2, dilation=2).eval()
    config = tvm.InvertedResidualConfig(40, 5, 120, 40, True, "HS", 2, 2, 1.0)
    theirs = tvm.InvertedResidual(config, functools.partial(torch.nn.BatchNorm2d, eps=0.001, momentum=0.01)).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 40, 14, 14)
    with torch.no_grad():
        assert ours(x).shape == (2, 40, 14, 14) and torch.equal(ours(x), theirs(x))


def test_a_named_run_of_a_lists_for_is_built_by_a_loop_as_torchvisions_encoder():
    # vit.cnn: `layers: [for i in range(num_layers) { encoder_layer_{i}: encoder_block(...) }]`; torchvision's
    # Encoder fills an OrderedDict in a loop. The class takes num_layers, and the state_dict keys are unchanged
    import types

    torch = pytest.importorskip("torch")
    text = source("vit_b_16")
    assert list(classes(text)) == ["SelfAttention", "EncoderBlock", "Encoder", "VitB16"]
    assert ("        layers = OrderedDict()\n        for i in range(num_layers):\n"
            '            layers[f"encoder_layer_{i}"] = EncoderBlock(\n') in text
    assert "encoder_layer_1" not in text
    module = types.ModuleType("generated_vit_b_16")
    exec(compile(text, "<cnndsl vit_b_16>", "exec"), module.__dict__)  # noqa: S102 - our own output
    with torch.device("meta"):
        encoder = module.Encoder(50, 64, 3, 4, 128)
    assert [k for k in encoder.state_dict() if k.endswith("ln_1.weight")] == [
        f"layers.encoder_layer_{i}.ln_1.weight" for i in range(3)]


def test_a_per_axis_size_that_serves_every_variant_needs_no_condition():
    # R(2+1)D's factored conv strides (1, stride, stride); in the blocks with stride 1 the emitter wrote `1`
    # (the same on every axis), and the merged class once chose between them: `(1, stride, stride) if stride != 1
    # or in_channels != planes else 1`. torchvision's Conv2Plus1D writes `stride=(1, stride, stride)`
    text = source("r2plus1d_18")
    assert "stride=(1, stride, stride)," in text and "stride=(stride, 1, 1)," in text
    assert " else 1," not in text and " else stride," not in text


def test_a_list_parameter_is_passed_whole_as_torchvisions_basic_conv2d_takes_kernel_size():
    # inception_v3.cnn's basic_conv takes `kernel` and `pad` as numbers or lists ([1, 7]); its conv's sizes are
    # the parameters themselves, so one class serves both (torchvision's BasicConv2d(**kwargs)), where the
    # 1x7 and 7x1 convs once made a second class with slots named after their places
    text = source("inception_v3")
    assert "class BasicConvWith" not in text
    assert "kernel_size=kernel," in text and "padding=pad," in text
    assert "self.branch7x7_2 = BasicConv(c7, c7, [1, 7], pad=[0, 3])" in text
    # DeepLabV3's ASPP takes its rates as a list, as torchvision's ASPP(in_channels, atrous_rates)
    assert "padding=rates[0], dilation=rates[0]" in source("deeplabv3_resnet50")


# Programs a review found that generated wrong or failing code (each: the .cnn file, a constructor argument and a
# value to try, or None): merged variants over a conditional local that one variant lacks, a list parameter of
# which only the first elements are used, a block's switch inside a chosen number, a nested condition in the
# branch a ternary did not take
REVIEWED = {
    "local_in_one_variant": ("""block b(x, out, d=1) {
    s = 4 // (d - 1) if d > 1 else 2
    return x -> conv: conv(out, 3, stride=s, pad=1)
}
network t() {
    input x: 3x32x32
    output o = x -> b1: b(8, d=1) -> b2: b(8, d=2) -> flatten
}
""", None),
    "part_of_a_list": ("""block b(x, out, kernel) {
    return x -> conv: conv(out, [kernel[0], kernel[1]], pad=[kernel[0] // 2, kernel[1] // 2])
}
network t() {
    input x: 3x32x32
    output o = x -> b1: b(8, [3, 5, 7]) -> b2: b(8, [1, 3, 9]) -> flatten
}
""", None),
    "switch_in_a_choice": ("""block b(x, out, wide=false) {
    c = out * 2 if wide else out
    return x -> conv: conv(c, 3, pad=1)
}
block pair(x, out) {
    return x -> first: b(out, wide=true) -> second: conv(out, 1)
}
network t(width=8) {
    input x: 3x32x32
    y = x -> p: pair(width) -> b3: b(width, wide=true)
    output o = y -> fc: conv(width, 1) -> flatten
}
""", ("width", 16)),
    "nested_condition_not_taken": ("""block b(x, out, d=1) {
    s = 1 if d > 1 else (2 if out > 8 else 1)
    return x -> conv: conv(out, 3, stride=s, pad=1)
}
network t(width=8) {
    input x: 3x32x32
    output o = x -> b1: b(width, d=2) -> flatten
}
""", ("width", 16)),
}


@pytest.mark.parametrize("case", sorted(REVIEWED))
def test_reviewed_programs_generate_code_that_builds_what_the_analysis_counts(tmp_path, case):
    import types

    torch = pytest.importorskip("torch")
    text, argument = REVIEWED[case]
    path = tmp_path / "t.cnn"
    path.write_text(text)
    net = cnndsl.load(str(path))
    code = cnndsl.compile(net)
    module = types.ModuleType("generated_t")
    exec(compile(code, "<cnndsl t>", "exec"), module.__dict__)  # noqa: S102 - our own output
    model = module.T()
    assert sum(p.numel() for p in model.parameters()) == cnndsl.analyze(net)["trainable_params"]
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32)).shape[1:] == net.type_of(net.outputs["o"]).shape
    if argument is not None:  # still a constructor argument, and it builds what --set compiles
        name, value = argument
        other = cnndsl.load(str(path), **{name: value})
        built = module.T(**{name: value})
        assert sum(p.numel() for p in built.parameters()) == cnndsl.analyze(other)["trainable_params"]
        with torch.no_grad():
            assert built(torch.randn(1, 3, 32, 32)).shape[1:] == other.type_of(other.outputs["o"]).shape
