"""Reports of an analysed network: a terminal table grouped by block, JSON, Markdown and CSV."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

from .ir import Network
from .ops import GLOBAL
from .passes.counts import param_count
from .passes.receptive import ReceptiveField, rf_json


@dataclass
class Row:
    name: str  # full name (node or scope)
    label: str  # the last component, indented by depth in the table
    depth: int
    op: str
    shape: str
    params: int
    macs: int
    rf: object
    merged: bool = False
    training: bool = False  # only training outputs need it (its MACs are in training_macs, not in macs)


def rows(net: Network, depth: int) -> list[Row]:
    """One row per node or scope down to `depth`; deeper nodes are summed into their scope's row."""
    depth = max(1, depth)
    out: list[Row] = []
    by_name: dict[str, Row] = {}
    for data in net.nodes():
        parts = data["name"].split(".")
        for level in range(1, min(len(parts), depth + 1)):
            prefix = ".".join(parts[:level])
            scope = net.scopes.get(prefix)
            if prefix not in by_name and scope is not None:
                op = scope.block if scope.kind == "block" else scope.kind
                by_name[prefix] = Row(prefix, parts[level - 1], level - 1, op, "", 0, 0, None,
                                      training=data.get("training_only", False))
                out.append(by_name[prefix])
            if prefix in by_name:
                row = by_name[prefix]
                row.training = row.training and data.get("training_only", False)
                row.params += param_count(data)
                row.macs += data["macs"]
                row.shape, row.rf, row.merged = _shape(data), data["rf"], _merged(data)
        if len(parts) <= depth:
            row = Row(data["name"], parts[-1], len(parts) - 1, data["op"] or "input", _shape(data),
                      param_count(data), data["macs"], data["rf"], _merged(data), data.get("training_only", False))
            out.append(row)
    return out


def _op_text(row: Row) -> str:
    return f"{row.op} (training)" if row.training else row.op


def _outputs_text(net: Network) -> str:
    return ", ".join(f"{k} {net.type_of(v)}" + (" (training)" if k in net.training_outputs else "")
                     for k, v in net.outputs.items())


def _shape(data: dict) -> str:
    return str(data["type"])


def _merged(data: dict) -> bool:
    return isinstance(data["rf"], ReceptiveField) and data["rf"].merged


def _rf_text(rf, merged: bool = False) -> str:
    if rf is None:
        return "-"
    if rf == GLOBAL:
        return "global"
    text = "x".join(map(str, rf.size)) + " /" + "x".join(map(str, rf.stride))
    return text + ("*" if merged else "") + ("~" if not rf.exact else "") + (" g" if rf.global_gate else "")


def rf_words(rf) -> str:
    """A field as a sentence says it (the table's summary, the drawing's detail panel)."""
    if not isinstance(rf, ReceptiveField):
        return rf or "none"
    note = " (largest of merged paths)" if rf.merged else ""
    note += " (approximate: uneven adaptive pooling)" if not rf.exact else ""
    note += " (conv path; global gates upstream also let it see the whole input)" if rf.global_gate else ""
    return (f"{'x'.join(map(str, rf.size))}, stride {'x'.join(map(str, rf.stride))}, "
            f"padding {'x'.join(map(str, rf.padding))}{note}")


def last_spatial_fields(net: Network) -> dict[str, object]:
    """Per output: the output itself if it is spatial, else the last spatial node before it that still
    has a local field (the figure papers quote): a map (CxL, CxHxW, CxDxHxW), not a vector or a token
    sequence. Where every map before the output has a global field or there is none but the input (ViT),
    the op that turned the last map into tokens or a vector (ViT's patch embedding: the patch); else the
    output's own field ("global")."""
    import networkx as nx

    position = {n: i for i, n in enumerate(net.order)}
    found: dict[str, object] = {}

    def local(n: str) -> bool:
        return isinstance(net.node(n)["rf_state"], ReceptiveField) and net.node(n)["kind"] == "op"

    def spatial(n: str) -> bool:
        return net.node(n)["type"].spatial_rank > 0

    for out in net.outputs.values():
        candidates = sorted(nx.ancestors(net.graph, out) | {out}, key=position.get, reverse=True)
        pick = next((n for n in candidates if local(n) and spatial(n) and isinstance(net.node(n)["rf"],
                                                                                     ReceptiveField)), None)
        if pick is None:  # the map became tokens or a vector: the op that did it, where its field is still local
            pick = next((n for n in candidates if local(n) and not spatial(n)
                         and any(spatial(i) for i in net.node(n)["inputs"])), None)
        if pick is None:
            found[out] = net.node(out)["rf"]
        else:
            found[pick] = net.node(pick)["rf_state"]
    return found


# ---------------------------------------------------------------- formats


def _human(n: float, unit: str = "") -> str:
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {suffix}{unit}"
    return f"{n:g} {unit}".strip()


def _mib(n: int) -> str:
    return f"{n / 2**20:.2f} MiB"


def title(net: Network, doc: bool = True) -> str:
    """The network's name, the --set and --input values it was built with, and its description."""
    given = f" ({', '.join(net.overrides)})" if net.overrides else ""
    return f"{net.name}{given}" + (f": {net.doc}" if net.doc and doc else "")


def table(net: Network, totals: dict, depth: int) -> str:
    header = ("Layer", "Op", "Output", "Params", "MACs", "RF /stride")
    body = [(("  " * r.depth) + r.label, _op_text(r), r.shape, f"{r.params:,}" if r.params else "-",
             f"{r.macs:,}" if r.macs else "-", _rf_text(r.rf, r.merged)) for r in rows(net, depth)]
    widths = [max(len(str(line[i])) for line in [header, *body]) for i in range(len(header))]
    right = {3, 4}

    def fmt(line):
        cells = [str(c).rjust(w) if i in right else str(c).ljust(w) for i, (c, w) in enumerate(zip(line, widths))]
        return "  ".join(cells).rstrip()

    rule = "-" * len(fmt(header))
    lines = [title(net), rule, fmt(header), rule, *map(fmt, body), rule]
    t = totals
    mode = ", eval mode" if net.training_outputs else ""  # the training outputs' heads do not run in eval
    lines += [
        f"params            {t['params']:>16,}  (trainable {t['trainable_params']:,}, fixed {t['fixed_params']:,})",
        f"buffers           {t['buffers']:>16,}",
        f"MACs              {t['macs']:>16,}  ({_human(t['macs'])}{mode})",
        f"FLOPs             {t['flops']:>16,}  ({_human(t['flops'])}{mode})",
        f"activations       {t['activation_bytes']:>16,}  bytes "
        f"({_mib(t['activation_bytes'])}, float32, batch 1{mode})",
        f"peak live         {t['peak_activation_bytes']:>16,}  bytes ({_mib(t['peak_activation_bytes'])}{mode})",
    ]
    if net.training_outputs:
        heads = ", ".join(net.training_outputs)
        lines += [f"training MACs     {t['training_macs']:>16,}  ({_human(t['training_macs'])}, with {heads})",
                  f"training FLOPs    {t['training_flops']:>16,}  ({_human(t['training_flops'])}, with {heads})"]
    lines += [
        "inputs            " + ", ".join(f"{k} {net.type_of(v)}" for k, v in net.inputs.items()),
        "outputs           " + _outputs_text(net),
    ]
    for name, rf in last_spatial_fields(net).items():
        lines.append(f"receptive field   {name}: {rf_words(rf)}")
    legend = "RF column: size /effective stride; * = largest of merged paths; global = sees the whole input"
    if any(isinstance(d["rf"], ReceptiveField) and d["rf"].global_gate for d in net.nodes()):
        legend += "; g = a global gate (squeeze-excitation) upstream also lets it see the whole input"
    lines.append(legend)
    if net.training_outputs:
        lines.append("(training) = runs only in training mode, for a training output: its MACs are in training MACs")
    return "\n".join(lines)


def _plain(value):
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    from .elaborate import setting_text

    return setting_text(value)  # a block or an op: its name, as --set takes it


def as_json(net: Network, totals: dict) -> dict:
    layers = []
    for data in net.nodes():
        layers.append({
            "name": data["name"], "op": data["op"] or "input", "inputs": list(data["inputs"]),
            "shape": list(data["type"].shape), "params": param_count(data),
            "buffers": param_count(data, ("buffer",)), "macs": data["macs"], "flops": data["flops"],
            "bytes": data["bytes"], "rf": rf_json(data["rf"]), "rf_merged": _merged(data),
            "training_only": data.get("training_only", False),
        })
    return {
        "network": net.name,
        "source": net.source,
        "overrides": list(net.overrides),
        "parameters": {k: _plain(v) for k, v in net.params.items()},
        "inputs": {k: list(net.type_of(v).shape) for k, v in net.inputs.items()},
        "outputs": {k: list(net.type_of(v).shape) for k, v in net.outputs.items()},
        "training_outputs": list(net.training_outputs),
        "totals": {k: totals[k] for k in ("params", "trainable_params", "fixed_params", "buffers", "macs", "flops",
                                          "activation_bytes", "peak_activation_bytes", "training_macs",
                                          "training_flops")},
        "receptive_field": {k: rf_json(v) for k, v in last_spatial_fields(net).items()},
        "layers": layers,
    }


def json_text(net: Network, totals: dict) -> str:
    """Indented, with one line per layer: as readable, and json's C encoder writes the layers (with indent=
    the pure-Python encoder wrote them all, a tenth of a 10,000-layer analyze)."""
    doc = as_json(net, totals)
    layers = doc.pop("layers")
    head = json.dumps(doc, indent=2)[:-2]  # without its closing "\n}"
    return head + ',\n  "layers": [\n' + ",\n".join("    " + json.dumps(layer) for layer in layers) + "\n  ]\n}"


def markdown(net: Network, totals: dict, depth: int) -> str:
    lines = [f"## {title(net, doc=False)}", "", net.doc, "",
             "| layer | op | output | params | MACs | RF (size / stride) |", "| --- | --- | --- | ---: | ---: | --- |"]
    for r in rows(net, depth):
        name = "&nbsp;" * 4 * r.depth + f"`{r.label}`"
        lines.append(f"| {name} | {_op_text(r)} | {r.shape} | {r.params:,} | {r.macs:,} | {_rf_text(r.rf, r.merged)} |")
    t = totals
    lines += ["", "| total | value |", "| --- | ---: |"]
    for key in ("params", "trainable_params", "fixed_params", "buffers", "macs", "flops", "activation_bytes",
                "peak_activation_bytes", *(("training_macs", "training_flops") if net.training_outputs else ())):
        lines.append(f"| {key} | {t[key]:,} |")
    return "\n".join(lines)


def csv_text(net: Network, totals: dict) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["name", "op", "inputs", "shape", "params", "buffers", "macs", "flops", "bytes", "rf_size",
                "rf_stride", "rf_padding", "rf_global_gate", "training_only"])
    for data in net.nodes():
        rf = data["rf"]
        cells = (["global"] * 3 + [""] if rf == GLOBAL else
                 ["x".join(map(str, v)) for v in (rf.size, rf.stride, rf.padding)] + [str(rf.global_gate).lower()]
                 if rf else [""] * 4)
        shape = "x".join(map(str, data["type"].shape))
        w.writerow([data["name"], data["op"] or "input", " ".join(data["inputs"]), shape, param_count(data),
                    param_count(data, ("buffer",)), data["macs"], data["flops"], data["bytes"], *cells,
                    str(data.get("training_only", False)).lower()])
    return buf.getvalue()
