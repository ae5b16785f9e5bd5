"""Syntax tree -> IR. Evaluates network parameters, runs blocks, loops and conditionals, applies ops
through their specs (which check arguments and infer shapes), and names every node hierarchically.

Naming follows nn.Module: a labelled block instance or sequence opens a scope (`layer1.0.conv1`); the
members of a labelled sequence are numbered by position, parameterless ones included (`features.3`);
an unlabelled node is named after its op, made unique in its scope once all explicit names are known.
"""

from __future__ import annotations

import contextlib
import dataclasses
import keyword
import os
import re
from typing import Any

import networkx as nx

from . import ast as A
from . import init as weight_init
from . import limits, lint
from .errors import CnnError, CnnWarning, KeywordSpan, Note, Source, Span, keyword_span, suggest
from .ir import Network, Scope
from .loader import BUNDLED_PREFIX, Target
from .names import MODULE_ATTRIBUTES
from .ops import OpCall, OpError, OpSpec, all_names, lookup
from .ops.spec import ANY_LAYOUT
from .symbolic import (COMPARISONS, Sym, call as traced_call, choice, compare, fold, invert, is_tracing, logical,
                       numbers, plain, sym_of, traced, traced_range, tracing)
from .syntax import parse_expression
from .types import AXIS_NAMES, TensorType
from .values import (BUILTIN_FUNCTIONS, BUILTINS, MAX_LIST, BlockClosure, Builtin, BuiltinError, Env, Frame,
                     GuardedList, Layer, NetworkValue, PendingNode, TemplateClosure, Tensor, describe)

# Letters, digits and _, with single hyphens inside (torchvision's RegNet names its blocks `block1-0`); a
# hyphen can only come from an interpolated string: `block{s}{"-"}{j}`.
_LABEL = re.compile(r"[A-Za-z0-9_]+(?:-[A-Za-z0-9_]+)*")


class LabelText(str):
    """A node name computed from a label, remembering where the label was written."""

    def __new__(cls, text: str, span: Span):
        obj = super().__new__(cls, text)
        obj.span = span
        return obj


class _Return(Exception):
    def __init__(self, value):
        self.value = value


class Evaluator:
    def __init__(self, input_shapes: dict[str, tuple[Any, Span]] | None = None, max_nodes: int | None = None):
        self.work = 0  # evaluation steps so far, against limits.WORK_MAX
        self.max_nodes = max_nodes or limits.NODES_MAX
        self.budget = limits.work_budget(max_nodes)
        self.warnings: list[CnnWarning] = []  # found while elaborating (an --input that changes a rank)
        self.root = Frame(None, "", None, "network")
        self.frame = self.root
        self.nodes: list[PendingNode] = []
        self.block_stack: list[tuple[str, Span]] = []
        self.inputs: dict[str, PendingNode] = {}
        self.outputs: dict[str, PendingNode] = {}
        self.output_spans: dict[str, Span] = {}
        self.training_outputs: list[str] = []  # the outputs declared `training output`, in order
        self.input_shapes = dict(input_shapes or {})
        self.used_input_shapes: set[str] = set()
        self.called: dict[int, A.BlockDef | A.TemplateDef] = {}  # the block definitions this network used
        # the layer sequences that a template block (`block f(...) = [...]`) returned, by id: (value, name, args);
        # a labelled sequence made from one records the template as its scope's block (see Scope.block)
        self.made_by: dict[int, tuple[Any, str, dict]] = {}
        # `for` statements being run: (a number per run of a for statement, the frame it runs in); a scope
        # opened directly by one records its number (Scope.loop), so backends know which siblings a loop made
        self.loops: list[tuple[int, Frame]] = []
        self.loop_count = 0
        self.loop_of: dict[int, int] = {}  # id(Frame) -> loop number
        self.template_calls = 0
        self.template_depth = 0  # template bodies being evaluated (their list `if`s guard nothing of a block's)
        self.param_values: dict = {}  # the network's numeric parameters' values (see without_fixed)
        self.bindings: dict[str, Sym] = {}  # a template call's name (`cna#3.out`) -> its caller's value of it
        self.loop_length: dict[int, Any] = {}  # loop number -> its count, where range() of a traced number gave it
        self.init_rules: list = []  # `init` statements as they ran (cnndsl.init.Pending), resolved after naming
        self.init_switches: set[str] = set()  # names read by network-level `if`s that hold only `init` rules

    # ------------------------------------------------------------ entry points

    @classmethod
    def constant(cls, node: A.Node, env: Env):
        """Evaluate a top-level constant (no network is being built: no tensors exist)."""
        return cls().eval(node, env)

    @staticmethod
    def unpack(targets: list[str], value, span: Span) -> list:
        if len(targets) == 1:
            return [value]
        if not isinstance(value, list) or len(value) != len(targets):
            raise CnnError(f"cannot unpack {describe(value)} into {len(targets)} names", span)
        return value

    # ------------------------------------------------------------ statements

    def exec_body(self, stmts: list[A.Node], env: Env) -> None:
        for stmt in stmts:
            getattr(self, "exec_" + type(stmt).__name__)(stmt, env)

    def exec_Assign(self, s: A.Assign, env: Env) -> None:
        for name, value in zip(s.targets, self.unpack(s.targets, self.eval(s.value, env), s.span)):
            if sym_of(value) is not None and self.frame.kind == "block" and name not in self.frame.lets \
                    and name not in self.frame.call and not any(f is self.frame for _, f in self.loops):
                self.frame.lets[name] = value  # `width = ...` once: the generated code names it too
                value = traced(plain(value), Sym.name(name))
            env.vars[name] = value
            if isinstance(value, Tensor):
                value.node.assigned = name
                if value.node.var is None and self.made_here(value.node):
                    value.node.var = name

    def made_here(self, node: PendingNode) -> bool:
        """Was the node made by this block's own statements (or sequences in them), not inside a block
        it called? Only then is the .cnn variable a good name for it in this block's generated code."""
        frame = node.frame
        while frame is not None and frame is not self.frame:
            if frame.kind == "block":
                return False
            frame = frame.parent
        return frame is self.frame

    def exec_If(self, s: A.If, env: Env) -> None:
        taken = self.truth(self.eval(s.cond, env), s.cond.span)
        if not self.block_stack and all(isinstance(b, (A.Init, A.Doc)) for b in [*s.body, *s.orelse]):
            self.init_switches.update(A.names_in(s.cond))  # candidates only: cnndsl.init.switched decides
        with self.guarded(s.cond, env, taken):
            self.exec_body(s.body if taken else s.orelse, env)

    @contextlib.contextmanager
    def guarded(self, cond: A.Node, env: Env, taken: bool):
        """Run a branch of a condition in a block's own body, recording the condition (in the block's terms,
        Frame.conditions) and marking what the branch makes with it (guard), so that a backend can write one
        class with an `if` for instances that took different branches."""
        frame = self.frame
        if frame.kind != "block":
            yield
            return
        key = (cond.span.line, cond.span.column)
        frame.conditions[key] = (self.condition(cond, env), taken)
        frame.guards.append((key, taken))
        try:
            yield
        finally:
            frame.guards.pop()

    def condition(self, n: A.Node, env: Env):
        """A condition as a tree over syms (`("cmp", ops, [Sym, ...])`, `("and", [...])`, `("not", c)`,
        `("value", Sym)`), in the terms of the block being built; None where a part is not a number, a boolean
        or a parameter."""
        if isinstance(n, A.BoolOp):
            parts = [self.condition(o, env) for o in n.operands]
            return None if None in parts else (n.op, parts)
        if isinstance(n, A.Not):
            inner = self.condition(n.operand, env)
            return None if inner is None else ("not", inner)
        if isinstance(n, A.Compare):
            syms = [self.condition_operand(o, env) for o in n.operands]
            return None if None in syms else ("cmp", list(n.ops), syms)
        operand = self.condition_operand(n, env)
        return None if operand is None else ("value", operand)

    def condition_operand(self, n: A.Node, env: Env) -> Sym | None:
        if not _pure(n, env):  # evaluating it again would make its layers again
            return None
        given = self.frame.call.get(n.id) if isinstance(n, A.Name) else None
        if isinstance(n, A.Name) and n.id in self.frame.call and (isinstance(given, bool)
                                                                   or not isinstance(given, (int, float))):
            value = env.lookup(n.id)
            return Sym.name(n.id) if isinstance(value, bool) else None  # a switch: the class takes it
        value = self.eval(n, env)
        if value is None or isinstance(value, (bool, str)):
            return Sym.num(value)
        if isinstance(value, (int, float)):
            return Sym.of(self.localize(value))
        return None

    def exec_For(self, s: A.For, env: Env) -> None:
        self.loop_count += 1
        self.loops.append((self.loop_count, self.frame))
        try:
            items = self.eval(s.iter, env)
            self.loop_length[self.loop_count] = getattr(items, "length", None)  # range(num_layers): traced
            for item in self.iterable(items, s.iter.span, self.loop_count):
                self.step(s.span)
                for name, value in zip(s.targets, self.unpack(s.targets, item, s.span)):
                    env.vars[name] = value
                with self.naming_iteration(s, item):
                    self.exec_body(s.body, env)
        finally:
            self.loops.pop()

    @contextlib.contextmanager
    def naming_iteration(self, loop: A.For | A.ListFor, item):
        """An error inside a `for` (statement or list) says which iteration met it; the innermost loop does."""
        try:
            yield
        except CnnError as exc:
            if not getattr(exc, "in_iteration", False):
                exc.in_iteration = True
                exc.notes.insert(0, Note(f"in iteration {_iteration(loop.targets, item)} of the for at line "
                                         f"{loop.span.line}", None))
            raise

    def step(self, span: Span | None, cost: int = 1) -> None:
        """Count evaluation work; past limits.WORK_MAX the program is refused (a runaway loop or list)."""
        self.work += cost
        if self.work > self.budget:
            raise limits.work_error(self.budget, span)

    def exec_Return(self, s: A.Return, env: Env) -> None:
        if not self.block_stack:
            raise CnnError("'return' belongs in a block; a network declares 'output's", s.span)
        raise _Return(self.eval(s.value, env))

    def exec_Doc(self, s: A.Doc, env: Env) -> None:
        pass

    def exec_Init(self, s: A.Init, env: Env) -> None:
        if self.block_stack:
            raise CnnError("'init' belongs in the network body (select a block's layers with `init NAME in BLOCK`)",
                           s.span)
        self.init_rules.append(weight_init.evaluate(self, s, env))

    def exec_Input(self, s: A.Input, env: Env) -> None:
        if self.block_stack:
            raise CnnError("'input' belongs in the network body, not in a block (pass the tensor as an argument)",
                           s.span)
        if s.name in self.inputs:
            raise CnnError(f"input '{s.name}' is declared twice", s.span)
        if s.name in self.input_shapes:
            value, span = self.input_shapes[s.name]
            self.used_input_shapes.add(s.name)
            declared = self.eval(s.shape, env)
            declared = [declared] if isinstance(declared, int) else declared
            if isinstance(value, (int, list)) and isinstance(declared, list):
                given = [value] if isinstance(value, int) else value
                if len(given) != len(declared):
                    self.warnings.append(CnnWarning(
                        f"--input {s.name}={'x'.join(map(str, given))} has {len(given)} dimension"
                        f"{'s' * (len(given) != 1)}, but the network declares {s.name} as "
                        f"{'x'.join(map(str, declared))} ({len(declared)}): its layers now run in "
                        f"{_RANKS.get(len(given), f'{len(given)} dimensions')}, not "
                        f"{_RANKS.get(len(declared), f'{len(declared)} dimensions')}", span,
                        [Note(f"'{s.name}' is declared here", s.span)]))
        else:
            value, span = self.eval(s.shape, env), s.shape.span
        shape = self.shape_value(value, span, s.tokens)
        node = self.new_node(s.name, s.name, "input", None, {}, [], shape, s.span)
        self.inputs[s.name] = node
        env.vars[s.name] = Tensor(node)

    def exec_Output(self, s: A.Output, env: Env) -> None:
        if self.block_stack:
            what = "'training output'" if s.training else "'output'"
            raise CnnError(f"{what} belongs in the network body; a block returns its result", s.span)
        if s.name in self.outputs:
            raise CnnError(f"output '{s.name}' is declared twice", s.span,
                           [Note("first declared here", self.output_spans[s.name])])
        value = self.eval(s.value if s.value is not None else A.Name(s.span, s.name), env)
        if not isinstance(value, Tensor):
            raise CnnError(f"output '{s.name}' must be a tensor, got {describe(value)}", s.span)
        self.outputs[s.name] = value.node
        self.output_spans[s.name] = s.span
        if s.training:
            self.training_outputs.append(s.name)

    @staticmethod
    def shape_value(value, span: Span, tokens: bool) -> TensorType:
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value]  # `input x: 784`, a flat feature vector
        if not isinstance(value, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in value):
            raise CnnError(f"an input shape is a list of integers such as 3x224x224, got {describe(value)}", span)
        if any(d < 1 for d in value):
            raise CnnError(f"input dimensions must be positive, got {'x'.join(map(str, value))}", span)
        if tokens and len(value) != 2:
            raise CnnError("a token sequence has shape NxD (tokens x features)", span)
        if not 1 <= len(value) <= 4:
            raise CnnError("an input is F, CxL, CxHxW or CxDxHxW (without the batch)", span)
        return check_type(TensorType(tuple(value), tokens), span, "input")

    # ------------------------------------------------------------ expressions

    def eval(self, n: A.Node, env: Env, label: str | None = None):
        self.work += 1
        if self.work > self.budget:
            raise limits.work_error(self.budget, n.span)
        method = getattr(self, "eval_" + type(n).__name__)
        if label is None:
            return method(n, env)
        if isinstance(n, (A.Call, A.BinOp)):
            return method(n, env, label)
        value = method(n, env)
        if isinstance(value, Tensor):
            raise CnnError(f"the label '{label}' must name a layer or a call, but this is a tensor that "
                           f"already exists", n.span)
        return self.as_layer(value, n.span).with_label(label)

    def eval_Const(self, n: A.Const, env: Env):
        if isinstance(n.value, list):  # a shape literal
            return [limits.number(v, n.span, "a dimension") for v in n.value]
        if isinstance(n.value, str) and len(n.value) > limits.STRING_MAX:
            raise CnnError(f"a string of {len(n.value):,} characters is longer than the {limits.STRING_MAX:,} "
                           f"allowed", n.span)
        return limits.number(n.value, n.span)

    def eval_Name(self, n: A.Name, env: Env, as_layer: bool = False):
        """A variable, else an op, else a builtin. Where a layer is expected (a callee, a chain link),
        an op wins over a variable holding a plain value: `dropout(p=dropout)` works inside a network
        whose parameter is named `dropout`, since a number can never be called."""
        try:
            value = env.lookup(n.id)
            if not (as_layer and _plain(value) and lookup(n.id) is not None):
                return value
        except KeyError:
            pass
        spec = lookup(n.id)
        if spec is not None:
            return Layer(spec, span=n.span)
        if n.id in BUILTINS:
            return BUILTINS[n.id]
        raise CnnError(f"unknown name '{n.id}'{suggest(n.id, self.known_names(env))}", n.span)

    def known_names(self, env: Env) -> set[str]:
        return env.names() | set(all_names()) | set(BUILTINS) | {"true", "false", "none"}

    def eval_ListLit(self, n: A.ListLit, env: Env) -> list:
        out: list = []
        guards: list = []
        loops: list = []
        # the branches the list itself is in are its block's, not its members'
        self.list_elems(n.elems, env, out, guards, len(self.frame.guards), loops)
        if any(guards) or any(loop is not None for loop in loops):
            out = GuardedList(out)
            out.guards, out.loops = guards, loops
        return out

    def list_elems(self, elems: list[A.Node], env: Env, out: list, guards: list, base: int, loops: list,
                   loop: int | None = None) -> None:
        for e in elems:
            if isinstance(e, A.ListFor):  # its loop variables live only inside the list
                inner = Env(env)
                items = self.eval(e.iter, env)
                self.loop_count += 1
                run = self.loop_count  # the members it makes are one run (a loop in generated code)
                self.loop_length[run] = getattr(items, "length", None)  # range(num_layers): traced
                for item in self.iterable(items, e.iter.span, run):
                    self.step(e.span)
                    for name, value in zip(e.targets, self.unpack(e.targets, item, e.span)):
                        inner.vars[name] = value
                    with self.naming_iteration(e, item):
                        self.list_elems(e.elems, inner, out, guards, base, loops, run)
            elif isinstance(e, A.ListIf):
                taken = self.truth(self.eval(e.cond, env), e.cond.span)
                if self.template_depth:  # a template's own `if`s are the template's, not the calling block's
                    self.list_elems(e.then if taken else e.orelse, env, out, guards, base, loops, loop)
                    continue
                with self.guarded(e.cond, env, taken):
                    self.list_elems(e.then if taken else e.orelse, env, out, guards, base, loops, loop)
            else:
                out.append(self.eval(e, env))
                loops.append(loop)
                guards.append(tuple(self.frame.guards[base:]) if self.frame.kind == "block" else ())
                if len(out) > limits.LIST_MAX:
                    raise CnnError(f"a list of more than {limits.LIST_MAX:,} elements", e.span)

    def eval_Labeled(self, n: A.Labeled, env: Env):
        return self.eval(n.value, env, self.label_text(n.label, env))

    def label_text(self, label: A.Label, env: Env) -> str:
        parts = []
        for p in label.parts:
            if isinstance(p, str):
                parts.append(p)
                continue
            v = self.eval(p, env)
            self.observe(v)
            if isinstance(v, bool) or not isinstance(v, (int, str)):
                raise CnnError(f"a name can only interpolate integers and strings, got {describe(v)}", p.span)
            parts.append(str(v))
            if sum(map(len, parts)) > limits.NAME_MAX:
                raise CnnError(f"a name longer than {limits.NAME_MAX} characters", label.span)
        text = "".join(parts)
        if text in MODULE_ATTRIBUTES:
            raise CnnError(f"'{text}' cannot name a node: generated PyTorch modules use that name themselves "
                           f"(choose another, e.g. '{text}_')", label.span)
        if text.startswith("__"):
            raise CnnError(f"'{text}' cannot name a node: Python renames attributes that start with '__' inside a "
                           f"class, so the generated model's state_dict would not say '{text}'", label.span)
        if not _LABEL.fullmatch(text) or keyword.iskeyword(text):
            raise CnnError(f"'{text}' is not a valid name (letters, digits and _, hyphens between them; not a "
                           f"Python keyword)", label.span)
        return LabelText(text, label.span)

    def eval_Chain(self, n: A.Chain, env: Env):
        value = self.eval(n.links[0], env)
        for link in n.links[1:]:
            label, expr = None, link
            if isinstance(link, A.Labeled):
                label, expr = self.label_text(link.label, env), link.value
            if isinstance(expr, A.Name):
                found = self.eval_Name(expr, env, as_layer=True)
            elif isinstance(expr, A.Call):  # `p -> concat(q)`: the chain's value comes first, then q
                found = self.eval_Call(expr, env, defer=True)
            else:
                found = self.eval(expr, env)
            layer = self.as_layer(found, expr.span)
            value = self.apply(layer, self.as_inputs(value, link.span), label, expr.span)
        return value

    def eval_Call(self, n: A.Call, env: Env, label: str | None = None, defer: bool = False):
        if isinstance(n.func, A.Name):
            try:
                func = self.eval_Name(n.func, env, as_layer=True)
            except CnnError:
                raise CnnError(f"unknown op, block or function '{n.func.id}'"
                               f"{suggest(n.func.id, self.known_names(env))}", n.func.span) from None
        else:
            func = self.eval(n.func, env)
        args, kwargs = [], {}
        for a in n.args:
            v = a.value.span
            value = (self.eval(a.value, env),
                     v if a.name is None else KeywordSpan(v.source, v.line, v.column, v.end_line, v.end_column, a.span))
            if a.name is None:
                if kwargs:
                    raise CnnError("a positional argument cannot follow a named one", a.span)
                args.append(value)
            elif a.name in kwargs:
                raise CnnError(f"argument '{a.name}' is given twice", a.span)
            else:
                kwargs[a.name] = value
        if isinstance(func, Builtin):
            if label is not None:
                raise CnnError(f"'{func.name}' is a function; a label names a layer", n.span)
            return self.call_builtin(func, args, kwargs, n.span)
        if isinstance(func, NetworkValue):
            raise CnnError(f"'{func.defn.name}' is a network; only blocks and ops can be called inside one "
                           f"(turn the shared part into a block)", n.span)
        if isinstance(func, TemplateClosure):
            value = self.call_template(func, args, kwargs, n.span)
            if label is None or isinstance(value, Tensor):
                return value
            return self.mark(self.as_layer(value, n.span).with_label(label), value)
        if isinstance(func, BlockClosure):
            func = Layer(func)
        if not isinstance(func, Layer):
            raise CnnError(f"{describe(func)} cannot be called", n.func.span)
        layer = Layer(func.target, [*func.args, *args], {**func.kwargs, **kwargs},
                      label if label is not None else func.label, n.span)
        tensors, _ = self.split_tensors(layer.args)
        if not defer and tensors and len(tensors) >= self.inputs_needed(layer.target):
            return self.apply(layer, [], None, n.span)
        return layer

    @staticmethod
    def inputs_needed(target) -> int:
        if isinstance(target, OpSpec):
            return target.inputs or target.min_inputs
        return 1

    def call_builtin(self, func: Builtin, args, kwargs, span: Span):
        values = [v for v, _ in args]
        named = {k: v for k, (v, _) in kwargs.items()}
        for v, s in [*args, *kwargs.values()]:
            if isinstance(v, (Tensor, Layer)):
                raise CnnError(f"{func.name}() cannot take {describe(v)}", s)
        try:
            result = limits.number(func.fn(*values, **named), span, f"the result of {func.name}()")
            if func.name == "range" and not named:
                return traced_range(values, result)
            out = traced_call(func.name, result, [*values, *named.values()]) if not named else result
            if sym_of(out) is None:  # len(), str(), a keyword argument: what it read is fixed
                for v in [*values, *named.values()]:
                    self.observe(v)
            return out
        except BuiltinError as exc:
            raise CnnError(str(exc), span) from None
        except (TypeError, ValueError, OverflowError, ZeroDivisionError):
            raise CnnError(f"bad arguments to {func.name}(); usage: {func.doc}", span) from None

    def eval_BinOp(self, n: A.BinOp, env: Env, label: str | None = None):
        left = self.eval(n.operands[0], env)
        for op, operand in zip(n.ops, n.operands[1:]):
            right = self.eval(operand, env)
            left = self.binary(op, left, right, n, label)
        return left

    def binary(self, op: str, a, b, n: A.BinOp, label: str | None):
        if isinstance(a, Tensor) or isinstance(b, Tensor):
            names = {"+": "add", "*": "mul"}
            if op not in names or not (isinstance(a, Tensor) and isinstance(b, Tensor)):
                raise CnnError(f"cannot apply '{op}' to {describe(a)} and {describe(b)} (tensors support + "
                               f"and * with other tensors)", n.span)
            return self.apply_op(lookup(names[op]), [a, b], [], {}, label, n.span)
        if label is not None:
            raise CnnError(f"the label '{label}' must name a layer; this is arithmetic", n.span)
        try:
            if op == "+" and isinstance(a, list) and isinstance(b, list):
                if len(a) + len(b) > MAX_LIST:
                    raise CnnError(f"a list of {len(a) + len(b):,} elements is more than the {MAX_LIST:,} allowed",
                                   n.span)
                self.step(n.span, (len(a) + len(b)) // 8)
                return a + b
            if op == "+" and isinstance(a, str) and isinstance(b, str):
                if len(a) + len(b) > limits.STRING_MAX:
                    raise CnnError(f"a string of {len(a) + len(b):,} characters is longer than the "
                                   f"{limits.STRING_MAX:,} allowed", n.span)
                return a + b
            if op == "*" and isinstance(a, list) and isinstance(b, int) and not isinstance(b, bool):
                if len(a) * b > MAX_LIST:
                    raise CnnError(f"a list of {len(a) * b:,} elements is more than the {MAX_LIST:,} allowed", n.span)
                self.step(n.span, max(0, len(a) * b) // 8)
                self.observe(b)
                return a * b
            self.check_numbers(op, a, b, n.span)
            result = limits.number(self.arithmetic(op, a, b, n.span), n.span, f"the result of '{op}'")
            if sym_of(result) is None and (sym_of(a) is not None or sym_of(b) is not None):
                a, b = self.without_fixed(a), self.without_fixed(b)  # shorter, where fixed parameters are numbers
                result = limits.number(self.arithmetic(op, a, b, n.span), n.span, f"the result of '{op}'")
            if sym_of(result) is None:  # too long an expression to write: its value is fixed
                self.observe(a)
                self.observe(b)
            return result
        except ZeroDivisionError:
            raise CnnError("division by zero", n.span) from None
        except OverflowError:
            raise CnnError("number too large", n.span) from None

    @staticmethod
    def arithmetic(op: str, a, b, span: Span):
        """a op b on two numbers already within limits (so that + - * // % stay cheap: 128 bits at most)."""
        try:
            if op == "+":
                return a + b
            if op == "-":
                return a - b
            if op == "*":
                return a * b
            if op == "/":
                return a / b
            if op == "//":
                return a // b
            if op == "%":
                return a % b
            if op == "**":
                limits.power(a, b, span)
                result = a ** b
                if isinstance(result, complex):
                    raise CnnError(f"{a} ** {b} is not a real number", span)
                return result
        except ZeroDivisionError:
            raise CnnError("division by zero", span) from None
        except OverflowError:
            raise CnnError(f"the result of '{op}' is too large a number (floats end near 1.8e308)", span) from None
        raise CnnError(f"unknown operator '{op}'", span)

    @staticmethod
    def check_numbers(op: str, a, b, span: Span) -> None:
        for v in (a, b):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise CnnError(f"cannot apply '{op}' to {describe(a)} and {describe(b)}", span)

    def eval_Unary(self, n: A.Unary, env: Env):
        v = self.eval(n.operand, env)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise CnnError(f"cannot apply unary '{n.op}' to {describe(v)}", n.span)
        return limits.number(-v if n.op == "-" else v, n.span)

    def eval_Compare(self, n: A.Compare, env: Env):
        values = [self.eval(o, env) for o in n.operands]
        for v in values:
            self.observe(v)
        for op, a, b in zip(n.ops, values, values[1:]):
            if op in ("==", "!=") and (a is None or b is None):  # `if act != none { act }` for any value
                if (a is b) != (op == "=="):
                    return False
                continue
            if isinstance(a, (Tensor, Layer)) or isinstance(b, (Tensor, Layer)):
                raise CnnError(f"cannot compare {describe(a)} and {describe(b)} (compare their shapes: "
                               f"x.channels, x.shape)", n.span)
            try:
                ok = COMPARISONS[op](a, b)
            except TypeError:
                raise CnnError(f"cannot order {describe(a)} and {describe(b)}", n.span) from None
            if not ok:
                return False
        return True

    def eval_BoolOp(self, n: A.BoolOp, env: Env):
        for operand in n.operands:
            value = self.truth(self.eval(operand, env), operand.span)
            if value == (n.op == "or"):
                return value
        return n.op == "and"

    def eval_Not(self, n: A.Not, env: Env):
        return not self.truth(self.eval(n.operand, env), n.operand.span)

    def eval_Ternary(self, n: A.Ternary, env: Env):
        taken = self.truth(self.eval(n.cond, env), n.cond.span)
        with self.guarded(n.cond, env, taken):
            value = self.eval(n.then if taken else n.orelse, env)
        return self.traced_choice(n, env, taken, value)

    def traced_choice(self, n: A.Ternary, env: Env, taken: bool, value):
        """A number chosen by a condition in a block's body, traced as the choice (`1 if dilation > 1 else
        stride`), so that the block's class chooses as the .cnn file does, also for arguments no instance here
        had. Only where the condition is in the block's terms and the other branch is a number that makes
        nothing (it is evaluated too); else the branch taken, as it was traced."""
        if not is_tracing() or self.frame.kind != "block" or isinstance(value, bool) \
                or not isinstance(value, (int, float)):
            return value
        other = n.orelse if taken else n.then
        if not _pure(other, env) or _decides(other):
            return value
        cond = _condition_sym(self.condition(n.cond, env))
        if cond is None or cond.literal:
            return value
        try:
            alternative = self.eval(other, env)
        except CnnError:  # the branch not taken fails for these arguments (a division by zero): keep the number
            return value
        if isinstance(alternative, bool) or not isinstance(alternative, (int, float)):
            return value
        mine, theirs = Sym.of(self.localize(value)), Sym.of(self.localize(alternative))
        return traced(plain(value), choice(cond, mine, theirs) if taken else choice(cond, theirs, mine))

    def eval_Attr(self, n: A.Attr, env: Env):
        obj = self.eval(n.obj, env)
        if isinstance(obj, Tensor):
            return self.tensor_attr(obj.type, n)
        raise CnnError(f"{describe(obj)} has no attribute '{n.name}' (attributes belong to tensors)", n.span)

    @staticmethod
    def tensor_attr(t: TensorType, n: A.Attr):
        spatial = t.spatial
        table = {
            "shape": list(t.shape), "rank": t.rank, "spatial": list(spatial),
            "channels": t.channels if not t.tokens else None,
            "tokens": t.shape[0] if t.tokens else None,
            "features": t.shape[-1] if t.tokens or t.rank == 1 else None,
            "length": spatial[0] if len(spatial) == 1 else None,
            "depth": spatial[0] if len(spatial) == 3 else None,
            "height": spatial[-2] if len(spatial) >= 2 else None,
            "width": spatial[-1] if len(spatial) >= 2 else None,
        }
        if n.name not in table:
            close = suggest(n.name, table)  # "; did you mean 'x'?", then a sentence: no "?;"
            raise CnnError(f"a tensor has no attribute '{n.name}'{close}{' It' if close else '; it'} has "
                           f"{', '.join(table)}", n.span)
        if table[n.name] is None:
            raise CnnError(f"a {t} tensor has no '{n.name}'", n.span)
        return table[n.name]

    def eval_Index(self, n: A.Index, env: Env):
        obj, idx = self.eval(n.obj, env), self.eval(n.index, env)
        self.observe(idx)
        if not isinstance(obj, (list, str)):
            raise CnnError(f"cannot index {describe(obj)}", n.span)
        if isinstance(idx, bool) or not isinstance(idx, int):
            raise CnnError(f"an index must be an integer, got {describe(idx)}", n.index.span)
        if not -len(obj) <= idx < len(obj):
            raise CnnError(f"index {idx} is out of range for a list of {len(obj)}", n.index.span)
        return obj[idx]

    # ------------------------------------------------------------ helpers

    def truth(self, value, span: Span) -> bool:
        self.observe(value)
        if isinstance(value, (Tensor, Layer)):
            raise CnnError(f"{describe(value)} is neither true nor false", span)
        return bool(value)

    def iterable(self, value, span: Span, run: int | None = None) -> list:
        self.observe(getattr(value, "length", None), run)  # a loop unrolled by its count
        if isinstance(value, list):
            return list(value)
        raise CnnError(f"can only loop over a list or range(), got {describe(value)}", span)

    @staticmethod
    def as_inputs(value, span: Span) -> list[Tensor]:
        if isinstance(value, Tensor):
            return [value]
        if isinstance(value, list) and value and all(isinstance(v, Tensor) for v in value):
            return list(value)
        raise CnnError(f"'->' needs a tensor or a list of tensors on its left, got {describe(value)}", span)

    def as_layer(self, value, span: Span) -> Layer:
        if isinstance(value, Layer):
            return value
        if isinstance(value, TemplateClosure):  # `x -> cna` calls the template with its defaults
            made = self.call_template(value, [], {}, span)
            return self.mark(self.as_layer(made, span), made)
        if isinstance(value, BlockClosure):
            return Layer(value, span=span)
        if isinstance(value, NetworkValue):
            raise CnnError(f"'{value.defn.name}' is a network; only ops, blocks and lists of them are layers "
                           f"(turn the shared part into a block)", span)
        if isinstance(value, list):
            members = []
            guards = getattr(value, "guards", None) or [()] * len(value)
            loops = getattr(value, "loops", None) or [None] * len(value)
            for i, v in enumerate(value):
                if isinstance(v, Tensor):
                    raise CnnError(f"a list used as a layer sequence holds a tensor at position {i}", span)
                member = self.as_layer(v, span)
                if guards[i] or loops[i] is not None:
                    member = self.mark(dataclasses.replace(member, guard=guards[i], loop=loops[i]), member)
                members.append(member)
            return self.mark(Layer(members, span=span), value)
        raise CnnError(f"expected a layer (an op, a block or a list of them), got {describe(value)}", span)

    @staticmethod
    def split_tensors(args: list) -> tuple[list[Tensor], list]:
        """Leading tensor arguments (or one leading list of tensors) are inputs; the rest are settings."""
        if args and isinstance(args[0][0], list) and args[0][0] and all(isinstance(v, Tensor) for v in args[0][0]):
            return list(args[0][0]), args[1:]
        i = 0
        while i < len(args) and isinstance(args[i][0], Tensor):
            i += 1
        return [v for v, _ in args[:i]], args[i:]

    # ------------------------------------------------------------ application

    def apply(self, layer: Layer, inputs: list[Tensor], label: str | None, span: Span):
        tensors, rest = self.split_tensors(layer.args)
        inputs = [*inputs, *tensors]
        label = label if label is not None else layer.label
        span = layer.span or span
        if isinstance(layer.target, OpSpec):
            return self.apply_op(layer.target, inputs, rest, layer.kwargs, label, span)
        if isinstance(layer.target, BlockClosure):
            return self.apply_block(layer.target, inputs, rest, layer.kwargs, label, span)
        if rest or layer.kwargs:
            raise CnnError("a layer sequence takes no arguments", span)
        made = self.made_by.get(id(layer))
        return self.apply_sequence(layer.target, inputs, label, span, made[1:] if made else None)

    def apply_op(self, spec: OpSpec, inputs: list[Tensor], args: list, kwargs: dict, label, span: Span) -> Tensor:
        self.step(span, len(inputs))  # a concat of every earlier layer (DenseNet) costs its inputs: no n**2 escape
        if spec.inputs and len(inputs) != spec.inputs:
            raise CnnError(f"{spec.name} takes {spec.inputs} input tensor{'s' if spec.inputs > 1 else ''}, "
                           f"got {len(inputs)}", span)
        if len(inputs) < spec.min_inputs:
            raise CnnError(f"{spec.name} takes at least {spec.min_inputs} input tensors, got {len(inputs)}", span)
        given: dict[str, tuple[Any, Span]] = {}
        if len(args) > len(spec.args):
            raise CnnError(f"{spec.name} takes at most {len(spec.args)} argument{'s' * (len(spec.args) != 1)}: "
                           f"{spec.signature()}", args[len(spec.args)][1])
        for (value, s), arg in zip(args, spec.args):
            given[arg.name] = (value, s)
        for name, (value, s) in kwargs.items():
            if spec.arg(name) is None:
                close = suggest(name, [a.name for a in spec.args])
                raise CnnError(f"{spec.name} has no argument '{name}'{close}{' It' if close else '; it'} takes "
                               f"{spec.signature()}", keyword_span(s))
            if name in given:
                raise CnnError(f"argument '{name}' of {spec.name} is given twice", keyword_span(s))
            given[name] = (value, s)
        attrs = {}
        for arg in spec.args:
            if arg.name not in given:
                if arg.required:
                    raise CnnError(f"{spec.name} needs argument '{arg.name}': {spec.signature()}", span)
                attrs[arg.name] = arg.default
                continue
            value, s = given[arg.name]
            if isinstance(value, (Tensor, Layer, BlockClosure)):
                raise CnnError(f"{spec.name}: '{arg.name}' cannot be {describe(value)}", s)
            try:
                attrs[arg.name] = arg.check(value)
            except ValueError as exc:
                raise CnnError(f"{spec.name}: '{arg.name}' {exc}, got {describe(value)}", s) from None
        call = OpCall({k: self.localize(v) for k, v in attrs.items()}, [t.type for t in inputs])
        if ANY_LAYOUT not in spec.traits and any(t.type.channels_last for t in inputs):
            raise CnnError(f"{spec.name} needs a channels-first input, got {call.x}: put channels_first before it",
                           span)
        try:
            if spec.resolve is not None:
                call.attrs = spec.resolve(call)
            out = spec.shape(call)
        except OpError as exc:
            message = exc.message if exc.message.startswith(spec.name) else f"{spec.name}: {exc.message}"
            notes = [Note(f"input {i + 1} ({t.type}) is {_origin(t.node)}, made here", t.node.span)
                     for i, t in enumerate(inputs)] if exc.show_inputs else []
            raise CnnError(message, span, notes) from None
        check_type(out, span, spec.name)
        node = self.new_node(label, spec.name, "op", spec.name, plain(call.attrs), [t.node for t in inputs],
                             plain(out), span)
        node.traced = (call.attrs, call.inputs, out)
        return Tensor(node, out)

    def bind(self, d, positional: list, kwargs: dict, span: Span, closure_env: Env) -> Env:
        """Bind a block's parameters: positional, then named, then defaults (which see earlier ones)."""
        self.called.setdefault(id(d), d)
        params = [p.name for p in d.params]
        if len(positional) > len(params):
            raise CnnError(f"block '{d.name}' takes {len(params)} argument{'s' * (len(params) != 1)} "
                           f"({', '.join(params)}), got {len(positional)}", span)
        bound = {p: v for p, (v, _) in zip(params, positional)}
        for name, (value, s) in kwargs.items():
            if name not in params:
                raise CnnError(f"block '{d.name}' has no parameter '{name}'{suggest(name, params)}", keyword_span(s))
            if name in bound:
                raise CnnError(f"argument '{name}' of block '{d.name}' is given twice", keyword_span(s))
            bound[name] = value
        local = Env(closure_env)
        for p in d.params:
            if p.name in bound:
                local.vars[p.name] = bound[p.name]
            elif p.default is not None:
                local.vars[p.name] = self.eval(p.default, local)
            else:
                raise CnnError(f"block '{d.name}' needs argument '{p.name}'", span,
                               [Note(f"'{d.name}' is defined here", d.span)])
        return local

    def enter(self, name: str, span: Span) -> None:
        for i, (active, outer) in enumerate(self.block_stack):
            if active == name:
                cycle = " -> ".join(f"'{n}'" for n in [*(n for n, _ in self.block_stack[i:]), name])
                how = "itself" if i == len(self.block_stack) - 1 else f"itself through {cycle}"
                raise CnnError(f"block '{name}' calls {how}; blocks cannot be recursive", span,
                               [Note(f"the outer call of '{name}'", outer)])
        self.block_stack.append((name, span))

    def call_template(self, closure: TemplateClosure, args: list, kwargs: dict, span: Span):
        d = closure.defn
        local = self.bind(d, args, kwargs, span, closure.env)
        # its numbers traced by names of this call's own (`cna#3.out`): the layers it returns are applied later,
        # inside a scope of their own (the names become its class's parameters) or in the caller's (apply_op
        # writes them back in the caller's terms, see `bindings`)
        self.template_calls += 1
        tag = f"{d.name}#{self.template_calls}."
        call = {}
        for p in d.params:
            value = local.vars[p.name]
            if not isinstance(value, bool) and isinstance(value, (int, float)):
                call[p.name] = value
                self.bindings[tag + p.name] = Sym.of(value)
                local.vars[p.name] = traced(plain(value), Sym.name(tag + p.name))
        defaults = {p.name: p.default.value for p in d.params
                    if isinstance(p.default, A.Const) and not isinstance(p.default.value, list)}
        self.enter(d.name, span)
        self.template_depth += 1
        try:
            value = self.eval(d.value, local)
        finally:
            self.template_depth -= 1
            self.block_stack.pop()
        if isinstance(value, (list, Layer)):
            self.made_by[id(value)] = (value, d.name, {k: plain(v) for k, v in local.vars.items() if _plain(v)},
                                       tag, call, defaults)
        return value

    def localize(self, value):
        """value in the terms of the scope being built: names of template calls other than the one whose scope
        this is are replaced by what their caller gave (`bindings`)."""
        sym = sym_of(value)
        if sym is None:
            if isinstance(value, (list, tuple)) and any(sym_of(v) is not None for v in value):
                out = [self.localize(v) for v in value]
                return out if isinstance(value, list) else tuple(out)
            return value
        mine = self.frame_tag()
        for _ in range(8):  # a template's arguments may come from an enclosing template's names
            foreign = {n for n in sym.names() if "#" in n and not n.startswith(mine or "\0")}
            if not foreign:
                return traced(plain(value), sym)
            sym = sym.subs({n: self.bindings[n] for n in foreign if n in self.bindings})
        return plain(value)

    def without_fixed(self, value):
        """A network-level traced number with the network parameters already fixed written as their values (and
        what that makes constant computed): EfficientNet's drop rate `stochastic_depth_prob * (first[s] + j) /
        total` sums stage depths, `ceil(2 * depth) + ...`, too long to write; with depth fixed (it counts blocks)
        it is `stochastic_depth_prob * 6 / 16`, and stochastic_depth_prob stays a constructor argument."""
        sym = sym_of(value)
        frame = names_frame(self.frame)
        if sym is None or frame.parent is not None:
            return value
        known = frame.observed | frame.counted.keys()
        fixed = {k: Sym.num(self.param_values[k]) for k in sym.names() & known if k in self.param_values}
        if not fixed:
            return value
        frame.observed |= fixed.keys()  # a count written as its number here can be no argument (Network.counted)
        return traced(plain(value), fold(sym.subs(fixed), BUILTIN_FUNCTIONS))

    def observe(self, value, run: int | None = None) -> None:
        """The program read a traced number for its value (a condition, a loop's count, a name): the numbers it
        came from shape the network, so generated code cannot take them as arguments. Recorded on the scope whose
        names they are; `finalize` passes them up to the callers' arguments. The count of loop `run` is recorded
        apart (Frame.counted): where generated code writes that loop as a loop, the count can be an argument."""
        if sym_of(value) is None:
            return
        sym = sym_of(self.localize(value))
        names = sym.names() if sym is not None else set()
        frame = names_frame(self.frame)
        if run is None:
            frame.observed |= names
            return
        for name in names:
            frame.counted.setdefault(name, set()).add(run)

    def frame_tag(self) -> str:
        """The tag of the template call whose scope is being built, "" inside a block's or the network's."""
        return names_frame(self.frame).tag

    def mark(self, new, old):
        """`new` is the layer sequence `old` became: it keeps the template `old` came from."""
        if id(old) in self.made_by and id(new) not in self.made_by:
            self.made_by[id(new)] = (new, *self.made_by[id(old)][1:])
        return new

    def apply_block(self, closure: BlockClosure, inputs: list[Tensor], args: list, kwargs: dict, label,
                    span: Span):
        d = closure.defn
        self.enter(d.name, span)
        try:
            local = self.bind(d, [*((t, span) for t in inputs), *args], kwargs, span, closure.env)
            call, outer = self.trace_parameters(d, local, self.localize)
            args_record = {k: plain(v) for k, v in local.vars.items() if _plain(v)}
            frame = self.open_frame(label, d.name, "block", span, block=d.name, args=args_record)
            frame.call = call
            frame.defaults = {p.name: p.default.value for p in d.params
                              if isinstance(p.default, A.Const) and not isinstance(p.default.value, list)}
            frame.inputs = [(p.name, local.vars[p.name].node) for p in d.params
                            if isinstance(local.vars[p.name], Tensor)]
            depth, self.template_depth = self.template_depth, 0  # the block's own `if`s, wherever it is applied
            try:
                self.exec_body(d.body, local)
            except CnnError as exc:
                if exc.span is not span and not any(note.span is span for note in exc.notes):
                    exc.notes.append(Note(f"in block '{d.name}', called here", span))
                raise
            except _Return as ret:
                frame.outputs = [v.node for v in (ret.value if isinstance(ret.value, list) else [ret.value])
                                 if isinstance(v, Tensor)]
                frame.args.update({k: plain(v) for k, v in local.vars.items() if k not in frame.args and _plain(v)})
                return self.trace_results(ret.value, outer, frame.lets)
            finally:
                self.frame = frame.parent
                self.template_depth = depth
            raise CnnError(f"block '{d.name}' ended without 'return'", span, [Note("defined here", d.span)])
        finally:
            self.block_stack.pop()

    @staticmethod
    def trace_parameters(d: A.BlockDef, local: Env, localize) -> tuple[dict, dict[str, Sym]]:
        """Trace the block's numbers by its parameters' names (its tensors' channels as `in_channels`), so that
        what it computes from them says how (cnndsl.symbolic). Gives the caller's values of the parameters and
        the caller's expression for each name traced."""
        call, outer = {}, {}
        tensors = [p.name for p in d.params if isinstance(local.vars[p.name], Tensor)]
        for p in d.params:
            value = local.vars[p.name]
            if isinstance(value, Tensor):
                sizes: dict = {}
                local.vars[p.name] = retrace(value, size_prefix(p.name, tensors[0]), "", sizes)
                call.update(sizes)
                outer.update({k: Sym.of(v) for k, v in sizes.items()})
            elif not isinstance(value, bool) and isinstance(value, (int, float)):
                value = localize(value)
                call[p.name] = value
                outer[p.name] = Sym.of(value)
                local.vars[p.name] = traced(plain(value), Sym.name(p.name))
            elif isinstance(value, bool):  # a switch: a choice over it is the caller's branch (traced_choice)
                call[p.name] = value
                outer[p.name] = Sym.num(value)
            elif numbers(value) and is_tracing():  # a kernel [1, 7]: its elements are `kernel[0]`, `kernel[1]`
                value = [localize(v) for v in value]
                call[p.name] = value
                outer[p.name] = Sym.of(value)
                local.vars[p.name] = [traced(plain(v), Sym.item(p.name, k, len(value))) for k, v in enumerate(value)]
            else:
                call[p.name] = value
        return call, outer

    @staticmethod
    def trace_results(value, outer: dict[str, Sym], lets: dict):
        """A block's result as its caller sees it: its dimensions traced in the caller's terms."""
        outer = dict(outer)
        for name, v in lets.items():  # in order: a local may use the ones before it
            outer[name] = Sym.of(v).subs(outer)
        def retrace(t: Tensor) -> Tensor:
            shape = [traced(plain(d), d.sym.subs(outer)) if getattr(d, "sym", None) is not None else d
                     for d in t.type.shape]
            return Tensor(t.node, t.type.with_shape(shape))
        if isinstance(value, Tensor):
            return retrace(value)
        if isinstance(value, list):
            return [retrace(v) if isinstance(v, Tensor) else v for v in value]
        return value

    def apply_sequence(self, members: list[Layer], inputs: list[Tensor], label, span: Span, made=None):
        value: Any = inputs[0] if len(inputs) == 1 else inputs
        if label is None:
            for m in members:
                with self.member_guard(m), self.member_loop(m):
                    value = self.apply(m, self.as_inputs(value, span), m.label, span)
            return value
        block, args, tag, call, defaults = made or (None, None, "", {}, {})
        frame = self.open_frame(label, "seq", "sequence", span, block, args)
        frame.inputs = [(f"x{i}" if len(inputs) > 1 else "x", t.node) for i, t in enumerate(inputs)]
        outer: dict[str, Sym] = {}
        if made:  # a template's scope: its numbers and its input's channels are traced by its own names
            frame.tag, frame.defaults = tag, defaults
            frame.call = {k: self.localize(v) for k, v in call.items()}
            if len(inputs) == 1:
                sizes: dict = {}
                value = retrace(inputs[0], "in_", tag, sizes)
                frame.call = {**sizes, **frame.call}
                outer.update({tag + k: Sym.of(v) for k, v in sizes.items()})
            outer.update({tag + k: Sym.of(v) for k, v in call.items()})
        try:
            for i, m in enumerate(members):
                with self.member_guard(m), self.member_loop(m):
                    value = self.apply(m, self.as_inputs(value, span), m.label if m.label is not None else str(i),
                                       span)
        finally:
            self.frame = frame.parent
        frame.outputs = [v.node for v in (value if isinstance(value, list) else [value]) if isinstance(v, Tensor)]
        if made:
            value = self.localize_all(self.trace_results(value, outer, {}))
        return value

    @contextlib.contextmanager
    def member_loop(self, member: Layer):
        """Apply a sequence member that a list's `for` made as that loop's: the scope it opens records the run
        (Frame loop_of), as a `for` statement's do."""
        if member.loop is None:
            yield
            return
        self.loops.append((member.loop, self.frame))
        try:
            yield
        finally:
            self.loops.pop()

    @contextlib.contextmanager
    def member_guard(self, member: Layer):
        """Apply a sequence member with the branches that put it in its list (Layer.guard) as its guard."""
        frame = self.frame
        frame.guards.extend(member.guard)
        try:
            yield
        finally:
            del frame.guards[len(frame.guards) - len(member.guard):]

    def localize_all(self, value):
        """Tensors with their dimensions localized (see localize)."""
        def one(t):
            return Tensor(t.node, t.type.with_shape([self.localize(d) for d in t.type.shape]))
        if isinstance(value, Tensor):
            return one(value)
        if isinstance(value, list):
            return [one(v) if isinstance(v, Tensor) else v for v in value]
        return value

    # ------------------------------------------------------------ naming

    def claim(self, label: str | None, span: Span) -> None:
        if label is None:
            return
        span = getattr(label, "span", span)  # point at the name as written, where there is one
        if label in self.frame.explicit:
            first = self.frame.explicit[label]
            where = f"'{self.frame.label}'" if self.frame.label else "the network"
            raise CnnError(f"the name '{label}' is already used in {where}", span, [Note("first used here", first)])
        self.frame.explicit[label] = span

    def open_frame(self, label, hint, kind, span, block=None, args=None) -> Frame:
        self.claim(label, span)
        frame = Frame(label, hint, self.frame, kind, span, block, args or {})
        frame.guard = tuple(self.frame.guards)
        if self.loops and self.loops[-1][1] is self.frame:
            self.loop_of[id(frame)] = self.loops[-1][0]
        self.frame.children.append(frame)
        self.frame = frame
        return frame

    def new_node(self, label, hint, kind, op, attrs, inputs, type_, span) -> PendingNode:
        if len(self.nodes) >= self.max_nodes:
            raise CnnError(f"the network has more than {self.max_nodes:,} nodes (the limit; raise it with "
                           f"--max-nodes N if you mean it)", span)
        self.claim(label, span)
        node = PendingNode(label, hint, self.frame, kind, op, attrs, inputs, type_, span)
        node.guard = tuple(self.frame.guards)
        self.frame.children.append(node)
        self.nodes.append(node)
        return node

    def fixed_parameters(self) -> set[str]:
        """The network parameters some value read shaped (see observe), passed up from each block and template
        scope through its caller's arguments: innermost scopes first."""
        roots = names_frame

        def visit(frame: Frame) -> None:
            for child in frame.children:
                if isinstance(child, Frame):
                    visit(child)
            if frame.parent is None or not (frame.kind == "block" or frame.tag):
                return
            outer = {k: Sym.of(v) for k, v in frame.call.items()}
            for name, v in frame.lets.items():
                outer[name] = Sym.of(v).subs(outer)
            target = roots(frame.parent)

            def outside(name: str) -> set[str]:
                sym = outer.get(name[len(frame.tag):] if frame.tag and name.startswith(frame.tag) else name)
                return set(sym.names()) if sym is not None else set()

            for name in frame.observed:
                target.observed |= outside(name)
            for name, runs in frame.counted.items():
                for outer_name in outside(name):
                    target.counted.setdefault(outer_name, set()).update(runs)

        visit(self.root)
        return set(self.root.observed)

    def counted_parameters(self) -> dict[str, set[int]]:
        """The network parameters read only as loops' counts (after fixed_parameters): name -> the loops."""
        return {k: set(v) for k, v in self.root.counted.items() if k not in self.root.observed}

    def finalize(self) -> dict[str, Scope]:
        """Give every node and scope its final dotted name; drop scopes that made no node."""
        scopes: dict[str, Scope] = {}

        def visit(frame: Frame) -> bool:
            used = set(frame.explicit)
            last: dict[str, int] = {}  # hint -> the last suffix tried: `used` only grows, so resume there
            kept = []
            for child in frame.children:
                if child.label is not None:
                    local = child.label
                else:
                    k = last.get(child.hint, 0)
                    local = f"{child.hint}_{k}" if k else child.hint
                    while local in used:
                        k += 1
                        local = f"{child.hint}_{k}"
                    last[child.hint] = k
                    used.add(local)
                child.name = f"{frame.name}.{local}" if frame.name else local
                if isinstance(child, PendingNode) or visit(child):
                    kept.append(child.name)
            if not kept and frame is not self.root:
                return False
            scopes[frame.name] = Scope(frame.name, frame.kind, frame.block, frame.args, kept, frame.span,
                                       [(p, n.name) for p, n in frame.inputs], [n.name for n in frame.outputs],
                                       self.loop_of.get(id(frame)), frame.call, frame.defaults, frame.lets,
                                       self.loop_length.get(self.loop_of.get(id(frame))), frame.tag,
                                       frame.guard, frame.conditions)
            return True

        visit(self.root)
        return scopes


def names_frame(frame: Frame) -> Frame:
    """The frame whose names the numbers made in `frame` are traced by: the enclosing block instance, template
    scope or, at the top, the network's."""
    while frame.parent is not None and frame.kind != "block" and not frame.tag:
        frame = frame.parent
    return frame


def retrace(t: Tensor, prefix: str, tag: str, sizes: dict) -> Tensor:
    """The tensor as a block (or a template's scope, whose names carry `tag`) sees it: its channels, and each other
    size the caller computed, traced by the block's name for it; `sizes` gets the caller's values by name."""
    shape = list(t.type.shape)
    for axis, name in enumerate(dimension_names(t.type, prefix)):
        if name.endswith(("_channels", "_features")) or sym_of(shape[axis]) is not None:
            sizes[name] = shape[axis]
            shape[axis] = traced(plain(shape[axis]), Sym.name(tag + name))
    return Tensor(t.node, t.type.with_shape(shape))


def _decides(n: A.Node) -> bool:
    """Does evaluating the expression read a value for what it is (a condition, an index)? The branch a ternary
    did not take is evaluated only where it does not: a read would fix what it read (Evaluator.observe)."""
    return any(isinstance(node, (A.Ternary, A.BoolOp, A.Compare, A.Not, A.Index)) for node in A.walk(n))


def _condition_sym(cond) -> Sym | None:
    """Evaluator.condition's tree as one expression (cnndsl.symbolic's "cmp", "and", "or", "not")."""
    if cond is None:
        return None
    kind = cond[0]
    if kind == "value":
        return cond[1]
    if kind == "not":
        inner = _condition_sym(cond[1])
        return None if inner is None else invert(inner)
    if kind == "cmp":
        return compare(cond[1], cond[2])
    parts = [_condition_sym(c) for c in cond[1]]
    return None if None in parts else logical(kind, parts)


def _pure(n, env: Env) -> bool:
    """Does evaluating the expression make nothing (no layer, no node): numbers, names, builtins' results? A
    call is pure only where its name is the builtin's (a block named `max` makes layers)."""
    if isinstance(n, (A.Chain, A.Labeled)):
        return False
    if isinstance(n, A.Call) and not (isinstance(n.func, A.Name) and _builtin(n.func.id, env)):
        return False
    children = [v for v in vars(n).values() if isinstance(v, A.Node)]
    children += [x for v in vars(n).values() if isinstance(v, list) for x in v if isinstance(x, A.Node)]
    return all(_pure(c, env) for c in children)


def _builtin(name: str, env: Env) -> bool:
    """Does `name` mean the builtin here (as eval_Name resolves it: a variable, then an op, then a builtin)?"""
    try:
        env.lookup(name)
        return False
    except KeyError:
        return name in BUILTINS and lookup(name) is None


def size_prefix(param: str, first: str) -> str:
    """How a block names the sizes of its tensor parameter `param`: `in_channels` for its first (`first`),
    `skip_channels` for another named skip."""
    return "in_" if param == first else f"{param}_"


def dimension_names(t: TensorType, prefix: str) -> list[str]:
    """What a block calls its input's sizes, axis by axis: in_channels, in_height, in_width; seq_length and
    in_features for tokens (torchvision's Encoder takes seq_length)."""
    if t.tokens:
        return ["seq_length" if prefix == "in_" else f"{prefix}tokens", f"{prefix}features"]
    if t.rank == 1:
        return [f"{prefix}features"]
    spatial = [f"{prefix}{a}" for a in AXIS_NAMES.get(t.spatial_rank, [f"axis{i}" for i in range(t.spatial_rank)])]
    channels = f"{prefix}channels"
    return [*spatial, channels] if t.channels_last else [channels, *spatial]


_RANKS = {1: "one feature vector (F)", 2: "1-D (CxL)", 3: "2-D (CxHxW)", 4: "3-D (CxDxHxW)"}


def setting_text(value) -> str:
    """A parameter's value as --set accepts it: blocks and ops by name, strings quoted, lists bracketed."""
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'
    if isinstance(value, list):
        return "[" + ", ".join(setting_text(v) for v in value) + "]"
    if isinstance(value, (BlockClosure, TemplateClosure, NetworkValue)):
        return value.defn.name
    if isinstance(value, Builtin):
        return value.name
    if isinstance(value, Layer) and isinstance(value.target, OpSpec) and not value.args and not value.kwargs:
        return value.target.name
    return describe(value)


def _shown_source(path: str) -> str:
    """How reports and generated headers name the source: a bundled file as architectures/NAME.cnn, a user's
    file by its name alone, so that the output is the same from any working directory."""
    return path if path.startswith(BUNDLED_PREFIX) or not path.endswith(".cnn") else os.path.basename(path)


def check_type(t: TensorType, span: Span, what: str) -> TensorType:
    """A tensor type within limits: each dimension <= limits.ARG_MAX, the elements <= limits.NUMEL_MAX."""
    for d in t.shape:
        if d > limits.ARG_MAX:
            raise CnnError(f"{what}: a dimension of {d:,} is more than torch allows ({limits.ARG_MAX:,}, 2**31 - 1)",
                           span)
    if t.numel > limits.NUMEL_MAX:
        raise CnnError(f"{what}: a tensor of {t.numel:,} elements ({t}) is more than any machine holds "
                       f"(the limit is 2**62)", span)
    return t


def _iteration(targets: list[str], item) -> str:
    """`i = 3` (or `i, n = 0, 3`) for an error message, values shown short."""
    values = item if len(targets) > 1 and isinstance(item, list) else [item]
    shown = [v if isinstance(v, (bool, int, float)) or v is None else describe(v) for v in values]
    text = ", ".join(str(v).lower() if isinstance(v, bool) or v is None else str(v) for v in shown)
    return f"{', '.join(targets)} = {text}"


def _origin(node: PendingNode) -> str:
    """How the user knows a value: its variable, else its label, else its op."""
    if node.var:
        return f"'{node.var}'"
    if node.label:
        return f"'{node.label}'"
    return f"the output of {node.hint}"


def _all_vars(env: Env) -> dict:
    """Every name an environment sees, its own over its parents'."""
    chain = []
    while env is not None:
        chain.append(env.vars)
        env = env.parent
    return {k: v for vars_ in reversed(chain) for k, v in vars_.items()}


def _plain(v) -> bool:
    if isinstance(v, (bool, int, float, str)) or v is None:
        return True
    return isinstance(v, list) and all(_plain(i) for i in v)


# ---------------------------------------------------------------- network elaboration


def parse_setting(text: str, flag: str) -> tuple[str, A.Node, Span]:
    """'NAME=EXPR' from the command line -> (name, expression, span of the name)."""
    source = Source(flag, text)
    name, eq, rest = text.partition("=")
    name = name.strip()
    if not eq or not re.fullmatch(r"[A-Za-z_]\w*", name):
        raise CnnError(f"expected NAME=VALUE, got '{text}'", Span(source, 1, 1, 1, len(text) + 1))
    if not rest.strip():
        raise CnnError(f"'{name}=' needs a value", Span(source, 1, len(text) + 1, 1, len(text) + 2))
    padded = " " * (len(text) - len(rest)) + rest
    node = parse_expression(source, padded)
    return name, node, Span(source, 1, 1, 1, len(name) + 1)


def elaborate(target: Target, settings: list[tuple[str, A.Node, Span]] = (),
              input_shapes: list[tuple[str, A.Node, Span]] = (), max_nodes: int | None = None,
              trace: bool = False) -> Network:
    """Build the IR of a target, with --set values and --input shapes from the command line; at most
    `max_nodes` nodes (limits.NODES_MAX by default). With `trace`, the nodes and scopes also keep how each number
    was computed (cnndsl.symbolic), which generated code needs; `Network.traced()` elaborates again with it."""
    with tracing(trace):
        network = _elaborate(target, settings, input_shapes, max_nodes)
    network.is_traced = trace
    network.remake = lambda more=(): elaborate(target, [*settings, *more], input_shapes, max_nodes, trace=True)
    return network


def _elaborate(target: Target, settings, input_shapes, max_nodes) -> Network:
    program, net = target.program, target.network
    names = [p.name for p in net.params]
    given: dict[str, Any] = {}
    given_where: dict[str, tuple[Span, str]] = {}  # for the warning when a given value is never read
    if target.preset is not None:
        pre = target.preset
        if sum(a.name is None for a in pre.args) > len(names):
            raise CnnError(f"network '{net.name}' takes {len(names)} parameters", pre.span)
        for i, a in enumerate(pre.args):
            name = a.name if a.name is not None else names[i]
            if name not in names:
                raise CnnError(f"network '{net.name}' has no parameter '{name}'{suggest(name, names)}", a.span)
            given[name] = Evaluator.constant(a.value, program.env)
            given_where[name] = (a.span, f"by preset '{pre.name}'")
    for name, expr, span in settings:
        if name not in names:
            listed = ", ".join(names) or "none"
            raise CnnError(f"network '{net.name}' has no parameter '{name}'{suggest(name, names)} "
                           f"(its parameters: {listed})", span)
        given[name] = Evaluator.constant(expr, program.env)
        given_where[name] = (span, f"by {span.source.path}")  # the flag: --set, or load()
    shapes = {name: (Evaluator.constant(expr, program.env), expr.span) for name, expr, _ in input_shapes}
    ev = Evaluator(shapes, max_nodes)
    env = Env(program.env)
    env.reads = set()
    try:
        for p in net.params:
            if p.name in given:
                env.vars[p.name] = given[p.name]
            elif p.default is not None:
                env.vars[p.name] = ev.eval(p.default, env)
            else:
                raise CnnError(f"network parameter '{p.name}' has no default; give it with --set {p.name}=...",
                               p.span)
        ev.param_values = {p.name: plain(env.vars[p.name]) for p in net.params
                           if isinstance(env.vars[p.name], (int, float)) and not isinstance(env.vars[p.name], bool)}
        for p in net.params:  # the top module's constructor arguments (cnndsl.symbolic)
            env.vars[p.name] = traced(plain(env.vars[p.name]), Sym.name(p.name))
        ev.exec_body(net.body, env)
    except CnnError as exc:  # the mistake may lie in a value given on the command line: say which were used
        used = [n for n, (_, how) in given_where.items() if n in env.reads and not how.startswith("by preset")]
        line = exc.span.source.line(exc.span.line) if exc.span else ""
        named = [n for n in used if re.search(rf"\b{n}\b", line)]  # those the failing line names, if any
        for name in named or used:
            span, how = given_where[name]
            exc.notes.append(Note(f"'{name}' was given {how}", span))
        raise
    for name, _, span in input_shapes:
        if name not in ev.inputs:
            raise CnnError(f"network '{net.name}' has no input '{name}'{suggest(name, ev.inputs)} "
                           f"(its inputs: {', '.join(ev.inputs) or 'none'})", span)
    if not ev.inputs:
        raise CnnError(f"network '{net.name}' declares no input (add `input x: 3x224x224`)", net.span)
    if not ev.outputs:
        raise CnnError(f"network '{net.name}' declares no output (add `output y = ...`)", net.span)
    if len(ev.training_outputs) == len(ev.outputs):
        first = ev.training_outputs[0]
        raise CnnError(f"every output of network '{net.name}' is a training output: in eval mode it would return "
                       f"nothing (declare its main output with `output`, not `training output`)",
                       ev.output_spans[first])
    fixed = ev.fixed_parameters() & set(names)
    counted = {k: v for k, v in ev.counted_parameters().items() if k in names}
    fixed |= set(counted)  # until a backend shows it writes those loops as loops (Network.counted)
    scopes = ev.finalize()
    graph = nx.MultiDiGraph()
    for node in ev.nodes:
        graph.add_node(node.name, name=node.name, kind=node.kind, op=node.op, attrs=node.attrs,
                       inputs=[i.name for i in node.inputs], type=node.type, span=node.span, scope=node.frame.name,
                       var=node.var, assigned=node.assigned, labelled=node.label is not None, traced=node.traced,
                       guard=node.guard)
        for i, src in enumerate(node.inputs):
            graph.add_edge(src.name, node.name, key=i, index=i)
    params = {p.name: plain(env.vars[p.name]) for p in net.params}
    network = Network(
        name=target.preset.name if target.preset else net.name, graph=graph, order=[n.name for n in ev.nodes],
        inputs={k: v.name for k, v in ev.inputs.items()}, outputs={k: v.name for k, v in ev.outputs.items()},
        training_outputs=list(ev.training_outputs),
        scopes=scopes, params=params, source=_shown_source(program.path), fixed=fixed,
        init_switches={n for n in ev.init_switches if isinstance(params.get(n), bool)}, counted=counted,
        doc=(target.preset.doc if target.preset and target.preset.doc else net.doc),
        overrides=[f"--set {name}={setting_text(env.vars[name])}" for name, _, _ in settings]
        + [f"--input {name}={ev.inputs[name].type}" for name, _, _ in input_shapes],
    )
    blocks = {name for name, v in _all_vars(program.env).items() if isinstance(v, (BlockClosure, TemplateClosure))}
    network.init = weight_init.resolve(network, ev.init_rules, blocks)
    network.warnings = [*ev.warnings, *lint.unused_parameters([net, *ev.called.values()]),
                        *lint.ineffective_settings(net, given_where, env.reads),
                        *lint.unreachable_values(network)]
    return network
