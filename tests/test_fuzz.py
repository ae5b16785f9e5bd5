"""Fuzzing in the suite: the generators of benchmarks/fuzz.py (random token streams, mutations of every bundled
file, --set and --input values) under hypothesis. Every input ends in a result or a located CnnError within
2 s of CPU time; whatever analyses also compiles, for both backends, to code that parses. The long run
(`python benchmarks/fuzz.py`, 100,000 inputs and more) uses the same generators."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cnndsl

_SPEC = importlib.util.spec_from_file_location("cnndsl_fuzz", Path(__file__).parent.parent / "benchmarks" / "fuzz.py")
fuzz = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(fuzz)

SECONDS = 2.0  # CPU time per input: a hang or runaway work shows here, a busy machine does not


def bounded(n: int) -> settings:
    return settings(max_examples=n, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                         HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def timed(fn, *args):
    t0 = time.process_time()
    outcome = fn(*args)
    took = time.process_time() - t0
    assert took < SECONDS, f"{took:.1f} s of CPU time"
    return outcome


@bounded(120)
@given(rng=st.randoms(use_true_random=False))
def test_random_token_streams(folder, rng):
    assert timed(fuzz.run_file, fuzz.token_stream(rng), folder, True, False) in ("ok", "error")


@bounded(20)
@given(rng=st.randoms(use_true_random=False), name=st.sampled_from(sorted(fuzz.ZOO)))
def test_mutations_of_every_bundled_file(folder, rng, name):
    text = fuzz.mutate(rng, fuzz.ZOO[name])
    assert timed(fuzz.run_file, text, folder, True, False) in ("ok", "error")


@pytest.mark.parametrize("name", sorted(fuzz.ZOO))
def test_each_bundled_file_mutated(folder, name):
    import random

    for seed in range(3):
        text = fuzz.mutate(random.Random(seed), fuzz.ZOO[name])
        assert timed(fuzz.run_file, text, folder, seed == 0, False) in ("ok", "error")


@bounded(60)
@given(rng=st.randoms(use_true_random=False))
def test_set_and_input_values_on_the_command_line(rng):
    assert timed(fuzz.run_cli, fuzz.command_line(rng)) in ("ok", "error")


@pytest.mark.parametrize("text", ["network n() {\n    input x: 3x8x8\n    output y = x -> relu\n}\n"])
def test_what_compiles_also_builds_and_runs(folder, text):
    assert fuzz.run_file(text, folder, True, True) == "ok"


def test_the_long_run_counts_its_inputs(capsys, tmp_path):
    assert fuzz.main(["--count", "40", "--seed", "3", "--failures", str(tmp_path / "failures")]) == 0
    out = capsys.readouterr().out
    assert "tried 40 inputs" in out and "failures: 0" in out


def test_a_failure_is_reported_with_its_input(capsys, tmp_path, monkeypatch):
    def broken(*args):
        raise ValueError("a planted bug")

    monkeypatch.setattr(fuzz, "run_file", broken)
    assert fuzz.main(["--count", "8", "--failures", str(tmp_path / "failures")]) == 1
    out = capsys.readouterr().out
    assert "FAIL ValueError: a planted bug" in out and "failures: 6" in out
    assert len(list((tmp_path / "failures").iterdir())) == 6
    assert cnndsl.__version__  # the package under test is the one benchmarks/fuzz.py imported
