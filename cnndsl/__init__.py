"""cnndsl: a compiler for a small language that describes neural-network architectures.

    net = cnndsl.load("resnet50")          # a bundled preset, or a path to a .cnn file
    totals = cnndsl.analyze(net)           # params, MACs, FLOPs, memory; per-node figures on net.graph
"""

from .errors import CnnError

__version__ = "0.1.0"


def load(target, inputs=None, settings=None, **params):
    """A network's IR, from a bundled name or a .cnn path; see cnndsl.api.load."""
    from .api import load as _load

    return _load(target, inputs, settings, **params)


def analyze(net):
    from .api import analyze as _analyze

    return _analyze(net)


__all__ = ["CnnError", "load", "analyze", "__version__"]
