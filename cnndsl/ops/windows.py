"""Swin Transformer's ops on channels-last maps (HxWxC, or TxHxWxC for Video Swin): shifted-window
self-attention with a relative position bias (Liu et al. 2021, 2022), and patch merging (each 2x2 group of
positions concatenated).

Both follow torchvision's swin_transformer.py exactly: the map is padded to whole windows, shifted
cyclically by `shift` (not when one window covers the map), split into windows of window x window
positions, and each window attends within itself; tokens that the shift brought together from opposite
borders are masked apart.
"""

from __future__ import annotations

from math import prod

from ..types import TensorType
from .spec import (ANY_LAYOUT, Arg, Grid, OpCall, OpError, OpSpec, Param, Tiles, Window, boolean, choice, integer,
                   ints, number, per_axis)


def map_input(call: OpCall, op: str) -> int:
    if not (call.x.channels_last and call.x.spatial_rank in (2, 3)):
        raise OpError(f"{op} needs an HxWxC or TxHxWxC map (channels last: -> channels_last first), got {call.x}")
    return call.x.spatial_rank


def padded(size: int, window: int) -> int:
    return -(-size // window) * window


def resolve_attention(call: OpCall) -> dict:
    a = dict(call.attrs)
    n = map_input(call, "window_attention")
    a["window"], a["shift"] = per_axis(a["window"], n, "window"), per_axis(a["shift"], n, "shift")
    if n == 2 and a["window"][0] != a["window"][1]:
        raise OpError(f"window_attention on an HxWxC map takes a square window, got {list(a['window'])}")
    if n == 3 and a["cosine"]:
        raise OpError("window_attention: cosine=true (Swin V2) is for HxWxC maps")
    for w, s in zip(a["window"], a["shift"]):
        if s >= w:
            raise OpError(f"window_attention: the shift {s} must be smaller than the window {w}")
    return a


def geometry(call: OpCall) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(windows, shifts, padded sizes) as torchvision applies them. Swin (2D) pads the map to whole windows and
    does not shift along an axis one window covers; Video Swin (3D) shrinks a window to an axis no longer than
    it, unshifted."""
    a, sizes = call.attrs, call.x.spatial
    if len(sizes) == 2:
        windows = a["window"]
        shifts = tuple(0 if w >= padded(n, w) else s for n, w, s in zip(sizes, windows, a["shift"]))
    else:
        windows = tuple(min(n, w) for n, w in zip(sizes, a["window"]))
        shifts = tuple(0 if n <= w else s for n, w, s in zip(sizes, a["window"], a["shift"]))
    return windows, shifts, tuple(padded(n, w) for n, w in zip(sizes, windows))


def attention_shape(call: OpCall) -> TensorType:
    if call.x.channels % call.attrs["heads"]:
        raise OpError(f"window_attention: {call.x.channels} channels are not divisible by heads={call.attrs['heads']}")
    return call.x


def attention_params(call: OpCall) -> list[Param]:
    """In torchvision's state_dict order: the module's own parameters and buffers, then qkv, proj (and V2's MLP)."""
    a, c, h, window = call.attrs, call.x.channels, call.attrs["heads"], call.attrs["window"]
    volume, table = prod(window), prod(2 * w - 1 for w in window)
    if a["cosine"]:  # V2: a learned logit scale; the bias comes from an MLP over a fixed table of coordinates
        params = [Param("logit_scale", (h, 1, 1)),
                  Param("relative_coords_table", (1, *(2 * w - 1 for w in window), 2), "buffer")]
    else:
        params = [Param("relative_position_bias_table", (table, h))]
    index = (volume * volume,) if len(window) == 2 else (volume, volume)  # torchvision keeps the 3D one square
    params += [Param("relative_position_index", index, "buffer"),
               Param("qkv.weight", (3 * c, c), layer="linear")]
    if a["qkv_bias"]:
        params.append(Param("qkv.bias", (3 * c,), layer="linear"))
    params.append(Param("proj.weight", (c, c), layer="linear"))
    if a["proj_bias"]:
        params.append(Param("proj.bias", (c,), layer="linear"))
    if a["cosine"]:
        params += [Param("cpb_mlp.0.weight", (CPB_HIDDEN, 2), layer="linear"),
                   Param("cpb_mlp.0.bias", (CPB_HIDDEN,), layer="linear"),
                   Param("cpb_mlp.2.weight", (h, CPB_HIDDEN), layer="linear")]
    return params


CPB_HIDDEN = 512  # Swin V2's continuous position bias MLP: 2 -> 512 -> heads


def attention_macs(call: OpCall) -> int:
    """On the padded map (P positions, windows of V positions): qkv P*C*3C, Q K^T and A V 2*P*V*C, proj P*C*C;
    V2's position-bias MLP on its (2w - 1)^2 coordinates adds (2w - 1)^2 * 512 * (2 + heads)."""
    a, c = call.attrs, call.x.channels
    windows, _, sizes = geometry(call)
    positions = prod(sizes)
    macs = positions * c * 3 * c + 2 * positions * prod(windows) * c + positions * c * c
    if a["cosine"]:
        macs += prod(2 * w - 1 for w in a["window"]) * CPB_HIDDEN * (2 + a["heads"])
    return macs


def attention_flops(call: OpCall) -> int:
    windows, _, sizes = geometry(call)
    return 2 * attention_macs(call) + 4 * call.attrs["heads"] * prod(sizes) * prod(windows)


window_attention = OpSpec(
    "window_attention", "Shifted-window multi-head self-attention with a relative position bias (Swin "
                        "Transformer; torchvision's ShiftedWindowAttention, or ShiftedWindowAttentionV2 with "
                        "cosine=true) on an HxWxC map.",
    args=(Arg("heads", integer(), doc="attention heads"),
          Arg("window", ints(), 7, "window size, one per axis or one for all (square on an HxWxC map)"),
          Arg("shift", ints(0), 0, "cyclic shift of the windows (half the window in every other block)"),
          Arg("qkv_bias", boolean, True, "bias in the query, key and value projection"),
          Arg("proj_bias", boolean, True, "bias in the output projection"),
          Arg("attention_dropout", number(minimum=0.0, below=1.0), 0.0, "dropout on the attention weights"),
          Arg("dropout", number(minimum=0.0, below=1.0), 0.0, "dropout on the output"),
          Arg("cosine", boolean, False, "Swin V2: scaled cosine attention and a continuous position bias (an MLP)")),
    resolve=resolve_attention, shape=attention_shape, params=attention_params, macs=attention_macs,
    flops=attention_flops, flops_doc="2 per MAC plus 4 per attention score (scale, bias, exp and normalise)",
    rf=lambda c: Tiles(*geometry(c)[:2]),
    traits=frozenset({ANY_LAYOUT}), category="attention", shown=("heads", "window", "shift", "cosine"),
)


def merge_shape(call: OpCall) -> TensorType:
    map_input(call, "patch_merge")
    *depth, h, w = call.x.spatial
    return TensorType((*depth, (h + 1) // 2, (w + 1) // 2, 4 * call.x.channels), channels_last=True)


def merge_rf(call: OpCall) -> Window:
    """2x2 over the height and width; a video's frames pass one by one."""
    depth = (1,) * (call.x.spatial_rank - 2)
    return Window((*depth, 2, 2), (*depth, 2, 2), (1,) * call.x.spatial_rank, (0,) * call.x.spatial_rank)


patch_merge = OpSpec(
    "patch_merge", "Concatenates each 2x2 group of positions of an HxWxC (or TxHxWxC) map: H/2 x W/2 x 4C, in "
                   "torchvision's order (even row even column, odd-even, even-odd, odd-odd; odd sizes padded).",
    shape=merge_shape, rf=merge_rf, traits=frozenset({ANY_LAYOUT}),
    category="tensor",
)



# ---------------------------------------------------------------- MaxViT's multi-axis attention


def partition_geometry(call: OpCall) -> tuple[int, ...]:
    """Per axis, the step between the positions one group holds: 1 for a window (size consecutive positions),
    n / size for a grid (size positions spread evenly over the axis of length n)."""
    a = call.attrs
    return tuple(1 if a["partition"] == "window" else n // a["size"] for n in call.x.spatial)


def partition_shape(call: OpCall) -> TensorType:
    a, x = call.attrs, call.x
    if not (x.channels_last and x.spatial_rank == 2):
        raise OpError(f"partition_attention needs an HxWxC map (channels last: -> channels_last first), got {x}")
    if any(n % a["size"] for n in x.spatial):
        raise OpError(f"partition_attention: the map's height and width ({x.spatial[0]}x{x.spatial[1]}) must be "
                      f"multiples of size={a['size']} (MaxViT's input side must then be a multiple of 32 x size)")
    if x.channels % a["heads"]:
        raise OpError(f"partition_attention: {x.channels} channels are not divisible by heads={a['heads']}")
    return x


def partition_params(call: OpCall) -> list[Param]:
    """torchvision's RelativePositionalMultiHeadAttention, in its state_dict order: the bias table over the
    (2 size - 1)^2 relative offsets, the size^2 x size^2 index into it, to_qkv, merge."""
    c, h, s = call.x.channels, call.attrs["heads"], call.attrs["size"]
    return [Param("relative_position_bias_table", ((2 * s - 1) ** 2, h)),
            Param("relative_position_index", (s * s, s * s), "buffer"),
            Param("to_qkv.weight", (3 * c, c), layer="linear"), Param("to_qkv.bias", (3 * c,), layer="linear"),
            Param("merge.weight", (c, c), layer="linear"), Param("merge.bias", (c,), layer="linear")]


def partition_macs(call: OpCall) -> int:
    """P positions, groups of V = size^2: to_qkv P*C*3C, Q K^T and A V 2*P*V*C, merge P*C*C."""
    c, positions, group = call.x.channels, prod(call.x.spatial), call.attrs["size"] ** 2
    return positions * c * 3 * c + 2 * positions * group * c + positions * c * c


def partition_rf(call: OpCall):
    """A window sees its own size x size tile; a grid position sees every position of its residue class."""
    steps = partition_geometry(call)
    if call.attrs["partition"] == "window":
        return Tiles((call.attrs["size"],) * 2, (0, 0))
    return Grid(steps, (call.attrs["size"],) * 2)


partition_attention = OpSpec(
    "partition_attention", "Multi-head self-attention within the groups of a window or grid partition of an HxWxC "
                           "map, with a relative position bias (MaxViT's block and grid attention; torchvision's "
                           "RelativePositionalMultiHeadAttention inside its PartitionAttentionLayer).",
    args=(Arg("heads", integer(), doc="attention heads"),
          Arg("size", integer(), 7, "positions per group along each axis: size x size tokens attend together"),
          Arg("partition", choice("window", "grid"), "window",
              '"window": consecutive size x size tiles; "grid": size x size positions spaced H/size and W/size '
              "apart (a dilated, map-wide window)")),
    shape=partition_shape, params=partition_params, macs=partition_macs,
    flops=lambda c: 2 * partition_macs(c) + 4 * c.attrs["heads"] * prod(c.x.spatial) * c.attrs["size"] ** 2,
    flops_doc="2 per MAC plus 4 per attention score (scale, bias, exp and normalise)",
    rf=partition_rf, traits=frozenset({ANY_LAYOUT}), category="attention", shown=("heads", "size", "partition"),
)

OPS = [window_attention, patch_merge, partition_attention]
