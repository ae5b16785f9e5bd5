"""Every op spec of cnndsl.ops.REGISTRY, checked end to end (a .cnn snippet written to a temporary file,
loaded with cnndsl.load, analysed) against PyTorch itself and against textbook formulas:

- CASES holds, per op, snippets with the matching torch module (or function): the output shape of a random
  tensor, the parameter and buffer names and shapes (as named_parameters / named_buffers give them), and the
  MACs that torch.utils.flop_counter counts (it counts 2 FLOPs per multiply-accumulate of convolutions and
  matrix products, and nothing else, which is our MAC convention).
  `test_every_op_has_cases` fails when an op of the registry (or an alias) has no case.
- Further tests check the rules against formulas: output size, parameters and MACs of convolution, PyTorch's
  pooling output size in ceil mode, attention's 4ND^2 + 2N^2D, receptive-field rules, and published figures
  (LeCun 1989, LeCun et al. 1998, Dosovitskiy et al. 2020, Hu et al. 2018).
- Mistakes are CnnErrors, never crashes; where PyTorch refuses the same thing, the test checks it does.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models.vision_transformer import MLPBlock

import cnndsl
from cnndsl.ir import lint_ir
from cnndsl.ops import ALIASES, REGISTRY
from cnndsl.passes.receptive import ReceptiveField

torch.manual_seed(0)
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning",
                                        "ignore:Initializing zero-element tensors:UserWarning")


# ---------------------------------------------------------------- helpers


def parse_shape(text: str) -> tuple[tuple[int, ...], bool]:
    """'3x32x32' -> ((3, 32, 32), False); 'tokens 10x16' -> ((10, 16), True); '84' -> ((84,), False)."""
    tokens = text.startswith("tokens ")
    text = text.removeprefix("tokens ")
    return tuple(int(d) for d in text.split("x")), tokens


def network_text(inputs: dict[str, str], expr: str) -> str:
    decls = "\n".join(f"    input {name}: {shape}" for name, shape in inputs.items())
    return f"network n() {{\n{decls}\n    output out = {expr}\n}}\n"


def build(tmp_path, inputs: dict[str, str], expr: str, name: str = "net.cnn"):
    """Write a one-output network to a file, load it end to end, analyse it and lint its IR."""
    path = tmp_path / name
    path.write_text(network_text(inputs, expr))
    net = cnndsl.load(str(path))
    lint_ir(net)
    totals = cnndsl.analyze(net)
    lint_ir(net)
    return net, totals


def op_node(tmp_path, shape: str, layer: str, label: str = "t") -> dict:
    """The analysed node of `layer` applied to an input of the given shape."""
    net, _ = build(tmp_path, {"x": shape}, f"x -> {label}: {layer}")
    return net.node(label)


def params_of(node: dict, kinds=("trainable", "fixed")) -> int:
    return sum(p.numel for p in node["params"] if p.kind in kinds)


def torch_macs(fn: Callable, *xs) -> int:
    """Multiply-accumulates counted by torch's own flop counter (2 FLOPs per MAC of conv and matmul)."""
    # (with gradients enabled: nn.MultiheadAttention's fused inference path hides its products from the counter)
    with FlopCounterMode(display=False) as counter:
        fn(*xs)
    flops = counter.get_total_flops()
    assert flops % 2 == 0
    return flops // 2


def numel(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------- references


@dataclass
class Ref:
    """A reference without an nn.Module of its own: a function, and the tensors it would own."""

    forward: Callable
    params: dict[str, tuple] = field(default_factory=dict)  # name -> shape, trainable
    fixed: dict[str, tuple] = field(default_factory=dict)  # name -> shape, never trained
    buffers: dict[str, tuple] = field(default_factory=dict)


def as_ref(obj) -> Ref:
    if isinstance(obj, Ref):
        return obj
    if isinstance(obj, nn.Module):
        return Ref(obj,
                   {k: tuple(p.shape) for k, p in obj.named_parameters() if p.requires_grad},
                   {k: tuple(p.shape) for k, p in obj.named_parameters() if not p.requires_grad},
                   {k: tuple(b.shape) for k, b in obj.named_buffers()})
    return Ref(obj)


class SelfAttention(nn.MultiheadAttention):
    """nn.MultiheadAttention(batch_first=True) applied to one sequence as query, key and value.
    need_weights=True keeps the explicit matrix products, which the flop counter sees."""

    def forward(self, x):
        return super().forward(x, x, x, need_weights=True)[0]


class PatchEmbed(nn.Conv2d):
    """torchvision's VisionTransformer: conv_proj (kernel = stride = patch), then flatten to tokens."""

    def __init__(self, channels: int, dim: int, patch: int):
        super().__init__(channels, dim, patch, stride=patch)

    def forward(self, x):
        return super().forward(x).flatten(2).transpose(1, 2)


class ConstPadConv2d(nn.Conv2d):
    """A conv whose padding is filled with a constant (LeCun 1989 pads with -1)."""

    def __init__(self, *args, pad: int, value: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.pad_, self.value = pad, value

    def forward(self, x):
        return super().forward(F.pad(x, (self.pad_,) * 4, value=self.value))


def rbf_ref(features: int, units: int) -> Ref:
    """y_i = sum_j (x_j - w_ij)^2, written as |x|^2 - 2 x.w_i + |w_i|^2 so that the flop counter sees the
    units * features multiply-accumulates of the distances."""
    w = torch.randn(units, features)
    return Ref(lambda x: (x * x).sum(-1, keepdim=True) - 2 * x @ w.T + (w * w).sum(-1),
               fixed={"weight": (units, features)})


def broadcast_mul(*xs):
    """Broadcasting over the axes after the batch, aligned from the right (the batch stays first)."""
    rank = max(x.dim() for x in xs)
    out = xs[0].reshape(xs[0].shape[0], *[1] * (rank - xs[0].dim()), *xs[0].shape[1:])
    for x in xs[1:]:
        out = out * x.reshape(x.shape[0], *[1] * (rank - x.dim()), *x.shape[1:])
    return out


# LeNet-5's C3 connection table: Table I of LeCun, Bottou, Bengio & Haffner (1998), read column by column:
# the S2 maps each C3 map sees.
LENET5_TABLE_I = [[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5], [0, 4, 5], [0, 1, 5], [0, 1, 2, 3], [1, 2, 3, 4],
                  [2, 3, 4, 5], [0, 3, 4, 5], [0, 1, 4, 5], [0, 1, 2, 5], [0, 1, 3, 4], [1, 2, 4, 5],
                  [0, 2, 3, 5], [0, 1, 2, 3, 4, 5]]


# ---------------------------------------------------------------- the table of cases


@dataclass
class Case:
    op: str  # the name as written (an alias is checked to resolve to its op)
    id: str
    inputs: dict[str, str]  # input name -> shape text
    expr: str  # the network's output expression; the node under test is labelled `t`
    ref: Callable[[], object]  # builds an nn.Module, a Ref, or a plain function
    macs: bool = True  # compare MACs with torch's flop counter
    tokens: bool | None = None  # expected token flag of the output (default: the first input's)


def case(op, id, shape, layer, ref, **kw) -> Case:
    """A one-input case: x -> t: layer."""
    return Case(op, id, {"x": shape}, f"x -> t: {layer}", ref, **kw)


CASES: list[Case] = [
    # ---- conv: 1D/2D/3D, stride, padding (int, per axis, "same", "valid"), dilation, groups, bias, tables
    case("conv", "1d-stride-pad", "4x50", "conv(8, 5, stride=2, pad=1)", lambda: nn.Conv1d(4, 8, 5, 2, 1)),
    case("conv", "1d-dilation", "3x40", "conv(6, 3, dilation=4, bias=false)",
         lambda: nn.Conv1d(3, 6, 3, dilation=4, bias=False)),
    case("conv", "2d-basic", "3x32x32", "conv(16, 3, pad=1)", lambda: nn.Conv2d(3, 16, 3, padding=1)),
    case("conv", "2d-stride-pad-dilation", "3x31x29", "conv(6, 5, stride=3, pad=2, dilation=2)",
         lambda: nn.Conv2d(3, 6, 5, stride=3, padding=2, dilation=2)),
    case("conv", "2d-per-axis", "3x20x30", "conv(4, [3, 5], stride=[1, 2], pad=[1, 0], dilation=[2, 1])",
         lambda: nn.Conv2d(3, 4, (3, 5), stride=(1, 2), padding=(1, 0), dilation=(2, 1))),
    case("conv", "2d-same-even-kernel", "3x17x18", 'conv(4, 4, pad="same")',
         lambda: nn.Conv2d(3, 4, 4, padding="same")),
    case("conv", "2d-same-dilated", "3x9x11", 'conv(5, [3, 2], pad="same", dilation=3)',
         lambda: nn.Conv2d(3, 5, (3, 2), padding="same", dilation=3)),
    case("conv", "2d-valid", "3x12x12", 'conv(4, 3, stride=2, pad="valid")',
         lambda: nn.Conv2d(3, 4, 3, stride=2, padding="valid")),
    case("conv", "2d-groups", "8x16x16", "conv(12, 3, pad=1, groups=4)",
         lambda: nn.Conv2d(8, 12, 3, padding=1, groups=4)),
    case("conv", "2d-depthwise-groups", "8x16x16", "conv(16, 3, groups=8, bias=false)",
         lambda: nn.Conv2d(8, 16, 3, groups=8, bias=False)),
    case("conv", "2d-no-bias", "3x224x224", "conv(64, 7, stride=2, pad=3, bias=false)",
         lambda: nn.Conv2d(3, 64, 7, 2, 3, bias=False)),
    case("conv", "2d-pad-value", "1x16x16", "conv(4, 5, pad=2, pad_value=-1)",
         lambda: ConstPadConv2d(1, 4, 5, pad=2, value=-1.0)),
    # untied biases (LeCun 1989): one bias per output position, so the bias has the output's shape
    case("conv", "2d-untied-bias", "1x16x16", 'conv(12, 5, stride=2, pad=2, bias="untied")',
         lambda: Ref(nn.Conv2d(1, 12, 5, 2, 2, bias=False), {"weight": (12, 1, 5, 5), "bias": (12, 8, 8)})),
    # a partial connection table: the weight holds one kernel per connection (LeNet-5's C3, Table I);
    # the full conv gives the output shape, not the MACs
    case("conv", "2d-table", "6x14x14", f"conv(16, 5, table={LENET5_TABLE_I})",
         lambda: Ref(nn.Conv2d(6, 16, 5), {"weight": (60, 5, 5), "bias": (16,)}), macs=False),
    case("conv", "3d", "2x8x10x12", "conv(4, 3, stride=[1, 2, 2], pad=1)",
         lambda: nn.Conv3d(2, 4, 3, stride=(1, 2, 2), padding=1)),
    case("conv", "3d-dilation-groups", "4x9x9x9", "conv(8, [1, 3, 3], dilation=[1, 2, 1], groups=2)",
         lambda: nn.Conv3d(4, 8, (1, 3, 3), dilation=(1, 2, 1), groups=2)),
    # ---- dwconv
    case("dwconv", "2d", "8x16x16", "dwconv(3, pad=1)", lambda: nn.Conv2d(8, 8, 3, padding=1, groups=8)),
    case("dwconv", "2d-multiplier", "4x15x15", "dwconv(5, stride=2, pad=2, multiplier=2, bias=false)",
         lambda: nn.Conv2d(4, 8, 5, 2, 2, groups=4, bias=False)),
    case("dwconv", "1d-dilation", "6x40", "dwconv(3, dilation=2)", lambda: nn.Conv1d(6, 6, 3, dilation=2, groups=6)),
    case("dwconv", "2d-same", "6x13x13", 'dwconv(5, pad="same")', lambda: nn.Conv2d(6, 6, 5, padding="same", groups=6)),
    # ---- max pooling: overlapping, padding, dilation, ceil mode (including a dropped last window)
    case("maxpool", "2d", "3x32x32", "maxpool(2)", lambda: nn.MaxPool2d(2)),
    case("maxpool", "2d-overlapping", "96x55x55", "maxpool(3, stride=2)", lambda: nn.MaxPool2d(3, 2)),
    case("maxpool", "2d-pad", "64x112x112", "maxpool(3, stride=2, pad=1)", lambda: nn.MaxPool2d(3, 2, 1)),
    case("maxpool", "2d-ceil", "3x6x6", "maxpool(3, stride=2, ceil_mode=true)",
         lambda: nn.MaxPool2d(3, 2, ceil_mode=True)),
    # size 5, kernel 2, stride 2, pad 1: ceil((5 + 2 - 2) / 2) + 1 = 4 windows, but the 4th would start in
    # the right padding, and PyTorch drops it: 3 (and 7 -> 4 rather than 5)
    case("maxpool", "2d-ceil-drops-last-window", "3x5x7", "maxpool(2, stride=2, pad=1, ceil_mode=true)",
         lambda: nn.MaxPool2d(2, 2, 1, ceil_mode=True)),
    case("maxpool", "2d-dilation", "2x20x20", "maxpool(3, stride=1, pad=1, dilation=2)",
         lambda: nn.MaxPool2d(3, 1, 1, dilation=2)),
    case("maxpool", "2d-per-axis", "2x20x21", "maxpool([2, 3], stride=[2, 1], pad=[1, 0])",
         lambda: nn.MaxPool2d((2, 3), (2, 1), (1, 0))),
    case("maxpool", "1d-ceil", "4x33", "maxpool(3, stride=2, ceil_mode=true)",
         lambda: nn.MaxPool1d(3, 2, ceil_mode=True)),
    case("maxpool", "1d-ceil-drops-last-window", "4x4", "maxpool(1, stride=2, ceil_mode=true)",
         lambda: nn.MaxPool1d(1, 2, ceil_mode=True)),
    case("maxpool", "3d", "2x8x9x10", "maxpool(2, pad=1)", lambda: nn.MaxPool3d(2, padding=1)),
    # ---- average pooling
    case("avgpool", "2d", "3x32x32", "avgpool(2)", lambda: nn.AvgPool2d(2)),
    case("avgpool", "2d-stride-pad-exclude", "3x17x17", "avgpool(3, stride=2, pad=1, count_include_pad=false)",
         lambda: nn.AvgPool2d(3, 2, 1, count_include_pad=False)),
    case("avgpool", "2d-ceil-drops-last-window", "3x5x7", "avgpool(2, stride=2, pad=1, ceil_mode=true)",
         lambda: nn.AvgPool2d(2, 2, 1, ceil_mode=True)),
    case("avgpool", "2d-ceil", "3x10x11", "avgpool(3, stride=2, ceil_mode=true)",
         lambda: nn.AvgPool2d(3, 2, ceil_mode=True)),
    case("avgpool", "1d", "4x30", "avgpool(4, stride=3)", lambda: nn.AvgPool1d(4, 3)),
    case("avgpool", "3d-ceil", "2x7x8x9", "avgpool(2, ceil_mode=true)", lambda: nn.AvgPool3d(2, ceil_mode=True)),
    # ---- adaptive and global pooling
    case("adaptive_avgpool", "2d-per-axis", "3x13x17", "adaptive_avgpool([5, 3])",
         lambda: nn.AdaptiveAvgPool2d((5, 3))),
    case("adaptive_avgpool", "2d", "512x14x14", "adaptive_avgpool(7)", lambda: nn.AdaptiveAvgPool2d(7)),
    case("adaptive_avgpool", "1d", "4x30", "adaptive_avgpool(4)", lambda: nn.AdaptiveAvgPool1d(4)),
    case("adaptive_avgpool", "3d", "2x6x7x8", "adaptive_avgpool([1, 2, 3])", lambda: nn.AdaptiveAvgPool3d((1, 2, 3))),
    case("adaptive_maxpool", "2d", "3x13x17", "adaptive_maxpool(4)", lambda: nn.AdaptiveMaxPool2d(4)),
    case("adaptive_maxpool", "1d", "3x50", "adaptive_maxpool(6)", lambda: nn.AdaptiveMaxPool1d(6)),
    case("global_avgpool", "2d", "512x7x7", "global_avgpool", lambda: nn.AdaptiveAvgPool2d(1)),
    case("global_avgpool", "1d", "16x9", "global_avgpool", lambda: nn.AdaptiveAvgPool1d(1)),
    case("global_avgpool", "3d", "8x3x4x5", "global_avgpool", lambda: nn.AdaptiveAvgPool3d(1)),
    # LeNet's subsampling: the window's sum times a learned coefficient, plus a learned bias, per map
    # ---- ConvNeXt: channels moved last and back, layer norm over channels, layer scale
    case("channels_last", "2d", "6x4x5", "channels_last", lambda: Ref(lambda x: x.permute(0, 2, 3, 1))),
    case("channels_last", "3d", "2x3x4x5", "channels_last", lambda: Ref(lambda x: x.permute(0, 2, 3, 4, 1)),
         tokens=False),
    Case("channels_first", "2d", {"x": "6x4x5"}, "x -> channels_last -> t: channels_first",
         lambda: Ref(lambda x: x)),
    Case("linear", "channels-last", {"x": "6x4x5"}, "x -> channels_last -> t: linear(10)",
         lambda: Ref(nn.Sequential(torchvision.ops.Permute([0, 2, 3, 1]), nn.Linear(6, 10)),
                     {"weight": (10, 6), "bias": (10,)})),
    case("layernorm2d", "convnext", "6x4x5", "layernorm2d", lambda: convnext_layernorm2d(6)),
    case("layer_scale", "convnext", "6x4x5", "layer_scale(0.5)",
         lambda: Ref(lambda x: x * 0.5, {"": (6, 1, 1)})),
    # ---- Swin: shifted-window attention and patch merging on channels-last maps
    Case("window_attention", "shifted", {"x": "8x14x14"}, "x -> channels_last -> t: window_attention(2, 7, 3)",
         lambda: swin_attention(8, 7, 3, 2), tokens=False),
    Case("window_attention", "padded-no-shift", {"x": "8x9x10"}, "x -> channels_last -> t: window_attention(4, 4)",
         lambda: swin_attention(8, 4, 0, 4), tokens=False),
    Case("window_attention", "one-window-no-bias", {"x": "6x5x5"},
         "x -> channels_last -> t: window_attention(3, 7, 3, qkv_bias=false, proj_bias=false)",
         lambda: swin_attention(6, 7, 3, 3, qkv_bias=False, proj_bias=False), tokens=False),
    Case("window_attention", "v2-cosine", {"x": "8x12x12"},
         "x -> channels_last -> t: window_attention(2, 8, 4, cosine=true)",
         lambda: swin_attention(8, 8, 4, 2, version=2), tokens=False),
    Case("window_attention", "video-shifted-clipped", {"x": "6x4x9x9"},
         "x -> channels_last -> t: window_attention(3, [8, 7, 7], [4, 3, 3])",
         lambda: swin_attention_3d(6, [8, 7, 7], [4, 3, 3], 3), tokens=False),
    Case("patch_merge", "video", {"x": "4x2x5x6"}, "x -> channels_last -> t: patch_merge",
         lambda: Ref(lambda x: swin_patch_merge(x, video=True)), tokens=False),
    Case("patch_merge", "odd", {"x": "4x5x6"}, "x -> channels_last -> t: patch_merge",
         lambda: Ref(swin_patch_merge), tokens=False),
    # ---- MaxViT: attention within a window or a grid partition, on channels-last maps
    Case("partition_attention", "window", {"x": "8x14x14"}, "x -> channels_last -> t: partition_attention(2, 7)",
         lambda: maxvit_attention(8, 2, 7, "window"), tokens=False),
    Case("partition_attention", "grid", {"x": "8x14x14"},
         'x -> channels_last -> t: partition_attention(2, 7, "grid")',
         lambda: maxvit_attention(8, 2, 7, "grid"), tokens=False),
    Case("partition_attention", "grid-size-2", {"x": "16x8x8"},
         'x -> channels_last -> t: partition_attention(4, 2, partition="grid")',
         lambda: maxvit_attention(16, 4, 2, "grid"), tokens=False),
    # ---- upsampling, transposed convolution, pixel shuffle, crop (encoder-decoders)
    case("upsample", "nearest", "3x5x7", "upsample(scale=2)", lambda: nn.Upsample(scale_factor=2)),
    case("upsample", "nearest-size", "3x5x7", "upsample(size=[12, 9])", lambda: nn.Upsample(size=(12, 9))),
    case("upsample", "bilinear", "3x6x5", 'upsample(scale=[2, 3], mode="bilinear")',
         lambda: nn.Upsample(scale_factor=(2, 3), mode="bilinear", align_corners=False)),
    case("upsample", "bilinear-corners", "3x6x5", 'upsample(size=[11, 13], mode="bilinear", align_corners=true)',
         lambda: nn.Upsample(size=(11, 13), mode="bilinear", align_corners=True)),
    case("upsample", "trilinear", "2x3x4x5", 'upsample(scale=2, mode="trilinear")',
         lambda: nn.Upsample(scale_factor=2, mode="trilinear", align_corners=False)),
    case("conv_transpose", "unet", "8x6x6", "conv_transpose(4, 2, stride=2)",
         lambda: nn.ConvTranspose2d(8, 4, 2, stride=2)),
    case("conv_transpose", "pad-output-pad", "6x5x7", "conv_transpose(4, 3, stride=2, pad=1, output_pad=1)",
         lambda: nn.ConvTranspose2d(6, 4, 3, stride=2, padding=1, output_padding=1)),
    case("conv_transpose", "groups-dilation", "4x5x5",
         "conv_transpose(6, 3, stride=2, dilation=2, groups=2, bias=false)",
         lambda: nn.ConvTranspose2d(4, 6, 3, stride=2, dilation=2, groups=2, bias=False)),
    case("conv_transpose", "1d", "3x10", "conv_transpose(5, 4, stride=3)", lambda: nn.ConvTranspose1d(3, 5, 4, 3)),
    case("conv_transpose", "3d", "2x3x4x4", "conv_transpose(3, [1, 2, 2], stride=[1, 2, 2])",
         lambda: nn.ConvTranspose3d(2, 3, (1, 2, 2), stride=(1, 2, 2))),
    case("pixel_shuffle", "2d", "12x4x5", "pixel_shuffle(2)", lambda: nn.PixelShuffle(2)),
    case("pixel_unshuffle", "2d", "3x6x9", "pixel_unshuffle(3)", lambda: nn.PixelUnshuffle(3)),
    Case("crop", "unet", {"x": "4x12x13", "z": "2x8x8"}, "t: crop(x, z)",
         lambda: Ref(lambda x, z: x[:, :, 2:10, 2:10])),
    case("subsample", "2d", "6x28x28", "subsample(2)",
         lambda: Ref(lambda x: F.avg_pool2d(x, 2) * 4, {"weight": (6,), "bias": (6,)})),
    case("subsample", "2d-stride", "4x11x11", "subsample(3, stride=2)",
         lambda: Ref(lambda x: F.avg_pool2d(x, 3, 2) * 9, {"weight": (4,), "bias": (4,)})),
    # ---- normalisation
    case("batchnorm", "2d", "16x8x8", "batchnorm", lambda: nn.BatchNorm2d(16)),
    case("batchnorm", "1d", "16x20", "batchnorm(eps=0.001, momentum=0.01)", lambda: nn.BatchNorm1d(16)),
    case("batchnorm", "3d", "4x3x5x5", "batchnorm", lambda: nn.BatchNorm3d(4)),
    case("batchnorm", "vector", "32", "batchnorm", lambda: nn.BatchNorm1d(32)),
    case("layernorm", "tokens", "tokens 10x16", "layernorm", lambda: nn.LayerNorm(16)),
    case("layernorm", "last-axis", "3x8x6", "layernorm(eps=0.000001)", lambda: nn.LayerNorm(6)),
    case("lrn", "alexnet", "96x55x55", "lrn(5, alpha=0.0001, beta=0.75, k=2)",
         lambda: nn.LocalResponseNorm(5, 1e-4, 0.75, 2)),
    # ---- regularisation and identity
    case("dropout", "default", "3x8x8", "dropout", lambda: nn.Dropout()),
    case("dropout", "p", "tokens 5x8", "dropout(0.1)", lambda: nn.Dropout(0.1)),
    case("stochastic_depth", "row", "8x4x4", "stochastic_depth(0.2)",
         lambda: torchvision.ops.StochasticDepth(0.2, "row")),
    case("stochastic_depth", "batch", "8x4x4", 'stochastic_depth(0.2, mode="batch")',
         lambda: torchvision.ops.StochasticDepth(0.2, "batch")),
    case("identity", "2d", "3x8x8", "identity", lambda: nn.Identity()),
    # ---- activations
    case("relu", "2d", "3x8x8", "relu", lambda: nn.ReLU()),
    case("relu6", "2d", "3x8x8", "relu6", lambda: nn.ReLU6()),
    case("leaky_relu", "slope", "3x8x8", "leaky_relu(slope=0.2)", lambda: nn.LeakyReLU(0.2)),
    case("tanh", "vector", "84", "tanh", lambda: nn.Tanh()),
    case("scaled_tanh", "lenet5", "6x28x28", "scaled_tanh", lambda: (lambda x: 1.7159 * torch.tanh(2 / 3 * x))),
    case("sigmoid", "2d", "3x8x8", "sigmoid", lambda: nn.Sigmoid()),
    case("hardsigmoid", "2d", "3x8x8", "hardsigmoid", lambda: nn.Hardsigmoid()),
    case("silu", "2d", "3x8x8", "silu", lambda: nn.SiLU()),
    case("swish", "alias", "3x8x8", "swish", lambda: nn.SiLU()),
    case("hardswish", "2d", "3x8x8", "hardswish", lambda: nn.Hardswish()),
    case("gelu", "tokens", "tokens 5x8", "gelu", lambda: nn.GELU()),
    case("softmax", "vector", "10", "softmax", lambda: nn.Softmax(dim=-1)),
    case("softmax", "axis", "10x4", "softmax(axis=0)", lambda: nn.Softmax(dim=1)),
    case("softmax", "negative-axis", "3x4x5", "softmax(axis=-2)", lambda: nn.Softmax(dim=-2)),
    # ---- reshaping, fully connected
    case("flatten", "2d", "3x4x5", "flatten", lambda: nn.Flatten()),
    case("flatten", "3d", "2x3x4x5", "flatten", lambda: nn.Flatten()),
    case("linear", "vector", "120", "linear(84)", lambda: nn.Linear(120, 84)),
    case("linear", "tokens", "tokens 7x16", "linear(32, bias=false)", lambda: nn.Linear(16, 32, bias=False)),
    case("channel_shuffle", "2d", "12x4x4", "channel_shuffle(3)", lambda: nn.ChannelShuffle(3)),
    case("slice", "channels", "8x4x4", "slice(2, 6)", lambda: (lambda x: x[:, 2:6])),
    case("slice", "axis", "8x4x5", "slice(1, axis=2)", lambda: (lambda x: x[:, :, :, 1:])),
    case("slice", "tokens", "tokens 17x8", "slice(0, 1)", lambda: (lambda x: x[:, 0:1])),
    # select: an index along an axis, which goes away (torch's indexing); negative indexes as Python's
    case("select", "class-token", "tokens 17x8", "select(0)", lambda: (lambda x: x[:, 0]), tokens=False),
    case("select", "last-token", "tokens 17x8", "select(-1)", lambda: (lambda x: x[:, -1]), tokens=False),
    case("select", "feature", "tokens 5x8", "select(-3, axis=1)", lambda: (lambda x: x[:, :, -3]), tokens=False),
    case("select", "channel", "6x7", "select(2)", lambda: (lambda x: x[:, 2])),
    case("select", "position", "6x7", "select(6, axis=1)", lambda: (lambda x: x[:, :, 6])),
    # ---- merges: add, mul (broadcasting), concat
    Case("add", "two", {"x": "8x4x4", "z": "8x4x4"}, "t: add(x, z)", lambda: torch.add),
    Case("add", "operator", {"x": "tokens 5x8", "z": "tokens 5x8"}, "t: x + z", lambda: torch.add),
    Case("add", "three", {"x": "4x6", "z": "4x6", "w": "4x6"}, "t: add(x, z, w)", lambda: (lambda a, b, c: a + b + c)),
    Case("mul", "se-scale", {"x": "8x4x4", "z": "8x1x1"}, "t: x * z", lambda: broadcast_mul),
    Case("mul", "rank-broadcast", {"x": "8x4x5", "z": "5"}, "t: mul(x, z)", lambda: broadcast_mul),
    Case("mul", "both-broadcast", {"x": "8x1x5", "z": "1x4x1"}, "t: mul(x, z)", lambda: broadcast_mul),
    Case("concat", "channels", {"x": "3x4x4", "z": "5x4x4"}, "t: concat([x, z])",
         lambda: (lambda a, b: torch.cat([a, b], 1))),
    Case("concat", "axis", {"x": "3x4x4", "z": "3x2x4"}, "t: concat(x, z, axis=1)",
         lambda: (lambda a, b: torch.cat([a, b], 2))),
    Case("concat", "tokens", {"x": "tokens 1x8", "z": "tokens 16x8"}, "t: concat([x, z])",
         lambda: (lambda a, b: torch.cat([a, b], 1))),
    # ---- composite layers, laid out as torchvision's
    case("se", "torchvision", "16x8x8", "se(4)", lambda: torchvision.ops.SqueezeExcitation(16, 4)),
    case("se", "silu-hardsigmoid", "24x5x5", 'se(8, activation="silu", gate="hardsigmoid")',
         lambda: torchvision.ops.SqueezeExcitation(24, 8, nn.SiLU, nn.Hardsigmoid)),
    case("mlp", "vit-block", "tokens 10x16", "mlp(32)", lambda: MLPBlock(16, 32, 0.0)),
    case("mlp", "vector-out", "16", 'mlp(32, out=8, activation="relu", dropout=0.1)',
         lambda: torchvision.ops.MLP(16, [32, 8], activation_layer=nn.ReLU, dropout=0.1)),
    case("rbf", "lenet5", "84", "rbf(10)", lambda: rbf_ref(84, 10)),
    # ---- vision transformer
    case("patch_embed", "vit", "3x32x32", "patch_embed(48, 8)", lambda: PatchEmbed(3, 48, 8), tokens=True),
    case("patch_embed", "rectangular", "3x16x24", "patch_embed(20, 4)", lambda: PatchEmbed(3, 20, 4), tokens=True),
    case("class_token", "vit", "tokens 16x48", "class_token",
         lambda: Ref(lambda x: torch.cat([torch.zeros(x.shape[0], 1, x.shape[2]), x], 1), {"": (1, 1, 48)})),
    case("pos_embedding", "vit", "tokens 17x48", "pos_embedding",
         lambda: Ref(lambda x: x + torch.zeros(1, 17, 48), {"": (1, 17, 48)})),
    case("attention", "heads", "tokens 10x16", "attention(4)", lambda: SelfAttention(16, 4, batch_first=True)),
    case("attention", "no-bias", "tokens 7x12", "attention(3, dropout=0.1, bias=false)",
         lambda: SelfAttention(12, 3, dropout=0.1, bias=False, batch_first=True)),
    # ---- MViT: tokens of a video grid, pooled residuals, pooling attention (torchvision's modules)
    case("spacetime_tokens", "mvit-v1", "8x2x3x4", "spacetime_tokens", lambda: mvit_tokens(8, 2, 3, 4, True),
         tokens=True),
    case("spacetime_tokens", "no-positions", "8x3x2x2", "spacetime_tokens(positions=false)",
         lambda: mvit_tokens(8, 3, 2, 2, False), tokens=True),
    case("token_pool", "pool-skip", "tokens 25x8", "token_pool([2, 3, 4], [1, 3, 3], stride=[1, 2, 2], pad=[0, 1, 1])",
         lambda: mvit_pool_skip((2, 3, 4), [1, 3, 3], [1, 2, 2])),
    case("pool_attention", "v1-pooled", "tokens 129x16",
         "pool_attention(2, [2, 8, 8], kernel_q=3, stride_q=[1, 2, 2], kernel_kv=3, stride_kv=[1, 4, 4])",
         lambda: mvit_attention((2, 8, 8), 16, 16, 2, [3, 3, 3], [1, 2, 2], [3, 3, 3], [1, 4, 4])),
    case("pool_attention", "v2-relative-residual-wider", "tokens 129x16",
         "pool_attention(2, [2, 8, 8], out=32, kernel_q=3, kernel_kv=3, stride_kv=[1, 2, 2], residual_pool=true, "
         "rel_pos=true)",
         lambda: mvit_attention((2, 8, 8), 16, 32, 2, [3, 3, 3], [1, 1, 1], [3, 3, 3], [1, 2, 2], v2=True)),
    case("pool_attention", "unpooled", "tokens 7x16", "pool_attention(4, [1, 2, 3])",
         lambda: mvit_attention((1, 2, 3), 16, 16, 4, [], [], [], [])),
]


def test_every_op_and_alias_has_cases():
    named = {c.op for c in CASES}
    missing = sorted((set(REGISTRY) | set(ALIASES)) - named)
    assert not missing, f"ops without a case in CASES: {missing}"


@pytest.mark.parametrize("op", sorted(REGISTRY))
def test_op_has_cases(op):
    assert any(ALIASES.get(c.op, c.op) == op for c in CASES), f"op '{op}' has no case in tests/test_ops.py CASES"


@pytest.mark.parametrize("c", CASES, ids=[f"{c.op}-{c.id}" for c in CASES])
def test_op_against_torch(tmp_path, c: Case):
    net, totals = build(tmp_path, c.inputs, c.expr)
    node = net.node("t")
    assert node["op"] == ALIASES.get(c.op, c.op)
    shapes = [parse_shape(s) for s in c.inputs.values()]
    ref = as_ref(c.ref())
    if isinstance(ref.forward, nn.Module):
        ref.forward.eval()
    xs = [torch.randn(2, *shape) for shape, _ in shapes]
    with torch.no_grad():
        out = ref.forward(*xs)
    # shape (without the batch) and kind
    assert node["type"].shape == tuple(out.shape[1:])
    assert node["type"].tokens == (shapes[0][1] if c.tokens is None else c.tokens)
    # parameters and buffers: names (relative to the node) and shapes, as torch names them
    by_kind = {kind: {p.name: p.shape for p in node["params"] if p.kind == kind}
               for kind in ("trainable", "fixed", "buffer")}
    assert by_kind["trainable"] == ref.params
    assert by_kind["fixed"] == ref.fixed
    assert by_kind["buffer"] == ref.buffers
    assert params_of(node) == sum(math.prod(s) for s in [*ref.params.values(), *ref.fixed.values()])
    # the network's totals are this node's (the inputs own nothing)
    assert totals["trainable_params"] == sum(math.prod(s) for s in ref.params.values())
    assert totals["fixed_params"] == sum(math.prod(s) for s in ref.fixed.values())
    assert totals["buffers"] == sum(math.prod(s) for s in ref.buffers.values())
    # MACs per sample, as torch's flop counter counts them on a batch of one
    if c.macs:
        assert node["macs"] == torch_macs(ref.forward, *[x[:1] for x in xs])
    assert isinstance(node["flops"], int) and node["flops"] >= node["macs"] >= 0
    assert node["bytes"] == 4 * math.prod(node["type"].shape)


def test_state_dict_keys_follow_node_names(tmp_path):
    # a parameter's state_dict key is f"{node}.{param}", or the node's own name when the param name is ""
    net, _ = build(tmp_path, {"x": "3x32x32"},
                   "x -> conv_proj: patch_embed(48, 8) -> class_token: class_token -> pos: pos_embedding "
                   "-> ln: layernorm -> mlp: mlp(96)")
    keys = {f"{n['name']}.{p.name}" if p.name else n["name"] for n in net.nodes() for p in n["params"]}
    assert keys == {"conv_proj.weight", "conv_proj.bias", "class_token", "pos", "ln.weight", "ln.bias",
                    "mlp.0.weight", "mlp.0.bias", "mlp.3.weight", "mlp.3.bias"}


# ---------------------------------------------------------------- conv: textbook formulas


def conv_out(n, k, s=1, p=0, d=1):
    """Output size of a convolution (Dumoulin & Visin 2016, relationship 15): floor((n + 2p - d(k-1) - 1)/s) + 1."""
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


@pytest.mark.parametrize("cin, size, out, k, s, p, d, g, bias", [
    (3, (224, 224), 64, 7, 2, 3, 1, 1, False),  # ResNet's stem
    (1, (28,), 20, 5, 1, 0, 1, 1, True),
    (16, (17, 19), 32, 3, 2, 1, 2, 4, True),
    (6, (9, 8, 7), 12, 3, 1, 1, 1, 3, True),
    (32, (14, 14), 32, 3, 1, 1, 1, 32, False),  # depthwise
    (8, (31,), 4, 4, 3, 0, 3, 2, True),
])
def test_conv_shape_params_macs_against_formulas(tmp_path, cin, size, out, k, s, p, d, g, bias):
    shape = "x".join(map(str, (cin, *size)))
    node = op_node(tmp_path, shape, f"conv({out}, {k}, stride={s}, pad={p}, dilation={d}, groups={g}, "
                                    f"bias={'true' if bias else 'false'})")
    spatial = tuple(conv_out(n, k, s, p, d) for n in size)
    assert node["type"].shape == (out, *spatial)
    kernel = k ** len(size)
    assert params_of(node) == out * (cin // g) * kernel + (out if bias else 0)
    assert node["macs"] == math.prod(spatial) * out * (cin // g) * kernel
    assert node["flops"] == 2 * node["macs"] + (out * math.prod(spatial) if bias else 0)  # conv's flops_doc
    rf = node["rf"]
    assert rf == ReceptiveField((d * (k - 1) + 1,) * len(size), (s,) * len(size), (p,) * len(size))


def test_same_padding_keeps_the_size_and_puts_the_extra_on_the_right(tmp_path):
    # total padding d(k-1) = 3 for k=4: 1 left, 2 right, as PyTorch's padding="same"
    node = op_node(tmp_path, "2x10x11", 'conv(3, 4, pad="same")')
    assert node["type"].shape == (3, 10, 11)
    assert node["rf"].padding == (1, 1) and node["rf"].size == (4, 4)
    x = torch.zeros(1, 2, 10, 11)
    x[0, :, 0, 0] = 1  # the top-left input pixel feeds output (0, 0) through kernel tap (1, 1): left pad 1
    conv = nn.Conv2d(2, 1, 4, padding="same", bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, :, 1, 1] = 1
        assert conv(x)[0, 0, 0, 0] == 2


def test_lecun_1989_h1_untied_biases(tmp_path):
    # LeCun et al. 1989, "Backpropagation Applied to Handwritten Zip Code Recognition": H1 is 12 maps of
    # 8x8 from the 16x16 input with 5x5 kernels at stride 2; "1068 free parameters" (768 biases, one per
    # unit, + 12 x 25 shared weights) and 19,968 connections (768 units x 26 inputs incl. the bias).
    node = op_node(tmp_path, "1x16x16", 'conv(12, 5, stride=2, pad=2, bias="untied", pad_value=-1)')
    assert node["type"].shape == (12, 8, 8)
    assert params_of(node) == 1068
    assert node["macs"] + math.prod(node["type"].shape) == 19_968


def test_lenet5_c3_connection_table_figures(tmp_path):
    # LeCun et al. 1998, Section II.B: "Layer C3 has 1,516 trainable parameters and 151,600 connections"
    node = op_node(tmp_path, "6x14x14", f"conv(16, 5, table={LENET5_TABLE_I})")
    assert node["type"].shape == (16, 10, 10)
    assert params_of(node) == 1516
    assert node["macs"] + math.prod(node["type"].shape) == 151_600


def test_connection_table_equals_masked_full_conv(tmp_path):
    # a table conv computes what a full conv does with the absent connections' kernels zeroed: same output
    # shape, and MACs = connections x kernel x output positions (the torch count of the full conv, scaled)
    table = [[0], [0, 1], [1, 2], [0, 1, 2]]
    node = op_node(tmp_path, "3x9x9", f"conv(4, 3, table={table})")
    full = nn.Conv2d(3, 4, 3)
    macs_full = torch_macs(full, torch.randn(1, 3, 9, 9))
    connections = sum(len(r) for r in table)
    assert node["macs"] == macs_full * connections // (4 * 3)
    assert params_of(node) == connections * 9 + 4


def test_dwconv_equals_conv_with_groups_equal_channels(tmp_path):
    a = op_node(tmp_path, "12x20x20", "dwconv(3, stride=2, pad=1, multiplier=3)", "a")
    b = op_node(tmp_path, "12x20x20", "conv(36, 3, stride=2, pad=1, groups=12)", "b")
    assert a["type"] == b["type"] and a["macs"] == b["macs"] and params_of(a) == params_of(b)
    assert a["rf"] == b["rf"]
    assert params_of(a) == numel(nn.Conv2d(12, 36, 3, 2, 1, groups=12))


# ---------------------------------------------------------------- pooling: formulas and fields


def torch_pool_size(n, k, s, p, d, ceil_mode):
    """PyTorch's documented rule (nn.MaxPool1d): floor or ceil of (n + 2p - d(k-1) - 1)/s, plus 1, where
    in ceil mode a window that would start in the right padding is dropped."""
    rounding = math.ceil if ceil_mode else math.floor
    out = rounding((n + 2 * p - d * (k - 1) - 1) / s) + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


@pytest.mark.parametrize("k, s, p, d", [(2, 2, 0, 1), (2, 2, 1, 1), (3, 2, 1, 1), (3, 3, 1, 1), (1, 2, 0, 1),
                                        (4, 3, 2, 1), (3, 2, 1, 2), (2, 3, 1, 3)])
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_pool_output_size_matches_torch(tmp_path, k, s, p, d, ceil_mode):
    cm = "true" if ceil_mode else "false"
    layers = [f"m{n}: maxpool({k}, stride={s}, pad={p}, dilation={d}, ceil_mode={cm})" for n in range(3, 13)]
    if d == 1:
        layers += [f"a{n}: avgpool({k}, stride={s}, pad={p}, ceil_mode={cm})" for n in range(3, 13)]
    # one network, one input per size
    path = tmp_path / "pools.cnn"
    decls = "\n".join(f"    input x{n}: 2x{n}" for n in range(3, 13))
    outs = "\n".join(f"    output o{layer[1:layer.index(':')]}{layer[0]} = x{layer[1:layer.index(':')]} -> {layer}"
                      for layer in layers)
    path.write_text(f"network pools() {{\n{decls}\n{outs}\n}}\n")
    net = cnndsl.load(str(path))
    for n in range(3, 13):
        x = torch.randn(1, 2, n)
        real = F.max_pool1d(x, k, s, p, dilation=d, ceil_mode=ceil_mode).shape[-1]
        assert net.node(f"m{n}")["type"].shape == (2, real) == (2, torch_pool_size(n, k, s, p, d, ceil_mode)), n
        if d == 1:
            assert net.node(f"a{n}")["type"].shape == (2, F.avg_pool1d(x, k, s, p, ceil_mode=ceil_mode).shape[-1]), n


def test_ceil_mode_drops_the_window_that_starts_in_the_padding(tmp_path):
    # naive ceil((5 + 2 - 2) / 2) + 1 = 4; PyTorch gives 3
    node = op_node(tmp_path, "1x5x5", "maxpool(2, stride=2, pad=1, ceil_mode=true)")
    assert math.ceil((5 + 2 * 1 - 2) / 2) + 1 == 4
    real = nn.MaxPool2d(2, 2, 1, ceil_mode=True)(torch.randn(1, 1, 5, 5))
    assert node["type"].shape == (1, 3, 3) == tuple(real.shape[1:])


def test_pool_stride_defaults_to_kernel_and_rf(tmp_path):
    node = op_node(tmp_path, "4x27x27", "maxpool(3, pad=1, dilation=2)")
    assert node["attrs"]["stride"] == (3, 3)
    assert node["type"].shape == tuple(nn.MaxPool2d(3, padding=1, dilation=2)(torch.randn(1, 4, 27, 27)).shape[1:])
    assert node["rf"] == ReceptiveField((5, 5), (3, 3), (1, 1))
    assert node["macs"] == 0 and params_of(node) == 0 and node["flops"] == math.prod(node["type"].shape) * 9


def test_adaptive_pool_receptive_fields(tmp_path):
    # divisible: windows of size/out at stride size/out; out 1: global; uneven: the largest window,
    # marked inexact (PyTorch's windows are [floor(i n/o), ceil((i+1) n/o)))
    even = op_node(tmp_path, "3x12x12", "adaptive_avgpool(4)", "a")
    assert even["rf"] == ReceptiveField((3, 3), (3, 3), (0, 0))
    one = op_node(tmp_path, "3x12x12", "adaptive_maxpool(1)", "b")
    assert one["rf"] == "global"
    uneven = op_node(tmp_path, "3x10", "adaptive_avgpool(4)", "c")
    windows = [math.ceil((i + 1) * 10 / 4) - (i * 10) // 4 for i in range(4)]  # 3, 3, 3, 3
    assert uneven["rf"].size == (max(windows),) and not uneven["rf"].exact
    assert params_of(even) == 0 and even["macs"] == 0


def test_global_avgpool_keeps_unit_axes_and_is_global(tmp_path):
    net, _ = build(tmp_path, {"x": "512x7x7"}, "x -> g: global_avgpool -> f: flatten -> fc: linear(1000)")
    assert net.node("g")["type"].shape == (512, 1, 1)
    assert net.node("f")["type"].shape == (512,)
    assert net.node("g")["rf"] == "global" and net.node("fc")["rf"] == "global"
    assert net.node("fc")["macs"] == 512 * 1000
    assert params_of(net.node("fc")) == numel(nn.Linear(512, 1000))


def test_lenet5_subsampling_figures(tmp_path):
    # LeCun et al. 1998: "Layer S2 has 12 trainable parameters and 5,880 connections" (6 maps 14x14, each
    # unit sums 4 inputs and adds a bias); S4 (16 maps of 5x5) has 32 trainable parameters
    s2 = op_node(tmp_path, "6x28x28", "subsample(2)", "s2")
    assert s2["type"].shape == (6, 14, 14) and params_of(s2) == 12
    assert math.prod(s2["type"].shape) * (4 + 1) == 5_880
    s4 = op_node(tmp_path, "16x10x10", "subsample(2)", "s4")
    assert s4["type"].shape == (16, 5, 5) and params_of(s4) == 32
    assert s4["rf"] == ReceptiveField((2, 2), (2, 2), (0, 0))


# ---------------------------------------------------------------- normalisation counts


@pytest.mark.parametrize("shape, module", [
    ("64x56x56", lambda: nn.BatchNorm2d(64)),
    ("10x30", lambda: nn.BatchNorm1d(10)),
    ("5x4x4x4", lambda: nn.BatchNorm3d(5)),
])
def test_batchnorm_statistics_are_buffers(tmp_path, shape, module):
    # as PyTorch counts them: weight and bias are parameters; running mean, variance and
    # num_batches_tracked are buffers
    node = op_node(tmp_path, shape, "batchnorm")
    m = module()
    assert params_of(node) == numel(m) == 2 * int(shape.split("x")[0])
    assert params_of(node, ("buffer",)) == sum(b.numel() for b in m.buffers())
    assert {p.name for p in node["params"]} == set(m.state_dict())


def test_layernorm_and_lrn_counts(tmp_path):
    ln = op_node(tmp_path, "tokens 197x768", "layernorm", "ln")
    assert params_of(ln) == numel(nn.LayerNorm(768)) == 2 * 768
    lrn = op_node(tmp_path, "96x55x55", "lrn(5)", "lrn")
    assert params_of(lrn) == numel(nn.LocalResponseNorm(5)) == 0
    assert lrn["rf"] == ReceptiveField((1, 1), (1, 1), (0, 0))  # across channels: pointwise in space


# ---------------------------------------------------------------- linear, mlp, se, rbf


@pytest.mark.parametrize("shape, out, bias", [("120", 84, True), ("tokens 50x64", 128, False), ("9216", 4096, True)])
def test_linear_formulas(tmp_path, shape, out, bias):
    dims, tokens = parse_shape(shape)
    node = op_node(tmp_path, shape, f"linear({out}, bias={'true' if bias else 'false'})")
    positions = dims[0] if tokens else 1
    assert node["type"].shape == (*dims[:-1], out) and node["type"].tokens == tokens
    assert params_of(node) == dims[-1] * out + (out if bias else 0) == numel(nn.Linear(dims[-1], out, bias, "meta"))
    assert node["macs"] == positions * dims[-1] * out
    # an input vector or sequence has no spatial grid: no field to report
    assert node["rf"] is None


def test_flatten_then_linear_is_global(tmp_path):
    net, _ = build(tmp_path, {"x": "3x8x8"}, "x -> c: conv(4, 3) -> f: flatten -> t: linear(10)")
    assert net.node("c")["rf"] == ReceptiveField((3, 3), (1, 1), (0, 0))
    assert net.node("f")["rf"] is None  # no spatial axes left to describe
    assert net.node("t")["rf"] == "global"


def test_linear_on_a_map_needs_flatten(tmp_path):
    with pytest.raises(cnndsl.CnnError, match="flatten"):
        op_node(tmp_path, "3x4x4", "linear(10)")


def test_mlp_matches_torchvision_mlp_block_names_and_counts(tmp_path):
    # torchvision's ViT MLPBlock(in_dim, mlp_dim, dropout) is MLP(in_dim, [mlp_dim, in_dim]):
    # 0 linear, 1 GELU, 2 dropout, 3 linear, 4 dropout
    node = op_node(tmp_path, "tokens 197x768", "mlp(3072)")
    block = MLPBlock(768, 3072, 0.0)
    assert {p.name: p.shape for p in node["params"]} == {k: tuple(v.shape) for k, v in block.state_dict().items()}
    assert params_of(node) == numel(block)
    assert node["macs"] == 197 * 2 * 768 * 3072 == torch_macs(block, torch.randn(1, 197, 768))


def test_se_matches_torchvision_squeeze_excitation(tmp_path):
    # Hu et al. 2018: the SE block adds 2 C^2 / r parameters (plus biases here, as torchvision's 1x1 convs)
    c, r = 256, 16
    node = op_node(tmp_path, f"{c}x14x14", f"se({c // r})")
    se = torchvision.ops.SqueezeExcitation(c, c // r)
    assert {p.name: p.shape for p in node["params"]} == {k: tuple(v.shape) for k, v in se.state_dict().items()}
    assert params_of(node) == numel(se) == 2 * c * c // r + c // r + c
    assert node["macs"] == 2 * c * (c // r) == torch_macs(se, torch.randn(1, c, 14, 14))
    assert node["type"].shape == (c, 14, 14)
    # a gate: each position keeps its own 1x1 field, marked as also seeing the whole map
    assert node["rf"] == ReceptiveField((1, 1), (1, 1), (0, 0), global_gate=True)
    x = torch.randn(1, c, 14, 14, requires_grad=True)
    se(x)[0, :, 3, 4].sum().backward()
    assert bool((x.grad[0].abs().sum(0) != 0).all())  # every position reaches the output through the scale


def test_se_on_1d_maps_uses_kernel_one_convs(tmp_path):
    node = op_node(tmp_path, "16x10", "se(4)")
    assert {p.name: p.shape for p in node["params"]} == {
        "fc1.weight": tuple(nn.Conv1d(16, 4, 1).weight.shape), "fc1.bias": (4,),
        "fc2.weight": tuple(nn.Conv1d(4, 16, 1).weight.shape), "fc2.bias": (16,)}


def test_rbf_prototypes_are_fixed_parameters(tmp_path):
    # LeNet-5's output: 10 Euclidean RBF units over F6's 84 values; the prototypes are fixed by hand
    net, totals = build(tmp_path, {"x": "84"}, "x -> out: rbf(10)")
    assert totals["trainable_params"] == 0 and totals["fixed_params"] == 840 and totals["params"] == 840
    assert net.node("out")["macs"] == 840
    with pytest.raises(cnndsl.CnnError):
        build(tmp_path, {"x": "4x21"}, "x -> out: rbf(10)", "bad.cnn")


# ---------------------------------------------------------------- transformer ops


def test_attention_params_match_multihead_attention(tmp_path):
    n, d, h = 197, 768, 12
    node = op_node(tmp_path, f"tokens {n}x{d}", f"attention({h})")
    mha = nn.MultiheadAttention(d, h, batch_first=True)
    assert {p.name: p.shape for p in node["params"]} == {k: tuple(v.shape) for k, v in mha.named_parameters()}
    assert params_of(node) == numel(mha) == 4 * d * d + 4 * d


@pytest.mark.parametrize("n, d, h", [(197, 768, 12), (10, 16, 4), (50, 64, 1), (65, 192, 3)])
def test_attention_macs_formula(tmp_path, n, d, h):
    # Q, K, V and output projections: 4 N D^2; Q K^T and A V over all heads: 2 N^2 D
    node = op_node(tmp_path, f"tokens {n}x{d}", f"attention({h})")
    assert node["macs"] == 4 * n * d * d + 2 * n * n * d
    if n * d <= 10_000:
        assert node["macs"] == torch_macs(SelfAttention(d, h, batch_first=True), torch.randn(1, n, d))
    assert node["type"].shape == (n, d) and node["type"].tokens


def test_vit_b16_embedding_figures_against_torchvision(tmp_path):
    # ViT-B/16 (Dosovitskiy et al. 2020, Table 1: hidden size 768, 12 heads, MLP 3072) at 224x224:
    # 14 x 14 = 196 patches plus the class token = 197 tokens; torchvision names the parameters
    # conv_proj, class_token and encoder.pos_embedding
    net, _ = build(tmp_path, {"x": "3x224x224"},
                   "x -> conv_proj: patch_embed(768, 16) -> class_token: class_token -> pos: pos_embedding "
                   "-> attn: attention(12)")
    with torch.device("meta"):  # shapes only: vit_b_16's geometry with one encoder layer, no memory
        vit = torchvision.models.VisionTransformer(224, 16, num_layers=1, num_heads=12, hidden_dim=768, mlp_dim=3072)
    assert net.node("conv_proj")["type"].shape == (196, 768)
    assert {p.name: p.shape for p in net.node("conv_proj")["params"]} == {
        k: tuple(v.shape) for k, v in vit.conv_proj.named_parameters()}
    assert net.node("class_token")["params"][0].shape == tuple(vit.class_token.shape)
    assert net.node("pos")["params"][0].shape == tuple(vit.encoder.pos_embedding.shape)
    assert net.node("pos")["type"].shape == (197, 768)
    attn = vit.encoder.layers[0].self_attention
    assert params_of(net.node("attn")) == numel(attn)
    assert net.node("conv_proj")["macs"] == torch_macs(vit.conv_proj, torch.randn(1, 3, 224, 224, device="meta"))
    # the patch embedding's window is the patch; the attention sees everything
    assert net.node("attn")["rf"] == "global"


def test_token_ops_refuse_images_and_images_ops_refuse_tokens(tmp_path):
    for shape, layer in [("3x8x8", "class_token"), ("3x8x8", "pos_embedding"), ("3x8x8", "attention(1)"),
                         ("tokens 4x8", "patch_embed(8, 2)"), ("tokens 4x8", "lrn(3)"),
                         ("tokens 4x8", "conv(4, 1)"), ("tokens 4x8", "maxpool(2)"), ("tokens 4x8", "se(2)"),
                         ("tokens 4x8", "global_avgpool"), ("8", "conv(4, 1)"), ("8", "dwconv(3)")]:
        with pytest.raises(cnndsl.CnnError):
            op_node(tmp_path, shape, layer)


def test_batchnorm_refuses_tokens_at_elaboration(tmp_path):
    with pytest.raises(cnndsl.CnnError, match="layernorm"):
        op_node(tmp_path, "tokens 4x8", "batchnorm")


@pytest.mark.parametrize("layer, module", [("lrn(3)", lambda: nn.LocalResponseNorm(3)),
                                           ("channel_shuffle(2)", lambda: nn.ChannelShuffle(2))])
def test_channel_ops_refuse_flat_vectors_as_torch_does(tmp_path, layer, module):
    assert _refuses(lambda: module()(torch.randn(2, 8)))
    with pytest.raises(cnndsl.CnnError):
        op_node(tmp_path, "8", layer)


# the smallest valid arguments of each op, to apply it to inputs of every rank
MINIMAL_CALL = {"conv": "conv(4, 1)", "dwconv": "dwconv(1)", "maxpool": "maxpool(1)", "avgpool": "avgpool(1)",
                "adaptive_avgpool": "adaptive_avgpool(1)", "adaptive_maxpool": "adaptive_maxpool(1)",
                "subsample": "subsample(1)", "lrn": "lrn(3)", "linear": "linear(4)", "slice": "slice(0, 1)",
                "select": "select(0)",
                "channel_shuffle": "channel_shuffle(2)", "se": "se(2)", "mlp": "mlp(4)", "rbf": "rbf(3)",
                "patch_embed": "patch_embed(4, 2)", "attention": "attention(2)",
                "stochastic_depth": "stochastic_depth(0.1)", "upsample": "upsample(scale=2)",
                "conv_transpose": "conv_transpose(2, 2, stride=2)", "pixel_shuffle": "pixel_shuffle(2)",
                "pixel_unshuffle": "pixel_unshuffle(2)", "channels_first": "channels_last -> channels_first",
                "patch_merge": "channels_last -> patch_merge",
                "window_attention": "channels_last -> window_attention(2, 3)",
                "partition_attention": 'channels_last -> partition_attention(2, 3, "grid")',
                "token_pool": "token_pool([1, 1, 3], 1)", "pool_attention": "pool_attention(2, [1, 1, 3])"}
RANKS = ["8", "4x6", "4x6x6", "4x4x6x6", "tokens 4x8"]


@pytest.mark.parametrize("op", sorted(REGISTRY))
def test_every_op_on_every_rank_is_accepted_and_analysed_or_refused(tmp_path, op):
    # whatever the input's rank, an op either elaborates and then analyses without error, or is refused
    # with a CnnError while elaborating: the analysis passes never meet a mistake the shape rule let through
    accepted = []
    for i, shape in enumerate(RANKS):
        if REGISTRY[op].inputs != 1:
            expr = f"t: {op}([x, x])" if op == "concat" else f"t: {op}(x, x)"
        else:
            expr = f"x -> t: {MINIMAL_CALL.get(op, op)}"
        path = tmp_path / f"net{i}.cnn"
        path.write_text(network_text({"x": shape}, expr))
        try:
            net = cnndsl.load(str(path))
        except cnndsl.CnnError:
            continue
        if op == "batchnorm" and shape.startswith("tokens"):
            continue  # the known bug of test_batchnorm_refuses_tokens_at_elaboration
        cnndsl.analyze(net)
        lint_ir(net)
        accepted.append(shape)
    assert accepted, f"{op} accepts no input rank at all"


# ---------------------------------------------------------------- tensor ops


def test_concat_and_slice_round_trip(tmp_path):
    # ShuffleNet v2's channel split: slice halves, concat them back: the original shape
    net, _ = build(tmp_path, {"x": "24x7x7"},
                   "concat([x -> a: slice(0, 12), x -> b: slice(12)]) -> t: channel_shuffle(2)")
    assert net.node("a")["type"].shape == net.node("b")["type"].shape == (12, 7, 7)
    assert net.node("t")["type"].shape == (24, 7, 7)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=4), tokens=st.booleans(), axis=st.integers(0, 4),
       index=st.integers(-7, 7))
def test_select_is_torch_indexing_where_the_axis_leaves_a_vector(tmp_path, shape, tokens, axis, index):
    # torch's x[:, ..., index] (the batch first) gives the shape; the language takes the cases that leave a
    # flat vector (a token sequence or a 1D map, rank 2) and refuses the others with a located CnnError
    tokens = tokens and len(shape) == 2
    text = ("tokens " if tokens else "") + "x".join(map(str, shape))
    x = torch.randn(2, *shape)
    try:
        reference = tuple(x[(slice(None),) * (axis + 1) + (index,)].shape[1:])
    except IndexError:
        reference = None
    try:
        node = op_node(tmp_path, text, f"select({index}, axis={axis})")
    except cnndsl.CnnError as err:
        assert err.span is not None and err.span.line == 3
        assert reference is None or len(shape) != 2
        return
    assert len(shape) == 2 and node["type"].shape == reference and not node["type"].tokens
    assert node["params"] == [] and node["macs"] == 0 and node["flops"] == 0


def test_select_picks_vits_class_token_as_torchvision_does(tmp_path):
    # torchvision's VisionTransformer.forward: `x = x[:, 0]` after the encoder, then the heads
    vit = "x -> patch_embed(48, 8) -> class_token -> attention(4) -> {} -> linear(10)"
    net, totals = build(tmp_path, {"x": "3x32x32"}, vit.format("t: select(0)"))
    assert net.node("t")["type"].shape == (48,) and not net.node("t")["type"].tokens
    assert net.node("t")["rf"] == "global"  # after attention, the class token has seen every patch
    _, sliced = build(tmp_path, {"x": "3x32x32"}, vit.format("slice(0, 1) -> flatten"), "sliced.cnn")
    for key in ("params", "macs", "flops", "activation_bytes", "peak_activation_bytes"):
        assert totals[key] == sliced[key], key  # one view in place of two


def test_merge_receptive_fields_take_the_largest_and_mark_the_merge(tmp_path):
    # branch a: 3x3 conv (field 3, padding 1); branch b: 5x5 conv (field 5, padding 2); their sum sees 5
    net, _ = build(tmp_path, {"x": "4x16x16"}, "add(x -> a: conv(4, 3, pad=1), x -> b: conv(4, 5, pad=2)) -> t: relu")
    add = next(n for n in net.nodes() if n["op"] == "add")
    assert add["rf"].size == (5, 5) and add["rf"].padding == (2, 2) and add["rf"].merged
    assert net.node("t")["rf"].size == (5, 5) and not net.node("t")["rf"].merged


def test_mul_broadcasts_like_torch_and_refuses_like_torch(tmp_path):
    net, _ = build(tmp_path, {"x": "8x4x4", "s": "8x1x1"}, "t: x * s")
    assert net.node("t")["type"].shape == (8, 4, 4)
    with pytest.raises(RuntimeError):
        torch.randn(2, 8, 4, 4) * torch.randn(2, 3, 1, 1)
    with pytest.raises(cnndsl.CnnError, match="broadcast"):
        build(tmp_path, {"x": "8x4x4", "s": "3x1x1"}, "t: x * s", "bad.cnn")


def test_add_refuses_different_shapes(tmp_path):
    with pytest.raises(cnndsl.CnnError, match="same shape"):
        build(tmp_path, {"x": "8x4x4", "s": "8x1x1"}, "t: x + s")


# ---------------------------------------------------------------- mistakes: CnnErrors, as torch refuses


def _refuses(fn) -> bool:
    try:
        fn()
    except (RuntimeError, ValueError, AssertionError, IndexError):
        return True
    return False


BAD = [
    # (input shape, layer, what torch says about the same thing: a function that raises, or None)
    ("3x8x8", "conv(4, 3, groups=2)", lambda: nn.Conv2d(3, 4, 3, groups=2)),
    ("4x8x8", "conv(3, 3, groups=2)", lambda: nn.Conv2d(4, 3, 3, groups=2)),
    ("3x8x8", 'conv(4, 3, stride=2, pad="same")', lambda: nn.Conv2d(3, 4, 3, stride=2, padding="same")),
    ("3x4x4", "conv(4, 5)", lambda: nn.Conv2d(3, 4, 5)(torch.randn(1, 3, 4, 4))),
    ("3x8x8", "conv(4, 3, dilation=4)", lambda: nn.Conv2d(3, 4, 3, dilation=4)(torch.randn(1, 3, 8, 8))),
    ("3x8x8", "conv(4, [3, 3, 3])", lambda: nn.Conv2d(3, 4, (3, 3, 3))(torch.randn(1, 3, 8, 8))),
    ("3x8x8", "conv(4, 3, pad=[1, 1, 1])", None),
    ("3x8x8", "conv(0, 3)", lambda: nn.Conv2d(3, 0, 3)(torch.randn(1, 3, 8, 8))),
    ("3x8x8", "conv(4, 0)", lambda: nn.Conv2d(3, 4, 0)(torch.randn(1, 3, 8, 8))),
    ("3x8x8", "conv(4, 3, stride=0)", lambda: nn.Conv2d(3, 4, 3, stride=0)(torch.randn(1, 3, 8, 8))),
    ("3x8x8", "conv(4, 3, pad=-1)", lambda: nn.Conv2d(3, 4, 3, padding=-1)(torch.randn(1, 3, 8, 8))),
    ("3x8x8", 'conv(4, 3, pad="full")', lambda: nn.Conv2d(3, 4, 3, padding="full")),
    ("3x8x8", 'conv(4, 3, bias="yes")', None),
    ("3x8x8", "conv(2, 3, table=[[0], [3]])", None),
    ("3x8x8", "conv(3, 3, table=[[0], [1]])", None),
    ("3x8x8", "conv(2, 3, table=[[0, 0], [1]])", None),
    ("3x8x8", "conv(2, 3, groups=1, table=[[0], []])", None),
    ("4x8x8", "conv(2, 3, groups=2, table=[[0], [1]])", None),
    ("3x8x8", "conv(4.5, 3)", None),
    ("3x8x8", "conv(true, 3)", None),
    ("3x8x8", "conv(4)", None),
    ("3x8x8", "conv(4, 3, strides=2)", None),
    ("3x8x8", "conv(4, 3, 1, 0, 1, 1, true, none, 0, 7)", None),
    ("3x8x8", "dwconv(3, multiplier=0)", None),
    ("3x8x8", "maxpool(3, pad=2)", lambda: nn.MaxPool2d(3, padding=2)(torch.randn(1, 3, 8, 8))),
    ("3x8x8", "avgpool(2, pad=2)", lambda: nn.AvgPool2d(2, padding=2)(torch.randn(1, 3, 8, 8))),
    ("3x2x2", "maxpool(3)", lambda: nn.MaxPool2d(3)(torch.randn(1, 3, 2, 2))),
    ("3x8x8", "maxpool(2, ceil_mode=1)", None),
    ("3x8x8", "avgpool(2, dilation=2)", None),
    ("3x8x8", "adaptive_avgpool([2, 2, 2])", None),
    ("3x8x8", "adaptive_avgpool(0)", None),
    ("3x8x8", "subsample(9)", None),
    ("3x8x8", "batchnorm(eps=-1)", None),
    ("3x8x8", "dropout(1)", None),
    ("3x8x8", "dropout(-0.1)", None),
    ("3x8x8", 'stochastic_depth(0.1, mode="layer")', None),
    ("3x8x8", "softmax(axis=3)", lambda: nn.Softmax(dim=4)(torch.randn(1, 3, 8, 8))),
    ("3x8x8", "softmax(axis=-4)", None),
    ("3x8x8", "slice(3, 2)", None),
    ("3x8x8", "slice(0, 4)", None),
    ("3x8x8", "slice(0, axis=3)", None),
    ("tokens 5x8", "select(5)", lambda: torch.randn(2, 5, 8)[:, 5]),
    ("tokens 5x8", "select(-6)", lambda: torch.randn(2, 5, 8)[:, -6]),
    ("tokens 5x8", "select(0, axis=2)", lambda: torch.randn(2, 5, 8)[:, :, :, 0]),
    ("tokens 5x8", "select(0, axis=-1)", None),
    ("tokens 5x8", "select(1.5)", lambda: torch.randn(2, 5, 8)[:, 1.5]),
    ("tokens 5x8", "select", None),
    ("8", "select(0)", None),
    ("3x8x8", "select(0)", None),
    ("3x4x8x8", "select(1, axis=1)", None),
    ("3x8x8", "channel_shuffle(2)", None),
    ("3x8x8", "concat(axis=3)", None),
    ("16x8x8", 'se(4, activation="mish")', None),
    ("tokens 5x10", "attention(3)", lambda: nn.MultiheadAttention(10, 3)),
    ("3x10x10", "patch_embed(8, 3)", None),
    ("tokens 5x8", "mlp(16, dropout=1.5)", None),
    ("3x8x8", "lrn(0)", None),
    ("3x8x8", "leaky_relu(slope=\"x\")", None),
    ("3x8x8", "relu(3)", None),
    ("3x8x8", "identity(1)", None),
    ("3x8x8", "flatten(2)", None),
    ("3x8x8", "class_token(1)", None),
    ("3x8x8", "rbf(0)", None),
    ("3x8x8", "global_avgpool(1)", None),
]


@pytest.mark.parametrize("shape, layer, torch_refuses", BAD, ids=[f"{s}-{layer}" for s, layer, _ in BAD])
def test_mistakes_are_cnn_errors_located_in_the_file(tmp_path, shape, layer, torch_refuses):
    if torch_refuses is not None:
        assert _refuses(torch_refuses), "PyTorch accepts this: the case is wrong"
    with pytest.raises(cnndsl.CnnError) as info:
        op_node(tmp_path, shape, layer)
    err = info.value
    assert err.span is not None and err.span.source.path.endswith("net.cnn")
    assert err.span.line == 3  # the output line, where the layer is written
    text = err.format()
    assert "error:" in text and "Traceback" not in text


def test_every_op_refuses_an_unknown_argument(tmp_path):
    for op in sorted(REGISTRY):
        merge = REGISTRY[op].inputs != 1
        expr = f"t: {op}(x, x, bogus_argument=1)" if merge else f"x -> t: {op}(bogus_argument=1)"
        with pytest.raises(cnndsl.CnnError, match="no argument"):
            build(tmp_path, {"x": "4x8x8"}, expr)


@pytest.mark.parametrize("op", sorted(REGISTRY))
def test_every_op_documents_itself(op):
    spec = REGISTRY[op]
    assert spec.doc and spec.flops_doc and spec.category
    assert spec.signature().startswith(f"{op}(")
    names = [a.name for a in spec.args]
    assert len(names) == len(set(names))
    required = [a.required for a in spec.args]
    assert required == sorted(required, reverse=True), "a required argument follows an optional one"


def test_untied_bias_conv_text_snippet_end_to_end(tmp_path):
    # a multi-layer snippet through the whole pipeline: LeCun 1989's H1 -> H2 geometry, written with
    # a block, a loop and labels, then compared layer by layer with torch
    path = tmp_path / "lecun.cnn"
    path.write_text(textwrap.dedent("""\
        block h(maps) = [conv(maps, 5, stride=2, pad=2, bias="untied", pad_value=-1), tanh]
        network n(widths=[12, 12]) {
            input x: 1x16x16
            y = x
            for i, w in enumerate(widths) {
                y = y -> h{i + 1}: h(w)
            }
            output y = y -> flatten -> out: linear(10)
        }
    """))
    net = cnndsl.load(str(path))
    totals = cnndsl.analyze(net)
    assert net.node("h1.0")["type"].shape == (12, 8, 8)
    assert net.node("h2.0")["type"].shape == (12, 4, 4)
    torch_params = (numel(nn.Conv2d(1, 12, 5, bias=False)) + 12 * 8 * 8
                    + numel(nn.Conv2d(12, 12, 5, bias=False)) + 12 * 4 * 4 + numel(nn.Linear(192, 10)))
    assert totals["params"] == torch_params


def convnext_layernorm2d(channels: int) -> nn.Module:
    from torchvision.models.convnext import LayerNorm2d

    return LayerNorm2d(channels, eps=1e-6)


def test_channels_last_maps_are_refused_by_ops_that_read_the_layout(tmp_path):
    # a conv (or batch norm, pooling, flatten ...) on HxWxC would read the axes wrongly
    for layer in ("conv(4, 3)", "batchnorm", "maxpool(2)", "flatten", "channels_last"):
        with pytest.raises(cnndsl.CnnError, match="needs a channels-first input.*channels_first"):
            build(tmp_path, {"x": "6x4x4"}, f"x -> channels_last -> t: {layer}")
    with pytest.raises(cnndsl.CnnError, match="channels_first needs a channels-last map"):
        build(tmp_path, {"x": "6x4x4"}, "x -> t: channels_first")


def swin_attention(dim: int, window: int, shift: int, heads: int, version: int = 1, **kwargs) -> Ref:
    """torchvision's ShiftedWindowAttention (or V2) on an (N, H, W, C) map (its input is channels last)."""
    from torchvision.models.swin_transformer import ShiftedWindowAttention, ShiftedWindowAttentionV2

    kind = ShiftedWindowAttentionV2 if version == 2 else ShiftedWindowAttention
    attention = kind(dim, [window, window], [shift, shift], heads, **kwargs).eval()
    ref = as_ref(attention)
    return Ref(lambda x: attention(x.permute(0, 2, 3, 1)), ref.params, ref.fixed, ref.buffers)


def mvit_tokens(dim: int, t: int, h: int, w: int, positions: bool) -> Ref:
    """torchvision's MViT: conv_proj's map flattened to tokens, then its PositionalEncoding."""
    from torchvision.models.video.mvit import PositionalEncoding

    encoding = PositionalEncoding(dim, (h, w), t, rel_pos_embed=not positions)
    ref = as_ref(encoding)
    return Ref(lambda x: encoding(x.flatten(2).transpose(1, 2)), ref.params)


def mvit_pool_skip(grid, kernel, stride) -> Ref:
    """torchvision's MultiscaleBlock.pool_skip: a max pool over the grid, the class token kept."""
    from torchvision.models.video.mvit import Pool

    pool = Pool(nn.MaxPool3d(kernel, stride=stride, padding=[k // 2 for k in kernel]), None)
    return Ref(lambda x: pool(x, grid)[0])


def mvit_attention(grid, dim, out, heads, kernel_q, stride_q, kernel_kv, stride_kv, v2=False) -> Ref:
    """torchvision's MultiscaleAttention on a class token + grid sequence (v2: relative positions, residual pooling;
    neither adds the class token's residual, as both torchvision builders set)."""
    from torchvision.models.video.mvit import MultiscaleAttention

    attention = MultiscaleAttention(list(grid), dim, out, heads, kernel_q, kernel_kv, stride_q, stride_kv,
                                    residual_pool=v2, residual_with_cls_embed=False, rel_pos_embed=v2).eval()
    ref = as_ref(attention)
    return Ref(lambda x: attention(x, grid)[0], ref.params)


def swin_patch_merge(x, video: bool = False):
    from torchvision.models.swin_transformer import _patch_merging_pad

    return _patch_merging_pad(x.permute(0, 2, 3, 4, 1) if video else x.permute(0, 2, 3, 1))


def swin_attention_3d(dim: int, window: list, shift: list, heads: int) -> Ref:
    """torchvision's ShiftedWindowAttention3d on an (N, T, H, W, C) clip."""
    from torchvision.models.video.swin_transformer import ShiftedWindowAttention3d

    attention = ShiftedWindowAttention3d(dim, window, shift, heads).eval()
    ref = as_ref(attention)
    return Ref(lambda x: attention(x.permute(0, 2, 3, 4, 1)), ref.params, ref.fixed, ref.buffers)


def maxvit_partition(attention: nn.Module, x: torch.Tensor, size: int, partition: str) -> torch.Tensor:
    """torchvision's PartitionAttentionLayer around `attention` (its RelativePositionalMultiHeadAttention), without
    the norms, the MLP and the residuals: partition an (N, C, H, W) map, attend, departition; channels last out."""
    from torchvision.models.maxvit import SwapAxes, WindowDepartition, WindowPartition

    n = x.shape[-2] // size  # torchvision's n_partitions; p, the partition op's window, is size or n
    p, g = (size, n) if partition == "window" else (n, size)
    swap = SwapAxes(-2, -3) if partition == "grid" else nn.Identity()
    y = swap(attention(swap(WindowPartition()(x, p))))
    return WindowDepartition()(y, p, x.shape[-2] // p, x.shape[-1] // p).permute(0, 2, 3, 1)


def maxvit_attention(dim: int, heads: int, size: int, partition: str) -> Ref:
    """torchvision's MaxViT attention (RelativePositionalMultiHeadAttention) within its partition."""
    from torchvision.models.maxvit import RelativePositionalMultiHeadAttention

    attention = RelativePositionalMultiHeadAttention(dim, dim // heads, size * size).eval()
    ref = as_ref(attention)
    return Ref(lambda x: maxvit_partition(attention, x, size, partition), ref.params, ref.fixed, ref.buffers)


@pytest.mark.parametrize("shape, heads, size, partition", [("8x14x14", 2, 7, "window"), ("8x14x14", 2, 7, "grid"),
                                                           ("16x8x8", 4, 2, "grid"), ("12x6x6", 3, 3, "window")])
def test_partition_attention_computes_torchvisions_maxvit_attention(tmp_path, shape, heads, size, partition):
    # the generated module holds torchvision's RelativePositionalMultiHeadAttention's weights and gives its outputs
    from torchvision.models.maxvit import RelativePositionalMultiHeadAttention

    c = int(shape.split("x")[0])
    layer = f'partition_attention({heads}, {size}, "{partition}")'
    net, _ = build(tmp_path, {"x": shape}, f"x -> channels_last -> t: {layer}")
    torch.manual_seed(0)
    reference = RelativePositionalMultiHeadAttention(c, c // heads, size * size).eval()
    with torch.no_grad():
        for p in reference.parameters():
            p.normal_(std=0.5)  # biases and the bias table count too
    model = cnndsl.to_torch(net).eval()
    model.load_state_dict({f"t.{k}": v for k, v in reference.state_dict().items()}, strict=True)
    x = torch.randn(2, *parse_shape(shape)[0])
    with torch.no_grad():
        want, got = maxvit_partition(reference, x, size, partition), model(x)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-6), (got - want).abs().max()


@pytest.mark.parametrize("layer, message", [
    ("partition_attention(2, 7)", "multiples of size=7"),
    ('partition_attention(3, 2, "grid")', "not divisible by heads=3"),
    ('partition_attention(2, 2, "diagonal")', "must be one of"),
])
def test_partition_attention_refuses_maps_it_cannot_partition(tmp_path, layer, message):
    with pytest.raises(cnndsl.CnnError, match=message):
        build(tmp_path, {"x": "8x12x12"}, f"x -> channels_last -> t: {layer}")
