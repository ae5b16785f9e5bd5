"""Drawings of an analysed network: what is drawn at a depth (the layout), and its Graphviz DOT text.

The layout reads the IR's scope tree and the op specs only: a scope whose name has fewer components than
`depth` is drawn open (a cluster), a deeper one as one box with its totals. A run of sibling blocks made by
one `for` (or the numbered members of a sequence) with the same body is folded into the first member,
marked "x N", unless `fold` is off. Which family an op belongs to and which of its arguments are worth
showing are facts of its spec (`OpSpec.category`, `OpSpec.shown`); this module only styles families.

Every drawn thing (a node, a collapsed block, a fold, a cluster) has a stable id, the same at every depth,
so that the interactive page (cnndsl.page) can find a layer in any of its drawings.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from html import escape as _xml_escape

from .errors import CnnError
from .ir import Network, Scope
from .ops import lookup
from .passes.counts import param_count
from .passes.receptive import ReceptiveField

# family -> (legend title, fill, border): colours stay the same across every drawing
FAMILIES = {
    "convolution": ("convolution", "#cfe2f3", "#3d85c6"),
    "normalization": ("normalisation", "#fff2cc", "#b7950b"),
    "activation": ("activation", "#fde3cf", "#e06c00"),
    "pooling": ("pooling", "#d9ead3", "#4f8a3c"),
    "resampling": ("resampling", "#d5f0e8", "#1e8a6e"),
    "merge": ("merge", "#e4dcf2", "#674ea7"),
    "attention": ("attention", "#f8d0d0", "#c0392b"),
    "linear": ("linear", "#d0e7ea", "#2e7d87"),
    "transformer": ("tokens", "#f3d9e8", "#a64d79"),
    "composite": ("composite", "#eadfd3", "#8a6d3b"),
    "regularization": ("regularisation", "#e8eaf6", "#7986cb"),
    "tensor": ("reshape", "#f0f0f0", "#8c8c8c"),
}
OTHER = ("other", "#f0f0f0", "#8c8c8c")
BLOCK_STYLE = ("#ffffff", "#3a3a3a")
IO_STYLE = ("#2f3b4c", "#2f3b4c")
SKIP_COLOUR = "#c0392b"
FONT = "Helvetica"
# Graphviz lays an edge label out as a node of its own: past this many edges (DenseNet unfolded) that makes
# dot take minutes, so larger drawings show each edge's shape as its tooltip instead
EDGE_LABELS_MAX = 300


# past this many boxes Graphviz takes minutes and nobody can read the result: a smaller --depth is the answer
DRAWN_MAX = 2_000
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def escape(text: str) -> str:
    """Text for a Graphviz HTML label: XML-escaped, control characters dropped (dot refuses some)."""
    return _xml_escape(_CONTROL.sub("", str(text)))


def family(op: str) -> tuple[str, str, str]:
    return FAMILIES.get(lookup(op).category, OTHER)


# ---------------------------------------------------------------- numbers as people read them


def compact(n: int) -> str:
    """3 significant figures with a unit: 9,408 -> 9.41k, 118,013,952 -> 118M."""
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            value = n / scale
            text = f"{value:.3g}" if value < 1000 else f"{value:.0f}"
            return text + suffix
    return str(n)


def value_text(value) -> str:
    """An attribute as a label shows it: (3, 3) -> 3x3, True -> true, 0.5 -> 0.5."""
    if isinstance(value, tuple) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return "x".join(map(str, value))
    if value is True or value is False:
        return str(value).lower()
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def shown_args(net: Network, name: str) -> list[tuple[str, str]]:
    """The arguments the op's spec says are worth showing, where they differ from the default (the
    kernel, which has none, always)."""
    data = net.node(name)
    spec = lookup(data["op"])
    out = []
    for arg_name in spec.shown:
        if arg_name not in data["attrs"]:
            continue
        value = data["attrs"][arg_name]
        arg = spec.arg(arg_name)
        if arg is not None and not arg.required and value in (arg.default, (arg.default,) * _length(value)):
            continue
        out.append((arg_name, value_text(value)))
    return out


def _length(value) -> int:
    return len(value) if isinstance(value, tuple) else 1


# ---------------------------------------------------------------- the layout


@dataclass
class Item:
    """One drawn thing: an IR node, a collapsed block ("box"), a fold or an open scope ("cluster")."""

    id: str
    kind: str  # "node" | "box" | "fold" | "cluster"
    name: str  # the node's or scope's name (a fold: its first member's)
    children: list["Item"] = field(default_factory=list)  # a cluster's contents
    members: list[str] = field(default_factory=list)  # a fold's scopes, in order
    open: bool = False  # a fold drawn with its first member expanded


@dataclass
class Layout:
    net: Network
    depth: int
    fold: bool
    items: list[Item]  # top level
    edges: list[tuple[str, str, str, str]]  # (from id, to id, tensor shape, "data" | "skip" | "shape")
    outputs: list[tuple[str, str]]  # (output name, id of the item that makes it)
    shown: dict[str, str]  # IR node or scope name -> the id of the item it is drawn as (itself or a box)
    families: list[str]


def max_depth(net: Network) -> int:
    """The depth at which every scope is open."""
    return 1 + max((len(name.split(".")) for name in net.scopes if name), default=0)


def scope_nodes(net: Network, scope: str) -> list[str]:
    """Every IR node under a scope, in execution order."""
    out, stack = [], [scope]
    while stack:
        for child in net.scopes[stack.pop()].children:
            if child in net.scopes:
                stack.append(child)
            else:
                out.append(child)
    return out


def _signature(net: Network, scope: str) -> tuple:
    """What must be equal for two sibling blocks to fold: the block, each node's relative name, op, shown
    arguments and relative inputs, and the output shapes (input shapes may differ: DenseNet's layers grow
    their input; stages that change the shape, such as ResNet-18's layer2..layer4, do not fold)."""
    s = net.scopes[scope]
    prefix = scope + "."
    nodes = []
    for name in scope_nodes(net, scope):
        data = net.node(name)
        inputs = tuple(i[len(prefix):] if i.startswith(prefix) else "<in>" for i in data["inputs"])
        args = tuple(shown_args(net, name)) if data["op"] else ()
        nodes.append((name[len(prefix):], data["op"], args, inputs))
    subscopes = tuple(sorted(n[len(prefix):] for n in net.scopes if n.startswith(prefix)))
    outputs = tuple(str(net.type_of(n)) for n in s.outputs)  # stages that change the shape stay apart
    return (s.block, s.kind, tuple(sorted(nodes)), subscopes, outputs)


def _runs(net: Network, scope: Scope) -> list[list[str]]:
    """Runs of >= 2 consecutive sibling scopes that fold: made by one loop (or numbered members of a
    sequence) with equal signatures. Plain nodes between members of a run belong to the run."""
    runs, current, sig_of = [], [], {}
    in_sequence = scope.kind == "sequence"

    def key(child):
        s = net.scopes[child]
        if s.loop is not None:
            return ("loop", s.loop)
        if in_sequence and child.rsplit(".", 1)[-1].isdigit():
            return ("sequence",)
        return None

    for child in scope.children:
        if child not in net.scopes:
            continue  # a plain node: runs may span it (DenseNet's concatenations between its layers)
        k = key(child)
        if k is not None:
            sig_of[child] = (k, _signature(net, child))
        if current and k is not None and sig_of[current[-1]] == sig_of[child]:
            current.append(child)
        else:
            if len(current) > 1:
                runs.append(current)
            current = [child] if k is not None else []
    if len(current) > 1:
        runs.append(current)
    return runs


def layout(net: Network, depth: int = 2, fold: bool = True) -> Layout:
    """What a drawing at `depth` shows. `net` must be analysed (cnndsl.passes.analyze)."""
    depth = max(1, depth)
    rep: dict[str, str | None] = {}  # IR node -> drawn item id (None: hidden inside an open fold)
    shown: dict[str, str] = {}
    member_of: dict[str, tuple[str, int]] = {}  # IR node -> (its open fold's first member, member index)

    def nodes_of(child: str) -> list[str]:
        return scope_nodes(net, child) if child in net.scopes else [child]

    def node_item(name: str) -> Item:
        item = Item("n-" + name, "node", name)
        rep[name] = item.id
        shown[name] = item.id
        return item

    def scope_items(scope: Scope, level: int) -> list[Item]:
        out: list[Item] = []
        position = {c: i for i, c in enumerate(scope.children)}
        spans = {run[0]: scope.children[position[run[0]]:position[run[-1]] + 1]
                 for run in (_runs(net, scope) if fold else [])}  # a run and the plain nodes between its members
        absorbed = {c for span in spans.values() for c in span}
        for child in scope.children:
            if child in spans:
                out.append(fold_item(spans[child], level))
            elif child in absorbed:
                continue
            elif child in net.scopes:
                out.append(scope_item(net.scopes[child], level))
            else:
                out.append(node_item(child))
        return out

    def scope_item(scope: Scope, level: int) -> Item:
        if level + 1 >= depth:  # drawn as one box
            item = Item("b-" + scope.name, "box", scope.name)
            for n in scope_nodes(net, scope.name):
                rep[n] = item.id
            shown[scope.name] = item.id
            return item
        item = Item("c-" + scope.name, "cluster", scope.name, scope_items(scope, level + 1))
        shown[scope.name] = item.id
        return item

    def fold_item(span: list[str], level: int) -> Item:
        run = [c for c in span if c in net.scopes]  # consecutive sibling scopes: the plain nodes lie between
        between = [n for c in span if c not in net.scopes for n in nodes_of(c)]
        first = run[0]
        if level + 1 >= depth:
            item = Item("f-" + first, "fold", first, members=run)
            for n in [*between, *(n for scope in run for n in scope_nodes(net, scope))]:
                rep[n] = item.id
            shown.update((scope, item.id) for scope in run)
            return item
        item = Item("f-" + first, "fold", first, [scope_item(net.scopes[first], level)], members=run, open=True)
        shown[first] = item.id  # the first member's cluster is drawn as the fold's
        for k, scope in enumerate(run):
            for n in scope_nodes(net, scope):
                member_of[n] = (first, k)
                if k:
                    rep[n] = rep[first + n[len(scope):]]
                    shown[scope] = item.id
        rep.update((n, None) for n in between)
        return item

    top = scope_items(net.scopes[""], 0)
    drawn = _count(top)
    if drawn > DRAWN_MAX:
        raise CnnError(f"the drawing of {net.name} at depth {depth} would have {drawn:,} boxes, more than "
                       f"Graphviz lays out in reasonable time (the limit is {DRAWN_MAX:,}): draw it with a "
                       f"smaller --depth" + ("" if fold else " or with folding on"))
    edges, seen = [], set()
    first_use: dict[str, str] = {}  # each node's first consumer of its value (shape-only reads aside)
    later_use: set[str] = set()  # nodes whose value is read again further on: the sources of skips
    for name in net.order:
        data = net.node(name)
        for src in data_inputs(data):
            if first_use.setdefault(src, name) != name:
                later_use.add(src)
    for name in net.order:
        data = net.node(name)
        target = rep.get(name)
        values = data_inputs(data)
        for src in dict.fromkeys(data["inputs"]):
            origin = rep.get(src)
            if origin is None or target is None or origin == target:
                continue
            if src in member_of and name in member_of and member_of[src][0] == member_of[name][0] \
                    and member_of[src][1] != member_of[name][1]:
                continue  # from one member of an open fold to the next: drawn once, inside the first
            if (origin, target) in seen:
                continue
            seen.add((origin, target))
            if src not in values:
                kind = "shape"  # crop reads only its reference's size
            elif (src in later_use and first_use[src] != name and len(data["inputs"]) > 1
                  and target == "n-" + name):
                kind = "skip"  # a value read again where paths meet: a shortcut (ResNet, DenseNet, U-Net)
            else:
                kind = "data"
            edges.append((origin, target, str(net.type_of(src)), kind))
    outputs = [(out, rep[node]) for out, node in net.outputs.items() if rep.get(node)]
    families = sorted({lookup(net.node(n)["op"]).category for n, i in rep.items()
                       if i is not None and i.startswith("n-") and net.node(n)["op"]},
                      key=lambda c: list(FAMILIES).index(c) if c in FAMILIES else len(FAMILIES))
    return Layout(net, depth, fold, top, edges, outputs, shown, families)


def data_inputs(data: dict) -> list[str]:
    """The inputs whose values reach the node's output (crop reads only its second input's shape)."""
    return data["inputs"] if data["op"] is None else data["inputs"][:lookup(data["op"]).rf_inputs]


def _has_boxes(items: list[Item]) -> bool:
    return any(i.kind == "box" or (i.kind == "fold" and not i.open) or _has_boxes(i.children) for i in items)


def _count(items: list[Item]) -> int:
    return sum(1 + _count(i.children) for i in items)


# ---------------------------------------------------------------- DOT


def _scope_totals(net: Network, names: list[str]) -> tuple[int, int]:
    params = macs = 0
    for scope in names:
        for n in scope_nodes(net, scope):
            data = net.node(n)
            params += param_count(data)
            macs += data["macs"]
    return params, macs


def _scope_io(net: Network, scope: str) -> tuple[str, str]:
    s = net.scopes[scope]
    ins = ", ".join(str(net.type_of(n)) for _, n in s.inputs) or "-"
    outs = ", ".join(str(net.type_of(n)) for n in s.outputs) or "-"
    return ins, outs


def _html_label(rows: list[str]) -> str:
    return "<" + '<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="1">' + \
        "".join(f"<TR><TD>{r}</TD></TR>" for r in rows) + "</TABLE>>"


def _small(text: str, colour: str = "#555555") -> str:
    return f'<FONT POINT-SIZE="9" COLOR="{colour}">{escape(text)}</FONT>'


def _short(name: str) -> str:
    """A name as its enclosing cluster shows it: the last component, back to a word for numbered members of
    sequences (`layer1.0`, `downsample.1`, `features.0.2`: never a bare `0.2`, which reads as a number)."""
    parts = name.split(".")
    keep = 1
    while keep < len(parts) and parts[-keep].isdigit():
        keep += 1
    return ".".join(parts[-keep:])


def fold_range(members: list[str]) -> str:
    return f"{_short(members[0])} … {_short(members[-1])}"


def _node_attrs(net: Network, name: str) -> dict[str, str]:
    data = net.node(name)
    if data["kind"] == "input":
        fill, border = IO_STYLE
        rows = [f'<FONT COLOR="white"><B>{escape(name)}</B></FONT>',
                f'<FONT COLOR="white" POINT-SIZE="10">input {escape(str(data["type"]))}</FONT>']
        return dict(label=_html_label(rows), shape="box", style="filled,rounded", fillcolor=fill, color=border)
    _, fill, border = family(data["op"])
    short = _short(name)
    auto = short == data["op"] or short.startswith(data["op"] + "_")  # an auto-name says only the op
    rows = [f"<B>{escape(short)}</B>" + ("" if auto else f"  {escape(data['op'])}")]
    args = ", ".join(f"{k} {v}".strip() for k, v in shown_args(net, name))
    if args:
        rows.append(escape(args))
    params = param_count(data)
    facts = [str(data["type"])] + ([f"{compact(params)} params"] if params else []) + \
        ([f"{compact(data['macs'])} MACs"] if data["macs"] else [])
    rows.append(_small(" · ".join(facts)))
    return dict(label=_html_label(rows), shape="box", style="filled,rounded", fillcolor=fill, color=border)


def scope_kind(net: Network, name: str) -> str:
    """What a scope is, in a few words: its block, or "3 x bottleneck" for a sequence of equal blocks."""
    scope = net.scopes[name]
    if scope.block:
        return scope.block
    blocks = {net.scopes[c].block or net.scopes[c].kind if c in net.scopes else None for c in scope.children}
    if scope.kind == "sequence" and len(blocks) == 1 and None not in blocks:
        count = len(scope.children)
        return f"{count} × {blocks.pop()}" if count > 1 else blocks.pop()
    return scope.kind


def _box_attrs(net: Network, scopes: list[str]) -> dict[str, str]:
    kind = scope_kind(net, scopes[0])
    ins, _ = _scope_io(net, scopes[0])
    _, outs = _scope_io(net, scopes[-1])
    params, macs = _scope_totals(net, scopes)
    title = escape(_short(scopes[0])) if len(scopes) == 1 else f"{escape(fold_range(scopes))}  <B>×{len(scopes)}</B>"
    rows = [f"<B>{title}</B>  <I>{escape(kind)}</I>", _small(f"{ins} → {outs}", "#333333"),
            _small(" · ".join([f"{compact(params)} params"] + ([f"{compact(macs)} MACs"] if macs else [])))]
    fill, border = BLOCK_STYLE
    attrs = dict(label=_html_label(rows), shape="box", style="filled,rounded,bold", fillcolor=fill, color=border)
    if len(scopes) > 1:
        attrs.update(peripheries="2")
    return attrs


def title_label(net: Network, totals: dict, families: list[str], edges: set[str] = frozenset(),
                boxes: bool = True) -> str:
    """The title block: name, doc line, totals, and the legend of what is drawn (families, collapsed blocks,
    skip and size-only edges)."""
    rf = _summary_rf(net)
    line = " · ".join([f"{totals['params']:,} params", f"{compact(totals['macs'])} MACs",
                       f"peak activations {totals['peak_activation_bytes'] / 2**20:.2f} MiB",
                       f"receptive field {rf}"])
    cells = "".join(f'<TD BGCOLOR="{FAMILIES.get(f, OTHER)[1]}" BORDER="1" COLOR="{FAMILIES.get(f, OTHER)[2]}">'
                    f'<FONT POINT-SIZE="10">{escape(FAMILIES.get(f, OTHER)[0])}</FONT></TD>' for f in families)
    if boxes:
        cells += f'<TD BGCOLOR="{BLOCK_STYLE[0]}" BORDER="1"><FONT POINT-SIZE="10">block (collapsed)</FONT></TD>'
    if "skip" in edges:
        cells += f'<TD><FONT POINT-SIZE="10" COLOR="{SKIP_COLOUR}">→ skip</FONT></TD>'
    if "shape" in edges:
        cells += '<TD><FONT POINT-SIZE="10" COLOR="#9a9a9a">⇢ size only</FONT></TD>'
    if not cells:
        cells = "<TD></TD>"
    rows = [f'<TR><TD><FONT POINT-SIZE="18"><B>{escape(net.name)}</B></FONT></TD></TR>']
    if net.doc:
        rows.append(f'<TR><TD><FONT POINT-SIZE="11">{escape(net.doc)}</FONT></TD></TR>')
    rows.append(f'<TR><TD><FONT POINT-SIZE="11">{escape(line)}</FONT></TD></TR>')
    rows.append('<TR><TD><TABLE BORDER="0" CELLSPACING="3" CELLPADDING="3"><TR>' + cells + "</TR></TABLE></TD></TR>")
    return '<<TABLE BORDER="0" CELLSPACING="2">' + "".join(rows) + "</TABLE>>"


def _summary_rf(net: Network) -> str:
    from .report import last_spatial_fields

    parts = []
    for name, rf in last_spatial_fields(net).items():
        if isinstance(rf, ReceptiveField):
            parts.append("x".join(map(str, rf.size)) + f" at {name}")
        else:
            parts.append(f"{rf or 'none'}")
    return "; ".join(parts)


def dot_source(net: Network, totals: dict, depth: int = 2, fold: bool = True, direction: str = "TB") -> str:
    """The DOT text of the drawing (deterministic: same network and options, same bytes)."""
    import graphviz

    lay = layout(net, depth, fold)
    g = graphviz.Digraph(net.name, format="svg")
    g.attr(rankdir=direction, fontname=FONT, labelloc="t", labeljust="c", nodesep="0.2", ranksep="0.16",
           label=title_label(net, totals, lay.families, {kind for *_, kind in lay.edges}, _has_boxes(lay.items)),
           tooltip=net.name, newrank="true")
    g.attr("node", fontname=FONT, fontsize="11", margin="0.1,0.01", height="0.3", penwidth="1.2")
    g.attr("edge", fontname=FONT, fontsize="7", fontcolor="#666666", color="#555555", arrowsize="0.6")

    def emit(graph, item: Item) -> None:
        if item.kind == "node":
            graph.node(item.id, id=item.id, tooltip=item.name, **_node_attrs(net, item.name))
        elif item.kind == "box":
            graph.node(item.id, id=item.id, tooltip=item.name, **_box_attrs(net, [item.name]))
        elif item.kind == "fold" and not item.open:
            graph.node(item.id, id=item.id, tooltip=fold_range(item.members), **_box_attrs(net, item.members))
        else:  # an open scope; an open fold is its first member's cluster, dashed and marked xN
            inner = item.children[0] if item.kind == "fold" else item
            kind = escape(scope_kind(net, inner.name))
            if item.kind == "fold":
                title, style = f"{escape(fold_range(item.members))}  ×{len(item.members)}", "rounded,dashed,bold"
            else:
                title, style = escape(_short(item.name)), "rounded"
            with graph.subgraph(name="cluster_" + item.id) as sub:
                sub.attr(id=item.id, label=f"<<B>{title}</B>  <I>{kind}</I>>", style=style,
                         color="#3a3a3a" if item.kind == "fold" else "#9a9a9a",
                         bgcolor="#fbfbfb" if item.name.count(".") % 2 == 0 else "#f3f3f3",
                         fontname=FONT, fontsize="11", tooltip=item.name, margin="10", labeljust="l")
                for child in inner.children:
                    emit(sub, child)

    for item in lay.items:
        emit(g, item)
    for out, origin in lay.outputs:
        node = net.outputs[out]
        fill, border = IO_STYLE
        g.node("o-" + out, id="o-" + out, label=_html_label([
            f'<FONT COLOR="white"><B>{escape(out)}</B></FONT>',
            f'<FONT COLOR="white" POINT-SIZE="10">output {escape(str(net.type_of(node)))}</FONT>']),
            shape="box", style="filled,rounded", fillcolor=fill, color=border, tooltip=out)
        g.edge(origin, "o-" + out, color=IO_STYLE[1], penwidth="1.5")
    labelled = len(lay.edges) <= EDGE_LABELS_MAX
    outs = Counter(src for src, _, _, kind in lay.edges if kind != "shape")
    ins = Counter(dst for _, dst, _, kind in lay.edges if kind != "shape")
    for src, dst, shape, kind in lay.edges:
        # a link of a plain chain shows no label: its shape is the last line of the box above it
        chain = outs[src] == 1 and ins[dst] == 1 and kind == "data"
        attrs = dict(label=" " + shape) if labelled and not chain else dict(tooltip=shape)
        if kind == "skip":
            attrs.update(color=SKIP_COLOUR, fontcolor=SKIP_COLOUR, penwidth="1.6", style="bold", weight="0")
        elif kind == "shape":
            attrs.update(label=" size of", style="dashed", color="#9a9a9a", fontcolor="#9a9a9a", weight="0",
                         tooltip=f"only its size is read ({shape})")
        g.edge(src, dst, **attrs)
    # the digest of everything above travels into the SVG as a comment: docs/gallery is checked by it
    g.attr(comment=f"drawn by cnndsl graph: {net.name}, depth {depth}, {'folded' if fold else 'unfolded'}, "
                   f"{direction}; fingerprint {fingerprint(g.source)}")
    return g.source


def fingerprint(source: str) -> str:
    """A digest of a drawing's DOT text (before the comment that carries it)."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]


def fingerprint_in(text: str) -> str | None:
    """The fingerprint a drawing (DOT or SVG) carries, if any."""
    import re

    found = re.search(r"fingerprint ([0-9a-f]{16})", text)
    return found.group(1) if found else None
