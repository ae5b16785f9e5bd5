"""Turn a drawing's DOT text into the file the user asked for, with Graphviz's `dot`.

The format follows the output file's extension. DOT needs no Graphviz; every other format runs `dot`,
and its absence is one clear error, not a traceback.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from .errors import CnnError
from .ir import Network

FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf", ".dot": "dot", ".gv": "dot", ".html": "html"}
DEFAULT_DEPTH = 2
DOT_TIMEOUT = 120  # seconds for one `dot` run; a drawing that takes longer is refused with advice


def output_format(path: str | None) -> str:
    if path is None:
        return "dot"
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        known = " ".join(sorted(FORMATS))
        raise CnnError(f"cannot tell the drawing's format from '{path}': use one of the extensions {known}")
    return FORMATS[ext]


def check_depth(depth: int | None) -> int:
    if depth is None:
        return DEFAULT_DEPTH
    if depth < 1:
        raise CnnError(f"--depth must be 1 or more (1 draws only the network's top-level layers), got {depth}")
    return depth


def dot_program() -> str:
    path = shutil.which("dot")
    if path is None:
        raise CnnError("Graphviz's 'dot' program is not installed (Debian/Ubuntu: apt-get install graphviz; "
                       "macOS: brew install graphviz); a .dot file needs no Graphviz: -o model.dot")
    return path


def run_dot(source: str, fmt: str) -> bytes:
    """`dot -Tfmt` on the source; its output, or a CnnError with dot's own message."""
    try:
        done = subprocess.run([dot_program(), f"-T{fmt}"], input=source.encode("utf-8"), capture_output=True,
                              timeout=DOT_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise CnnError(f"Graphviz took over {DOT_TIMEOUT} s to lay the drawing out: draw it with a smaller --depth, "
                       f"or write -o FILE.dot and run dot yourself") from None
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise CnnError("Graphviz's dot failed: " + (message[-1] if message else f"exit {done.returncode}"))
    return done.stdout


def drawing(net: Network, totals: dict, output: str | None, depth: int | None, fold: bool = True,
            direction: str = "TB") -> str | bytes:
    """The drawing's bytes (or DOT text) for the output path's format."""
    from .draw import dot_source

    fmt = output_format(output)
    if fmt == "html":
        from .page import page

        return page(net, totals, direction, check_depth(depth))  # --depth: the depth it opens at
    source = dot_source(net, totals, check_depth(depth), fold, direction)
    if fmt == "dot":
        return source
    return run_dot(source, fmt)
