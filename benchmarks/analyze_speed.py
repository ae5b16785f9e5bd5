"""How fast is `cnndsl analyze`? Fresh processes, medians, side by side with torchinfo and fvcore.

    python benchmarks/analyze_speed.py              # full run: 5 timed repetitions of everything
    python benchmarks/analyze_speed.py --quick      # one repetition, no warm-up runs
    python benchmarks/analyze_speed.py --profile    # also cProfile the largest synthetic network

Every measurement runs in a fresh interpreter (`sys.executable`) and is wall-clock time around the
child process; tables give the median (and min) of --repeat runs, after one untimed warm-up run.

1. One torchvision model, ResNet-152, counted three ways:
   (a) `python -m cnndsl analyze resnet152 --format json`, output discarded (the preset; before it
       existed, `resnet50 --set layers=[3,8,36,3]`: the script uses whichever works);
   (b) torchinfo: import torch + torchvision, build resnet152(weights=None), summary(..., verbose=0);
   (c) fvcore: the same model, FlopCountAnalysis(...).total() and parameter_count(...);
   (d) `python -c "import torch"` alone: the floor under (b) and (c).
   Each child also times its own phases (imports, building the model, counting) and reports the
   numbers it found, so the table shows that the tools measured the same model.
2. Depth: synthetic networks of 100, 1,000 and 10,000 layers (residual units conv -> relu -> conv
   -> relu -> add on a 16x32x32 input), written out statement by statement ("unrolled": the source
   grows with the network, so the parser works too) and as one `for` loop ("loop": constant source).
   Linear cost means a constant cost per layer. Besides the wall time, each child reports the time
   of the analysis itself (cnndsl.cli.main, after the imports), which is free of startup noise.
3. Startup: `python -c "import cnndsl.cli"`, and `python -X importtime` of a whole `analyze`: which
   modules and packages cost what.
4. Whether `analyze` leaves torch out of sys.modules (a WARNING if not; every cnndsl child checks).

Standard library only, plus the tools it measures: torchinfo, fvcore, torch and torchvision are
optional and reported as not installed. Children run in a temporary directory, so they exercise the
installed package; when cnndsl is not installed, the checkout is put on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
MARK = "BENCH_JSON "  # children print one line `BENCH_JSON {...}` with what they found
HEAVY = ("torch", "torchvision", "torchinfo", "fvcore")  # what the cnndsl core must never import
ENV: dict = {}
CNNDSL_PAYLOADS: list[dict] = []  # every cnndsl child's report, for section 4
ANALYZE_IMPORTS = ("cnndsl.elaborate", "cnndsl.loader", "cnndsl.passes", "cnndsl.report")  # cli's lazy imports

# ---------------------------------------------------------------------------------------------------
# running children


def child_env() -> dict:
    env = dict(os.environ)
    env.pop("CNNDSL_DEBUG", None)
    env["PYTHONWARNINGS"] = "ignore"
    if importlib.util.find_spec("cnndsl") is None:  # not installed: use the checkout
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    return env


class Failed(Exception):
    pass


def run_once(cmd: list[str], cwd: str, capture: bool = False) -> tuple[float, str, str]:
    """Run cmd once; return (wall seconds, stdout, stderr). stdout goes to /dev/null unless captured."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, check=False, cwd=cwd, env=ENV, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or "").strip().splitlines()[-6:])
        shown = " ".join(a if len(a) < 60 else "<program>" for a in cmd)
        raise Failed(f"exit {proc.returncode}: {shown}\n{textwrap.indent(tail, '    ')}")
    return elapsed, proc.stdout or "", proc.stderr or ""


def payloads_in(*texts: str) -> list[dict]:
    return [json.loads(line[len(MARK):]) for text in texts for line in text.splitlines() if line.startswith(MARK)]


def timed(cmd: list[str], cwd: str, repeat: int, warmup: bool, capture: bool = False):
    """(median, min) wall seconds over `repeat` fresh runs, after one untimed warm-up run if asked,
    and the BENCH_JSON payloads the timed runs printed (stdout only if captured; stderr always)."""
    if warmup:
        run_once(cmd, cwd)
    times, payloads = [], []
    for _ in range(repeat):
        t, out, err = run_once(cmd, cwd, capture)
        times.append(t)
        payloads += payloads_in(out, err)
    return statistics.median(times), min(times), payloads


def median_of(payloads: list[dict], key: str):
    values = [p[key] for p in payloads if p.get(key) is not None]
    return statistics.median(values) if values else None


def missing(*modules: str) -> list[str]:
    """The modules among these that are not installed (found without importing them)."""
    out = []
    for m in modules:
        try:
            if importlib.util.find_spec(m) is None:
                out.append(m)
        except (ImportError, ValueError):
            out.append(m)
    return out


# ---------------------------------------------------------------------------------------------------
# the cnndsl child: what the `cnndsl` console script runs (from cnndsl.cli import main; main()),
# with its output left on stdout, timing itself and checking sys.modules on stderr

CNNDSL_CHILD = """
import json, sys, time
t0 = time.perf_counter()
from cnndsl.cli import main
for m in ANALYZE_IMPORTS:  # analyze's lazy imports; __import__, not importlib, so -X importtime sees them
    try:
        __import__(m)
    except ImportError:
        pass
t1 = time.perf_counter()
rc = main(ARGV)
t2 = time.perf_counter()
sys.stdout.flush()
print("BENCH_JSON " + json.dumps({"import_s": t1 - t0, "work_s": t2 - t1, "rc": rc, "modules": len(sys.modules),
      "heavy": sorted(m for m in HEAVY if m in sys.modules)}), file=sys.stderr)
sys.exit(rc)
"""


def cnndsl_child(argv: list[str]) -> list[str]:
    code = (CNNDSL_CHILD.replace("ARGV", repr(argv)).replace("HEAVY", repr(HEAVY))
            .replace("ANALYZE_IMPORTS", repr(ANALYZE_IMPORTS)))
    return [PY, "-c", code]


def timed_cnndsl(argv: list[str], cwd: str, repeat: int, warmup: bool):
    med, lo, payloads = timed(cnndsl_child(argv), cwd, repeat, warmup)
    CNNDSL_PAYLOADS.extend({**p, "argv": argv} for p in payloads)
    return med, lo, payloads


# ---------------------------------------------------------------------------------------------------
# formatting


def fmt_s(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def fmt_int(x) -> str:
    return "-" if x is None else f"{int(x):,}"


def table(headers: list[str], rows: list[list[str]], left: tuple[int, ...] = (0,)) -> str:
    """Columns in `left` left-aligned, the others right-aligned."""
    widths = [max(len(str(r[i])) for r in [headers] + rows) for i in range(len(headers))]

    def line(cells):
        return "  ".join(str(c).ljust(w) if i in left else str(c).rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def section(title: str) -> None:
    print()
    print(title)
    print("=" * len(title))
    sys.stdout.flush()


def note(text: str) -> None:
    print(textwrap.dedent(text).strip("\n"))


# ---------------------------------------------------------------------------------------------------
# 1. ResNet-152 three ways

TORCHINFO_CHILD = """
import json, time
t0 = time.perf_counter()
import torch, torchvision, torchinfo
t1 = time.perf_counter()
model = torchvision.models.resnet152(weights=None)
t2 = time.perf_counter()
s = torchinfo.summary(model, input_size=(1, 3, 224, 224), verbose=0)
t3 = time.perf_counter()
print("BENCH_JSON " + json.dumps({"import_s": t1 - t0, "build_s": t2 - t1, "work_s": t3 - t2,
      "params": s.total_params, "macs": s.total_mult_adds}))
"""

FVCORE_CHILD = """
import json, logging, time
t0 = time.perf_counter()
import torch, torchvision
from fvcore.nn import FlopCountAnalysis, parameter_count
t1 = time.perf_counter()
model = torchvision.models.resnet152(weights=None)
t2 = time.perf_counter()
logging.disable(logging.WARNING)  # "Unsupported operator aten::add_ encountered ..." on every run
flops = FlopCountAnalysis(model, torch.randn(1, 3, 224, 224)).total()
params = parameter_count(model)[""]
t3 = time.perf_counter()
print("BENCH_JSON " + json.dumps({"import_s": t1 - t0, "build_s": t2 - t1, "work_s": t3 - t2,
      "params": params, "macs": flops}))
"""

TORCH_CHILD = """
import json, time
t0 = time.perf_counter()
import torch
print("BENCH_JSON " + json.dumps({"import_s": time.perf_counter() - t0}))
"""

TARGETS = (["resnet152"], ["resnet50", "--set", "layers=[3,8,36,3]"])


def resnet152_target(tmp: str) -> tuple[list[str], dict]:
    """The cnndsl arguments that name ResNet-152 (the preset, else resnet50 re-layered) and its totals."""
    errors = []
    for args in TARGETS:
        try:
            _t, out, _err = run_once([PY, "-m", "cnndsl", "analyze", *args, "--format", "json"], tmp, capture=True)
            return list(args), json.loads(out)["totals"]
        except Failed as exc:
            errors.append(str(exc))
    raise Failed("neither resnet152 nor resnet50 --set layers=[3,8,36,3] analyzes:\n" + "\n".join(errors))


def bench_tools(tmp: str, target: list[str], totals: dict, repeat: int, warmup: bool, skip: bool) -> None:
    section(f"1. ResNet-152, one fresh process per run (median of {repeat}"
            f"{', after a warm-up run' if warmup else ''})")
    print(f"cnndsl target: {' '.join(target)}\n")
    argv = ["analyze", *target, "--format", "json"]
    med, lo, _ = timed([PY, "-m", "cnndsl", *argv], tmp, repeat, warmup=False)  # resnet152_target warmed up
    _m, _l, split = timed_cnndsl(argv, tmp, repeat, warmup=False)
    base = med
    rows = [["(a) cnndsl analyze --format json", fmt_s(med), fmt_s(lo), "1.0x", fmt_s(median_of(split, "import_s")),
             "-", fmt_s(median_of(split, "work_s")), fmt_int(totals["params"]), fmt_int(totals["macs"])]]
    specs = [
        ("(b) torchinfo.summary", ("torch", "torchvision", "torchinfo"), TORCHINFO_CHILD),
        ("(c) fvcore FlopCountAnalysis + parameter_count", ("torch", "torchvision", "fvcore"), FVCORE_CHILD),
        ('(d) python -c "import torch" (floor of b, c)', ("torch",), TORCH_CHILD),
    ]
    notes = []
    for label, needs, code in specs:
        absent = missing(*needs)
        if skip or absent:
            rows.append([label, "skipped" if skip else "not installed"] + [""] * 7)
            if absent and not skip:
                notes.append(f"NOTE {label}: not installed: {', '.join(absent)}")
            continue
        try:
            med, lo, payloads = timed([PY, "-c", code], tmp, repeat, warmup, capture=True)
        except Failed as exc:
            rows.append([label, "failed"] + [""] * 7)
            notes.append(f"NOTE {label} failed: {exc}")
            continue
        rows.append([label, fmt_s(med), fmt_s(lo), f"{med / base:.1f}x"] +
                    [fmt_s(median_of(payloads, k)) for k in ("import_s", "build_s", "work_s")] +
                    [fmt_int(median_of(payloads, k)) for k in ("params", "macs")])
    print(table(["tool", "median s", "min s", "vs cnndsl", "import s", "build s", "count s", "params", "MACs"],
                rows))
    print()
    note("""
        median/min s: wall time of the fresh process. import/build/count s: the child's own timing of its
        imports (cnndsl: the modules analyze uses; b, c: torch + torchvision + the tool), of building
        torchvision.models.resnet152(weights=None), and of the analysis itself (cnndsl.cli.main, printing
        included; summary; FlopCountAnalysis(...).total() + parameter_count). MACs: cnndsl's MACs,
        torchinfo's total_mult_adds, fvcore's total(), which counts one multiply-add as one "flop" and
        also counts batch norm and adaptive pooling, so it differs slightly.""")
    for n in notes:
        print(n)


# ---------------------------------------------------------------------------------------------------
# 2. depth scaling

UNIT = "y = y + (y -> conv(16, 3, pad=1) -> relu -> conv(16, 3, pad=1) -> relu)"  # 5 nodes
UNIT_NODES = 5


def synthetic(layers: int, loop: bool) -> str:
    """A network of exactly `layers` nodes besides its input: residual units of five, relus to pad."""
    units, rest = divmod(layers, UNIT_NODES)
    style = "one loop" if loop else "unrolled"
    lines = [f"# synthetic: {layers} layers ({units} residual units + {rest} relu), {style}",
             "network deep() {", '    "synthetic depth benchmark"', "    input x: 16x32x32", "    y = x"]
    if loop and units:
        lines += [f"    for i in range({units}) {{", f"        {UNIT}", "    }"]
    else:
        lines += [f"    {UNIT}"] * units
    lines += ["    y = y -> relu"] * rest
    lines += ["    output out = y", "}"]
    return "\n".join(lines) + "\n"


STYLES = (("unrolled", "one statement per residual unit: the source grows with the network"),
          ("loop", "the same network as one `for` loop: constant source"))


def bench_depth(tmp: str, sizes: list[int], repeat: int) -> None:
    section(f"2. Depth scaling: cnndsl analyze FILE --format json > /dev/null (median of {repeat})")
    wall, work = {}, {}  # (style, size) -> median seconds
    for style, _ in STYLES:
        for n in sizes:
            path = Path(tmp) / f"deep_{style}_{n}.cnn"
            path.write_text(synthetic(n, loop=style == "loop"))
            # one untimed run checks the node count (and warms the caches)
            big = ["--max-nodes", str(2 * n + 10)]  # past the default limit (cnndsl.limits.NODES_MAX) for large sizes
            _t, out, _err = run_once([PY, "-m", "cnndsl", "analyze", str(path), "--format", "json", *big], tmp,
                                     capture=True)
            got = len(json.loads(out)["layers"]) - 1  # minus the input
            if got != n:
                print(f"WARNING: {path.name} has {got} layers, expected {n}")
            med, _lo, payloads = timed_cnndsl(["analyze", str(path), "--format", "json", *big], tmp, repeat,
                                              warmup=False)
            wall[(style, n)], work[(style, n)] = med, median_of(payloads, "work_s")

    for style, what in STYLES:
        rows, prev = [], None
        for n in sizes:
            w, a = wall[(style, n)], work[(style, n)]
            row = [f"{n:,}", fmt_s(w), f"{1e6 * w / n:,.0f}", fmt_s(a), f"{1e6 * a / n:,.0f}"]
            if prev is None:
                row += ["", ""]
            else:
                ap = work[(style, prev)]
                row += [f"{a / ap:.1f}x for {n / prev:.0f}x", f"{1e6 * (a - ap) / (n - prev):,.0f}"]
            rows.append(row)
            prev = n
        print(f"\n{style}: {what}")
        print(table(["layers", "wall s", "wall us/layer", "analysis s", "analysis us/layer", "analysis ratio",
                     "marginal us/layer"], rows))
    print()
    note("""
        wall: the fresh process, startup (interpreter + imports, about 0.1-0.2 s) included. analysis: the time
        of cnndsl.cli.main in that process, after its imports: parse, elaborate, passes, JSON. marginal: extra
        analysis time per extra layer since the previous size. Linear cost means analysis us/layer stays
        flat while the size grows tenfold; unrolled minus loop is the parser's share.""")
    if len(sizes) >= 2:  # verdict on the two largest sizes
        a, b = sizes[-2], sizes[-1]
        for style, _ in STYLES:
            per_a, per_b = work[(style, a)] / a, work[(style, b)] / b
            growth = per_b / per_a
            verdict = ("linear (analysis cost per layer within 1.5x)" if growth <= 1.5 else
                       f"WARNING: superlinear, analysis cost per layer grew {growth:.1f}x for {b / a:.0f}x the layers")
            print(f"{style:8s} {a:,} -> {b:,} layers: {1e6 * per_a:,.0f} -> {1e6 * per_b:,.0f} us/layer: {verdict}")


# ---------------------------------------------------------------------------------------------------
# 3. startup and imports


def parse_importtime(stderr: str) -> dict[str, tuple[int, int, str]]:
    """module -> (self us, cumulative us, the module that imported it) from `python -X importtime`.
    A module's line comes after those of the modules it imported, indented two spaces more."""
    found, waiting = {}, {}  # waiting: depth -> modules at that depth whose importer is not yet seen
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cum_us, name = line.split(":", 1)[1].split("|")
        name = name[1:]  # one space after the bar, then two per nesting level
        depth = (len(name) - len(name.lstrip(" "))) // 2
        name = name.strip()
        for child in waiting.pop(depth + 1, []):
            found[child] = found[child][:2] + (name,)
        found[name] = (int(self_us), int(cum_us), "")
        waiting.setdefault(depth, []).append(name)
    return found


def bench_startup(tmp: str, target: list[str], repeat: int, warmup: bool) -> None:
    section(f"3. Startup (median of {repeat})")
    rows = []
    for label, cmd in [('python -c "pass"', [PY, "-c", "pass"]),
                       ('python -c "import cnndsl.cli"', [PY, "-c", "import cnndsl.cli"]),
                       ('python -c "import cnndsl.cli" + the modules analyze imports',
                        [PY, "-c", "import cnndsl.cli, " + ", ".join(ANALYZE_IMPORTS)]),
                       ("python -m cnndsl zoo", [PY, "-m", "cnndsl", "zoo"])]:
        try:
            med, lo, _ = timed(cmd, tmp, repeat, warmup)
            rows.append([label, fmt_s(med), fmt_s(lo)])
        except Failed as exc:
            rows.append([label, "failed", ""])
            print(f"NOTE {label} failed: {exc}")
    print(table(["command", "median s", "min s"], rows))

    # import-time breakdown of a whole analyze, per module: medians over the runs
    argv = ["analyze", *target, "--format", "json"]
    runs = []
    for _ in range(repeat):
        _t, _out, err = run_once(cnndsl_child(argv)[:1] + ["-X", "importtime"] + cnndsl_child(argv)[1:], tmp)
        runs.append(parse_importtime(err))
    names = set().union(*runs)
    med = {m: (statistics.median(r.get(m, (0, 0, ""))[0] for r in runs),
               statistics.median(r.get(m, (0, 0, ""))[1] for r in runs),
               next((r[m][2] for r in runs if m in r), "")) for m in names}
    total = sum(v[0] for v in med.values())
    print(f"\npython -X importtime, cnndsl analyze {' '.join(target)}: {len(med)} modules, "
          f"{total / 1e3:.0f} ms of imports in all (importtime's own overhead included)")
    by_pkg: dict[str, float] = {}
    for m, (s, _c, _p) in med.items():
        by_pkg[m.split(".")[0]] = by_pkg.get(m.split(".")[0], 0) + s
    top_pkgs = sorted(by_pkg.items(), key=lambda kv: -kv[1])[:10]
    print("\nBy top-level package (sum of its modules' self times):")
    print(table(["package", "ms", "share"], [[p, f"{s / 1e3:.1f}", f"{100 * s / total:.0f}%"] for p, s in top_pkgs]))
    top = sorted(med.items(), key=lambda kv: -kv[1][1])[:16]
    print("\nSlowest imports (cumulative: the module and what it imported first):")
    print(table(["module", "cumulative ms", "self ms", "imported by"],
                [[m, f"{c / 1e3:.1f}", f"{s / 1e3:.1f}", p or "-"] for m, (s, c, p) in top], left=(0, 3)))
    top = sorted(med.items(), key=lambda kv: -kv[1][0])[:10]
    print("\nLargest self times (the module's own code: class bodies, tables, regexes compiled at import):")
    print(table(["module", "self ms", "imported by"], [[m, f"{s / 1e3:.1f}", p or "-"] for m, (s, c, p) in top],
                left=(0, 2)))


# ---------------------------------------------------------------------------------------------------
# 4. torch must stay out


def check_no_torch(tmp: str, target: list[str]) -> None:
    section("4. Does analyze import torch?")
    argv = ["analyze", *target, "--format", "json"]
    _t, _out, err = run_once(cnndsl_child(argv), tmp)
    CNNDSL_PAYLOADS.extend({**p, "argv": argv} for p in payloads_in(err))
    bad = [p for p in CNNDSL_PAYLOADS if p["heavy"]]
    failed = [p for p in CNNDSL_PAYLOADS if p["rc"] != 0]
    for p in failed:
        print(f"WARNING: cnndsl.cli.main({p['argv']}) returned {p['rc']}")
    for p in bad:
        print(f"WARNING: after cnndsl.cli.main({p['argv']}), sys.modules holds {', '.join(p['heavy'])}: "
              f"the core must not import torch")
    if not bad:
        mods = sorted({p["modules"] for p in CNNDSL_PAYLOADS if p["argv"] == argv})
        print(f"ok: torch is not in sys.modules after any of the {len(CNNDSL_PAYLOADS)} cnndsl.cli.main runs "
              f"(analyze {' '.join(target)} leaves {mods[-1]} modules loaded)")


# ---------------------------------------------------------------------------------------------------
# optional: profile


def profile(tmp: str, size: int, top: int = 25) -> None:
    section(f"5. cProfile of cnndsl analyze, the {size:,}-layer unrolled network (profiler overhead included)")
    path = Path(tmp) / f"deep_profile_{size}.cnn"
    path.write_text(synthetic(size, loop=False))
    code = textwrap.dedent(f"""
        import contextlib, cProfile, io, pstats
        import cnndsl.cli
        prof = cProfile.Profile()
        with contextlib.redirect_stdout(io.StringIO()):
            prof.enable()
            cnndsl.cli.main(["analyze", {str(path)!r}, "--format", "json", "--max-nodes", "{2 * size + 10}"])
            prof.disable()
        for key in ("tottime", "cumulative"):
            print(f"--- top {top} by {{key}} ---")
            s = io.StringIO()
            pstats.Stats(prof, stream=s).strip_dirs().sort_stats(key).print_stats({top})
            text = s.getvalue()
            print(text[text.index("   ncalls"):].rstrip())
    """)
    _t, out, _err = run_once([PY, "-c", code], tmp, capture=True)
    print(out.rstrip())


# ---------------------------------------------------------------------------------------------------


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for m in ("cnndsl", "lark", "networkx", "torch", "torchvision", "torchinfo", "fvcore"):
        try:
            found.append(f"{m} {version(m)}")
        except PackageNotFoundError:
            found.append(f"{m} not installed")
    return "; ".join(found)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=5, help="timed fresh runs per measurement (default 5)")
    p.add_argument("--quick", action="store_true", help="one run per measurement, no warm-up runs")
    p.add_argument("--sizes", default="100,1000,10000", help="synthetic network sizes (default 100,1000,10000)")
    p.add_argument("--profile", action="store_true", help="also cProfile cnndsl on the largest synthetic network")
    p.add_argument("--skip-tools", action="store_true", help="skip torchinfo, fvcore and torch (1b-1d)")
    args = p.parse_args(argv)
    repeat = 1 if args.quick else max(1, args.repeat)
    warmup = not args.quick
    try:
        sizes = sorted({int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()})
    except ValueError:
        p.error("--sizes: a comma-separated list of integers, e.g. 100,1000,10000")
    if not sizes or sizes[0] < 1:
        p.error("--sizes: sizes must be positive")

    ENV.update(child_env())
    print(f"python {sys.version.split()[0]} ({PY}); {os.cpu_count()} CPUs; {repeat} timed run(s) per measurement"
          f"{', after a warm-up run' if warmup else ''}")
    print(versions())

    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cnndsl-bench-") as tmp:
        try:
            target, totals = resnet152_target(tmp)
            bench_tools(tmp, target, totals, repeat, warmup, args.skip_tools)
            bench_depth(tmp, sizes, repeat)
            bench_startup(tmp, target, repeat, warmup)
            check_no_torch(tmp, target)
            if args.profile:
                profile(tmp, sizes[-1])
        except Failed as exc:
            print(f"\nERROR: a cnndsl run failed: {exc}")
            return 1
    print(f"\n(benchmark took {time.perf_counter() - t_start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
