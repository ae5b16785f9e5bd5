"""FCN-ResNet50/101, DeepLabv3 (ResNet50/101, MobileNetV3-Large) and LR-ASPP against torchvision's segmentation
models (weights=None, weights_backbone=None, aux_loss=True where its COCO-trained weights have the auxiliary
head): weights load strictly and the outputs, `out` and `aux`, equal torchvision's; for FCN, the receptive
field of the upsampled scores is PyTorch's gradient support at every phase. Parameters, buffers, state_dict,
MACs and torchvision's documented GFLOPS: tests/test_zoo.py."""

from __future__ import annotations

import pytest
import torch
import torchvision.models.segmentation as tvs
from torch import nn
from torch.nn import functional as F

import cnndsl

from test_receptive_upsampling import positive


SLOW = pytest.mark.slow


@pytest.mark.parametrize("preset", ["fcn_resnet50", pytest.param("fcn_resnet101", marks=SLOW),
                                    pytest.param("deeplabv3_resnet50", marks=SLOW),
                                    pytest.param("deeplabv3_resnet101", marks=SLOW), "deeplabv3_mobilenet_v3_large",
                                    "lraspp_mobilenet_v3_large"])
def test_generated_model_loads_torchvisions_weights_and_gives_its_outputs(preset, torch_on_one_thread):
    torch.manual_seed(0)
    aux = {} if preset.startswith("lraspp") else {"aux_loss": True}  # LR-ASPP has no auxiliary head
    reference = getattr(tvs, preset)(weights=None, weights_backbone=None, **aux).eval()
    net = cnndsl.load(preset, inputs={"x": "3x64x64"})
    model = cnndsl.to_torch(net).eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        want, got = reference(x), model(x)
    got = got if isinstance(got, dict) else {"out": got}  # one output: a plain tensor
    assert list(got) == list(want) == (["out"] if not aux else ["out", "aux"])
    for key in want:
        assert got[key].shape == want[key].shape == (2, 21, 64, 64)
        assert torch.allclose(got[key], want[key], rtol=1e-5, atol=1e-5), key


def test_fcn_receptive_field_is_the_gradient_support_at_every_phase(monkeypatch, torch_on_one_thread):
    # one block per stage keeps the field inside a 136x136 image; the scores are upsampled by 8 (bilinear), so
    # the field repeats every 8 output pixels: one phase per batch item. Max pools become average pools (a
    # max pool's gradient reaches only the maximum; the field is the same).
    net = cnndsl.load("fcn", inputs={"x": "3x136x136"}, layers=[1, 1, 1, 1], aux_loss=False)
    cnndsl.analyze(net)
    rf = net.node(net.outputs["out"])["rf"]
    assert rf.stride == (1, 1) and rf.axes[0].period == 8
    model = positive(cnndsl.to_torch(net))
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.MaxPool2d):
                setattr(parent, name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding))
    monkeypatch.setattr(F, "max_pool2d", lambda x, k, s=None, p=0, *a, **kw: F.avg_pool2d(x, k, s, p))
    phases = range(64, 72)
    x = torch.ones(len(phases), 3, 136, 136, requires_grad=True)
    out = model(x)
    sum(out[b, :, o, o].sum() for b, o in enumerate(phases)).backward()
    widest = 0
    for b, o in enumerate(phases):
        seen = (x.grad[b].abs().sum(0) != 0).nonzero()
        rows = (int(seen[:, 0].min()), int(seen[:, 0].max()))
        cols = (int(seen[:, 1].min()), int(seen[:, 1].max()))
        want = rf.axes[0].at(o)
        assert 0 < want[0] and want[1] < 135, "the field must lie inside the image"
        assert rows == cols == want, o
        widest = max(widest, rows[1] - rows[0] + 1)
    assert rf.size[0] == widest


def test_numbered_labels_make_a_module_list(tmp_path):
    # ASPP's parallel branches are torchvision's `convs.0` .. `convs.4` (an nn.ModuleList): a label may be a number
    path = tmp_path / "branches.cnn"
    path.write_text("""
block branches(x, rates) {
    "one dilated branch per rate"
    ys = [for i, r in enumerate(rates) { x -> {i}: [conv(2, 3, pad=r, dilation=r, bias=false), relu] }]
    return concat(ys)
}
network n() {
    input x: 3x8x8
    output y = x -> convs: branches([1, 2])
}
""")
    net = cnndsl.load(str(path))
    model = cnndsl.to_torch(net)
    assert list(model.state_dict()) == ["convs.0.0.weight", "convs.1.0.weight"]
    assert model.convs.get_submodule("1")[0].dilation == (2, 2)
    assert model(torch.randn(1, 3, 8, 8)).shape == (1, 4, 8, 8)

