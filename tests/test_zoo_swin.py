"""Swin Transformer V1 and V2 (Liu et al. 2021, 2022) against torchvision's swin_t/s/b and swin_v2_t/s/b: weights
load strictly and outputs are equal, at the presets' inputs (shifted windows in the first three stages, one window
covering the last) and at 64x64 (maps padded to whole windows); drop probabilities are torchvision's.
Parameters, buffers, state_dict, MACs and the documented GFLOPS: tests/test_zoo.py."""

from __future__ import annotations

import pytest
import torch
import torchvision.models as tvm

import cnndsl


@pytest.mark.parametrize("preset, size", [("swin_t", 64), pytest.param("swin_t", 224, marks=pytest.mark.slow),
                                          pytest.param("swin_s", 64, marks=pytest.mark.slow),
                                          pytest.param("swin_b", 64, marks=pytest.mark.slow),
                                          ("swin_v2_t", 64), pytest.param("swin_v2_t", 256, marks=pytest.mark.slow),
                                          pytest.param("swin_v2_b", 64, marks=pytest.mark.slow)])
def test_generated_swin_loads_torchvisions_weights_and_gives_its_outputs(preset, size, torch_on_one_thread):
    torch.manual_seed(0)
    reference = getattr(tvm, preset)(weights=None).eval()
    model = cnndsl.to_torch(cnndsl.load(preset, inputs={"x": f"3x{size}x{size}"})).eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        want, got = reference(x), model(x)
    assert got.shape == want.shape == (2, 1000)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5), (got - want).abs().max()


def test_stochastic_depth_and_shifts_are_torchvisions(tv):
    reference = tv("swin_b")
    blocks = [m for m in reference.modules() if hasattr(m, "stochastic_depth") and hasattr(m, "attn")]
    net = cnndsl.load("swin_b")
    attention = [d["attrs"] for d in net.nodes() if d["op"] == "window_attention"]
    drops = [d["attrs"]["p"] for d in net.nodes() if d["op"] == "stochastic_depth"][::2]
    assert [list(a["shift"]) for a in attention] == [b.attn.shift_size for b in blocks]
    assert drops == pytest.approx([b.stochastic_depth.p for b in blocks], abs=1e-12)


@pytest.mark.parametrize("preset, clip", [("swin3d_t", "3x4x64x64"), pytest.param("swin3d_t", "3x16x112x112",
                                                                                 marks=pytest.mark.slow)])
def test_generated_video_swin_loads_torchvisions_weights_and_gives_its_outputs(preset, clip, torch_on_one_thread):
    # 4 frames: the 8-frame windows shrink to 2 patches and do not shift in time, as torchvision's do
    import torchvision.models.video as tvv

    torch.manual_seed(0)
    reference = getattr(tvv, preset)(weights=None).eval()
    model = cnndsl.to_torch(cnndsl.load(preset, inputs={"x": clip})).eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, *map(int, clip.split("x")))
    with torch.no_grad():
        want, got = reference(x), model(x)
    assert got.shape == want.shape == (2, 400)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5), (got - want).abs().max()

