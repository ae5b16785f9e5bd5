"""One class for a block whose instances took different branches of its `if`s (ResNet's shortcut projection).

The elaborator records, for each block instance, the conditions its own body evaluated (in the block's terms,
Scope.conditions) and, for each thing it made, the branches it was made in (`guard`). Instances that differ
only in what their branches made become one class: `__init__` builds the guarded modules under `if <condition>:`
(`self.downsample = None` otherwise), forward() runs them under `if self.downsample is not None:`, and a value
that a branch replaces starts as the value the other instances use (`s = x`), as torchvision's
`identity = x; if self.downsample is not None: identity = self.downsample(x)`. A guard that makes no module
is a flag set in `__init__` (`self.use_add = stride == 1 and in_channels == out`).

Anything else (nested conditions, a loop, a member number that moves, literals that differ) keeps the classes
apart: merging is only ever a rewriting of code that the variants already have, checked piece by piece.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field

from cnndsl.symbolic import Sym, fold, plain
from cnndsl.values import BUILTIN_FUNCTIONS

from .pytorch_ops import Call, Code

WIDTH_OF_LINES = 110  # as backends/pytorch.py's WIDTH

COMPARISON = {"==": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


@dataclass
class Variants:
    """What a merged class writes: the variants' representative scopes, the conditions by key (Python text),
    and each guarded key's forward() test."""

    reps: list[str]
    conditions: dict  # key -> condition text
    tests: dict = field(default_factory=dict)  # key -> (test when taken, attribute or flag it reads)
    out_of_place: set = field(default_factory=set)  # nodes whose first input may be a value the branch replaced
    used: set = field(default_factory=set)  # the keys of the conditions the class's code writes

    def condition(self, key, taken: bool) -> str:
        """The test of a branch (the condition, or its negation), noted as written."""
        if key not in self.conditions:
            raise _NoMerge  # a branch the class cannot test: its variants stay apart
        self.used.add(key)
        return self.conditions[key] if taken else _negated(self.conditions[key])

    def names(self) -> set[str]:
        """The names the written conditions read."""
        return {n for key in self.used for n in _words(self.conditions[key])}


class VariantMerger:
    """Mixed into TorchGenerator (backends/pytorch.py): merge_variants() after planning a depth, and
    variants_source() to write a merged class."""

    # ------------------------------------------------------------ planning

    def merge_variants(self, block: str) -> None:
        classes = list({id(c): c for c in self.class_of.values() if c.block == block}.values())
        if len(classes) < 2 or any(c.slots or c.rep in self.sequential or c.rep in self.looped
                                   or getattr(c, "variants", None) for c in classes):
            return
        reps = [self.net.scopes[c.rep] for c in classes]
        if any(r.kind != "block" or not r.conditions for r in reps):
            return
        conditions = self._variant_conditions(reps)
        if self._children_order(reps) is None:
            return
        if any(self._forward_loop(r, self._statements(r)) for r in reps):
            return
        named = {w for text in conditions.values() for w in _words(text)}
        params = [p for p in reps[0].call if any(p in c.params for c in classes) or p in named]
        params = [p for p in params if p in self._names(reps[0].name)]
        merged = type(classes[0])(classes[0].name, block, params, reps[0].name, {}, {})
        merged.variants = Variants([r.name for r in reps], conditions)
        try:
            self.variants_source(merged, "Check")  # every piece must agree, or nothing merges
        except _NoMerge:
            return
        # the parameters the code reads: a condition that decides nothing the class writes is not among them
        merged.params = [p for p in params if any(p in c.params for c in classes) or p in merged.variants.names()]
        params = merged.params
        self.out_of_place |= merged.variants.out_of_place
        for c in classes:
            for scope in c.instances:
                s = self.net.scopes[scope]
                merged.instances[scope] = {p: s.call[p] for p in params}
                self.class_of[scope] = merged

    def _variant_conditions(self, reps) -> dict:
        """The conditions the class can write (key -> Python text): those that every variant which evaluated them
        writes as the same text in the class's names. The others (over a loop's variable, say) may decide nothing
        the variants differ in; where they do, writing the class fails (Variants.condition) and they stay apart."""
        texts: dict = {}
        for r in reps:
            with self._writing(r.name):
                for key, (cond, _) in r.conditions.items():
                    texts.setdefault(key, set()).add(self._condition_text(cond, r.name))
        return {key: next(iter(t)) for key, t in texts.items() if len(t) == 1 and None not in t}

    def _condition_text(self, cond, scope: str) -> str | None:
        if cond is None:
            return None
        kind = cond[0]
        if kind in ("and", "or"):
            parts = [self._condition_text(c, scope) for c in cond[1]]
            if None in parts:
                return None
            return f" {kind} ".join(f"({p})" if " or " in p and kind == "and" else p for p in parts)
        if kind == "not":
            inner = self._condition_text(cond[1], scope)
            return None if inner is None else f"not ({inner})"
        if kind == "cmp":
            texts = [self._operand_text(s, scope) for s in cond[2]]
            if None in texts:
                return None
            out = texts[0]
            for op, t in zip(cond[1], texts[1:]):
                out += f" {COMPARISON[op]} {t}"
            return out
        return self._operand_text(cond[1], scope)

    def _operand_text(self, sym: Sym, scope: str) -> str | None:
        if sym.literal:
            value = sym.args[0]
            return repr(value) if isinstance(value, (bool, type(None), str)) else self._text(sym)
        if not sym.names() <= self._names(scope):
            return None
        return self._text(sym)

    def _guard(self, name: str) -> tuple:
        if name in self.net.scopes:
            return self.net.scopes[name].guard
        return self.net.node(name).get("guard", ())

    def _children_order(self, reps) -> list | None:
        """The variants' children (local names) in one order, each with its guard; None where they disagree."""
        guards: dict[str, tuple] = {}
        for r in reps:
            for child in r.children:
                local, guard = self._local(child), self._guard(child)
                if len(guard) > 1 or guards.setdefault(local, guard) != guard:
                    return None
                if guard and r.conditions.get(guard[0][0], (None, None))[1] != guard[0][1]:
                    return None
        order = _merge_orders([[self._local(c) for c in r.children] for r in reps])
        if order is None:
            return None
        for r in reps:  # an instance has a guarded child exactly when it took that branch
            have = {self._local(c) for c in r.children}
            for local in order:
                guard = guards[local]
                want = not guard or r.conditions.get(guard[0][0], (None, None))[1] == guard[0][1]
                if want != (local in have):
                    return None
        return [(local, guards[local]) for local in order]

    # ------------------------------------------------------------ writing

    def variants_source(self, cls, name: str) -> str:
        v = cls.variants
        reps = [self.net.scopes[r] for r in v.reps]
        order = self._children_order(reps)
        if order is None:
            raise _NoMerge
        init = self._variant_init(cls, reps, order)
        params, forward = self._variant_forward(cls, reps, order)
        out = [f"class {name}(nn.Module):", *self._variant_doc(cls), "",
               "    " + self._fit_line(f"def __init__({self._signature(cls)}):", 4), "        super().__init__()",
               *("        " + line for line in init), "",
               f"    def forward(self, {', '.join(params)}):",
               *("        " + line for line in forward)]
        return "\n".join(out)

    def _variant_init(self, cls, reps, order) -> list[str]:
        """__init__'s statements (each a string for an indentation of 8, continuation lines included)."""
        v = cls.variants
        v.tests, v.used = {}, set()
        guard_of = dict(order)
        found: dict[str, list] = {}  # path -> [(variant, expression)]
        used: set[str] = set()
        for r in reps:
            with self._writing(r.name):
                for path, expr in self._init_items(r):
                    if not isinstance(expr, (Call, Code)):
                        raise _NoMerge  # a loop: its count or arguments may differ
                    found.setdefault(path, []).append((r, expr))
                used |= self._code_names(self._init_items(r)) & self._names(r.name)
        items: dict[str, object] = {}
        texts: dict[str, str] = {}
        for path, cands in found.items():
            indent = 12 if guard_of.get(path.split(".")[0]) else 8
            members = [self._guarded_members(r, path, expr) for r, expr in cands]
            if any(m and any(g for g, _ in m) for m in members):  # a list with `if` members: built by appends
                if None in members:
                    raise _NoMerge  # a list in some variants only
                texts[path] = self._list_text(v, path, list(zip((r for r, _ in cands), members)), indent)
                used |= self._code_names([("", e) for m in members for _, e in m]) & self._names(reps[0].name)
            else:
                texts[path] = self._init_text(path, self._agreed(cands, lambda e: self._init_text(path, e, indent), v),
                                              indent)
            items[path] = cands[0][1]
        lines: list[str] = []
        groups: list[tuple[tuple, list[str]]] = []
        for path in _ordered(items, [local for local, _ in order]):
            guard = guard_of.get(path.split(".")[0], ())
            if groups and groups[-1][0] == guard:
                groups[-1][1].append(path)
            else:
                groups.append((guard, [path]))
        for guard, paths in groups:
            body = [texts[p] for p in paths]
            if not guard:
                lines += body
                continue
            key, taken = guard[0]
            cond = v.condition(key, taken)
            attrs = [p for p in paths if "." not in p]
            if attrs:
                v.tests[guard] = (f"self.{attrs[0]} is not None", attrs[0])
                lines += [f"if {cond}:", *("    " + b for b in body), "else:",
                          *(f"    self.{a} = None" for a in attrs)]
            else:
                lines += body
        flags = {g for _, g in order if g and g not in v.tests}
        for guard in sorted(flags):
            key, taken = guard[0]
            flag = self._flag_name(guard, order)
            v.tests[guard] = (f"self.{flag}", flag)
            lines.append(f"self.{flag} = {v.condition(key, taken)}")
        lets = self._lets(reps[0], used | v.names())
        for r in reps[1:]:  # a local the code names is computed alike in every variant, or they stay apart
            if not set(self._lets(r, used | v.names())) <= set(lets):
                raise _NoMerge
        return [f"{name} = {text}" for name, text in lets] + lines

    def _guarded_members(self, r, path: str, expr) -> list | None:
        """[(guard, expression)] of the members of an nn.Sequential item, or None for any other item."""
        from .pytorch import Named

        name = f"{r.name}.{path}"
        if name not in self.sequential or not isinstance(expr, Call) or expr.callee != "nn.Sequential":
            return None
        children = self.net.scopes[name].children
        if any(isinstance(a, Named) for a in expr.args) or len(children) != len(expr.args):
            return None  # compared whole: variants that differ in its members stay apart
        return [(self._guard(c), a) for c, a in zip(children, expr.args)]

    def _list_text(self, v, path: str, variants: list, base: int) -> str:
        """A sequence with `if` members, as torchvision builds MobileNetV2's: `layers = []`, `if expand != 1:
        layers.append(...)`, `layers.extend([...])`, then `self.conv = nn.Sequential(*layers)`."""
        keyed = []  # per variant: {key: expression}, keys in its order
        for r, members in variants:
            counts: dict = {}
            row = {}
            for guard, expr in members:
                if len(guard) > 1 or (guard and r.conditions.get(guard[0][0], (None, None))[1] != guard[0][1]):
                    raise _NoMerge
                n = counts[guard] = counts.get(guard, -1) + 1
                row[(guard, n)] = expr
            keyed.append((r, row))
        order = _merge_orders([list(row) for _, row in keyed])
        if order is None:
            raise _NoMerge
        for r, row in keyed:  # a variant has a guarded member exactly when it took that branch
            for key in order:
                guard = key[0]
                if (key in row) != (not guard or r.conditions[guard[0][0]][1] == guard[0][1]):
                    raise _NoMerge
        *parents, local = path.split(".")
        target = "self" + "".join(self._attr(p) for p in [*parents, local])
        var = "layers"
        runs: list[tuple[tuple, list]] = []  # (guard, [expression]) of consecutive members under one guard
        for key in order:
            cands = [(r, row[key]) for r, row in keyed if key in row]
            expr = self._agreed(cands, lambda e: self._render_expr(e, 12, None, (path,)), v)
            if runs and runs[-1][0] == key[0]:
                runs[-1][1].append(expr)
            else:
                runs.append((key[0], [expr]))
        lines = [] if not runs[0][0] else [f"{var} = []"]
        for i, (guard, exprs) in enumerate(runs):
            pad = "    " if guard else ""
            if guard:
                gkey, taken = guard[0]
                other = runs[i - 1][0] if i else ()
                if other and other[0] == (gkey, not taken) and (i < 2 or runs[i - 2][0] != guard):
                    v.condition(gkey, taken)
                    lines.append("else:")
                else:
                    lines.append(f"if {v.condition(gkey, taken)}:")
            indent = base + len(pad)
            if i == 0 and not guard:
                head, tail = f"{var} = [", "]"
            elif len(exprs) == 1:
                head, tail = f"{var}.append(", ")"
            else:
                head, tail = f"{var}.extend(", ")"
            if len(exprs) == 1:
                text = head + self._render_expr(exprs[0], indent, None, (path,), len(head)) + tail
                if "\n" not in text and indent + len(text) <= WIDTH_OF_LINES:
                    lines.append(pad + text)
                    continue
                if tail == ")":  # as black: the one argument on lines of its own
                    lines.append(pad + head + "\n" + " " * (indent + 4)
                                 + self._render_expr(exprs[0], indent + 4, None, (path,)) + "\n" + " " * indent + tail)
                    continue
            inner = indent + (4 if tail == "]" else 8)
            body = "".join(" " * inner + self._render_expr(e, inner, None, (path,)) + ",\n" for e in exprs)
            if tail == "]":
                lines.append(pad + head + "\n" + body + " " * indent + tail)
            else:  # as black writes `layers.extend([...])` when it does not fit a line
                lines.append(pad + head + "\n" + " " * (indent + 4) + "[\n" + body + " " * (indent + 4) + "]\n"
                             + " " * indent + tail)
        lines.append(f"{target} = nn.Sequential(*{var})")
        return "\n".join([lines[0], *(" " * base + line for line in lines[1:])])  # as __init__'s other lines

    def _agreed(self, cands: list, render, v) -> object:
        """The one expression that serves every variant: theirs where they write the same text; else one that
        equals each variant's own once that variant's conditions are known (where `expanded != in_channels` was
        false, `expanded` and `in_channels` are one number: the depthwise conv of MobileNetV3's unexpanded block
        reads `in_channels`, the others `expanded`, and one class writes `expanded` for all)."""
        texts = {render(e) for _, e in cands}
        if len(texts) == 1:
            return cands[0][1]
        return self._merged_tree(cands, v)

    def _merged_tree(self, cands: list, v, per_axis: bool = False):
        """The variants' constructor trees as one: where they differ, a size that serves them all given what
        each knows (see _agreed), or `a if condition else b` where one of the block's conditions tells them
        apart (ShuffleNet's `in_channels if stride > 1 else in_channels // 2`, as torchvision writes it).
        `per_axis`: the value is a conv's or pool's size per axis, where an int means that size on every axis."""
        from .pytorch import Named

        first = cands[0][1]
        if all(isinstance(t, Call) and t.callee == first.callee and len(t.args) == len(first.args)
               and [k for k, _ in t.kwargs] == [k for k, _ in first.kwargs] for _, t in cands):
            args = tuple(self._merged_tree([(r, t.args[i]) for r, t in cands], v) for i in range(len(first.args)))
            kwargs = tuple((k, self._merged_tree([(r, dict(t.kwargs)[k]) for r, t in cands], v, k in first.per_axis))
                           for k, _ in first.kwargs)
            return first.rebuilt(args, kwargs)
        if all(isinstance(t, Named) and [k for k, _ in t.items] == [k for k, _ in first.items] for _, t in cands):
            return Named(tuple((k, self._merged_tree([(r, dict(t.items)[k]) for r, t in cands], v))
                               for k, _ in first.items))
        if len({self._flat(t) for _, t in cands}) == 1:
            return first
        for _, chosen in cands:
            if all(_canonical(chosen, *self._facts(r)) == _canonical(e, *self._facts(r)) for r, e in cands):
                return chosen
        if per_axis:  # `(1, stride, stride)` is every variant's size, where one with stride 1 wrote `1`
            for _, chosen in cands:
                n = len(chosen) if isinstance(chosen, tuple) else 0
                mine = [_axes(self._number(chosen, r), n) for r, _ in cands]
                if n and None not in mine and mine == [_axes(self._number(e, r), n) for r, e in cands]:
                    return chosen
        for key, condition in v.conditions.items():
            if any(key not in r.conditions for r, _ in cands):
                continue  # a condition some variants never evaluated
            taken = [(r, t) for r, t in cands if r.conditions[key][1]]
            other = [(r, t) for r, t in cands if not r.conditions[key][1]]
            if not taken or not other:
                continue
            try:
                a, b = self._flat(self._merged_tree(taken, v)), self._flat(self._merged_tree(other, v))
            except _NoMerge:
                continue
            if "\n" not in a + b and " if " not in a + b:
                v.used.add(key)
                return Code(f"{a} if {condition} else {b}")
        raise _NoMerge

    def _number(self, tree, r):
        """The number (or tuple of numbers) a constructor value is in variant r; None where it is not one."""
        lets, _, _ = self._facts(r)
        names = {k: Sym.num(plain(x)) for k, x in r.call.items()
                 if isinstance(plain(x), (int, float)) and not isinstance(x, bool)}
        if isinstance(tree, tuple):
            parts = [self._number(x, r) for x in tree]
            return None if any(p is None or isinstance(p, tuple) for p in parts) else tuple(parts)
        sym = getattr(tree, "sym", None)
        if sym is None:
            return tree if isinstance(tree, int) and not isinstance(tree, bool) else None
        value = fold(_expanded(sym, lets).subs(names), BUILTIN_FUNCTIONS)
        return value.args[0] if value.literal and isinstance(value.args[0], int) else None

    def _flat(self, tree) -> str:
        return self._render_expr(tree, 0, None, ()) if not isinstance(tree, Code) else str(tree)

    def _facts(self, r) -> tuple:
        """What a variant knows: its block's locals as expressions, the equalities its conditions' outcomes imply,
        and the names that hold integers."""
        lets = {name: Sym.of(value) for name, value in r.lets.items()}
        equal: list = []
        for cond, taken in r.conditions.values():
            _equalities(cond, taken, equal)
        ints = {k for k, value in r.call.items() if isinstance(value, int) and not isinstance(value, bool)}
        return lets, [(_expanded(a, lets), _expanded(b, lets)) for a, b in equal], frozenset(ints)

    def _flag_name(self, guard, order) -> str:
        first = next(local for local, g in order if g == guard)
        base = first.rstrip("_0123456789") or "branch"
        return f"use_{base}"

    def _init_text(self, path: str, expr, indent: int) -> str:
        *parents, local = path.split(".")
        target = "self" + "".join(self._attr(p) for p in [*parents, local])
        if not self._attr(local).startswith(f".{local}"):
            raise _NoMerge
        return f"{target} = {self._render_expr(expr, indent, None, (path,), len(target) + 3)}"

    def _variant_forward(self, cls, reps, order) -> tuple[list[str], list[str]]:
        """forward(): the variants' statements in one order, keyed by the names they make (each key stands for the
        node of the first variant that has it); guarded ones under their test, and a value that a branch replaces
        is first set to what the other variants read in its place (`s = x`)."""
        from .pytorch import Statement

        v = cls.variants
        guard_of = dict(order)
        keyed: dict[str, Statement] = {}  # key -> the first variant's statement
        node_of: dict[str, str] = {}  # key -> the node standing for it
        reads: dict[str, list[list[str]]] = {}  # key -> per variant that runs it, its inputs as keys
        sequences, outputs, params = [], [], None
        nodes_of: dict[str, list[str]] = {}  # key -> each variant's node for it
        for r in reps:
            key_of = {n: p for p, n in r.inputs}
            if params is None:
                params = [p for p, _ in r.inputs]
                node_of.update({p: n for p, n in r.inputs})
            elif params != [p for p, _ in r.inputs]:
                raise _NoMerge
            seq = []
            for st in self._statements(r):
                if len(st.outputs) != 1 or st.block:
                    raise _NoMerge
                key = self._key(st.child or st.outputs[0], r.name)
                key_of[st.outputs[0]] = key
                nodes_of.setdefault(key, []).append(st.outputs[0])
                if key not in keyed:
                    keyed[key], node_of[key] = st, st.outputs[0]
                reads.setdefault(key, []).append([key_of.get(n, "?") for n in st.inputs])
                seq.append(key)
            sequences.append(seq)
            outputs.append([key_of.get(n, "?") for n in r.outputs])
        keys = _merge_orders(sequences)
        if keys is None or "?" in {k for rows in reads.values() for row in rows for k in row}:
            raise _NoMerge

        def guard(key: str) -> tuple:
            return guard_of.get(key.split(".")[0], ())

        alias: dict[str, str] = {}  # guarded key -> what the other variants read in its place
        either: dict[str, str] = {}  # key made under a branch -> the key the other branch makes in its place

        def merged(columns: list[list[str]]) -> list[str]:
            row = []
            for position in range(len(columns[0])):
                seen = list(dict.fromkeys(c[position] for c in columns if position < len(c)))
                if len(seen) == 1:
                    row.append(seen[0])
                    continue
                guarded = [k for k in seen if guard(k)]
                other = [k for k in seen if not guard(k)]
                if len(seen) == 2 and len(guarded) == 2 and _complementary(guard(guarded[0]), guard(guarded[1])) \
                        and either.setdefault(guarded[1], guarded[0]) == guarded[0]:
                    row.append(guarded[0])  # made by one branch or by the other: one variable (ShuffleNet's left)
                    continue
                if len(seen) != 2 or len(guarded) != 1 or alias.setdefault(guarded[0], other[0]) != other[0]:
                    raise _NoMerge
                row.append(guarded[0])
            return row

        if len({len(c) for rows in reads.values() for c in rows}) > 1 and any(
                len({len(c) for c in rows}) > 1 for rows in reads.values()):
            raise _NoMerge
        rows = {key: merged(reads[key]) for key in keys}
        for key in keys:  # an op must not overwrite a value its branch stood in for: `s = s + y`, not `s += y`
            node = keyed[key].outputs[0]
            if keyed[key].child:
                continue  # a module of its own: what it writes in place is its own class's affair
            if rows[key] and rows[key][0] in alias and node in self.net.graph:
                v.out_of_place.add(node)
            # nor overwrite its input where any variant may not (the first variant's node writes for all)
            if node in self.net.graph and any(n in self.net.graph and not self._inplace_ok(n) for n in nodes_of[key]):
                v.out_of_place.add(node)
        returned = merged(outputs)
        # each run of statements under one guard; a value a branch replaces is set before its run (`s = x`), or,
        # when nothing after the run reads it, the branch simply takes over its variable
        runs: list[list[str]] = []
        for key in keys:
            if runs and guard(key) and guard(runs[-1][0]) == guard(key):
                runs[-1].append(key)
            else:
                runs.append([key])
        stmts, tests, shared = [], [], {}
        tied = []
        for a, b in either.items():  # the later statement assigns the earlier one's variable
            later, earlier = (a, b) if keys.index(a) > keys.index(b) else (b, a)
            shared[node_of[later]] = node_of[earlier]
            tied.append((node_of[later], node_of[earlier]))
        for run in runs:
            test = v.tests[guard(run[0])][0] if guard(run[0]) else ""
            for key in run:
                if key not in alias:
                    continue
                source = alias[key]
                later = [k for k in keys[keys.index(run[-1]) + 1:] if source in rows[k]]
                if not later and source not in returned and source not in params:
                    shared[node_of[key]] = node_of[source]
                else:
                    stmts.append(Statement([node_of[key]], [node_of[source]], lambda a: a[0]))
                    tests.append("")
            for key in run:
                st = keyed[key]
                stmts.append(Statement([node_of[key]], [node_of[k] for k in rows[key]], st.render, child=st.child))
                tests.append(test)
        scope = self.net.scopes[reps[0].name]
        return self._forward(scope, stmts, tests, [node_of[k] for k in returned], shared, tuple(tied))

    def _key(self, name: str, scope: str) -> str:
        return name[len(scope) + 1:] if scope else name

    def _variant_doc(self, cls) -> list[str]:
        from .pytorch import _doc_text, _docstring
        return _docstring(f"Block `{cls.block}` of {_doc_text(self.net.source)}.", 4)

    @staticmethod
    def _fit_line(text: str, indent: int) -> str:
        from .pytorch import _fit
        return _fit(text, indent)


def _axes(value, n: int):
    """A per-axis size as a tuple of n (an int repeats); None where unknown."""
    if value is None:
        return None
    return value if isinstance(value, tuple) else (value,) * n


class _NoMerge(Exception):
    """The variants differ in a way one class with `if`s does not write: keep them apart."""


def _complementary(a: tuple, b: tuple) -> bool:
    """Are two guards the two branches of one condition (an `if` and its `else`)?"""
    return len(a) == len(b) == 1 and a[0][0] == b[0][0] and a[0][1] != b[0][1]


def _negated(text: str) -> str:
    """not (text), as a person writes it: `a == b` for `a != b`."""
    flip = {" != ": " == ", " == ": " != ", " < ": " >= ", " >= ": " < ", " > ": " <= ", " <= ": " > "}
    ops = [op for op in flip if op in text]
    if len(ops) == 1 and text.count(ops[0]) == 1 and not any(w in text for w in (" and ", " or ", "not ")):
        return text.replace(ops[0], flip[ops[0]])
    return f"not ({text})"


def _equalities(cond, taken: bool, out: list) -> None:
    """The (a, b) with a == b that a condition's outcome implies."""
    kind = cond[0] if cond else None
    if kind == "not":
        _equalities(cond[1], not taken, out)
    elif kind in ("and", "or") and taken == (kind == "and"):  # every part has the outcome of the whole
        for part in cond[1]:
            _equalities(part, taken, out)
    elif kind == "cmp" and len(cond[1]) == 1 and cond[1][0] == ("==" if taken else "!="):
        out.append((cond[2][0], cond[2][1]))


def _expanded(sym: Sym, lets: dict) -> Sym:
    for _ in range(len(lets) + 1):
        if not sym.names() & lets.keys():
            return sym
        sym = sym.subs(lets)
    return sym


def _integral(sym: Sym, ints: frozenset) -> bool:
    if sym.op == "num":
        return isinstance(sym.args[0], int) and not isinstance(sym.args[0], bool)
    if sym.op == "name":
        return sym.args[0] in ints
    if sym.op == "call":
        return sym.args[0] in ("int", "round", "floor", "ceil", "make_divisible", "len")
    if sym.op in ("+", "-", "*", "//", "%", "neg"):
        return all(_integral(a, ints) for a in sym.args)
    if sym.op == "if":
        return _integral(sym.args[1], ints) and _integral(sym.args[2], ints)
    return sym.op == "item"  # an element of a list of sizes


def _simplified(sym: Sym, ints: frozenset) -> Sym:
    """int(x) and round(x) of an integer x is x (`int(round(in_channels * 1))` is `in_channels`)."""
    if sym.op == "call":
        args = [_simplified(a, ints) for a in sym.args[1:]]
        if sym.args[0] in ("int", "round") and len(args) == 1 and _integral(args[0], ints):
            return args[0]
        return Sym("call", (sym.args[0], *args))
    if sym.op in ("name", "num"):
        return sym
    return sym.rebuild(lambda a: _simplified(a, ints))


def _canonical(tree, lets: dict, equal: list, ints: frozenset):
    """A constructor tree with each size in a form that two equal expressions share, given a variant's facts."""
    from .pytorch import Named

    def size(sym: Sym) -> Sym:
        sym = _simplified(_expanded(sym, lets), ints)
        for a, b in equal:  # one side for the other, never a name by an expression that holds it
            if a.op == "name" and a.args[0] not in b.names():
                sym = sym.subs({a.args[0]: b})
            elif b.op == "name" and b.args[0] not in a.names():
                sym = sym.subs({b.args[0]: a})
            else:
                sym = sym.replace({a: b})
        return _simplified(sym, ints)

    if isinstance(tree, Call):
        return ("call", tree.callee, tuple(_canonical(a, lets, equal, ints) for a in tree.args),
                tuple((k, _canonical(x, lets, equal, ints)) for k, x in tree.kwargs))
    if isinstance(tree, Named):
        return ("named", tuple((k, _canonical(x, lets, equal, ints)) for k, x in tree.items))
    if isinstance(tree, (list, tuple)):
        return tuple(_canonical(x, lets, equal, ints) for x in tree)
    if getattr(tree, "sym", None) is not None:
        return size(tree.sym)
    if isinstance(tree, Code):
        return ("code", str(tree))
    if isinstance(tree, (int, float)) and not isinstance(tree, bool):
        return size(Sym.num(tree))
    return ("value", repr(tree))


def _words(text: str) -> set[str]:
    import re
    return set(re.findall(r"[A-Za-z_]\w*", text))


def _ordered(items: dict, order: list[str]) -> list[str]:
    """The paths of items, by their first component's place in `order`, then as they came."""
    rank = {local: i for i, local in enumerate(order)}
    return sorted(items, key=lambda p: rank.get(p.split(".")[0], len(order)))


def _merge_orders(sequences: list[list[str]]) -> list[str] | None:
    """One order holding every sequence as a subsequence (keys in the order each variant runs them)."""
    order: list[str] = []
    for seq in sequences:
        at = 0
        for key in seq:
            if key in order:
                if order.index(key) < at:
                    return None
                at = order.index(key) + 1
            else:
                order.insert(at, key)
                at += 1
    return order


__all__ = ["VariantMerger", "Variants", "textwrap"]
