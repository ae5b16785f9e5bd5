"""Receptive fields through upsampling, transposed convolutions, pixel shuffle and crops, checked against
the gradient support measured in PyTorch: for every output position of a period (the field of an
upsampled map depends on the position's phase), the first and last input pixel whose gradient is not
zero are the field cnndsl reports, and the reported size is the widest of them.

Weights are positive (1 / fan-in) and the input is all ones, so no gradient cancels; pooling is average
pooling (a max pool's gradient reaches only the maximum). Inputs are large enough that the fields of the
positions checked stay inside the image.
"""

from __future__ import annotations

import contextlib
import io
import json
from fractions import Fraction

import pytest
import torch
from torch import nn

import cnndsl
from cnndsl.cli import main

CASES = {
    "unet-up-convolution": ("1x64x64", "x -> conv(2, 3) -> avgpool(2) -> conv(2, 3) -> conv(2, 3) "
                                       "-> conv_transpose(2, 2, stride=2) -> conv(2, 3) -> t: conv(2, 3)"),
    "nearest-upsampling": ("1x64x64", "x -> conv(2, 3, stride=2, pad=1) -> upsample(scale=2) -> t: conv(2, 3)"),
    "nearest-by-three": ("1x60x60", "x -> conv(2, 5, stride=3) -> upsample(scale=3) -> t: conv(2, 2)"),
    "bilinear": ("1x64x64", 'x -> avgpool(2) -> upsample(scale=2, mode="bilinear") -> t: conv(2, 3)'),
    "bilinear-twice": ("1x96x96", 'x -> avgpool(4) -> conv(2, 3, pad=1) -> upsample(scale=2, mode="bilinear") '
                                  '-> conv(2, 3, pad=1) -> t: upsample(scale=2, mode="bilinear")'),
    "bilinear-align-corners": ("1x64x64", 'x -> avgpool(4) -> upsample(size=[41, 41], mode="bilinear", '
                                          'align_corners=true) -> t: conv(2, 3)'),
    "nearest-to-a-size": ("1x64x64", "x -> avgpool(2) -> upsample(size=[45, 45]) -> t: conv(2, 3)"),
    "transposed-pad-output-pad": ("1x64x64", "x -> conv(2, 3, stride=2) -> conv_transpose(2, 3, stride=2, pad=1, "
                                             "output_pad=1) -> t: conv(2, 3)"),
    "transposed-sparse": ("1x64x64", "x -> avgpool(2) -> t: conv_transpose(2, 1, stride=3)"),
    "transposed-dilated": ("1x64x64", "x -> avgpool(2) -> conv_transpose(2, 3, stride=2, dilation=2) -> t: conv(2, 2)"),
    "pixel-shuffle": ("1x64x64", "x -> conv(8, 3, stride=2) -> pixel_shuffle(2) -> t: conv(2, 3)"),
    "pixel-unshuffle": ("1x64x64", "x -> conv(2, 3) -> pixel_unshuffle(2) -> t: conv(2, 3)"),
    "crop-and-concat": ("1x64x64", None),  # U-Net's skip, written out below
}
SKIP = """
    e = x -> conv(2, 3) -> conv(2, 3)
    d = e -> avgpool(2) -> conv(2, 3) -> conv(2, 3) -> conv_transpose(2, 2, stride=2)
    output out = concat(crop(e, d), d) -> conv(2, 3) -> t: conv(2, 3)
"""


def network(tmp_path, shape: str, expr: str | None):
    body = SKIP if expr is None else f"    output out = {expr}\n"
    path = tmp_path / "net.cnn"
    path.write_text(f"network rf() {{\n    input x: {shape}\n{body}}}\n")
    net = cnndsl.load(str(path))
    cnndsl.analyze(net)
    return net


def positive(model: nn.Module) -> nn.Module:
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            fan_in = module.weight[0].numel()
            nn.init.constant_(module.weight, 1.0 / fan_in)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model.eval()


def support(model: nn.Module, shape, row: int, col: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """The first and last input row and column whose gradient is not zero, for output (row, col)."""
    x = torch.ones(1, *shape, dtype=torch.float64, requires_grad=True)
    out = model(x)
    out = out if isinstance(out, torch.Tensor) else next(iter(out.values()))
    out[0, :, row, col].sum().backward()
    seen = (x.grad[0].abs().sum(0) > 0).nonzero()
    return (int(seen[:, 0].min()), int(seen[:, 0].max())), (int(seen[:, 1].min()), int(seen[:, 1].max()))


@pytest.mark.parametrize("name", sorted(CASES))
def test_fields_are_the_gradient_support_at_every_phase(tmp_path, name):
    shape_text, expr = CASES[name]
    net = network(tmp_path, shape_text, expr)
    shape = tuple(int(v) for v in shape_text.split("x"))
    model = positive(cnndsl.to_torch(net)).double()
    node = net.node("t")
    rf, (_, height, width) = node["rf"], node["type"].shape
    period = max(a.period for a in rf.axes)
    span = min(period, 8)  # every phase, around the middle of the output (8 of a longer period)
    widest = 0
    for k in range(span + 1):
        row, col = height // 2 - span // 2 + k, width // 2 - span // 2 + k
        want = [rf.axes[0].at(row), rf.axes[1].at(col)]
        if want[0][0] is None:
            continue  # a position no input pixel reaches (a transposed conv's stride over its kernel)
        assert all(0 <= lo and hi < size for (lo, hi), size in zip(want, shape[1:])), "input too small"
        got = support(model, shape, row, col)
        assert [tuple(w) for w in want] == list(got), (row, col)
        widest = max(widest, got[0][1] - got[0][0] + 1)
    assert rf.size[0] == widest if period <= span else rf.size[0] >= widest


def test_a_fractional_stride_is_reported_as_a_fraction(tmp_path):
    # stride 2 then 4 outputs per pixel: every output pixel moves the field by half an input pixel
    net = network(tmp_path, "1x64x64", "x -> conv(2, 3, stride=2, pad=1) -> t: upsample(scale=4)")
    assert net.node("t")["rf"].stride == (Fraction(1, 2), Fraction(1, 2))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["analyze", str(tmp_path / "net.cnn"), "--format", "json"]) == 0
    layer = next(x for x in json.loads(out.getvalue())["layers"] if x["name"] == "t")
    assert layer["rf"]["stride"] == ["1/2", "1/2"]  # JSON has no fractions


@pytest.mark.parametrize("shape, layer", [("1x1", "conv_transpose(1, 1000000000)"),
                                          ("2x7x7", "conv_transpose(2, 20000, stride=19997)"),
                                          ("2x7x7", "upsample(size=[1000000007, 3])")])
def test_an_exact_field_past_the_work_bound_is_a_located_error(tmp_path, shape, layer):
    # these fields repeat with periods in the hundreds of millions: refused before any is computed
    from cnndsl import limits

    path = tmp_path / "net.cnn"
    path.write_text(f"network rf() {{\n    input x: {shape}\n    output out = x -> t: {layer}\n}}\n")
    net = cnndsl.load(str(path))
    with pytest.raises(cnndsl.CnnError, match=f"limit is {limits.RF_WORK_MAX:,}") as err:
        cnndsl.analyze(net)
    assert err.value.span is not None and err.value.span.line == 3
