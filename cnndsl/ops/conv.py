"""Convolutions: conv (1D/2D/3D by the input's rank; groups, dilation, "same" padding, untied biases,
partial connection tables) and dwconv (depthwise, a conv with groups = channels)."""

from __future__ import annotations

from math import prod

from ..types import TensorType, axis_name
from .spec import (BACKWARD_NEEDS_NO_OUTPUT, Arg, OpCall, OpError, OpSpec, Param, Window, boolean, choice, integer,
                   ints, number, optional, per_axis)


def padding(v):
    """An integer, a list (one per axis), "same" or "valid"."""
    if v in ("same", "valid"):
        return v
    try:
        return ints(0)(v)
    except ValueError:
        raise ValueError('must be an integer >= 0, a list of them, "same" or "valid"') from None


padding.kind = 'int, list, "same" or "valid"'


def bias_kind(v):
    if v is True or v is False or v == "untied":
        return v
    raise ValueError('must be true, false or "untied" (one bias per output position, as LeCun 1989)')


bias_kind.kind = 'bool or "untied"'


def table(v):
    """A connection table: for each output channel, the list of input channels it sees."""
    if not isinstance(v, list) or not v or not all(isinstance(r, list) and r for r in v):
        raise ValueError("must be a list with, for each output channel, a non-empty list of input channels")
    for row in v:
        if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in row):
            raise ValueError("must hold input channel indices (integers >= 0)")
        if len(set(row)) != len(row):
            raise ValueError(f"row {row} names an input channel twice")
    return tuple(tuple(r) for r in v)


table.kind = "list of lists"


def spatial_input(call: OpCall, op: str) -> int:
    n = call.x.spatial_rank
    if not 1 <= n <= 3:
        raise OpError(f"{op} needs a CxL, CxHxW or CxDxHxW input, got {call.x}")
    return n


def output_size(size: int, kernel: int, stride: int, dilation: int, pad_total: int) -> int:
    return (size + pad_total - dilation * (kernel - 1) - 1) // stride + 1


def check_positive(op: str, n: int, sizes, call: OpCall, pads) -> None:
    for axis, size in enumerate(sizes):
        if size < 1:
            k, d = call.attrs["kernel"][axis], call.attrs["dilation"][axis]
            span = d * (k - 1) + 1
            raise OpError(f"{op} shrinks the {axis_name(n, axis)} to zero: the input's {axis_name(n, axis)} "
                          f"{call.x.spatial[axis]} plus padding {pads[axis]} is smaller than the kernel's "
                          f"extent {span}")


def resolve_conv(call: OpCall) -> dict:
    a = dict(call.attrs)
    n = spatial_input(call, "conv")
    cin = call.x.channels
    for name in ("kernel", "stride", "dilation"):
        a[name] = per_axis(a[name], n, name)
    if a["pad"] == "valid":
        a["padding"] = tuple((0, 0) for _ in range(n))
    elif a["pad"] == "same":
        if any(s != 1 for s in a["stride"]):
            raise OpError('pad="same" needs stride 1 (as in PyTorch)')
        totals = [d * (k - 1) for k, d in zip(a["kernel"], a["dilation"])]
        a["padding"] = tuple((t // 2, t - t // 2) for t in totals)
    else:
        a["padding"] = tuple((p, p) for p in per_axis(a["pad"], n, "pad"))
    del a["pad"]
    groups = a["groups"]
    if cin % groups:
        raise OpError(f"input channels {cin} are not divisible by groups={groups}")
    if a["out"] % groups:
        raise OpError(f"output channels {a['out']} are not divisible by groups={groups}")
    if a["table"] is not None:
        if groups != 1:
            raise OpError("a connection table and groups cannot be combined")
        if len(a["table"]) != a["out"]:
            raise OpError(f"the connection table has {len(a['table'])} rows but the conv has {a['out']} "
                          f"output channels")
        bad = [i for row in a["table"] for i in row if i >= cin]
        if bad:
            raise OpError(f"the connection table names input channel {bad[0]}, but the input has {cin} "
                          f"channels (0..{cin - 1})")
    return a


def conv_shape(call: OpCall) -> TensorType:
    a, n = call.attrs, call.x.spatial_rank
    pads = [left + right for left, right in a["padding"]]
    sizes = [output_size(s, k, st, d, p)
             for s, k, st, d, p in zip(call.x.spatial, a["kernel"], a["stride"], a["dilation"], pads)]
    check_positive("conv", n, sizes, call, pads)
    return TensorType((a["out"], *sizes))


def connections(call: OpCall) -> int:
    """Input-output channel pairs that carry a kernel."""
    a = call.attrs
    if a["table"] is not None:
        return sum(len(row) for row in a["table"])
    return a["out"] * call.x.channels // a["groups"]


def conv_params(call: OpCall) -> list[Param]:
    a = call.attrs
    if a["table"] is not None:
        weight = Param("weight", (connections(call), *a["kernel"]), layer="conv")
    else:
        weight = Param("weight", (a["out"], call.x.channels // a["groups"], *a["kernel"]), layer="conv")
    if a["bias"] == "untied":
        return [weight, Param("bias", call.out.shape, layer="conv")]
    return [weight, Param("bias", (a["out"],), layer="conv")] if a["bias"] else [weight]


def conv_macs(call: OpCall) -> int:
    return prod(call.out.spatial) * connections(call) * prod(call.attrs["kernel"])


def conv_flops(call: OpCall) -> int:
    return 2 * conv_macs(call) + (call.out.numel if call.attrs["bias"] else 0)


def conv_rf(call: OpCall) -> Window:
    a = call.attrs
    return Window(a["kernel"], a["stride"], a["dilation"], tuple(left for left, _ in a["padding"]))


CONV_FLOPS_DOC = "2 per MAC, plus 1 per output element with a bias"

WINDOW_ARGS = (
    Arg("stride", ints(), 1, "step of the window per axis"),
    Arg("pad", padding, 0, 'zero padding per side and axis, or "same" / "valid"'),
    Arg("dilation", ints(), 1, "spacing of the kernel's taps"),
)

conv = OpSpec(
    "conv", "Convolution over 1, 2 or 3 spatial axes (nn.Conv1d/2d/3d).",
    args=(Arg("out", integer(), doc="output channels"),
          Arg("kernel", ints(), doc="kernel size, one integer or one per axis"),
          *WINDOW_ARGS,
          Arg("groups", integer(), 1, "channel groups (groups = channels is depthwise)"),
          Arg("bias", bias_kind, True, 'true, false, or "untied" (a bias per output position)'),
          Arg("table", optional(table), None, "partial connections: input channels of each output channel"),
          Arg("pad_value", number(), 0.0, "value the padding is filled with (LeCun 1989 pads with -1)")),
    resolve=resolve_conv, shape=conv_shape, params=conv_params, macs=conv_macs, flops=conv_flops,
    flops_doc=CONV_FLOPS_DOC, rf=conv_rf, traits=frozenset({BACKWARD_NEEDS_NO_OUTPUT}), category="convolution",
    shown=("kernel", "stride", "dilation", "groups"),
)


def resolve_dwconv(call: OpCall) -> dict:
    a = dict(call.attrs)
    spatial_input(call, "dwconv")
    channels = call.x.channels
    a["out"] = channels * a.pop("multiplier")
    a.update(groups=channels, table=None, pad_value=0.0)
    return resolve_conv(OpCall(a, call.inputs))


dwconv = OpSpec(
    "dwconv", "Depthwise convolution: one filter (or `multiplier` filters) per input channel.",
    args=(Arg("kernel", ints(), doc="kernel size"), *WINDOW_ARGS,
          Arg("multiplier", integer(), 1, "output channels per input channel"),
          Arg("bias", boolean, True, "add a learned bias")),
    resolve=resolve_dwconv, shape=conv_shape, params=conv_params, macs=conv_macs, flops=conv_flops,
    flops_doc=CONV_FLOPS_DOC, rf=conv_rf, traits=frozenset({BACKWARD_NEEDS_NO_OUTPUT}), category="convolution",
    shown=("kernel", "stride", "dilation", "multiplier"),
)

OPS = [conv, dwconv]
_ = choice  # re-exported for op modules that build on conv's checks
