"""The Python API: load a target into an IR network, analyse it."""

from __future__ import annotations

import warnings

from . import ast as A
from .elaborate import elaborate, parse_setting
from .errors import CnnDslWarning, CnnError, Source, Span
from .ir import Network
from .loader import find_target
from .passes import analyze as _analyze


def load(target: str, inputs: dict[str, str] | None = None, settings: list[str] | None = None,
         max_nodes: int | None = None, trace: bool = False, **params) -> Network:
    """Elaborate a bundled architecture (by network or preset name) or a .cnn path.

    Parameters are Python values (`load("resnet", layers=[2, 2, 2, 2])`), or .cnn expressions as on the
    command line (`settings=["unit=basic_block"]`, for values such as blocks); input shapes are strings
    (`inputs={"x": "3x64x64"}`). Warnings (cnndsl.lint) are raised as CnnDslWarning and kept on
    `net.warnings`. `max_nodes` raises the limit on the network's size (cnndsl.limits.NODES_MAX). `trace`
    keeps how each number was computed, which only the PyTorch backend reads (`compile` elaborates again with it
    where the network lacks it; tracing doubles the elaboration's cost).
    """
    settings = [parse_setting(text, "settings") for text in (settings or [])]
    settings += [(name, _literal(value, name), _span(name)) for name, value in params.items()]
    shapes = [parse_setting(f"{name}={shape}", "inputs") for name, shape in (inputs or {}).items()]
    try:
        net = elaborate(find_target(target), settings, shapes, max_nodes, trace=trace)
    except RecursionError:
        raise CnnError(f"{target}: the program is nested too deeply to elaborate") from None
    for warning in net.warnings:  # also kept on net.warnings
        warnings.warn(warning.format(), CnnDslWarning, stacklevel=3)  # the caller of cnndsl.load
    return net


def analyze(net: Network) -> dict:
    """Run every analysis pass; return the totals (params, MACs, FLOPs, memory)."""
    return _analyze(net)


def _span(name: str) -> Span:
    return Span(Source("load()", name), 1, 1, 1, len(name) + 1)


def _literal(value, name: str) -> A.Node:
    if isinstance(value, list):
        return A.ListLit(_span(name), [_literal(v, name) for v in value])
    return A.Const(_span(name), value)


BACKENDS = ("torch", "numpy")


def compile(net: Network, backend: str = "torch") -> str:  # noqa: A001 - the verb users expect
    """Generated source code of a network for a backend."""
    if backend == "torch":
        from .backends.pytorch import generate

        return generate(net)
    if backend == "numpy":
        from .backends.numpy_backend import generate as generate_numpy

        return generate_numpy(net)
    raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def to_torch(net: Network):
    """A live nn.Module built by executing the very source `compile(net, "torch")` returns."""
    import builtins
    import linecache
    import types

    from .backends.pytorch import class_name

    source = compile(net, "torch")
    filename = f"<cnndsl {net.name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)  # readable tracebacks
    module = types.ModuleType(f"cnndsl_generated_{net.name}")
    exec(builtins.compile(source, filename, "exec"), module.__dict__)  # our generated code, never user text
    return getattr(module, class_name(net))()
