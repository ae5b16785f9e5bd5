"""ConvNeXt (Liu et al. 2022) against torchvision's convnext_tiny .. convnext_large: weights load strictly and
outputs are equal (at a reduced input; the counts, state_dict, MACs and documented GFLOPS are checked at
224x224 by tests/test_zoo.py), the blocks' drop probabilities are torchvision's, and the generated block
reads like torchvision's CNBlock."""

from __future__ import annotations

import pytest
import torch
import torchvision.models as tvm

import cnndsl


@pytest.mark.parametrize("preset", ["convnext_tiny", *[pytest.param(p, marks=pytest.mark.slow)
                                                       for p in ("convnext_small", "convnext_base")]])
def test_generated_convnext_loads_torchvisions_weights_and_gives_its_outputs(preset, torch_on_one_thread):
    torch.manual_seed(0)
    reference = getattr(tvm, preset)(weights=None).eval()
    for module in reference.modules():  # torchvision starts layer scale at 1e-6: make the blocks count
        if hasattr(module, "layer_scale"):
            module.layer_scale.data.uniform_(0.5, 1.5)
    model = cnndsl.to_torch(cnndsl.load(preset, inputs={"x": "3x64x64"})).eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        want, got = reference(x), model(x)
    assert got.shape == want.shape == (2, 1000)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5), (got - want).abs().max()


@pytest.mark.parametrize("preset", ["convnext_tiny", "convnext_large"])
def test_stochastic_depth_grows_linearly_as_torchvisions(preset, tv):
    reference = tv(preset)
    want = [m.stochastic_depth.p for m in reference.modules() if hasattr(m, "stochastic_depth")]
    net = cnndsl.load(preset)
    got = [d["attrs"]["p"] for d in net.nodes() if d["op"] == "stochastic_depth"]
    assert got == pytest.approx(want, abs=1e-12) and len(got) == len(want)
