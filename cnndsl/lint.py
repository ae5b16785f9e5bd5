"""Warnings: things a .cnn file may legally say that are almost surely mistakes.

Each check returns CnnWarnings located in the user's text; elaboration attaches them to the Network,
the CLI prints them (`file:line:col: warning: ...`) and goes on, and `cnndsl.load` raises them as
Python warnings. The checks:

- a block or network parameter that its body never mentions (a typo, or a leftover); a name that
  starts with `_` says it is unused on purpose (a block that shares another's signature);
- a value given by `--set` or a preset that nothing read, so it changed nothing (`--set phi=2` on a
  preset that pins the width, depth and resolution phi would have set);
- a computed value that no output depends on (its layers are still built and counted);
- an input that no output depends on.
"""

from __future__ import annotations

from collections.abc import Iterable

import networkx as nx

from . import ast as A
from .errors import CnnWarning, Note, Span
from .ir import Network
from .ops import lookup
from .passes import op_call


def unused_parameters(defs: Iterable[A.BlockDef | A.TemplateDef | A.NetworkDef]) -> list[CnnWarning]:
    found = []
    for d in defs:
        body = d.value if isinstance(d, A.TemplateDef) else d.body
        mentioned = set(A.names_in([body, [p.default for p in d.params if p.default is not None]]))
        kind = "network" if isinstance(d, A.NetworkDef) else "block"
        for p in d.params:
            if p.name not in mentioned and not p.name.startswith("_"):
                found.append(CnnWarning(f"parameter '{p.name}' of {kind} '{d.name}' is never used (if that is on "
                                        f"purpose, name it '_{p.name}')", p.span))
    return found


def ineffective_settings(network: A.NetworkDef, given: dict[str, tuple[Span, str]], read: set[str]) -> list[CnnWarning]:
    """Values given for network parameters (name -> (span, 'by --set' | 'by preset X')) that were never read."""
    found = []
    for name, (span, how) in given.items():
        if name in read:
            continue
        readers = [p.name for p in network.params
                   if p.name in given and p.name != name and p.default is not None
                   and name in set(A.names_in(p.default))]
        if readers:
            listed = _and([f"'{r}'" for r in readers])
            by = _and(list(dict.fromkeys(given[r][1] for r in readers)))
            why = (f": only the default{'s' * (len(readers) > 1)} of {listed} read{'s' * (len(readers) == 1)} it, "
                   f"and {'they are' if len(readers) > 1 else 'it is'} given {by}")
            if all(given[r][1].startswith("by preset") for r in readers):
                why += f" (set it on the network '{network.name}' instead of the preset)"
        else:
            why = f": nothing in network '{network.name}' reads '{name}' with these settings"
        found.append(CnnWarning(f"'{name}' given {how} has no effect{why}", span))
    return found


def unreachable_values(net: Network) -> list[CnnWarning]:
    """Computed values and inputs that no output depends on, reported once per place in the text."""
    g = net.graph
    live = set(net.outputs.values())
    for out in net.outputs.values():
        live |= nx.ancestors(g, out)
    found, seen = [], set()
    for name in net.order:
        data = g.nodes[name]
        if name in live or (data["kind"] == "op" and g.out_degree(name)):
            continue  # an op that feeds others is reported at the end of its dead chain
        key = (data["span"].source.path, data["span"].line, data["span"].column)
        if key in seen:
            continue
        seen.add(key)
        if data["kind"] == "input":
            in_name = next(k for k, v in net.inputs.items() if v == name)
            found.append(CnnWarning(f"input '{in_name}' is never used: no output depends on it", data["span"]))
            continue
        dead = (nx.ancestors(g, name) | {name}) - live
        params = sum(p.numel for n in dead if g.nodes[n]["kind"] == "op"
                     for p in lookup(g.nodes[n]["op"]).params(op_call(net, n)) if p.kind != "buffer")
        who, span = _where_written(net, name)
        if span is not data["span"]:
            key = (span.source.path, span.line, span.column)
            if key in seen:
                continue
            seen.add(key)
        cost = f"; its layers are still built and counted ({params:,} parameters)" if params else ""
        found.append(CnnWarning(f"{who} is computed but never used: no output depends on it{cost}", span,
                                [Note(f"the network's outputs: {', '.join(net.outputs)}")]))
    return found


def _where_written(net: Network, name: str) -> tuple[str, Span]:
    """Who the user knows a dead value as, and where: a value a block or sequence returns is reported at
    the call that made it (the caller dropped it), up to the outermost such call."""
    data = net.node(name)
    who, span = (f"'{data['var']}'" if data.get("var") else f"'{name}' ({data['op']})"), data["span"]
    scope = net.scopes.get(data["scope"])
    while scope is not None and scope.kind != "network" and scope.outputs == [name] and scope.span is not None:
        who = f"the output of {'block ' + repr(scope.block) if scope.block else 'sequence'} '{scope.name}'"
        span = scope.span
        parent = scope.name.rpartition(".")[0]
        while parent not in net.scopes:
            parent = parent.rpartition(".")[0]
        scope = net.scopes[parent]
    return (f"'{data['assigned']}'" if data.get("assigned") else who), span


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def size_warning(net: Network, totals: dict) -> CnnWarning | None:
    """A network whose weights and peak live activations (float32, batch 1) need more than
    limits.MEMORY_WARN bytes: no machine runs it. `analyze` and `check` warn; `compile` refuses unless
    --force. Located at the node that holds the most (its parameters plus its output)."""
    from .limits import MEMORY_WARN
    from .passes.counts import param_count
    from .passes.memory import BYTES_PER_ELEMENT

    weights = (totals["params"] + totals["buffers"]) * BYTES_PER_ELEMENT
    needed = weights + totals["peak_activation_bytes"]
    if needed <= MEMORY_WARN:
        return None
    largest = max(net.nodes(), key=lambda d: d["bytes"] + param_count(d, ("trainable", "fixed", "buffer"))
                  * BYTES_PER_ELEMENT)
    peak = _bytes(totals["peak_activation_bytes"])
    return CnnWarning(f"the network needs {_bytes(needed)} ({needed:,} bytes) to run one sample in float32 "
                      f"({_bytes(weights)} of parameters and buffers, {peak} of live activations at the peak): "
                      f"more than any machine holds (the limit is {_bytes(MEMORY_WARN)}); the largest node is "
                      f"'{largest['name']}' ({largest['type']})", largest["span"])


def _bytes(n: int) -> str:
    for unit, size in (("EiB", 1024 ** 6), ("PiB", 1024 ** 5), ("TiB", 1024 ** 4), ("GiB", 1024 ** 3),
                       ("MiB", 1024 ** 2)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n:,} bytes"
