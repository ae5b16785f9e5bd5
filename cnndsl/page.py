"""The interactive page: one self-contained HTML file holding the drawing at every depth, folded and not,
with every layer's and block's details. No network access: the SVGs, the data and the small script
(cnndsl/page.html) are inline.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from importlib import resources

from .draw import compact, dot_source, escape, family, fold_range, layout, max_depth, scope_kind, \
    scope_nodes, value_text
from .errors import CnnError
from .ir import Network
from .passes.counts import param_count
from .report import rf_words


def _count(n: int) -> str:
    return f"{n:,}" + (f" ({compact(n)})" if n >= 1000 else "")


def node_details(net: Network, name: str) -> list[list[str]]:
    data = net.node(name)
    rows = [["name", name]]
    if data["kind"] == "input":
        return rows + [["kind", "network input"], ["shape", str(data["type"])]]
    rows += [["op", data["op"]], ["family", family(data["op"])[0]]]
    args = ", ".join(f"{k}={value_text(v)}" for k, v in data["attrs"].items() if k != "table")
    rows += [["arguments", args or "-"]]
    rows += [["inputs", "; ".join(f"{i} ({net.type_of(i)})" for i in data["inputs"])],
             ["output", str(data["type"])]]
    params = data.get("params", ())
    rows.append(["params", _count(param_count(data)) + "".join(
        f"; {(name + '.' + p.name) if p.name else name} {'x'.join(map(str, p.shape))}"
        + ("" if p.kind == "trainable" else f" ({p.kind})") for p in params)])
    rows += [["MACs", _count(data["macs"])], ["FLOPs", _count(data["flops"])],
             ["activation", f"{data['bytes']:,} bytes"], ["receptive field", rf_words(data["rf"])]]
    if data["span"] is not None:
        rows.append(["source", f"line {data['span'].line}, column {data['span'].column}"])
    return rows


def scope_details(net: Network, names: list[str]) -> list[list[str]]:
    first, last = net.scopes[names[0]], net.scopes[names[-1]]
    nodes = [n for s in names for n in scope_nodes(net, s)]
    params = sum(param_count(net.node(n)) for n in nodes)
    macs = sum(net.node(n)["macs"] for n in nodes)
    title = names[0] if len(names) == 1 else f"{fold_range(names)} ×{len(names)}"
    rows = [["name", title], ["kind", scope_kind(net, names[0]) + (" (folded repeats)" if len(names) > 1 else "")]]
    if len(names) > 1:
        rows.append(["members", ", ".join(names)])
    if first.args:
        rows.append(["arguments", ", ".join(f"{k}={_plain(v)}" for k, v in first.args.items())])
    rows += [["inputs", "; ".join(f"{p}: {net.type_of(n)}" for p, n in first.inputs) or "-"],
             ["outputs", "; ".join(str(net.type_of(n)) for n in last.outputs) or "-"],
             ["layers", f"{len(nodes):,}"], ["params", _count(params)], ["MACs", _count(macs)]]
    if last.outputs:
        rows.append(["receptive field", rf_words(net.node(last.outputs[-1])["rf"])])
    return rows


def _plain(value) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_plain(v) for v in value) + "]"
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value_text(value)
    from .values import describe

    return describe(value)


def _svg_body(svg: bytes) -> str:
    """dot's SVG without the XML prolog and doctype, ready to sit inside HTML."""
    text = svg.decode("utf-8")
    return text[text.index("<svg"):]


def page(net: Network, totals: dict, direction: str = "TB", start: int = 2) -> str:
    """The page, opening at depth `start` (folded)."""
    from .render import run_dot

    variants, sources = [], []
    for depth in range(1, max_depth(net) + 1):
        for fold in (True, False):
            try:
                lay = layout(net, depth, fold)
            except CnnError:
                if depth == 1 and fold:
                    raise  # not even the top level can be drawn
                continue  # too large to lay out: the page offers the depths that can be
            if not fold and not _folds(variants[-1]["layout"].items):
                continue  # nothing folds at this depth: one drawing serves both
            variants.append({"depth": depth, "fold": fold, "layout": lay})
            sources.append(dot_source(net, totals, depth, fold, direction))
    with ThreadPoolExecutor(max_workers=2) as pool:
        svgs = list(pool.map(lambda s: _svg_body(run_dot(s, "svg")), sources))

    details: dict[str, list] = {}
    for name in net.order:
        details["n-" + name] = node_details(net, name)
    for name, scope in net.scopes.items():
        if name:
            details["b-" + name] = details["c-" + name] = scope_details(net, [name])
    locate: dict[str, list] = {}
    for index, variant in enumerate(variants):
        for name, item in variant["layout"].shown.items():
            locate.setdefault(name, []).append([index, item])
        for run in _folds(variant["layout"].items):
            details.setdefault("f-" + run[0], scope_details(net, run))
    data = {
        "name": net.name,
        "variants": [{"depth": v["depth"], "fold": v["fold"]} for v in variants],
        "maxDepth": max(v["depth"] for v in variants),
        "start": start,
        "details": details,
        "locate": locate,
        "names": sorted(locate),
    }
    template = resources.files("cnndsl").joinpath("page.html").read_text(encoding="utf-8")
    drawings = "\n".join(f'<template id="variant-{i}">{svg}</template>' for i, svg in enumerate(svgs))
    payload = json.dumps(data, separators=(",", ":"), sort_keys=True).replace("</", "<\\/")
    return (template.replace("{{TITLE}}", escape(net.name + (f": {net.doc}" if net.doc else "")))
            .replace("{{DRAWINGS}}", drawings)
            .replace("{{DATA}}", payload))


def _folds(items) -> list[list[str]]:
    out = []
    for item in items:
        if item.kind == "fold":
            out.append(item.members)
        out += _folds(item.children)
    return out

