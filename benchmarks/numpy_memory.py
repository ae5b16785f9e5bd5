"""Does the NumPy backend's model use the memory `cnndsl analyze` says it needs?

    python benchmarks/numpy_memory.py                          # ResNet-50, MobileNetV2, ViT-B/16, DenseNet-121
    python benchmarks/numpy_memory.py --models resnet18 --batch 4 --input 3x64x64
    python benchmarks/numpy_memory.py --default-malloc         # glibc's adaptive allocator, as users run it

`analyze` gives peak_activation_bytes: the largest sum, over the execution order, of the activations alive
at one step (per sample, float32; views share their input's storage). The generated __call__ deletes each
array after its last reader and works in place where the input is dead, so its arrays should follow that
figure, plus what a kernel needs while it runs: a convolution's padded input and patch matrix (im2col),
and the arrays inside composite ops that the IR does not see as nodes (attention's T x T scores, an
MLP's hidden layer).

For each network, in a fresh interpreter that never imports torch (weights are constants of the right
shapes; the values do not matter here):
- traced peak: the most memory NumPy held at once during one call, from tracemalloc (NumPy reports its
  array allocations to it), counting what the call allocates (not the weights, not the caller's input);
- RSS growth: the process's peak resident set (getrusage ru_maxrss) during its first call, minus its
  resident set just before. With --default-malloc off (the default), MALLOC_MMAP_THRESHOLD_=1 MiB makes
  every large array its own mapping, returned to the system when freed, so RSS follows the live arrays;
- the same model with its `del` lines removed from __call__: what the releases save. Rebinding a
  variable (`y = conv(y, ...)`) already frees its old array, so chains need no `del`; shortcuts and
  DenseNet's feature lists do.
Columns in MB (10^6 bytes): analyze's batch x peak_activation_bytes, batch x activation_bytes (everything,
never released), batch x the largest kernel temporaries (estimated from the IR by kernel_temporaries),
then the measurements, and the traced peak over the sum of the first and third columns.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

MODELS = ("resnet50", "mobilenet_v2", "vit_b_16", "densenet121")

CHILD = textwrap.dedent("""
    import importlib.util, json, resource, sys, tracemalloc
    import numpy as np

    path, class_name, batch, shape = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
    spec = importlib.util.spec_from_file_location("generated", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cls = getattr(module, class_name)
    state = {k: (np.ones if k.endswith("running_var") else np.zeros)(s, np.float32) + np.float32(0.01)
             for k, s in cls.SHAPES.items()}
    model = cls(state)
    del state
    x = np.random.default_rng(0).standard_normal((batch, *shape), dtype=np.float32)
    page = __import__("os").sysconf("SC_PAGE_SIZE")

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * page

    before = rss()
    model(x)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    tracemalloc.start()
    model(x)
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print("MEMORY_JSON " + json.dumps({"rss_before": before, "rss_growth": grown, "traced_peak": traced,
                                       "torch_imported": "torch" in sys.modules}))
""")


def without_releases(source: str) -> str:
    """The same file with __call__'s `del` statements removed."""
    head, _, body = source.partition("    def __call__(")
    body = re.sub(r"^        del [^\n]*\n", "", body, flags=re.MULTILINE)
    return head + "    def __call__(" + body


def kernel_temporaries(net) -> int:
    """Bytes per sample that the hungriest kernel holds while it runs, besides its input and output (which
    analyze counts): a convolution's padded input and patch matrix; attention's Q, K, V and its T x T
    scores per head; an MLP's hidden layer and GELU's scratch arrays; a padded pooling input."""
    from math import prod

    largest = 0
    for d in net.nodes():
        if d["kind"] != "op":
            continue
        x, a, out, extra = net.type_of(d["inputs"][0]), d["attrs"], d["type"], 0
        if d["op"] in ("conv", "dwconv"):
            if any(p != (0, 0) for p in a["padding"]):
                extra += x.channels * prod(s + left + right for s, (left, right) in zip(x.spatial, a["padding"]))
            if any(k != 1 for k in a["kernel"]) or any(s != 1 for s in a["stride"]):
                extra += x.channels * prod(a["kernel"]) * prod(out.spatial)
        elif d["op"] in ("maxpool", "avgpool") and any(a["pad"]):
            extra += x.channels * prod(s + 2 * p for s, p in zip(x.spatial, a["pad"]))
        elif d["op"] == "attention":
            tokens, dim = x.shape
            extra += 6 * tokens * dim + 2 * a["heads"] * tokens * tokens
        elif d["op"] == "mlp":
            extra += 4 * x.shape[0] * a["hidden"] if x.tokens else 4 * a["hidden"]
        largest = max(largest, 4 * extra)
    return largest


def run_child(path: Path, class_name: str, batch: int, shape, env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), class_name, str(batch), json.dumps(list(shape))],
                         capture_output=True, text=True, env=env, check=False)
    if out.returncode:
        raise RuntimeError(out.stderr)
    line = next(line for line in out.stdout.splitlines() if line.startswith("MEMORY_JSON "))
    return json.loads(line.removeprefix("MEMORY_JSON "))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--input", help="override the input shape, e.g. 3x64x64")
    p.add_argument("--default-malloc", action="store_true", help="leave glibc's mmap threshold adaptive")
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args()

    from cnndsl.backends.pytorch import class_name

    import cnndsl
    from cnndsl.loader import zoo_index

    env = {**os.environ, "OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    if not args.default_malloc:
        env["MALLOC_MMAP_THRESHOLD_"] = str(1 << 20)
    mb = 1e6
    rows = []
    header = (f"{'network':14s} {'input':>10s} {'peak act':>9s} {'all act':>9s} {'kern tmp':>9s} | "
              f"{'traced':>9s} {'RSS grow':>9s} {'no del':>9s}  traced / (peak act + kern tmp)")
    print(f"batch {args.batch}; MB; malloc: {'default' if args.default_malloc else 'mmap threshold 1 MiB'}")
    print(header)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            if name not in zoo_index():
                print(f"{name:14s} skipped: not in the zoo (architectures/)")
                continue
            net = cnndsl.load(name, inputs={"x": args.input} if args.input else None)
            totals = cnndsl.analyze(net)
            source = cnndsl.compile(net, "numpy")
            shape = net.type_of(next(iter(net.inputs.values()))).shape
            paths = {}
            for variant, text in (("released", source), ("no_del", without_releases(source))):
                paths[variant] = Path(tmp) / f"{name}_{variant}.py"
                paths[variant].write_text(text, encoding="utf-8")
            measured = run_child(paths["released"], class_name(net), args.batch, shape, env)
            kept = run_child(paths["no_del"], class_name(net), args.batch, shape, env)
            row = {"name": name, "input": "x".join(map(str, shape)), "batch": args.batch,
                   "peak_activation": args.batch * totals["peak_activation_bytes"],
                   "all_activations": args.batch * totals["activation_bytes"],
                   "kernel_temporaries": args.batch * kernel_temporaries(net), **measured,
                   "traced_peak_without_del": kept["traced_peak"]}
            rows.append(row)
            ratio = row["traced_peak"] / (row["peak_activation"] + row["kernel_temporaries"])
            print(f"{name:14s} {row['input']:>10s} {row['peak_activation'] / mb:9.1f} "
                  f"{row['all_activations'] / mb:9.1f} {row['kernel_temporaries'] / mb:9.1f} | "
                  f"{row['traced_peak'] / mb:9.1f} {row['rss_growth'] / mb:9.1f} "
                  f"{row['traced_peak_without_del'] / mb:9.1f}  {ratio:.2f}"
                  + ("  (torch was imported!)" if measured["torch_imported"] else ""))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
