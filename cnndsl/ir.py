"""The IR: a networkx MultiDiGraph of named nodes in execution order, and the tree of scopes.

Node kinds are few and closed (as torch.fx's): "input" and "op". An op node's `op` is a key into the
op registry, which alone says what it means. Every node carries:

    name    hierarchical, dot-separated ("layer1.0.conv1"); the graph key
    kind    "input" | "op"
    op      registry name (None for inputs)
    attrs   validated, resolved attributes (kernel etc. expanded per axis)
    inputs  ordered input node names; mul(x, x) lists x twice (and has two parallel edges)
    type    TensorType of the output (shape without batch)
    span    where the user's text made it
    scope   name of the enclosing scope ("" for the network itself)

Passes add one documented attribute each (see cnndsl/passes). Network outputs are a name -> node map, in
declaration order; `training_outputs` names those present only in training mode (`training output`, as
GoogLeNet's auxiliary classifiers): `eval_outputs()` is the rest, and `training_nodes()` the nodes that only
training outputs need, which a model in eval mode does not run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import networkx as nx

from .errors import Span
from .types import TensorType


@dataclass
class Scope:
    """A named block instance, a sequence, or the network: the module tree the backends rebuild."""

    name: str  # full dotted name; "" for the network
    kind: str  # "network" | "block" | "sequence"
    # the block's name, for kind == "block"; for a sequence, the template block (`block f(...) = [...]`) that
    # made it, if one did (None for a plain `[...]`)
    block: str | None = None
    args: dict[str, Any] = field(default_factory=dict)  # the block's (template's) plain arguments, then plain locals
    children: list[str] = field(default_factory=list)  # direct child nodes and scopes, in order
    span: Span | None = None
    inputs: list[tuple[str, str]] = field(default_factory=list)  # (parameter name, node) of its tensor inputs
    outputs: list[str] = field(default_factory=list)  # the nodes it returns, in order
    # which run of a `for` statement made it (a number unique in the network), when the loop's body opened it
    # directly; siblings with the same number came from one loop (the PyTorch backend builds them by a loop)
    loop: int | None = None
    # a block instance's arguments as its caller computed them (numbers traced in the caller's terms, see
    # cnndsl.symbolic), `in_channels` among them: how the caller's generated code constructs it
    call: dict[str, Any] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)  # the block's parameters' literal defaults
    lets: dict[str, Any] = field(default_factory=dict)  # locals computed once: name -> traced value (Frame.lets)
    loop_length: Any = None  # the number of members its loop made, traced where range(n) of a parameter gave it
    # a template's scope: the prefix of the names its numbers are traced by (`cna#3.out`; its `call` is keyed by
    # the plain names); "" for a block instance, whose numbers are traced by its parameters' plain names
    tag: str = ""
    guard: tuple = ()  # the branches of its parent block's body it was made in: ((condition key, taken), ...)
    # the conditions its own body evaluated (a block): key -> (condition tree over syms, taken)
    conditions: dict[Any, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class InitScheme:
    """How an `init` rule fills a tensor: a scheme of cnndsl.init.SCHEMES ("kaiming_normal") and its arguments
    as written, in the scheme's order ((name, value), ...): numbers, strings, or an init.Formula of the layer's
    fan_in and fan_out (EfficientNet's `uniform(-1 / sqrt(fan_out), 1 / sqrt(fan_out))`)."""

    name: str
    args: tuple = ()


@dataclass(frozen=True)
class InitTarget:
    """One tensor an `init` rule sets. layer: the module that holds it ("layer1.0.conv1", a composite's inner
    layer "features.1.0.block.2.fc1", or the node itself for a tensor the enclosing module owns); local: its
    name in that layer ("weight", "" for the layer itself); tensor: its state_dict name; args: the scheme's
    arguments for this tensor, fan_in and fan_out substituted (numbers and strings only)."""

    layer: str
    kind: str
    local: str
    tensor: str
    shape: tuple
    scheme: InitScheme
    args: dict


@dataclass
class InitRule:
    """An `init` statement, resolved: which tensors it sets and how. Rules apply in order (a later one
    overrides an earlier one, as torchvision's model constructors run). `kinds` holds the op kinds it selects,
    when every selector is a kind over the whole network (a backend may loop over module types, as
    torchvision writes it); otherwise () and the targets are named layers."""

    span: Span
    text: str  # the selectors as written (for comments)
    kinds: tuple[str, ...]
    settings: tuple  # ((local tensor name, or None for the layer's weight, InitScheme), ...)
    targets: list[InitTarget] = field(default_factory=list)


@dataclass
class Network:
    name: str
    graph: nx.MultiDiGraph
    order: list[str]
    inputs: dict[str, str]
    outputs: dict[str, str]
    scopes: dict[str, Scope]
    params: dict[str, Any]
    source: str
    doc: str = ""
    warnings: list = field(default_factory=list)  # CnnWarnings found while elaborating (cnndsl.lint)
    overrides: list = field(default_factory=list)  # "name=value" of each --set and --input, as given
    # the parameters whose values shaped the network (a stage's depth, a switch, a count), not only sizes that
    # generated code can compute: its constructor cannot take them (cnndsl.symbolic, Evaluator.observe)
    fixed: set = field(default_factory=set)
    # of those, the ones read only as loops' counts: name -> the loops (Scope.loop numbers) they counted; where
    # every one is written as a loop over range(count), generated code can take them as arguments
    counted: dict = field(default_factory=dict)
    init: list = field(default_factory=list)  # InitRules, in order: the network's weight initialisation
    # boolean parameters read by conditions that choose only `init` rules: candidates for switches that generated
    # code takes as constructor arguments (cnndsl.init.switched decides)
    init_switches: set = field(default_factory=set)
    training_outputs: list = field(default_factory=list)  # names of the outputs present only in training
    is_traced: bool = False  # whether nodes and scopes keep how their numbers were computed (cnndsl.symbolic)
    # elaborate again, traced, with further --set values (remake() is this network, traced)
    remake: Callable[..., Network] | None = field(default=None, repr=False, compare=False)
    _traced: Network | None = field(default=None, repr=False, compare=False)

    def traced(self) -> Network:
        """This network with its numbers' expressions, which generated code reads (itself if it has them;
        elaborated again, once, otherwise)."""
        if self.is_traced or self.remake is None:
            return self
        if self._traced is None:
            self._traced = self.remake()
        return self._traced

    def eval_outputs(self) -> dict[str, str]:
        """The outputs present in eval mode (name -> node), in declaration order."""
        return {k: v for k, v in self.outputs.items() if k not in self.training_outputs}

    def training_nodes(self) -> set[str]:
        """The nodes that only training outputs need: no eval output depends on them (nodes no output needs are
        not among them: every layer applied runs)."""
        if not self.training_outputs:
            return set()
        needed = set(self.eval_outputs().values())
        needed |= {a for n in needed for a in nx.ancestors(self.graph, n)}
        train = {self.outputs[k] for k in self.training_outputs}
        train |= {a for n in train for a in nx.ancestors(self.graph, n)}
        return train - needed

    def node(self, name: str) -> dict:
        return self.graph.nodes[name]

    def nodes(self) -> Iterator[dict]:
        """Node attribute dicts in execution order."""
        for name in self.order:
            yield self.graph.nodes[name]

    def type_of(self, name: str) -> TensorType:
        return self.graph.nodes[name]["type"]


class IRError(AssertionError):
    """An IR invariant is broken: a compiler bug, never a user mistake."""


def lint_ir(net: Network) -> None:
    """Check the IR's invariants (run after elaboration and after every pass in tests)."""
    from .ops import REGISTRY

    g = net.graph
    if set(net.order) != set(g.nodes) or len(net.order) != len(g.nodes):
        raise IRError("execution order and graph nodes differ")
    position = {name: i for i, name in enumerate(net.order)}
    for name in net.order:
        data = g.nodes[name]
        for key in ("name", "kind", "op", "attrs", "inputs", "type", "span", "scope"):
            if key not in data:
                raise IRError(f"node {name} lacks '{key}'")
        if data["name"] != name:
            raise IRError(f"node {name} is named {data['name']}")
        if data["kind"] == "input":
            if data["inputs"] or data["op"] is not None:
                raise IRError(f"input {name} has inputs or an op")
        elif data["kind"] == "op":
            if data["op"] not in REGISTRY:
                raise IRError(f"node {name} has unknown op {data['op']}")
        else:
            raise IRError(f"node {name} has kind {data['kind']}")
        if not isinstance(data["type"], TensorType) or any(d < 1 for d in data["type"].shape):
            raise IRError(f"node {name} has type {data['type']}")
        for src in data["inputs"]:
            if src not in position or position[src] >= position[name]:
                raise IRError(f"node {name} reads {src}, which does not come before it")
        edges = sorted((d["index"], u) for u, _, d in g.in_edges(name, data=True))
        if [u for _, u in edges] != data["inputs"] or [i for i, _ in edges] != list(range(len(data["inputs"]))):
            raise IRError(f"edges into {name} disagree with its inputs")
        if data["scope"] not in net.scopes:
            raise IRError(f"node {name} is in unknown scope {data['scope']!r}")
    for out, node in net.outputs.items():
        if node not in g.nodes:
            raise IRError(f"output {out} names missing node {node}")
    if not set(net.training_outputs) <= set(net.outputs) or not net.eval_outputs():
        raise IRError(f"training outputs {net.training_outputs} are not a proper subset of the outputs")
    for name in net.inputs.values():
        if g.nodes[name]["kind"] != "input":
            raise IRError(f"input {name} is not an input node")
    if not nx.is_directed_acyclic_graph(g):
        raise IRError("the graph has a cycle")
