"""Receptive fields for every node of any DAG, per spatial axis: size, effective stride (jump) and
effective padding, following Araujo, Norris & Sim, "Computing Receptive Fields of Convolutional Neural
Networks", Distill 2019. For a window op with kernel k, stride s, dilation d and left padding p:

    size'    = size + d * (k - 1) * jump
    padding' = padding + p * jump
    jump'    = jump * s

Where paths merge (add, concat, mul) with unequal fields, the largest is kept per axis and the node is
marked `merged`. After a global op (global pooling, a fully connected layer on a flattened map,
attention) the field is "global". A gate (squeeze-excitation's channel scale, rule GATED) makes every
output depend on the whole input too, but keeps each position's own window: the field goes on growing
along the conv path and is marked `global_gate`, so EfficientNet's last feature map still reports the
field papers quote, flagged as also seeing the whole image. Nodes without spatial axes report
no field (None) until a global op, though the pass tracks their source grid internally (flatten, token
sequences after a patch embedding).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..ir import Network
from ..ops import GATED, GLOBAL, POINTWISE, Window, lookup
from . import op_call


@dataclass(frozen=True)
class ReceptiveField:
    size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    merged: bool = False  # paths with unequal fields meet at this node; the largest is reported
    exact: bool = True  # False after adaptive pooling with uneven windows
    global_gate: bool = False  # a gate upstream scales this position by a value computed from every position

    def as_dict(self) -> dict:
        return {"size": list(self.size), "stride": list(self.stride), "padding": list(self.padding),
                "global_gate": self.global_gate}


def merge(fields: list) -> object:
    known = [f for f in fields if f is not None]
    if not known:
        return None
    if any(f == GLOBAL for f in known):
        return GLOBAL
    if len({len(f.size) for f in known}) > 1:
        return GLOBAL  # grids of different rank meet only after a reshape that mixes positions
    widest = list(known[0].size)
    pick = [known[0]] * len(widest)
    for f in known[1:]:
        for axis, size in enumerate(f.size):
            if size > widest[axis]:
                widest[axis], pick[axis] = size, f
    unequal = any((f.size, f.stride, f.padding) != (known[0].size, known[0].stride, known[0].padding) for f in known)
    return ReceptiveField(
        tuple(widest), tuple(p.stride[a] for a, p in enumerate(pick)), tuple(p.padding[a] for a, p in enumerate(pick)),
        merged=unequal, exact=all(f.exact for f in known), global_gate=any(f.global_gate for f in known))


def step(field: ReceptiveField, w: Window) -> ReceptiveField:
    return ReceptiveField(
        size=tuple(s + d * (k - 1) * j for s, k, d, j in zip(field.size, w.kernel, w.dilation, field.stride)),
        stride=tuple(j * s for j, s in zip(field.stride, w.stride)),
        padding=tuple(p + q * j for p, q, j in zip(field.padding, w.padding, field.stride)),
        exact=field.exact and w.exact, global_gate=field.global_gate)


def run(net: Network) -> None:
    state: dict[str, object] = {}
    for data in net.nodes():
        name, t = data["name"], data["type"]
        if data["kind"] == "input":
            n = t.spatial_rank
            state[name] = ReceptiveField((1,) * n, (1,) * n, (0,) * n) if n else None
        else:
            incoming = merge([state[i] for i in data["inputs"]])
            rule = lookup(data["op"]).rf(op_call(net, name))
            if incoming == GLOBAL or incoming is None:
                state[name] = incoming if rule != GLOBAL or incoming == GLOBAL else None
                if rule != GLOBAL and isinstance(rule, Window) and incoming is None:
                    n = len(rule.kernel)
                    state[name] = step(ReceptiveField((1,) * n, (1,) * n, (0,) * n), rule)
            elif rule == POINTWISE:
                state[name] = incoming
            elif rule == GATED:
                state[name] = replace(incoming, global_gate=True)
            elif rule == GLOBAL:
                state[name] = GLOBAL
            else:
                state[name] = step(incoming, rule)
        if isinstance(state[name], ReceptiveField) and state[name].merged and len(data["inputs"]) < 2:
            state[name] = replace(state[name], merged=False)  # marked where paths meet, not downstream
        data["rf_state"] = state[name]
        s = state[name]
        data["rf"] = GLOBAL if s == GLOBAL else (s if isinstance(s, ReceptiveField) and t.spatial_rank else None)


def rf_json(rf) -> object:
    if rf is None or rf == GLOBAL:
        return rf
    return rf.as_dict()
