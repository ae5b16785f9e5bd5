"""Fuzz cnndsl: every input ends in a result or a located CnnError, within 2 seconds; whatever compiles builds.

    python benchmarks/fuzz.py --count 100000              # 100,000 inputs (about 20-40 minutes on 1 core)
    python benchmarks/fuzz.py --minutes 5 --seed 7        # as many as fit in 5 minutes
    python benchmarks/fuzz.py --count 2000 --build-every 50   # build and run every 50th compiled model

Inputs, in turn: (a) random token streams of the language; (b) mutations of every bundled .cnn file
(tokens deleted, duplicated, swapped; numbers replaced by 0, -1, 2**63, 10**400, floats, nan, inf; names by
keywords, dunder names, non-ASCII, quotes, backslashes, NUL, \\u2028); (c) --set and --input values on
bundled presets. Each is loaded and analysed in this process (the fast path); every --compile-every-th
success is also compiled by both backends and parsed, and every --build-every-th compiled PyTorch model is
built and run on a random input of the network's shape.

Outcomes: ok, error (a CnnError with a position inside the input, or a command-line error), and the
failures: an unexpected exception, an error without a usable position, or a slow input (over 2 s of CPU
time; an alarm at 10 s of wall time stops a hang). Failing inputs are written to --failures (default
fuzz-failures/) to replay. The exit status is 1 when any failure was seen. tests/test_fuzz.py runs the same
generators under hypothesis.
"""

from __future__ import annotations

import argparse
import ast
import random
import re
import signal
import sys
import time
from pathlib import Path

import cnndsl
from cnndsl.resources import architectures_dir

TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|\w+|\*\*|->|//|[=!<>]=|[ \t]+|\n|.', re.DOTALL)
NUMBER = re.compile(r"\d+(\.\d*)?([eE][+-]?\d+)?")
NAME = re.compile(r"[A-Za-z_]\w*")
NUMBERS = ["0", "-1", "1", "2 ** 63", "2 ** 63 - 1", "10 ** 400", "1e400", "1e-400", "0.5", "2.5", "-0.0",
           "1e400 - 1e400", "9223372036854775807", "99999999999999999999", "2 ** 31", "65536", "3x224",
           "1000000", "10 ** 8"]
NAMES = ["None", "True", "False", "self", "torch", "nn", "F", "np", "math", "__call__", "__init__", "__class__",
         "_modules", "__dict__", "training", "forward", "if", "for", "in", "network", "block", "x", "y",
         "caf\u00e9", "\u00fc", "\u4e2d", '"', '\\"', "\\", "\x00", "\u2028", "'", "lambda", "import", "WeightError"]
SNIPPETS = ["0", "1", "-1", "3", "2.5", "1e9", "10 ** 9", "none", "true", "false", '"same"', '"x"', "x", "y",
            "planes", "stride", "[", "]", "(", ")", "{", "}", ",", ":", "=", "->", "+", "*", "/", "//", "**",
            "\n", "return", "network", "block", "if", "else", "for", "in", "input", "output", "preset", "import",
            "conv", "relu", "batchnorm", "add", "concat", "3x224x224", "tokens", "x.channels", "range(3)", "#",
            "linear", "adaptive_avgpool", "2 ** 63", "1e400", '"a.cnn"', "range(10 ** 6)", "enumerate",
            # layers whose size or receptive-field rule grows with their arguments
            "adaptive_avgpool(10 ** 8)", "avgpool(2 ** 30)", "upsample(size=[10 ** 6, 10 ** 6])",
            'upsample(scale=99991, mode="bilinear")', "conv_transpose(4, 10 ** 5, stride=99991)",
            "conv(8, 3, dilation=2 ** 30)", "linear(10 ** 12)", "pixel_shuffle(2 ** 20)"]
SET_VALUES = ["1", "0", "-3", "[2, 2]", "[1, 1, 1, 1]", "[]", "basic_block", "bottleneck", "relu", '"x"', "3x8x8",
              "1 +", "((", "none", "1e999", "10 ** 10", "2 ** 63", "[", "=", "0.5", "1e-9", "[0.5, 2]", "range(5)",
              "[3] * 100", '"\\u2028"', "true"]
INPUT_VALUES = ["3x224x224", "3x32x32", "3x1x1", "1x1", "3x224", "224", "tokens 3x3", "3x0x0", "3x99999x99999",
                "3 x 32 x 32", "(3, 32, 32)", "[3, 64, 64]", "2 ** 31", "3x65536x65536", "-1", "x", ""]
ZOO = {p.name: p.read_text(encoding="utf-8") for p in sorted(architectures_dir().glob("*.cnn"))}
PRESETS = ["resnet18", "resnet50", "alexnet", "lenet5", "vgg11", "mobilenet_v2", "efficientnet_b0", "vit_b_16",
           "densenet121", "googlenet", "resnet", "m5", "shufflenet_v2_x1_0", "nosuchnet"]


# ---------------------------------------------------------------- generators (a random.Random drives each)


def token_stream(rng: random.Random) -> str:
    return " ".join(rng.choice(SNIPPETS) for _ in range(rng.randint(0, 60)))


def mutate(rng: random.Random, text: str | None = None) -> str:
    """A bundled file with 1 to 4 mutations of its tokens."""
    if text is None:
        text = ZOO[rng.choice(sorted(ZOO))]
    tokens = TOKEN.findall(text)
    for _ in range(rng.randint(1, 4)):
        if not tokens:
            break
        i = rng.randrange(len(tokens))
        kind = rng.randrange(6)
        if kind == 0:
            del tokens[i]
        elif kind == 1:
            tokens.insert(i, tokens[i])
        elif kind == 2:
            j = rng.randrange(len(tokens))
            tokens[i], tokens[j] = tokens[j], tokens[i]
        elif kind == 3:  # a number replaced
            numbers = [k for k, t in enumerate(tokens) if NUMBER.fullmatch(t)]
            if numbers:
                tokens[rng.choice(numbers)] = rng.choice(NUMBERS)
        elif kind == 4:  # a name replaced
            names = [k for k, t in enumerate(tokens) if NAME.fullmatch(t)]
            if names:
                tokens[rng.choice(names)] = rng.choice(NAMES)
        else:
            tokens[i] = rng.choice(SNIPPETS + NAMES + NUMBERS)
    return "".join(tokens)


def command_line(rng: random.Random) -> list[str]:
    argv = [rng.choice(["check", "analyze", "analyze"]), rng.choice(PRESETS)]
    for _ in range(rng.randint(0, 2)):
        name = rng.choice(["layers", "num_classes", "unit", "width", "depth", "dropout", "resolution", "x", "", "1x"])
        argv += ["--set", f"{name}={rng.choice(SET_VALUES)}"]
    if rng.random() < 0.6:
        argv += ["--input", f"{rng.choice(['x', 'y', ''])}={rng.choice(INPUT_VALUES)}"]
    if argv[0] == "analyze" and rng.random() < 0.3:
        argv += ["--format", rng.choice(["json", "csv", "markdown"])]
    return argv


# ---------------------------------------------------------------- running one input


class Failure(Exception):
    pass


def check_error(err: cnndsl.CnnError, text: str | None, path: str | None) -> None:
    """A CnnError must format, and when it points into the input file, at a line of it."""
    message = err.format()
    if "error:" not in message or "Traceback" in message:
        raise Failure(f"malformed message: {message[:200]}")
    if text is not None and err.span is not None and err.span.source.path == path:
        lines = text.replace("\r\n", "\n").replace("\r", "\n").count("\n") + 1
        if not 1 <= err.span.line <= lines + 1 or err.span.column < 1:
            raise Failure(f"position {err.span.line}:{err.span.column} outside the input: {message[:200]}")


def run_file(text: str, folder: Path, compile_it: bool, build_it: bool) -> str:
    path = folder / "fuzz.cnn"
    path.write_text(text, encoding="utf-8")
    try:
        net = cnndsl.load(str(path))
        cnndsl.analyze(net)
    except cnndsl.CnnError as err:
        check_error(err, text, str(path))
        return "error"
    if compile_it:
        compile_and_build(net, build_it)
    return "ok"


def compile_and_build(net, build_it: bool) -> None:
    from cnndsl.lint import size_warning

    if size_warning(net, cnndsl.analyze(net)) is not None:
        return  # `compile` refuses it unless --force: nothing to build
    for backend in ("torch", "numpy"):
        ast.parse(cnndsl.compile(net, backend))
    if build_it and sum(d["type"].numel for d in net.nodes()) <= 5 * 10 ** 6:  # small enough to run at once
        import torch

        model = cnndsl.to_torch(net).eval()
        inputs = [torch.randn(1, *net.type_of(v).shape) for v in net.inputs.values()]
        with torch.no_grad():
            model(*inputs)


def run_cli(argv: list[str]) -> str:
    import contextlib
    import io

    import cnndsl.cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cnndsl.cli.main(argv)
        except SystemExit as exc:  # argparse usage errors
            code = exc.code
    text = err.getvalue()
    if code not in (0, 1) or "Traceback" in text or "internal error" in text:
        raise Failure(f"exit {code}: {text[-300:]}")
    if code == 1 and "error" not in text:
        raise Failure(f"exit 1 without an error message: {text[-300:]}")
    return "ok" if code == 0 else "error"


def one(rng: random.Random, i: int, folder: Path, compile_every: int, build_every: int) -> tuple[str, str, object]:
    kind = ("tokens", "zoo", "zoo", "cli")[i % 4]
    if kind == "cli":
        argv = command_line(rng)
        return kind, run_cli(argv), argv
    text = token_stream(rng) if kind == "tokens" else mutate(rng)
    turn = i // 4  # the how-manieth input of its kind
    return kind, run_file(text, folder, turn % compile_every == 0, turn % (compile_every * build_every) == 0), text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=100_000, help="inputs to try (default 100,000)")
    p.add_argument("--minutes", type=float, default=None, help="stop after this long instead")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compile-every", type=int, default=20, help="compile every Nth input (both backends)")
    p.add_argument("--build-every", type=int, default=25, help="of those, build and run every Nth")
    p.add_argument("--failures", default="fuzz-failures", help="folder for failing inputs")
    p.add_argument("--slow", type=float, default=2.0, help="seconds after which an input counts as slow")
    args = p.parse_args(argv)
    import tempfile
    import warnings

    warnings.simplefilter("ignore")
    rng = random.Random(args.seed)
    folder = Path(tempfile.mkdtemp(prefix="cnndsl-fuzz-"))
    failures = Path(args.failures)
    counts: dict[str, int] = {}
    slowest = (0.0, "")
    start = time.perf_counter()
    deadline = start + args.minutes * 60 if args.minutes else None

    def alarm(signum, frame):
        raise TimeoutError("input ran for 10 s")

    signal.signal(signal.SIGALRM, alarm)
    if args.build_every:
        import torch  # noqa: F401 - imported once here, so that the first build's import is not timed as slow
    i = 0
    for i in range(args.count):
        if deadline and time.perf_counter() > deadline:
            break
        seed = rng.randrange(2 ** 32)
        t0 = time.process_time()  # CPU time: a busy machine does not make an input slow
        signal.alarm(10)
        try:
            kind, outcome, given = one(random.Random(seed), i, folder, args.compile_every, args.build_every)
        except Exception as exc:  # noqa: BLE001 - every other exception is what the fuzzer looks for
            kind, outcome, given = "?", f"FAIL {type(exc).__name__}: {str(exc)[:200]}", seed
        finally:
            signal.alarm(0)
        took = time.process_time() - t0
        if took > args.slow and not outcome.startswith("FAIL"):
            outcome = f"FAIL slow: {took:.1f} s"
        if took > slowest[0]:
            slowest = (took, f"input {i} (seed {seed}, {kind})")
        key = outcome if not outcome.startswith("FAIL") else "failure"
        counts[key] = counts.get(key, 0) + 1
        if outcome.startswith("FAIL"):
            failures.mkdir(exist_ok=True)
            (failures / f"{i:07d}-{seed}.txt").write_text(f"# {outcome}\n# kind {kind}, seed {seed}\n{given}\n",
                                                         encoding="utf-8")
            print(f"input {i} (seed {seed}, {kind}): {outcome}", flush=True)
        if (i + 1) % 5000 == 0:
            print(f"{i + 1:,} inputs, {time.perf_counter() - start:.0f} s: {counts}", flush=True)
    tried = sum(counts.values())
    elapsed = time.perf_counter() - start
    print(f"tried {tried:,} inputs in {elapsed:.0f} s ({tried / max(elapsed, 1e-9):.0f}/s): "
          + ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())))
    print(f"slowest: {slowest[0]:.2f} s, {slowest[1]}; failures: {counts.get('failure', 0)}")
    return 1 if counts.get("failure") else 0


if __name__ == "__main__":
    sys.exit(main())
