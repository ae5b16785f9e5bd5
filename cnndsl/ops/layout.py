"""ConvNeXt's ops: moving the channels last and back (torchvision's Permute modules, between which
nn.LayerNorm and nn.Linear act on each position's channels), a layer norm over the channels of a
channel-first map (torchvision's LayerNorm2d), and a learned per-channel scale (layer scale)."""

from __future__ import annotations

from ..types import TensorType
from .conv import spatial_input
from .spec import ANY_LAYOUT, VIEW, Arg, OpCall, OpError, OpSpec, Param, number


def last_shape(call: OpCall) -> TensorType:
    spatial_input(call, "channels_last")
    return TensorType((*call.x.spatial, call.x.channels), channels_last=True)


def first_shape(call: OpCall) -> TensorType:
    if not call.x.channels_last:
        raise OpError(f"channels_first needs a channels-last map (made by channels_last), got {call.x}")
    return TensorType((call.x.channels, *call.x.spatial))


channels_last = OpSpec(
    "channels_last", "Moves the channels to the last axis, CxHxW -> HxWxC (x.permute(0, 2, 3, 1)), so that layernorm "
                     "and linear act on each position's channels.",
    shape=last_shape, traits=frozenset({VIEW}), category="tensor",
)

channels_first = OpSpec(
    "channels_first", "Moves the channels back in front, HxWxC -> CxHxW (x.permute(0, 3, 1, 2)).",
    shape=first_shape, traits=frozenset({VIEW, ANY_LAYOUT}), category="tensor",
)


def same_map(op: str):
    """The shape rule of an op that keeps a channel-first map's shape."""
    def shape(call: OpCall) -> TensorType:
        spatial_input(call, op)
        return call.x
    return shape


layernorm2d = OpSpec(
    "layernorm2d", "Layer normalisation over the channels at each position of a channel-first map (torchvision's "
                   "LayerNorm2d, ConvNeXt's stem, downsampling and head).",
    args=(Arg("eps", number(minimum=0.0), 1e-6, "added to the variance"),), shape=same_map("layernorm2d"),
    params=lambda c: [Param("weight", (c.x.channels,)), Param("bias", (c.x.channels,))],
    flops=lambda c: 5 * c.out.numel, flops_doc="5 per element (mean, variance, normalise, scale, shift)",
    category="normalization",
)


layer_scale = OpSpec(
    "layer_scale", "A learned scale per channel, initialised small (Touvron et al. 2021's LayerScale; ConvNeXt's "
                   "layer_scale, a Cx1x1 parameter named after the node).",
    args=(Arg("init", number(minimum=0.0), 1e-6, "initial value of every channel's scale"),),
    shape=same_map("layer_scale"),
    params=lambda c: [Param("", (c.x.channels, *(1,) * c.x.spatial_rank))],
    flops=lambda c: c.out.numel, flops_doc="1 per element", category="normalization",
)

OPS = [channels_last, channels_first, layernorm2d, layer_scale]
