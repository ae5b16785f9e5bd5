"""Network parameters as constructor arguments (issue 12): `Resnet50(num_classes=10)` builds the module that
`cnndsl compile resnet50 --set num_classes=10` writes, for every preset and several values of each argument;
the parameters that decide which layers exist stay fixed, and the header says which.

The reference is the compiler itself run with --set: the elaborated IR is checked against torchvision elsewhere,
so equal state_dict shapes (on the meta device) and equal outputs (with equal weights, on the CPU) mean the
constructor computes every size as the elaborator does.
"""

from __future__ import annotations

import builtins
import re
import types

import pytest
import torch
import torchvision

import cnndsl
from cnndsl.backends.pytorch import TorchGenerator, class_name
from cnndsl.errors import CnnError
from cnndsl.loader import zoo_index
from reference import fast_sample

PRESETS = list(zoo_index())
FAMILIES = fast_sample(PRESETS)  # the first preset of each bundled file
QUICK = {"resnet", "densenet", "vision_transformer"}  # the fast suite's share (its budget); CI runs all with -m slow


def module_class(net):
    source = cnndsl.compile(net, "torch")
    module = types.ModuleType(f"generated_{net.name}")
    exec(builtins.compile(source, f"<cnndsl {net.name}>", "exec"), module.__dict__)  # noqa: S102 - our own output
    return getattr(module, class_name(net)), source


def alternatives(value) -> list:
    """Other values of a numeric parameter that a network plausibly accepts: twice and half, then a near one."""
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [v for v in (value * 2, value // 2, value + 1) if v > 0 and v != value][:2]
    if isinstance(value, float):
        return [v for v in (value / 2, value * 1.5) if v != value][:2] if value else [0.1, 0.25]
    if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        # a list of sizes (ConvNeXt's widths, Swin's heads): each element twice and half, then the first alone
        changed = [[v * 2 for v in value], [max(1, v // 2) for v in value], [value[0] + 1, *value[1:]]]
        return [c for c in changed if c != value][:2]
    return []


def shapes(model: torch.nn.Module) -> dict:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", [pytest.param(n, id=n, marks=() if n in QUICK else pytest.mark.slow)
                                  for n in PRESETS])
def test_constructor_argument_builds_what_set_compiles(name):
    """Each argument at two other values for the first preset of each file; for the other presets (with -m slow,
    a CI run's budget) one argument, a different one from preset to preset, at one other value."""
    net = cnndsl.load(name)
    cls, _ = module_class(net)
    arguments = TorchGenerator(net).arguments()
    if name not in FAMILIES and arguments:  # start at a different argument from preset to preset
        at = PRESETS.index(name) % len(arguments)
        arguments = arguments[at:] + arguments[:at]
    checked = 0
    for argument in arguments:
        for value in alternatives(net.params[argument]):
            try:
                other = cnndsl.load(name, **{argument: value})
            except CnnError:
                continue  # not a valid configuration of this network (a width that no longer divides...)
            reference, _ = module_class(other)
            with torch.device("meta"):
                built, expected = cls(**{argument: value}), reference()
            assert shapes(built) == shapes(expected), f"{name}({argument}={value!r}) != --set {argument}={value!r}"
            # and the same modules with the same settings, which no state_dict holds (Dropout(p=0.25), eps, ...)
            assert repr(built) == repr(expected), f"{name}({argument}={value!r}): modules differ from --set's"
            checked += 1
            if name not in FAMILIES:
                break  # one value is enough where the file's first preset tried two
        if checked and name not in FAMILIES:
            break
    assert checked or not arguments, f"{name}: no value of {arguments} could be checked"


def test_fixed_parameters_are_not_arguments_and_the_header_says_so():
    net = cnndsl.load("resnet50")
    cls, source = module_class(net)
    assert TorchGenerator(net).arguments() == ["num_classes", "zero_init_residual"]
    header = source.split('"""')[1]
    assert "constructor arguments: num_classes, zero_init_residual" in header
    # `layers` sets how many blocks each stage has: the compiler unrolled them, so it is fixed (and said so)
    assert re.search(r"fixed in this file: layers, unit", header)
    with pytest.raises(TypeError):
        cls(layers=[2, 2, 2, 2])


@pytest.mark.parametrize("name, argument, value, shape", [
    ("resnet18", "num_classes", 10, (2, 3, 64, 64)),
    ("densenet121", "growth_rate", 12, (2, 3, 64, 64)),
    ("mobilenet_v2", "num_classes", 7, (2, 3, 64, 64)),
    # a count that only a loop in a block's class reads (the Encoder's range(num_layers)) is an argument too
    ("vit_b_16", "num_layers", 2, (1, 3, 224, 224)),
])
def test_outputs_equal_with_equal_weights(name, argument, value, shape):
    cls, _ = module_class(cnndsl.load(name))
    reference, _ = module_class(cnndsl.load(name, **{argument: value}))
    torch.manual_seed(0)
    built, expected = cls(**{argument: value}).eval(), reference().eval()
    built.load_state_dict(expected.state_dict(), strict=True)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(built(x), expected(x))


@pytest.mark.slow
def test_resnet50_with_ten_classes_on_an_imagenet_sized_batch():
    cls, _ = module_class(cnndsl.load("resnet50"))
    with torch.no_grad():
        assert cls(num_classes=10).eval()(torch.randn(2, 3, 224, 224)).shape == (2, 10)


def test_efficientnet_stochastic_depth_prob_is_torchvisions_argument():
    # torchvision's EfficientNet(stochastic_depth_prob=...): block k of n drops its branch with probability
    # stochastic_depth_prob * k / n; the generated class takes the same argument and writes the same rule
    cls, source = module_class(cnndsl.load("efficientnet_b0"))
    assert "stochastic_depth_prob * 6 / 16" in source and "0.07500000000000001" not in source
    ours = [m.p for m in cls(stochastic_depth_prob=0.4).modules() if type(m).__name__ == "StochasticDepth"]
    theirs = [m.p for m in torchvision.models.efficientnet_b0(stochastic_depth_prob=0.4).modules()
              if type(m).__name__ == "StochasticDepth"]
    # torchvision keeps a StochasticDepth in every block; ours only where there is a shortcut to drop onto
    kept = [p for p, block in zip(theirs, _mbconv_blocks()) if block]
    assert ours == kept and len(ours) == 9


def _mbconv_blocks() -> list[bool]:
    """Which of EfficientNet-B0's 16 MBConv blocks keep their shape (stride 1, equal widths): torchvision's
    table (expand, kernel, stride, in, out, layers)."""
    table = [(1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
             (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1)]
    out = []
    for _, _, stride, cin, cout, layers in table:
        out += [stride == 1 and cin == cout] + [True] * (layers - 1)
    return out


def _zeroed(model: torch.nn.Module) -> list[str]:
    """The batch norm weights that start at 0 (what zero_init_residual changes)."""
    return sorted(k for k, v in model.state_dict().items() if k.endswith(".weight") and v.dim() == 1
                  and bool((v == 0).all()))


@pytest.mark.parametrize("name, blocks", [("resnet18", 8), ("resnet50", 16)])
def test_zero_init_residual_is_a_switch_as_in_torchvision(name, blocks):
    # torchvision's ResNet(zero_init_residual=True) zeroes the last batch norm of every residual branch. The
    # switch changes no layer, only which init rules apply, so the generated class takes it as torchvision does
    net = cnndsl.load(name)
    cls, source = module_class(net)
    assert "zero_init_residual" in TorchGenerator(net).arguments()
    assert "        if zero_init_residual:\n            for m in self.modules():\n" in source
    torch.manual_seed(0)
    ours = _zeroed(cls(zero_init_residual=True))
    theirs = _zeroed(getattr(torchvision.models, name)(weights=None, zero_init_residual=True))
    assert ours == theirs and len(ours) == blocks
    assert _zeroed(cls()) == [] == _zeroed(getattr(torchvision.models, name)(weights=None))
    switched_on, _ = module_class(cnndsl.load(name, zero_init_residual=True))  # as --set compiles it
    assert _zeroed(switched_on()) == ours and _zeroed(switched_on(zero_init_residual=False)) == []


def test_a_switch_that_changes_layers_stays_fixed():
    # Inception v3's aux_logits also chooses an init rule, but it decides whether AuxLogits exists: only the
    # compiler can follow it
    net = cnndsl.load("inception_v3")
    assert "aux_logits" in net.init_switches and "aux_logits" not in TorchGenerator(net).arguments()


COUNTED = """block unit(x) {
    return x -> conv: conv(x.channels, 3, pad=1) -> relu
}
block stack(x, n) {
    return x -> layers: [for i in range(n) { unit_{i}: unit }]
}
network counted(depth=3) {
    input x: 3x8x8
    y = x -> body: stack(depth)%s
    output y = y -> flatten
}
"""


@pytest.mark.parametrize("extra, free", [
    ("", True),  # read only as the count of a loop the class writes as a loop
    (" -> conv(depth * 2, 1)", True),  # and as a size, which code computes
    ("\n    if depth > 2 {\n        y = y -> relu\n    }", False),  # and by a condition: it shapes the network
])
def test_a_count_is_an_argument_where_only_a_loop_in_a_class_reads_it(tmp_path, extra, free):
    def load(**settings):
        path = tmp_path / "counted.cnn"
        path.write_text(COUNTED % extra)
        return cnndsl.load(str(path), **settings)

    net = load()
    assert ("depth" in TorchGenerator(net).arguments()) == free
    cls, source = module_class(net)
    assert "for i in range(n):" in source  # the class's loop, either way
    if not free:
        with pytest.raises(TypeError):  # the count has another reader: fixed, and the constructor says so
            cls(depth=5)
        return
    reference, _ = module_class(load(depth=5))
    with torch.device("meta"):
        assert shapes(cls(depth=5)) == shapes(reference()) and len(shapes(reference())) == 5 * 2 + 2 * bool(extra)


def test_a_loop_repeats_an_argument_only_where_every_member_computes_it_the_same_way(tmp_path):
    # unit_0 takes the stack's input channels, the others its width c: equal numbers in this network (8), but a
    # loop writing `Unit(in_channels, c)` for all, or `Unit(in_channels + i * (c - in_channels), c)` (a step of
    # 0 here), would break a Stack built by hand with another input width
    path = tmp_path / "widths.cnn"
    path.write_text("""block unit(x, c) {
    return x -> conv: conv(c, 3, pad=1) -> relu
}
block stack(x, n, c) {
    return x -> layers: [for i in range(n) { unit_{i}: unit(c) }]
}
network widths() {
    input x: 3x8x8
    output y = x -> conv(8, 1) -> body: stack(3, 8) -> flatten
}
""")
    net = cnndsl.load(str(path))
    cls, source = module_class(net)
    assert '("unit_0", Unit(in_channels, c)),' in source and '("unit_1", Unit(c, c)),' in source
    stack = cls.__init__.__globals__["Stack"](3, 8)  # by hand: 3 input channels, width 8
    with torch.no_grad():
        assert stack(torch.randn(1, 3, 8, 8)).shape == (1, 8, 8, 8)


def test_a_count_whose_loop_grows_a_size_stays_fixed(tmp_path):
    # a dense block's loop is written as a loop, but each layer widens the concatenation: the width after it is a
    # sum the count does not appear in (4 + 2 + 2 + 2), so a count given at run time would build a conv for the
    # wrong width. Only loops whose members are alike and keep their input's shape free their count
    path = tmp_path / "grow.cnn"
    path.write_text("""block unit(x, k) {
    return x -> conv: conv(k, 3, pad=1)
}
block grow(x, n, k) {
    features = [x]
    for i in range(n) {
        new = concat(features) -> layer{i}: unit(k)
        features = features + [new]
    }
    return concat(features)
}
network dense(depth=3) {
    input x: 4x8x8
    output y = x -> body: grow(depth, 2) -> conv(5, 1)
}
""")
    net = cnndsl.load(str(path))
    cls, source = module_class(net)
    assert "for i in range(n):" in source  # the class loops
    assert "depth" not in TorchGenerator(net).arguments()
    with pytest.raises(TypeError):
        cls(depth=5)
