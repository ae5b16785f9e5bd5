"""The receptive field of networks with squeeze-excitation gates, measured on torchvision's models.

An SE gate lets every output see the whole image, so cnndsl reports the field of the conv path and marks
it `global_gate`. The independent check: torchvision's model with its SE modules replaced by identities
(the conv path alone), every conv an average over its window (weights 1/fan-in, so activations stay
positive and of order one) and a positive input, so that every path from an input pixel to the output
carries a positive derivative; the support of the gradient of one output position is then exactly its
receptive field. The image is made large enough that the field lies inside it.
"""

from __future__ import annotations

import pytest
import torch
import torchvision

import cnndsl
from cnndsl.report import as_json
from reference import conv_path

CASES = [  # (preset, torchvision constructor, image side, output row/column probed)
    ("efficientnet_b0", torchvision.models.efficientnet_b0, 960, 15),
    ("mobilenet_v3_large", torchvision.models.mobilenet_v3_large, 640, 10),
    ("mobilenet_v3_small", torchvision.models.mobilenet_v3_small, 672, 10),
]


def measured_field(features: torch.nn.Module, side: int, pos: int) -> tuple[int, int]:
    """(first input row, number of rows) that the output at (pos, pos) depends on."""
    features = conv_path(features).double().eval()
    with torch.no_grad():
        for m in features.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.fill_(1.0 / m.weight[0].numel())
                if m.bias is not None:
                    m.bias.zero_()
    x = torch.ones(1, 3, side, side, dtype=torch.float64, requires_grad=True)
    features(x)[0, :, pos, pos].sum().backward()
    rows = (x.grad[0].abs().sum(dim=(0, 2)) != 0).nonzero().flatten()
    cols = (x.grad[0].abs().sum(dim=(0, 1)) != 0).nonzero().flatten()
    assert rows.tolist() == cols.tolist()
    assert rows.tolist() == list(range(int(rows[0]), int(rows[-1]) + 1))  # one contiguous window
    return int(rows[0]), len(rows)


@pytest.mark.slow
@pytest.mark.parametrize("preset, build, side, pos", CASES, ids=[c[0] for c in CASES])
def test_conv_path_field_matches_gradient_support(preset, build, side, pos):
    net = cnndsl.load(preset)
    report = as_json(net, cnndsl.analyze(net))
    (name, rf), = report["receptive_field"].items()
    assert name.startswith("features.") and rf["global_gate"] is True
    size, stride, padding = rf["size"][0], rf["stride"][0], rf["padding"][0]
    first = pos * stride - padding
    assert first >= 0 and first + size <= side  # the probe's field lies inside the image
    assert measured_field(build(weights=None).features, side, pos) == (first, size)


def test_the_gate_makes_the_output_depend_on_every_position():
    torch.manual_seed(0)
    se = torchvision.ops.SqueezeExcitation(8, 2)
    torch.nn.init.constant_(se.fc1.bias, 1.0)  # a live ReLU: a random draw could close both squeeze units
    x = torch.randn(1, 8, 9, 9, requires_grad=True)
    se(x)[0, :, 0, 0].sum().backward()
    assert bool((x.grad[0].abs().sum(0) != 0).all())
