"""Swin Transformer's ops on channels-last maps (HxWxC): shifted-window self-attention with a relative
position bias (Liu et al. 2021), and patch merging (each 2x2 group of positions concatenated).

Both follow torchvision's swin_transformer.py exactly: the map is padded to whole windows, shifted
cyclically by `shift` (not when one window covers the map), split into windows of window x window
positions, and each window attends within itself; tokens that the shift brought together from opposite
borders are masked apart.
"""

from __future__ import annotations

from ..types import TensorType
from .spec import ANY_LAYOUT, Arg, OpCall, OpError, OpSpec, Param, Tiles, Window, boolean, integer, number


def map_input(call: OpCall, op: str) -> None:
    if not (call.x.channels_last and call.x.spatial_rank == 2):
        raise OpError(f"{op} needs an HxWxC map (channels last: -> channels_last first), got {call.x}")


def padded(size: int, window: int) -> int:
    return -(-size // window) * window


def effective_shifts(call: OpCall) -> tuple[int, ...]:
    """torchvision's rule: no shift along an axis that one window covers."""
    w, s = call.attrs["window"], call.attrs["shift"]
    return tuple(0 if w >= padded(n, w) else s for n in call.x.spatial)


def attention_shape(call: OpCall) -> TensorType:
    map_input(call, "window_attention")
    a, c = call.attrs, call.x.channels
    if c % a["heads"]:
        raise OpError(f"window_attention: {c} channels are not divisible by heads={a['heads']}")
    if a["shift"] >= a["window"]:
        raise OpError(f"window_attention: the shift {a['shift']} must be smaller than the window {a['window']}")
    return call.x


def attention_params(call: OpCall) -> list[Param]:
    """In torchvision's state_dict order: the module's own parameters and buffers, then qkv, proj (and V2's MLP)."""
    a, c, w, h = call.attrs, call.x.channels, call.attrs["window"], call.attrs["heads"]
    if a["cosine"]:  # V2: a learned logit scale; the bias comes from an MLP over a fixed table of coordinates
        params = [Param("logit_scale", (h, 1, 1)),
                  Param("relative_coords_table", (1, 2 * w - 1, 2 * w - 1, 2), "buffer")]
    else:
        params = [Param("relative_position_bias_table", ((2 * w - 1) ** 2, h))]
    params += [Param("relative_position_index", (w ** 4,), "buffer"), Param("qkv.weight", (3 * c, c))]
    if a["qkv_bias"]:
        params.append(Param("qkv.bias", (3 * c,)))
    params.append(Param("proj.weight", (c, c)))
    if a["proj_bias"]:
        params.append(Param("proj.bias", (c,)))
    if a["cosine"]:
        params += [Param("cpb_mlp.0.weight", (CPB_HIDDEN, 2)), Param("cpb_mlp.0.bias", (CPB_HIDDEN,)),
                   Param("cpb_mlp.2.weight", (h, CPB_HIDDEN))]
    return params


CPB_HIDDEN = 512  # Swin V2's continuous position bias MLP: 2 -> 512 -> heads


def attention_macs(call: OpCall) -> int:
    """On the padded map (P positions, P / w^2 windows): qkv P*C*3C, Q K^T and A V 2*P*w^2*C, proj P*C*C; V2's
    position-bias MLP on its (2w - 1)^2 coordinates adds (2w - 1)^2 * 512 * (2 + heads)."""
    a, w, c = call.attrs, call.attrs["window"], call.x.channels
    positions = padded(call.x.spatial[0], w) * padded(call.x.spatial[1], w)
    macs = positions * c * 3 * c + 2 * positions * w * w * c + positions * c * c
    if a["cosine"]:
        macs += (2 * w - 1) ** 2 * CPB_HIDDEN * (2 + a["heads"])
    return macs


window_attention = OpSpec(
    "window_attention", "Shifted-window multi-head self-attention with a relative position bias (Swin "
                        "Transformer; torchvision's ShiftedWindowAttention, or ShiftedWindowAttentionV2 with "
                        "cosine=true) on an HxWxC map.",
    args=(Arg("heads", integer(), doc="attention heads"),
          Arg("window", integer(), 7, "window size (square)"),
          Arg("shift", integer(0), 0, "cyclic shift of the windows (window // 2 in every other block)"),
          Arg("qkv_bias", boolean, True, "bias in the query, key and value projection"),
          Arg("proj_bias", boolean, True, "bias in the output projection"),
          Arg("attention_dropout", number(minimum=0.0, below=1.0), 0.0, "dropout on the attention weights"),
          Arg("dropout", number(minimum=0.0, below=1.0), 0.0, "dropout on the output"),
          Arg("cosine", boolean, False, "Swin V2: scaled cosine attention and a continuous position bias (an MLP)")),
    shape=attention_shape, params=attention_params, macs=attention_macs,
    flops=lambda c: 2 * attention_macs(c) + 4 * c.attrs["heads"] * padded(c.x.spatial[0], c.attrs["window"])
    * padded(c.x.spatial[1], c.attrs["window"]) * c.attrs["window"] ** 2,
    flops_doc="2 per MAC plus 4 per attention score (scale, bias, exp and normalise)",
    rf=lambda c: Tiles((c.attrs["window"],) * 2, effective_shifts(c)),
    traits=frozenset({ANY_LAYOUT}), category="attention", shown=("heads", "window", "shift", "cosine"),
)


def merge_shape(call: OpCall) -> TensorType:
    map_input(call, "patch_merge")
    h, w = call.x.spatial
    return TensorType(((h + 1) // 2, (w + 1) // 2, 4 * call.x.channels), channels_last=True)


patch_merge = OpSpec(
    "patch_merge", "Concatenates each 2x2 group of positions of an HxWxC map: H/2 x W/2 x 4C, in torchvision's "
                   "order (even row even column, odd-even, even-odd, odd-odd; odd sizes padded with zeros).",
    shape=merge_shape, rf=lambda c: Window((2, 2), (2, 2), (1, 1), (0, 0)), traits=frozenset({ANY_LAYOUT}),
    category="tensor",
)

OPS = [window_attention, patch_merge]
