"""Activation memory: bytes of each node's output (float32, per sample) and the peak of live
activations over the execution order.

A tensor is live from the step that produces it to the last step that reads it; network outputs stay
live to the end. Ops with the "view" trait (flatten, dropout and stochastic depth at inference,
identity, slice) alias their input's storage instead of owning new memory, so they extend its life
rather than adding bytes. `activation_bytes` is the sum over storages (inputs included), and
`peak_activation_bytes` the largest sum of live storages at any step. Both are for eval mode: the nodes
that only training outputs need (counts.py's "training_only") have their "bytes" but are not counted.
"""

from __future__ import annotations

from ..ir import Network
from ..ops import lookup

BYTES_PER_ELEMENT = 4  # float32


def run(net: Network) -> dict:
    position = {name: i for i, name in enumerate(net.order)}
    owner: dict[str, str] = {}
    training = net.training_nodes()
    for data in net.nodes():
        name = data["name"]
        data["bytes"] = data["type"].numel * BYTES_PER_ELEMENT
        view = data["kind"] == "op" and "view" in lookup(data["op"]).traits
        owner[name] = owner[data["inputs"][0]] if view else name
        data["storage"] = owner[name]
    end = {name: position[name] for name in set(owner.values()) if name not in training}
    for data in net.nodes():
        if data["name"] in training:
            continue
        for src in data["inputs"]:
            end[owner[src]] = max(end[owner[src]], position[data["name"]])
    last = len(net.order) - 1
    for node in net.eval_outputs().values():
        end[owner[node]] = last
    delta = [0] * (len(net.order) + 1)
    for storage, stop in end.items():
        size = net.node(storage)["bytes"]
        delta[position[storage]] += size
        delta[stop + 1] -= size
    live = peak = 0
    for i, name in enumerate(net.order):
        live += delta[i]
        net.node(name)["live_bytes"] = live
        peak = max(peak, live)
    return {"activation_bytes": sum(net.node(s)["bytes"] for s in end), "peak_activation_bytes": peak}
