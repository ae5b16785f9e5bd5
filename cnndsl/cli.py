"""The `cnndsl` command: check, analyze, zoo. Every user mistake exits 1 with a located message."""

from __future__ import annotations

import argparse
import gc
import os
import sys

from .errors import CnnError


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own mistakes are user mistakes too: exit 1, no traceback
        self.print_usage(sys.stderr)
        print(f"cnndsl: error: {message}", file=sys.stderr)
        sys.exit(1)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="cnndsl",
                description="Describe neural-network architectures; check, analyse, draw and compile them.")
    from . import __version__

    p.add_argument("--version", action="version", version=f"cnndsl {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def target_command(name, help_text):
        c = sub.add_parser(name, help=help_text)
        c.add_argument("target", help="a .cnn file (its first network), FILE.cnn:NAME (a network or preset in "
                                      "it), or a bundled architecture's name (see 'cnndsl zoo')")
        c.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                       help="override a network parameter (repeatable), e.g. --set width=0.75")
        c.add_argument("--input", action="append", default=[], metavar="NAME=SHAPE",
                       help="override an input's shape (repeatable), e.g. --input x=3x64x64")
        c.add_argument("--max-nodes", type=int, default=None, metavar="N",
                       help="refuse networks of more than N nodes (default 20,000)")
        c.add_argument("-I", "--import-path", action="append", default=[], metavar="DIR",
                       help="a folder imports may also come from (repeatable; also CNNDSL_PATH)")
        return c

    target_command("check", "parse and elaborate; report errors only")
    a = target_command("analyze", "shapes, parameters, MACs, memory and receptive fields")
    a.add_argument("--format", choices=("table", "json", "markdown", "csv"), default="table",
                   help="table (default: grouped by block, then the totals), json (every layer and the totals, "
                        "for programs), markdown (the table for documents) or csv (every layer, for spreadsheets)")
    a.add_argument("--depth", type=int, default=3,
                   help="table and markdown rows down to this block depth, 1 or more (default 3; 1: the network's "
                        "own layers, blocks summed)")
    c = target_command("compile", "generate model code (PyTorch or NumPy)")
    c.add_argument("--backend", choices=("torch", "numpy"), default="torch", help="code generator (default: torch)")
    c.add_argument("-o", "--output", metavar="FILE", help="write here (atomically) instead of to stdout")
    c.add_argument("--force", action="store_true",
                   help="generate code even for a network larger than any machine holds (see 'analyze')")
    g = target_command("graph", "draw the network (Graphviz): SVG, PNG, PDF, DOT or an interactive HTML page")
    g.add_argument("-o", "--output", metavar="FILE",
                   help="write here; the format follows the extension: .svg .png .pdf .dot .html (default: DOT "
                        "to stdout)")
    g.add_argument("--depth", type=int, default=None,
                   help="open blocks down to this depth; deeper ones are one box (default 2; an HTML page holds "
                        "every depth and opens at this one)")
    g.add_argument("--direction", choices=("TB", "LR"), default="TB", help="top to bottom (default) or left to right")
    g.add_argument("--fold", action=argparse.BooleanOptionalAction, default=True,
                   help="fold runs of equal blocks made by one loop into one box marked xN (default: fold)")
    sub.add_parser("zoo", help="list the bundled architectures")
    s = sub.add_parser("show", help="print a bundled architecture's .cnn source, to start from (or copy it with -o)")
    s.add_argument("name", help="a bundled network, preset or file name (see 'cnndsl zoo'), e.g. resnet50")
    s.add_argument("-o", "--output", metavar="FILE", help="copy it here instead of printing it")
    s.add_argument("--path", action="store_true", help="print where the bundled file is installed instead")
    return p


def _network(args, trace: bool = False):
    from .elaborate import elaborate, parse_setting
    from .loader import find_target

    settings = [parse_setting(s, "--set") for s in args.set]
    shapes = [parse_setting(s, "--input") for s in args.input]
    net = elaborate(find_target(args.target, args.import_path), settings, shapes, _max_nodes(args), trace=trace)
    _warn(net.warnings)
    return net


def _max_nodes(args) -> int | None:
    if args.max_nodes is not None and args.max_nodes < 1:
        raise CnnError(f"--max-nodes must be a positive number, got {args.max_nodes}")
    return args.max_nodes


def _warn(warnings) -> int:
    """Print each distinct warning once, on stderr (the report or the generated code stays clean)."""
    shown = list(dict.fromkeys(w.format() for w in warnings))
    for text in shown:
        print(text, file=sys.stderr)
    return len(shown)


def _analyze(args) -> str:
    from . import report
    from .passes import analyze

    if args.depth < 1:
        raise CnnError(f"--depth is the number of block levels shown, 1 or more (1: the network's own layers), "
                       f"got {args.depth}")
    net = _network(args)
    totals = analyze(net)
    _warn_size(net, totals)
    if args.format == "json":
        return report.json_text(net, totals)
    if args.format == "markdown":
        return report.markdown(net, totals, args.depth)
    if args.format == "csv":
        return report.csv_text(net, totals).rstrip("\n")
    return report.table(net, totals, args.depth)


def _check(args) -> str:
    """A bundled name or `file.cnn:name` checks that one; a file checks all its presets and networks."""
    from .elaborate import elaborate, parse_setting
    from .loader import every_target, load_program

    if not args.target.endswith(".cnn"):
        net = _network(args)
        _warn_size(net)
        return f"{args.target}: ok ({len(net.order)} nodes){_warned(len(net.warnings))}"
    settings = [parse_setting(s, "--set") for s in args.set]
    shapes = [parse_setting(s, "--input") for s in args.input]
    targets = every_target(load_program(args.target, include=args.import_path))
    if not targets:
        raise CnnError(f"{args.target} declares no network (only blocks or constants)")
    names, warnings = [], []
    for target in targets:
        net = elaborate(target, settings, shapes, _max_nodes(args))
        _warn_size(net, show=False)
        names.append(f"{net.name} ({len(net.order)} nodes)")
        warnings += net.warnings
    return f"{args.target}: ok: " + ", ".join(names) + _warned(_warn(warnings))


def _warn_size(net, totals: dict | None = None, show: bool = True) -> None:
    """A warning (added to net.warnings) when the network needs more memory than any machine holds."""
    from .lint import size_warning
    from .passes import counts, memory

    if totals is None:  # `check`: the counts and the memory the warning needs, not the receptive fields
        totals = {**counts.run(net), **memory.run(net)}
    warning = size_warning(net, totals)
    if warning is not None:
        net.warnings.append(warning)
        if show:
            _warn([warning])


def _warned(count: int) -> str:
    return f"; {count} warning{'s' * (count != 1)}" if count else ""


def _zoo(args) -> str:
    from .zoo import entries

    items = entries()
    width = max(len(e.name) for e in items)
    return "\n".join(f"{e.name.ljust(width)}  {e.description}" for e in items)


def _compile(args) -> str | None:
    from .api import compile as generate

    if args.output == "":
        raise CnnError("-o needs a file name (leave -o out to print to stdout)")
    net = _network(args, trace=args.backend == "torch")  # the PyTorch backend writes the numbers' expressions
    if not args.force:
        from .lint import size_warning
        from .passes import analyze

        too_big = size_warning(net, analyze(net))
        if too_big is not None:
            raise CnnError(too_big.message + "; compile --force generates it anyway", too_big.span)
    source = generate(net, args.backend)
    if not args.output:
        return source.rstrip("\n")
    write_atomically(args.output, source)
    return None


def write_atomically(path: str, text: str | bytes) -> None:
    """Write a whole file or nothing: a temporary file beside it, then a rename over it."""
    import tempfile

    if os.path.islink(path):
        raise CnnError(f"{path} is a symbolic link: cnndsl will not replace it with a file (write to the file it "
                       f"points to, or remove the link)")
    try:
        mode = os.stat(path).st_mode & 0o7777  # an existing file keeps its permissions
    except OSError:
        mode = None
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".cnndsl-", suffix=".tmp")
    except OSError as exc:
        raise CnnError(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode("utf-8") if isinstance(text, str) else text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, mode if mode is not None else 0o666 & ~umask)  # mkstemp makes it private
        os.replace(tmp, path)
    except OSError as exc:
        os.unlink(tmp)
        raise CnnError(f"cannot write {path}: {exc.strerror}") from None


def _graph(args) -> str | None:
    from .passes import analyze
    from .render import drawing

    net = _network(args)
    data = drawing(net, analyze(net), args.output, args.depth, args.fold, args.direction)
    if not args.output:
        return data.rstrip("\n")
    write_atomically(args.output, data)
    return None


def _show(args) -> str | None:
    from .loader import bundled_file

    path = bundled_file(args.name)
    if args.path:
        return str(path)
    text = path.read_text(encoding="utf-8")
    if args.output is None:
        return text.rstrip("\n")
    if not args.output:
        raise CnnError("-o needs a file name (leave -o out to print to stdout)")
    write_atomically(args.output, text)
    print(f"wrote {args.output}, a copy of {path}", file=sys.stderr)
    return None


def _bundled_note(exc: CnnError) -> str:
    """Where a bundled file named in an error lies, and how to get a copy to edit."""
    from .loader import BUNDLED_PREFIX, bundled_file

    for span in [exc.span, *(n.span for n in exc.notes)]:
        if span is not None and span.source.path.startswith(BUNDLED_PREFIX):
            stem = span.source.path[len(BUNDLED_PREFIX):].removesuffix(".cnn")
            return (f"\nnote: {span.source.path} is bundled with cnndsl, at {bundled_file(stem)}; "
                    f"'cnndsl show {stem} -o {stem}.cnn' copies it")
    return ""


COMMANDS = {"check": _check, "analyze": _analyze, "compile": _compile, "graph": _graph, "zoo": _zoo, "show": _show}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    collecting = gc.isenabled()
    gc.disable()  # one short run makes many objects and few cycles: collecting cost a quarter of a large analyze
    try:
        text = COMMANDS[args.command](args)
    except CnnError as exc:
        print(exc.format() + _bundled_note(exc), file=sys.stderr)
        return 1
    except RecursionError:
        print("cnndsl: error: the network is nested too deeply to elaborate", file=sys.stderr)
        return 1
    except Exception:  # a compiler bug, not a user mistake: say so, briefly
        if os.environ.get("CNNDSL_DEBUG"):
            raise
        kind = sys.exc_info()[0].__name__
        print(f"cnndsl: internal error ({kind}); this is a bug in cnndsl, not in your file. "
              f"Run with CNNDSL_DEBUG=1 for details and report it.", file=sys.stderr)
        return 2
    finally:
        if collecting:
            gc.enable()
    try:
        if text is not None:
            print(text)
    except BrokenPipeError:  # `cnndsl analyze ... | head`
        sys.stderr.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
