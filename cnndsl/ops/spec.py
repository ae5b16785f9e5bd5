"""What an op is: one OpSpec holding its arguments, shape rule, parameter rule, cost rules and
receptive-field rule. The passes and backends read specs; nothing else knows what an op means.

Rules receive an OpCall (validated attributes, input types, and - after the shape rule - the output
type) and raise OpError for a mistake the user made; the elaborator turns it into a CnnError at the
call's position.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import prod
from typing import Any, Callable

from ..limits import ARG_MAX
from ..symbolic import sym_of, traced
from ..types import TensorType


class OpError(Exception):
    """A user mistake found by an op rule (bad shapes, bad argument combination)."""

    def __init__(self, message: str, show_inputs: bool = False):
        super().__init__(message)
        self.message = message
        self.show_inputs = show_inputs  # add a note per input: its shape and where it came from


REQUIRED = object()


@dataclass(frozen=True)
class Arg:
    """One argument of an op: `check` validates and normalises a value, raising ValueError(reason)."""

    name: str
    check: Callable[[Any], Any]
    default: Any = REQUIRED
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass(frozen=True)
class Param:
    """A tensor an op owns. `name` is relative to the node ("weight"); "" names the node itself
    (ViT's `class_token`). kind: "trainable", "fixed" (a parameter never trained: RBF prototypes)
    or "buffer" (BN running statistics). layer: the kind of layer (an op's name) the tensor belongs to, where
    that is not the op itself: a composite's inner layers ("fc1.weight" of `se` is a conv's) or an op that
    counts as another (a `dwconv` is a conv); weight initialisation (`init conv: ...`) selects layers by it."""

    name: str
    shape: tuple[int, ...]
    kind: str = "trainable"
    layer: str = ""

    @property
    def numel(self) -> int:
        return prod(self.shape)


@dataclass(frozen=True)
class Window:
    """Receptive-field rule of a sliding-window op, per spatial axis. padding is the left padding."""

    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: tuple[int, ...]
    exact: bool = True  # False for adaptive pooling with uneven windows: the largest window is used


@dataclass(frozen=True)
class Resample:
    """Receptive-field rule of upsampling, per spatial axis: output o reads input floor(src), and ceil(src)
    too when `linear`, where src = (num * o + offset) / den (PyTorch's source-index rule)."""

    num: tuple[int, ...]
    offset: tuple[int, ...]
    den: tuple[int, ...]
    linear: bool = False


@dataclass(frozen=True)
class Tiles:
    """Receptive-field rule of attention within windows, per spatial axis: the map is cut into tiles of
    `size` positions, offset by `shift` (Swin's shifted windows); each output sees its own tile."""

    size: tuple[int, ...]
    shift: tuple[int, ...]


@dataclass(frozen=True)
class Grid:
    """Receptive-field rule of attention within the groups of a grid partition (MaxViT), per spatial axis: the
    axis, of length step * count, holds `step` groups; output o sees the `count` positions o mod step + t * step,
    t < count: positions far apart, the whole axis at a stride of `step`."""

    step: tuple[int, ...]
    count: tuple[int, ...]


@dataclass(frozen=True)
class Transposed:
    """Receptive-field rule of a transposed convolution, per spatial axis: input i feeds outputs
    i * stride - padding + t * dilation, t < kernel."""

    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: tuple[int, ...]


# ---------------------------------------------------------------- traits
# Facts about an op that passes and backends act on, named here so that nothing switches on op names.
# An op's `traits` holds the ones that are true of it; `trait_rules` narrows a trait to the calls for
# which a rule holds (leaky_relu may run in place only with a slope >= 0); OpSpec.has(trait, call) asks.
# A trait that is true but not claimed costs only speed or memory; a trait claimed falsely gives wrong
# gradients, so tests/test_backend_traits.py checks INPLACE and BACKWARD_NEEDS_NO_OUTPUT against autograd.

VIEW = "view"
"""The output aliases input 0's storage (flatten, slice, dropout at inference): no new activation bytes."""

MERGE = "merge"
"""The op joins several paths (add, mul, concat): receptive fields meet here."""

INPLACE = "inplace"
"""The op may write its output over its first input, as nn.ReLU(inplace=True) and `a += b` do: the output
has input 0's shape, and autograd still has what the op's backward needs: either the backward does not
read input 0's value (relu's gradient is read off its output, a sum's needs nothing), or PyTorch's in-place
variant keeps a copy of it (silu_, hardswish_, hardsigmoid_: their derivative formulas read the input, and
autograd saves a clone of the original input before the op overwrites it, so the gradient is exact; in
training this saves no memory, in eval it saves an allocation, as torchvision's nn.SiLU(inplace=True)
does). A backend that does so must also know that nothing else reads input 0 and that input 0's producer
has BACKWARD_NEEDS_NO_OUTPUT: the overwritten tensor itself must be one no earlier backward reads."""

BACKWARD_NEEDS_NO_OUTPUT = "backward_needs_no_output"
"""Autograd does not keep the op's output for the op's own backward (a convolution, a linear layer or a
batch norm needs its input and weights; a sum needs nothing), so a later op may overwrite that output in
place. An op without it (relu, sigmoid, tanh: their gradients are computed from their outputs) must
find its output untouched."""

ANY_LAYOUT = "any_layout"
"""The op accepts a channels-last map (TensorType.channels_last) as well: it acts on each element, or on the
last axis of each position (activations, layer norm, linear, dropout). Every other op needs channels first,
and the elaborator says so (a conv on a channels-last map would read its axes wrongly)."""

POINTWISE = "pointwise"  # each output position sees the same positions as its input(s)
GLOBAL = "global"  # each output sees every input position
GATED = "gated"  # each output is its own input position scaled by a gate computed from every position


@dataclass
class OpCall:
    """One application of an op, as the rules see it."""

    attrs: dict[str, Any]
    inputs: list[TensorType]
    out: TensorType | None = None

    @property
    def x(self) -> TensorType:
        return self.inputs[0]

    def __getitem__(self, name: str) -> Any:
        return self.attrs[name]


def _no_params(call: OpCall) -> list[Param]:
    return []


def _zero(call: OpCall) -> int:
    return 0


def _pointwise(call: OpCall):
    return POINTWISE


@dataclass(frozen=True)
class OpSpec:
    name: str
    doc: str
    args: tuple[Arg, ...] = ()
    inputs: int = 1  # number of tensor inputs; 0 = any number >= min_inputs
    min_inputs: int = 1
    shape: Callable[[OpCall], TensorType] = lambda c: c.x
    resolve: Callable[[OpCall], dict] | None = None  # attrs completed with the input's shape
    params: Callable[[OpCall], list[Param]] = _no_params
    macs: Callable[[OpCall], int] = _zero
    flops: Callable[[OpCall], int] = _zero
    flops_doc: str = "0"
    rf: Callable[[OpCall], Any] = _pointwise
    traits: frozenset[str] = field(default_factory=frozenset)  # VIEW, MERGE, INPLACE, ... (above)
    trait_rules: tuple[tuple[str, Callable[[OpCall], bool]], ...] = ()  # (trait, holds for this call?)
    aliases: tuple[str, ...] = ()
    category: str = "other"  # the op's family: the reference groups ops by it, drawings colour them by it
    shown: tuple[str, ...] = ()  # the arguments a drawing shows on the op's box (kernel, stride, heads, ...)
    rf_inputs: int | None = None  # inputs whose values reach the output (crop reads only its reference's shape)

    def has(self, trait: str, call: OpCall) -> bool:
        """Is `trait` true of this application of the op (its arguments and input types)?"""
        if trait not in self.traits:
            return False
        return all(rule(call) for name, rule in self.trait_rules if name == trait)

    def arg(self, name: str) -> Arg | None:
        return next((a for a in self.args if a.name == name), None)

    def signature(self) -> str:
        parts = [a.name if a.required else f"{a.name}={_show(a.default)}" for a in self.args]
        if not self.inputs:  # several input tensors, given first: add(a, b), concat([a, b, c], axis=0)
            parts.insert(0, "a, b, ..." if self.min_inputs > 1 else "tensors")
        return f"{self.name}({', '.join(parts)})"


def _show(value) -> str:
    if value is None:
        return "none"
    if value is True or value is False:
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


# ---------------------------------------------------------------- argument checks


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def integer(minimum: int | None = 1) -> Callable:
    def check(v):
        if not _is_int(v) or (minimum is not None and v < minimum):
            raise ValueError(f"must be an integer >= {minimum}" if minimum is not None else "must be an integer")
        _within(v)
        return v
    check.kind = f"int >= {minimum}" if minimum is not None else "int"
    return check


def ints(minimum: int = 1) -> Callable:
    """An integer, or a list of integers (one per spatial axis)."""

    def check(v):
        if _is_int(v) and v >= minimum:
            return _within(v)
        if isinstance(v, list) and v and all(_is_int(i) and i >= minimum for i in v):
            return tuple(_within(i) for i in v)
        raise ValueError(f"must be an integer >= {minimum} or a list of them")
    check.kind = f"int >= {minimum} or list"
    return check


def _within(v: int) -> int:
    """An op's integer argument within torch's limit (limits.ARG_MAX, its kernels' 32-bit ints)."""
    if not -ARG_MAX <= v <= ARG_MAX:
        raise ValueError(f"must be at most {ARG_MAX:,} in size (2**31 - 1, torch's limit for op arguments)")
    return v


def number(minimum: float | None = None, below: float | None = None) -> Callable:
    def check(v):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError("must be a number")
        if minimum is not None and v < minimum:
            raise ValueError(f"must be >= {minimum}")
        if below is not None and v >= below:
            raise ValueError(f"must be < {below}")
        return v if isinstance(v, float) else traced(float(v), sym_of(v))  # a traced int stays traced
    check.kind = "number"
    return check


def boolean(v):
    if v is True or v is False:
        return v
    raise ValueError("must be true or false")


boolean.kind = "bool"


def choice(*options) -> Callable:
    def check(v):
        if v in options and not isinstance(v, bool):
            return v
        raise ValueError("must be one of " + ", ".join(_show(o) for o in options))
    check.kind = " | ".join(_show(o) for o in options)
    return check


def optional(inner: Callable) -> Callable:
    def check(v):
        return None if v is None else inner(v)
    check.kind = f"{getattr(inner, 'kind', '?')} or none"
    return check


def per_axis(value, n: int, what: str) -> tuple[int, ...]:
    """Expand an int to n axes, or check that a list has n entries."""
    if isinstance(value, tuple):
        if len(value) != n:
            raise OpError(f"'{what}' has {len(value)} entries but the input has {n} spatial "
                          f"{'axis' if n == 1 else 'axes'}")
        return value
    return (value,) * n


def elements(t: TensorType) -> int:
    return t.numel
