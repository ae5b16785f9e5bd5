"""The bounds every value and every run of the compiler stays within, in one place.

A .cnn file may come from anyone: each bound below turns what would be a crash, a hang or an exhausted
machine into a CnnError at the place that crossed it. docs/language.md ("Limits") lists them.
"""

from __future__ import annotations

import math

from .errors import CnnError, Span

INT_MAX = 2 ** 63 - 1
"""Every integer a program computes fits in a signed 64-bit integer (torch's int64, NumPy's default)."""

ARG_MAX = 2 ** 31 - 1
"""Every integer argument of an op and every dimension of a tensor: torch's kernels index with 32-bit
integers (cuDNN's convolution and pooling parameters are `int`)."""

NUMEL_MAX = 2 ** 62
"""Elements of one tensor (its shape's product, batch 1): still an int64 after doubling."""

STRING_MAX = 100_000
"""Characters of a string value (a description, a name being built)."""

LIST_MAX = 1_000_000
"""Elements of one list (a range(), a repeated list)."""

NAME_MAX = 200
"""Characters of a node's local name (a label, interpolations included)."""

FILE_MAX = 512 * 1024
"""Bytes of one .cnn file: the largest bundled file is under 20 KB; a 10,000-layer unrolled file 150 KB
parses in about a second, so a file at the limit in about 4 s."""

RF_WORK_MAX = 1_000_000
"""Positions times taps of one op's exact receptive-field rule (cnndsl/passes/receptive.py): an upsampling
or a transposed convolution makes the field repeat with a period (16 output pixels for U-Net); the zoo's largest
costs under 1,000. Past the bound the analysis stops with an error at the op instead of running for minutes."""

WORK_MAX = 500_000
"""Evaluation steps of one elaboration (each expression evaluated, each loop iteration, each list element
made), about a second: the bundled zoo's largest network takes under 7,000. It grows with --max-nodes (20 steps
per node allowed)."""

NODES_MAX = 20_000
"""Nodes of one network after blocks and loops are expanded: the zoo's largest has under 1,000, the
10,000-layer benchmark 10,001, and 20,000 analyse in about 2 s. Raised with `--max-nodes` (or
cnndsl.load(..., max_nodes=N))."""

MEMORY_WARN = 64 * 1024 ** 3
"""Bytes of parameters plus activations (float32, batch 1) past which `analyze` and `check` warn and
`compile` refuses unless `--force`: more than a large workstation's memory."""


def number(value, span: Span | None, what: str = "a number"):
    """value, if it is within the bounds of a number; else a CnnError saying which bound."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if -INT_MAX - 1 <= value <= INT_MAX:
            return value
        raise CnnError(f"{what} is too large: integers must fit in 64 bits (|n| < 2**63), got about "
                       f"{_magnitude(value)}", span)
    if isinstance(value, float) and not math.isfinite(value):
        raise CnnError(f"{what} is not finite ({value}): numbers must be finite (a literal over about 1.8e308 "
                       f"is infinite)", span)
    return value


def _magnitude(value: int) -> str:
    """An int's size in words, without str(value) (which Python refuses past 4,300 digits)."""
    digits = int(abs(value).bit_length() * 0.30103) + 1
    return f"10**{digits - 1}"


def power(a, b, span: Span) -> None:
    """Refuse a ** b before computing it when the result would be an integer beyond INT_MAX."""
    if isinstance(a, int) and isinstance(b, int) and not isinstance(a, bool) and b > 0 and abs(a) > 1:
        if (abs(a).bit_length() - 1) * b > 63:
            raise CnnError(f"{a} ** {b} is too large: integers must fit in 64 bits (|n| < 2**63)", span)


def work_budget(max_nodes: int | None) -> int:
    return max(WORK_MAX, 20 * (max_nodes or 0))


def work_error(budget: int, span: Span | None) -> CnnError:
    return CnnError(f"the program takes more than {budget:,} evaluation steps to elaborate (a loop or a list far "
                    f"larger than a network needs?); --max-nodes N raises it to 20 steps per node", span)
