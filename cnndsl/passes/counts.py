"""Parameters, buffers, MACs and FLOPs of every node, from its op spec.

Conventions (DESIGN.md): parameters are trainable plus fixed (never trained, like LeNet-5's RBF
prototypes), reported apart; buffers (BN running statistics, num_batches_tracked) are not parameters,
as PyTorch counts them. One multiply-accumulate is 1 MAC, counted for conv, linear, attention's matrix
products and RBF distances, per sample. FLOPs are documented per op in the spec (`flops_doc`).

MACs and FLOPs count what runs in eval mode (inference), as torchvision's documented "GFLOPS" do: the nodes
that only training outputs need (GoogLeNet's auxiliary classifiers, `training output`) are left out of
`macs` and `flops` and counted in `training_macs` and `training_flops` (every node; equal to `macs` and
`flops` for a network without training outputs). Parameters and buffers count every node: the heads are
parameters of the model. Each node is marked "training_only" (bool).
"""

from __future__ import annotations

from ..ir import Network
from ..ops import lookup
from . import op_call


def run(net: Network) -> dict:
    totals = {"params": 0, "trainable_params": 0, "fixed_params": 0, "buffers": 0, "macs": 0, "flops": 0,
              "training_macs": 0, "training_flops": 0}
    training = net.training_nodes()
    for data in net.nodes():
        data["training_only"] = data["name"] in training
        if data["kind"] != "op":
            data.update(params=[], macs=0, flops=0)
            continue
        spec, call = lookup(data["op"]), op_call(net, data["name"])
        params = spec.params(call)
        data.update(params=params, macs=spec.macs(call), flops=spec.flops(call))
        for p in params:
            key = {"trainable": "trainable_params", "fixed": "fixed_params", "buffer": "buffers"}[p.kind]
            totals[key] += p.numel
        totals["training_macs"] += data["macs"]
        totals["training_flops"] += data["flops"]
        if not data["training_only"]:
            totals["macs"] += data["macs"]
            totals["flops"] += data["flops"]
    totals["params"] = totals["trainable_params"] + totals["fixed_params"]
    return totals


def param_count(data: dict, kinds=("trainable", "fixed")) -> int:
    return sum(p.numel for p in data.get("params", ()) if p.kind in kinds)
