"""Ops that reshape, combine or fully connect tensors: flatten, linear, add, mul, concat, slice, select,
channel shuffle, and the composite layers built from them (squeeze-excitation, MLP, RBF units)."""

from __future__ import annotations

from math import prod

from ..types import TensorType
from .conv import spatial_input
from .spec import (ANY_LAYOUT, BACKWARD_NEEDS_NO_OUTPUT, GATED, GLOBAL, INPLACE, MERGE, POINTWISE, VIEW, Arg, OpCall,
                   OpError, OpSpec, Param, boolean, choice, integer, number, optional)


def flatten_shape(call: OpCall) -> TensorType:
    return TensorType((call.x.numel,))


flatten = OpSpec("flatten", "Flattens everything but the batch into one feature axis (torch.flatten(x, 1)).",
                 shape=flatten_shape, traits=frozenset({VIEW}), category="tensor")


def features_in(call: OpCall, op: str) -> int:
    """The size of the last axis of a flat vector, a token sequence or a channels-last map."""
    if call.x.spatial_rank and not call.x.channels_last:
        raise OpError(f"{op} needs a flat vector, a token sequence or a channels-last map, got {call.x}; flatten "
                      f"it first (-> flatten -> {op}(...))")
    return call.x.shape[-1]


def positions(call: OpCall) -> int:
    """How many times a per-vector op is applied: once for a vector, once per token or position."""
    if call.x.channels_last:
        return prod(call.x.spatial)
    return call.x.shape[0] if call.x.tokens else 1


def mixing_rf(call: OpCall):
    """A fully connected layer sees every position of a flat vector, but each token (or position) alone."""
    return POINTWISE if call.x.tokens or call.x.channels_last else GLOBAL


def linear_shape(call: OpCall) -> TensorType:
    features_in(call, "linear")
    return call.x.with_shape((*call.x.shape[:-1], call.attrs["out"]))


def linear_params(call: OpCall) -> list[Param]:
    w = Param("weight", (call.attrs["out"], call.x.shape[-1]))
    return [w, Param("bias", (call.attrs["out"],))] if call.attrs["bias"] else [w]


def linear_macs(call: OpCall) -> int:
    return positions(call) * call.attrs["out"] * call.x.shape[-1]


linear = OpSpec(
    "linear", "Fully connected layer on a flat vector, or on each token of a sequence (nn.Linear).",
    args=(Arg("out", integer(), doc="output features"), Arg("bias", boolean, True, "add a learned bias")),
    shape=linear_shape, params=linear_params, macs=linear_macs,
    flops=lambda c: 2 * linear_macs(c) + (c.out.numel if c.attrs["bias"] else 0),
    flops_doc="2 per MAC, plus 1 per output with a bias", rf=mixing_rf,
    traits=frozenset({BACKWARD_NEEDS_NO_OUTPUT, ANY_LAYOUT}), category="linear",
)


def same_shapes(call: OpCall, op: str) -> TensorType:
    first = call.inputs[0]
    if any(t.shape != first.shape or t.channels_last != first.channels_last for t in call.inputs[1:]):
        shapes = " and ".join(str(t) for t in call.inputs)
        raise OpError(f"{op} needs inputs of the same shape, got {shapes}", show_inputs=True)
    return first


add = OpSpec(
    "add", "Elementwise sum of tensors of the same shape (`a + b`).", inputs=0, min_inputs=2,
    shape=lambda c: same_shapes(c, "add"), flops=lambda c: (len(c.inputs) - 1) * c.out.numel,
    flops_doc="(inputs - 1) per element", traits=frozenset({MERGE, INPLACE, BACKWARD_NEEDS_NO_OUTPUT, ANY_LAYOUT}),
    category="merge",
)


def broadcast_shape(call: OpCall) -> TensorType:
    """NumPy/PyTorch broadcasting over the non-batch axes, aligned from the right."""
    rank = max(t.rank for t in call.inputs)
    if any(t.tokens for t in call.inputs) and any(not t.tokens and t.rank > 1 for t in call.inputs):
        shapes = " and ".join(str(t) for t in call.inputs)
        raise OpError(f"mul cannot combine a token sequence with a channel-first map ({shapes})", show_inputs=True)
    out = []
    for axis in range(1, rank + 1):
        sizes = {t.shape[-axis] for t in call.inputs if t.rank >= axis} - {1}
        if len(sizes) > 1:
            shapes = " and ".join(str(t) for t in call.inputs)
            raise OpError(f"mul cannot broadcast shapes {shapes}", show_inputs=True)
        out.append(sizes.pop() if sizes else 1)
    return TensorType(tuple(reversed(out)), any(t.tokens for t in call.inputs))


mul = OpSpec(
    "mul", "Elementwise product with broadcasting (`a * b`; squeeze-excitation scales channels this way).",
    inputs=0, min_inputs=2, shape=broadcast_shape, flops=lambda c: (len(c.inputs) - 1) * c.out.numel,
    flops_doc="(inputs - 1) per element", traits=frozenset({MERGE}), category="merge",
)


def concat_shape(call: OpCall) -> TensorType:
    first, axis = call.inputs[0], call.attrs["axis"]
    if not 0 <= axis < first.rank:
        raise OpError(f"concat axis {axis} is out of range for {first} (axis 0 is the channels, or the tokens)")
    for t in call.inputs[1:]:
        if t.rank != first.rank or any(a != b for i, (a, b) in enumerate(zip(t.shape, first.shape)) if i != axis):
            shapes = ", ".join(str(t) for t in call.inputs)
            raise OpError(f"concat along axis {axis} needs the other axes equal, got {shapes}", show_inputs=True)
    size = sum(t.shape[axis] for t in call.inputs)
    return first.with_shape((*first.shape[:axis], size, *first.shape[axis + 1:]))


concat = OpSpec(
    "concat", "Concatenation along an axis (default 0: channels, or tokens for a sequence).",
    args=(Arg("axis", integer(0), 0, "axis, counted without the batch"),), inputs=0, min_inputs=1,
    shape=concat_shape, traits=frozenset({MERGE}), category="merge", shown=("axis",),
)


def slice_shape(call: OpCall) -> TensorType:
    a, x = call.attrs, call.x
    axis = a["axis"]
    if not 0 <= axis < x.rank:
        raise OpError(f"slice axis {axis} is out of range for {x}")
    stop = x.shape[axis] if a["stop"] is None else a["stop"]
    if not 0 <= a["start"] < stop <= x.shape[axis]:
        raise OpError(f"slice [{a['start']}:{stop}] is empty or outside axis {axis} of size {x.shape[axis]}")
    return x.with_shape((*x.shape[:axis], stop - a["start"], *x.shape[axis + 1:]))


slice_ = OpSpec(
    "slice", "Takes [start, stop) along an axis (default: channels), as ShuffleNet's channel split.",
    args=(Arg("start", integer(0), doc="first index"),
          Arg("stop", optional(integer(1)), None, "one past the last index (default: the end)"),
          Arg("axis", integer(0), 0, "axis, counted without the batch")),
    shape=slice_shape, traits=frozenset({VIEW}), category="tensor", shown=("start", "stop", "axis"),
)


def select_shape(call: OpCall) -> TensorType:
    a, x = call.attrs, call.x
    axis, index = a["axis"], a["index"]
    if not 0 <= axis < x.rank:
        raise OpError(f"select axis {axis} is out of range for {x}")
    size = x.shape[axis]
    if not -size <= index < size:
        raise OpError(f"select index {index} is outside axis {axis} of size {size} "
                      f"(from {-size} to {size - 1}; negative indexes count from the end)")
    keep = f"slice({index % size}, {index % size + 1}{'' if axis == 0 else f', axis={axis}'})"
    if x.rank == 1:
        raise OpError(f"select would leave one number per sample of the vector {x}; {keep} keeps the axis")
    if x.spatial_rank > 1:
        raise OpError(f"select on the map {x} would leave a map with one spatial axis less, which the receptive "
                      f"fields do not follow; {keep} keeps the axis")
    return TensorType((*x.shape[:axis], *x.shape[axis + 1:]))


def select_rf(call: OpCall):
    """The chosen token, channel or position keeps its field: the output, a flat vector, reports none of its
    own, and the analysis carries the input's on (as through flatten)."""
    return POINTWISE


select = OpSpec(
    "select", "Takes one index along an axis (default: the tokens, or the channels) and drops the axis, as "
              "`x[:, index]` does: ViT's class token is `select(0)`. A token sequence or a 1D map gives a flat "
              "vector.",
    args=(Arg("index", integer(None), doc="the index; negative counts from the end, as in Python"),
          Arg("axis", integer(0), 0, "axis, counted without the batch")),
    shape=select_shape, rf=select_rf, traits=frozenset({VIEW}), category="tensor", shown=("index", "axis"),
)


def shuffle_shape(call: OpCall) -> TensorType:
    if call.x.tokens or call.x.rank < 2:
        raise OpError(f"channel_shuffle needs a channel-first map (CxL, CxHxW, ...), got {call.x}")
    if call.x.channels % call.attrs["groups"]:
        raise OpError(f"channel_shuffle: {call.x.channels} channels are not divisible by "
                      f"groups={call.attrs['groups']}")
    return call.x


channel_shuffle = OpSpec(
    "channel_shuffle", "Interleaves channel groups (ShuffleNet): reshape to (groups, C/groups), transpose, flatten.",
    args=(Arg("groups", integer(), doc="number of groups"),), shape=shuffle_shape, category="tensor",
    shown=("groups",),
)


# ---------------------------------------------------------------- composite layers

GATES = ("relu", "relu6", "sigmoid", "hardsigmoid", "silu", "hardswish", "gelu", "tanh")


def se_params(call: OpCall) -> list[Param]:
    spatial_input(call, "se")
    c, s, ones = call.x.channels, call.attrs["squeeze"], (1,) * call.x.spatial_rank
    return [Param("fc1.weight", (s, c, *ones), layer="conv"), Param("fc1.bias", (s,), layer="conv"),
            Param("fc2.weight", (c, s, *ones), layer="conv"), Param("fc2.bias", (c,), layer="conv")]


def se_macs(call: OpCall) -> int:
    return 2 * call.x.channels * call.attrs["squeeze"]


se = OpSpec(
    "se", "Squeeze-and-excitation (Hu et al. 2018), laid out as torchvision's SqueezeExcitation: global "
          "average pool, 1x1 conv fc1 to `squeeze` channels, activation, 1x1 conv fc2 back, gate, and "
          "a channel-wise product with the input.",
    args=(Arg("squeeze", integer(), doc="channels of the bottleneck"),
          Arg("activation", choice(*GATES), "relu", "activation after fc1"),
          Arg("gate", choice(*GATES), "sigmoid", "activation that makes the scale")),
    shape=lambda c: (spatial_input(c, "se"), c.x)[1], params=se_params, macs=se_macs,
    flops=lambda c: 2 * se_macs(c) + c.x.channels + c.attrs["squeeze"] + 2 * c.x.numel,
    flops_doc="2 per MAC, the biases, one per input element to pool and one to scale",
    rf=lambda c: GATED, category="composite", shown=("squeeze",),
)


def mlp_shape(call: OpCall) -> TensorType:
    features_in(call, "mlp")
    out = call.attrs["out"] or call.x.shape[-1]
    return call.x.with_shape((*call.x.shape[:-1], out))


def mlp_params(call: OpCall) -> list[Param]:
    d, h, o = call.x.shape[-1], call.attrs["hidden"], call.out.shape[-1]
    return [Param("0.weight", (h, d), layer="linear"), Param("0.bias", (h,), layer="linear"),
            Param("3.weight", (o, h), layer="linear"), Param("3.bias", (o,), layer="linear")]


def mlp_macs(call: OpCall) -> int:
    return positions(call) * call.attrs["hidden"] * (call.x.shape[-1] + call.out.shape[-1])


mlp = OpSpec(
    "mlp", "Two linear layers with an activation between, laid out as torchvision's MLPBlock "
           "(0: linear, 1: activation, 2: dropout, 3: linear, 4: dropout), per token or per vector.",
    args=(Arg("hidden", integer(), doc="hidden features"),
          Arg("out", optional(integer()), None, "output features (default: the input's)"),
          Arg("activation", choice(*GATES), "gelu", "activation between the layers"),
          Arg("dropout", number(minimum=0.0, below=1.0), 0.0, "dropout after each linear layer")),
    shape=mlp_shape, params=mlp_params, macs=mlp_macs,
    flops=lambda c: 2 * mlp_macs(c) + positions(c) * (2 * c.attrs["hidden"] + c.out.shape[-1]),
    flops_doc="2 per MAC, the biases, and the activation (1 per hidden element)", rf=mixing_rf,
    traits=frozenset({ANY_LAYOUT}), category="composite", shown=("hidden",),
)


def rbf_shape(call: OpCall) -> TensorType:
    if call.x.rank != 1:
        raise OpError(f"rbf needs a flat vector, got {call.x}")
    return TensorType((call.attrs["units"],))


rbf = OpSpec(
    "rbf", "Euclidean radial basis units (LeNet-5's output layer): y_i = sum_j (x_j - w_ij)^2, with "
           "fixed prototypes w (not trained; counted as fixed parameters).",
    args=(Arg("units", integer(), doc="output units (classes)"),),
    shape=rbf_shape, params=lambda c: [Param("weight", (c.attrs["units"], c.x.shape[0]), "fixed")],
    macs=lambda c: c.attrs["units"] * c.x.shape[0],
    flops=lambda c: 3 * c.attrs["units"] * c.x.shape[0], flops_doc="3 per prototype entry (subtract, square, add)",
    rf=lambda c: GLOBAL, category="linear",
)

OPS = [flatten, linear, add, mul, concat, slice_, select, channel_shuffle, se, mlp, rbf]
