"""Write docs/zoo.md, the table of every bundled architecture, from `cnndsl analyze --format json`.

    python docs/gen_zoo.py            rewrite docs/zoo.md and the drawings in docs/gallery/
    python docs/gen_zoo.py --check    exit 1 if either is stale (tests/test_docs.py and tests/test_graph.py check)

Every figure in the page is what `cnndsl analyze TARGET --format json` prints today (the command runs
in-process, exactly as a user types it), so the page cannot drift from the compiler. Families come in the
order of their papers' years; each opens with the citation that heads its .cnn file. Besides the presets,
a few `--set` variants named by the papers are listed (GoogLeNet without its auxiliary classifiers,
MobileNet's resolution multiplier, EfficientNet's compound-scaling parameter phi, Inception v3 without
its auxiliary classifier).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import sys
from pathlib import Path

DOC = Path(__file__).resolve().with_name("zoo.md")
GALLERY = DOC.with_name("gallery")

# (target, --set values): the variants worth a row of their own, after the presets of their file
VARIANTS: dict[str, list[tuple[str, list[str]]]] = {
    "googlenet.cnn": [("googlenet", ["aux_logits=false"])],
    "inception_v3.cnn": [("inception_v3", ["aux_logits=false"])],
    "mobilenet_v1.cnn": [("mobilenet_v1", [f"resolution={r}"]) for r in (192, 160, 128)],
    "efficientnet.cnn": [("efficientnet", [f"phi={phi}"]) for phi in (1, 2, 3)],
}

INTRO = """\
Every architecture cnndsl ships, with what `cnndsl analyze` reports for it at its default input, batch 1.

- **params**: trainable parameters plus fixed ones (LeNet-5's RBF prototypes), as `sum(p.numel())` counts
  them on the generated PyTorch module; buffers (batch-norm statistics) are not parameters.
- **MACs**: multiply-accumulates of convolutions, linear layers and attention's matrix products, per
  sample: the convention of fvcore and of torchvision's documentation ("GFLOPS" there).
- **peak activations**: the largest set of activations alive at once when the layers run in order
  (float32, batch 1), in KiB or MiB (2^10, 2^20 bytes); `cnndsl analyze` gives the exact bytes. These
  are the tensors that flow between ops; what an op holds only while it runs (attention's score
  matrix, the hidden layer inside a ViT MLP block, a convolution library's workspace) is not counted.
- **receptive field**: of the last spatial layer before each output (the figure papers quote): its size
  and effective stride per spatial axis (one number where all axes agree). `g` marks a field that a
  squeeze-excitation gate upstream also lets see the whole image (the size is its conv path's field);
  `global` means no local field is left.

Where torchvision has the model, the file uses its layer names, and the tests check parameters,
buffers, MACs (against `torch.utils.flop_counter`), weight loading with `strict=True` and equal
outputs against torchvision itself; the NumPy backend's output is checked against the PyTorch
backend's for every preset. Reproduce any row with `cnndsl analyze NAME` (add `--format json` for
the exact figures).
"""


def analyze(target: str, settings: list[str]) -> dict:
    """`cnndsl analyze TARGET --set ... --format json`, run in-process; it must succeed without a warning."""
    return json.loads(cli(["analyze", target, "--format", "json", *(a for s in settings for a in ("--set", s))]))


def cli(argv: list[str]) -> str:
    """`cnndsl ARGV...` run in-process; its standard output. It must succeed without a warning."""
    from cnndsl.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    if code != 0 or err.getvalue():
        raise SystemExit(f"`cnndsl {' '.join(argv)}` failed or warned:\n{err.getvalue()}")
    return out.getvalue()


def drawing(name: str) -> Path:
    return GALLERY / f"{name}.svg"


def stale_drawings() -> list[str]:
    """Presets whose drawing is missing or was made from other DOT text than `cnndsl graph NAME` gives now."""
    from cnndsl.draw import fingerprint_in
    from cnndsl.zoo import entries

    stale = []
    for entry in entries():
        path = drawing(entry.name)
        if not path.exists() or fingerprint_in(path.read_text(encoding="utf-8")) != fingerprint_in(
                cli(["graph", entry.name])):
            stale.append(entry.name)
    return stale


def write_gallery() -> None:
    from cnndsl.zoo import entries

    GALLERY.mkdir(exist_ok=True)
    names = {e.name for e in entries()}
    for old in GALLERY.glob("*.svg"):
        if old.stem not in names:
            old.unlink()
    for name in sorted(names):
        cli(["graph", name, "-o", str(drawing(name))])


def citation(path: Path) -> tuple[str, int]:
    """The first paragraph of the file's opening comment, and the first year in it."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#") or line.strip() == "#":
            break
        lines.append(line[1:].strip())
    text = " ".join(lines)
    year = re.search(r"\b(19|20)\d\d\b", text)
    return text, int(year.group()) if year else 9999


def dims(values: list[int]) -> str:
    return str(values[0]) if len(set(values)) == 1 else "x".join(map(str, values))


def field(rf) -> str:
    if rf is None:
        return "none"
    if rf == "global":
        return "global"
    return f"{dims(rf['size'])} / {dims(rf['stride'])}" + (" g" if rf["global_gate"] else "")


def size(n: int) -> str:
    return f"{n / 2**20:,.2f} MiB" if n >= 2**20 else f"{n / 2**10:,.1f} KiB"


def shapes(named: dict[str, list[int]]) -> str:
    return "<br>".join(f"{name} {'x'.join(map(str, shape))}" for name, shape in named.items())


def row(title: str, report: dict) -> str:
    t = report["totals"]
    params = f"{t['params']:,}" + (f" ({t['fixed_params']:,} fixed)" if t["fixed_params"] else "")
    rf = report["receptive_field"]
    return (f"| {title} | {shapes(report['inputs'])} | {shapes(report['outputs'])} | {params} | {t['macs']:,} "
            f"| {size(t['peak_activation_bytes'])} | {'<br>'.join(field(v) for v in rf.values())} "
            f"| {'<br>'.join(f'`{k}`' for k in rf)} |")


def render() -> str:
    from cnndsl.resources import architectures_dir
    from cnndsl.zoo import entries

    from cnndsl.loader import load_program

    by_file: dict[str, list] = {}
    for entry in entries():
        by_file.setdefault(entry.file, []).append(entry)
    cited = {f: citation(architectures_dir() / f) for f in by_file}
    titles = {}  # the family's name: its first network's one-line description, up to the colon
    for f, items in by_file.items():
        doc = load_program(architectures_dir() / f).networks[items[0].network].doc
        titles[f] = doc.partition(":")[0].strip()
    order = sorted(by_file, key=lambda f: (cited[f][1], f))

    head = ["<!-- generated by docs/gen_zoo.py from `cnndsl analyze --format json`; do not edit by hand: run",
            "     `python docs/gen_zoo.py` (tests/test_docs.py fails when this file is stale) -->", "",
            "# The model zoo", "", INTRO, "| family | presets |", "| --- | --- |"]
    body = []
    for f in order:
        text, year = cited[f]
        names = [e.name for e in by_file[f]]
        anchor = Path(f).stem
        head.append(f"| [{titles[f]}](#{anchor}) | {', '.join(f'`{n}`' for n in names)} |")
        body += ["", f'<a id="{anchor}"></a>', "", f"## {titles[f]}", "", text, "",
                 f"File: [architectures/{f}](../architectures/{f}).", "",
                 "| preset | input | output | params | MACs | peak activations | receptive field (size / stride) "
                 "| at |",
                 "| --- | --- | --- | ---: | ---: | ---: | --- | --- |"]
        for entry in by_file[f]:
            title = f"`{entry.name}`<br>{entry.description}<br>[drawing](gallery/{entry.name}.svg)"
            body.append(row(title, analyze(entry.name, [])))
        for target, settings in VARIANTS.get(f, []):
            title = f"`{target} {' '.join('--set ' + s for s in settings)}`"
            body.append(row(title, analyze(target, settings)))
    return "\n".join(head + body) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="exit 1 if docs/zoo.md is stale")
    args = p.parse_args(argv)
    text = render()
    if args.check:
        stale = stale_drawings()
        if not DOC.exists() or DOC.read_text(encoding="utf-8") != text or stale:
            print(f"{DOC} or the drawings of {', '.join(stale) or 'no preset'} are stale: run python docs/gen_zoo.py",
                  file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text, encoding="utf-8")
    write_gallery()
    print(f"updated {DOC} and {GALLERY}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
