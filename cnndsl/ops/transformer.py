"""Vision Transformer ops (Dosovitskiy et al. 2020), laid out as torchvision's VisionTransformer:
patch embedding, class token, position embedding, multi-head self-attention."""

from __future__ import annotations

from ..types import TensorType
from .spec import GLOBAL, Arg, OpCall, OpError, OpSpec, Param, Window, boolean, integer, number


def patch_shape(call: OpCall) -> TensorType:
    x, p = call.x, call.attrs["patch"]
    if x.spatial_rank != 2:
        raise OpError(f"patch_embed needs a CxHxW image, got {x}")
    if any(s % p for s in x.spatial):
        raise OpError(f"patch_embed: image {x.spatial[0]}x{x.spatial[1]} is not divisible into {p}x{p} patches")
    return TensorType(((x.spatial[0] // p) * (x.spatial[1] // p), call.attrs["dim"]), tokens=True)


def patch_macs(call: OpCall) -> int:
    p = call.attrs["patch"]
    return call.out.shape[0] * call.attrs["dim"] * call.x.channels * p * p


patch_embed = OpSpec(
    "patch_embed", "Cuts the image into non-overlapping patches and projects each to `dim` features: a "
                   "conv with kernel = stride = patch, flattened into a token sequence.",
    args=(Arg("dim", integer(), doc="token features"), Arg("patch", integer(), doc="patch size")),
    shape=patch_shape,
    params=lambda c: [Param("weight", (c.attrs["dim"], c.x.channels, c.attrs["patch"], c.attrs["patch"])),
                      Param("bias", (c.attrs["dim"],))],
    macs=patch_macs, flops=lambda c: 2 * patch_macs(c) + c.out.numel, flops_doc="as conv",
    rf=lambda c: Window((c.attrs["patch"],) * 2, (c.attrs["patch"],) * 2, (1, 1), (0, 0)), category="transformer",
    shown=("patch",),
)


def tokens_of(call: OpCall, op: str) -> TensorType:
    if not call.x.tokens or call.x.rank != 2:
        raise OpError(f"{op} needs a token sequence (NxD), got {call.x}")
    return call.x


class_token = OpSpec(
    "class_token", "Prepends a learned token to the sequence (the node itself is the parameter, 1x1xD).",
    shape=lambda c: tokens_of(c, "class_token").with_shape((c.x.shape[0] + 1, c.x.shape[1])),
    params=lambda c: [Param("", (1, 1, c.x.shape[1]))], category="transformer",
)

pos_embedding = OpSpec(
    "pos_embedding", "Adds a learned position embedding (the node itself is the parameter, 1xNxD).",
    shape=lambda c: tokens_of(c, "pos_embedding"), params=lambda c: [Param("", (1, *c.x.shape))],
    flops=lambda c: c.out.numel, flops_doc="1 per element", category="transformer",
)


def attention_shape(call: OpCall) -> TensorType:
    x = tokens_of(call, "attention")
    if x.shape[1] % call.attrs["heads"]:
        raise OpError(f"attention: {x.shape[1]} features are not divisible by heads={call.attrs['heads']}")
    return x


def attention_params(call: OpCall) -> list[Param]:
    d = call.x.shape[1]
    weights = [Param("in_proj_weight", (3 * d, d)), Param("out_proj.weight", (d, d), layer="linear")]
    if call.attrs["bias"]:
        weights[1:1] = [Param("in_proj_bias", (3 * d,))]
        weights.append(Param("out_proj.bias", (d,), layer="linear"))
    return weights


def attention_macs(call: OpCall) -> int:
    """Q, K, V and output projections (4 N D^2) plus Q K^T and A V (2 N^2 D)."""
    n, d = call.x.shape
    return 4 * n * d * d + 2 * n * n * d


attention = OpSpec(
    "attention", "Multi-head self-attention (nn.MultiheadAttention, batch first): Q, K, V projections, "
                 "softmax(Q K^T / sqrt(d)) V per head, output projection.",
    args=(Arg("heads", integer(), doc="attention heads"),
          Arg("dropout", number(minimum=0.0, below=1.0), 0.0, "dropout on the attention weights"),
          Arg("bias", boolean, True, "biases in the projections")),
    shape=attention_shape, params=attention_params, macs=attention_macs,
    flops=lambda c: 2 * attention_macs(c) + 4 * c.attrs["heads"] * c.x.shape[0] ** 2,
    flops_doc="2 per MAC plus 4 per attention score (scale, exp, sum, divide)", rf=lambda c: GLOBAL,
    category="attention", shown=("heads",),
)

OPS = [patch_embed, class_token, pos_embedding, attention]
