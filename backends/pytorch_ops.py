"""PyTorch emitters: for every op, how to build its module and how to call it inline.

The table maps op name -> TorchOp. `module(ctx)` gives a constructor Call (a small tree, so that the
code generator can turn values that differ between instances of a block into constructor arguments);
`call(ctx, args)` gives an inline expression for ops that need no module. `helpers` names the classes
and functions (in pytorch_helpers.py) the emitted code relies on; they are copied into the file only
when used. `owner_param` ops (class token, position embedding) are a Parameter of the enclosing module,
named by the node itself, as torchvision's ViT has them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

from cnndsl.types import TensorType

from .pysource import string


class Code(str):
    """Source text to emit as it is (a class name), not as a string literal."""


@dataclass(frozen=True)
class Call:
    """A constructor call: callee(*args, **kwargs); values are literals, Calls, or Slots. `defaults`
    holds torch's defaults: a keyword equal to its default is left out when the call is rendered."""

    callee: str
    args: tuple = ()
    kwargs: tuple = ()  # ((name, value), ...) in order
    defaults: tuple = ()  # ((name, value), ...)
    per_axis: tuple = ()  # the keywords that are a size per spatial axis, where an int means every axis

    def rebuilt(self, args: tuple, kwargs: tuple) -> Call:
        """The same call with other arguments (its defaults and per-axis keywords kept)."""
        return dataclasses.replace(self, args=args, kwargs=kwargs)

    def default(self, name: str):
        return dict(self.defaults).get(name, _NO_DEFAULT)


_NO_DEFAULT = object()


@dataclass
class Ctx:
    attrs: dict
    inputs: list[TensorType]
    out: TensorType
    name: str = ""
    inplace: bool = False  # the generator proved the input dead and not needed for backward

    @property
    def x(self) -> TensorType:
        return self.inputs[0]

    @property
    def dims(self) -> int:
        """1, 2 or 3: the number in nn.Conv{n}d, nn.BatchNorm{n}d ..."""
        return max(1, self.x.spatial_rank)


@dataclass(frozen=True)
class TorchOp:
    module: Callable[[Ctx], Call] | None = None
    call: Callable[[Ctx, list[str]], str] | None = None
    helpers: tuple[str, ...] = ()
    owner_param: Callable[[Ctx], str] | None = None  # the Parameter's initialiser, for owner_param ops
    augmented: str | None = None  # `call` writes `a <augmented> b`; in place (trait INPLACE) it is `a <augmented>= b`
    uses: Callable[[Ctx], tuple[str, ...]] = field(default=lambda ctx: ())  # helpers depending on attrs
    # a plain torch module and what forward() does to its output, used where the module is called by name (not
    # inside an nn.Sequential, which needs `module`): ViT's conv_proj is an nn.Conv2d whose output forward()
    # turns into tokens, as torchvision's _process_input does
    plain: Callable[[Ctx], Call] | None = None
    after: Callable[[str], str] | None = None
    # the torch classes of the layers inside the module, by attribute path (SqueezeExcitation's fc1 is an
    # nn.Conv2d), for the inner layers an op spec declares (Param.layer): weight initialisation selects them
    # by class, as torchvision's `isinstance` loops do (backends/pytorch_init.py)
    layers: Callable[[Ctx], dict[str, str]] = field(default=lambda ctx: {})
    # attributes that forward() writes from its input's shape where the block computed them from it
    # (ShuffleNet's split, `x[:, :x.shape[1] // 2]`), so that one class serves every width; `call` reads
    # such an attribute's number as `.value`
    sized: tuple[str, ...] = ()


def squash(values) -> Any:
    """A per-axis tuple as torch likes it: one int when every axis agrees."""
    values = tuple(values)
    return values[0] if len(set(values)) == 1 else values


def kw(**pairs) -> tuple:
    return tuple(pairs.items())


class Options(tuple):
    """Keyword arguments with torch's defaults attached (see Call.defaults)."""

    defaults: tuple = ()


def options(defaults: dict, **pairs) -> Options:
    out = Options(pairs.items())
    out.defaults = tuple(defaults.items())
    return out


def ctor(callee: str, args: tuple = (), kwargs: tuple = (), per_axis: tuple = ()) -> Call:
    """A constructor Call, carrying the defaults of its keyword options."""
    return Call(callee, tuple(args), tuple(kwargs), getattr(kwargs, "defaults", ()), per_axis)


PER_AXIS = ("kernel_size", "stride", "padding", "dilation")  # a conv's and a pool's sizes: an int for every axis


# ---------------------------------------------------------------- convolutions and pooling


def conv_padding(a: dict):
    pads = a["padding"]
    if all(left == right for left, right in pads):
        return squash(left for left, _ in pads)
    return "same"


def classic(a: dict) -> bool:
    """LeCun-era convolutions that nn.Conv*d cannot express."""
    return a["table"] is not None or a["bias"] == "untied" or a["pad_value"] != 0


def conv_module(ctx: Ctx) -> Call:
    a = ctx.attrs
    if classic(a):
        return ctor("ClassicConv", (ctx.x.channels, a["out"], tuple(a["kernel"])),
                    options({"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "pad_value": 0.0, "table": None,
                             "untied_bias": None, "bias": True},
                            stride=squash(a["stride"]), padding=conv_padding(a) if conv_padding(a) != "same"
                            else tuple(a["padding"]), dilation=squash(a["dilation"]), groups=a["groups"],
                            pad_value=a["pad_value"], table=a["table"],
                            untied_bias=tuple(ctx.out.spatial) if a["bias"] == "untied" else None,
                            bias=bool(a["bias"])))
    return ctor(f"nn.Conv{ctx.dims}d", (ctx.x.channels, a["out"]),
                options({"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "bias": True},
                        kernel_size=squash(a["kernel"]), stride=squash(a["stride"]), padding=conv_padding(a),
                        dilation=squash(a["dilation"]), groups=a["groups"], bias=bool(a["bias"])), PER_AXIS)


def pool_module(kind: str) -> Callable[[Ctx], Call]:
    def build(ctx: Ctx) -> Call:
        a = ctx.attrs
        extra = {"dilation": squash(a["dilation"])} if kind == "Max" else {"count_include_pad": a["count_include_pad"]}
        return ctor(f"nn.{kind}Pool{ctx.dims}d", (squash(a["kernel"]),),
                    options({"stride": squash(a["kernel"]), "padding": 0, "dilation": 1, "ceil_mode": False,
                             "count_include_pad": True},
                            stride=squash(a["stride"]), padding=squash(a["pad"]), ceil_mode=a["ceil_mode"], **extra),
                    PER_AXIS)
    return build


def pool_call(kind: str) -> Callable[[Ctx, list[str]], str]:
    def build(ctx: Ctx, args: list[str]) -> str:
        module = pool_module(kind)(ctx)
        rest = [render(v) for v in module.args]
        rest += [f"{k}={render(v)}" for k, v in module.kwargs if not same(v, module.default(k))]
        return f"F.{kind.lower()}_pool{ctx.dims}d({', '.join([args[0], *rest])})"
    return build


def adaptive(kind: str, size: Callable[[Ctx], Any]) -> TorchOp:
    return TorchOp(
        module=lambda ctx: ctor(f"nn.Adaptive{kind.capitalize()}Pool{ctx.dims}d", (size(ctx),)),
        call=lambda ctx, a: f"F.adaptive_{kind}_pool{ctx.dims}d({a[0]}, {render(size(ctx))})",
    )


# ---------------------------------------------------------------- upsampling and cropping


def interpolate_options(ctx: Ctx) -> Options:
    """F.interpolate's and nn.Upsample's keywords: the factor if one was given, else the size."""
    a = ctx.attrs
    where = {"scale_factor": squash(a["scale"])} if a["scale"] is not None else {"size": squash(a["out"])}
    corners = {"align_corners": a["align_corners"]} if a["mode"] != "nearest" else {}
    return options({"mode": "nearest"}, **where, mode=a["mode"], **corners)


def interpolate_call(ctx: Ctx, args: list[str]) -> str:
    keywords = [(k, v) for k, v in interpolate_options(ctx) if not (k == "mode" and v == "nearest")]
    parts = [args[0]] + [f"{k}={render(v)}" for k, v in keywords]
    return f"F.interpolate({', '.join(parts)})"


def transposed_module(ctx: Ctx) -> Call:
    a = ctx.attrs
    return ctor(f"nn.ConvTranspose{ctx.dims}d", (ctx.x.channels, a["out"]),
                options({"stride": 1, "padding": 0, "output_padding": 0, "groups": 1, "bias": True, "dilation": 1},
                        kernel_size=squash(a["kernel"]), stride=squash(a["stride"]), padding=squash(a["pad"]),
                        output_padding=squash(a["output_pad"]), groups=a["groups"], bias=a["bias"],
                        dilation=squash(a["dilation"])))


def channel_dims(ctx: Ctx, last: bool) -> tuple[int, ...]:
    """The permutation that moves the channels last (0, 2, 3, 1) or first again (0, 3, 1, 2)."""
    n = len(ctx.x.shape) - 1
    return (0, *range(2, n + 2), 1) if last else (0, n + 1, *range(1, n + 1))


def permute_op(last: bool) -> TorchOp:
    return TorchOp(module=lambda ctx: ctor("Permute", (list(channel_dims(ctx, last)),)),
                   call=lambda ctx, a: f"{a[0]}.permute{channel_dims(ctx, last)}", helpers=("Permute",))


WINDOW_HELPERS = {
    "ShiftedWindowAttention": ("ShiftedWindowAttention", "shifted_window_attention"),
    "ShiftedWindowAttentionV2": ("ShiftedWindowAttention", "ShiftedWindowAttentionV2", "shifted_window_attention"),
    "ShiftedWindowAttention3d": ("ShiftedWindowAttention3d", "shifted_window_attention_3d"),
}


def window_attention_class(ctx: Ctx) -> str:
    if ctx.x.spatial_rank == 3:
        return "ShiftedWindowAttention3d"
    return "ShiftedWindowAttentionV2" if ctx.attrs["cosine"] else "ShiftedWindowAttention"


def window_and_shift(ctx: Ctx) -> tuple:
    """Square 2D windows as one int; Video Swin's (T, H, W) windows as lists, as torchvision writes them."""
    a = ctx.attrs
    if ctx.x.spatial_rank == 2:
        return a["window"][0], a["shift"][0]
    return list(a["window"]), list(a["shift"])


# ---------------------------------------------------------------- activations

ACTIVATION_MODULES = {
    "relu": "nn.ReLU", "relu6": "nn.ReLU6", "tanh": "nn.Tanh", "sigmoid": "nn.Sigmoid",
    "hardsigmoid": "nn.Hardsigmoid", "silu": "nn.SiLU", "hardswish": "nn.Hardswish", "gelu": "nn.GELU",
}
ACTIVATION_CALLS = {
    "relu": "F.relu", "relu6": "F.relu6", "tanh": "torch.tanh", "sigmoid": "torch.sigmoid",
    "hardsigmoid": "F.hardsigmoid", "silu": "F.silu", "hardswish": "F.hardswish", "gelu": "F.gelu",
}


def activation(name: str) -> TorchOp:
    def module(ctx: Ctx) -> Call:
        return ctor(ACTIVATION_MODULES[name], (), options({"inplace": False}, inplace=ctx.inplace))

    def call(ctx: Ctx, a: list[str]) -> str:
        return f"{ACTIVATION_CALLS[name]}({a[0]}{', inplace=True' if ctx.inplace else ''})"

    return TorchOp(module=module, call=call)


def torch_axis(axis: int) -> int:
    """An axis counted without the batch, as torch counts it (negative axes count from the end)."""
    return axis + 1 if axis >= 0 else axis


def slice_text(ctx: Ctx, x: str) -> str:
    a = ctx.attrs
    # a bound forward() computes from the input's shape (TorchOp.sized) carries its number as `.value`
    value = {k: a[k].value if getattr(a[k], "value", None) is not None else a[k] for k in ("start", "stop")}
    stop = "" if value["stop"] is None or value["stop"] == ctx.x.shape[a["axis"]] else str(a["stop"])
    start = "" if value["start"] == 0 else str(a["start"])
    return f"{x}[{', '.join([':'] * (a['axis'] + 1))}, {start}:{stop}]"


def select_text(ctx: Ctx, x: str) -> str:
    return f"{x}[{', '.join([':'] * (ctx.attrs['axis'] + 1))}, {ctx.attrs['index']}]"


def product_text(args: list[str], inputs: list[TensorType]) -> str:
    """Broadcasting over the axes after the batch, aligned from the right (the shape rule's): an operand of
    lower rank gets unit axes after its batch axis, `z[:, None, None]`. A bare `x * z` would align z's batch
    axis with one of x's axes. The same text indexes torch tensors and numpy arrays (both backends use it)."""
    rank = max(t.rank for t in inputs)
    return " * ".join(a if t.rank == rank else f"{a}[:, {', '.join(['None'] * (rank - t.rank))}]"
                      for a, t in zip(args, inputs))


def mul_text(ctx: Ctx, args: list[str]) -> str:
    return product_text(args, ctx.inputs)


# ---------------------------------------------------------------- the table

EMITTERS: dict[str, TorchOp] = {
    "conv": TorchOp(module=conv_module, uses=lambda ctx: ("ClassicConv",) if classic(ctx.attrs) else ()),

    "dwconv": TorchOp(module=conv_module),
    "maxpool": TorchOp(module=pool_module("Max"), call=pool_call("Max")),
    "avgpool": TorchOp(module=pool_module("Avg"), call=pool_call("Avg")),
    "adaptive_avgpool": adaptive("avg", lambda ctx: squash(ctx.attrs["size"])),
    "adaptive_maxpool": adaptive("max", lambda ctx: squash(ctx.attrs["size"])),
    "global_avgpool": adaptive("avg", lambda ctx: 1),
    "subsample": TorchOp(module=lambda ctx: ctor("Subsample", (ctx.x.channels, squash(ctx.attrs["kernel"])),
                                                 options({"stride": squash(ctx.attrs["kernel"])},
                                                         stride=squash(ctx.attrs["stride"]))),
                         helpers=("Subsample",)),
    "upsample": TorchOp(module=lambda ctx: ctor("nn.Upsample", (), interpolate_options(ctx)), call=interpolate_call),
    "conv_transpose": TorchOp(module=transposed_module),
    "pixel_shuffle": TorchOp(module=lambda ctx: ctor("nn.PixelShuffle", (ctx.attrs["factor"],)),
                             call=lambda ctx, a: f"F.pixel_shuffle({a[0]}, {ctx.attrs['factor']})"),
    "pixel_unshuffle": TorchOp(module=lambda ctx: ctor("nn.PixelUnshuffle", (ctx.attrs["factor"],)),
                               call=lambda ctx, a: f"F.pixel_unshuffle({a[0]}, {ctx.attrs['factor']})"),
    # the offsets are computed from the shapes at run time, so one block class serves every level of a U-Net
    "crop": TorchOp(call=lambda ctx, a: f"center_crop({a[0]}, {a[1]})", helpers=("center_crop",)),
    "channels_last": permute_op(last=True),
    "channels_first": permute_op(last=False),
    "layernorm2d": TorchOp(module=lambda ctx: ctor("LayerNorm2d", (ctx.x.channels,),
                                                   options({"eps": 1e-5}, eps=ctx.attrs["eps"])),
                           helpers=("LayerNorm2d",)),
    "layer_scale": TorchOp(owner_param=lambda ctx: (f"nn.Parameter(torch.full(({ctx.x.channels}, "
                                                    f"{', '.join(['1'] * ctx.x.spatial_rank)}), "
                                                    f"{render(ctx.attrs['init'])}))"),
                           call=lambda ctx, a: f"{a[-1]} * {a[0]}"),
    "window_attention": TorchOp(module=lambda ctx: ctor(
        window_attention_class(ctx), (ctx.x.channels, *window_and_shift(ctx), ctx.attrs["heads"]),
        options({"qkv_bias": True, "proj_bias": True, "attention_dropout": 0.0, "dropout": 0.0},
                qkv_bias=ctx.attrs["qkv_bias"], proj_bias=ctx.attrs["proj_bias"],
                attention_dropout=ctx.attrs["attention_dropout"], dropout=ctx.attrs["dropout"])),
        uses=lambda ctx: WINDOW_HELPERS[window_attention_class(ctx)],
        layers=lambda ctx: {"qkv": "nn.Linear", "proj": "nn.Linear", "cpb_mlp.0": "nn.Linear",
                            "cpb_mlp.2": "nn.Linear"}),
    "patch_merge": TorchOp(call=lambda ctx, a: f"patch_merge({a[0]})", helpers=("patch_merge",)),
    "partition_attention": TorchOp(module=lambda ctx: ctor(
        "PartitionAttention", (ctx.x.channels, ctx.attrs["heads"]),
        options({"size": 7, "partition": "window"}, size=ctx.attrs["size"], partition=ctx.attrs["partition"])),
        helpers=("PartitionAttention",), layers=lambda ctx: {"to_qkv": "nn.Linear", "merge": "nn.Linear"}),
    "lrn": TorchOp(module=lambda ctx: ctor("nn.LocalResponseNorm", (ctx.attrs["size"],),
                                           options({"alpha": 1e-4, "beta": 0.75, "k": 1.0}, alpha=ctx.attrs["alpha"],
                                                   beta=ctx.attrs["beta"], k=ctx.attrs["k"]))),
    "batchnorm": TorchOp(module=lambda ctx: ctor(f"nn.BatchNorm{ctx.dims}d", (ctx.x.channels,),
                                                 options({"eps": 1e-5, "momentum": 0.1}, eps=ctx.attrs["eps"],
                                                         momentum=ctx.attrs["momentum"]))),
    "layernorm": TorchOp(module=lambda ctx: ctor("nn.LayerNorm", (ctx.x.shape[-1],),
                                                 options({"eps": 1e-5}, eps=ctx.attrs["eps"]))),
    "dropout": TorchOp(module=lambda ctx: ctor("nn.Dropout", (), options({"p": 0.5}, p=ctx.attrs["p"])),
                       call=lambda ctx, a: f"F.dropout({a[0]}, {render(ctx.attrs['p'])}, self.training)"),
    "stochastic_depth": TorchOp(module=lambda ctx: ctor("StochasticDepth", (ctx.attrs["p"],),
                                                        options({"mode": "row"}, mode=ctx.attrs["mode"])),
                                helpers=("StochasticDepth",)),
    "identity": TorchOp(module=lambda ctx: ctor("nn.Identity"), call=lambda ctx, a: a[0]),
    **{name: activation(name) for name in ACTIVATION_MODULES},
    "leaky_relu": TorchOp(module=lambda ctx: ctor("nn.LeakyReLU", (ctx.attrs["slope"],),
                                                  options({"inplace": False}, inplace=ctx.inplace)),
                          call=lambda ctx, a: f"F.leaky_relu({a[0]}, {render(ctx.attrs['slope'])}"
                                              f"{', inplace=True' if ctx.inplace else ''})"),
    "scaled_tanh": TorchOp(module=lambda ctx: ctor("ScaledTanh", (), options({"a": 1.7159, "s": 2 / 3},
                                                                             a=ctx.attrs["a"], s=ctx.attrs["s"])),
                           call=lambda ctx, a: (f"{render(ctx.attrs['a'])} * "
                                                f"torch.tanh({render(ctx.attrs['s'])} * {a[0]})"),
                           helpers=("ScaledTanh",)),
    "softmax": TorchOp(module=lambda ctx: ctor("nn.Softmax", (), kw(dim=torch_axis(ctx.attrs["axis"]))),
                       call=lambda ctx, a: f"F.softmax({a[0]}, dim={torch_axis(ctx.attrs['axis'])})"),
    "flatten": TorchOp(module=lambda ctx: ctor("nn.Flatten"), call=lambda ctx, a: f"torch.flatten({a[0]}, 1)"),
    "linear": TorchOp(module=lambda ctx: ctor("nn.Linear", (ctx.x.shape[-1], ctx.attrs["out"]),
                                              options({"bias": True}, bias=ctx.attrs["bias"]))),
    "add": TorchOp(call=lambda ctx, a: " + ".join(a), augmented="+"),
    "mul": TorchOp(call=mul_text),
    "concat": TorchOp(call=lambda ctx, a: f"torch.cat([{', '.join(a)}], dim={ctx.attrs['axis'] + 1})"),
    "slice": TorchOp(module=lambda ctx: ctor("Slice", (ctx.attrs["start"], ctx.attrs["stop"]),
                                             options({"axis": 0}, axis=ctx.attrs["axis"])),
                     call=lambda ctx, a: slice_text(ctx, a[0]), helpers=("Slice",), sized=("start", "stop")),
    "select": TorchOp(module=lambda ctx: ctor("Select", (ctx.attrs["index"],),
                                              options({"axis": 0}, axis=ctx.attrs["axis"])),
                      call=lambda ctx, a: select_text(ctx, a[0]), helpers=("Select",)),
    "channel_shuffle": TorchOp(module=lambda ctx: ctor("ChannelShuffle", (ctx.attrs["groups"],)),
                               call=lambda ctx, a: f"channel_shuffle({a[0]}, {ctx.attrs['groups']})",
                               helpers=("channel_shuffle", "ChannelShuffle")),
    "se": TorchOp(module=lambda ctx: ctor("SqueezeExcitation", (ctx.x.channels, ctx.attrs["squeeze"]),
                                          options({"activation": Code("nn.ReLU"), "gate": Code("nn.Sigmoid"),
                                                   "dims": 2},
                                                  activation=Code(ACTIVATION_MODULES[ctx.attrs["activation"]]),
                                                  gate=Code(ACTIVATION_MODULES[ctx.attrs["gate"]]), dims=ctx.dims)),
                  helpers=("SqueezeExcitation",),
                  layers=lambda ctx: {"fc1": f"nn.Conv{ctx.dims}d", "fc2": f"nn.Conv{ctx.dims}d"}),
    "mlp": TorchOp(module=lambda ctx: ctor("nn.Sequential", (
        ctor("nn.Linear", (ctx.x.shape[-1], ctx.attrs["hidden"])),
        ctor(ACTIVATION_MODULES[ctx.attrs["activation"]]),
        ctor("nn.Dropout", (ctx.attrs["dropout"],)),
        ctor("nn.Linear", (ctx.attrs["hidden"], ctx.out.shape[-1])),
        ctor("nn.Dropout", (ctx.attrs["dropout"],)))),
        layers=lambda ctx: {"0": "nn.Linear", "3": "nn.Linear"}),
    "rbf": TorchOp(module=lambda ctx: ctor("RBF", (ctx.x.shape[0], ctx.attrs["units"])), helpers=("RBF",)),
    "patch_embed": TorchOp(module=lambda ctx: ctor("PatchEmbed", (ctx.x.channels, ctx.attrs["dim"],
                                                                  ctx.attrs["patch"])), helpers=("PatchEmbed",),
                           plain=lambda ctx: ctor("nn.Conv2d", (ctx.x.channels, ctx.attrs["dim"]),
                                                  options({"stride": 1}, kernel_size=ctx.attrs["patch"],
                                                          stride=ctx.attrs["patch"])),
                           after=lambda out: f"{out}.flatten(2).transpose(1, 2)"),
    "class_token": TorchOp(owner_param=lambda ctx: f"nn.Parameter(torch.zeros(1, 1, {ctx.x.shape[1]}))",
                           call=lambda ctx, a: f"torch.cat([{a[-1]}.expand({a[0]}.shape[0], -1, -1), {a[0]}], dim=1)"),
    "pos_embedding": TorchOp(owner_param=lambda ctx: (f"nn.Parameter(torch.empty(1, {ctx.x.shape[0]}, "
                                                      f"{ctx.x.shape[1]}).normal_(std=0.02))"),
                             call=lambda ctx, a: f"{a[0]} + {a[-1]}"),
    "attention": TorchOp(module=lambda ctx: ctor("SelfAttention", (ctx.x.shape[1], ctx.attrs["heads"]),
                                                 options({"dropout": 0.0, "bias": True}, dropout=ctx.attrs["dropout"],
                                                         bias=ctx.attrs["bias"])),
                         helpers=("SelfAttention",), layers=lambda ctx: {"out_proj": "nn.Linear"}),
    "spacetime_tokens": TorchOp(module=lambda ctx: ctor("SpaceTimeTokens", (ctx.x.channels, ctx.x.spatial),
                                                        options({"positions": True}, positions=ctx.attrs["positions"])),
                                helpers=("SpaceTimeTokens",)),
    "token_pool": TorchOp(module=lambda ctx: ctor("TokenPool", (
        list(ctx.attrs["grid"]), ctx.attrs["kernel"],
        ctx.attrs["kernel"] if ctx.attrs["stride"] is None else ctx.attrs["stride"], ctx.attrs["pad"])),
        helpers=("TokenPool", "pool_tokens")),
    "pool_attention": TorchOp(module=lambda ctx: ctor("PoolingAttention", (
        ctx.x.shape[1], ctx.out.shape[1], ctx.attrs["heads"], list(ctx.attrs["grid"])),
        options({"kernel_q": 1, "stride_q": 1, "kernel_kv": 1, "stride_kv": 1, "residual_pool": False,
                 "rel_pos": False, "eps": 1e-6, "dropout": 0.0},
                **{k: ctx.attrs[k] for k in ("kernel_q", "stride_q", "kernel_kv", "stride_kv", "residual_pool",
                                             "rel_pos", "eps", "dropout")})),
        helpers=("PoolingAttention", "TokenConvPool", "pool_tokens", "add_rel_pos"),
        layers=lambda ctx: {"qkv": "nn.Linear", "project.0": "nn.Linear",
                            **{f"pool_{n}.pool": "nn.Conv3d" for n in "qkv"},
                            **{f"pool_{n}.norm_act.0": "nn.LayerNorm" for n in "qkv"}}),
}


def render(value) -> str:
    """Python source for a literal or a Call (one line)."""
    if isinstance(value, Call):
        parts = [render(v) for v in value.args]
        parts += [f"{k}={render(v)}" for k, v in value.kwargs if not same(v, value.default(k))]
        return f"{value.callee}({', '.join(parts)})"
    if isinstance(value, Code):
        return str(value)
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, float):
        return float_text(value)
    if isinstance(value, str):
        return string(value)
    if isinstance(value, tuple):
        inner = ", ".join(render(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(render(v) for v in value) + "]"
    return repr(value)


def same(a, b) -> bool:
    """Equal and of the same type (True is not 1 here)."""
    return type(a) is type(b) and a == b


def float_text(value: float) -> str:
    """A float as a person writes it: 2 / 3 rather than 0.6666666666666666."""
    from fractions import Fraction

    simple = Fraction(value).limit_denominator(12)
    if simple.denominator not in (1, 2, 4, 5, 8, 10) and float(simple) == value:
        return f"{simple.numerator} / {simple.denominator}"
    return repr(float(value))
