"""MaxViT (Tu et al. 2022) against torchvision's maxvit_t and its MaxVit class.

Parameters, buffers, state_dict, MACs (FlopCounterMode, attention included) and the documented GFLOPS of maxvit_t:
tests/test_zoo.py (reference.PUBLISHED, WEIGHTS); its weights and outputs at 224x224: tests/test_torch_backend.py
(test_module_matches_torchvision) and, at batch 2 with its drop probabilities, here (slow). maxvit_t takes no input
smaller than 224x224 (every stage's map must split into 7x7 windows), so the fast checks of both backends run on a
small MaxViT of the same code, partition 2 at 64x64, which torchvision's MaxVit class builds too.

Receptive fields: block attention sees a 7x7 window (a tile); grid attention sees, along each axis, the positions
with the same index modulo H/7, spread over the whole map. cnndsl reports each position's first and last input
pixel exactly (the hull; the grid's field has gaps inside it, as a dilated conv's has), and "global" once every
position's field spans the whole image: in maxvit_t from the second MBConv on, where it has no gap left either.
Both are measured here as the support of the gradient of torchvision's model, with its squeeze-excitation gates
removed (a gate sees the whole image from the first MBConv on, which cnndsl reports apart, as `global_gate`;
tests/test_receptive_gates.py does the same).
"""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
import torchvision
import torchvision.models as tvm

import cnndsl
from cnndsl.backends.pytorch import class_name
from reference import conv_path

# a small MaxViT: partition 2 at 64x64 (stages of 16, 8, 4 and 2 positions), two layers in the first stage
SMALL = dict(stem_channels=16, block_channels=[16, 32, 32, 64], block_layers=[2, 1, 1, 1], head_dim=8,
             partition_size=2, stochastic_depth_prob=0.2)


def small_pair():
    """(cnndsl's network, torchvision's MaxVit) of the small configuration, at 64x64."""
    net = cnndsl.load("maxvit", inputs={"x": "3x64x64"}, **SMALL)
    torch.manual_seed(0)
    reference = tvm.MaxVit(input_size=(64, 64), **SMALL).eval()
    with torch.no_grad():  # torchvision zero-initialises the biases and batch norm's statistics: make them count
        for p in reference.parameters():
            if not p.any():
                p.normal_(std=0.02)
        for key, b in reference.named_buffers():
            if key.endswith("running_mean"):
                b.normal_(std=0.1)
            elif key.endswith("running_var"):
                b.uniform_(0.5, 2.0)
    return net, reference


def relative_error(got, want) -> float:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    return float(np.abs(got - want).max() / np.abs(want).max())


def test_small_maxvit_both_backends_give_torchvisions_outputs(torch_on_one_thread):
    net, reference = small_pair()
    model = cnndsl.to_torch(net).eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    assert list(model.state_dict()) == list(reference.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        want, got = reference(x), model(x)
    assert ((got - want).norm() / want.norm()).item() <= 1e-5
    module = types.ModuleType("generated_maxvit")
    exec(compile(cnndsl.compile(net, "numpy"), "<numpy maxvit>", "exec"), module.__dict__)  # noqa: S102
    numpy_model = getattr(module, class_name(net))(reference.state_dict())
    assert relative_error(numpy_model(x.numpy()), want.numpy()) <= 1e-4


@pytest.mark.slow
def test_maxvit_t_loads_torchvisions_weights_and_gives_its_outputs(torch_on_one_thread):
    torch.manual_seed(0)
    reference = tvm.maxvit_t(weights=None).eval()
    model = cnndsl.to_torch(cnndsl.load("maxvit_t")).eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        want, got = reference(x), model(x)
    assert got.shape == want.shape == (2, 1000)
    assert ((got - want).norm() / want.norm()).item() <= 1e-5


def test_drop_probabilities_and_partitions_are_torchvisions(ours, tv):
    reference = tv("maxvit_t")
    layers = [m for m in reference.modules() if isinstance(m, torchvision.models.maxvit.PartitionAttentionLayer)]
    net, _ = ours("maxvit_t")
    attention = [d["attrs"] for d in net.nodes() if d["op"] == "partition_attention"]
    assert [a["partition"] for a in attention] == [m.partition_type for m in layers]
    assert [a["heads"] for a in attention] == [m.n_heads for m in layers]
    drops = [d["attrs"]["p"] for d in net.nodes() if d["op"] == "stochastic_depth"
             and ".window_attention." in d["name"]][::2]  # two per attention layer, as torchvision's one module
    assert drops == pytest.approx([m.stochastic_dropout.p for m in layers][::2], abs=1e-12)


def test_an_input_that_does_not_split_into_windows_is_refused_as_torchvision_refuses_it():
    with pytest.raises(ValueError, match="not divisible by partition size"):
        tvm.maxvit_t(weights=None, input_size=(192, 192))
    with pytest.raises(cnndsl.CnnError, match="multiples of size=7"):
        cnndsl.load("maxvit_t", inputs={"x": "3x192x192"})


# ---------------------------------------------------------------- receptive fields


def sublayer_outputs(model, x, stages: int = 2) -> dict[str, torch.Tensor]:
    """The outputs of the first stages' sublayers, by stage, layer and name: '0.0.MBconv', '0.0.window_attention',
    ..., '1.0.grid_attention'."""
    out, y = {}, model.stem(x)
    for s in range(stages):
        for i, layer in enumerate(model.blocks[s].layers):
            for name, sub in layer.layers.named_children():
                y = out[f"{s}.{i}.{name}"] = sub(y)
    return out


def measured(x: torch.Tensor, y: torch.Tensor, pos: int) -> tuple[int, int, int]:
    """(first row, last row, rows) of the input that output (pos, pos) depends on; rows and columns agree."""
    (grad,) = torch.autograd.grad(y[0, :, pos, pos].sum(), x, retain_graph=True)
    rows = (grad[0].abs().sum(dim=(0, 2)) != 0).nonzero().flatten().tolist()
    cols = (grad[0].abs().sum(dim=(0, 1)) != 0).nonzero().flatten().tolist()
    assert rows == cols
    return rows[0], rows[-1], len(rows)


def reported(net, scope: str, pos: int, side: int):
    """cnndsl's field of output (pos, pos) at the end of a scope: 'global', or (first, last) input row in the image."""
    name = [n for n in net.order if n.startswith(scope + ".")][-1]
    field = net.node(name)["rf_state"]
    if field == "global":
        return field
    assert field.global_gate  # the squeeze-excitation gates upstream
    (lo, hi), (lo_w, hi_w) = (a.at(pos) for a in field.axes)
    assert (lo, hi) == (lo_w, hi_w)
    return max(lo, 0), min(hi, side - 1)


def check_fields(net, model, side: int, probes: dict[str, list[int]]) -> dict[str, list]:
    """Each probe's field as cnndsl reports it equals the measured one; returns (field, rows measured) by probe."""
    torch.manual_seed(0)
    model = conv_path(model).double().eval()
    x = torch.randn(1, 3, side, side, dtype=torch.float64, requires_grad=True)
    outputs = sublayer_outputs(model, x)
    cnndsl.analyze(net)
    seen = {}
    for key, positions in probes.items():
        for pos in positions:
            first, last, rows = measured(x, outputs[key], pos)
            stage, layer, name = key.split(".")
            field = reported(net, f"blocks.{stage}.layers.{layer}.layers.{name}", pos, side)
            if field == "global":
                assert (first, last) == (0, side - 1), (key, pos)  # from the first row to the last
            else:
                assert field == (first, last), (key, pos)
            seen.setdefault(key, []).append((field, rows))
    return seen


def test_small_maxvit_fields_are_the_gradient_support(torch_on_one_thread):
    # partition 2 on a 16x16 map (a grid group holds positions 8 apart), then on an 8x8 map: every sublayer of the
    # first stage at every position of a period and its borders, and the second stage, where the fields are global
    net, reference = small_pair()
    probes = {f"0.{i}.{name}": [0, 2, 3, 4, 6, 7, 8, 9, 15] for i in range(2)
              for name in ("MBconv", "window_attention", "grid_attention")}
    seen = check_fields(net, reference, 64, {**probes, "1.0.MBconv": [0, 5], "1.0.grid_attention": [7]})
    assert all(field != "global" for key in probes for field, _ in seen[key])
    assert any(rows < field[1] - field[0] + 1 for field, rows in seen["0.0.grid_attention"])  # gaps inside
    assert all(field == "global" for key in ("1.0.MBconv", "1.0.grid_attention") for field, _ in seen[key])


@pytest.mark.slow
def test_maxvit_t_fields_are_the_gradient_support(torch_on_one_thread):
    # at 224: the first grid attention's fields span 198 to 224 rows, with gaps (203 rows of 224 at position 3); from
    # the second MBConv on every output sees every pixel
    net = cnndsl.load("maxvit_t")
    seen = check_fields(net, tvm.maxvit_t(weights=None), 224, {"0.0.window_attention": [0, 7, 55],
                                                               "0.0.grid_attention": [0, 3, 7, 55],
                                                               "0.1.MBconv": [0, 27]})
    grid = seen["0.0.grid_attention"]
    assert any(rows < field[1] - field[0] + 1 for field, rows in grid)  # a hull with gaps inside
    assert all(field == "global" and rows == 224 for field, rows in seen["0.1.MBconv"])  # every row, no gap
