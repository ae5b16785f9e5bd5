"""PyTorch emission of a network's weight initialisation (its `init` rules, Network.init; see cnndsl/init.py).

`init_lines(net, block_classes, rules)` gives the statements that end the top module's __init__, written the
way torchvision's model files write them:

    for m in self.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
    nn.init.zeros_(self.heads.head.weight)

A rule that selects op kinds over the whole network becomes an `isinstance` branch when the module classes
of the layers it selects (from the emitter table: each op's constructor, and the inner layers a composite's
module holds, TorchOp.layers) hold no other layer of the model; consecutive such rules on disjoint classes
share one loop, so later rules still override earlier ones. A rule that selects the same layers in every
instance of a generated class (`init bn3 in bottleneck`) becomes an `isinstance(m, Bottleneck)` branch on them
(`m.bn3.weight`). Any other rule sets the tensors it resolved to, by name. Rules that a boolean network parameter
switches on or off, and nothing else (cnndsl.init.switched), stand under `if zero_init_residual:`. Either way the
generated module sets exactly the tensors the IR's rules name, in the rules' order.
"""

from __future__ import annotations

import ast
import itertools
import keyword
from pathlib import Path

from cnndsl.init import FANS, SCHEMES, Formula, layers
from cnndsl.ir import InitRule, Network

from .pysource import string
from .pytorch_ops import EMITTERS, Ctx, render

WIDTH = 110
LOOP = "m"


def _helper_bases() -> dict[str, list[str]]:
    """Generated helper classes -> the classes they derive from (PatchEmbed is an nn.Conv2d)."""
    tree = ast.parse(Path(__file__).with_name("pytorch_helpers.py").read_text(encoding="utf-8"))
    return {node.name: [ast.unparse(b) for b in node.bases] for node in tree.body if isinstance(node, ast.ClassDef)}


def _ancestors(cls: str, bases: dict[str, list[str]]) -> set[str]:
    out, todo = set(), [cls]
    while todo:
        c = todo.pop()
        if c not in out:
            out.add(c)
            todo.extend(bases.get(c, []))
    return out


def layer_classes(net: Network) -> dict[str, str | None]:
    """Every layer's module class (layer path -> class; None where the tensor belongs to the enclosing module
    or the emitter does not say), from the emitter table."""
    out: dict[str, str | None] = {}
    for layer in layers(net):
        data = net.node(layer.node)
        op = EMITTERS.get(data["op"])
        cls = None
        if op is not None:
            ctx = Ctx(data["attrs"], [net.type_of(i) for i in data["inputs"]], data["type"], layer.node)
            if layer.path == layer.node:
                cls = op.module(ctx).callee if op.module is not None and op.owner_param is None else None
            else:
                cls = op.layers(ctx).get(layer.path[len(layer.node) + 1:])
        out[layer.path] = cls
    return out


def init_lines(net: Network, block_classes: dict[str, str], rules: list) -> list[str]:
    """The statements that end the top module's __init__ (no indentation; [] without `init` rules).
    `block_classes`: the generated class of each block instance (scope name -> class), for rules that select
    a layer in every instance of a block (`for m in self.modules(): if isinstance(m, Bottleneck): ...`);
    `rules`: cnndsl.init.switched(net), each rule with the switch it stands under."""
    if not any(rule.targets for rule, _ in rules):
        return []
    lines = [f"# weight initialisation: the `init` rules of {net.source}"]
    for when, group in itertools.groupby(rules, key=lambda pair: pair[1]):
        body = _rule_lines([rule for rule, _ in group], net, block_classes)
        if when is None:
            lines += body
        elif body:  # a switch the constructor takes (cnndsl.init.switched), as torchvision's zero_init_residual
            name, value = when
            lines += [f"if {'' if value else 'not '}{name}:", *("    " + line for line in body)]
    return lines


def _rule_lines(rules: list[InitRule], net: Network, block_classes: dict[str, str]) -> list[str]:
    classes = layer_classes(net)
    bases = _helper_bases()
    lines: list[str] = []
    loop: list[tuple[tuple[str, ...], list[str]]] = []  # (classes, branch body) of the open loop

    def close():
        if loop:
            lines.append(f"for {LOOP} in self.modules():")
            for i, (cls, body) in enumerate(loop):
                test = cls[0] if len(cls) == 1 else f"({', '.join(cls)})"
                lines.append(f"    {'el' if i else ''}if isinstance({LOOP}, {test}):")
                lines.extend("        " + b for b in body)
            loop.clear()

    for rule in rules:
        if not rule.targets:
            continue
        cls = _by_class(rule, classes, bases)
        if cls is not None:
            taken = {c for c_, _ in loop for c in c_}
            if any(_ancestors(c, bases) & set(cls) for c in taken) or any(_ancestors(c, bases) & taken for c in cls):
                close()  # a module could take two branches: a new loop keeps the rules' order
            loop.append((cls, _branch(rule)))
            continue
        close()
        lines.extend(_by_block(rule, block_classes) or _by_name(rule))
    close()
    return lines


def _by_block(rule: InitRule, block_classes: dict[str, str]) -> list[str] | None:
    """A rule that selects layers by name inside instances of blocks (`init bn3 in bottleneck, bn2 in basic_block`),
    as torchvision's ResNet writes it: `for m in self.modules(): if isinstance(m, Bottleneck):
    nn.init.constant_(m.bn3.weight, 0)`. Only where every instance of each generated class has the same tensors
    selected, and there are several (else the names are listed: _by_name)."""
    if not block_classes:
        return None
    chosen: dict[str, dict[str, set[tuple[str, str]]]] = {}  # class -> instance -> {(layer inside, tensor)}
    for t in rule.targets:
        parts = t.layer.split(".")
        scope = next((".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)
                      if ".".join(parts[:i]) in block_classes), None)
        if scope is None or not t.local:
            return None
        inner = t.layer[len(scope) + 1:]
        chosen.setdefault(block_classes[scope], {}).setdefault(scope, set()).add((inner, t.local))
    if sum(len(instances) for instances in chosen.values()) < 2:
        return None  # one layer: by its name (`self.AuxLogits.fc.weight`)
    for cls, instances in chosen.items():
        every = {s for s, c in block_classes.items() if c == cls}
        if set(instances) != every or len({frozenset(v) for v in instances.values()}) != 1:
            return None
    body = []
    for i, (cls, instances) in enumerate(chosen.items()):
        picked = next(iter(instances.values()))
        inners = sorted({inner for inner, _ in picked})
        calls = []
        for local, sch in rule.settings:
            name = local if local is not None else "weight"
            for inner in inners:
                if (inner, name) in picked:
                    calls += _fans(sch, _member(inner + ".weight")) + [_call(sch, _member(f"{inner}.{name}"))]
        body += [f"    {'el' if i else ''}if isinstance({LOOP}, {cls}):", *("        " + c for c in calls)]
    return [f"for {LOOP} in self.modules():", *body]


def _member(tensor: str) -> str:
    """`m.bn3.weight`, `m.mlp[0].weight` (a position in an nn.Sequential), or m.get_parameter("...") where a name
    is neither an attribute nor a position."""
    parts = tensor.split(".")
    if all((p.isidentifier() and not keyword.iskeyword(p)) or p.isdigit() for p in parts) and not parts[0].isdigit():
        return LOOP + "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in parts)
    return f"{LOOP}.get_parameter({string(tensor)})"


def _by_class(rule: InitRule, classes: dict, bases: dict) -> tuple[str, ...] | None:
    """The module classes an isinstance branch for the rule tests, when those classes hold exactly the layers
    it selects (and each selected layer has every tensor the rule sets, or lacks it as None); else None."""
    if not rule.kinds:
        return None
    chosen = {t.layer for t in rule.targets}
    wanted = []
    for path in chosen:
        if classes.get(path) is None:
            return None
        wanted.append(classes[path])
    wanted = tuple(sorted(set(wanted)))
    for path, cls in classes.items():
        if path not in chosen and cls is not None and _ancestors(cls, bases) & set(wanted):
            return None
    for local, _ in rule.settings:
        name = local if local is not None else "weight"
        have = {t.layer for t in rule.targets if t.local == name}
        if have != chosen and name not in ("weight", "bias"):
            return None
    return wanted


def _branch(rule: InitRule) -> list[str]:
    chosen = {t.layer for t in rule.targets}
    body = []
    for local, sch in rule.settings:
        name = local if local is not None else "weight"
        have = {t.layer for t in rule.targets if t.local == name}
        if not have:
            continue
        tensor = f"{LOOP}.{name}"
        call = _fans(sch, f"{LOOP}.weight") + [_call(sch, tensor)]
        if have != chosen:
            body += [f"if {tensor} is not None:", *("    " + c for c in call)]
        else:
            body += call
    return body


def _by_name(rule: InitRule) -> list[str]:
    lines = []
    for local, sch in rule.settings:
        targets = [t for t in rule.targets if t.scheme is sch and t.local == (local if local is not None else t.local)
                   and (local is not None or t.local in ("weight", ""))]
        if not targets:
            continue
        uses_fan = any(isinstance(v, Formula) for _, v in sch.args)
        if len(targets) <= 3 or uses_fan:
            for t in targets:
                weight = t.tensor if t.local == "" else f"{t.layer}.weight"
                lines += _fans(sch, _access(weight)) + [_call(sch, _access(t.tensor))]
            continue
        names = [string(t.tensor) for t in targets]
        head = "for name in (" + ", ".join(names) + "):"
        if len(head) > WIDTH - 8:
            lines.append("for name in (")
            row = ""
            for n in names:
                if row and len(row) + len(n) + 2 > WIDTH - 12:
                    lines.append("    " + row.rstrip())
                    row = ""
                row += n + ", "
            lines += ["    " + row.rstrip(), "):"]
        else:
            lines.append(head)
        lines.append("    " + _call(sch, "self.get_parameter(name)"))
    return lines


def _access(tensor: str) -> str:
    """`self.heads.head.weight`, or self.get_parameter("layer1.0.bn3.weight") where a name is not an attribute."""
    parts = tensor.split(".")
    if all(p.isidentifier() and not keyword.iskeyword(p) for p in parts):
        return "self." + tensor
    return f"self.get_parameter({string(tensor)})"


def _fans(sch, weight: str) -> list[str]:
    used = set().union(*(v.uses() for _, v in sch.args if isinstance(v, Formula)))
    out = []
    if "fan_in" in used:
        out.append(f"fan_in = {weight}[0].numel()")
    if "fan_out" in used:
        out.append(f"fan_out = {weight}.shape[0] * {weight}[0][0].numel()")
    return out


def _call(sch, tensor: str) -> str:
    args = dict(sch.args)
    if sch.name == "constant":
        return f"nn.init.constant_({tensor}, {_value(args['value'])})"
    parts = [tensor]
    for key, default in SCHEMES[sch.name]:
        value = args[key]
        if isinstance(value, Formula) or value != default:
            parts.append(f"{key}={_value(value)}")
    return f"nn.init.{sch.name}_({', '.join(parts)})"


def _value(v) -> str:
    if isinstance(v, Formula):
        return _formula(v)
    return render(v)


def _formula(f: Formula) -> str:
    if f.op in FANS:
        return f.op
    if f.op == "num":
        return render(f.args[0])
    if f.op == "sqrt":
        return f"math.sqrt({_formula(f.args[0])})"
    if f.op == "neg":
        return "-" + _operand(f.args[0])
    return f"{_operand(f.args[0])} {f.op} {_operand(f.args[1])}"


def _operand(f: Formula) -> str:
    text = _formula(f)
    return text if f.op in (*FANS, "num", "sqrt") else f"({text})"
