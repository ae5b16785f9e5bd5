"""S3D (Xie et al. 2018; architectures/s3d.cnn) and MViT v1-B / MViTv2-S (Fan et al. 2021, Li et al. 2022;
architectures/mvit.cnn) against torchvision's models/video/s3d.py and mvit.py.

The expected numbers come from torchvision's model built here with weights=None: per-module output shapes,
layer settings, and outputs. Parameters, buffers, state_dict, MACs (FlopCounterMode) and the documented
parameters and GFLOPS (its Kinetics-400 weights' meta): tests/test_zoo.py, through reference.PUBLISHED and
reference.WEIGHTS. Counting runs on the "meta" device; outputs on the CPU. S3D's head pools a fixed 2x7x7
window, so the whole network takes clips of 13x209x209 at least (13 GMACs, slow); the fast suite runs its
feature layers, every weight of which the head does not own, on a small clip. torchvision builds MViT's
position tables for one clip size: the fast suite compares with torchvision's MViTs built for 4x64x64 clips
(torchvision's own builders, their clip size patched), the slow one at 16x224x224.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models import video as tvv

import torchvision.models.video.mvit as tv_mvit

import cnndsl
from cnndsl.zoo import entries

from reference import assert_module_output_shapes, generated, output_error, random_input, relative_error
from test_zoo_inception_video_audio import randomize

CLIP = (3, 16, 224, 224)  # torchvision's S3D weights: 16 frames of 224x224 (their "_ops" is at this clip)
SETTINGS = ("kernel_size", "stride", "padding", "dilation", "groups", "ceil_mode", "count_include_pad", "eps",
            "momentum", "p", "inplace")


def s3d(device="meta"):
    with torch.device(device):
        return tvv.s3d(weights=None).eval()


@pytest.fixture(scope="module")
def s3d_pair():
    """torchvision's S3D with random weights and batch-norm statistics, and the generated module holding its
    state_dict (strict), both on the CPU in eval mode."""
    torch.manual_seed(0)
    reference = randomize(s3d("cpu"))
    return reference, generated(cnndsl.load("s3d"), reference)


def test_s3d_is_listed_with_its_paper():
    (entry,) = [e for e in entries() if e.name == "s3d"]
    assert entry.file == "s3d.cnn" and "Xie et al. 2018" in entry.description


def test_s3d_every_module_has_torchvisions_output_shape(ours):
    net, _ = ours("s3d")
    assert net.type_of(net.inputs["x"]).shape == CLIP
    shapes = assert_module_output_shapes(net, s3d(), CLIP)
    assert shapes["features"] == (1024, 2, 7, 7) and shapes["avgpool"] == (1024, 1, 1, 1)
    assert net.type_of(net.outputs["logits"]).shape == (400,)


def test_s3d_layer_settings_are_torchvisions(ours):
    # every module torchvision has (conv, batch norm with eps and momentum 0.001, pools, dropout, ReLU) is the
    # generated module's of the same name, of the same type and with the same settings
    net, _ = ours("s3d")
    with torch.device("meta"):
        model = cnndsl.to_torch(net)
    mine = dict(model.named_modules())
    checked = 0
    for name, theirs in s3d().named_modules():
        if list(theirs.children()):
            continue
        ours_ = mine[name]
        assert type(ours_) is type(theirs), name
        for attr in SETTINGS:
            if hasattr(theirs, attr):
                want, got = getattr(theirs, attr), getattr(ours_, attr)
                if isinstance(ours_, (nn.MaxPool3d, nn.AvgPool3d)) and attr in ("kernel_size", "stride", "padding",
                                                                               "dilation"):
                    want, got = nn.modules.utils._triple(want), nn.modules.utils._triple(got)
                assert got == want, (name, attr)
        checked += 1
    assert checked == len([m for m in s3d().modules() if not list(m.children())])


@pytest.mark.parametrize("clip", [(3, 5, 32, 32), (3, 6, 35, 29)])  # the 2x2x2 max pool needs 2 frames
def test_s3d_features_load_torchvisions_weights_and_agree_on_a_small_clip(clip, s3d_pair, torch_on_one_thread):
    reference, model = s3d_pair
    x = random_input(1, *clip, seed=11)
    with torch.no_grad():
        got, want = model.features(x), reference.features(x)
    assert want.abs().max() > 0
    assert relative_error(got, want) < 1e-5


def test_s3d_head_agrees_with_torchvisions_on_features(s3d_pair):
    # the head alone (average pool, dropout, 1x1x1 conv, mean over time and space) on random features of
    # 1024x4x7x7: three positions of time are left to average
    reference, model = s3d_pair
    y = random_input(2, 1024, 4, 7, 7, seed=12)
    with torch.no_grad():
        want = torch.mean(reference.classifier(reference.avgpool(y)), dim=(2, 3, 4))
        got = model.flatten(model.mean(model.classifier(model.avgpool(y))))
    assert relative_error(got, want) < 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("clip", [(3, 13, 209, 209), (3, 32, 224, 224)])
def test_s3d_generated_module_agrees_with_torchvision(clip, ours, s3d_pair):
    # the least clip the head takes, and 32 frames (three positions of time averaged by the head's mean)
    reference, _ = s3d_pair
    net, _ = ours("s3d", inputs={"x": "x".join(map(str, clip))})
    assert output_error(net, reference, random_input(1, *clip, seed=13), threads=1) < 1e-5


# ---------------------------------------------------------------- MViT

MVIT = ["mvit_v1_b", "mvit_v2_s"]


def mvit(name: str, clip=CLIP, device="cpu"):
    """torchvision's mvit_v1_b or mvit_v2_s (weights=None) built for clips of `clip`: its builders fix 16x224x224,
    so their call of _mvit gets the clip size replaced."""
    build = tv_mvit._mvit

    def for_clip(**kwargs):
        kwargs["temporal_size"], kwargs["spatial_size"] = clip[1], tuple(clip[2:])
        return build(**kwargs)

    tv_mvit._mvit = for_clip
    try:
        with torch.device(device):
            return getattr(tv_mvit, name)(weights=None).eval()
    finally:
        tv_mvit._mvit = build


def test_mvit_is_listed_with_its_papers():
    listed = {e.name: e for e in entries()}
    assert "Fan et al. 2021" in listed["mvit_v1_b"].description
    assert "Li et al. 2022" in listed["mvit_v2_s"].description
    assert listed["mvit_v1_b"].file == listed["mvit_v2_s"].file == "mvit.cnn"


@pytest.mark.parametrize("preset", MVIT)
def test_mvit_layers_and_drop_rates_are_torchvisions(preset, ours):
    # every module torchvision has is the generated module of the same name, of its type (torch.nn's) and
    # settings (its stochastic depth, one module called twice per block, is two unnamed nodes: their rates are
    # checked apart; its PositionalEncoding is the generated SpaceTimeTokens)
    net, _ = ours(preset)
    with torch.device("meta"):
        model = cnndsl.to_torch(net)
    mine = dict(model.named_modules())
    reference = mvit(preset, device="meta")
    for name, theirs in reference.named_modules():
        if list(theirs.children()) or name.endswith("stochastic_depth"):
            continue
        assert type(mine[name]) is type(theirs) or not type(theirs).__module__.startswith("torch.nn"), name
        for attr in SETTINGS[:-1]:  # not `inplace`: torchvision's head drops out in place, ours not (same values)
            if hasattr(theirs, attr):
                got, want = getattr(mine[name], attr), getattr(theirs, attr)
                assert (tuple(got) if isinstance(got, list) else got) == \
                    (tuple(want) if isinstance(want, list) else want), (name, attr)
    rates = [d["attrs"]["p"] for d in net.nodes() if d["op"] == "stochastic_depth"]
    assert rates[::2] == rates[1::2] == pytest.approx([b.stochastic_depth.p for b in reference.blocks], abs=1e-12)
    heads = [d["attrs"]["heads"] for d in net.nodes() if d["op"] == "pool_attention"]
    assert heads == [b.attn.num_heads for b in reference.blocks]


# v2 in the fast suite (relative positions, residual pooling, projection in the attention); v1's ops are checked
# one by one there too (tests/test_ops.py, test_torch_backend.py, test_numpy_backend.py)
@pytest.mark.parametrize("preset", [pytest.param("mvit_v1_b", marks=pytest.mark.slow), "mvit_v2_s"])
def test_mvit_loads_torchvisions_weights_and_agrees_on_a_small_clip(preset, ours, torch_on_one_thread):
    # 4 frames of 64x64: a 2x16x16 grid, 2x2x2 in the last stage
    clip = (3, 4, 64, 64)
    net, _ = ours(preset, inputs={"x": "x".join(map(str, clip))})
    reference = randomize(mvit(preset, clip))
    assert output_error(net, reference, random_input(2, *clip, seed=14)) < 1e-5


def test_mvit_v2_refuses_a_clip_whose_relative_positions_torchvision_would_interpolate():
    # a 16x24 grid: torchvision sizes the tables by the larger side and interpolates them for the other
    with pytest.raises(cnndsl.CnnError, match="interpolated"):
        cnndsl.load("mvit_v2_s", inputs={"x": "3x4x64x96"})


@pytest.mark.slow
@pytest.mark.parametrize("preset", MVIT)
def test_mvit_generated_module_agrees_with_torchvision_at_its_clip(preset, ours):
    net, _ = ours(preset)
    reference = randomize(mvit(preset))
    assert output_error(net, reference, random_input(1, *CLIP, seed=15), threads=1) < 1e-5
