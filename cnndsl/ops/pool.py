"""Pooling: max/avg (overlapping, ceil mode, padding, PyTorch's output-size rule), adaptive and global
average pooling, and LeNet's trainable subsampling."""

from __future__ import annotations

from math import gcd, prod

from ..types import TensorType
from .conv import check_positive, spatial_input
from .spec import GLOBAL, Arg, OpCall, OpError, OpSpec, Param, Window, boolean, ints, optional, per_axis


def pooled_size(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """torch.nn.MaxPool2d's rule (aten pooling_output_shape), including the ceil-mode correction that
    drops a last window starting inside the right padding."""
    span = size + 2 * p - d * (k - 1) - 1
    out = (span + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def resolve_pool(call: OpCall, op: str) -> dict:
    a = dict(call.attrs)
    n = spatial_input(call, op)
    a["kernel"] = per_axis(a["kernel"], n, "kernel")
    a["stride"] = per_axis(a["stride"], n, "stride") if a["stride"] is not None else a["kernel"]
    a["pad"] = per_axis(a["pad"], n, "pad")
    a["dilation"] = per_axis(a.get("dilation", 1), n, "dilation")
    for k, p in zip(a["kernel"], a["pad"]):
        if p > k // 2:
            raise OpError(f"{op} padding {p} is more than half the kernel {k} (PyTorch requires pad <= kernel/2)")
    return a


def pool_shape(call: OpCall, op: str) -> TensorType:
    a = call.attrs
    sizes = [pooled_size(s, k, st, p, d, a["ceil_mode"])
             for s, k, st, p, d in zip(call.x.spatial, a["kernel"], a["stride"], a["pad"], a["dilation"])]
    check_positive(op, call.x.spatial_rank, sizes, call, [2 * p for p in a["pad"]])
    return TensorType((call.x.channels, *sizes))


def pool_rf(call: OpCall) -> Window:
    a = call.attrs
    return Window(a["kernel"], a["stride"], a["dilation"], a["pad"])


def window_flops(call: OpCall) -> int:
    return call.out.numel * prod(call.attrs["kernel"])


POOL_ARGS = (Arg("kernel", ints(), doc="window size"),
             Arg("stride", optional(ints()), None, "step of the window (default: the kernel size)"),
             Arg("pad", ints(0), 0, "implicit padding per side (at most half the kernel)"))

maxpool = OpSpec(
    "maxpool", "Max pooling (nn.MaxPool1d/2d/3d); overlapping when stride < kernel.",
    args=(*POOL_ARGS, Arg("dilation", ints(), 1, "spacing of the window's taps"),
          Arg("ceil_mode", boolean, False, "round the output size up, as PyTorch's ceil_mode")),
    resolve=lambda c: resolve_pool(c, "maxpool"), shape=lambda c: pool_shape(c, "maxpool"),
    flops=window_flops, flops_doc="kernel size per output element (comparisons)", rf=pool_rf, category="pooling",
    shown=("kernel", "stride", "dilation"),
)

avgpool = OpSpec(
    "avgpool", "Average pooling (nn.AvgPool1d/2d/3d).",
    args=(*POOL_ARGS, Arg("ceil_mode", boolean, False, "round the output size up"),
          Arg("count_include_pad", boolean, True, "count padded zeros in the average")),
    resolve=lambda c: resolve_pool(c, "avgpool"), shape=lambda c: pool_shape(c, "avgpool"),
    flops=window_flops, flops_doc="kernel size per output element (additions and one division)",
    rf=pool_rf, category="pooling", shown=("kernel", "stride"),
)


def resolve_adaptive(call: OpCall) -> dict:
    n = spatial_input(call, "adaptive pooling")
    return {"size": per_axis(call.attrs["size"], n, "size")}


def adaptive_rf(call: OpCall):
    sizes, outs = call.x.spatial, call.attrs["size"]
    if all(o == 1 for o in outs):
        return GLOBAL
    kernels, strides, exact = [], [], True
    for size, out in zip(sizes, outs):
        if size % out == 0:
            kernels.append(size // out)
            strides.append(size // out)
        else:  # PyTorch's windows [floor(i*size/out), ceil((i+1)*size/out)) differ in size
            exact = False
            kernels.append(largest_window(size, out))
            strides.append(max(1, size // out))
    n = len(sizes)
    return Window(tuple(kernels), tuple(strides), (1,) * n, (0,) * n, exact)


def largest_window(size: int, out: int) -> int:
    """max over i < out of ceil((i+1)*size/out) - floor(i*size/out), in constant time: with i*size = a*out + r
    (0 <= r < out) the window is ceil((r + size)/out), and r runs over the multiples of gcd(size, out) below
    out, the largest being out - gcd. (tests/test_limits.py checks it against the loop.)"""
    return -(-(out - gcd(size, out) + size) // out)


def adaptive_flops(call: OpCall) -> int:
    return call.x.numel + call.out.numel


def adaptive(kind: str) -> OpSpec:
    """Adaptive pooling to a fixed output size; max and average share every rule but the kernel."""
    return OpSpec(
        f"adaptive_{kind}pool", f"{ {'avg': 'Average', 'max': 'Max'}[kind]} pooling to a fixed output size "
                                f"(nn.Adaptive{kind.capitalize()}Pool2d).",
        args=(Arg("size", ints(), doc="output size per spatial axis"),),
        resolve=resolve_adaptive, shape=lambda c: TensorType((c.x.channels, *c.attrs["size"])),
        flops=adaptive_flops, flops_doc="one per input element plus one per output element", rf=adaptive_rf,
        category="pooling", shown=("size",),
    )


adaptive_avgpool, adaptive_maxpool = adaptive("avg"), adaptive("max")


def global_shape(call: OpCall) -> TensorType:
    spatial_input(call, "global_avgpool")
    return TensorType((call.x.channels,) + (1,) * call.x.spatial_rank)


global_avgpool = OpSpec(
    "global_avgpool", "Average over all spatial positions, keeping 1-sized axes (nn.AdaptiveAvgPool2d(1)).",
    shape=global_shape, flops=adaptive_flops, flops_doc="one per input element plus one per output element",
    rf=lambda c: GLOBAL, category="pooling",
)


def resolve_subsample(call: OpCall) -> dict:
    a = dict(call.attrs)
    n = spatial_input(call, "subsample")
    a["kernel"] = per_axis(a["kernel"], n, "kernel")
    a["stride"] = per_axis(a["stride"], n, "stride") if a["stride"] is not None else a["kernel"]
    a["pad"], a["dilation"], a["ceil_mode"] = (0,) * n, (1,) * n, False
    return a


subsample = OpSpec(
    "subsample", "LeNet's trainable subsampling: each map's window is summed, scaled by a learned "
                 "coefficient and shifted by a learned bias (LeCun et al. 1998, layers S2 and S4).",
    args=(Arg("kernel", ints(), 2, "window size"),
          Arg("stride", optional(ints()), None, "step (default: the kernel size)")),
    resolve=resolve_subsample, shape=lambda c: pool_shape(c, "subsample"),
    params=lambda c: [Param("weight", (c.x.channels,)), Param("bias", (c.x.channels,))],
    flops=lambda c: c.out.numel * (prod(c.attrs["kernel"]) + 2),
    flops_doc="kernel size per output element (sum) plus two (scale and shift)", rf=pool_rf, category="pooling",
    shown=("kernel", "stride"),
)

OPS = [maxpool, avgpool, adaptive_avgpool, adaptive_maxpool, global_avgpool, subsample]
