"""The syntax tree of a .cnn file: plain dataclasses, each carrying the Span it was parsed from."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .errors import Span


@dataclass
class Node:
    span: Span


def walk(node) -> Iterator[Node]:
    """Every node of an AST subtree (or a list of them)."""
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, list):
            stack.extend(n)
        elif isinstance(n, Node):
            yield n
            stack.extend(getattr(n, f.name) for f in dataclasses.fields(n) if f.name != "span")


def names_in(node) -> Iterator[str]:
    """Every name an AST subtree (or a list of them) mentions: reads, calls, interpolated labels."""
    return (n.id for n in walk(node) if isinstance(n, Name))


# ---------------------------------------------------------------- expressions


@dataclass
class Name(Node):
    id: str


@dataclass
class Const(Node):
    value: Any


@dataclass
class ListLit(Node):
    elems: list[Node]


@dataclass
class ListFor(Node):
    """`for v in xs { a, b }` inside a list: splices a and b for every v."""

    targets: list[str]
    iter: Node
    elems: list[Node]


@dataclass
class ListIf(Node):
    cond: Node
    then: list[Node]
    orelse: list[Node]


@dataclass
class Arg(Node):
    name: str | None  # None for a positional argument
    value: Node


@dataclass
class Call(Node):
    func: Node
    args: list[Arg]


@dataclass
class Attr(Node):
    obj: Node
    name: str


@dataclass
class Index(Node):
    obj: Node
    index: Node


@dataclass
class BinOp(Node):
    """A left-associative run of + - or * / // % or **: operands[0] op[0] operands[1] ..."""

    ops: list[str]
    operands: list[Node]


@dataclass
class Unary(Node):
    op: str
    operand: Node


@dataclass
class Compare(Node):
    ops: list[str]
    operands: list[Node]


@dataclass
class BoolOp(Node):
    op: str  # "and" | "or"
    operands: list[Node]


@dataclass
class Not(Node):
    operand: Node


@dataclass
class Ternary(Node):
    then: Node
    cond: Node
    orelse: Node


@dataclass
class Label(Node):
    """A node name as written: literal parts and interpolated expressions, in order."""

    parts: list[str | Node]


@dataclass
class Labeled(Node):
    label: Label
    value: Node


@dataclass
class Chain(Node):
    links: list[Node]


# ---------------------------------------------------------------- statements


@dataclass
class Assign(Node):
    targets: list[str]
    value: Node


@dataclass
class If(Node):
    cond: Node
    body: list[Node]
    orelse: list[Node]


@dataclass
class For(Node):
    targets: list[str]
    iter: Node
    body: list[Node]


@dataclass
class Return(Node):
    value: Node


@dataclass
class Input(Node):
    name: str
    tokens: bool
    shape: Node


@dataclass
class Output(Node):
    name: str
    value: Node | None
    training: bool = False  # `training output ...`: present only in training mode


@dataclass
class Doc(Node):
    text: str


@dataclass
class Selector(Node):
    """What an `init` rule selects: `path` (labels, numbers as strings) optionally `in` a scope or block."""

    path: list[Label | str]
    within: list[Label | str] | None


@dataclass
class Init(Node):
    """`init SELECTORS: SETTINGS`: a rule of the network's weight initialisation."""

    selectors: list[Selector]
    settings: list[Arg]


# ---------------------------------------------------------------- top level


@dataclass
class Param(Node):
    name: str
    default: Node | None


@dataclass
class Import(Node):
    path: str


@dataclass
class BlockDef(Node):
    name: str
    params: list[Param]
    body: list[Node]


@dataclass
class TemplateDef(Node):
    """`block f(params) = expr`: calling f evaluates expr with the parameters bound (no scope of its own)."""

    name: str
    params: list[Param]
    value: Node


@dataclass
class NetworkDef(Node):
    name: str
    params: list[Param]
    body: list[Node]

    @property
    def doc(self) -> str:
        return self.body[0].text if self.body and isinstance(self.body[0], Doc) else ""


@dataclass
class PresetDef(Node):
    name: str
    network: str
    args: list[Arg]
    doc: str


@dataclass
class Module(Node):
    """A whole .cnn file."""

    items: list[Node]
