"""U-Net (Ronneberger et al. 2015) against the paper's Figure 1 and a reference written out from the paper
(tests/unet_reference.py): every level's size, parameters, MACs, weights and outputs, and the receptive
field of the output at every phase against PyTorch's gradients."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import cnndsl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_receptive_upsampling import positive  # noqa: E402
from unet_reference import ReferenceUNet  # noqa: E402

from reference import assert_counts, reference_macs  # noqa: E402

# The paper's Figure 1: the size of each level's last feature map, and its channels, for a 572x572 tile.
FIGURE_1 = {"inc": (64, 568), "down1": (128, 280), "down2": (256, 136), "down3": (512, 64), "down4": (1024, 28),
            "up1": (512, 52), "up2": (256, 100), "up3": (128, 196), "up4": (64, 388), "outc": (2, 388)}


def level_shapes(net) -> dict[str, tuple[int, int]]:
    out = {}
    for name, scope in net.scopes.items():
        if name in FIGURE_1:
            (c, h, w) = net.type_of(scope.outputs[-1]).shape
            out[name] = (c, h) if h == w else None
    out["outc"] = net.type_of("outc").shape[:2]
    return out


def test_unet_has_the_papers_sizes(ours):
    net, _ = ours("unet")  # the network's defaults are the paper's
    assert level_shapes(net) == FIGURE_1
    assert net.type_of(net.outputs["logits"]).shape == (2, 388, 388)


@pytest.mark.parametrize("preset, padding, size", [("unet_paper", 0, 572), ("unet_padded", 1, 256)])
def test_counts_are_the_references(ours, preset, padding, size):
    _, totals = ours(preset)
    with torch.device("meta"):
        reference = ReferenceUNet(padding=padding)
    assert_counts(totals, reference)
    assert totals["macs"] == reference_macs(reference, (1, size, size))


@pytest.mark.parametrize("preset, padding, size", [("unet_paper", 0, 188), ("unet_padded", 1, 64)])
def test_generated_model_loads_the_references_weights_and_computes_its_outputs(preset, padding, size):
    torch.manual_seed(0)
    reference = ReferenceUNet(width=4, padding=padding).eval()
    net = cnndsl.load(preset, width=4, size=size)
    model = cnndsl.to_torch(net).eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 1, size, size)
    with torch.no_grad():
        want, got = reference(x), model(x)
    assert got.shape == want.shape == (2, 2, *net.type_of(net.outputs["logits"]).shape[1:])
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-6)


def test_receptive_field_is_the_gradient_support_at_every_phase(monkeypatch):
    # 188 or 204 input pixels per axis by the output position mod 16 (the bottom level's grid); the max pools
    # become average pools here (a max pool's gradient reaches only the maximum; the field is the same). A
    # 252x252 tile (even at every pool) holds the fields of outputs 16..31, one phase each, one per batch item.
    net = cnndsl.load("unet", width=1, size=252)
    cnndsl.analyze(net)
    rf = net.node("outc")["rf"]
    assert rf.size == (204, 204) and rf.stride == (1, 1)
    model = positive(cnndsl.to_torch(net)).double()
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.MaxPool2d):
                setattr(parent, name, nn.AvgPool2d(child.kernel_size, child.stride))
    monkeypatch.setattr(F, "max_pool2d", lambda x, k, *a, **kw: F.avg_pool2d(x, k))
    phases = range(16, 32)
    x = torch.ones(len(phases), 1, 252, 252, dtype=torch.float64, requires_grad=True)
    out = model(x)
    sum(out[b, :, o, o].sum() for b, o in enumerate(phases)).backward()
    sizes = set()
    for b, o in enumerate(phases):
        seen = (x.grad[b, 0] != 0).nonzero()
        rows = (int(seen[:, 0].min()), int(seen[:, 0].max()))
        cols = (int(seen[:, 1].min()), int(seen[:, 1].max()))
        assert rows == cols == rf.axes[0].at(o), o
        sizes.add(rows[1] - rows[0] + 1)
    assert sizes == {188, 204}
