"""Ops that change the resolution the other way, for encoder-decoders: upsampling (nearest, linear by
rank), transposed convolution, pixel shuffle and unshuffle, and cropping to another tensor's size (U-Net).

Their receptive-field rules are exact: upsampling and transposed convolutions give several outputs per
input pixel (a fractional effective stride), see cnndsl/passes/receptive.py.
"""

from __future__ import annotations

from math import prod

from ..types import TensorType, axis_name
from .conv import spatial_input
from .spec import (BACKWARD_NEEDS_NO_OUTPUT, VIEW, Arg, OpCall, OpError, OpSpec, Param, Resample, Transposed, Window,
                   boolean, choice, integer, ints, optional, per_axis)

LINEAR_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}  # PyTorch's names, by the number of spatial axes


def resolve_upsample(call: OpCall) -> dict:
    a = dict(call.attrs)
    n = spatial_input(call, "upsample")
    if (a["scale"] is None) == (a["size"] is None):
        raise OpError("upsample takes either scale= (a whole factor per axis) or size= (the output size), "
                      "exactly one of them")
    if a["scale"] is not None:
        a["scale"] = per_axis(a["scale"], n, "scale")
        a["out"] = tuple(s * f for s, f in zip(call.x.spatial, a["scale"]))
    else:
        a["out"] = per_axis(a["size"], n, "size")
    mode = a["mode"]
    if mode != "nearest" and mode != LINEAR_MODES[n]:
        raise OpError(f'mode "{mode}" does not fit a {call.x} input: it takes "nearest" or "{LINEAR_MODES[n]}"')
    if a["align_corners"] and mode == "nearest":
        raise OpError('align_corners applies to the linear modes only, not to "nearest"')
    return a


def upsample_rf(call: OpCall) -> Resample:
    """PyTorch's source index of output o (aten/src/ATen/native/UpSample.h): nearest floor(o * in / out);
    linear without align_corners (o + 1/2) * in / out - 1/2, with it o * (in - 1) / (out - 1)."""
    a, num, offset, den = call.attrs, [], [], []
    for size, out in zip(call.x.spatial, a["out"]):
        if a["mode"] == "nearest":
            rule = (size, 0, out)
        elif a["align_corners"]:
            rule = (size - 1, 0, out - 1) if out > 1 else (0, 0, 1)
        else:
            rule = (2 * size, size - out, 2 * out)
        num.append(rule[0]), offset.append(rule[1]), den.append(rule[2])
    return Resample(tuple(num), tuple(offset), tuple(den), linear=a["mode"] != "nearest")


upsample = OpSpec(
    "upsample", "Upsampling by a whole factor or to a size (F.interpolate): nearest, or linear interpolation "
                "(linear, bilinear, trilinear by the input's rank).",
    args=(Arg("scale", optional(ints()), None, "whole factor per spatial axis"),
          Arg("size", optional(ints()), None, "output size per spatial axis (another tensor's: [y.height, y.width])"),
          Arg("mode", choice("nearest", "linear", "bilinear", "trilinear"), "nearest",
              'interpolation: "nearest", or the linear mode of the input\'s rank'),
          Arg("align_corners", boolean, False, "linear modes: align the corner pixels (PyTorch's align_corners)")),
    resolve=resolve_upsample, shape=lambda c: TensorType((c.x.channels, *c.attrs["out"])),
    flops=lambda c: 0 if c.attrs["mode"] == "nearest" else c.out.numel * (2 ** (c.x.spatial_rank + 1) - 1),
    flops_doc="nearest: 0; linear modes: 2^n products and 2^n - 1 sums per output element (n spatial axes)",
    rf=upsample_rf, category="resampling", shown=("scale", "size", "mode"),
)


def resolve_transposed(call: OpCall) -> dict:
    a = dict(call.attrs)
    n = spatial_input(call, "conv_transpose")
    for name in ("kernel", "stride", "dilation", "pad", "output_pad"):
        a[name] = per_axis(a[name], n, name)
    for axis, (op, s, d) in enumerate(zip(a["output_pad"], a["stride"], a["dilation"])):
        if op >= max(s, d):
            raise OpError(f"output_pad {op} must be smaller than the stride {s} or the dilation {d} "
                          f"(as in PyTorch), on the {axis_name(n, axis)}")
    groups = a["groups"]
    if call.x.channels % groups or a["out"] % groups:
        raise OpError(f"input channels {call.x.channels} and output channels {a['out']} must both be divisible "
                      f"by groups={groups}")
    return a


def transposed_shape(call: OpCall) -> TensorType:
    """(in - 1) * stride - 2 * pad + dilation * (kernel - 1) + output_pad + 1, as nn.ConvTranspose computes."""
    a = call.attrs
    sizes = [(i - 1) * s - 2 * p + d * (k - 1) + op + 1 for i, k, s, p, d, op in
             zip(call.x.spatial, a["kernel"], a["stride"], a["pad"], a["dilation"], a["output_pad"])]
    if any(size < 1 for size in sizes):
        raise OpError(f"conv_transpose's padding leaves no output: sizes {sizes} from {call.x}")
    return TensorType((a["out"], *sizes))


def transposed_macs(call: OpCall) -> int:
    """Every input element meets kernel x out/groups weights (FlopCounterMode counts it so)."""
    a = call.attrs
    return prod(call.x.spatial) * call.x.channels * (a["out"] // a["groups"]) * prod(a["kernel"])


conv_transpose = OpSpec(
    "conv_transpose", "Transposed convolution (nn.ConvTranspose1d/2d/3d): the gradient of a convolution, an "
                      "upsampling with learned kernels (U-Net's up-convolution).",
    args=(Arg("out", integer(), doc="output channels"),
          Arg("kernel", ints(), doc="kernel size, one integer or one per axis"),
          Arg("stride", ints(), 1, "step between the input pixels' places in the output"),
          Arg("pad", ints(0), 0, "rows removed from each side of the full output (PyTorch's padding)"),
          Arg("output_pad", ints(0), 0, "extra rows on one side, to reach an odd size (PyTorch's output_padding)"),
          Arg("dilation", ints(), 1, "spacing of the kernel's taps"),
          Arg("groups", integer(), 1, "channel groups"),
          Arg("bias", boolean, True, "add a learned bias")),
    resolve=resolve_transposed, shape=transposed_shape,
    params=lambda c: [Param("weight", (c.x.channels, c.attrs["out"] // c.attrs["groups"], *c.attrs["kernel"]))]
    + ([Param("bias", (c.attrs["out"],))] if c.attrs["bias"] else []),
    macs=transposed_macs, flops=lambda c: 2 * transposed_macs(c) + (c.out.numel if c.attrs["bias"] else 0),
    flops_doc="2 per MAC, plus 1 per output element with a bias",
    rf=lambda c: Transposed(c.attrs["kernel"], c.attrs["stride"], c.attrs["dilation"], c.attrs["pad"]),
    traits=frozenset({BACKWARD_NEEDS_NO_OUTPUT}), category="convolution", shown=("kernel", "stride"),
)


def image_input(call: OpCall, op: str) -> None:
    if call.x.spatial_rank != 2:
        raise OpError(f"{op} needs a CxHxW input (as nn.{op.title().replace('_', '')}), got {call.x}")


def shuffle_shape(call: OpCall) -> TensorType:
    image_input(call, "pixel_shuffle")
    r = call.attrs["factor"]
    if call.x.channels % (r * r):
        raise OpError(f"pixel_shuffle({r}) needs channels divisible by {r * r}, got {call.x.channels}")
    return TensorType((call.x.channels // (r * r), *(s * r for s in call.x.spatial)))


def unshuffle_shape(call: OpCall) -> TensorType:
    image_input(call, "pixel_unshuffle")
    r = call.attrs["factor"]
    if any(s % r for s in call.x.spatial):
        raise OpError(f"pixel_unshuffle({r}) needs a height and width divisible by {r}, got {call.x}")
    return TensorType((call.x.channels * r * r, *(s // r for s in call.x.spatial)))


pixel_shuffle = OpSpec(
    "pixel_shuffle", "Rearranges C*r*r x H x W into C x H*r x W*r (nn.PixelShuffle; sub-pixel convolution).",
    args=(Arg("factor", integer(), doc="upscaling factor r"),), shape=shuffle_shape,
    rf=lambda c: Resample((1, 1), (0, 0), (c.attrs["factor"],) * 2), category="resampling", shown=("factor",),
)

pixel_unshuffle = OpSpec(
    "pixel_unshuffle", "Rearranges C x H*r x W*r into C*r*r x H x W (nn.PixelUnshuffle), the inverse of "
                       "pixel_shuffle.",
    args=(Arg("factor", integer(), doc="downscaling factor r"),), shape=unshuffle_shape,
    rf=lambda c: Window((c.attrs["factor"],) * 2, (c.attrs["factor"],) * 2, (1, 1), (0, 0)),
    category="resampling", shown=("factor",),
)


def crop_offsets(call: OpCall) -> tuple[int, ...]:
    """Centre crop: (in - out) // 2 on each axis, as U-Net's copy-and-crop."""
    return tuple((i - o) // 2 for i, o in zip(call.x.spatial, call.inputs[1].spatial))


def crop_shape(call: OpCall) -> TensorType:
    x, like = call.inputs
    spatial_input(call, "crop")
    if like.spatial_rank != x.spatial_rank or any(o > i for i, o in zip(x.spatial, like.spatial)):
        raise OpError(f"crop needs a reference no larger than the cropped tensor, with as many spatial axes: "
                      f"cannot crop {x} to the size of {like}", show_inputs=True)
    return TensorType((x.channels, *like.spatial))


crop = OpSpec(
    "crop", "Centre crop of the first tensor to the spatial size of the second (U-Net's copy and crop); only the "
            "second's shape is read.",
    inputs=2, min_inputs=2, shape=crop_shape,
    rf=lambda c: Window((1,) * c.x.spatial_rank, (1,) * c.x.spatial_rank, (1,) * c.x.spatial_rank,
                        tuple(-o for o in crop_offsets(c))),
    traits=frozenset({VIEW}), category="resampling", rf_inputs=1,
)

OPS = [upsample, conv_transpose, pixel_shuffle, pixel_unshuffle, crop]
