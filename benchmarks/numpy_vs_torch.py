"""How fast is the NumPy backend's code? Side by side with the PyTorch backend's, same process, same threads.

    python benchmarks/numpy_vs_torch.py                    # ResNet-50, MobileNetV2, ViT-B/16; batch 8; 5 rounds
    python benchmarks/numpy_vs_torch.py --repeat 9 --batch 8 --models resnet50
    python benchmarks/numpy_vs_torch.py --breakdown        # and the NumPy time per kernel
    python benchmarks/numpy_vs_torch.py --quick            # small inputs (3x64x64), 2 rounds: a smoke test
    python benchmarks/numpy_vs_torch.py --threads 1         # one thread each: steadier on a busy machine

What is measured, for each network (ViT-B/16 only when architectures/ has it):
1. The model: `cnndsl.load(name)` at its own input size; the PyTorch side is `cnndsl.to_torch(net)` in eval
   mode under torch.no_grad(); the NumPy side is the file `cnndsl compile NAME --backend numpy` writes,
   imported from a temporary folder as a user would, with the PyTorch model's state_dict loaded.
2. Threads: 2 for each (--threads N). torch.set_num_threads(2); for NumPy's BLAS (OpenBLAS, MKL...) the count is
   read from OPENBLAS_NUM_THREADS / OMP_NUM_THREADS / MKL_NUM_THREADS when numpy is first imported, so the
   script re-executes itself with those set before anything imports numpy.
3. Timing: one warm-up call each, then --repeat rounds; each round times one call of each, alternating
   which goes first, so both see the same machine state (interleaved). Reported: the median time of
   each, the median of the per-round ratios NumPy / PyTorch, and the throughput in GFLOP/s computed
   from `analyze`'s MACs (2 FLOPs per multiply-accumulate, the matrix work) for the batch.
4. Ceiling: NumPy's own matrix-product rate on this machine (a 2048x2048 float32 matmul, best of 5) and
   torch's, the same way: what fraction of its peak each side reaches on a whole network.
5. Agreement: the two outputs' relative error (max |numpy - torch| / max |torch|), as a sanity check.

The target of the NumPy backend's issue: a ratio of at most 2.0 on ResNet-50. On a shared machine,
compare ratios from the same run (interleaving cancels most of the drift), not absolute times. With
2 threads, both sides' worker threads wait for cores that other jobs hold, and the times swing by 2-5x;
ViT suffers most on the NumPy side, whose attention makes 2 x 96 small BLAS calls per layer (one per
sample and head, np.matmul's loop over the stack), each a hand-off between OpenBLAS threads.
"""

from __future__ import annotations

import os
import sys


def _threads(argv: list[str]) -> str:
    """--threads N (or --threads=N), read before numpy is imported; 2 by default."""
    for i, arg in enumerate(argv):
        if arg.startswith("--threads="):
            return arg.split("=", 1)[1]
        if arg == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
    return "2"


THREADS = _threads(sys.argv)
_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
if __name__ == "__main__" and any(os.environ.get(k) != THREADS for k in _ENV) and "numpy" not in sys.modules:
    os.environ.update({k: THREADS for k in _ENV})
    os.execv(sys.executable, [sys.executable, *sys.argv])  # BLAS reads its thread count at import

import argparse  # noqa: E402 - after the BLAS thread setting above
import ast  # noqa: E402 - after the BLAS thread setting above
import importlib.util  # noqa: E402 - after the BLAS thread setting above
import json  # noqa: E402 - after the BLAS thread setting above
import statistics  # noqa: E402 - after the BLAS thread setting above
import tempfile  # noqa: E402 - after the BLAS thread setting above
import time  # noqa: E402 - after the BLAS thread setting above
from pathlib import Path  # noqa: E402 - after the BLAS thread setting above

import numpy as np  # noqa: E402 - after the BLAS thread setting above

MODELS = ("resnet50", "mobilenet_v2", "vit_b_16")


def matmul_peak(mm, make, n: int = 2048, repeat: int = 5) -> float:
    """GFLOP/s of an n x n float32 matrix product, best of `repeat`."""
    a, b = make(n), make(n)
    mm(a, b)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def import_generated(source: str, folder: Path, name: str):
    path = folder / f"{name}_numpy.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"{name}_numpy", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def timed_kernels(module, model_class) -> dict[str, list[float]]:
    """Wrap the kernels that __call__ calls with timers (kernels they call inside are not wrapped)."""
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    called = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "__call__":
            called = {n.func.id for n in ast.walk(node) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    times: dict[str, list[float]] = {}
    depth = [0]  # kernels call kernels (attention calls linear): only the outermost call is counted
    for name in sorted(called):
        fn = getattr(module, name, None)
        if not callable(fn) or isinstance(fn, type):
            continue

        def wrapper(*args, _fn=fn, _name=name, **kwargs):
            depth[0] += 1
            start = time.perf_counter()
            try:
                return _fn(*args, **kwargs)
            finally:
                depth[0] -= 1
                if depth[0] == 0:
                    times.setdefault(_name, []).append(time.perf_counter() - start)

        setattr(module, name, wrapper)
    return times


def bench(name: str, args, folder: Path) -> dict | None:
    import torch
    from cnndsl.backends.pytorch import class_name

    import cnndsl
    from cnndsl.loader import zoo_index

    if name not in zoo_index():
        return {"name": name, "skipped": f"'{name}' is not in the zoo (architectures/)"}
    net = cnndsl.load(name, inputs={"x": args.input} if args.input else None)
    totals = cnndsl.analyze(net)
    torch.manual_seed(0)
    tm = cnndsl.to_torch(net).eval()
    module = import_generated(cnndsl.compile(net, "numpy"), folder, name)
    model = getattr(module, class_name(net))(tm.state_dict())
    shape = net.type_of(next(iter(net.inputs.values()))).shape
    x = np.random.default_rng(0).standard_normal((args.batch, *shape)).astype(np.float32)
    xt = torch.from_numpy(x)
    with torch.no_grad():
        expected = tm(xt).numpy()  # warm-up of both, and the agreement check
        got = model(x)
        error = float(np.abs(got - expected).max() / np.abs(expected).max())
        times = {"torch": [], "numpy": []}
        for round_ in range(args.repeat):
            order = ("torch", "numpy") if round_ % 2 == 0 else ("numpy", "torch")
            for side in order:
                start = time.perf_counter()
                tm(xt) if side == "torch" else model(x)
                times[side].append(time.perf_counter() - start)
    breakdown = None
    if args.breakdown:
        per_kernel = timed_kernels(module, type(model))
        start = time.perf_counter()
        model(x)
        total = time.perf_counter() - start
        breakdown = {"total_s": total, "kernels": {k: [len(v), sum(v)] for k, v in per_kernel.items()}}
    gflop = 2 * totals["macs"] * args.batch / 1e9
    med = {side: statistics.median(v) for side, v in times.items()}
    ratios = [n / t for n, t in zip(times["numpy"], times["torch"])]
    return {"name": name, "input": str(net.type_of(next(iter(net.inputs.values())))), "batch": args.batch,
            "gflop": gflop, "flops_analyze_g": totals["flops"] * args.batch / 1e9, "times": times, "median": med,
            "ratio": statistics.median(ratios), "ratio_of_medians": med["numpy"] / med["torch"],
            "gflops": {side: gflop / t for side, t in med.items()}, "rel_error": error, "breakdown": breakdown}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated zoo names")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeat", type=int, default=5, help="timed rounds (each times one call of each)")
    p.add_argument("--input", help="override the input shape, e.g. 3x64x64")
    p.add_argument("--breakdown", action="store_true", help="also time the NumPy model kernel by kernel")
    p.add_argument("--quick", action="store_true", help="3x64x64 inputs (3x32x32 for ViT), 2 rounds")
    p.add_argument("--threads", default=THREADS, help="threads for each side (default 2)")
    p.add_argument("--json", metavar="FILE", help="write the measurements here")
    args = p.parse_args()
    if args.quick:
        args.repeat, args.input = 2, args.input or "3x64x64"

    import torch

    torch.set_num_threads(int(THREADS))
    rng = np.random.default_rng(0)
    numpy_peak = matmul_peak(np.matmul, lambda n: rng.standard_normal((n, n), dtype=np.float32))
    torch_peak = matmul_peak(torch.matmul, lambda n: torch.randn(n, n))
    print(f"threads: torch {torch.get_num_threads()}, BLAS " + ", ".join(f"{k}={os.environ.get(k)}" for k in _ENV))
    print(f"matrix-product peak (2048x2048 float32, best of 5): numpy {numpy_peak:.1f} GFLOP/s, "
          f"torch {torch_peak:.1f} GFLOP/s")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            if args.quick and name.startswith("vit") and args.input == "3x64x64":
                args_vit = argparse.Namespace(**{**vars(args), "input": None})
                result = bench_small_vit(name, args_vit, Path(tmp))
            else:
                result = bench(name, args, Path(tmp))
            results.append(result)
            if "skipped" in result:
                print(f"\n{name}: skipped: {result['skipped']}")
                continue
            print(f"\n{name} (input {result['input']}, batch {result['batch']}, "
                  f"{result['gflop']:.1f} GFLOP of matrix work = 2 x MACs)")
            for side in ("torch", "numpy"):
                peak = torch_peak if side == "torch" else numpy_peak
                ts = ", ".join(f"{t:.3f}" for t in result["times"][side])
                print(f"  {side:6s} median {result['median'][side]:.3f} s  ({ts})  "
                      f"{result['gflops'][side]:.1f} GFLOP/s = {result['gflops'][side] / peak:.0%} of its matmul peak")
            verdict = "" if name != "resnet50" else ("  (target <= 2.0: met)" if result["ratio"] <= 2.0 else
                                                      "  (target <= 2.0: NOT met)")
            print(f"  ratio NumPy / PyTorch: median of rounds {result['ratio']:.2f}, of medians "
                  f"{result['ratio_of_medians']:.2f}{verdict}")
            print(f"  outputs agree to a relative error of {result['rel_error']:.1e}")
            if result["breakdown"]:
                b = result["breakdown"]
                print(f"  NumPy time by kernel (one call, {b['total_s']:.3f} s):")
                for k, (calls, secs) in sorted(b["kernels"].items(), key=lambda kv: -kv[1][1]):
                    print(f"    {k:18s} {calls:4d} calls  {secs:7.3f} s  {secs / b['total_s']:5.1%}")
    if args.json:
        Path(args.json).write_text(json.dumps({"numpy_peak": numpy_peak, "torch_peak": torch_peak,
                                               "results": results}, indent=2))
    return 0


def bench_small_vit(name: str, args, folder: Path) -> dict:
    """--quick: ViT at 32x32 (its position embedding follows image_size, so the input is not enough)."""
    import cnndsl

    original = cnndsl.load

    def load(target, inputs=None, settings=None, **params):
        return original(target, None, settings, image_size=32, **params)

    cnndsl.load = load
    try:
        return bench(name, args, folder)
    finally:
        cnndsl.load = original


if __name__ == "__main__":
    sys.exit(main())
