"""Fixtures shared by the zoo tests (tests/test_zoo_*.py); their helpers live in tests/reference.py.

pytest runs with --import-mode=importlib, which leaves sys.path alone (so the tests exercise the installed
package, not the checkout): this folder, and only it, is put on sys.path here so that the test modules can
`import reference`. torch is imported only when a fixture below is used.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)


@pytest.fixture(scope="module")
def ours():
    """Our IR, elaborated (without a warning), analysed and linted once per module and (target, inputs,
    params): `ours(target, inputs=None, **params) -> (network, totals)`."""
    from reference import Networks

    return Networks()


@pytest.fixture(scope="module")
def tv():
    """torchvision's model, weights=None, in eval mode, built once per module and (name, device, kwargs):
    `tv(name, device="meta", **kwargs)`."""
    from reference import ReferenceModels

    return ReferenceModels()


@pytest.fixture(scope="module")
def torch_on_one_thread():
    """Small models run fastest on one thread, and a busy CI runner makes OpenMP's spinning threads crawl."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
