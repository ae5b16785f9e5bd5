"""The values a .cnn program computes with, besides numbers, strings, booleans and lists:
tensors (handles on IR nodes being built), layers (an op or block waiting for its input), block
closures, and the builtin functions."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from . import ast as A
from .errors import Span
from .limits import LIST_MAX
from .types import TensorType


@dataclass(eq=False)
class PendingNode:
    """An IR node while elaboration runs; its final name is given once every explicit name is known."""

    label: str | None
    hint: str
    frame: Frame
    kind: str
    op: str | None
    attrs: dict
    inputs: list[PendingNode]
    type: TensorType
    span: Span
    name: str = ""
    # (attributes, input types, output type) as the op's spec saw them, numbers traced (cnndsl.symbolic)
    traced: tuple | None = None
    guard: tuple = ()  # the branches of its block's body it was made in: ((condition key, taken), ...)
    var: str | None = None  # the variable the .cnn file first assigned it to, for readable generated code
    assigned: str | None = None  # the variable it was last assigned to (the outermost caller's), for warnings


@dataclass(eq=False)
class Frame:
    """A scope being built: the network, a block instance or a sequence."""

    label: str | None
    hint: str
    parent: Frame | None
    kind: str
    span: Span | None = None
    block: str | None = None
    args: dict = field(default_factory=dict)
    children: list = field(default_factory=list)  # PendingNode | Frame, in creation order
    explicit: dict = field(default_factory=dict)  # label -> Span, to refuse duplicates
    inputs: list = field(default_factory=list)  # (parameter name, PendingNode) of the tensors it received
    outputs: list = field(default_factory=list)  # PendingNodes it returned
    name: str = ""
    # a block instance's arguments as its caller computed them, numbers traced in the caller's terms (and
    # `in_channels`: the input's channels); the block's own numbers are traced as its parameters' names
    call: dict = field(default_factory=dict)
    defaults: dict = field(default_factory=dict)  # the block's parameters' literal defaults
    observed: set = field(default_factory=set)  # its traced names whose values the program read (Evaluator.observe)
    # its traced names read only as a loop's count: name -> the loops (run numbers) they counted (Evaluator.observe)
    counted: dict = field(default_factory=dict)
    guards: list = field(default_factory=list)  # the branches of its own body being run: (condition key, taken)
    conditions: dict = field(default_factory=dict)  # condition key -> (condition tree, taken), see Evaluator.guarded
    guard: tuple = ()  # the branches of its parent's body it was made in
    tag: str = ""  # a template call's scope: the prefix of the names its numbers are traced by (`cna#3.`)
    # the block's plain locals assigned once, outside loops, numbers traced as their own names (`width`), with
    # what they are in its parameters' terms: generated code computes them once and uses the name
    lets: dict = field(default_factory=dict)


@dataclass(eq=False)
class Tensor:
    node: PendingNode
    # the type as the running block sees it, its channels traced (cnndsl.symbolic: `in_channels`, `planes * 4`)
    view: TensorType | None = None

    @property
    def type(self) -> TensorType:
        return self.view if self.view is not None else self.node.type


@dataclass(eq=False)
class BlockClosure:
    defn: A.BlockDef
    env: Env  # the global scope of the file that defines it


@dataclass(eq=False)
class TemplateClosure:
    """`block f(params) = expr`: a function whose call is the value of expr (a layer list, say)."""

    defn: A.TemplateDef
    env: Env


@dataclass(eq=False)
class NetworkValue:
    defn: A.NetworkDef
    env: Env


@dataclass(eq=False)
class Layer:
    """An op, block or sequence with its arguments, waiting for its input tensor(s)."""

    target: Any  # OpSpec | BlockClosure | list[Layer]
    args: list = field(default_factory=list)  # [(value, span)]
    kwargs: dict = field(default_factory=dict)  # name -> (value, span)
    label: str | None = None
    span: Span | None = None
    guard: tuple = ()  # as a member of a sequence: the branches of its block's `if`s that put it in the list
    loop: int | None = None  # as a member of a sequence: the run of a list's `for` that put it there

    def with_label(self, label: str | None) -> Layer:
        return Layer(self.target, self.args, self.kwargs, label if label is not None else self.label, self.span,
                     self.guard, self.loop)


class GuardedList(list):
    """A list literal with `if` or `for` members: `guards` holds, by position, the branches of a block's body that
    put each element there (Frame.guards), `loops` the run of the list's `for` that made it (None: no `for`), so
    that the members a sequence made from it keep them (Layer.guard, Layer.loop)."""

    guards: list
    loops: list


class Env:
    """Variables of one scope; blocks see their own locals, then their file's globals."""

    def __init__(self, parent: Env | None = None):
        self.vars: dict[str, Any] = {}
        self.parent = parent
        self.reads: set[str] | None = None  # names looked up here, where someone asked to know (a network's scope)

    def lookup(self, name: str):
        env = self
        while env is not None:
            if name in env.vars:
                if env.reads is not None:
                    env.reads.add(name)
                return env.vars[name]
            env = env.parent
        raise KeyError(name)

    def names(self) -> set[str]:
        out, env = set(), self
        while env is not None:
            out |= set(env.vars)
            env = env.parent
        return out


class BuiltinError(Exception):
    """A builtin called with bad arguments; reported at the call."""


@dataclass(frozen=True)
class Builtin:
    name: str
    fn: Callable
    doc: str


def _number(v, fname):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise BuiltinError(f"{fname}() needs numbers, got {describe(v)}")
    return v


MAX_LIST = LIST_MAX  # no network needs a longer list; a typo that asks for one should not eat the memory


def _range(*a):
    if not 1 <= len(a) <= 3 or not all(isinstance(v, int) and not isinstance(v, bool) for v in a):
        raise BuiltinError("range() takes 1 to 3 integers: range(stop), range(start, stop[, step])")
    if len(a) == 3 and a[2] == 0:
        raise BuiltinError("range() step must not be zero")
    if len(range(*a)) > MAX_LIST:
        raise BuiltinError(f"range() of {len(range(*a)):,} elements is more than the {MAX_LIST:,} allowed")
    return list(range(*a))


def _minmax(fn, name):
    def run(*a):
        items = a[0] if len(a) == 1 and isinstance(a[0], list) else list(a)
        if not items:
            raise BuiltinError(f"{name}() of nothing")
        return fn(_number(v, name) for v in items)
    return run


def make_divisible(v, divisor=8, min_value=None):
    """torchvision's _make_divisible (MobileNet, EfficientNet): round to the nearest multiple of
    divisor, never below min_value, never more than 10% below v."""
    _number(v, "make_divisible")
    if not isinstance(divisor, int) or divisor < 1:
        raise BuiltinError("make_divisible() divisor must be a positive integer")
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def _enumerate(items, start=0):
    if not isinstance(items, list):
        raise BuiltinError(f"enumerate() needs a list, got {describe(items)}")
    return [[i, v] for i, v in enumerate(items, start)]


def _zip(*lists):
    if not all(isinstance(v, list) for v in lists):
        raise BuiltinError("zip() needs lists")
    return [list(t) for t in zip(*lists)]


def _len(v):
    if not isinstance(v, (list, str)):
        raise BuiltinError(f"len() needs a list or a string, got {describe(v)}")
    return len(v)


def _sum(items):
    if not isinstance(items, list):
        raise BuiltinError(f"sum() needs a list, got {describe(items)}")
    return sum(_number(v, "sum") for v in items)


def _int(v):
    if isinstance(v, str):
        if len(v) > 30:  # no 64-bit integer has more digits; Python would spend time on (or refuse) the rest
            raise BuiltinError(f"int() cannot read {describe(v)}: more than 30 characters")
        try:
            return int(v)
        except ValueError:
            raise BuiltinError(f"int() cannot read {describe(v)}") from None
    return int(_number(v, "int"))


def _round(v, n=None):
    _number(v, "round")
    if n is None:
        return round(v)
    if isinstance(n, bool) or not isinstance(n, int) or not -30 <= n <= 30:
        raise BuiltinError("round() digits must be an integer from -30 to 30")
    return round(v, n)


BUILTINS = {b.name: b for b in [
    Builtin("range", _range, "range(stop) or range(start, stop[, step]): a list of integers"),
    Builtin("len", _len, "len(list): number of elements"),
    Builtin("min", _minmax(min, "min"), "min(a, b, ...) or min(list)"),
    Builtin("max", _minmax(max, "max"), "max(a, b, ...) or max(list)"),
    Builtin("sum", _sum, "sum(list)"),
    Builtin("abs", lambda v: abs(_number(v, "abs")), "abs(x)"),
    Builtin("ceil", lambda v: math.ceil(_number(v, "ceil")), "ceil(x): smallest integer >= x"),
    Builtin("floor", lambda v: math.floor(_number(v, "floor")), "floor(x): largest integer <= x"),
    Builtin("round", _round,
            "round(x[, digits]): to nearest, ties to even (as Python)"),
    Builtin("sqrt", lambda v: math.sqrt(_number(v, "sqrt")), "sqrt(x)"),
    Builtin("int", _int, "int(x): truncate toward zero"),
    Builtin("float", lambda v: float(_number(v, "float")), "float(x)"),
    Builtin("str", lambda v: describe_plain(v), "str(x): text of a number or string"),
    Builtin("make_divisible", make_divisible,
            "make_divisible(v, divisor=8, min_value=divisor): channel rounding of MobileNet/EfficientNet"),
    Builtin("enumerate", _enumerate, "enumerate(list, start=0): list of [index, element]"),
    Builtin("zip", _zip, "zip(a, b, ...): list of [a_i, b_i, ...]"),
]}
BUILTIN_FUNCTIONS = {name: b.fn for name, b in BUILTINS.items()}  # for folding a call of numbers (symbolic.fold)


def describe(v) -> str:
    """A value's kind, for error messages."""
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return f"the number {v}"
    if isinstance(v, str):
        shown = v if len(v) <= 60 else v[:40] + f"...({len(v):,} characters)"
        return f'the string "{shown}"'
    if isinstance(v, list):
        return "a list"
    if isinstance(v, Tensor):
        return f"a tensor of shape {v.type}"
    if isinstance(v, Layer):
        target = v.target
        what = (getattr(target, "name", None) or getattr(getattr(target, "defn", None), "name", None)
                or ("sequence" if isinstance(target, list) else "layer"))
        return f"layer {what}"
    if isinstance(v, (BlockClosure, TemplateClosure)):
        return f"block '{v.defn.name}'"
    if isinstance(v, Builtin):
        return f"function '{v.name}'"
    if isinstance(v, NetworkValue):
        return f"network '{v.defn.name}'"
    if v is None:
        return "none"
    return type(v).__name__


def describe_plain(v) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, (int, float, str)):
        return str(v)
    raise BuiltinError(f"str() needs a number or a string, got {describe(v)}")
