"""Ops that act on each element (or each position) alone: activations, norms, dropout, identity."""

from __future__ import annotations

from ..types import TensorType
from .spec import (ANY_LAYOUT, BACKWARD_NEEDS_NO_OUTPUT, INPLACE, VIEW, Arg, OpCall, OpError, OpSpec, Param, choice,
                   integer, number)


def activation(name: str, doc: str, flops_per_element: int, formula: str, args=(), aliases=(), traits=(),
               trait_rules=()) -> OpSpec:
    """An activation: same shape out, no parameters, a fixed number of FLOPs per element."""
    return OpSpec(name, doc, args=tuple(args), flops=lambda c: flops_per_element * c.out.numel,
                  flops_doc=f"{flops_per_element} per element ({formula})", aliases=aliases,
                  traits=frozenset({ANY_LAYOUT, *traits}), trait_rules=tuple(trait_rules), category="activation")


def slope_not_negative(call: OpCall) -> bool:
    """In place, leaky_relu's gradient is read off its output: the sign of the output must be the input's."""
    return call.attrs["slope"] >= 0


ACTIVATIONS = [
    # relu, relu6 and leaky_relu (slope >= 0) may run in place, as torchvision writes them (inplace=True): their
    # gradient is read off their output (spec.INPLACE). silu, hardswish and hardsigmoid need their input for the
    # gradient, and PyTorch's in-place variants keep a copy of it for autograd, so they may too (torchvision's
    # EfficientNet and MobileNetV3 write nn.SiLU(inplace=True) and nn.Hardswish(inplace=True)). tanh and sigmoid
    # would qualify, but no backend has an in-place form of them; gelu has none in PyTorch. Reading their input,
    # not their output, those three also let a later op overwrite their output (BACKWARD_NEEDS_NO_OUTPUT:
    # EfficientNetV2's `y += x` after a SiLU, as torchvision's `result += input`).
    activation("relu", "max(x, 0).", 1, "max", traits=[INPLACE]),
    activation("relu6", "min(max(x, 0), 6), as MobileNet uses.", 2, "max, min", traits=[INPLACE]),
    activation("leaky_relu", "x if x > 0 else slope * x.", 2, "compare, multiply",
               args=[Arg("slope", number(), 0.01, "slope for negative inputs")], traits=[INPLACE],
               trait_rules=[(INPLACE, slope_not_negative)]),
    activation("tanh", "Hyperbolic tangent.", 1, "tanh"),
    activation("scaled_tanh", "A * tanh(S * x), LeNet-5's squashing function (A = 1.7159, S = 2/3).", 3,
               "multiply, tanh, multiply",
               args=[Arg("a", number(), 1.7159, "amplitude A"), Arg("s", number(), 2 / 3, "slope S")]),
    activation("sigmoid", "1 / (1 + exp(-x)).", 3, "exp, add, divide"),
    activation("hardsigmoid", "relu6(x + 3) / 6, as MobileNetV3 uses.", 3, "add, clamp, divide",
               traits=[INPLACE, BACKWARD_NEEDS_NO_OUTPUT]),
    activation("silu", "x * sigmoid(x) (swish), as EfficientNet uses.", 4, "sigmoid, multiply",
               aliases=("swish",), traits=[INPLACE, BACKWARD_NEEDS_NO_OUTPUT]),
    activation("hardswish", "x * relu6(x + 3) / 6, as MobileNetV3 uses.", 4, "add, clamp, multiply, divide",
               traits=[INPLACE, BACKWARD_NEEDS_NO_OUTPUT]),
    activation("gelu", "x * Phi(x), the exact (erf) form, as ViT uses.", 5, "erf form: 5 elementary operations"),
]


def softmax_shape(call: OpCall) -> TensorType:
    axis = call.attrs["axis"]
    if not -call.x.rank <= axis < call.x.rank:
        raise OpError(f"softmax axis {axis} is out of range for a {call.x} tensor")
    return call.x


softmax = OpSpec(
    "softmax", "Normalised exponential along one axis (default: the last).",
    args=(Arg("axis", integer(None), -1, "axis, counted without the batch (negative from the end)"),),
    shape=softmax_shape, flops=lambda c: 3 * c.out.numel, flops_doc="3 per element (exp, sum, divide)",
    category="activation", shown=("axis",),
)


def channels_of(call: OpCall, op: str) -> int:
    if call.x.tokens:
        raise OpError(f"{op} needs a channel-first tensor, got {call.x} (use layernorm on tokens)")
    return call.x.channels


def bn_params(call: OpCall) -> list[Param]:
    c = channels_of(call, "batchnorm")
    return [Param("weight", (c,)), Param("bias", (c,)), Param("running_mean", (c,), "buffer"),
            Param("running_var", (c,), "buffer"), Param("num_batches_tracked", (), "buffer")]


def bn_shape(call: OpCall) -> TensorType:
    channels_of(call, "batchnorm")
    return call.x


batchnorm = OpSpec(
    "batchnorm", "Batch normalisation over the channel axis (nn.BatchNorm1d/2d/3d). Running mean and "
                 "variance (and PyTorch's num_batches_tracked counter) are buffers, not parameters.",
    args=(Arg("eps", number(minimum=0.0), 1e-5, "added to the variance"),
          Arg("momentum", number(minimum=0.0), 0.1, "running-statistics momentum")),
    shape=bn_shape, params=bn_params, flops=lambda c: 2 * c.out.numel,
    flops_doc="2 per element (inference: scale, shift)",
    traits=frozenset({BACKWARD_NEEDS_NO_OUTPUT}), category="normalization",
)

layernorm = OpSpec(
    "layernorm", "Layer normalisation over the last axis (the features of each token).",
    args=(Arg("eps", number(minimum=0.0), 1e-5, "added to the variance"),),
    params=lambda c: [Param("weight", (c.x.shape[-1],)), Param("bias", (c.x.shape[-1],))],
    flops=lambda c: 5 * c.out.numel, flops_doc="5 per element (mean, variance, normalise, scale, shift)",
    traits=frozenset({ANY_LAYOUT}), category="normalization",
)


def lrn_shape(call: OpCall) -> TensorType:
    channels_of(call, "lrn")
    if call.x.rank < 2:
        raise OpError(f"lrn needs a channel-first map (CxL, CxHxW, ...), got the flat vector {call.x}")
    return call.x


lrn = OpSpec(
    "lrn", "Local response normalisation across `size` neighbouring channels (AlexNet; nn.LocalResponseNorm).",
    args=(Arg("size", integer(), doc="channels in the neighbourhood"),
          Arg("alpha", number(), 1e-4, "scale"), Arg("beta", number(), 0.75, "exponent"),
          Arg("k", number(), 1.0, "additive constant")),
    shape=lrn_shape, flops=lambda c: (c.attrs["size"] + 3) * c.out.numel,
    flops_doc="size + 3 per element (window sum of squares, scale, power, divide)", category="normalization",
    shown=("size",),
)

dropout = OpSpec(
    "dropout", "Zeroes elements with probability p while training; the identity at inference.",
    args=(Arg("p", number(minimum=0.0, below=1.0), 0.5, "drop probability"),),
    traits=frozenset({VIEW, ANY_LAYOUT}), category="regularization", shown=("p",),
)

stochastic_depth = OpSpec(
    "stochastic_depth", "Drops a residual branch per sample while training (Huang et al. 2016); the "
                        "identity at inference.",
    args=(Arg("p", number(minimum=0.0, below=1.0), doc="drop probability"),
          Arg("mode", choice("row", "batch"), "row", "drop per sample (row) or per batch")),
    # its input while not training; a product with a mask (whose backward reads the mask alone) while training
    traits=frozenset({VIEW, BACKWARD_NEEDS_NO_OUTPUT, ANY_LAYOUT}), category="regularization", shown=("p",),
)

identity = OpSpec("identity", "Returns its input.", traits=frozenset({VIEW, ANY_LAYOUT}), category="tensor")

OPS = [*ACTIVATIONS, softmax, batchnorm, layernorm, lrn, dropout, stochastic_depth, identity]
