"""cnndsl: a compiler for a small language that describes neural-network architectures.

    net = cnndsl.load("resnet50")          # a bundled preset, or a path to a .cnn file
    totals = cnndsl.analyze(net)           # params, MACs, FLOPs, memory; per-node figures on net.graph
"""

from .errors import CnnDslWarning, CnnError, CnnWarning

__version__ = "0.1.0"


def load(target, inputs=None, settings=None, **params):
    """A network's IR, from a bundled name or a .cnn path; see cnndsl.api.load."""
    from .api import load as _load

    return _load(target, inputs, settings, **params)


def analyze(net):
    from .api import analyze as _analyze

    return _analyze(net)


def compile(net, backend="torch"):  # noqa: A001 - the verb users expect
    """Generated source code of a network (backend: "torch")."""
    from .api import compile as _compile

    return _compile(net, backend)


def to_torch(net):
    """A live torch.nn.Module, built from the same source compile(net, "torch") returns."""
    from .api import to_torch as _to_torch

    return _to_torch(net)


__all__ = ["CnnError", "CnnWarning", "CnnDslWarning", "load", "analyze", "compile", "to_torch", "__version__"]
