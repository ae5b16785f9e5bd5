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

from cnndsl.symbolic import Sym

from .pytorch_ops import Call, Code

COMPARISON = {"==": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


@dataclass
class Variants:
    """What a merged class writes: the variants' representative scopes, the conditions by key (Python text),
    and each guarded key's forward() test."""

    reps: list[str]
    conditions: dict  # key -> condition text
    tests: dict = field(default_factory=dict)  # key -> (test when taken, attribute or flag it reads)


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
        if conditions is None or self._children_order(reps) is None:
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
        for c in classes:
            for scope in c.instances:
                s = self.net.scopes[scope]
                merged.instances[scope] = {p: s.call[p] for p in params}
                self.class_of[scope] = merged

    def _variant_conditions(self, reps) -> dict | None:
        out: dict = {}
        for r in reps:
            with self._writing(r.name):
                for key, (cond, _) in r.conditions.items():
                    text = self._condition_text(cond, r.name)
                    if text is None or out.setdefault(key, text) != text:
                        return None
        return out

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
        v.tests = {}
        guard_of = dict(order)
        items: dict[str, object] = {}
        texts: dict[str, str] = {}
        used: set[str] = set()
        for r in reps:
            with self._writing(r.name):
                for path, expr in self._init_items(r):
                    if isinstance(expr, Call) or isinstance(expr, Code):
                        text = self._init_text(path, expr, 12 if guard_of.get(path.split(".")[0]) else 8)
                        if texts.setdefault(path, text) != text:
                            raise _NoMerge
                        items[path] = expr
                    else:
                        raise _NoMerge  # a loop: its count or arguments may differ
                used |= self._code_names(self._init_items(r)) & self._names(r.name)
        lets = self._lets(reps[0], used | {n for t in v.conditions.values() for n in _words(t)})
        lines = [f"{name} = {text}" for name, text in lets]
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
            cond = v.conditions[key] if taken else f"not ({v.conditions[key]})"
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
            cond = v.conditions[key] if taken else f"not ({v.conditions[key]})"
            lines.append(f"self.{flag} = {cond}")
        return lines

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

        def merged(columns: list[list[str]]) -> list[str]:
            row = []
            for position in range(len(columns[0])):
                seen = list(dict.fromkeys(c[position] for c in columns if position < len(c)))
                if len(seen) == 1:
                    row.append(seen[0])
                    continue
                guarded = [k for k in seen if guard(k)]
                other = [k for k in seen if not guard(k)]
                if len(seen) != 2 or len(guarded) != 1 or alias.setdefault(guarded[0], other[0]) != other[0]:
                    raise _NoMerge
                row.append(guarded[0])
            return row

        if len({len(c) for rows in reads.values() for c in rows}) > 1 and any(
                len({len(c) for c in rows}) > 1 for rows in reads.values()):
            raise _NoMerge
        rows = {key: merged(reads[key]) for key in keys}
        for key in keys:  # an op that overwrites its input must not overwrite a value the branch stood in for
            node = keyed[key].outputs[0]
            if rows[key] and rows[key][0] in alias and node in self.net.graph and self._inplace_ok(node):
                raise _NoMerge
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
        return self._forward(scope, stmts, tests, [node_of[k] for k in returned], shared)

    def _key(self, name: str, scope: str) -> str:
        return name[len(scope) + 1:] if scope else name

    def _variant_doc(self, cls) -> list[str]:
        from .pytorch import _doc_text, _docstring
        return _docstring(f"Block `{cls.block}` of {_doc_text(self.net.source)}.", 4)

    @staticmethod
    def _fit_line(text: str, indent: int) -> str:
        from .pytorch import _fit
        return _fit(text, indent)


class _NoMerge(Exception):
    """The variants differ in a way one class with `if`s does not write: keep them apart."""


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
