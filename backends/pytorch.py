"""PyTorch backend: IR -> one self-contained Python file holding an nn.Module.

Submodules carry the IR's hierarchical names, so `state_dict()` keys are the IR's parameter names
(`layer1.0.conv1.weight`). How each scope becomes code:

- a labelled sequence whose members form a chain becomes an `nn.Sequential` (numbered like the IR);
- instances of a block that can be called as a unit become instances of a generated class, one class
  per block and shape of body (`Bottleneck`, `BottleneckWithDownsample`); values that differ between
  instances become constructor arguments, named after the block's parameters where they match;
- anything else is an `nn.Module()` namespace whose members the parent's forward calls one by one.

forward() has one line per op (or per call of a sequence or block), named values taken from the .cnn
file's variables, and the output shape in a comment. Ops are emitted through the table in
pytorch_ops.py; helper classes are copied from pytorch_helpers.py only when used.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import keyword
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from cnndsl import __version__
from cnndsl.elaborate import dimension_names, size_prefix
from cnndsl.init import switched
from cnndsl.ir import Network, Scope
from cnndsl.names import RESERVED as NAMES_RESERVED
from cnndsl.ops import lookup
from cnndsl.ops.spec import BACKWARD_NEEDS_NO_OUTPUT, INPLACE, VIEW
from cnndsl.passes import analyze, op_call
from cnndsl.symbolic import Sym, fold, plain, sym_of
from cnndsl.values import BUILTIN_FUNCTIONS, describe

from .pysource import docstring_text, string
from .pytorch_ops import EMITTERS, Call, Code, Ctx, float_text, render, same
from .pytorch_variants import VariantMerger
from .pytorch_init import init_lines  # weight initialisation (issue 12, item 3): the tail of the top __init__

HELPER_NAMES = frozenset(node.name for node in ast.parse(Path(__file__).with_name("pytorch_helpers.py").read_text(
    encoding="utf-8")).body if isinstance(node, (ast.ClassDef, ast.FunctionDef)))
# what a generated file imports or may define besides the .cnn file's names: never a name for those
RESERVED = (set(NAMES_RESERVED) | set(dir(builtins)) | {"self", "torch", "nn", "F", "math", "OrderedDict", "namedtuple"}
            | HELPER_NAMES)
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# the .cnn builtins that a generated expression may call, by their Python names
FUNCTIONS = {"ceil": "math.ceil", "floor": "math.floor", "sqrt": "math.sqrt"}
WIDTH = 110  # generated code is broken over lines beyond this column
LIMIT = 120  # no generated line is longer (a docstring or header line up to here stays whole)


class Expr(Code):
    """A size written as the .cnn file computes it, with the expression it prints (`sym`), so that a long one
    can be held in a variable of __init__ (see TorchGenerator._hoisted)."""

    sym: Sym
    value: object = None  # the number, where an emitter compares it (slice_text: a bound equal to the axis's size)

    @classmethod
    def of(cls, text: str, sym: Sym, value=None) -> Expr:
        out = cls(text)
        out.sym, out.value = sym, value
        return out


LONG = 60  # an expression longer than this goes into a variable of __init__ before the statement that uses it


@dataclass(frozen=True)
class Named:
    """nn.Sequential(OrderedDict(...)) members, for sequences whose members carry their own names."""

    items: tuple  # ((name, expr), ...)


@dataclass(frozen=True)
class Slot:
    """A constructor argument of a generated class, in place of a literal that varies by instance."""

    expr: str


@dataclass(frozen=True, eq=False)
class Loop:
    """Members `prefix{start}`, `prefix{start + 1}`, ... of one generated class, built by a loop in __init__.
    Each constructor argument is (parameter, first value, step): the value of member i is first + i * step
    (step None: the same value for all)."""

    prefix: str
    start: int
    count: int
    cls: object  # BlockClass of the members
    args: tuple  # ((parameter, first, step), ...)


@dataclass
class Statement:
    outputs: list[str]
    inputs: list[str]
    render: object  # callable(list of input variables) -> expression text
    comment: str = ""
    child: str = ""  # the child scope a leaf-module call statement calls
    block: bool = False  # render(args, target) gives whole lines (a loop), not an expression


@dataclass
class BlockClass:
    name: str
    block: str
    params: list[str]
    rep: str  # the representative instance's scope name
    slots: dict  # position path -> Slot, for literals that vary
    instances: dict = field(default_factory=dict)  # scope name -> {param: value}


def camel(name: str) -> str:
    text = "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", name) if part)
    return text if IDENTIFIER.fullmatch(text or "") else "Net" + text


class TorchGenerator(VariantMerger):
    def __init__(self, net: Network):
        net = net.traced()  # constructor arguments and expressions come from the numbers' traces
        self.net = net
        self.totals = analyze(net)
        self.init_rules = switched(net)  # (rule, switch): a switch of the rules alone is a constructor argument
        self.helpers: set[str] = set()
        self.out_of_place: set[str] = set()  # ops a merged class writes out of place (pytorch_variants)
        self.consumers: dict[str, list[str]] = {n: [] for n in net.order}
        for name in net.order:
            for src in net.node(name)["inputs"]:
                self.consumers[src].append(name)
        self.descendants = self._descendants()
        self.units = {s for s in net.scopes if s and self._is_unit(net.scopes[s])}
        self.sequential: set[str] = set()
        for name in sorted((s for s in net.scopes if s), key=lambda s: -s.count(".")):  # inner scopes first
            if self._is_sequential(net.scopes[name]):
                self.sequential.add(name)
        self.home = ""  # the scope whose class is being planned or written: its names are in scope
        self.classes: dict[str, BlockClass] = {}
        self.class_of: dict[str, BlockClass] = {}
        self.runs = {s: self._runs(self.net.scopes[s]) for s in self.net.scopes if s not in self.sequential}
        # sequences a template block made that stand in a run: they get a class (an nn.Sequential subclass)
        self.looped = {m for runs in self.runs.values() for run in runs for m in run[2]
                       if self.net.scopes[m].kind == "sequence"}
        self.fixed = set(net.fixed)  # network parameters the top class writes as numbers (see _free_counts)
        self._plan_classes()
        self.fixed -= self._free_counts()

    # ------------------------------------------------------------ planning

    def _descendants(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}

        def visit(scope: Scope) -> set[str]:
            found = set()
            for child in scope.children:
                found |= visit(self.net.scopes[child]) if child in self.net.scopes else {child}
            out[scope.name] = found
            return found

        visit(self.net.scopes[""])
        return out

    def _is_unit(self, scope: Scope) -> bool:
        """Can the scope be called as one function of its inputs, giving its outputs?"""
        if not scope.outputs:
            return False
        inside, given = self.descendants[scope.name], {n for _, n in scope.inputs}
        for name in inside:
            if any(src not in inside and src not in given for src in self.net.node(name)["inputs"]):
                return False
            if name not in scope.outputs:
                if any(c not in inside for c in self.consumers[name]) or name in self.net.outputs.values():
                    return False
        return True

    def _runs(self, scope: Scope) -> list[tuple[str, int, list[str]]]:
        """Runs of children made by one loop (Scope.loop): two or more consecutive child scopes of one block,
        named `prefix{start}`, `prefix{start + 1}`, ..., with only inline ops (no modules) between them."""
        runs, current = [], []

        def close():
            if len(current) >= 2:
                prefix, start = _numbered(self._local(current[0]))
                runs.append((prefix, start, list(current)))
            current.clear()

        for child in scope.children:
            if child not in self.net.scopes:
                if self.net.node(child)["kind"] == "op" and self._node_mode(child) != "call":
                    close()
                continue
            sub, numbered = self.net.scopes[child], _numbered(self._local(child))
            ok = sub.block is not None and sub.loop is not None and child in self.units and numbered is not None
            if ok and current:
                first, last = self.net.scopes[current[0]], _numbered(self._local(current[-1]))
                if first.block != sub.block or first.kind != sub.kind or first.loop != sub.loop \
                        or numbered != (last[0], last[1] + 1):
                    close()
            elif not ok:
                close()
                continue
            if sub.kind == "sequence" and child not in self.sequential:
                close()
                continue
            current.append(child)
        close()
        return runs

    def _is_sequential(self, scope: Scope) -> bool:
        if scope.kind != "sequence" or scope.name not in self.units or len(scope.inputs) != 1:
            return False
        previous = scope.inputs[0][1]
        for child in scope.children:
            if child in self.net.scopes:
                sub = self.net.scopes[child]
                if child not in self.units or [n for _, n in sub.inputs] != [previous] or len(sub.outputs) != 1:
                    return False
                if sub.kind == "sequence" and child not in self.sequential:
                    return False
                previous = sub.outputs[0]
            else:
                data = self.net.node(child)
                emitter = EMITTERS[data["op"]]
                if emitter.module is None or emitter.owner_param or data["inputs"] != [previous]:
                    return False
                previous = child
        return previous == scope.outputs[0]

    def _plan_classes(self) -> None:
        """Group unit block instances by the code they need; deepest blocks first."""
        blocks = [s for s in self.net.scopes.values()
                  if (s.kind == "block" and s.name in self.units) or s.name in self.looped]
        blocks.sort(key=lambda s: -s.name.count("."))
        groups: dict[tuple, list[Scope]] = {}
        for depth in sorted({s.name.count(".") for s in blocks}, reverse=True):
            level = [s for s in blocks if s.name.count(".") == depth]
            pending: dict[tuple, list[Scope]] = {}
            for scope in level:
                shape = (scope.block, self._body_shape(scope))
                pending.setdefault(shape, []).append(scope)
            for key, members in pending.items():
                old = groups.get(key, [])
                if old and self._merged_away(old):
                    # the deeper instances of this shape share a class with other variants now, which their
                    # parents' code (planned from it) needs: these start a class of their own instead
                    groups[key] = members
                else:
                    groups[key] = old + members
            for key in pending:
                self._make_class(key, groups[key])
            for block in sorted({key[0] for key in pending}):  # instances that took other branches: one class
                self.merge_variants(block)
        # name the classes: the plainest variant of a block gets the block's name
        by_block: dict[str, list[BlockClass]] = {}
        for cls in {id(c): c for c in self.class_of.values()}.values():
            by_block.setdefault(cls.block, []).append(cls)
        taken = {class_name(self.net)}
        for block, variants in sorted(by_block.items()):
            variants.sort(key=lambda c: (len(self.descendants[c.rep]), c.rep))
            base = camel(block)
            plain = {self._local(n) for n in self.net.scopes[variants[0].rep].children}
            for i, cls in enumerate(variants):
                extra = [self._local(n) for n in self.net.scopes[cls.rep].children
                         if self._local(n) not in plain]
                name = base if i == 0 else base + "With" + "".join(camel(e) for e in extra[:2])
                while name in taken or name in RESERVED:
                    name += "Variant"
                cls.name = name
                taken.add(name)

    def _merged_away(self, members: list[Scope]) -> bool:
        """Were these instances (one shape's class) merged with other variants (merge_variants)? Remaking their
        class would then split them from the instances that their parents' classes count on sharing it."""
        cls = self.class_of.get(members[0].name)
        return cls is None or set(cls.instances) != {m.name for m in members}

    def _free_counts(self) -> set[str]:
        """The network parameters read only as loops' counts (Network.counted) where every loop they count is
        written, in a block's class, as a loop over range(count): the class takes the count, so the top class can
        pass it on from its own argument (ViT's num_layers, the Encoder's `for i in range(num_layers)`)."""
        owners: dict[int, set[str]] = {}
        for name, scope in self.net.scopes.items():
            if name and scope.loop is not None:
                owners.setdefault(scope.loop, set()).add(name.rsplit(".", 1)[0] if "." in name else "")
        return {p for p, runs in self.net.counted.items()
                if all(run in owners and all(self._written(run, o) for o in owners[run]) for run in runs)}

    def _written(self, run: int, owner: str) -> bool:
        """Is the run of members of scope `owner` that loop `run` made built, in a block's class, by a loop over
        range(its traced count)?"""
        roots = self._roots(owner)
        if not roots or roots not in self.class_of:
            return False
        scope = self.net.scopes[owner]
        with self._writing(roots):
            if owner in self.sequential:
                loop, members = self._sequence_loop(scope), scope.children
            else:
                loops = self._loops(scope)
                loop, members = next(((loops[m[0]], m) for _, _, m in self.runs.get(owner, [])
                                      if self.net.scopes[m[0]].loop == run and loops.get(m[0]) is not None),
                                     (None, []))
        if loop is None or not isinstance(loop.count, Expr) or any(step is not None for _, _, step in loop.args):
            return False
        # members alike, each keeping its input's shape: how many there are changes nothing after them (a dense
        # block's growing width would: its concatenation's size is a sum the count does not appear in)
        first, last = self.net.scopes[members[0]], self.net.scopes[members[-1]]
        return len(first.inputs) == len(last.outputs) == 1 and \
            self.net.type_of(first.inputs[0][1]) == self.net.type_of(last.outputs[0])

    @contextlib.contextmanager
    def _writing(self, scope: str):
        """While the class of `scope` is planned or written: the names its code may use are its own."""
        home, self.home = self.home, scope
        try:
            yield
        finally:
            self.home = home

    def _body_shape(self, scope: Scope) -> str:
        """The class body a scope needs, with literal values blanked: equal shapes share a class."""
        with self._writing(scope.name):
            return self._body_shape_text(scope)

    def _body_shape_text(self, scope: Scope) -> str:
        loops = self._loops(scope)
        init = [f"{self._local(c)}:{self._blank(loops.get(c) or self._construct(c, scope.name))}"
                for c in scope.children if loops.get(c, True) is not None]
        if loops:  # inline ops between a loop's members are in forward()'s text; their names vary with the count
            init = [line for line in init if not line.endswith(":None")]
        forward = self._forward_text(scope)
        return "\n".join(init) + "\n" + forward

    def _blank(self, expr) -> str:
        if isinstance(expr, Call):
            return f"{expr.callee}({','.join(self._blank(a) for a in expr.args)};" \
                   f"{','.join(k + '=' + self._blank(v) for k, v in expr.kwargs)})"
        if isinstance(expr, Named):
            return "N(" + ",".join(f"{k}={self._blank(v)}" for k, v in expr.items) + ")"
        if isinstance(expr, Loop):
            args = ",".join(f"{p}:{'const' if step is None else 'step'}" for p, _, step in expr.args)
            return f"Loop({expr.prefix},{expr.start},{id(expr.cls)};{args})"
        if isinstance(expr, Code):
            return str(expr)
        return "_" if expr is not None else "None"

    def _make_class(self, key, members: list[Scope]) -> None:
        """One class for instances whose code is the same: the block's parameters (and input sizes) that the
        code names are its constructor's parameters; a literal that still differs between instances (one the
        .cnn file did not compute from the parameters) becomes one more, named after where it goes."""
        rep = members[0]
        items = [self._init_items(m) for m in members]
        trees = [self._leaves(i) for i in items]
        used = self._code_names(items[0]) & self._names(rep.name)
        lets = self._lets(rep, used)
        used = (used | {n for _, text in lets for n in re.findall(r"[A-Za-z_]\w*", text)}) - set(rep.lets)
        params = [p for p in rep.call if p in used]
        candidates: list[tuple[str, list]] = [(p, [m.call[p] for m in members]) for p in params]
        slots, values = {}, {m.name: {} for m in members}
        for path in trees[0]:
            column = [t[path] for t in trees]
            if all(v == column[0] and type(v) is type(column[0]) for v in column):
                continue
            base = _slot_name(path)  # a value of its own: named after where it goes, unique in the class
            expr, k = base, 1
            while expr in dict(candidates) or expr in RESERVED or expr in rep.lets:
                k += 1
                expr = f"{base}_{k}"
            candidates.append((expr, column))
            slots[path] = Slot(expr)
            params.append(expr)
        for m in members:
            lookup = dict(candidates)
            values[m.name] = {p: lookup[p][members.index(m)] for p in params}
        provisional = f"{camel(rep.block)}#{len({id(c) for c in self.class_of.values()})}"  # named at the end
        cls = BlockClass(provisional, rep.block, params, rep.name, slots, values)
        for m in members:
            self.class_of[m.name] = cls

    @staticmethod
    def _code_names(items: list) -> set[str]:
        """The identifiers that the expressions (Code) of constructor trees use."""
        found: set[str] = set()

        def walk(expr):
            if isinstance(expr, Call):
                for a in expr.args:
                    walk(a)
                for _, v in expr.kwargs:
                    walk(v)
            elif isinstance(expr, Named):
                for _, v in expr.items:
                    walk(v)
            elif isinstance(expr, Loop):
                walk(expr.count)
                for _, first, step in expr.args:
                    walk(first)
                    walk(step)
            elif isinstance(expr, Code):
                found.update(re.findall(r"[A-Za-z_]\w*", expr))
            elif isinstance(expr, (list, tuple)):
                for v in expr:
                    walk(v)

        for _, expr in items:
            walk(expr)
        return found

    def _lets(self, scope: Scope, used: set[str]) -> list[tuple[str, str]]:
        """(name, expression) of the block's locals that the class's code uses, in the .cnn file's order, with
        the ones they use: `width = int(planes * (width_per_group / 64)) * groups`."""
        wanted, out = set(used), []
        for name, value in reversed(scope.lets.items()):
            if name in wanted:
                sym = Sym.of(value)
                wanted |= sym.names()
                out.append((name, self._text(sym)))
        return out[::-1]

    def _block_params(self, scope: Scope) -> set[str]:
        """The block's declared parameters (scope.args also holds its locals after them)."""
        tensor_inputs = {p for p, _ in scope.inputs}
        return {k for k in scope.args if k not in tensor_inputs} if scope.block else set()

    def _in_channels(self, scope: Scope):
        if not scope.inputs:
            return None
        t = self.net.type_of(scope.inputs[0][1])
        return None if t.tokens else t.channels

    def _leaves(self, trees: list) -> dict:
        """Literal leaves of the constructor trees, by position."""
        out = {}

        def walk(expr, path):
            if isinstance(expr, Call):
                for i, a in enumerate(expr.args):
                    walk(a, (*path, _stable(expr.callee), i))
                for k, v in expr.kwargs:
                    walk(v, (*path, _stable(expr.callee), k))
            elif isinstance(expr, Named):
                for k, v in expr.items:
                    walk(v, (*path, "named", k))
            elif isinstance(expr, Loop):
                out[(*path, "loop", "count")] = expr.count
                for p, first, step in expr.args:
                    out[(*path, "loop", p, "first")] = first
                    if step is not None:
                        out[(*path, "loop", p, "step")] = step
            elif not isinstance(expr, Code):
                out[path] = expr

        for i, (name, expr) in enumerate(trees):
            walk(expr, (name,))
        return out

    # ------------------------------------------------------------ constructor expressions

    def _local(self, name: str) -> str:
        return name.rsplit(".", 1)[-1]

    def _ctx(self, name: str, traced: bool = False) -> Ctx:
        """The emitters' view of a node; `traced`: its numbers as the .cnn file computed them (cnndsl.symbolic),
        for constructors, which _symbolic then writes as expressions where the class has the names."""
        data = self.net.node(name)
        if traced and data.get("traced") is not None:
            attrs, inputs, out = data["traced"]
            return Ctx(attrs, list(inputs), out, name, self._inplace_ok(name))
        call = op_call(self.net, name)
        return Ctx(call.attrs, call.inputs, call.out, name, self._inplace_ok(name))

    def _shaped(self, name: str, ctx: Ctx, args: list[str]) -> Ctx:
        """The ctx of an op that forward() writes (TorchOp.sized), with each such attribute that its block computed
        from the op's input's sizes written from that input's shape: `x[:, :x.shape[1] // 2]` for
        slice(0, x.channels // 2), where the literal would make one class per width."""
        data = self.net.node(name)
        scope = self._roots(data["scope"])
        if data.get("traced") is None or not scope or self.net.scopes[scope].kind != "block":
            return ctx
        inputs = self.net.scopes[scope].inputs
        src = data["inputs"][0]
        if src not in [node for _, node in inputs]:
            return ctx
        param = next(p for p, node in inputs if node == src)
        t = self.net.type_of(src)
        names = dimension_names(t, size_prefix(param, inputs[0][0]))
        shape = {n: Sym.name(f"{args[0]}.shape[{axis + 1}]") for axis, n in enumerate(names)}
        attrs = dict(ctx.attrs)
        for key in EMITTERS[data["op"]].sized:
            sym = sym_of(data["traced"][0].get(key))
            if sym is not None and sym.names() and sym.names() <= shape.keys():
                attrs[key] = Expr.of(self._text(sym.subs(shape)), sym, ctx.attrs[key])
        return Ctx(attrs, ctx.inputs, ctx.out, ctx.name, ctx.inplace)

    # ------------------------------------------------------------ expressions

    def _roots(self, scope: str) -> str:
        """The block instance (or the network, "") whose parameters a number made in `scope` is traced by."""
        while scope and self.net.scopes[scope].kind != "block" and not self.net.scopes[scope].tag:
            scope = scope.rsplit(".", 1)[0] if "." in scope else ""
        return scope

    def _names(self, scope: str) -> set[str]:
        """The names a class's code may use: its block's parameters and input sizes, or the network's."""
        if scope == "":
            return {p for p in self.net.params if self._safe(p)}
        s = self.net.scopes[scope]
        return {n for n in [*s.call, *s.lets] if self._safe(n)} if s.kind == "block" or s.tag else set()

    @staticmethod
    def _safe(name: str) -> bool:
        """Can generated code use the .cnn name as it is (not `True`, `print`, `torch`, nor `__x`, which Python
        would mangle inside a class)? Sizes computed from other names are written as numbers."""
        return bool(IDENTIFIER.fullmatch(name)) and not keyword.iskeyword(name) and name not in RESERVED \
            and not name.startswith("__")

    def _arguments(self, scope: str) -> dict[str, Sym]:
        """What a block instance's names are in its caller's terms: its arguments, then its locals."""
        s = self.net.scopes[scope]
        out = {s.tag + k: Sym.of(v) for k, v in s.call.items()}
        for name, v in s.lets.items():
            out[name] = Sym.of(v).subs(out)
        return out

    def _expression(self, value, roots: str):
        """A traced number as the code of class `self.home` can write it (Code), else the plain number."""
        sym = sym_of(value)
        if sym is None:
            return plain(value)
        while roots != self.home and roots:  # up through blocks drawn inline: their parameters are their args
            sym = sym.subs(self._arguments(roots))
            parent = roots.rsplit(".", 1)[0] if "." in roots else ""
            roots = self._roots(parent)
        if roots != self.home:
            return plain(value)
        if roots == "" and self.fixed:  # parameters that shaped the network are literals in its code
            sym = fold(sym.subs({p: Sym.of(plain(self.net.params[p])) for p in self.fixed & sym.names()}),
                       BUILTIN_FUNCTIONS)
        if roots and self.net.scopes[roots].tag:  # a template's scope: its names without the call's tag
            tag = self.net.scopes[roots].tag
            sym = sym.subs({tag + k: Sym.name(k) for k in self.net.scopes[roots].call})
        if not sym.names() <= self._names(self.home):
            return plain(value)
        if not sym.names():  # constant once the fixed parameters are numbers: the number itself
            return plain(value)
        return Expr.of(self._text(sym), sym)

    def _text(self, sym: Sym) -> str:
        """An expression as Python: the .cnn builtins by their Python names (make_divisible is copied in)."""
        text = sym.text(lambda v: float_text(v) if isinstance(v, float) else repr(v), FUNCTIONS)
        if "make_divisible(" in text:
            self.helpers.add("make_divisible")
        return text

    def _symbolic(self, tree, roots: str):
        """A constructor tree with its traced numbers written as expressions (see _expression)."""
        if isinstance(tree, Call):
            return tree.rebuilt(tuple(self._symbolic(a, roots) for a in tree.args),
                                tuple((k, self._symbolic(v, roots)) for k, v in tree.kwargs))
        if isinstance(tree, Code):
            return tree
        if isinstance(tree, dict):
            return {k: self._symbolic(v, roots) for k, v in tree.items()}
        if isinstance(tree, (list, tuple)) and not isinstance(tree, Named):
            values = [self._symbolic(v, roots) for v in tree]
            if isinstance(tree, tuple) and type(tree) is not tuple:  # Options and other tuple types keep theirs
                return tree
            whole = _whole_list(values)
            if whole is not None:
                return whole
            return values if isinstance(tree, list) else tuple(values)
        if isinstance(tree, Named):
            return Named(tuple((k, self._symbolic(v, roots)) for k, v in tree.items))
        return self._expression(tree, roots)

    def _has(self, name: str, trait: str) -> bool:
        """Does the op spec of node `name` claim `trait` for this call (cnndsl.ops.spec's traits)?"""
        data = self.net.node(name)
        return data["kind"] == "op" and lookup(data["op"]).has(trait, op_call(self.net, name))

    def _inplace_ok(self, name: str) -> bool:
        """May this op overwrite its first input? Only when the op may (trait INPLACE), nothing else reads
        the input (not a network input, output or view), and the input's producer does not keep its output
        for backward (trait BACKWARD_NEEDS_NO_OUTPUT: conv, batch norm, linear, sums), as torchvision's
        inplace=True layers assume."""
        data = self.net.node(name)
        src = data["inputs"][0]
        if not self._has(name, INPLACE) or name in self.out_of_place or data["inputs"].count(src) > 1:
            return False
        return self._overwritable(src, name)

    def _overwritable(self, src: str, reader: str) -> bool:
        """May `reader`, its only reader, overwrite the output of node `src`? Through a view (stochastic depth at
        inference returns its input) the tensor overwritten is the view's input: it must be overwritable too."""
        data = self.net.node(src)
        if data["kind"] != "op" or self.consumers[src] != [reader] or src in self.net.outputs.values():
            return False
        if not self._has(src, BACKWARD_NEEDS_NO_OUTPUT):
            return False
        return not self._has(src, VIEW) or self._overwritable(data["inputs"][0], src)

    def _node_mode(self, name: str, in_sequential: bool = False) -> str:
        data = self.net.node(name)
        emitter = EMITTERS[data["op"]]
        if emitter.owner_param:
            return "param"
        if emitter.module is None:
            return "call"
        if emitter.call is None or in_sequential or data["labelled"]:
            return "module"
        return "call"

    def _construct(self, name: str, owner: str):
        """The constructor expression of a child (node or scope) as its parent's __init__ builds it."""
        if name in self.net.scopes:
            scope = self.net.scopes[name]
            if name in self.class_of and self.class_of[name].rep:
                cls = self.class_of[name]
                roots = self._roots(name.rsplit(".", 1)[0] if "." in name else "")
                return self._class_call(cls, [(p, self._expression(cls.instances[name][p], roots))
                                              for p in cls.params])
            if name in self.sequential:
                loop = self._sequence_loop(scope)
                if loop is not None:
                    return Call("nn.Sequential", (loop,))
                members = [(self._local(c), self._construct(c, name)) for c in scope.children]
                if all(label == str(i) for i, (label, _) in enumerate(members)):
                    return Call("nn.Sequential", tuple(expr for _, expr in members))
                return Call("nn.Sequential", (Named(tuple(members)),))
            return Call("nn.Module")
        if self.net.node(name)["kind"] == "input":
            return None
        mode = self._node_mode(name, owner in self.sequential)
        ctx = self._ctx(name, traced=True)
        emitter = EMITTERS[self.net.node(name)["op"]]
        if mode == "module":  # an inline call needs no helper class (functions are added by _statements)
            roots = self._roots(self.net.node(name)["scope"])
            if emitter.plain is not None and owner not in self.sequential:
                return self._symbolic(emitter.plain(ctx), roots)
            self.helpers.update(emitter.helpers)
            self.helpers.update(emitter.uses(ctx))
            return self._symbolic(emitter.module(ctx), roots)
        if mode == "param":  # the emitter writes the Parameter's text itself: give it the sizes as expressions
            roots = self._roots(self.net.node(name)["scope"])
            sized = Ctx(self._symbolic(ctx.attrs, roots), [t.with_shape(self._symbolic(t.shape, roots))
                                                           for t in ctx.inputs],
                        ctx.out.with_shape(self._symbolic(ctx.out.shape, roots)), ctx.name, ctx.inplace)
            return Code(emitter.owner_param(sized))
        return None

    def _construct_all(self, scope: Scope) -> list:
        """(attribute path, expression) for everything a module scope's __init__ builds, in order."""
        with self._writing(scope.name):
            return self._construct_each(scope)

    def _construct_each(self, scope: Scope) -> list:
        out = []

        def visit(s: Scope, prefix: str):
            for child in s.children:
                path = prefix + self._local(child)
                expr = self._construct(child, s.name)
                if expr is None:
                    continue
                out.append((path, expr))
                if child in self.net.scopes and not self._is_leaf_module(child):
                    visit(self.net.scopes[child], path + ".")

        visit(scope, "")
        return out

    def _loops(self, scope: Scope) -> dict:
        """Runs of this scope that __init__ builds by a loop: first member -> Loop, other members -> None.
        A run qualifies when its members share one class and each constructor argument is the same for all
        members or an integer growing by the same step."""
        with self._writing(scope.name):
            return self._loops_here(scope)

    def _loops_here(self, scope: Scope) -> dict:
        out = {}
        roots = self._roots(scope.name)
        for prefix, start, members in self.runs.get(scope.name, []):
            loop = self._loop_of(prefix, start, members, roots)
            if loop is not None:
                out[members[0]] = loop
                out.update({m: None for m in members[1:]})
        return out

    def _loop_of(self, prefix: str, start: int, members: list[str], roots: str) -> Loop | None:
        """The Loop that builds a run's members, where they share one class and each constructor argument is the
        same for all members or an integer growing by the same step."""
        classes = {id(self.class_of.get(m)) for m in members}
        cls = self.class_of.get(members[0])
        if cls is None or len(classes) != 1:
            return None
        args = []
        for p in cls.params:
            values = [cls.instances[m][p] for m in members]
            steps = [b - a for a, b in zip(values, values[1:])] if all(
                isinstance(v, int) and not isinstance(v, bool) for v in values) else None
            if all(v == values[0] and type(plain(v)) is type(plain(values[0])) and Sym.of(v) == Sym.of(values[0])
                   for v in values):  # the same number computed the same way: a class built by hand needs that
                args.append((p, self._expression(values[0], roots), None))
            elif steps is not None and len(set(steps)) == 1 and len({Sym.of(d) for d in steps}) == 1:
                args.append((p, self._expression(values[0], roots), self._expression(steps[0], roots)))
            else:
                return None
        length = self.net.scopes[members[0]].loop_length
        count = self._expression(length, roots) if length == len(members) else len(members)
        return Loop(prefix, start, count, cls, tuple(args))

    def _sequence_loop(self, scope: Scope) -> Loop | None:
        """The members of a Sequential that are one loop's run, named `prefix{i}` (ViT's `encoder_layer_0`, ...):
        built by a loop, as torchvision's Encoder fills its OrderedDict."""
        runs = self._runs(scope)
        if len(runs) != 1 or not runs[0][0] or runs[0][2] != scope.children:
            return None
        prefix, start, members = runs[0]
        return self._loop_of(prefix, start, members, self._roots(scope.name))

    def _init_items(self, scope: Scope) -> list:
        """_construct_all, with the runs that a loop builds as one Loop item (at the first member's path)."""
        loops = self._loops(scope)
        out = []
        for path, expr in self._construct_all(scope):
            name = f"{scope.name}.{path}" if scope.name else path
            if name in loops:
                if loops[name] is not None:
                    out.append((path, loops[name]))
                continue
            out.append((path, expr))
        return out

    def _is_leaf_module(self, name: str) -> bool:
        return name in self.class_of or name in self.sequential

    # ------------------------------------------------------------ forward

    def _statements(self, scope: Scope) -> list[Statement]:
        out: list[Statement] = []

        def visit(s: Scope, prefix: str):
            for child in s.children:
                path = prefix + self._attr(self._local(child), s.name in self.sequential or s.kind == "sequence")
                if child in self.net.scopes:
                    sub = self.net.scopes[child]
                    if self._is_leaf_module(child):
                        ins = [n for _, n in sub.inputs]
                        shape = str(self.net.type_of(sub.outputs[0])) if len(sub.outputs) == 1 else ""
                        out.append(Statement(list(sub.outputs), ins,
                                             lambda a, p=path: f"self{p}({', '.join(a)})", shape, child=child))
                    else:
                        visit(sub, path)
                    continue
                data = self.net.node(child)
                if data["kind"] == "input":
                    continue
                mode = self._node_mode(child)
                emitter = EMITTERS[data["op"]]
                ctx = self._ctx(child)
                if mode == "module" and emitter.after is not None and not self._in_sequential(child):
                    def render_fn(a, p=path, e=emitter):
                        return e.after(f"self{p}({', '.join(a)})")
                elif mode == "module":
                    def render_fn(a, p=path):
                        return f"self{p}({', '.join(a)})"
                elif mode == "param":
                    def render_fn(a, e=emitter, c=ctx, p=path):
                        return e.call(c, [*a, f"self{p}"])
                elif emitter.sized:
                    def render_fn(a, e=emitter, c=ctx, n=child):
                        return e.call(self._shaped(n, c, a), a)
                else:
                    def render_fn(a, e=emitter, c=ctx):
                        return e.call(c, a)
                    self.helpers.update(h for h in emitter.helpers if h[0].islower())
                out.append(Statement([child], list(data["inputs"]), render_fn, str(data["type"])))

        visit(scope, "")
        return out

    @staticmethod
    def _attr(local: str, in_sequence: bool = True) -> str:
        if IDENTIFIER.fullmatch(local) and not keyword.iskeyword(local):
            return f".{local}"
        if local.isdigit() and in_sequence:  # a member of an nn.Sequential
            return f"[{local}]"
        # a name with a hyphen (torchvision's RegNet: block1-0), or a numbered branch outside a Sequential (ASPP's
        # convs.0, a backbone's 0 .. 16)
        return f".get_submodule({string(local)})"

    def _forward_text(self, scope: Scope) -> str:
        return "\n".join(self._forward(scope)[1])

    def _forward(self, scope: Scope, stmts: list[Statement] | None = None, tests: list[str] | None = None,
                 outputs: list[str] | None = None, shared: dict | None = None,
                 tied: tuple = ()) -> tuple[list[str], list[str]]:
        """(parameter names, body lines) of forward() for the module of `scope`. Only the network's own
        forward carries shape comments: a block class serves instances of different shapes. A merged class
        (pytorch_variants.py) gives its statements, the test each runs under ("" for none), its outputs, and the
        nodes that take over another's variable (`shared`: a branch's result replaces the value it stood for)."""
        if stmts is None:
            stmts = self._statements(scope)
            stmts = self._forward_loop(scope, stmts) or stmts
        tests = tests or [""] * len(stmts)
        if scope.name:
            for st in stmts:
                st.comment = ""
        if scope.name == "":
            inputs = [(name, node) for name, node in self.net.inputs.items()]
            outputs = list(self.net.outputs.values())
        else:
            inputs, outputs = list(scope.inputs), outputs or list(scope.outputs)
        var: dict[str, str] = {}
        params = []
        for pname, node in inputs:
            name = self._fresh(pname if IDENTIFIER.fullmatch(pname) else "x", set(params))
            params.append(name)
            var.setdefault(node, name)
        last = {}
        for i, st in enumerate(stmts):
            for n in st.inputs:
                last[n] = i
        for n in outputs:
            last[n] = len(stmts)
        for n, other in tied:  # one variable that either of two branches assigns lives as long as either is read
            last[n] = last[other] = max(last.get(n, -1), last.get(other, -1))
        hint = self._hints(stmts, set(outputs))
        holder: dict[str, str] = {v: n for n, v in var.items()}  # variable -> node it holds
        lines = []
        for i, st in enumerate(stmts):
            args = [var[n] for n in st.inputs]
            names = []
            for out in st.outputs:
                taken = var.get(out) or (var.get(shared[out]) if shared and out in shared else None)
                if taken:  # a branch assigns the variable that holds the value it replaces
                    var[out] = taken
                    holder[taken] = out
                    names.append(taken)
                    continue
                choice = hint.get(out)
                if choice is None and st.child and len(st.outputs) == 1 and self._word(self._local(st.child)) \
                        and self._branch(i, stmts, outputs, last):
                    choice = self._local(st.child)  # `branch1 = self.branch1(x)`, as torchvision writes it
                if choice is None and st.inputs and last.get(st.inputs[0], -1) == i:
                    choice = var[st.inputs[0]]  # the chain goes on in the same variable
                if choice is None:
                    choice = self._local(out) if IDENTIFIER.fullmatch(self._local(out)) else "out"
                busy = {v for v, n in holder.items() if last.get(n, -1) > i and n != out}
                choice = self._fresh(choice, busy | set(names))
                var[out] = choice
                holder[choice] = out
                names.append(choice)
            target = ", ".join(names)
            if st.block:
                busy = {v for v, n in holder.items() if last.get(n, -1) > i} | set(params) | set(names)
                lines.append(st.render(args, target, busy))
                continue
            if scope.name and i == len(stmts) - 1 and st.outputs == outputs and len(outputs) == 1 \
                    and not tests[i] and not self._augmented_here(st, args, target):
                lines.append(_fit(f"return {st.render(args)}", 8))  # the last value is returned, not named
                return params, _under_tests(lines, tests) if any(tests) else lines
            text = f"{target} = {st.render(args)}"
            # the op's own statement, not a call of a block that happens to end in that op (LR-ASPP's head ends in a
            # sum of its two inputs' branches: `y = self.classifier(y, y_2)`, never `y += y_2`)
            node = st.outputs[0] if len(st.outputs) == 1 and st.outputs[0] in self.net.graph and not st.child else None
            operator = self._augmented(node) if node else None
            if operator and len(args) == 2 and target == args[0] and self._inplace_ok(node):
                text = f"{target} {operator}= {args[1]}"  # as torchvision's `out += identity`
            lines.append(_fit(text, 8) + (f"  # {st.comment}" if st.comment else ""))
        if scope.name == "":
            lines = self._network_return(stmts, lines, var)
        else:
            lines = _under_tests(lines, tests) if any(tests) else lines
            lines.append("return " + ", ".join(var[n] for n in outputs))
        return params, lines

    def _in_sequential(self, name: str) -> bool:
        """Is the node a member of a scope written as an nn.Sequential (called as a whole, never by name)?"""
        return self.net.node(name)["scope"] in self.sequential

    def _augmented_here(self, st: Statement, args: list[str], target: str) -> bool:
        """Would the statement be written `a += b` (an in-place sum into its first input)?"""
        node = st.outputs[0] if len(st.outputs) == 1 and st.outputs[0] in self.net.graph and not st.child else None
        return bool(node and self._augmented(node) and len(args) == 2 and target == args[0]
                    and self._inplace_ok(node))

    @staticmethod
    def _branch(i: int, stmts: list[Statement], outputs: list[str], last: dict) -> bool:
        """Is statement i a branch (its value joins others, or leaves the main path), not a link of a chain?"""
        st = stmts[i]
        out = st.outputs[0]
        joined = any(out in later.inputs and len(later.inputs) > 1 for later in stmts[i + 1:])
        returned = out in outputs and len(outputs) > 1
        leaves = bool(st.inputs) and last.get(st.inputs[0], -1) > i  # its input goes on to later statements
        return joined or returned or leaves

    @staticmethod
    def _word(name: str) -> bool:
        """A name that reads as a variable: an identifier, not a member number or a module's own attribute."""
        return bool(IDENTIFIER.fullmatch(name)) and not keyword.iskeyword(name) and name not in RESERVED

    def _network_return(self, stmts: list[Statement], lines: list[str], var: dict[str, str]) -> list[str]:
        """The network's forward lines (one per statement) with its return. The statements that only training
        outputs need (`training output`, GoogLeNet's auxiliary heads) run under `if self.training:`, as in
        torchvision; in training the module returns all outputs as a namedtuple (`_outputs_tuple`), in eval
        its one eval output as a tensor, or several as a dict from output name to tensor."""
        assert len(lines) == len(stmts), "one line per statement"
        training = self.net.training_nodes()
        out: list[str] = []
        guarded = False
        for st, line in zip(stmts, lines):
            train = bool(training) and bool(st.outputs) and all(n in training for n in st.outputs)
            if train and not guarded:
                out.append("if self.training:")
            guarded = train
            out.append(textwrap.indent(line, "    ") if train else line)
        if self.net.training_outputs:
            values = ", ".join(var[v] for v in self.net.outputs.values())
            out += ["if self.training:", _fit(f"    return {self._outputs_tuple()[0]}({values})", 8)]
        evals = self.net.eval_outputs()
        if len(evals) > 1:
            items = ", ".join(f"{string(k)}: {var[v]}" for k, v in evals.items())
            out.append(_fit(f"return {{{items}}}", 8))
        else:
            out.append("return " + var[next(iter(evals.values()))])
        return out

    def _outputs_tuple(self) -> tuple[str, str]:
        """(name, definition) of the namedtuple a network with training outputs returns in training mode, named
        after the network (torchvision's GoogLeNetOutputs); ("", "") without training outputs."""
        if not self.net.training_outputs:
            return "", ""
        taken = RESERVED | {c.name for c in self.class_of.values()} | {class_name(self.net)}
        name = class_name(self.net) + "Outputs"
        while name in taken:
            name += "_"
        fields = ", ".join(string(k) for k in self.net.outputs)
        # a field may not be a keyword nor start with "_": such an output is the field _1 (by its position)
        rename = any(keyword.iskeyword(k) or k.startswith("_") for k in self.net.outputs)
        return name, _fit(f"{name} = namedtuple({string(name)}, [{fields}]{', rename=True' * rename})", 0)

    def _forward_loop(self, scope: Scope, stmts: list[Statement]) -> list[Statement] | None:
        """forward() as a loop over the members of a run, when the run's members are all the scope's
        modules and each member's statements repeat one pattern: a chain of inline ops ending in the member,
        reading the scope's earlier values and the list of [earlier values..., outputs of the members so
        far] (a dense block's `torch.cat(features, 1)`). The statements after the run that read the whole
        list read the list. None when the scope is not of that form."""
        loops = self._loops(scope)
        items = self._init_items(scope)
        if len(items) != 1 or not isinstance(items[0][1], Loop):
            return None
        members = [m for m, loop in loops.items() if loop is not None] + [m for m, v in loops.items() if v is None]
        at = [next((i for i, st in enumerate(stmts) if st.child == m), None) for m in members]
        if None in at or at != sorted(at) or any(len(stmts[i].outputs) != 1 for i in at):
            return None
        width = {b - a for a, b in zip(at, at[1:])}
        if len(width) != 1:
            return None
        size = width.pop()
        begin = at[0] - size + 1
        if begin < 0:
            return None
        outs = [stmts[i].outputs[0] for i in at]
        reads: dict[str, list[int]] = {}  # node -> the statements that read it
        for i, st in enumerate(stmts):
            for n in st.inputs:
                reads.setdefault(n, []).append(i)
        segments = [stmts[i - size + 1: i + 1] for i in at]
        seeds, pattern = None, []
        for j in range(size):
            kinds = []
            for k, seg in enumerate(segments):
                st = seg[j]
                if len(st.outputs) != 1 or st.block:
                    return None
                if j < size - 1 and (reads.get(st.outputs[0]) != [at[k] - size + j + 2]
                                     or seg[j + 1].inputs != st.outputs or st.outputs[0] in scope.outputs):
                    return None  # a chain: each value feeds the next statement only
                if j == 0:
                    ins = st.inputs
                    if ins[len(ins) - k:] != outs[:k] or any(n in outs for n in ins[: len(ins) - k]):
                        kinds.append(("plain", tuple(ins)))
                    else:
                        kinds.append(("list", tuple(ins[: len(ins) - k])))
                else:
                    kinds.append(("chain",))
            if len(set(kinds)) != 1:
                return None
            kind = kinds[0]
            if kind[0] == "list":
                seeds = list(kind[1])
            pattern.append(kind[0])
        if seeds is None:
            return None
        # each member's output is read only by the list: later segments' first statements and what follows
        after = stmts[at[-1] + 1:]
        full = [*seeds, *outs]
        readers = {at[k] - size + 1 for k in range(len(segments))}
        for i, st in enumerate(after, at[-1] + 1):
            if any(n in outs for n in st.inputs):
                if st.inputs != full:
                    return None
                readers.add(i)
        if any(r not in readers for o in outs for r in reads.get(o, [])) or set(outs) & set(scope.outputs):
            return None
        texts = set()
        for seg in segments:
            st = seg[0]
            texts.add(st.render(["*features"] if pattern[0] == "list" else ["?"] * len(st.inputs)))
        if len(texts) != 1 or (pattern[0] == "list" and "[*features]" not in next(iter(texts))):
            return None
        first = segments[-1]
        names = [self.net.node(o).get("var") for o in outs]
        var = names[-1] if names[-1] and IDENTIFIER.fullmatch(names[-1]) and names[-1] not in RESERVED else "out"
        listed = f"{scope.name}:features"  # a name no node has

        def render_loop(args, target, busy, first=first):
            seed_vars = args[: len(seeds)]
            v = self._fresh(var, busy | {target})
            layer = self._fresh("layer", busy | {target, v})
            lines = [f"{target} = [{', '.join(seed_vars)}]", f"for {layer} in self.children():"]
            for j, st in enumerate(first):
                if j == size - 1:
                    text = f"{layer}({v})"
                elif j == 0 and pattern[0] == "list":
                    text = st.render([f"*{target}"]).replace(f"[*{target}]", target)
                else:
                    text = st.render([v])
                lines.append(" " * 12 + _fit(f"{v} = {text}", 12))
            lines.append(" " * 12 + f"{target}.append({v})")
            return "\n".join(lines[:1] + ["        " + lines[1]] + lines[2:])

        loop = Statement([listed], list(seeds), render_loop, block=True)
        rest = []
        for st in after:
            if st.inputs == full:
                def render_after(a, st=st):
                    return st.render([f"*{a[0]}"]).replace(f"[*{a[0]}]", a[0])
                rest.append(Statement(st.outputs, [listed], render_after, st.comment))
            else:
                rest.append(st)
        return [*stmts[:begin], loop, *rest]

    def _augmented(self, node: str) -> str | None:
        """The operator of an op whose emitter writes `a <op> b` and has the augmented form `a <op>= b`."""
        data = self.net.node(node)
        return EMITTERS[data["op"]].augmented if data["kind"] == "op" else None

    def _hints(self, stmts: list[Statement], outputs: set[str]) -> dict[str, str]:
        """Variable names from the .cnn file, spread back along chains that end in a named value."""
        hint = {}
        for st in stmts:
            for out in st.outputs:
                if out not in self.net.graph:  # the list a loop in forward() keeps
                    hint[out] = "features"
                    continue
                v = self.net.node(out).get("var")
                if v and IDENTIFIER.fullmatch(v) and v not in RESERVED:
                    hint[out] = v
        uses: dict[str, int] = {}
        for st in stmts:
            for n in st.inputs:
                uses[n] = uses.get(n, 0) + 1
        for st in reversed(stmts):
            if len(st.inputs) == 1 and len(st.outputs) == 1 and st.outputs[0] in hint:
                src = st.inputs[0]
                if src not in hint and uses.get(src) == 1 and src not in outputs:
                    hint[src] = hint[st.outputs[0]]
        return hint

    @staticmethod
    def _fresh(name: str, busy: set[str]) -> str:
        if name in RESERVED:
            name = name + "_"
        candidate, k = name, 1
        while candidate in busy or candidate in RESERVED:
            k += 1
            candidate = f"{name}_{k}"
        return candidate

    # ------------------------------------------------------------ rendering

    def _render_expr(self, expr, indent: int, slots: dict | None = None, path=(), lead: int = 0) -> str:
        """An expression, broken over lines when long (or when it is a Sequential of several)."""
        if isinstance(expr, Named):
            # each member is a ("name", expression) row: the expression starts after the name and ends before "),"
            inner = [(k, self._render_expr(v, indent + 8, slots, (*path, "named", k), lead=len(k) + 7))
                     for k, v in expr.items]
            pad = " " * (indent + 8)
            body = "".join(f"{pad}({string(k)}, {v}),\n" for k, v in inner)
            inner_pad = " " * (indent + 4)
            return "OrderedDict(\n" + inner_pad + "[\n" + body + inner_pad + "]\n" + " " * indent + ")"
        if _looped_sequential(expr):
            i, count, name, call = self._loop_parts(expr.args[0], (*path, "nn.Sequential", 0), slots, indent + 8)
            return _fit(f"nn.Sequential(OrderedDict(({name}, {call}) for {i} in range({count})))", indent)
        if not isinstance(expr, Call):
            if slots is not None and path in slots:
                return slots[path].expr
            flat = render(expr)
            if isinstance(expr, tuple) and len(flat) + indent > WIDTH:  # a connection table: a row a line
                pad = " " * (indent + 4)
                return "(\n" + "".join(f"{pad}{render(v)},\n" for v in expr) + " " * indent + ")"
            return flat
        callee = _stable(expr.callee)
        args = [self._render_expr(a, indent + 4, slots, (*path, callee, i)) for i, a in enumerate(expr.args)]
        for k, v in expr.kwargs:
            where = (*path, callee, k)
            if not (slots and where in slots) and same(v, expr.default(k)):
                continue  # torch's default: say nothing
            args.append(f"{k}={self._render_expr(v, indent + 4, slots, where)}")
        flat = f"{expr.callee}({', '.join(args)})"
        multi = expr.callee == "nn.Sequential" and (len(expr.args) > 1 or any(isinstance(a, Named) for a in expr.args))
        if not multi and "\n" not in flat and len(flat) + indent + lead <= WIDTH:
            return flat
        pad = " " * (indent + 4)
        joined = ", ".join(args)
        if not multi and "\n" not in joined and len(pad) + len(joined) <= WIDTH:  # as black: the arguments on one line
            return f"{expr.callee}(\n{pad}{joined}\n" + " " * indent + ")"
        return f"{expr.callee}(\n" + "".join(f"{pad}{a},\n" for a in args) + " " * indent + ")"

    def _init_lines(self, scope: Scope, slots: dict | None) -> list[str]:
        """Statements of __init__, each rendered for an indentation of 8 (continuation lines included)."""
        lines = []
        for path, expr, before in self._hoisted(self._init_items(scope), scope):
            lines += before
            if isinstance(expr, Loop):
                lines.append(self._loop_text(expr, path, slots))
                continue
            *parents, local = path.split(".")
            target = "self" + "".join(self._attr(p) for p in [*parents, local])
            if not self._attr(local).startswith(f".{local}"):  # a number outside a Sequential, or a hyphen
                head = f'{"self" + "".join(self._attr(p) for p in parents)}.add_module({string(local)}, '
                lines.append(f"{head}{self._render_expr(expr, 8, slots, (path,), len(head) + 1)})")
            elif _looped_sequential(expr):
                lines += self._sequence_loop_lines(target, expr.args[0], path, slots, scope)
            else:
                repeated = self._repeated(target, expr, path, slots, scope)
                lines += repeated or [f"{target} = {self._render_expr(expr, 8, slots, (path,), len(target) + 3)}"]
        return lines

    def _repeated(self, target: str, expr, path: str, slots: dict | None, scope: Scope) -> list[str] | None:
        """An nn.Sequential that ends in a run of equal members, built by a loop as torchvision's _make_layer
        builds a ResNet stage: `layers = [Bottleneck(256, 128, stride=2)]`, `for _ in range(3):
        layers.append(Bottleneck(512, 128))`, `self.layer2 = nn.Sequential(*layers)`."""
        if not isinstance(expr, Call) or expr.callee != "nn.Sequential" or len(expr.args) < 3 \
                or any(isinstance(a, Named) for a in expr.args):
            return None
        texts = [self._render_expr(a, 12, slots, (path, _stable(expr.callee), i)) for i, a in enumerate(expr.args)]
        run = 1
        while run < len(texts) and texts[-run - 1] == texts[-1]:
            run += 1
        head = texts[:len(texts) - run]
        if run < 2 or len(head) > 1:
            return None
        taken = self._code_names(self._init_items(scope)) | set(scope.lets) | set(
            self.class_of[scope.name].params if scope.name in self.class_of else self.arguments())
        var = self._fresh("layers", taken)
        first = self._render_expr(expr.args[0], 8, slots, (path, _stable(expr.callee), 0), len(var) + 4) if head else ""
        return [f"{var} = [{first}]", f"for _ in range({run}):\n" + " " * 12 + f"{var}.append({texts[-1]})",
                f"{target} = nn.Sequential(*{var})"]

    def _hoisted(self, items: list, scope: Scope) -> list[tuple[str, object, list[str]]]:
        """(path, expression, statements before it): an expression longer than LONG is computed once into a variable
        (`channels = int(...)`), and later expressions that contain it use the variable, as torchvision's DenseNet
        keeps `num_features` (an unrolled network's channel counts otherwise nest ever deeper)."""
        table: dict[Sym, Sym] = {}
        taken = set(self._names(scope.name)) | {n for _, expr in items for n in self._code_names([("", expr)])}
        out = []

        def walk(expr, before: list[str]):
            if isinstance(expr, Call):
                return expr.rebuilt(tuple(walk(a, before) for a in expr.args),
                                    tuple((k, walk(v, before)) for k, v in expr.kwargs))
            if isinstance(expr, Named):
                return Named(tuple((k, walk(v, before)) for k, v in expr.items))
            if not isinstance(expr, Expr):
                return expr
            sym = expr.sym.replace(table)
            text = self._text(sym)
            if len(text) > LONG:
                name = self._fresh("channels", taken)
                taken.add(name)
                before.append(_fit(f"{name} = {text}", 8))
                table[expr.sym] = table[sym] = Sym.name(name)
                sym, text = Sym.name(name), name
            return Expr.of(text, sym)

        for path, expr in items:
            before: list[str] = []
            out.append((path, walk(expr, before) if not isinstance(expr, Loop) else expr, before))
        return out

    def _loop_text(self, loop: Loop, path: str, slots: dict | None) -> str:
        """for i in range(n): self.add_module(f"prefix{i + 1}", Class(arg=first + i * step, ...))"""
        i, count, name, call = self._loop_parts(loop, (path,), slots, 16)
        line = _fit(f"self.add_module({name}, {call})", 12)
        return f"for {i} in range({count}):\n" + " " * 12 + line

    def _sequence_loop_lines(self, target: str, loop: Loop, path: str, slots: dict | None, scope: Scope) -> list[str]:
        """layers = OrderedDict(); for i in range(num_layers): layers[f"encoder_layer_{i}"] = EncoderBlock(...);
        self.layers = nn.Sequential(layers), as torchvision's Encoder."""
        i, count, name, call = self._loop_parts(loop, (path, "nn.Sequential", 0), slots, 16)
        taken = self._code_names(self._init_items(scope)) | set(scope.lets) | set(
            self.class_of[scope.name].params if scope.name in self.class_of else self.arguments())
        var = self._fresh("layers", taken)
        return [f"{var} = OrderedDict()",
                f"for {i} in range({count}):\n" + " " * 12 + _fit(f"{var}[{name}] = {call}", 12),
                f"{target} = nn.Sequential({var})"]

    def _loop_parts(self, loop: Loop, path: tuple, slots: dict | None, indent: int) -> tuple[str, str, str, str]:
        """(index variable, count, the f-string of member i's name, member i's constructor call) of a Loop."""
        i = self._fresh("i", set(re.findall(r"[A-Za-z_]\w*", " ".join(slot.expr for slot in (slots or {}).values()))))

        def text(key, value):
            where = (*path, "loop", *key)
            return slots[where].expr if slots and where in slots else render(value)

        args = []
        for p, first, step in loop.args:
            value = text((p, "first"), first)
            if step is not None:
                step_text = text((p, "step"), step)
                if not re.fullmatch(r"[\w.]+", step_text):
                    step_text = f"({step_text})"  # i * (c - in_channels), not i * c - in_channels
                term = i if step_text == "1" else f"{i} * {step_text}"
                value = term if value == "0" else f"{f'({value})' if ' if ' in value else value} + {term}"
            args.append((p, Code(value)))
        name = f"{{{i} + {loop.start}}}" if loop.start else f"{{{i}}}"
        call = self._render_expr(self._class_call(loop.cls, args), indent)
        return i, text(("count",), loop.count), f'f"{loop.prefix}{name}"', call

    def _class_call(self, cls: BlockClass, values: list[tuple[str, object]]) -> Call:
        """Class(a, b, c=...): the parameters without a default by position, the rest by name when not the
        default, as a person calls a constructor."""
        defaults = self._defaults(cls)
        lead = next((i for i, (p, _) in enumerate(values) if p in defaults), len(values))
        if any(p.startswith("__") for p, _ in values):  # Python would mangle `__q=` inside the caller's class
            lead = len(values)
        return Call(cls.name, tuple(v for _, v in values[:lead]), tuple(values[lead:]), tuple(defaults.items()))

    def _defaults(self, cls: BlockClass) -> dict:
        """The block's literal defaults of the class's parameters (those after the first without one)."""
        scope = self.net.scopes[cls.rep]
        out: dict = {}
        for p in cls.params:
            if p in scope.defaults:
                out[p] = scope.defaults[p]
            elif out:  # Python wants the defaulted parameters last: keep the order, drop the defaults before
                out = {}
        return out

    def _signature(self, cls: BlockClass) -> str:
        defaults = self._defaults(cls)
        return ", ".join(["self", *(f"{p}={render(defaults[p])}" if p in defaults else p for p in cls.params)])

    def _class_source(self, cls: BlockClass) -> str:
        if getattr(cls, "variants", None):
            return self.variants_source(cls, cls.name)
        scope = self.net.scopes[cls.rep]
        if cls.rep in self.sequential:
            return self._sequential_class_source(cls)
        params, body = self._forward(scope)
        with self._writing(cls.rep):
            init = self._init_lines(scope, cls.slots)
            used = self._code_names(self._init_items(scope)) & self._names(cls.rep)
        init = [f"{name} = {text}" for name, text in self._lets(scope, used)] + init
        sig = self._signature(cls)
        out = [f"class {cls.name}(nn.Module):",
               *_docstring(f"Block `{cls.block}` of {_doc_text(self.net.source)}.", 4), "",
               "    " + _fit(f"def __init__({sig}):", 4), "        super().__init__()",
               *("        " + line for line in init), "",
               f"    def forward(self, {', '.join(params)}):",
               *("        " + line for line in body)]
        return "\n".join(out)

    def _sequential_class_source(self, cls: BlockClass) -> str:
        """A sequence a template block made, as an nn.Sequential subclass (like torchvision's
        Conv2dNormActivation): the members are its constructor's arguments, forward() is nn.Sequential's."""
        members = self._construct_all(self.net.scopes[cls.rep])
        if all(path == str(i) for i, (path, _) in enumerate(members)):
            body = "".join(f"            {self._render_expr(e, 12, cls.slots, (p,))},\n" for p, e in members)
        else:
            rows = "".join(f'                    ("{p}", {self._render_expr(e, 20, cls.slots, (p,))}),\n'
                           for p, e in members)
            body = "            OrderedDict(\n                [\n" + rows + "                ]\n            )\n"
        sig = self._signature(cls)
        out = [f"class {cls.name}(nn.Sequential):",
               *_docstring(f"Block `{cls.block}` of {_doc_text(self.net.source)}.", 4), "",
               "    " + _fit(f"def __init__({sig}):", 4),
               "        super().__init__(\n" + body + "        )"]
        return "\n".join(out)

    def _root_source(self, name: str) -> str:
        root = self.net.scopes[""]
        params, body = self._forward(root)
        init = self._init_lines(root, None)
        sig = ", ".join(["self", *(f"{p}={render(self.net.params[p])}" for p in self.arguments())])
        out = [f"class {name}(nn.Module):",
               *_docstring(_doc_text(self.net.doc or self.net.name), 4), "",
               "    " + _fit(f"def __init__({sig}):", 4), "        super().__init__()",
               *("        " + line for line in init),
               *("        " + line for line in init_lines(  # weight initialisation: pytorch_init.py
                   self.net, {s: c.name for s, c in self.class_of.items()}, self.init_rules)),
               "",
               f"    def forward(self, {', '.join(params)}):",
               *("        " + line for line in body)]
        outputs = self._outputs_tuple()[1]  # a network with training outputs: the namedtuple it returns
        return (outputs + "\n\n\n" if outputs else "") + "\n".join(out)

    def arguments(self) -> list[str]:
        """The network parameters the top class takes as constructor arguments: those its code computes with.
        The others (a stage's depth, the block type, a switch) shaped what the compiler built; they stay fixed."""
        with self._writing(""):
            used = self._code_names(self._init_items(self.net.scopes[""]))
        used |= {when[0] for _, when in self.init_rules if when is not None}
        return [p for p in self.net.params if p in used]

    def _arguments_note(self) -> list[str]:
        """Which network parameters the constructor takes, and why the others are fixed."""
        taken = self.arguments()
        fixed = [p for p in self.net.params if p not in taken]
        lines = [f"constructor arguments: {', '.join(taken) if taken else 'none'}"]
        if fixed:
            lines.append(f"fixed in this file: {', '.join(fixed)} (they decide which layers exist or how many, or "
                         f"are used by no layer's size; change them with cnndsl compile --set)")
        return lines

    def header(self, class_name: str) -> str:
        net, t = self.net, self.totals
        example = ", ".join(f"torch.randn(1, {', '.join(map(str, net.type_of(v).shape))})" for v in net.inputs.values())
        settings = ", ".join(f"{k}={_setting(v)}" for k, v in net.params.items()) or "none"
        shapes = lambda m: ", ".join(f"{k} {net.type_of(v)}" for k, v in m.items())  # noqa: E731
        lines = [
            f"{net.name}: {net.doc}" if net.doc else net.name, "",
            f"Generated by cnndsl {__version__} from {net.source}; edit the .cnn file, not this one.",
            "", f"network parameters: {settings}", *self._arguments_note(),
            f"inputs: {shapes(net.inputs)}", f"outputs: {shapes(net.outputs)}",
            f"parameters: {t['params']:,} (trainable {t['trainable_params']:,}, fixed {t['fixed_params']:,}); "
            f"buffers: {t['buffers']:,}", f"MACs: {t['macs']:,} per sample", "",
            f"Usage: model = {class_name}(); y = model({example})",
        ]
        wrapped = [part for line in lines for part in _wrap(_doc_text(line), WIDTH, "    ")]
        return '"""' + "\n".join(wrapped) + '\n"""'

    def source(self) -> str:
        top = class_name(self.net)
        root = self._root_source(top)
        classes, seen = [], set()
        # classes in dependency order: a class is emitted after the classes its body uses
        ordered = sorted({id(c): c for c in self.class_of.values()}.values(), key=lambda c: -c.rep.count("."))
        for cls in ordered:
            if cls.name not in seen:
                seen.add(cls.name)
                classes.append(self._class_source(cls))
        helpers = self._helper_sources()
        body = "\n\n\n".join([*helpers, *classes, root])
        used = {n.id for n in ast.walk(ast.parse(body)) if isinstance(n, ast.Name)}  # not text: `self.math`, docs

        def uses(name: str) -> bool:
            return name in used

        collections = ", ".join(n for n in ("OrderedDict", "namedtuple") if uses(n))
        standard = [line for line, wanted in (("import math", uses("math")),
                                              (f"from collections import {collections}", collections)) if wanted]
        imports = ["import torch"] if uses("torch") else []
        imports.append("from torch import nn")
        if uses("F"):
            imports.append("from torch.nn import functional as F")
        if standard:
            imports = sorted(standard) + [""] + imports
        text = "\n".join([self.header(top), "", "\n".join(imports), "", "", body, "", "",
                          f'__all__ = ["{top}"]', ""])
        ast.parse(text)  # a generator bug must never produce a file that does not parse
        return text

    def _helper_sources(self) -> list[str]:
        if not self.helpers:
            return []
        path = Path(__file__).with_name("pytorch_helpers.py")
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        wanted = set(self.helpers)
        if "ChannelShuffle" in wanted:
            wanted.add("channel_shuffle")
        out = []
        for node in tree.body:
            if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name in wanted:
                out.append(ast.get_source_segment(text, node))
        return out


def _under_tests(lines: list[str], tests: list[str]) -> list[str]:
    """Each run of lines with the same test under `if test:` (one line per statement, a test per statement)."""
    out, current = [], ""
    for line, test in zip(lines, tests):
        if test and test != current:
            out.append(f"if {test}:")
        current = test
        out.append(textwrap.indent(line, "    ") if test else line)
    return out


def _whole_list(values: list):
    """`kernel` for (kernel[0], kernel[1]): every element of a list parameter, in order (else None)."""
    syms = [getattr(v, "sym", None) for v in values]
    if not syms or any(s is None or s.op != "item" for s in syms):
        return None
    if len({s.args[0] for s in syms}) != 1 or [s.args[1] for s in syms] != list(range(len(syms))) \
            or syms[0].args[2] != len(syms):  # kernel[0], kernel[1] of a longer list are not the list
        return None
    return Expr.of(syms[0].args[0].text(), syms[0].args[0])


def _looped_sequential(expr) -> bool:
    """An nn.Sequential whose members one loop builds (TorchGenerator._sequence_loop)."""
    return isinstance(expr, Call) and expr.callee == "nn.Sequential" and len(expr.args) == 1 \
        and isinstance(expr.args[0], Loop)


def _stable(callee: str) -> str:
    """A callee as slot paths know it: generated classes are renamed after planning, so they are 'class'."""
    return "class" if callee[:1].isupper() and "." not in callee else callee


def _slot_name(path: tuple) -> str:
    """A constructor argument named after the attribute and argument it feeds: conv2_stride."""
    attribute = str(path[0]).split(".")[-1]
    argument = path[-1] if isinstance(path[-1], str) else {0: "in", 1: "out"}.get(path[-1], f"arg{path[-1]}")
    name = re.sub(r"\W+", "_", f"{attribute}_{argument}").strip("_").lower()
    return name if IDENTIFIER.fullmatch(name) else f"value_{name}"


def _fit(text: str, indent: int) -> str:
    """A statement at `indent` columns broken as black would when too long: inside its last bracket pair,
    the items on one line if they fit, else one item a line (each fitted in turn). Continuation lines carry
    their indentation; a shape comment goes after the closing bracket."""
    if indent + len(text) <= WIDTH:
        return text
    pairs, opened = [], 0
    for i, ch, depth in _scan(text):
        if ch in "([{" and depth == 0:
            opened = i
        elif ch in ")]}" and depth == 0:
            pairs.append((opened, i))
    if not pairs or pairs[-1][1] - pairs[-1][0] < 2:
        return text
    start, end = pairs[-1]
    head, inner, tail = text[: start + 1], text[start + 1 : end], text[end:]
    cuts = [i for i, ch, depth in _scan(inner) if ch == "," and depth == 0]
    items = [inner[a + 1:b].strip() for a, b in zip([-1, *cuts], [*cuts, len(inner)])]
    items = [item for item in items if item]
    pad, close = " " * (indent + 4), " " * indent + tail
    joined = ", ".join(items)
    if len(pad) + len(joined) <= WIDTH:
        return f"{head}\n{pad}{joined}\n{close}"
    return head + "\n" + "".join(f"{pad}{_fit(item, indent + 4)},\n" for item in items) + close


def _scan(text: str):
    """(index, character, bracket depth outside it) of each bracket and comma of a line of Python, string
    literals skipped."""
    depth, quote = 0, None
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote and text[i - 1] != "\\" else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            yield i, ch, depth
            depth += 1
        elif ch in ")]}":
            depth -= 1
            yield i, ch, depth
        elif ch == ",":
            yield i, ch, depth


def _wrap(text: str, width: int, indent: str) -> list[str]:
    """One line of text broken at spaces to fit `width` columns; continuation lines start with `indent`."""
    if len(text) <= LIMIT - 4:
        return [text]
    return textwrap.wrap(text, width, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False)


def _docstring(text: str, indent: int) -> list[str]:
    """A docstring at `indent` columns: on one line when it fits, else wrapped with the quotes on their own."""
    pad = " " * indent
    if indent + len(text) + 6 <= LIMIT:
        return [f'{pad}"""{text}"""']
    return [f'{pad}"""', *(pad + line for line in _wrap(text, WIDTH - indent, "")), f'{pad}"""']


def _doc_text(text: str) -> str:
    return docstring_text(text)


def _setting(value) -> str:
    if isinstance(value, (bool, int, float, str)) or value is None:
        return render(value)
    if isinstance(value, list):
        return "[" + ", ".join(_setting(v) for v in value) + "]"
    return describe(value)


def generate(net: Network) -> str:
    """The PyTorch source of a network (deterministic: the same IR gives the same bytes)."""
    return TorchGenerator(net).source()


def class_name(net: Network) -> str:
    """The generated class of a network: its name in CamelCase, with "Net" added where that name is taken
    (`network none_` would be `class None`, `network f` would hide torch.nn.functional as F)."""
    name = camel(net.name)
    return name + "Net" if name in RESERVED or keyword.iskeyword(name) else name


def _numbered(local: str) -> tuple[str, int] | None:
    """("denselayer", 12) for "denselayer12"; None when the name does not end in a number after a name."""
    found = re.fullmatch(r"([A-Za-z_][A-Za-z_0-9]*?[A-Za-z_])(0|[1-9][0-9]*)", local)
    return (found.group(1), int(found.group(2))) if found else None
