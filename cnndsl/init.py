"""Weight initialisation: the `init` statement's schemes, and its rules resolved to the tensors they set.

    init conv: kaiming_normal(mode="fan_out", nonlinearity="relu")
    init batchnorm: weight=1, bias=0
    init bn3 in bottleneck: weight=0
    init linear: uniform(-1 / sqrt(fan_out), 1 / sqrt(fan_out))

A rule selects layers, each by an op kind (`conv`: every conv, and the convs inside composites such as
`se`: see ops.spec.Param.layer) or by a name (`fc`, `classifier.1`, `heads.head`), optionally `in` a scope
or in every instance of a block; its settings give a scheme per tensor (a bare scheme sets the weight).
Rules apply in order: a later rule overrides an earlier one, as the statements of torchvision's model
constructors do. The elaborator evaluates the settings where the statement runs (SETTINGS) and resolves the
rules once every node has its name (resolve). Backends read Network.init; none reparses text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from . import ast as A
from .errors import CnnError, Note, Span, suggest
from .ir import InitRule, InitScheme, InitTarget, Network

REQUIRED = object()
NONLINEARITIES = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                  "conv_transpose3d", "sigmoid", "tanh", "relu", "leaky_relu", "selu")
_KAIMING = (("a", 0.0), ("mode", "fan_in"), ("nonlinearity", "leaky_relu"))

# scheme -> its arguments with their defaults (torch.nn.init's), in order; each is torch.nn.init.<scheme>_
SCHEMES: dict[str, tuple[tuple[str, Any], ...]] = {
    "zeros": (),
    "ones": (),
    "constant": (("value", REQUIRED),),
    "normal": (("mean", 0.0), ("std", 1.0)),
    "trunc_normal": (("mean", 0.0), ("std", 1.0), ("a", -2.0), ("b", 2.0)),
    "uniform": (("a", 0.0), ("b", 1.0)),
    "kaiming_normal": _KAIMING,
    "kaiming_uniform": _KAIMING,
    "xavier_normal": (("gain", 1.0),),
    "xavier_uniform": (("gain", 1.0),),
}
SCHEME_DOCS = {
    "zeros": "every element 0", "ones": "every element 1", "constant": "every element `value`",
    "normal": "N(mean, std^2)",
    "trunc_normal": "N(mean, std^2) redrawn outside [a, b] (absolute bounds, as torch's)",
    "uniform": "U(a, b)",
    "kaiming_normal": "N(0, std^2), std = gain / sqrt(fan), fan = fan_in or fan_out by `mode`, gain of `nonlinearity` "
                      "(leaky_relu with slope `a`)",
    "kaiming_uniform": "U(-bound, bound), bound = gain * sqrt(3 / fan), as kaiming_normal",
    "xavier_normal": "N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out))",
    "xavier_uniform": "U(-bound, bound), bound = gain * sqrt(6 / (fan_in + fan_out))",
}
FAN_SCHEMES = {"kaiming_normal", "kaiming_uniform", "xavier_normal", "xavier_uniform"}  # need 2+ dimensions
FANS = ("fan_in", "fan_out")


@dataclass(frozen=True)
class Formula:
    """An argument computed per layer from its weight's fan_in and fan_out, as torch.nn.init counts them
    (fan_in = size(1) * kernel volume, fan_out = size(0) * kernel volume). op: "fan_in" | "fan_out" | "num" |
    "+" "-" "*" "/" "**" | "neg" | "sqrt"; args: operands (a number for "num")."""

    op: str
    args: tuple = ()

    def value(self, fan_in: int, fan_out: int) -> float:
        op, a = self.op, self.args
        if op == "fan_in":
            return fan_in
        if op == "fan_out":
            return fan_out
        if op == "num":
            return a[0]
        x = [f.value(fan_in, fan_out) for f in a]
        if op == "neg":
            return -x[0]
        if op == "sqrt":
            return math.sqrt(x[0])
        return {"+": lambda: x[0] + x[1], "-": lambda: x[0] - x[1], "*": lambda: x[0] * x[1],
                "/": lambda: x[0] / x[1], "**": lambda: x[0] ** x[1]}[op]()

    def uses(self) -> set[str]:
        if self.op in FANS:
            return {self.op}
        return set().union(*(f.uses() for f in self.args if isinstance(f, Formula)))


# ---------------------------------------------------------------- settings, evaluated where `init` runs


def _mentions_fan(n) -> bool:
    if isinstance(n, A.Name):
        return n.id in FANS
    if isinstance(n, A.Node):
        return any(_mentions_fan(v) for k, v in vars(n).items() if k != "span")
    if isinstance(n, list):
        return any(_mentions_fan(v) for v in n)
    return False


def _formula(ev, n: A.Node, env) -> Formula | Any:
    """A number, or a Formula where the expression reads fan_in or fan_out."""
    if not _mentions_fan(n):
        return _plain(ev.eval(n, env))
    if isinstance(n, A.Name):
        return Formula(n.id)
    if isinstance(n, A.BinOp) and all(op in ("+", "-", "*", "/", "**") for op in n.ops):
        left = _as_formula(_formula(ev, n.operands[0], env))
        for op, operand in zip(n.ops, n.operands[1:]):
            left = Formula(op, (left, _as_formula(_formula(ev, operand, env))))
        return left
    if isinstance(n, A.Unary):
        inner = _as_formula(_formula(ev, n.operand, env))
        return Formula("neg", (inner,)) if n.op == "-" else inner
    if (isinstance(n, A.Call) and isinstance(n.func, A.Name) and n.func.id == "sqrt" and len(n.args) == 1
            and n.args[0].name is None):
        return Formula("sqrt", (_as_formula(_formula(ev, n.args[0].value, env)),))
    raise CnnError("fan_in and fan_out can be used only in arithmetic (+ - * / **) and sqrt()", n.span)


def _as_formula(v) -> Formula:
    if isinstance(v, Formula):
        return v
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise CnnError(f"an init argument computed from fan_in or fan_out needs numbers, got {v!r}", None)
    return Formula("num", (v,))


def _plain(v):
    """Numbers as plain int/float (the elaborator may hand back traced subclasses)."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        return float(v)
    return v


def scheme(ev, n: A.Node, env) -> InitScheme:
    """A setting's value: `kaiming_normal(mode="fan_out")`, `zeros`, `normal(0, 0.01)`, or a number (constant)."""
    func, args = None, []
    if isinstance(n, A.Name) and n.id in SCHEMES:
        func = n.id
    elif isinstance(n, A.Call) and isinstance(n.func, A.Name) and n.func.id in SCHEMES:
        func, args = n.func.id, n.args
    elif isinstance(n, (A.Name, A.Call)) and not _mentions_fan(n):
        name = n.id if isinstance(n, A.Name) else n.func.id if isinstance(n.func, A.Name) else None
        try:
            value = _plain(ev.eval(n, env))
        except CnnError:
            value = None
        if not _number(value):
            close = suggest(name, SCHEMES) if name else ""
            raise CnnError(f"unknown init scheme '{name}'{close}{' It' if close else '; it'} is one of "
                           f"{', '.join(SCHEMES)}, or a number", n.func.span if isinstance(n, A.Call) else n.span)
        return InitScheme("constant", (("value", value),))
    else:
        value = _formula(ev, n, env)
        if isinstance(value, Formula) or not _number(value):
            raise CnnError(f"an init setting is a scheme ({', '.join(SCHEMES)}) or a number", n.span)
        return InitScheme("constant", (("value", value),))
    signature = SCHEMES[func]
    names = [a for a, _ in signature]
    given: dict[str, tuple[Any, Span]] = {}
    for i, a in enumerate(args):
        if a.name is None:
            if given and any(b.name is not None for b in args[:i]):
                raise CnnError("a positional argument cannot follow a named one", a.span)
            if i >= len(names):
                raise CnnError(f"{func} takes {len(names)} argument{'s' * (len(names) != 1)}"
                               f"{': ' + ', '.join(names) if names else ''}", a.span)
            key = names[i]
        else:
            key = a.name
            if key not in names:
                raise CnnError(f"{func} has no argument '{key}'{suggest(key, names)}"
                               f"{' (it takes ' + ', '.join(names) + ')' if names else ' (it takes none)'}", a.span)
        if key in given:
            raise CnnError(f"argument '{key}' of {func} is given twice", a.span)
        given[key] = (_formula(ev, a.value, env), a.value.span)
    out = []
    for key, default in signature:
        if key not in given:
            if default is REQUIRED:
                raise CnnError(f"{func} needs argument '{key}'", n.span)
            out.append((key, default))
            continue
        value, span = given[key]
        _check_arg(func, key, value, span)
        out.append((key, value))
    values = dict(out)
    if func in ("uniform", "trunc_normal") and _number(values["a"]) and _number(values["b"]) \
            and not values["a"] < values["b"]:
        raise CnnError(f"{func} needs a < b, got a={values['a']}, b={values['b']}", n.span)
    return InitScheme(func, tuple(out))


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_arg(func: str, key: str, value, span: Span) -> None:
    if key == "mode":
        if value not in FANS:
            raise CnnError(f"{func}: mode is \"fan_in\" or \"fan_out\", got {value!r}", span)
    elif key == "nonlinearity":
        if value not in NONLINEARITIES:
            close = suggest(value, NONLINEARITIES) if isinstance(value, str) else ""
            raise CnnError(f"{func}: unknown nonlinearity {value!r}{close}{' It' if close else '; it'} is one of "
                           f"{', '.join(NONLINEARITIES)}", span)
    elif isinstance(value, Formula):
        pass  # checked per tensor, once the fans are known
    elif not _number(value):
        raise CnnError(f"{func}: '{key}' must be a number, got {value!r}", span)
    elif key in ("std", "gain") and value <= 0:
        raise CnnError(f"{func}: '{key}' must be > 0, got {value}", span)


@dataclass
class Pending:
    """An `init` statement as it ran: selectors' names computed, settings evaluated."""

    span: Span
    text: str
    selectors: list[tuple[list[str], list[str] | None, Span]]
    settings: list[tuple[str | None, InitScheme, Span]]


def evaluate(ev, s: A.Init, env) -> Pending:
    """Run an `init` statement: the labels of its selectors and the schemes of its settings."""
    selectors = []
    for sel in s.selectors:
        path = [p if isinstance(p, str) else ev.label_text(p, env) for p in sel.path]
        within = None if sel.within is None else [p if isinstance(p, str) else ev.label_text(p, env)
                                                  for p in sel.within]
        selectors.append((path, within, sel.span))
    settings, seen = [], {}
    if not s.settings:
        raise CnnError("an init rule needs a setting: a scheme, or tensor=scheme pairs", s.span)
    for a in s.settings:
        key = a.name if a.name is not None else None
        if key in seen:
            raise CnnError(f"tensor '{key or 'weight'}' is set twice in one rule", a.span,
                           [Note("first set here", seen[key])])
        seen[key] = a.span
        settings.append((key, scheme(ev, a.value, env), a.span))
    text = ", ".join(".".join(p) + (f" in {'.'.join(w)}" if w else "") for p, w, _ in selectors)
    return Pending(s.span, text, selectors, settings)


# ---------------------------------------------------------------- resolution, once every node has its name


@dataclass
class Layer:
    """A module that holds tensors: an op node, or an inner layer of a composite op."""

    path: str
    kinds: tuple[str, ...]  # the op kinds that select it (a dwconv: dwconv and conv)
    node: str
    tensors: dict  # local name -> (state_dict name, shape)


def layers(net: Network) -> list[Layer]:
    """Every layer with trainable tensors, in execution order; a composite's inner layers after it."""
    from .ops import lookup
    from .passes import op_call

    out = []
    for name in net.order:
        data = net.node(name)
        if data["kind"] != "op":
            continue
        spec = lookup(data["op"])
        groups: dict[str, Layer] = {}
        for p in spec.params(op_call(net, name)):
            if p.kind != "trainable":
                continue
            prefix, _, local = p.name.rpartition(".") if p.layer and "." in p.name else ("", "", p.name)
            path = f"{name}.{prefix}" if prefix else name
            if path not in groups:
                # an inner layer is selected by its own kind and by its composite's (`init mlp` selects its linears)
                own = [spec.name, *([p.layer] if p.layer else [])]
                kinds = (p.layer, spec.name) if prefix else tuple(dict.fromkeys(own))
                groups[path] = Layer(path, kinds, name, {})
            groups[path].tensors[local] = (f"{name}.{p.name}" if p.name else name, tuple(p.shape))
        own = groups.pop(name, None)
        out.extend([own] if own else [])
        out.extend(groups.values())
    return out


def resolve(net: Network, pending: list[Pending], blocks: set[str]) -> list[InitRule]:
    """The rules, each resolved to the tensors it sets. `blocks`: the block names the file defines."""
    if not pending:
        return []
    from .ops import all_names, lookup

    all_layers = layers(net)
    by_path = {layer.path: layer for layer in all_layers}
    rules = []
    for p in pending:
        chosen: dict[str, Layer] = {}
        kinds = []
        for path, within, span in p.selectors:
            spec = lookup(path[0]) if len(path) == 1 else None
            scopes = _scopes(net, within, blocks, span) if within is not None else [""]
            if spec is not None:
                kinds.append(spec.name)
                for layer in all_layers:
                    if spec.name in layer.kinds and any(_inside(layer.path, s) for s in scopes):
                        chosen.setdefault(layer.path, layer)
                continue
            local = ".".join(path)
            found = False
            for s in scopes:
                full = f"{s}.{local}" if s else local
                hits = [layer for layer in all_layers if layer.path == full or _inside(layer.path, full)]
                if hits or full in by_path or full in net.scopes or full in net.graph:
                    found = True
                for layer in hits:
                    chosen.setdefault(layer.path, layer)
            if not found and scopes:
                where = f"block '{within[0]}'" if within and len(within) == 1 and within[0] in blocks else (
                    f"'{'.'.join(within)}'" if within else "the network")
                names = _names_under(net, scopes[0]) | set(all_names())
                raise CnnError(f"{where} has no layer '{local}'{suggest(local, names)}", span)
        ordered = [layer for layer in all_layers if layer.path in chosen]
        targets = _targets(p, ordered)
        whole = all(w is None for _, w, _ in p.selectors)
        rule_kinds = tuple(dict.fromkeys(kinds)) if whole and len(kinds) == len(p.selectors) else ()
        rules.append(InitRule(p.span, p.text, rule_kinds, tuple((k, s) for k, s, _ in p.settings), targets))
    return rules


def _inside(path: str, scope: str) -> bool:
    return scope == "" or path.startswith(scope + ".")


def _names_under(net: Network, scope: str) -> set[str]:
    prefix = f"{scope}." if scope else ""
    return {n[len(prefix):] for n in [*net.order, *net.scopes] if n.startswith(prefix) and n != scope}


def _scopes(net: Network, within: list[str], blocks: set[str], span: Span) -> list[str]:
    """The scopes `in X` names: every instance of block X (none, if the network does not use it), or the scope
    (or sequence) at path X."""
    if len(within) == 1 and within[0] in blocks:
        return [name for name, s in net.scopes.items() if s.block == within[0]]
    path = ".".join(within)
    if path in net.scopes and path:
        return [path]
    names = {s for s in net.scopes if s} | blocks
    raise CnnError(f"'{path}' is neither a block of this file nor a scope of the network{suggest(path, names)}",
                   span)


def _targets(p: Pending, chosen: list[Layer]) -> list[InitTarget]:
    targets = []
    for key, sch, span in p.settings:
        hits = 0
        for layer in chosen:
            local = key if key is not None else ("" if "" in layer.tensors else "weight")
            if local not in layer.tensors:
                continue
            hits += 1
            tensor, shape = layer.tensors[local]
            targets.append(InitTarget(layer.path, layer.kinds[0], local, tensor, shape, sch,
                                      _args(sch, layer, tensor, shape, span)))
        if chosen and not hits and key != "bias":  # a bias may be absent (bias=false): set where there is one
            have = sorted({t or "(the layer itself)" for layer in chosen for t in layer.tensors})
            what = key if key is not None else "weight"
            hint = "; name the tensor: NAME=scheme" if key is None else suggest(what, have)
            raise CnnError(f"no layer this rule selects has a tensor '{what}' (they have {', '.join(have)})"
                           f"{hint}", span)
    return targets


def _args(sch: InitScheme, layer: Layer, tensor: str, shape: tuple, span: Span) -> dict:
    weight = layer.tensors.get("weight", (None, shape))[1] if "" not in layer.tensors else shape
    needs_fan = sch.name in FAN_SCHEMES or any(isinstance(v, Formula) for _, v in sch.args)
    if sch.name in FAN_SCHEMES and len(shape) < 2:
        raise CnnError(f"{sch.name} needs a tensor of two or more dimensions (fan_in and fan_out), but "
                       f"'{tensor}' has shape {'x'.join(map(str, shape)) or 'scalar'}", span)
    if needs_fan and len(weight) < 2:
        raise CnnError(f"fan_in and fan_out need a weight of two or more dimensions; {layer.path}'s has "
                       f"{len(weight)}", span)
    fan_in = fan_out = 0
    if len(weight) >= 2:
        volume = math.prod(weight[2:])
        fan_in, fan_out = weight[1] * volume, weight[0] * volume
    out = {}
    for key, value in sch.args:
        if isinstance(value, Formula):
            try:
                value = value.value(fan_in, fan_out)
            except (ZeroDivisionError, ValueError, OverflowError):
                raise CnnError(f"{sch.name}: '{key}' cannot be computed for {layer.path} (fan_in={fan_in}, "
                               f"fan_out={fan_out})", span) from None
            if isinstance(value, complex) or not _number(value):
                raise CnnError(f"{sch.name}: '{key}' is not a finite number for {layer.path}", span)
            _check_arg(sch.name, key, value, span)
        out[key] = value
    if sch.name in ("uniform", "trunc_normal") and not out["a"] < out["b"]:
        raise CnnError(f"{sch.name} needs a < b, got a={out['a']}, b={out['b']} for {layer.path}", span)
    return out


def final(net: Network) -> dict[str, InitTarget]:
    """state_dict name -> the target of the last rule that sets it (what the model starts with)."""
    out = {}
    for rule in net.init:
        for t in rule.targets:
            out[t.tensor] = t
    return out


def switched(net: Network) -> list[tuple[InitRule, tuple[str, bool] | None]]:
    """The network's rules, each with the switch it depends on: (parameter, value) for a rule that applies only
    when that boolean network parameter has that value, and which changes nothing else (ResNet's
    zero_init_residual), so generated code can take the switch as a constructor argument and write
    `if zero_init_residual:` as torchvision does; None for a rule that applies whatever the switches say. A
    switch is found by elaborating again with its value flipped: the same layers, other rules."""
    from difflib import SequenceMatcher

    from .elaborate import parse_setting

    out: list[tuple[InitRule, tuple[str, bool] | None]] = [(rule, None) for rule in net.init]
    if not net.init_switches or net.remake is None:
        return out
    for name in [p for p in net.params if p in net.init_switches]:
        value = net.params[name]
        try:
            other = net.remake([parse_setting(f"{name}={'false' if value else 'true'}", "switch")])
        except CnnError:
            continue  # the other value is not a valid network: the switch stays fixed
        if _structure(other) != _structure(net):
            continue  # it changes layers too: only the compiler can follow it
        mine, theirs = [_key(r) for r, _ in out], [_key(r) for r in other.init]
        if any(when is not None for _, when in out) or mine == theirs:
            continue  # one switch at a time (nothing in the zoo has two), and one that changes a rule
        merged = []
        for tag, i1, i2, j1, j2 in SequenceMatcher(a=mine, b=theirs, autojunk=False).get_opcodes():
            if tag == "equal":
                merged += out[i1:i2]
                continue
            merged += [(rule, (name, value)) for rule, _ in out[i1:i2]]
            merged += [(rule, (name, not value)) for rule in other.init[j1:j2]]
        out = merged
    return out


def _key(rule: InitRule) -> tuple:
    """What a rule sets, comparable between two elaborations of one file."""
    return (rule.span.line, rule.span.column,
            tuple((t.tensor, t.scheme.name, repr(sorted(t.args.items()))) for t in rule.targets))


def _structure(net: Network) -> tuple:
    """The layers of a network, comparable between two elaborations of one file."""
    return (tuple((name, data["op"], repr(data["attrs"]), str(data["type"]))
                  for name in net.order for data in [net.node(name)]), tuple(sorted(net.scopes)),
            tuple(net.outputs.items()))
