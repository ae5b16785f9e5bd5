"""Numbers that remember how they were computed, so that generated code can say `planes * 4` instead of 256.

While a block runs, each of its numeric parameters is a TracedInt or TracedFloat whose `sym` is the parameter's
name; arithmetic on traced numbers (in the .cnn program and in the op specs' shape rules alike) yields traced
numbers whose `sym` is the expression, and a block's input channels are traced as `in_channels`. A traced number
is an int or float in every other respect, so nothing that computes with it needs to know. The elaborator strips
the traces from the IR (the passes see plain numbers) and keeps them beside it for the backends (`traced_attrs`,
`traced_type` on each node): the elaborated values stay the reference, the traces only say how to write them.

A Sym is a small expression tree over names and literals, folded as it is built (`64 * 2 ** 1` is 128) and
printed with Python's precedence, so its text is valid Python for a generated constructor.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

_NO_NAMES: frozenset = frozenset()
# Python's binding strength: a higher number binds tighter
PRECEDENCE = {"if": 0, "or": 1, "and": 2, "not": 3, "cmp": 5, "+": 10, "-": 10, "*": 20, "/": 20, "//": 20, "%": 20,
              "neg": 30, "**": 40, "atom": 50}
COMPARISONS = {"==": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
            ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}
_APPLY = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b,
    "//": lambda a, b: a // b, "%": lambda a, b: a % b, "**": lambda a, b: a ** b,
}


@dataclass(frozen=True)
class Sym:
    """op "name" (args: (id,)), "num" (args: (value,)), a binary operator (args: (left, right)), "neg"
    (args: (x,)), "call" (args: (function name, *arguments)), "list" (args: the elements), "item" (args: (the
    list, index, the list's length)), or a block's conditional number `a if c else b`:
    "if" (args: (condition, a, b)) over conditions "cmp" (args: (operators, *operands)), "and", "or" (args: the
    parts) and "not" (args: (x,))."""

    op: str
    args: tuple

    def __post_init__(self):  # kept, not recomputed: expressions are built and asked about many times
        if self.op == "num":
            value = self.args[0]
            self.__dict__.update(size=1, _names=_NO_NAMES, int_like=isinstance(value, int))
        elif self.op == "name":
            self.__dict__.update(size=1, _names=frozenset(self.args), int_like=True)
        else:
            parts = [a for a in self.args if isinstance(a, Sym)]
            names = parts[0]._names.union(*(a._names for a in parts[1:])) if parts else _NO_NAMES
            self.__dict__.update(size=1 + sum(a.size for a in parts), _names=names, int_like=_int_like(self))

    # ------------------------------------------------------------ building

    @staticmethod
    def name(identifier: str) -> Sym:
        return Sym("name", (identifier,))

    @staticmethod
    def num(value) -> Sym:
        return Sym("num", (value,))

    @staticmethod
    def of(value) -> Sym:
        """The sym of a traced number, else the number as a literal (a list of numbers: a "list" of them)."""
        sym = getattr(value, "sym", None)
        if sym is not None:
            return sym
        if numbers(value):
            return Sym("list", tuple(Sym.of(v) for v in value))
        value = plain(value)
        return Sym.num(tuple(value) if isinstance(value, list) else value)  # hashable, as every Sym

    @staticmethod
    def item(name: str, index: int, length: int) -> Sym:
        """Element `index` of the list parameter `name` (`kernel[0]`), a list of `length` elements."""
        return Sym("item", (Sym.name(name), index, length))

    @property
    def literal(self) -> bool:
        return self.op == "num"

    def names(self) -> frozenset[str]:
        return self._names

    def subs(self, mapping: dict[str, Sym]) -> Sym:
        """The expression with names replaced (a block's parameters by the caller's arguments)."""
        if self.op == "name":
            return mapping.get(self.args[0], self)
        if self.op == "num":
            return self
        return self.rebuild(lambda a: a.subs(mapping))

    def rebuild(self, part) -> Sym:
        """The expression with `part` applied to each sub-expression, simplified as it is built (make)."""
        return make(self.op, tuple(part(a) if isinstance(a, Sym) else a for a in self.args))

    def replace(self, table: dict[Sym, Sym]) -> Sym:
        """The expression with whole sub-expressions replaced (a long one by the variable that holds it)."""
        if self in table:
            return table[self]
        if self.op in ("name", "num"):
            return self
        return Sym(self.op, tuple(a.replace(table) if isinstance(a, Sym) else a for a in self.args))

    # ------------------------------------------------------------ printing

    @property
    def precedence(self) -> int:
        if self.op == "num":
            value = self.args[0]
            return PRECEDENCE["neg"] if isinstance(value, (int, float)) and value < 0 else PRECEDENCE["atom"]
        if self.op in ("name", "call", "item", "list"):
            return PRECEDENCE["atom"]
        return PRECEDENCE[self.op]

    def text(self, number=None, functions: dict[str, str] | None = None) -> str:
        """Python source; `number` prints literals (the backend's own float style), repr by default;
        `functions` renames builtins (`ceil` -> `math.ceil`)."""
        number = number or repr
        if self.op == "name":
            return self.args[0]
        if self.op == "num":
            return number(self.args[0])
        if self.op == "call":
            name = (functions or {}).get(self.args[0], self.args[0])
            return f"{name}({', '.join(a.text(number, functions) for a in self.args[1:])})"
        if self.op == "neg":
            inner = self.args[0]
            body = inner.text(number, functions)
            return f"-{body}" if inner.precedence > PRECEDENCE["neg"] else f"-({body})"
        if self.op in _LOGIC:
            return self._logic_text(number, functions)
        if self.op == "item":
            return f"{self.args[0].text(number, functions)}[{self.args[1]}]"
        if self.op == "list":
            return f"[{', '.join(a.text(number, functions) for a in self.args)}]"
        left, right = self.args
        mine = PRECEDENCE[self.op]
        # left-associative, except ** (right-associative, and it binds tighter than a unary minus on its left)
        left_paren = left.precedence < mine or (self.op == "**" and left.precedence <= mine)
        right_paren = right.precedence < mine or (self.op != "**" and right.precedence <= mine)
        lt, rt = left.text(number, functions), right.text(number, functions)
        lt = f"({lt})" if left_paren else lt
        rt = f"({rt})" if right_paren else rt
        return f"{lt} {self.op} {rt}"

    def _logic_text(self, number, functions) -> str:
        mine = PRECEDENCE[self.op]

        def part(sym: Sym, tighter: bool = True) -> str:  # tighter: a part of equal binding needs parentheses
            text = sym.text(number, functions)
            return f"({text})" if sym.precedence < mine or (tighter and sym.precedence == mine) else text

        if self.op == "if":
            cond, a, b = self.args
            return f"{part(a)} if {part(cond)} else {part(b, tighter=False)}"
        if self.op == "cmp":
            out = part(self.args[1])
            for op, operand in zip(self.args[0], self.args[2:]):
                out += f" {op} {part(operand)}"
            return out
        if self.op == "not":
            return f"not {part(self.args[0], tighter=False)}"
        return f" {self.op} ".join(part(a, tighter=False) for a in self.args)

    def __str__(self) -> str:
        return self.text()


_LOGIC = ("if", "cmp", "and", "or", "not")


def make(op: str, args: tuple) -> Sym:
    """The expression op(args), simplified as its builder would (after a substitution made parts literal)."""
    if op in _APPLY:
        return binary(op, *args)
    if op == "neg":
        return negate(args[0])
    if op == "if":
        return choice(*args)
    if op == "cmp":
        return compare(args[0], list(args[1:]))
    if op in ("and", "or"):
        return logical(op, list(args))
    if op == "not":
        return invert(args[0])
    if op == "item" and args[0].op == "list" and 0 <= args[1] < len(args[0].args):
        return args[0].args[args[1]]  # an element of a list the caller wrote out
    if op == "item" and args[0].literal and isinstance(args[0].args[0], (list, tuple)):
        return Sym.num(args[0].args[0][args[1]])
    return Sym(op, tuple(args))


def choice(cond: Sym, a: Sym, b: Sym) -> Sym:
    """`a if cond else b`: the branch itself where the condition is known or the branches agree."""
    if cond.literal:
        return a if cond.args[0] else b
    if a == b and a.text() == b.text():  # 1 and 1.0 are equal Syms, but not the same number to write
        return a
    return Sym("if", (cond, a, b))


def compare(ops, operands: list[Sym]) -> Sym:
    if all(o.literal for o in operands):
        values = [o.args[0] for o in operands]
        try:
            return Sym.num(all(COMPARISONS[op](x, y) for op, x, y in zip(ops, values, values[1:])))
        except TypeError:
            pass
    return Sym("cmp", (tuple(ops), *operands))


def logical(op: str, parts: list[Sym]) -> Sym:
    """`a and b` / `a or b`, without the parts a literal settles."""
    absorbing = op == "or"  # True decides an `or`, False an `and`
    kept = []
    for p in parts:
        if p.literal:
            if bool(p.args[0]) == absorbing:
                return Sym.num(absorbing)
            continue
        kept.append(p)
    if not kept:
        return Sym.num(not absorbing)
    return kept[0] if len(kept) == 1 else Sym(op, tuple(kept))


def invert(x: Sym) -> Sym:
    if x.literal:
        return Sym.num(not x.args[0])
    if x.op == "not":
        return x.args[0]
    return Sym("not", (x,))


SIZE_MAX = 40  # a longer expression says less than its value: the number is written as a literal instead


def binary(op: str, a: Sym, b: Sym) -> Sym:
    """a op b, folded where both are literals and simplified where one is a neutral element; integer sums
    collect like terms (`in_channels + growth_rate + growth_rate` is `in_channels + growth_rate * 2`)."""
    if op in ("+", "-") and not (a.literal and b.literal):
        collected = _collect(op, a, b)
        if collected is not None:
            return collected
    if a.literal and b.literal:
        try:
            return Sym.num(_APPLY[op](a.args[0], b.args[0]))
        except (ArithmeticError, ValueError, TypeError):
            pass
    if b.literal and _is(b, 0) and op in ("+", "-"):
        return a
    if a.literal and _is(a, 0) and op == "+":
        return b
    if b.literal and _is(b, 1) and op in ("*", "//", "**") and a.int_like:
        return a
    if a.literal and _is(a, 1) and op == "*" and b.int_like:
        return b
    if op == "+" and b.op == "neg":
        return binary("-", a, b.args[0])
    return Sym(op, (a, b))


def _linear(sym: Sym):
    """(terms, constant) of an integer expression read as a sum of coefficient * term, else None."""
    if sym.op == "num":
        value = sym.args[0]
        return ({}, value) if isinstance(value, int) and not isinstance(value, bool) else None
    if sym.op in ("+", "-"):
        left, right = _linear(sym.args[0]), _linear(sym.args[1])
        if left is None or right is None:
            return None
        return _add(left, right, -1 if sym.op == "-" else 1)
    if sym.op == "*" and sym.args[1].op == "num" and _linear(sym.args[1]) is not None and sym.args[0].op != "num" \
            and sym.args[0].op not in ("+", "-") and sym.args[0].int_like:
        return {sym.args[0]: sym.args[1].args[0]}, 0
    if sym.op == "neg":
        inner = _linear(sym.args[0])
        return None if inner is None else _add(({}, 0), inner, -1)
    return ({sym: 1}, 0) if sym.int_like else None


def _add(a, b, sign: int):
    terms = dict(a[0])
    for term, coef in b[0].items():
        terms[term] = terms.get(term, 0) + sign * coef
    return {t: c for t, c in terms.items() if c}, a[1] + sign * b[1]


def _collect(op: str, a: Sym, b: Sym) -> Sym | None:
    """a op b as a collected integer sum, when a and b share a term or cancel (else None: keep as written)."""
    if a.names().isdisjoint(b.names()) and not (a.literal or b.literal):
        return None  # nothing to collect: no shared term, no second constant
    la, lb = _linear(a), _linear(b)
    if la is None or lb is None or not (set(la[0]) & set(lb[0]) or (la[1] and lb[1] and not lb[0])):
        return None
    terms, constant = _add(la, lb, -1 if op == "-" else 1)
    out = None
    for term, coef in terms.items():
        piece = term if abs(coef) == 1 else Sym("*", (term, Sym.num(abs(coef))))
        if out is None:
            out = piece if coef > 0 else Sym("neg", (piece,))
        else:
            out = Sym("+" if coef > 0 else "-", (out, piece))
    if out is None:
        return Sym.num(constant)
    if constant:
        out = Sym("+" if constant > 0 else "-", (out, Sym.num(abs(constant))))
    return out


def fold(sym: Sym, functions: dict) -> Sym:
    """The expression with every call of literals computed (`functions`: name -> function), and the arithmetic
    that then has literals on both sides (after a fixed parameter was written as its value)."""
    if sym.op in ("name", "num"):
        return sym
    if sym.op == "call":
        args = [fold(a, functions) for a in sym.args[1:]]
        if all(a.literal for a in args) and sym.args[0] in functions:
            try:
                return Sym.num(functions[sym.args[0]](*(a.args[0] for a in args)))
            except Exception:  # noqa: BLE001 - a call the program itself would refuse: keep it written out
                pass
        return Sym("call", (sym.args[0], *args))
    return sym.rebuild(lambda a: fold(a, functions))


def negate(a: Sym) -> Sym:
    if a.literal:
        return Sym.num(-a.args[0])
    if a.op == "neg":
        return a.args[0]
    return Sym("neg", (a,))


def _is(sym: Sym, value) -> bool:
    v = sym.args[0]
    return not isinstance(v, bool) and isinstance(v, (int, float)) and v == value and type(v) is type(value)


def _int_like(sym: Sym) -> bool:
    """Is the expression an integer for certain (so that `x * 1` may be printed `x` without turning a float
    into an int, or the other way round)? Unknown names count as such only inside integer arithmetic."""
    if sym.op == "num":
        return isinstance(sym.args[0], int)
    if sym.op == "name":
        return True
    if sym.op == "/":
        return False
    if sym.op == "call":
        return sym.args[0] in ("int", "make_divisible", "round", "floor", "ceil", "len")
    if sym.op == "if":
        return sym.args[1].int_like and sym.args[2].int_like
    if sym.op in (*_LOGIC, "list"):
        return False
    if sym.op == "item":
        return True
    return all(a.int_like for a in sym.args if isinstance(a, Sym))


# ---------------------------------------------------------------- traced numbers


class _Traced:
    """Arithmetic that keeps the expression: mixed into TracedInt and TracedFloat."""

    sym: Sym

    def _combine(self, other, op: str, reflected: bool):
        base = int if isinstance(self, int) else float
        if isinstance(other, bool) or not isinstance(other, (int, float)):
            return NotImplemented
        a, b = (other, self) if reflected else (self, other)
        method = getattr(base, f"__{'r' if reflected else ''}{_DUNDER[op]}__")
        result = method(self, other)
        if result is NotImplemented:
            return result
        return traced(result, binary(op, Sym.of(a), Sym.of(b)))

    def __neg__(self):
        base = int if isinstance(self, int) else float
        return traced(base.__neg__(self), negate(self.sym))

    def __pos__(self):
        return self

    def __abs__(self):
        base = int if isinstance(self, int) else float
        return traced(base.__abs__(self), Sym("call", ("abs", self.sym)))

    def __reduce__(self):  # copies and pickles are plain numbers
        return (int if isinstance(self, int) else float, (plain(self),))


_DUNDER = {"+": "add", "-": "sub", "*": "mul", "/": "truediv", "//": "floordiv", "%": "mod", "**": "pow"}


def _make(op: str):
    def forward(self, other):
        return self._combine(other, op, False)

    def reflected(self, other):
        return self._combine(other, op, True)

    return forward, reflected


for _op, _name in _DUNDER.items():
    _f, _r = _make(_op)
    setattr(_Traced, f"__{_name}__", _f)
    setattr(_Traced, f"__r{_name}__", _r)


def _traced_type(base: type) -> type:
    """TracedInt or TracedFloat: the base's number, with a `sym`; it prints, hashes and compares as the base."""

    def new(cls, value, sym: Sym):
        obj = base.__new__(cls, value)
        obj.sym = sym
        return obj

    return type(f"Traced{base.__name__.capitalize()}", (_Traced, base), {
        "__new__": new, "__hash__": base.__hash__, "__eq__": base.__eq__, "__repr__": base.__repr__,
        "__str__": base.__repr__, "__module__": __name__})


TracedInt = _traced_type(int)
TracedFloat = _traced_type(float)


# Tracing costs about as much as the elaboration itself; only generated code reads traces, so the elaborator
# turns it on for the backends alone (elaborate(trace=True)): analysis, drawing and checking run without it.
_TRACING: ContextVar[bool] = ContextVar("cnndsl_tracing", default=True)


def is_tracing() -> bool:
    return _TRACING.get()


@contextmanager
def tracing(on: bool):
    """Trace numbers (on) or leave them plain (off) while the block runs."""
    token = _TRACING.set(on)
    try:
        yield
    finally:
        _TRACING.reset(token)


def traced(value, sym: Sym | None):
    """value carrying sym, where value is a number and sym says more than its literal (plain while tracing is
    off)."""
    if sym is None or not _TRACING.get() or sym.literal or sym.size > SIZE_MAX or isinstance(value, bool) \
            or not isinstance(value, (int, float)):
        return plain(value) if isinstance(value, _Traced) else value
    if isinstance(value, int):
        return TracedInt(value, sym)
    return TracedFloat(value, sym)


class TracedList(list):
    """range(n) for a traced n: a list that remembers its length's expression (`length`, a traced int), so
    that a loop over it can be a loop over `range(num_layers)` in generated code."""

    length: int


def traced_range(args: list, result: list) -> list:
    if len(args) not in (1, 2) or not any(isinstance(a, _Traced) for a in args):
        return result
    length = args[0] if len(args) == 1 else args[1] - args[0]
    out = TracedList(result)
    out.length = traced(len(result), sym_of(length)) if len(result) == plain(length) else len(result)
    return out


def sym_of(value) -> Sym | None:
    return getattr(value, "sym", None) if isinstance(value, _Traced) else None


def plain(value):
    """The value without traces (recursively through lists, tuples and dicts)."""
    if isinstance(value, _Traced):
        return int(value) if isinstance(value, int) else float(value)
    if isinstance(value, list):
        return [plain(v) for v in value] if any(_has_trace(v) for v in value) else value
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(plain(v) for v in value) if any(_has_trace(v) for v in value) else value
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple) and hasattr(value, "with_shape"):  # a TensorType
        return value.with_shape(plain(shape)) if any(isinstance(d, _Traced) for d in shape) else value
    return value


def numbers(value) -> bool:
    """A non-empty list of numbers (not booleans): a list parameter traced by its elements."""
    return isinstance(value, list) and bool(value) and all(
        not isinstance(v, bool) and isinstance(v, (int, float)) for v in value)


def _has_trace(value) -> bool:
    if isinstance(value, _Traced):
        return True
    if isinstance(value, (list, tuple)):
        return any(_has_trace(v) for v in value)
    return False


def call(name: str, result, args: list):
    """The result of a builtin call, traced when an argument was (`int(planes * 1.5)`)."""
    if isinstance(result, bool) or not isinstance(result, (int, float)):
        return result
    if not any(isinstance(a, _Traced) for a in args):
        return result
    if not all(not isinstance(a, bool) and isinstance(a, (int, float)) for a in args):
        return result
    return traced(result, Sym("call", (name, *(Sym.of(a) for a in args))))
