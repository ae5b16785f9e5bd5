"""The op traits the backends act on (cnndsl/ops/spec.py), checked against what they claim.

The PyTorch backend writes an op in place (nn.ReLU(inplace=True), F.relu(x, inplace=True), `y += s`) when
the op's spec claims INPLACE for the call, nothing else reads the op's input, and the input's producer
claims BACKWARD_NEEDS_NO_OUTPUT. A false claim gives wrong gradients or an autograd error in training, so:

- for every op claiming INPLACE (in every example call, including argument values for which a trait rule
  withdraws the claim), placed after every op claiming BACKWARD_NEEDS_NO_OUTPUT, the generated model is
  compared with the same network generated with in-place writing turned off: the same outputs (eval and
  train mode) and the same gradients of the inputs and of every parameter. The in-place file must differ
  from the other exactly when the spec claims INPLACE for the call (so the comparison is not vacuous);
- negative controls show that the comparison fails where a claim would be false: in place after a
  producer whose backward reads its output (sigmoid), and leaky_relu in place with a negative slope
  (what its trait rule prevents), autograd refuses to run the backward.

Every op claiming either trait needs an example here: a new claim fails `test_every_claim_has_an_example`.
"""

from __future__ import annotations

import pytest
import torch

import cnndsl
import cnndsl.backends.pytorch as pytorch_backend
from cnndsl.ops import REGISTRY
from cnndsl.ops.spec import BACKWARD_NEEDS_NO_OUTPUT, INPLACE
from cnndsl.passes import op_call

# producer op -> (input shape, an expression of `x` whose last op is that producer)
PRODUCERS = {
    "conv": ("4x6x6", "x -> conv(4, 3, pad=1)"),
    "dwconv": ("4x6x6", "x -> dwconv(3, pad=1)"),
    "conv_transpose": ("4x6x6", "x -> conv_transpose(4, 2, stride=2)"),
    "batchnorm": ("4x6x6", "x -> conv(4, 1) -> batchnorm"),
    "linear": ("6", "x -> linear(6)"),
    "add": ("4x6x6", "add(x -> conv(4, 1), x -> conv(4, 3, pad=1))"),
    # a view at inference (and at p = 0 while training): what is overwritten is the conv's output
    "stochastic_depth": ("4x6x6", "x -> conv(4, 1) -> stochastic_depth(0.0)"),
    # their backward reads their input (in place: the copy PyTorch keeps), never their output
    "silu": ("4x6x6", "x -> conv(4, 1) -> silu"),
    "hardswish": ("4x6x6", "x -> conv(4, 1) -> hardswish"),
    "hardsigmoid": ("4x6x6", "x -> conv(4, 1) -> hardsigmoid"),
}

# in-place op -> calls that follow a producer P (written {p}); several where the trait depends on arguments
CONSUMERS = {
    "relu": ["{p} -> relu", "{p} -> r: relu"],
    "relu6": ["{p} -> relu6", "{p} -> r: relu6"],
    "leaky_relu": ["{p} -> leaky_relu(0.2)", "{p} -> r: leaky_relu(0.2)", "{p} -> leaky_relu(0)",
                   "{p} -> leaky_relu(-0.1)", "{p} -> r: leaky_relu(-0.5)"],
    "add": ["add({p}, {p})", "({p}) + ({p})"],
    # their backward reads the input: PyTorch's in-place variants save a clone of it before overwriting
    "silu": ["{p} -> silu", "{p} -> r: silu"],
    "hardswish": ["{p} -> hardswish", "{p} -> r: hardswish"],
    "hardsigmoid": ["{p} -> hardsigmoid", "{p} -> r: hardsigmoid"],
}


def claims(trait: str) -> list[str]:
    return sorted(name for name, spec in REGISTRY.items() if trait in spec.traits)


def test_every_claim_has_an_example():
    assert claims(BACKWARD_NEEDS_NO_OUTPUT) == sorted(PRODUCERS), "add the op to PRODUCERS (or drop the stale one)"
    assert claims(INPLACE) == sorted(CONSUMERS), "add the op to CONSUMERS (or drop the stale one)"


def build(tmp_path, shape: str, expr: str):
    path = tmp_path / "net.cnn"
    path.write_text(f"network n() {{\n    input x: {shape}\n    output out = {expr}\n}}\n")
    net = cnndsl.load(str(path))
    cnndsl.analyze(net)
    return net


def generated(net, monkeypatch, plain: str | None = None, claim: frozenset = frozenset()):
    """(source, module) of the PyTorch backend; with node `plain` never written in place, or with the traits
    in `claim` claimed by every op (a false claim, for the negative controls)."""
    has, inplace_ok = pytorch_backend.TorchGenerator._has, pytorch_backend.TorchGenerator._inplace_ok
    with monkeypatch.context() as m:
        if plain:
            m.setattr(pytorch_backend.TorchGenerator, "_inplace_ok",
                      lambda self, name: name != plain and inplace_ok(self, name))
        if claim:
            m.setattr(pytorch_backend.TorchGenerator, "_has",
                      lambda self, name, trait: trait in claim or has(self, name, trait))
        return cnndsl.compile(net, "torch"), cnndsl.to_torch(net)


def outputs_and_gradients(model, x: torch.Tensor, weight: torch.Tensor, train: bool):
    model.train(train)
    x = x.clone().requires_grad_()
    model.zero_grad()
    out = model(x)
    (out * weight).sum().backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    return out.detach(), x.grad.clone(), grads


def compare(net, monkeypatch, **options) -> bool:
    """Run the model as generated and the one whose last op is never written in place, on the same weights
    and batch; True if the two files differ."""
    source, model = generated(net, monkeypatch, **options)
    plain_source, plain = generated(net, monkeypatch, plain=net.outputs["out"])
    plain.load_state_dict(model.state_dict())
    g = torch.Generator().manual_seed(0)
    shape = net.type_of(net.inputs["x"]).shape
    x = torch.randn(3, *shape, generator=g)
    weight = torch.randn(3, *net.type_of(net.outputs["out"]).shape, generator=g)
    with torch.no_grad():
        for p in model.parameters():  # biases start at zero, batch-norm scales at one: make every layer count
            p.copy_(torch.randn(p.shape, generator=g))
        plain.load_state_dict(model.state_dict())
    for train in (False, True):
        out, dx, grads = outputs_and_gradients(model, x, weight, train)
        ref_out, ref_dx, ref_grads = outputs_and_gradients(plain, x, weight, train)
        torch.testing.assert_close(out, ref_out)
        torch.testing.assert_close(dx, ref_dx)
        assert grads.keys() == ref_grads.keys()
        for name in grads:
            torch.testing.assert_close(grads[name], ref_grads[name], msg=lambda m, n=name: f"{n}: {m}")
    return source != plain_source


CASES = [(producer, consumer, template) for producer in PRODUCERS for consumer, templates in CONSUMERS.items()
         for template in templates]


@pytest.mark.parametrize("producer, consumer, template", CASES,
                         ids=[f"{p}-{t.format(p=p)}" for p, _, t in CASES])
def test_in_place_gives_the_gradients_of_the_plain_model(tmp_path, monkeypatch, producer, consumer, template):
    shape, p = PRODUCERS[producer]
    net = build(tmp_path, shape, template.format(p=p))
    last = net.outputs["out"]
    assert net.node(last)["op"] == consumer
    claimed = REGISTRY[consumer].has(INPLACE, op_call(net, last))
    differs = compare(net, monkeypatch)
    assert differs == claimed, ("in place as claimed" if claimed else "not in place: the spec does not claim it")


@pytest.mark.parametrize("expr", ["x -> conv(4, 1) -> sigmoid -> relu", "x -> conv(4, 1) -> r: tanh -> s: relu6"])
def test_a_false_producer_claim_is_caught(tmp_path, monkeypatch, expr):
    # sigmoid and tanh compute their gradient from their output: overwriting it must break the backward
    assert BACKWARD_NEEDS_NO_OUTPUT not in REGISTRY["sigmoid"].traits | REGISTRY["tanh"].traits
    net = build(tmp_path, "4x6x6", expr)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        compare(net, monkeypatch, claim=frozenset({BACKWARD_NEEDS_NO_OUTPUT}))


def test_leaky_relu_with_a_negative_slope_is_not_written_in_place(tmp_path, monkeypatch):
    # its trait rule withdraws INPLACE: autograd cannot read the gradient off the output of a negative slope
    net = build(tmp_path, "4x6x6", "x -> conv(4, 1) -> leaky_relu(-0.1)")
    assert not REGISTRY["leaky_relu"].has(INPLACE, op_call(net, net.outputs["out"]))
    assert not compare(net, monkeypatch)
    with pytest.raises(RuntimeError, match="negative slope"):
        compare(net, monkeypatch, claim=frozenset({INPLACE}))


def test_the_backend_reads_traits_not_names():
    # the decisions live in the specs: the generator module names no op set of its own
    source = open(pytorch_backend.__file__, encoding="utf-8").read()
    for name in ("INPLACE_ACTIVATIONS", "SAFE_PRODUCERS", '== "add"', "== 'add'"):
        assert name not in source
