"""Multiscale Vision Transformers' ops (MViT: Fan et al. 2021; MViTv2: Li et al. 2022), as torchvision's
models/video/mvit.py computes them, on token sequences that are a class token followed by the positions of a
T x H x W grid (time, then rows, then columns, as flatten(2) lays out a C x T x H x W map):

- spacetime_tokens: a C x T x H x W map becomes 1 + T H W tokens: a learned class token, then the positions,
  with MViT v1's separable space-time position embedding (torchvision's PositionalEncoding);
- token_pool: max pooling over the grid, the class token passed through (the pooled residual of a block
  that shrinks the grid: torchvision's pool_skip);
- pool_attention: multi-head self-attention whose queries, keys and values are each pooled over the grid by
  a depthwise 3D conv and a layer norm (torchvision's MultiscaleAttention), with MViTv2's decomposed relative
  position bias and pooled-query residual as options.

A token sequence has no grid of its own: `grid` gives it, [T, H, W], and the network carries it along (each
op checks that the sequence has 1 + T H W tokens).
"""

from __future__ import annotations

from math import prod

from ..types import TensorType
from .spec import (GLOBAL, POINTWISE, Arg, OpCall, OpError, OpSpec, Param, Window, boolean, integer, ints, number,
                   optional)


def grid_arg(v):
    if isinstance(v, list) and len(v) == 3 and all(isinstance(i, int) and not isinstance(i, bool) and i >= 1
                                                   for i in v):
        return tuple(v)
    raise ValueError("must be a list of three integers >= 1: [T, H, W]")


grid_arg.kind = "[T, H, W]"


def triple(value, what: str) -> tuple[int, int, int]:
    if isinstance(value, tuple):
        if len(value) != 3:
            raise OpError(f"'{what}' has {len(value)} entries but the grid has 3 axes")
        return value
    return (value,) * 3


def grid_tokens(call: OpCall, op: str) -> tuple[int, int, int]:
    """The grid of a class token + T H W positions sequence, checked against the input."""
    x, grid = call.x, call.attrs["grid"]
    if not x.tokens or x.rank != 2:
        raise OpError(f"{op} needs a token sequence (NxD), got {x}")
    if x.shape[0] != 1 + prod(grid):
        raise OpError(f"{op}: {x.shape[0]} tokens are not a class token and a {'x'.join(map(str, grid))} grid "
                      f"({1 + prod(grid)} tokens)")
    return grid


def pooled(grid, kernel, stride) -> tuple[int, ...]:
    """The grid after a conv or pool of this kernel and stride, padded by kernel // 2 (torchvision's rule)."""
    return tuple((g + 2 * (k // 2) - k) // s + 1 for g, k, s in zip(grid, kernel, stride))


# ---------------------------------------------------------------- spacetime_tokens


def tokens_shape(call: OpCall) -> TensorType:
    if call.x.spatial_rank != 3 or call.x.channels_last:
        raise OpError(f"spacetime_tokens needs a CxTxHxW map, got {call.x}")
    return TensorType((1 + prod(call.x.spatial), call.x.channels), tokens=True)


def tokens_params(call: OpCall) -> list[Param]:
    c, (t, h, w) = call.x.channels, call.x.spatial
    params = [Param("class_token", (c,))]
    if call.attrs["positions"]:
        params += [Param("spatial_pos", (h * w, c)), Param("temporal_pos", (t, c)), Param("class_pos", (c,))]
    return params


spacetime_tokens = OpSpec(
    "spacetime_tokens", "Turns a CxTxHxW map into a token sequence: a learned class token, then every position "
                        "(time, rows, columns); with `positions`, MViT's separable position embedding is added "
                        "(a learned vector per time step plus one per spatial position, and one for the class "
                        "token), as torchvision's PositionalEncoding.",
    args=(Arg("positions", boolean, True, "add the separable space-time position embedding (MViT v1; v2 has "
                                          "relative positions in its attention instead)"),),
    shape=tokens_shape, params=tokens_params,
    flops=lambda c: 2 * c.out.numel if c.attrs["positions"] else 0,
    flops_doc="2 per output element with positions (sum the embedding, add it), else 0",
    rf=lambda c: POINTWISE, category="transformer", shown=("positions",),
)


# ---------------------------------------------------------------- token_pool


def token_pool_attrs(call: OpCall) -> tuple:
    a = call.attrs
    kernel = triple(a["kernel"], "kernel")
    stride = kernel if a["stride"] is None else triple(a["stride"], "stride")
    pad = triple(a["pad"], "pad")
    return kernel, stride, pad


def token_pool_shape(call: OpCall) -> TensorType:
    grid = grid_tokens(call, "token_pool")
    kernel, stride, pad = token_pool_attrs(call)
    if any(p > k // 2 for p, k in zip(pad, kernel)):
        raise OpError("token_pool: 'pad' may be at most half the kernel")
    out = tuple((g + 2 * p - k) // s + 1 for g, k, s, p in zip(grid, kernel, stride, pad))
    if min(out) < 1:
        raise OpError(f"token_pool: the {'x'.join(map(str, grid))} grid is smaller than the kernel")
    return call.x.with_shape((1 + prod(out), call.x.shape[1]))


def token_pool_rf(call: OpCall) -> Window:
    kernel, stride, pad = token_pool_attrs(call)
    return Window(kernel, stride, (1, 1, 1), pad)


token_pool = OpSpec(
    "token_pool", "Max pooling over the T x H x W grid of a class token + grid token sequence, the class token "
                  "passed through unchanged (MViT's pooled residual, torchvision's pool_skip).",
    args=(Arg("grid", grid_arg, doc="the grid of the input's tokens after the class token"),
          Arg("kernel", ints(), doc="window size, one integer or one per grid axis"),
          Arg("stride", optional(ints()), None,
              "step of the window (default: the kernel size)"),
          Arg("pad", ints(0), 0, "implicit padding per side (at most half the kernel)")),
    shape=token_pool_shape,
    flops=lambda c: (c.out.shape[0] - 1) * c.out.shape[1] * prod(token_pool_attrs(c)[0]),
    flops_doc="kernel size per pooled output element (comparisons)",
    rf=token_pool_rf, category="pooling", shown=("kernel", "stride"),
)


# ---------------------------------------------------------------- pool_attention


def attention_geometry(call: OpCall) -> dict:
    """Grids and sizes of one pool_attention call: the input grid, the query and key/value grids, which of
    q, k, v are pooled, the head width."""
    a = call.attrs
    grid = grid_tokens(call, "pool_attention")
    out = a["out"] or call.x.shape[1]
    if out % a["heads"]:
        raise OpError(f"pool_attention: {out} output features are not divisible by heads={a['heads']}")
    kq, sq = triple(a["kernel_q"], "kernel_q"), triple(a["stride_q"], "stride_q")
    kkv, skv = triple(a["kernel_kv"], "kernel_kv"), triple(a["stride_kv"], "stride_kv")
    pool_q = prod(kq) > 1 or prod(sq) > 1
    pool_kv = prod(kkv) > 1 or prod(skv) > 1
    q_grid = pooled(grid, kq, sq) if pool_q else grid
    kv_grid = pooled(grid, kkv, skv) if pool_kv else grid
    if min(q_grid + kv_grid) < 1:
        raise OpError(f"pool_attention: the {'x'.join(map(str, grid))} grid is too small for its pooling")
    return {"grid": grid, "out": out, "head_dim": out // a["heads"], "kq": kq, "sq": sq, "kkv": kkv, "skv": skv,
            "pool_q": pool_q, "pool_kv": pool_kv, "q_grid": q_grid, "kv_grid": kv_grid}


def rel_pos_sizes(call: OpCall, g: dict) -> tuple[int, int]:
    """torchvision's table sizes: 2 max(q, kv) - 1 spatial positions, with q and kv the larger of H and W divided
    by the strides; 2 T - 1 temporal ones. torchvision interpolates a table whose size does not match the grids
    it meets (other inputs than its own): that is refused here, so that every number is torchvision's exactly."""
    t, h, w = g["grid"]
    size = max(h, w)
    spatial = 2 * max(size // g["sq"][1], size // g["skv"][1]) - 1
    (qt, qh, qw), (kt, kh, kw) = g["q_grid"], g["kv_grid"]
    if 2 * max(qh, kh) - 1 != spatial or 2 * max(qw, kw) - 1 != spatial or 2 * max(qt, kt) - 1 != 2 * t - 1:
        raise OpError(f"pool_attention: on a {'x'.join(map(str, g['grid']))} grid the relative position tables "
                      f"({spatial} spatial, {2 * t - 1} temporal) would be interpolated, as torchvision does for "
                      f"inputs other than its own; use a square grid whose sides the strides divide")
    return spatial, 2 * t - 1


def attention_shape(call: OpCall) -> TensorType:
    g = attention_geometry(call)
    if call.attrs["rel_pos"]:
        rel_pos_sizes(call, g)
    return TensorType((1 + prod(g["q_grid"]), g["out"]), tokens=True)


def attention_params(call: OpCall) -> list[Param]:
    """In torchvision's state_dict order: the relative position tables, qkv, project, then pool_q, pool_k, pool_v."""
    g, c = attention_geometry(call), call.x.shape[1]
    out, hd = g["out"], g["head_dim"]
    params = []
    if call.attrs["rel_pos"]:
        spatial, temporal = rel_pos_sizes(call, g)
        params += [Param("rel_pos_h", (spatial, hd)), Param("rel_pos_w", (spatial, hd)),
                   Param("rel_pos_t", (temporal, hd))]
    params += [Param("qkv.weight", (3 * out, c), layer="linear"), Param("qkv.bias", (3 * out,), layer="linear"),
               Param("project.0.weight", (out, out), layer="linear"),
               Param("project.0.bias", (out,), layer="linear")]
    pools = (("q", g["kq"], g["pool_q"]), ("k", g["kkv"], g["pool_kv"]), ("v", g["kkv"], g["pool_kv"]))
    for name, kernel, on in pools:
        if on:
            params += [Param(f"pool_{name}.pool.weight", (hd, 1, *kernel), layer="conv"),
                       Param(f"pool_{name}.norm_act.0.weight", (hd,), layer="layernorm"),
                       Param(f"pool_{name}.norm_act.0.bias", (hd,), layer="layernorm")]
    return params


def attention_macs(call: OpCall) -> int:
    """qkv N C 3D; each pooling conv D (grid after it) (kernel volume); Q K^T and A V 2 Nq Nk D; with relative
    positions D (q grid) (kt + kh + kw) (its three products of the queries with the tables); project Nq D^2;
    where D = out, N = the input's tokens, Nq and Nk the pooled sequences' (class token included)."""
    g = attention_geometry(call)
    n, c, out = call.x.shape[0], call.x.shape[1], g["out"]
    nq, nk = 1 + prod(g["q_grid"]), 1 + prod(g["kv_grid"])
    macs = n * c * 3 * out + 2 * nq * nk * out + nq * out * out
    if g["pool_q"]:
        macs += out * prod(g["q_grid"]) * prod(g["kq"])
    if g["pool_kv"]:
        macs += 2 * out * prod(g["kv_grid"]) * prod(g["kkv"])
    if call.attrs["rel_pos"]:
        macs += out * prod(g["q_grid"]) * sum(g["kv_grid"])
    return macs


def attention_flops(call: OpCall) -> int:
    g = attention_geometry(call)
    return 2 * attention_macs(call) + 4 * call.attrs["heads"] * (1 + prod(g["q_grid"])) * (1 + prod(g["kv_grid"]))


pool_attention = OpSpec(
    "pool_attention", "Multi-head pooling attention (MViT; torchvision's MultiscaleAttention) on a class token + "
                      "T x H x W grid token sequence: a linear layer makes queries, keys and values; each of them "
                      "may be pooled over the grid, per head, by a depthwise 3D conv (padding kernel // 2) and a "
                      "layer norm, the class token kept; softmax(Q K^T / sqrt(d)) V per head; a linear projection. "
                      "MViTv2 adds a decomposed relative position bias (`rel_pos`) and the pooled queries to the "
                      "result (`residual_pool`, class token excluded).",
    args=(Arg("heads", integer(), doc="attention heads"),
          Arg("grid", grid_arg, doc="the grid of the input's tokens after the class token"),
          Arg("out", optional(integer()), None, "output features (default: the input's)"),
          Arg("kernel_q", ints(), 1, "kernel of the query pooling, one integer or one per grid axis"),
          Arg("stride_q", ints(), 1, "stride of the query pooling (it sets the output grid)"),
          Arg("kernel_kv", ints(), 1, "kernel of the key and value pooling"),
          Arg("stride_kv", ints(), 1, "stride of the key and value pooling"),
          Arg("residual_pool", boolean, False, "add the (pooled) queries to the attention's result (MViTv2)"),
          Arg("rel_pos", boolean, False, "decomposed relative position bias over time, rows and columns (MViTv2)"),
          Arg("eps", number(minimum=0.0), 1e-6, "epsilon of the pooling's layer norms"),
          Arg("dropout", number(minimum=0.0, below=1.0), 0.0, "dropout after the projection")),
    shape=attention_shape, params=attention_params, macs=attention_macs, flops=attention_flops,
    flops_doc="2 per MAC plus 4 per attention score (scale, exp, sum, divide)", rf=lambda c: GLOBAL,
    category="attention", shown=("heads", "stride_q", "stride_kv"),
)

OPS = [spacetime_tokens, token_pool, pool_attention]
