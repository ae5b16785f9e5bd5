"""NumPy backend: IR -> one Python file that needs only numpy and the standard library, for inference.

The file holds, top to bottom: the kernels this network uses (copied by name from numpy_kernels.py,
with the helpers they call, and nothing else), then one class named like the PyTorch backend's. Its
weights are a dict keyed by the PyTorch backend's state_dict names; `load_state_dict`, `load_npz` and
`save_npz` move them in and out, and refuse a missing, unexpected or misshapen weight by name.

`__call__` has one line per op in execution order, each ending in its output shape. The IR's liveness
decides the rest (cnndsl.passes.memory: a node's storage lives until its last reader, views share
their input's storage):
- a variable is deleted (`del`) right after its last reader, so the arrays alive at any step are the
  ones `analyze` counts in peak_activation_bytes;
- an elementwise op whose input's storage has no later reader writes over it (`relu(y, out=y)`,
  `y += s`): never the caller's input arrays, never a network output.

Inference only: `__call__` computes and returns the outputs present in eval mode (one as an array, several as
a dict), as the PyTorch model does in eval. Training outputs (`training output`, GoogLeNet's auxiliary
classifiers) are not computed; their weights are still in SHAPES, so a PyTorch state_dict loads unchanged.

Each op has one entry in EMITTERS (a test checks that every op of the registry has one); an entry
renders the op's call, names the kernels it uses, and says whether it may work in place.
"""

from __future__ import annotations

import ast
import builtins
import functools
import keyword
import math
import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cnndsl import __version__
from cnndsl.ir import Network
from cnndsl.passes import analyze
from cnndsl.types import TensorType
from cnndsl.values import describe

from .pysource import docstring_text, string
from .pytorch import class_name
from .pytorch_ops import product_text

KERNELS_FILE = Path(__file__).with_name("numpy_kernels.py")
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
WIDTH = 110
INDENT = " " * 8  # the body of __call__


# ---------------------------------------------------------------- rendering values


def literal(value) -> str:
    """Python source of a plain value (deterministic; strings escaped)."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return f'float("{value}")'
        return repr(value)
    if isinstance(value, str):
        return string(value)
    if isinstance(value, (tuple, list)):
        inner = ", ".join(literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    raise TypeError(f"no literal for {type(value).__name__}")


def squash(values):
    """One int when every axis agrees, else the tuple."""
    values = tuple(values)
    return values[0] if len(set(values)) == 1 else values


@dataclass(frozen=True)
class Call:
    """A call expression, kept as its parts so that a long line can break between arguments."""

    callee: str
    args: tuple[str, ...] = ()

    def text(self) -> str:
        return f"{self.callee}({', '.join(self.args)})"


def wrap(text: str, tail: str = "", indent: int = 0, width: int = WIDTH) -> list[str]:
    """A statement broken into lines of at most `width` columns (after `indent`), each break after a
    comma inside brackets, continuation lines aligned after the innermost open bracket; `tail` (a
    comment) ends the last line."""
    lines, start, prefix, stack = [], 0, "", []
    while True:
        split, opened, quote, escaped = None, list(stack), None, False
        for i in range(start, len(text)):
            ch, col = text[i], indent + len(prefix) + i - start
            if quote:
                escaped, quote = (False, quote) if escaped else (ch == "\\", None if ch == quote else quote)
                continue
            if ch in "\"'":
                quote = ch
            elif ch in "([{":
                opened.append(col + 1 - indent)
            elif ch in ")]}":
                opened.pop()
            elif ch == "," and opened and text[i + 1:i + 2] == " " and col + 1 <= width:
                split = (i + 2, opened[-1], list(opened))
            if col + 1 > width and split:
                break
        rest = prefix + text[start:]
        if indent + len(rest + tail) <= width or split is None:
            return lines + [rest + tail]
        position, column, stack = split
        lines.append(prefix + text[start:position].rstrip())
        start, prefix = position, " " * column


# ---------------------------------------------------------------- the table


@dataclass
class Ctx:
    """What an emitter sees of one op node."""

    name: str
    attrs: dict
    inputs: list[TensorType]
    out: TensorType
    args: list[str]  # the variables holding the inputs
    params: dict[str, str]  # parameter name relative to the node -> its state_dict key
    weights: str = "w"  # the variable holding the weights dict in __call__

    @property
    def x(self) -> TensorType:
        return self.inputs[0]

    def w(self, name: str) -> str:
        """The expression of one of this node's weights."""
        return f"{self.weights}[{string(self.params[name])}]"

    def w_or_none(self, name: str) -> str:
        return self.w(name) if name in self.params else "None"


def options(pairs: list[tuple[str, object, object]]) -> list[str]:
    """Keyword arguments that differ from the kernel's default: (name, value, default) triples."""
    return [f"{k}={literal(v)}" for k, v, default in pairs if not _same(v, default)]


def _same(a, b) -> bool:
    return type(a) is type(b) and a == b


@dataclass(frozen=True)
class NumpyOp:
    """How one op becomes code. `call` gives a Call of kernels, or an inline expression (str).
    `kernels`: names in numpy_kernels.py the code uses (helpers they call come along).
    `inplace`: the kernel takes out= and may overwrite its first input; `augmented`: the inline
    operator has an augmented form (`+=`); `commutative`: any input may be the one overwritten.
    `identity`: inference returns the input itself.
    `prepare`: (key, expression) pairs computed from the loaded weights, once, at load time.
    `ignored`: parameter names accepted by load_state_dict and never used (num_batches_tracked)."""

    call: Callable[[Ctx], Call | str] | None = None
    kernels: Callable[[Ctx], tuple[str, ...]] = field(default=lambda ctx: ())
    inplace: bool = False
    augmented: str | None = None
    commutative: bool = False
    identity: bool = False
    prepare: Callable[[Ctx, str], list[tuple[str, str, str]]] | None = None
    ignored: tuple[str, ...] = ()


def uses(*names: str) -> Callable[[Ctx], tuple[str, ...]]:
    return lambda ctx: names


def conv_call(ctx: Ctx) -> Call:
    a = ctx.attrs
    pads = a["padding"]
    if all(before == after for before, after in pads):
        padding = squash(before for before, _ in pads)
    else:
        padding = tuple(tuple(p) for p in pads)
    args = [ctx.args[0], ctx.w("weight")]
    if "bias" in ctx.params:
        args.append(ctx.w("bias"))
    args += options([("stride", squash(a["stride"]), 1), ("padding", padding, 0),
                     ("dilation", squash(a["dilation"]), 1), ("groups", a["groups"], 1),
                     ("pad_value", float(a.get("pad_value", 0.0)), 0.0)])
    return Call("conv", tuple(args))


def table_constant(ctx: Ctx) -> str:
    return re.sub(r"\W+", "_", ctx.name).strip("_").upper() + "_TABLE"


def conv_prepare(ctx: Ctx, state: str) -> list[tuple[str, str, str]]:
    """A connection table's kernels spread into a dense weight, zero where the table has no link."""
    if ctx.attrs.get("table") is None:
        return []
    key = ctx.params["weight"]
    dense = (ctx.out.channels, ctx.x.channels, *ctx.attrs["kernel"])
    comment = f"{ctx.name}: a kernel per connection -> a dense {'x'.join(map(str, dense))} weight (zero elsewhere)"
    return [(key, f"connection_weight({state}[{string(key)}], {table_constant(ctx)}, {ctx.x.channels})", comment)]


def pool_call(kind: str) -> Callable[[Ctx], Call]:
    def build(ctx: Ctx) -> Call:
        a = ctx.attrs
        kernel = squash(a["kernel"])
        pairs = [("stride", squash(a["stride"]), kernel), ("padding", squash(a["pad"]), 0)]
        if kind == "maxpool":
            pairs += [("dilation", squash(a["dilation"]), 1), ("ceil_mode", a["ceil_mode"], False)]
        else:
            pairs += [("ceil_mode", a["ceil_mode"], False), ("count_include_pad", a["count_include_pad"], True)]
        return Call(kind, (ctx.args[0], literal(kernel), *options(pairs)))
    return build


def upsample_call(ctx: Ctx) -> Call:
    a = ctx.attrs
    pairs = [("mode", a["mode"], "nearest"), ("align_corners", a["align_corners"], False)]
    if a["scale"] is not None:  # PyTorch interpolates with 1 / scale_factor, not in / out
        pairs.append(("scales", tuple(1 / f for f in a["scale"]), None))
    return Call("upsample", (ctx.args[0], literal(squash(a["out"])), *options(pairs)))


def transposed_call(ctx: Ctx) -> Call:
    a = ctx.attrs
    args = [ctx.args[0], ctx.w("weight")] + ([ctx.w("bias")] if "bias" in ctx.params else [])
    args += options([("stride", squash(a["stride"]), 1), ("padding", squash(a["pad"]), 0),
                     ("output_padding", squash(a["output_pad"]), 0), ("dilation", squash(a["dilation"]), 1),
                     ("groups", a["groups"], 1)])
    return Call("conv_transpose", tuple(args))


def channel_order(ctx: Ctx, last: bool) -> tuple[int, ...]:
    """The axes that move the channels last (0, 2, 3, 1) or first again (0, 3, 1, 2)."""
    n = len(ctx.x.shape) - 1
    return (0, *range(2, n + 2), 1) if last else (0, n + 1, *range(1, n + 1))


def window_attention_call(ctx: Ctx) -> Call:
    a = ctx.attrs
    table = ctx.w("relative_coords_table" if a["cosine"] else "relative_position_bias_table")
    args = [ctx.args[0], table, ctx.w("relative_position_index"), ctx.w("qkv.weight"), ctx.w_or_none("qkv.bias"),
            ctx.w("proj.weight"), ctx.w_or_none("proj.bias"), literal(a["heads"])]
    if ctx.x.spatial_rank == 3:  # Video Swin's windows shrink to short axes
        return Call("window_attention_3d", (*args, literal(a["window"]), literal(a["shift"])))
    args += [literal(a["window"][0])] + options([("shift", a["shift"][0], 0)])
    if a["cosine"]:
        mlp = f"({ctx.w('cpb_mlp.0.weight')}, {ctx.w('cpb_mlp.0.bias')}, {ctx.w('cpb_mlp.2.weight')})"
        args += [f"logit_scale={ctx.w('logit_scale')}", f"cpb={mlp}"]
    return Call("window_attention", tuple(args))


def crop_text(ctx: Ctx) -> str:
    x, like = ctx.inputs
    cuts = [f"{(i - o) // 2}:{(i - o) // 2 + o}" if i != o else ":" for i, o in zip(x.spatial, like.spatial)]
    return f"{ctx.args[0]}[:, :, {', '.join(cuts)}]"


def activation(name: str, extra: Callable[[Ctx], list[str]] = lambda ctx: [], inplace: bool = False) -> NumpyOp:
    return NumpyOp(call=lambda ctx: Call(name, (ctx.args[0], *extra(ctx))), kernels=uses(name), inplace=inplace)


def numpy_axis(axis: int) -> int:
    """An axis counted without the batch, as NumPy counts it (negative axes count from the end)."""
    return axis + 1 if axis >= 0 else axis


def batch_index(ctx: Ctx, index: str) -> str:
    """`[:, index]` with `index` applied to the axis after the batch (slices in the .cnn's numbering)."""
    return f"[{', '.join([':'] * (ctx.attrs['axis'] + 1) + [index])}]"


def slice_text(ctx: Ctx) -> str:
    a = ctx.attrs
    stop = "" if a["stop"] is None or a["stop"] == ctx.x.shape[a["axis"]] else str(a["stop"])
    start = "" if a["start"] == 0 else str(a["start"])
    return ctx.args[0] + batch_index(ctx, f"{start}:{stop}")


def mul_text(ctx: Ctx) -> str:
    """Broadcasting with the batch first: lower-rank operands get unit axes after the batch."""
    return product_text(ctx.args, ctx.inputs)


def pool_attention_call(ctx: Ctx) -> Call:
    a = ctx.attrs
    args = [ctx.args[0], literal(list(a["grid"])), literal(a["heads"]), ctx.w("qkv.weight"), ctx.w("qkv.bias"),
            ctx.w("project.0.weight"), ctx.w("project.0.bias")]
    for name, stride in (("q", a["stride_q"]), ("k", a["stride_kv"]), ("v", a["stride_kv"])):
        if f"pool_{name}.pool.weight" in ctx.params:
            parts = [ctx.w(f"pool_{name}.{p}") for p in ("pool.weight", "norm_act.0.weight", "norm_act.0.bias")]
            args.append(f"pool_{name}=({', '.join(parts)}, {literal(stride)})")
    if a["rel_pos"]:
        args.append(f"rel_pos=({ctx.w('rel_pos_h')}, {ctx.w('rel_pos_w')}, {ctx.w('rel_pos_t')})")
    args += options([("residual_pool", a["residual_pool"], False), ("eps", a["eps"], 1e-6)])
    return Call("pool_attention", tuple(args))


def se_call(ctx: Ctx) -> Call:
    return Call("se", (ctx.args[0], ctx.w("fc1.weight"), ctx.w("fc1.bias"), ctx.w("fc2.weight"), ctx.w("fc2.bias"),
                       ctx.attrs["activation"], ctx.attrs["gate"]))


EMITTERS: dict[str, NumpyOp] = {
    "conv": NumpyOp(call=conv_call, prepare=conv_prepare,
                    kernels=lambda ctx: ("conv", "connection_weight") if ctx.attrs["table"] is not None else ("conv",)),
    "dwconv": NumpyOp(call=conv_call, kernels=uses("conv")),
    "maxpool": NumpyOp(call=pool_call("maxpool"), kernels=uses("maxpool")),
    "avgpool": NumpyOp(call=pool_call("avgpool"), kernels=uses("avgpool")),
    "adaptive_avgpool": NumpyOp(call=lambda ctx: Call("adaptive_avgpool",
                                                      (ctx.args[0], literal(squash(ctx.attrs["size"])))),
                                kernels=uses("adaptive_avgpool")),
    "adaptive_maxpool": NumpyOp(call=lambda ctx: Call("adaptive_maxpool",
                                                      (ctx.args[0], literal(squash(ctx.attrs["size"])))),
                                kernels=uses("adaptive_maxpool")),
    "global_avgpool": NumpyOp(call=lambda ctx: Call("global_avgpool", (ctx.args[0],)), kernels=uses("global_avgpool")),
    "subsample": NumpyOp(call=lambda ctx: Call("subsample", (
        ctx.args[0], ctx.w("weight"), ctx.w("bias"), literal(squash(ctx.attrs["kernel"])),
        *options([("stride", squash(ctx.attrs["stride"]), squash(ctx.attrs["kernel"]))]))), kernels=uses("subsample")),
    "upsample": NumpyOp(call=upsample_call, kernels=uses("upsample")),
    "conv_transpose": NumpyOp(call=transposed_call, kernels=uses("conv_transpose")),
    "pixel_shuffle": NumpyOp(call=lambda ctx: Call("pixel_shuffle", (ctx.args[0], literal(ctx.attrs["factor"]))),
                             kernels=uses("pixel_shuffle")),
    "pixel_unshuffle": NumpyOp(call=lambda ctx: Call("pixel_unshuffle", (ctx.args[0], literal(ctx.attrs["factor"]))),
                               kernels=uses("pixel_unshuffle")),
    "crop": NumpyOp(call=crop_text),
    "channels_last": NumpyOp(call=lambda ctx: f"{ctx.args[0]}.transpose{channel_order(ctx, True)}"),
    "channels_first": NumpyOp(call=lambda ctx: f"{ctx.args[0]}.transpose{channel_order(ctx, False)}"),
    "layernorm2d": NumpyOp(call=lambda ctx: Call("layernorm2d", (
        ctx.args[0], ctx.w("weight"), ctx.w("bias"), *options([("eps", ctx.attrs["eps"], 1e-6)]))),
        kernels=uses("layernorm2d")),
    "layer_scale": NumpyOp(call=lambda ctx: f"{ctx.w('')} * {ctx.args[0]}"),
    "window_attention": NumpyOp(call=window_attention_call, kernels=lambda ctx: (
        "window_attention_3d" if ctx.x.spatial_rank == 3 else "window_attention",)),
    "patch_merge": NumpyOp(call=lambda ctx: Call("patch_merge", (ctx.args[0],)), kernels=uses("patch_merge")),
    "partition_attention": NumpyOp(call=lambda ctx: Call("partition_attention", (
        ctx.args[0], *(ctx.w(k) for k in ("relative_position_bias_table", "relative_position_index", "to_qkv.weight",
                                          "to_qkv.bias", "merge.weight", "merge.bias")),
        literal(ctx.attrs["heads"]), literal(ctx.attrs["size"]),
        *options([("grid", ctx.attrs["partition"] == "grid", False)]))), kernels=uses("partition_attention")),
    "lrn": NumpyOp(call=lambda ctx: Call("lrn", (ctx.args[0], literal(ctx.attrs["size"]), *options(
        [("alpha", ctx.attrs["alpha"], 1e-4), ("beta", ctx.attrs["beta"], 0.75), ("k", ctx.attrs["k"], 1.0)]))),
        kernels=uses("lrn")),
    "batchnorm": NumpyOp(call=lambda ctx: Call("batchnorm", (
        ctx.args[0], ctx.w("weight"), ctx.w("bias"), ctx.w("running_mean"), ctx.w("running_var"),
        *options([("eps", ctx.attrs["eps"], 1e-5)]))), kernels=uses("batchnorm"), inplace=True,
        ignored=("num_batches_tracked",)),
    "layernorm": NumpyOp(call=lambda ctx: Call("layernorm", (
        ctx.args[0], ctx.w("weight"), ctx.w("bias"), *options([("eps", ctx.attrs["eps"], 1e-5)]))),
        kernels=uses("layernorm")),
    "dropout": NumpyOp(identity=True),
    "stochastic_depth": NumpyOp(identity=True),
    "identity": NumpyOp(identity=True),
    "relu": activation("relu", inplace=True),
    "relu6": activation("relu6", inplace=True),
    "leaky_relu": activation("leaky_relu", lambda ctx: options([("slope", ctx.attrs["slope"], 0.01)])),
    "tanh": activation("tanh"),
    "scaled_tanh": activation("scaled_tanh", lambda ctx: options([("a", ctx.attrs["a"], 1.7159),
                                                                  ("s", ctx.attrs["s"], 2 / 3)])),
    "sigmoid": activation("sigmoid"),
    "hardsigmoid": activation("hardsigmoid"),
    "silu": activation("silu"),
    "hardswish": activation("hardswish"),
    "gelu": activation("gelu"),
    "softmax": activation("softmax", lambda ctx: options([("axis", numpy_axis(ctx.attrs["axis"]), -1)])),
    "flatten": NumpyOp(call=lambda ctx: f"{ctx.args[0]}.reshape({ctx.args[0]}.shape[0], -1)"),
    "linear": NumpyOp(call=lambda ctx: Call("linear", (ctx.args[0], ctx.w("weight"), *(
        [ctx.w("bias")] if "bias" in ctx.params else []))), kernels=uses("linear")),
    "add": NumpyOp(call=lambda ctx: " + ".join(ctx.args), augmented="+", commutative=True),
    "mul": NumpyOp(call=mul_text, augmented="*", commutative=True),
    "concat": NumpyOp(call=lambda ctx: f"np.concatenate([{', '.join(ctx.args)}], axis={ctx.attrs['axis'] + 1})"),
    "slice": NumpyOp(call=slice_text),
    "select": NumpyOp(call=lambda ctx: ctx.args[0] + batch_index(ctx, str(ctx.attrs["index"]))),
    "channel_shuffle": NumpyOp(call=lambda ctx: Call("channel_shuffle", (ctx.args[0], literal(ctx.attrs["groups"]))),
                               kernels=uses("channel_shuffle")),
    "se": NumpyOp(call=se_call, kernels=lambda ctx: ("se", ctx.attrs["activation"], ctx.attrs["gate"])),
    "mlp": NumpyOp(call=lambda ctx: Call("mlp", (ctx.args[0], ctx.w("0.weight"), ctx.w("0.bias"), ctx.w("3.weight"),
                                                 ctx.w("3.bias"), ctx.attrs["activation"])),
                   kernels=lambda ctx: ("mlp", ctx.attrs["activation"])),
    "rbf": NumpyOp(call=lambda ctx: Call("rbf", (ctx.args[0], ctx.w("weight"))), kernels=uses("rbf")),
    "patch_embed": NumpyOp(call=lambda ctx: Call("patch_embed", (ctx.args[0], ctx.w("weight"), ctx.w("bias"),
                                                                 literal(ctx.attrs["patch"]))),
                           kernels=uses("patch_embed")),
    "class_token": NumpyOp(call=lambda ctx: Call("class_token", (ctx.args[0], ctx.w(""))), kernels=uses("class_token")),
    "pos_embedding": NumpyOp(call=lambda ctx: f"{ctx.args[0]} + {ctx.w('')}", augmented="+"),
    "attention": NumpyOp(call=lambda ctx: Call("attention", (
        ctx.args[0], ctx.w("in_proj_weight"), ctx.w_or_none("in_proj_bias"), ctx.w("out_proj.weight"),
        ctx.w_or_none("out_proj.bias"), literal(ctx.attrs["heads"]))), kernels=uses("attention")),
    "spacetime_tokens": NumpyOp(call=lambda ctx: Call("spacetime_tokens", (ctx.args[0], ctx.w("class_token"), *(
        [ctx.w("spatial_pos"), ctx.w("temporal_pos"), ctx.w("class_pos")] if ctx.attrs["positions"] else []))),
        kernels=uses("spacetime_tokens")),
    "token_pool": NumpyOp(call=lambda ctx: Call("token_pool", (
        ctx.args[0], literal(list(ctx.attrs["grid"])), literal(ctx.attrs["kernel"]),
        literal(ctx.attrs["kernel"] if ctx.attrs["stride"] is None else ctx.attrs["stride"]),
        literal(ctx.attrs["pad"]))), kernels=uses("token_pool")),
    "pool_attention": NumpyOp(call=pool_attention_call, kernels=uses("pool_attention")),
}


# ---------------------------------------------------------------- the kernels file


@functools.lru_cache(maxsize=4)
def _read_kernels(cls, path: Path, mtime_ns: int):
    return cls.parse(path.read_text(encoding="utf-8"))


@dataclass
class KernelSource:
    """numpy_kernels.py, read as text: its top-level definitions and imports, by name."""

    definitions: dict[str, str]  # name -> source
    order: list[str]
    needs: dict[str, set[str]]  # name -> the top-level names its source refers to
    imports: dict[str, str]  # imported name -> its import line

    @classmethod
    def read(cls, path: Path = KERNELS_FILE) -> KernelSource:
        return _read_kernels(cls, path, path.stat().st_mtime_ns)  # parsed once per process (and file version)

    @classmethod
    def parse(cls, text: str) -> KernelSource:
        tree = ast.parse(text)
        all_lines = text.splitlines()

        def segment(node) -> str:  # ast.get_source_segment, without splitting the whole file on every call
            lines = all_lines[node.lineno - 1:node.end_lineno]
            lines[-1] = lines[-1][:node.end_col_offset]
            lines[0] = lines[0][node.col_offset:]
            return "\n".join(lines)

        definitions, order, needs, imports = {}, [], {}, {}
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                line = segment(node)
                for alias in node.names:
                    imports[alias.asname or alias.name.split(".")[0]] = line
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Assign)):
                if isinstance(node, ast.Assign):  # a constant: NAME = value, with the comments above it
                    name = node.targets[0].id
                    lines = all_lines[:node.lineno - 1]
                    comments = []
                    while lines and lines[-1].startswith("#"):
                        comments.insert(0, lines.pop())
                    source = "\n".join([*comments, segment(node)])
                else:
                    name, source = node.name, segment(node)
                definitions[name] = source
                order.append(name)
                needs[name] = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
        return cls(definitions, order, needs, imports)

    def closure(self, wanted: set[str]) -> list[str]:
        """The wanted definitions and every definition they use, in the file's order."""
        todo, found = list(wanted), set()
        while todo:
            name = todo.pop()
            if name in found:
                continue
            if name not in self.definitions:
                raise KeyError(f"numpy_kernels.py has no definition {name!r}")
            found.add(name)
            todo.extend(n for n in self.needs[name] if n in self.definitions and n not in found)
        return [n for n in self.order if n in found]

    def import_lines(self, names: list[str], extra_text: str) -> list[str]:
        """The import statements of the kernels file that the chosen definitions (or extra code) use."""
        used = set().union(*(self.needs[n] for n in names)) if names else set()
        used |= {n.id for n in ast.walk(ast.parse(extra_text)) if isinstance(n, ast.Name)}
        used |= {n.value.id for n in ast.walk(ast.parse(extra_text))
                 if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)}
        lines = []
        for name, line in self.imports.items():
            if name in used and line not in lines:
                lines.append(line)
        return lines


# ---------------------------------------------------------------- the generator


class Names:
    """Which variable holds which node's value while __call__ runs (a value may have several names)."""

    def __init__(self):
        self.var: dict[str, str] = {}  # node -> the variable to read it from
        self.holder: dict[str, str] = {}  # variable -> the node it holds

    def bind(self, v: str, node: str) -> None:
        self.unbind(v)
        self.var[node] = v
        self.holder[v] = node

    def alias(self, node: str, src: str) -> None:
        """node's value is src's (an identity): it is read from the same variable."""
        self.var[node] = self.var[src]
        self.holder[self.var[src]] = node

    def unbind(self, v: str) -> None:
        self.holder.pop(v, None)

    def names_of(self, node: str) -> list[str]:
        return [v for v, n in self.holder.items() if n == node]


class NumpyGenerator:
    def __init__(self, net: Network):
        self.net = net
        self.totals = analyze(net)
        self.kernels = KernelSource.read()
        self.class_name = class_name(net)
        self.position = {name: i for i, name in enumerate(net.order)}
        self.outputs = set(net.eval_outputs().values())
        self.training = net.training_nodes()  # not computed: only training outputs need them
        end = len(net.order)  # beyond every step: outputs are never overwritten or deleted
        self.last_use = {name: (end if name in self.outputs else self.position[name]) for name in net.order}
        self.consumers: dict[str, list[str]] = {name: [] for name in net.order}
        self.storage_end: dict[str, int] = {}
        for name in net.order:
            data = net.node(name)
            for src in data["inputs"] if name not in self.training else ():
                self.last_use[src] = max(self.last_use[src], self.position[name])
                self.consumers[src].append(name)
        for name in (n for n in net.order if n not in self.training):
            owner = net.node(name)["storage"]
            self.storage_end[owner] = max(self.storage_end.get(owner, -1), self.last_use[name])
        # what __call__'s body refers to besides its variables; the inputs keep their names unless they clash
        self.call_names = (set(keyword.kwlist) | {"self", "np", "math"} | set(self.kernels.definitions)
                           | set(self.kernels.imports) | {self.class_name})
        self.weights_var = next(v for v in ("w", "weights", "w_", "weights_") if v not in net.inputs)
        self.reserved = set(dir(builtins)) | self.call_names | {self.weights_var}
        self.used_kernels: set[str] = set()
        self.prepared: list[tuple[str, str, str]] = []
        self.tables: dict[str, tuple] = {}
        self.ignored: list[str] = []
        self.shapes: dict[str, tuple[int, ...]] = {}
        self._collect_params()

    # ------------------------------------------------------------ weights

    def _collect_params(self) -> None:
        for data in self.net.nodes():
            if data["kind"] != "op":
                continue
            emitter = EMITTERS[data["op"]]
            for p in data["params"]:
                key = f"{data['name']}.{p.name}" if p.name else data["name"]
                if p.name in emitter.ignored:
                    self.ignored.append(key)
                else:
                    self.shapes[key] = tuple(p.shape)

    def _ctx(self, name: str, args: list[str]) -> Ctx:
        data = self.net.node(name)
        params = {p.name: (f"{name}.{p.name}" if p.name else name) for p in data["params"]}
        return Ctx(name, data["attrs"], [self.net.type_of(i) for i in data["inputs"]], data["type"], args, params,
                   self.weights_var)

    # ------------------------------------------------------------ __call__

    def _hints(self) -> dict[str, str]:
        """Variable names from the .cnn file, spread back along chains that end in a named value."""
        hint = {}
        for data in self.net.nodes():
            v = data.get("var")
            if data["kind"] == "op" and v and IDENTIFIER.fullmatch(v) and v not in self.reserved:
                hint[data["name"]] = v
        uses_count: dict[str, int] = {}
        for data in self.net.nodes():
            for src in data["inputs"]:
                uses_count[src] = uses_count.get(src, 0) + 1
        for data in reversed(list(self.net.nodes())):
            name = data["name"]
            if data["kind"] == "op" and len(data["inputs"]) == 1 and name in hint:
                src = data["inputs"][0]
                if (src not in hint and uses_count.get(src) == 1 and src not in self.outputs
                        and self.net.node(src)["kind"] == "op"):
                    hint[src] = hint[name]
        return hint

    def _fresh(self, name: str, busy: set[str]) -> str:
        if not IDENTIFIER.fullmatch(name):
            name = "t"
        if name in self.reserved:
            name += "_"
        candidate, k = name, 1
        while candidate in busy or candidate in self.reserved:
            k += 1
            candidate = f"{name}_{k}"
        return candidate

    def _inplace_ok(self, name: str, src: str) -> bool:
        """May the op at `name` write its result over its first input `src`?"""
        owner = self.net.node(src)["storage"]
        return (self.net.node(owner)["kind"] == "op" and self.storage_end[owner] == self.position[name]
                and self.net.type_of(src).shape == self.net.type_of(name).shape)

    def call_body(self) -> tuple[list[str], list[str]]:
        """(parameter names, body lines) of __call__."""
        net = self.net
        hint = self._hints()
        env = Names()
        params = []
        for pname, node in net.inputs.items():  # the inputs' own names, unless Python or the body needs them
            v = pname if IDENTIFIER.fullmatch(pname) and pname not in self.call_names | set(params) else \
                self._fresh(pname, set(params) | self.call_names)
            params.append(v)
            env.bind(v, node)
        lines = [f"{self.weights_var} = self._weights()"]
        for pname, node in net.inputs.items():
            shape = literal(net.type_of(node).shape)
            lines.append(f"{env.var[node]} = self._input({string(pname)}, {env.var[node]}, {shape})")
        block, renames = None, {}
        for name in net.order:
            data = net.node(name)
            if data["kind"] != "op" or name in self.training:
                continue
            i = self.position[name]
            scope = self._block_scope(data["scope"])
            if scope != block:
                block = scope
                if scope:
                    lines += ["", f"# {_comment(scope)}: block {_comment(net.scopes[scope].block)}"]
                    renames = self._block_renames(net.scopes[scope], env, i)
            lines += self._statement(name, i, env, hint, renames)
            renames = {}
            lines += self._release(data["inputs"], name, i, env)
        outs = net.eval_outputs()
        if len(outs) == 1:
            lines.append(f"return np.ascontiguousarray({env.var[next(iter(outs.values()))]})")
        else:
            items = ", ".join(f"{string(k)}: np.ascontiguousarray({env.var[v]})" for k, v in outs.items())
            lines += wrap(f"return {{{items}}}", "", len(INDENT))
        return params, lines

    def _busy(self, env: Names, i: int) -> set[str]:
        """Variables holding values that a step after i still reads."""
        return {v for v, node in env.holder.items() if self.last_use[node] > i}

    def _block_renames(self, scope, env: Names, i: int) -> dict[str, tuple[str, str]]:
        """A block that reads its input more than once (a shortcut) calls it by the block's own parameter
        name, as the .cnn file's block does, when its first step would otherwise have to invent a name:
        {variable now: (the block's name for it, node)}. Applied by _statement (`x = y`)."""
        renames = {}
        for pname, node in scope.inputs:
            if node not in env.var or env.var[node] == pname or not IDENTIFIER.fullmatch(pname):
                continue
            readers = [n for n in self.consumers[node] if self.position[n] >= i]
            if len(readers) < 2 or pname in self.reserved or pname in env.holder:
                continue
            renames[env.var[node]] = (pname, node)
        return renames

    def _statement(self, name: str, i: int, env: Names, hint: dict[str, str], renames: dict) -> list[str]:
        data = self.net.node(name)
        emitter = EMITTERS[data["op"]]
        args = [env.var[src] for src in data["inputs"]]
        src = data["inputs"][0]
        dies = self.last_use[src] == i
        busy = self._busy(env, i)
        shape = str(data["type"])
        if emitter.identity:
            what = _comment(name if self._local(name) == data["op"] else f"{name} ({data['op']})")
            what += ": the identity at inference"
            if dies:
                env.alias(name, src)
                return [f"# {what}"]
            v = self._fresh(hint.get(name, self._local(name)), busy)
            env.bind(v, name)
            return [f"{v} = {args[0]}  # {what}"]
        choice = hint.get(name)
        if choice is None and emitter.commutative:  # `x + y` in a block: y, made in the block, goes on
            block = self._block_scope(data["scope"])
            made = [a for a, s in zip(args, data["inputs"]) if self.last_use[s] == i
                    and self._block_scope(self.net.node(s)["scope"]).startswith(block)]
            choice = made[0] if made else None
        if choice is None and dies:
            choice = args[0]  # the chain goes on in the same variable
        v = self._fresh(choice or self._fallback_name(name), busy - set(renames))
        lines = []
        if v in renames:  # `x = y`: the block's input takes the block's name, the chain keeps y
            pname, node = renames[v]
            lines.append(f"{pname} = {v}")
            env.bind(pname, node)
            env.unbind(v)
            args = [env.var[s] for s in data["inputs"]]
        elif v in busy:
            v = self._fresh(v, busy)
        ctx = self._ctx(name, args)
        self.used_kernels.update(emitter.kernels(ctx))
        if emitter.prepare:
            self.prepared.extend(emitter.prepare(ctx, "arrays"))
            if data["attrs"].get("table") is not None:
                self.tables[table_constant(ctx)] = (name, data["attrs"]["table"])
        if emitter.commutative and v in args[1:]:  # `y = x + y` -> `y += x` when y's array is free
            j = args.index(v)
            if self._inplace_ok(name, data["inputs"][j]):
                order = [j, *(k for k in range(len(args)) if k != j)]
                ctx.args, ctx.inputs = [args[k] for k in order], [ctx.inputs[k] for k in order]
                args, src = ctx.args, data["inputs"][j]
        inplace = v == args[0] and self._inplace_ok(name, src)
        expr = emitter.call(ctx)
        env.bind(v, name)
        operator = f"{args[0]} {emitter.augmented} "
        if inplace and emitter.augmented and isinstance(expr, str) and expr.startswith(operator):
            return lines + self._wrap(f"{v} {emitter.augmented}= {expr[len(operator):]}", shape)
        if inplace and emitter.inplace and isinstance(expr, Call):
            expr = Call(expr.callee, (*expr.args, f"out={v}"))
        return lines + self._wrap(f"{v} = ", shape, expr)

    def _release(self, inputs: list[str], name: str, i: int, env: Names) -> list[str]:
        """`del` the variables whose values no later step reads."""
        dead = []
        for node in dict.fromkeys([*inputs, name]):
            if self.last_use[node] <= i:
                for v in env.names_of(node):
                    dead.append(v)
                    env.unbind(v)
        lines = []
        for v in dead:  # `del a, b, c`, as many names a line as fit
            if lines and len(INDENT + lines[-1] + ", " + v) <= WIDTH:
                lines[-1] += ", " + v
            else:
                lines.append("del " + v)
        return lines

    def _block_scope(self, scope: str) -> str:
        while scope and self.net.scopes[scope].kind != "block":
            scope = scope.rpartition(".")[0] if "." in scope else ""
            while scope and scope not in self.net.scopes:
                scope = scope.rpartition(".")[0] if "." in scope else ""
        return scope

    def _fallback_name(self, name: str) -> str:
        """A name for a value the .cnn file does not name, starting a new chain: the label of the
        innermost enclosing block or sequence that has a word for a label (`branch2` for
        inception3a.branch2.0.conv), else its own (`conv`)."""
        parts = name.split(".")[:-1]
        while parts:
            if IDENTIFIER.fullmatch(parts[-1]) and parts[-1] not in self.reserved:
                return parts[-1]
            parts.pop()
        return self._local(name)

    @staticmethod
    def _local(name: str) -> str:
        local = name.rsplit(".", 1)[-1]
        return local if IDENTIFIER.fullmatch(local) else "t"

    def _wrap(self, head: str, comment: str, expr: Call | str | None = None) -> list[str]:
        """One statement and its comment, broken after commas when longer than the line width."""
        text = head + ("" if expr is None else expr.text() if isinstance(expr, Call) else expr)
        return wrap(text, f"  # {comment}" if comment else "", len(INDENT))

    # ------------------------------------------------------------ the file

    def header(self) -> str:
        net, t = self.net, self.totals
        settings = ", ".join(f"{k}={_setting(v)}" for k, v in net.params.items()) or "none"
        def shapes(m):
            return ", ".join(f"{k} {net.type_of(v)}" for k, v in m.items())
        example = ", ".join(f"np.zeros((1, {', '.join(map(str, net.type_of(v).shape))}), np.float32)"
                            for v in net.inputs.values())
        lines = [
            f"{net.name}: {net.doc}" if net.doc else net.name, "",
            f"Generated by cnndsl {__version__} from {net.source} (NumPy backend); edit the .cnn file, not this one.",
            "Needs only NumPy. Inference only: batch norm uses its running statistics, dropout is the identity.",
            "", f"network parameters: {settings}", f"inputs: {shapes(net.inputs)}",
            f"outputs: {shapes(net.eval_outputs())}" + (f" (training outputs, not computed at inference: "
                                                        f"{', '.join(net.training_outputs)})" if net.training_outputs
                                                       else ""),
            (f"parameters: {t['params']:,} (trainable {t['trainable_params']:,}, fixed {t['fixed_params']:,}); "
             f"buffers: {t['buffers']:,}"), f"MACs: {t['macs']:,} per sample",
            f"peak activation memory: {t['peak_activation_bytes']:,} bytes per sample (float32)", "",
            f"Usage: model = {self.class_name}(); model.load_npz(\"weights.npz\")  # or load_state_dict(a state dict)",
            f"       y = model({example})",
        ]
        return '"""' + "\n".join(_doc_text(line) for line in lines) + '\n"""'

    def class_source(self) -> str:
        params, body = self.call_body()
        net = self.net
        name = self.class_name
        shapes = [f"        {string(k)}: {literal(v)}," for k, v in self.shapes.items()]
        ignored = [f"        {string(k)}," for k in self.ignored]
        ins = ", ".join(f"{k} (N, {', '.join(map(str, net.type_of(v).shape))})" for k, v in net.inputs.items())
        evals = net.eval_outputs()
        outs = ", ".join(f"{k} (N, {', '.join(map(str, net.type_of(v).shape))})" for k, v in evals.items())
        returns = "a dict {" + ", ".join(string(k) + ": ..." for k in evals) + "}" if len(evals) > 1 else outs
        out = [
            f"class {name}:",
            f'    """{_doc_text(net.doc or net.name)}"""',
            "",
            "    # Every parameter and buffer, by its name in the PyTorch backend's state_dict, with its shape.",
            "    SHAPES = {", *shapes, "    }",
        ]
        if ignored:
            out += ["    # PyTorch's batch-norm counters: accepted by load_state_dict, never used.",
                    "    IGNORED = frozenset({", *ignored, "    })"]
        else:
            out += ["    IGNORED = frozenset()"]
        out += [
            "",
            "    def __init__(self, state=None):",
            "        self.state = {}  # the weights as loaded, by name",
            "        self.weights = None  # what the kernels read: the same arrays" +
            (", connection tables made dense" if self.prepared else ""),
            "        if state is not None or not self.SHAPES:",
            "            self.load_state_dict(state or {})",
            "",
            "    def load_state_dict(self, state):",
            '        """Load every weight from a mapping name -> array (NumPy arrays, torch tensors, lists...).',
            '        All or nothing: a missing, unexpected or misshapen weight raises WeightError, naming it."""',
            "        arrays = {}",
            "        for key, value in state.items():",
            "            if key in self.IGNORED:",
            "                continue",
            "            if key not in self.SHAPES:",
            "                shape = tuple(np.shape(_numpy(value)))",
            '                raise WeightError(f"unexpected weight {key!r} of shape {shape}: "',
            f'                                  "{name} has no such parameter or buffer")',
            "            array = np.ascontiguousarray(_numpy(value), dtype=np.float32)",
            "            if array.shape != self.SHAPES[key]:",
            '                raise WeightError(f"weight {key!r} has shape {array.shape}, "',
            f'                                  f"but {name} needs {{self.SHAPES[key]}}")',
            "            arrays[key] = array",
            "        missing = [key for key in self.SHAPES if key not in arrays]",
            "        if missing:",
            '            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""',
            '            raise WeightError(f"missing weight {missing[0]!r} of shape {self.SHAPES[missing[0]]}{more}")',
        ]
        if self.prepared:
            out.append("        weights = dict(arrays)")
            for key, expr, comment in self.prepared:
                out += [f"        # {_comment(comment)}", f"        weights[{string(key)}] = {expr}"]
            out.append("        self.state, self.weights = arrays, weights")
        else:
            out.append("        self.state = self.weights = arrays")
        out += [
            "",
            "    def state_dict(self):",
            "        return dict(self.state)",
            "",
            "    def save_npz(self, path):",
            '        """Save the weights to a .npz file, one array per state_dict name."""',
            "        np.savez(path, **self.state)",
            "",
            "    def load_npz(self, path):",
            "        with np.load(path) as data:",
            "            self.load_state_dict({key: data[key] for key in data.files})",
            "",
            "    def _weights(self):",
            "        if self.weights is None:",
            f'            raise RuntimeError("{name} has no weights yet: call load_state_dict(...) or load_npz(...)")',
            "        return self.weights",
            "",
            "    @staticmethod",
            "    def _input(name, value, shape):",
            "        x = np.asarray(value, dtype=np.float32)",
            "        if x.shape[1:] != shape or x.ndim != len(shape) + 1:",
            '            expected = ", ".join(map(str, ("N", *shape)))',
            '            raise ValueError(f"input {name} has shape {x.shape}, but the network expects ({expected})")',
            "        return x",
            "",
            f"    def __call__(self, {', '.join(params)}):",
        ]
        doc = f"{returns} for {ins}; float32, batch first."
        renamed = [f"the input {k} is the argument {p}" for k, p in zip(net.inputs, params) if k != p]
        if renamed:
            doc += f" ({'; '.join(renamed)}: its name is taken)"
        doc_lines = textwrap.wrap(_doc_text(doc), WIDTH - len(INDENT) - 6, break_long_words=False)
        out += [INDENT + '"""' + "\n".join(doc_lines) + '"""'] if len(doc_lines) == 1 else \
            [INDENT + '"""' + doc_lines[0], *(INDENT + line for line in doc_lines[1:]), INDENT + '"""']
        out += [(INDENT + line if line else "") for line in body]
        return "\n".join(out)

    def source(self) -> str:
        cls = self.class_source()
        helpers = ["WeightError", "_numpy"]
        names = self.kernels.closure(self.used_kernels | set(helpers))
        kernel_text = [self.kernels.definitions[n] for n in names]
        constants = [f"# {_comment(node)}'s connection table: the input channels each output channel reads\n{k} = (\n"
                     + "".join(f"    {literal(row)},\n" for row in table) + ")"
                     for k, (node, table) in sorted(self.tables.items())]
        body = "\n\n\n".join([*kernel_text, *(["\n".join(constants)] if constants else []), cls])
        imports = self.kernels.import_lines(names, cls + "\n" + "\n".join(constants))
        stdlib = [line for line in imports if not _third_party(line)]
        third = [line for line in imports if _third_party(line)]
        import_block = "\n\n".join(block for block in ("\n".join(stdlib), "\n".join(third)) if block)
        text = "\n".join([self.header(), "", import_block, "", "", body, "", "",
                          f'__all__ = ["{self.class_name}", "WeightError"]', ""])
        ast.parse(text)  # a generator bug must never produce a file that does not parse
        return text


def _third_party(line: str) -> bool:
    return line.split()[1].split(".")[0] == "numpy"


def _doc_text(text: str) -> str:
    return docstring_text(text)


def _comment(text: str) -> str:
    """Text safe on one comment line."""
    return re.sub(r"[\r\n\x00-\x1f\x7f]", " ", str(text))


def _setting(value) -> str:
    if isinstance(value, (bool, int, float, str)) or value is None:
        return literal(value)
    if isinstance(value, list):
        return "[" + ", ".join(_setting(v) for v in value) + "]"
    return describe(value)


def generate(net: Network) -> str:
    """The NumPy source of a network (deterministic: the same IR gives the same bytes)."""
    return NumpyGenerator(net).source()
