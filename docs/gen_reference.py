"""Regenerate the generated parts of docs/language.md from the compiler itself.

    python docs/gen_reference.py            rewrite them in place
    python docs/gen_reference.py --check    exit 1 if they are stale (CI)

Three kinds of text are generated, so that the reference can never drift from the compiler:

- the op reference, between the `ops:begin` and `ops:end` marker comments: one section per op of the
  registry (cnndsl.ops.REGISTRY) with its signature, arguments (name, `check.kind`, default, doc),
  inputs, rules and a worked example computed by elaborating and analysing a one-op network;
- the builtins table, between `builtins:begin` and `builtins:end`: every function of
  cnndsl.values.BUILTINS with its usage and example calls evaluated by the evaluator;
- the output of every ```console block: each `$ cnndsl ...` line is run (in-process) in a temporary
  folder holding the document's ```cnn file=NAME examples, and the lines under it are its output.

The words for an op's shape, parameter, MAC and receptive-field rules come from the spec when it has a
`shape_doc`, `params_doc`, `macs_doc`, `rf_doc` or `inputs_doc` attribute (as it has `flops_doc`), else
from NOTES below; an op with neither gets words derived from its spec and its example, so a new op is
documented the moment it is registered.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shlex
import sys
import tempfile
from pathlib import Path

DOC = Path(__file__).resolve().with_name("language.md")

CATEGORIES = [  # (category, title), in the order the reference presents them
    ("convolution", "Convolution"),
    ("pooling", "Pooling"),
    ("resampling", "Upsampling and cropping"),
    ("normalization", "Normalisation"),
    ("activation", "Activations"),
    ("regularization", "Regularisation"),
    ("linear", "Fully connected"),
    ("merge", "Merging paths"),
    ("tensor", "Reshaping and routing"),
    ("composite", "Composite layers"),
    ("transformer", "Transformer"),
    ("attention", "Attention"),
]

_SAME_SHAPE = "the input's shape"
_ACT = {"shape": _SAME_SHAPE, "inputs": "one tensor of any shape"}
_WINDOW_POOL_SHAPE = (
    "channels unchanged; each spatial axis becomes floor((size + 2 pad - dilation (kernel - 1) - 1 "
    "[+ stride - 1 in ceil mode]) / stride) + 1, as PyTorch computes it (in ceil mode a last window that "
    "would start inside the right padding is dropped)")

NOTES: dict[str, dict[str, str]] = {
    "conv": {
        "inputs": "one channel-first tensor: CxL, CxHxW or CxDxHxW (the rank chooses Conv1d, 2d or 3d)",
        "shape": "`out` channels; each spatial axis becomes floor((size + padding - dilation (kernel - 1) - 1) / "
                 "stride) + 1. `pad=\"same\"` pads dilation (kernel - 1) in total per axis, the smaller half on "
                 "the left, and needs stride 1; `\"valid\"` pads nothing. Input and output channels must be "
                 "divisible by `groups`; a `table` has one row per output channel, names input channels "
                 "0..C-1 and excludes `groups`",
        "params": "`weight` out x (C / groups) x kernel (with a `table`: connections x kernel, where "
                  "connections is the number of entries of the table); `bias` out, or with "
                  "`bias=\"untied\"` one per output element (the output's shape); none with `bias=false`",
        "macs": "output positions x connections x kernel volume, where connections = out x C / groups "
                "(or the table's entries)",
        "rf": "a window: kernel, stride, dilation and left padding per axis",
    },
    "dwconv": {
        "inputs": "one channel-first tensor: CxL, CxHxW or CxDxHxW",
        "shape": "C x `multiplier` channels; spatial axes as conv",
        "params": "`weight` (C x multiplier) x 1 x kernel; `bias` C x multiplier (unless `bias=false`)",
        "macs": "output elements x kernel volume (conv with groups = C)",
        "rf": "a window, as conv",
    },
    "maxpool": {
        "inputs": "one channel-first tensor: CxL, CxHxW or CxDxHxW",
        "shape": _WINDOW_POOL_SHAPE + "; `pad` may be at most half the kernel",
        "rf": "a window: kernel, stride, dilation and padding per axis",
    },
    "avgpool": {
        "inputs": "one channel-first tensor: CxL, CxHxW or CxDxHxW",
        "shape": _WINDOW_POOL_SHAPE.replace("dilation (kernel - 1)", "(kernel - 1)")
                 + "; `pad` may be at most half the kernel",
        "rf": "a window: kernel, stride and padding per axis",
    },
    "adaptive_avgpool": {
        "inputs": "one channel-first tensor: CxL, CxHxW or CxDxHxW",
        "shape": "channels unchanged; the spatial axes become `size` (one integer for every axis, or a list)",
        "rf": "global when every output axis is 1; a window of size/out (kernel = stride) on axes that divide "
              "evenly; on an uneven axis PyTorch's windows differ in size, so the largest is used and the "
              "field is marked approximate (`~` in the table)",
    },
    "global_avgpool": {
        "inputs": "one channel-first tensor: CxL, CxHxW or CxDxHxW",
        "shape": "C x 1 (x 1 x 1): the spatial axes are kept, with size 1 (flatten afterwards for a vector)",
        "rf": "global",
    },
    "subsample": {
        "inputs": "one channel-first tensor: CxL, CxHxW or CxDxHxW",
        "shape": "channels unchanged; each spatial axis becomes floor((size - kernel) / stride) + 1 (no padding)",
        "params": "`weight` C (one coefficient per map) and `bias` C",
        "rf": "a window: kernel and stride per axis",
    },
    "softmax": {"shape": _SAME_SHAPE, "inputs": "one tensor of any shape; `axis` must exist"},
    "batchnorm": {
        "inputs": "one channel-first tensor (a vector F counts as F channels); not a token sequence",
        "shape": _SAME_SHAPE,
        "params": "`weight` C and `bias` C (trainable); buffers `running_mean` C, `running_var` C and "
                  "`num_batches_tracked` (one element)",
    },
    "layernorm": {
        "inputs": "one tensor; it normalises over the last axis (D of a token sequence NxD)",
        "shape": _SAME_SHAPE,
        "params": "`weight` D and `bias` D, D = the size of the last axis",
    },
    "lrn": {"inputs": "one channel-first tensor; not a token sequence", "shape": _SAME_SHAPE},
    "dropout": {"inputs": "one tensor of any shape", "shape": _SAME_SHAPE},
    "stochastic_depth": {"inputs": "one tensor of any shape", "shape": _SAME_SHAPE},
    "identity": {"inputs": "one tensor of any shape", "shape": _SAME_SHAPE},
    "flatten": {"inputs": "one tensor of any shape", "shape": "a vector of all the input's elements (C x H x W)"},
    "linear": {
        "inputs": "a flat vector F, or a token sequence NxD (applied to each token); flatten a map first",
        "shape": "the last axis becomes `out`",
        "params": "`weight` out x in and `bias` out (unless `bias=false`)",
        "macs": "out x in, once per token for a sequence",
        "rf": "global on a flat vector (every output sees every input position); pointwise on tokens",
    },
    "add": {
        "inputs": "two or more tensors of exactly the same shape: `a + b`, `add(a, b, c)` or `[a, b] -> add`",
        "shape": _SAME_SHAPE,
    },
    "mul": {
        "inputs": "two or more tensors whose shapes broadcast: `a * b`, `mul(a, b)`",
        "shape": "broadcast as NumPy and PyTorch do, aligned from the right: an axis of size 1 stretches to the "
                 "other's size (C x 1 x 1 times C x H x W gives C x H x W)",
    },
    "concat": {
        "inputs": "one or more tensors, as a list: `concat([a, b])`, `concat(a, b)` or `[a, b] -> concat`",
        "shape": "sizes along `axis` add up; every other axis must be equal",
    },
    "slice": {
        "inputs": "one tensor",
        "shape": "`axis` becomes stop - start long; 0 <= start < stop <= the axis' size",
    },
    "select": {
        "inputs": "one token sequence NxD or a 1D map CxL (a flat vector would leave one number per sample, and "
                  "a map with 2 or 3 spatial axes a map of fewer, which the receptive fields do not follow: "
                  "`slice(i, i + 1)` keeps the axis)",
        "shape": "the input's shape without `axis`, a flat vector (`select(0)` on NxD tokens gives D); "
                 "-size <= index < size",
        "rf": "pointwise: the chosen token, channel or position keeps its field (a flat vector reports none)",
    },
    "channel_shuffle": {"inputs": "one channel-first tensor; channels divisible by `groups`", "shape": _SAME_SHAPE},
    "se": {
        "inputs": "one channel-first tensor: CxL, CxHxW or CxDxHxW",
        "shape": _SAME_SHAPE,
        "params": "`fc1.weight` squeeze x C x 1 x 1, `fc1.bias` squeeze, `fc2.weight` C x squeeze x 1 x 1, "
                  "`fc2.bias` C",
        "macs": "2 x C x squeeze (the two 1x1 convs on the pooled vector)",
        "rf": "a gate: each position keeps its input's field, marked `global_gate` (g in the table) because "
              "the scale comes from the whole map; convs after it go on growing the conv path's field",
    },
    "mlp": {
        "inputs": "a flat vector F, or a token sequence NxD (applied to each token)",
        "shape": "the last axis becomes `out` (default: unchanged)",
        "params": "`0.weight` hidden x in, `0.bias` hidden, `3.weight` out x hidden, `3.bias` out",
        "macs": "hidden x (in + out), once per token for a sequence",
        "rf": "as linear: global on a flat vector, pointwise on tokens",
    },
    "rbf": {
        "inputs": "a flat vector F",
        "shape": "`units`",
        "params": "`weight` units x F, of kind fixed (prototypes chosen by hand, never trained)",
        "macs": "units x F (one per prototype entry)",
        "rf": "global",
    },
    "patch_embed": {
        "inputs": "one CxHxW image, H and W divisible by `patch`",
        "shape": "a token sequence (H / patch) (W / patch) x `dim`",
        "params": "`weight` dim x C x patch x patch and `bias` dim (a conv with kernel = stride = patch)",
        "macs": "tokens x dim x C x patch^2",
        "rf": "a patch x patch window with stride patch; the tokens carry it on (not shown: they have no "
              "spatial axes) until a global op",
    },
    "class_token": {
        "inputs": "a token sequence NxD",
        "shape": "(N + 1) x D",
        "params": "the node itself is the parameter, 1 x 1 x D (its state_dict key is the node's name)",
    },
    "pos_embedding": {
        "inputs": "a token sequence NxD",
        "shape": _SAME_SHAPE,
        "params": "the node itself is the parameter, 1 x N x D",
    },
    "attention": {
        "inputs": "a token sequence NxD, D divisible by `heads`",
        "shape": _SAME_SHAPE,
        "params": "`in_proj_weight` 3D x D, `in_proj_bias` 3D, `out_proj.weight` D x D, `out_proj.bias` D "
                  "(no biases with `bias=false`), as nn.MultiheadAttention",
        "macs": "4 N D^2 (the Q, K, V and output projections) + 2 N^2 D (Q K^T and the weighted sum of V)",
        "rf": "global",
    },
    "spacetime_tokens": {
        "inputs": "one CxTxHxW map",
        "shape": "a token sequence (1 + T H W) x C: the class token, then the positions (time, rows, columns)",
        "params": "`class_token` C; with `positions`, `spatial_pos` (H W) x C, `temporal_pos` T x C, `class_pos` "
                  "C (torchvision's PositionalEncoding)",
        "rf": "pointwise: each token keeps its position's field (carried on, not shown, through the tokens)",
    },
    "token_pool": {
        "inputs": "a token sequence (1 + T H W) x D: a class token and the grid `grid` = [T, H, W]",
        "shape": "(1 + T' H' W') x D, each grid axis pooled as maxpool's rule (floor mode)",
        "rf": "a window: kernel, stride and padding per grid axis, carried on through the tokens",
    },
    "pool_attention": {
        "inputs": "a token sequence (1 + T H W) x C: a class token and the grid `grid` = [T, H, W]; `out` "
                  "divisible by `heads`",
        "shape": "(1 + T' H' W') x out, where T' H' W' is the grid after the query pooling: per axis "
                 "floor((size + 2 (kernel // 2) - kernel) / stride) + 1 (unchanged without query pooling); with "
                 "`rel_pos`, the grids must need relative position tables of torchvision's sizes (a square grid "
                 "whose sides the strides divide), which torchvision would otherwise interpolate",
        "params": "with `rel_pos`: `rel_pos_h`, `rel_pos_w` (2 max(H/stride_q, H/stride_kv) - 1) x d and `rel_pos_t` "
                  "(2T - 1) x d, d = out / heads; `qkv.weight` 3 out x C, `qkv.bias` 3 out, `project.0.weight` "
                  "out x out, `project.0.bias` out; for each of q, k, v that is pooled (kernel or stride not 1): "
                  "`pool_q.pool.weight` d x 1 x kernel, `pool_q.norm_act.0.weight` d and `.bias` d (likewise "
                  "`pool_k`, `pool_v`), as torchvision's MultiscaleAttention",
        "macs": "N C 3 out (qkv) + out x (pooled grid) x (kernel volume) per pooling conv + 2 Nq Nk out (Q K^T, "
                "A V) + out x (query grid) x (Tk + Hk + Wk) with `rel_pos` + Nq out^2 (project)",
        "rf": "global",
    },
    "partition_attention": {
        "inputs": "an HxWxC map (channels last), H and W multiples of `size`, C divisible by `heads`",
        "shape": _SAME_SHAPE,
        "params": "`relative_position_bias_table` (2 size - 1)^2 x heads, the buffer `relative_position_index` "
                  "size^2 x size^2, `to_qkv.weight` 3C x C, `to_qkv.bias` 3C, `merge.weight` C x C, `merge.bias` C, "
                  "as torchvision's RelativePositionalMultiHeadAttention",
        "macs": "H W C 3C (to_qkv) + 2 H W size^2 C (Q K^T and the weighted sum of V, within each group) + H W C^2 "
                "(merge)",
        "rf": "\"window\": each output sees its own size x size tile (as Swin's windows, unshifted); \"grid\": along "
              "each axis of length n, output o sees the size positions o mod (n / size) + t n / size, spread over "
              "the whole axis: reported as the first and last input pixel each position sees (the fields repeat "
              "along the map, effective stride 0), and \"global\" where every position's field spans the whole input",
    },
}
for _name in ("relu", "relu6", "leaky_relu", "tanh", "scaled_tanh", "sigmoid", "hardsigmoid", "silu", "hardswish",
              "gelu"):
    NOTES[_name] = _ACT
NOTES["adaptive_maxpool"] = NOTES["adaptive_avgpool"]

# One worked example per op: input shapes (as `input` declarations write them) and the expression.
EXAMPLES: dict[str, tuple[dict[str, str], str]] = {
    "conv": ({"x": "3x32x32"}, "x -> conv(16, 3, pad=1)"),
    "dwconv": ({"x": "32x56x56"}, "x -> dwconv(3, stride=2, pad=1, bias=false)"),
    "maxpool": ({"x": "64x112x112"}, "x -> maxpool(3, stride=2, pad=1)"),
    "avgpool": ({"x": "16x10x10"}, "x -> avgpool(2)"),
    "adaptive_avgpool": ({"x": "256x13x13"}, "x -> adaptive_avgpool(6)"),
    "adaptive_maxpool": ({"x": "64x8x8"}, "x -> adaptive_maxpool(2)"),
    "global_avgpool": ({"x": "512x7x7"}, "x -> global_avgpool"),
    "subsample": ({"x": "6x28x28"}, "x -> subsample(2)"),
    "softmax": ({"x": "[10]"}, "x -> softmax"),
    "batchnorm": ({"x": "64x56x56"}, "x -> batchnorm"),
    "layernorm": ({"x": "tokens 197x768"}, "x -> layernorm(eps=1e-6)"),
    "lrn": ({"x": "96x55x55"}, "x -> lrn(5, alpha=1e-4, beta=0.75, k=2)"),
    "dropout": ({"x": "[4096]"}, "x -> dropout(0.5)"),
    "stochastic_depth": ({"x": "96x56x56"}, "x -> stochastic_depth(0.1)"),
    "flatten": ({"x": "512x1x1"}, "x -> flatten"),
    "linear": ({"x": "[512]"}, "x -> linear(1000)"),
    "add": ({"a": "64x56x56", "b": "64x56x56"}, "a + b"),
    "mul": ({"a": "64x56x56", "b": "64x1x1"}, "a * b"),
    "concat": ({"a": "64x28x28", "b": "32x28x28"}, "concat(a, b)"),
    "slice": ({"x": "116x28x28"}, "x -> slice(0, 58)"),
    "channel_shuffle": ({"x": "116x28x28"}, "x -> channel_shuffle(2)"),
    "se": ({"x": "96x14x14"}, "x -> se(24)"),
    "mlp": ({"x": "tokens 197x768"}, "x -> mlp(3072)"),
    "rbf": ({"x": "[84]"}, "x -> rbf(10)"),
    "patch_embed": ({"x": "3x224x224"}, "x -> patch_embed(768, 16)"),
    "class_token": ({"x": "tokens 196x768"}, "x -> class_token"),
    "pos_embedding": ({"x": "tokens 197x768"}, "x -> pos_embedding"),
    "attention": ({"x": "tokens 197x768"}, "x -> attention(12)"),
    "spacetime_tokens": ({"x": "96x8x56x56"}, "x -> spacetime_tokens"),
    "token_pool": ({"x": "tokens 25089x96"},
                   "x -> token_pool([8, 56, 56], [1, 3, 3], stride=[1, 2, 2], pad=[0, 1, 1])"),
    "pool_attention": ({"x": "tokens 25089x96"},
                       "x -> pool_attention(1, [8, 56, 56], out=192, kernel_q=3, stride_q=[1, 2, 2], kernel_kv=3, "
                       "stride_kv=[1, 4, 4])"),
    "partition_attention": ({"x": "64x56x56"}, 'x -> channels_last -> partition_attention(2, 7, "grid")'),
    "scaled_tanh": ({"x": "6x28x28"}, "x -> scaled_tanh"),
    "leaky_relu": ({"x": "64x56x56"}, "x -> leaky_relu(0.1)"),
}
_DEFAULT_INPUT = {"x": "64x56x56"}

BUILTIN_EXAMPLES: dict[str, list[str]] = {
    "range": ["range(3)", "range(1, 7, 2)"],
    "len": ["len([64, 128, 256])"],
    "min": ["min(3, 1, 2)", "min([4, 5])"],
    "max": ["max(1.0, 0.75)"],
    "sum": ["sum([3, 4, 6, 3])"],
    "abs": ["abs(-2)"],
    "ceil": ["ceil(224 / 32)"],
    "floor": ["floor(2.9)"],
    "round": ["round(2.5)", "round(3.5)", "round(1.2345, 2)"],
    "sqrt": ["sqrt(768 / 12)"],
    "int": ["int(2.9)", "int(-2.9)", "int(\"42\")"],
    "float": ["float(3)"],
    "str": ["str(7)", "\"layer\" + str(2)"],
    "make_divisible": ["make_divisible(32 * 0.75)", "make_divisible(30, 8)", "make_divisible(1280 * 1.4)"],
    "enumerate": ["enumerate([64, 128])", "enumerate([\"a\"], 1)"],
    "zip": ["zip([1, 6], [16, 24])"],
}

BEGIN, END = "<!-- {}:begin -->", "<!-- {}:end -->"
_FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


# ---------------------------------------------------------------- reading the document


def fenced_blocks(text: str) -> list[tuple[str, dict[str, str], str, int]]:
    """Every fenced code block: (language, {key: value} from the info string, body, line number)."""
    out = []
    for m in _FENCE.finditer(text):
        words = m.group(1).split()
        lang = words[0] if words else ""
        options = dict(w.split("=", 1) for w in words[1:] if "=" in w)
        out.append((lang, options, m.group(2), text.count("\n", 0, m.start()) + 1))
    return out


def example_files(text: str) -> dict[str, str]:
    """The ```cnn file=NAME blocks: the files the console examples (and imports) refer to."""
    return {opts["file"]: body for lang, opts, body, _ in fenced_blocks(text) if lang == "cnn" and "file" in opts}


def write_example_files(text: str, folder: Path) -> None:
    for name, body in example_files(text).items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body, encoding="utf-8")


def replace_between(text: str, name: str, body: str) -> str:
    begin, end = BEGIN.format(name), END.format(name)
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < start:
        raise SystemExit(f"{DOC.name}: missing {begin} ... {end}")
    return text[:start + len(begin)] + "\n" + body.strip("\n") + "\n" + text[stop:]


# ---------------------------------------------------------------- formatting helpers


def show(value) -> str:
    """A value as .cnn source writes it."""
    if value is None:
        return "none"
    if value is True or value is False:
        return str(value).lower()
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(show(v) for v in value) + "]"
    return str(value)


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def dims(shape) -> str:
    return "x".join(map(str, shape)) if shape else "scalar"


@contextlib.contextmanager
def _chdir(path: Path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


# ---------------------------------------------------------------- ops


def _inputs_text(spec) -> str:
    if spec.inputs == 1:
        return "one tensor"
    words = {2: "two", 3: "three", 4: "four"}
    if spec.inputs > 1:
        return f"{words.get(spec.inputs, spec.inputs)} tensors"
    if spec.min_inputs > 1:
        return f"{words.get(spec.min_inputs, spec.min_inputs)} or more tensors"
    return "one or more tensors (a list)"


def _note(spec, field: str) -> str | None:
    own = getattr(spec, f"{field}_doc", None)
    if own:
        return own
    return NOTES.get(spec.name, {}).get(field)


def _probe_call(spec) -> tuple[dict[str, str], str] | None:
    """An example for an op without one in EXAMPLES: required arguments get plain values."""
    values = []
    for arg in spec.args:
        if not arg.required:
            continue
        kind = getattr(arg.check, "kind", "")
        options = re.findall(r'"([^"]*)"', kind)
        if kind.startswith("int"):
            values.append("2")
        elif kind.startswith("number"):
            values.append("0.5")
        elif options:
            values.append(f'"{options[0]}"')
        else:
            return None
    args = f"({', '.join(values)})" if values else ""
    if spec.inputs != 1:
        n = max(spec.inputs, spec.min_inputs, 2)
        names = [chr(ord("a") + i) for i in range(n)]
        call = f"{spec.name}({', '.join(names)}{', ' + ', '.join(values) if values else ''})"
        return {name: _DEFAULT_INPUT["x"] for name in names}, call
    return _DEFAULT_INPUT, f"x -> {spec.name}{args}"


_PROBE_INPUTS = ["64x56x56", "tokens 16x64", "[64]", "16x100", "8x8x16x16"]


def run_example(inputs: dict[str, str], expr: str, folder: Path):
    """Elaborate and analyse a one-op network; return (network, output node data) or raise CnnError."""
    import cnndsl

    lines = ["network example() {", *(f"    input {k}: {v}" for k, v in inputs.items()), f"    output y = {expr}",
             "}", ""]
    path = folder / "example.cnn"
    path.write_text("\n".join(lines), encoding="utf-8")
    net = cnndsl.load(str(path))
    cnndsl.analyze(net)
    return net, net.node(net.outputs["y"])


def _example(spec, folder: Path):
    import cnndsl

    if spec.name in EXAMPLES:
        inputs, expr = EXAMPLES[spec.name]
        return inputs, expr, *run_example(inputs, expr, folder)
    probe = _probe_call(spec)
    if probe is None:
        return None
    inputs, expr = probe
    for shape in _PROBE_INPUTS:
        inputs = {k: shape for k in inputs}
        try:
            return inputs, expr, *run_example(inputs, expr, folder)
        except cnndsl.CnnError:
            continue
    return None


def _rf_text(rf) -> str:
    from cnndsl.ops import GLOBAL

    if rf is None:
        return "none (no spatial axes)"
    if rf == GLOBAL:
        return "global"
    text = f"{dims(rf.size)}, stride {dims(rf.stride)}, padding {dims(rf.padding)}"
    return (text + (" (approximate)" if not rf.exact else "") + (" (merged)" if rf.merged else "")
            + (" (and the whole input, through the gate)" if rf.global_gate else ""))


def _example_text(found) -> str:
    from cnndsl.ops import GLOBAL

    inputs, expr, net, data = found
    shown_inputs = ", ".join(f"`{k}: {net.type_of(net.inputs[k])}`" for k in inputs)
    parts = [f"`{expr}` with {shown_inputs} gives **{data['type']}**"]
    for kinds, what in ((("trainable", "fixed"), "parameters"), (("buffer",), "buffers")):
        params = [p for p in data["params"] if p.kind in kinds]
        if params:
            listed = ", ".join(f"`{p.name or data['name']}` {dims(p.shape)}" + (" (fixed)" if p.kind == "fixed" else "")
                               for p in params)
            parts.append(f"{what} {listed} ({sum(p.numel for p in params):,} in all)")
    parts.append(f"{data['macs']:,} MACs, {data['flops']:,} FLOPs")
    rf = data["rf"]
    if rf == GLOBAL or (rf is not None and (set(rf.size) | set(rf.stride) != {1} or rf.global_gate)):
        parts.append(f"receptive field {_rf_text(rf)}")
    return "; ".join(parts) + "."


def _rf_words(spec, found) -> str:
    from cnndsl.ops import GATED, GLOBAL, POINTWISE, Window

    note = _note(spec, "rf")
    if note:
        return note
    if "merge" in spec.traits:
        return "where paths meet: per axis the largest incoming field, and the node is marked when they differ"
    if found is None:
        return "see the op's rule"
    from cnndsl.passes import op_call

    _, _, net, data = found
    rule = spec.rf(op_call(net, data["name"]))
    if rule == POINTWISE:
        return "pointwise: the field passes through unchanged"
    if rule == GLOBAL:
        return "global"
    if rule == GATED:
        return ("a gate: each position keeps its input's field (the conv path goes on growing) and is marked as "
                "also seeing the whole input, through the scale computed from every position")
    if isinstance(rule, Window):
        return "a window (kernel, stride, dilation, padding)"
    return "see the op's rule"


def signature(spec) -> str:
    """The layer form `conv(out, kernel, ...)`; a multi-input op shows its tensors: `add(a, b, ...)`."""
    text = spec.signature()
    if spec.inputs == 1:
        return spec.name if not spec.args else text
    tensors = ", ".join(chr(ord("a") + i) for i in range(spec.inputs)) if spec.inputs else "a, b, ..."
    inner = text[len(spec.name) + 1:-1]
    return f"{spec.name}({tensors}{', ' + inner if inner else ''})"


def op_section(spec, folder: Path) -> str:
    from cnndsl.ops import spec as spec_module

    found = _example(spec, folder)
    lines = [f"#### {spec.name}", "", f"`{signature(spec)}`", "", spec.doc]
    if spec.aliases:
        lines += ["", "Also spelled " + ", ".join(f"`{a}`" for a in spec.aliases) + "."]
    if spec.args:
        lines += ["", "| argument | type | default | meaning |", "| --- | --- | --- | --- |"]
        for a in spec.args:
            default = "required" if a.required else f"`{show(a.default)}`"
            lines.append(f"| `{a.name}` | {cell(getattr(a.check, 'kind', '?'))} | {default} | {cell(a.doc)} |")
    facts = [("Inputs", _note(spec, "inputs") or _inputs_text(spec))]
    facts.append(("Shape", _note(spec, "shape") or ("see the example below" if found else "")))
    if spec.params is spec_module._no_params:
        facts.append(("Parameters", "none"))
    else:
        facts.append(("Parameters", _note(spec, "params") or "see the example below"))
    facts.append(("MACs", "0" if spec.macs is spec_module._zero else _note(spec, "macs") or "see the example below"))
    facts.append(("FLOPs", spec.flops_doc))
    facts.append(("Receptive field", _rf_words(spec, found)))
    if "view" in spec.traits:
        facts.append(("Memory", "a view: the output shares its input's storage (no new activation bytes)"))
    if "merge" in spec.traits and _note(spec, "rf"):
        facts.append(("Merging", "where paths meet, the receptive field is the largest per axis, marked when they "
                                 + "differ"))
    if found is not None:
        facts.append(("Example", _example_text(found)))
    lines.append("")
    lines += [f"- **{k}:** {v.rstrip('.')}." if k != "Example" else f"- **{k}:** {v}" for k, v in facts if v]
    return "\n".join(lines)


def render_ops() -> str:
    from cnndsl.ops import REGISTRY

    by_category: dict[str, list] = {}
    for spec in REGISTRY.values():
        by_category.setdefault(spec.category, []).append(spec)
    order = [c for c, _ in CATEGORIES if c in by_category] + sorted(set(by_category) - {c for c, _ in CATEGORIES})
    titles = dict(CATEGORIES)
    index = ["| category | ops |", "| --- | --- |"]
    for cat in order:
        names = ", ".join(f"[`{s.name}`](#{s.name})" + "".join(f" (`{a}`)" for a in s.aliases)
                          for s in by_category[cat])
        index.append(f"| {titles.get(cat, cat.capitalize())} | {names} |")
    sections = []
    with tempfile.TemporaryDirectory() as tmp:
        for cat in order:
            sections.append(f"### {titles.get(cat, cat.capitalize())}")
            sections += [op_section(spec, Path(tmp)) for spec in by_category[cat]]
    return "\n".join(index) + "\n\n" + "\n\n".join(sections)


# ---------------------------------------------------------------- builtins


def evaluate(expr: str):
    """The value of a constant expression, as the evaluator computes it."""
    from cnndsl.elaborate import Evaluator
    from cnndsl.errors import Source
    from cnndsl.syntax import parse_expression
    from cnndsl.values import Env

    return Evaluator.constant(parse_expression(Source("example", expr)), Env())


def render_builtins() -> str:
    from cnndsl.values import BUILTINS

    lines = ["| function | what it computes | example | value |", "| --- | --- | --- | --- |"]
    for name, builtin in BUILTINS.items():
        usage, _, meaning = builtin.doc.partition(": ")
        examples = BUILTIN_EXAMPLES.get(name, [])
        shown = "<br>".join(f"`{e}`" for e in examples)
        values = "<br>".join(f"`{show(evaluate(e))}`" for e in examples)
        lines.append(f"| `{cell(usage)}` | {cell(meaning) or '&nbsp;'} | {shown} | {values} |")
    return "\n".join(lines)


# ---------------------------------------------------------------- console examples


def run_command(command: str) -> str:
    """Run one `cnndsl ...` command line in-process; its stdout and stderr, as a terminal shows them."""
    from cnndsl.cli import main

    argv = shlex.split(command)
    if not argv or argv[0] != "cnndsl":
        raise SystemExit(f"a console example runs cnndsl only, got: {command}")
    out = err = io.StringIO()  # one stream, so warnings (stderr) come where a terminal shows them
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv[1:])
        except SystemExit as exc:  # argparse's --help or usage errors
            code = exc.code
    if code not in (0, 1, None):  # 2 is a compiler bug: never document it as the expected output
        raise RuntimeError(f"`{command}` exited {code}:\n{err.getvalue()}")
    return out.getvalue().rstrip("\n")


def render_console(text: str) -> str:
    """Rewrite the output under every `$ cnndsl ...` line of the ```console blocks."""
    with tempfile.TemporaryDirectory() as tmp:
        write_example_files(text, Path(tmp))

        def redo(m: re.Match) -> str:
            if m.group(1).split()[:1] != ["console"]:
                return m.group(0)
            lines = []
            for line in m.group(2).splitlines():
                if line.startswith("$ "):
                    if lines:
                        lines.append("")
                    lines.append(line.rstrip())
                    with _chdir(Path(tmp)):
                        lines += [row.rstrip() for row in run_command(line[2:]).splitlines()]
            return f"```{m.group(1)}\n" + "\n".join(lines) + "\n```"

        return _FENCE.sub(redo, text)


# ---------------------------------------------------------------- entry points


def generate(text: str) -> str:
    """The document with every generated part brought up to date."""
    text = replace_between(text, "builtins", render_builtins())
    text = replace_between(text, "ops", render_ops())
    return render_console(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/language.md is stale")
    args = parser.parse_args(argv)
    current = DOC.read_text(encoding="utf-8")
    fresh = generate(current)
    if args.check:
        if fresh != current:
            print(f"{DOC} is stale: run python docs/gen_reference.py", file=sys.stderr)
            return 1
        return 0
    if fresh != current:
        tmp = DOC.with_suffix(".md.tmp")
        tmp.write_text(fresh, encoding="utf-8")
        os.replace(tmp, DOC)
        print(f"updated {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
