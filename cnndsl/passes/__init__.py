"""Analysis passes over the IR. Each reads the op specs and stores one documented attribute per node:

    counts.py     "params" [Param], "macs" int, "flops" int
    memory.py     "bytes" int (this node's output, float32), "storage" (the node owning its memory)
    receptive.py  "rf": None | "global" | ReceptiveField

`analyze(net)` runs them all and returns the network's totals.
"""

from __future__ import annotations

from ..ir import Network
from ..ops import OpCall, lookup


def op_call(net: Network, name: str) -> OpCall:
    """The OpCall a spec's rules expect, for an op node of the IR."""
    data = net.node(name)
    return OpCall(data["attrs"], [net.type_of(i) for i in data["inputs"]], data["type"])


def analyze(net: Network) -> dict:
    from . import counts, memory, receptive

    totals = counts.run(net)
    totals.update(memory.run(net))
    receptive.run(net)
    return totals


__all__ = ["analyze", "op_call", "lookup"]
