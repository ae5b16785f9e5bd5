"""Warnings (cnndsl/lint.py): legal text that is almost surely a mistake is reported at its place, as
`file:line:col: warning: ...` on stderr, and the compiler goes on (exit 0, stdout unaffected). The bundled
zoo has none."""

from __future__ import annotations

import json
import textwrap
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_properties import networks

import cnndsl
from cnndsl.cli import main

LEFTOVERS = """\
block head(x, classes, hidden) {
    return x -> global_avgpool -> flatten -> linear(classes)
}

block same_signature(x, out, _unused=0) {
    return x -> conv(out, 1)
}

network leftovers(width=16, spare=3) {
    input x: 3x32x32
    input mask: 1x32x32
    y = x -> conv(width, 3, pad=1) -> relu
    z = y -> conv(width, 1) -> relu
    w = z -> same_signature(4)
    output logits = y -> head(10, 64)
}
"""


@pytest.fixture
def leftovers(tmp_path):
    path = tmp_path / "leftovers.cnn"
    path.write_text(LEFTOVERS, encoding="utf-8")
    return path


def located(net) -> list[tuple[int, int, str]]:
    return [(w.span.line, w.span.column, w.message) for w in net.warnings]


def test_each_leftover_is_reported_at_its_place(leftovers):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = located(cnndsl.load(str(leftovers)))
    lines = LEFTOVERS.splitlines()
    by_line = {line: (col, message) for line, col, message in found}
    assert set(by_line) == {1, 9, 11, 14}, found
    # an unused block parameter, with the way to say "on purpose"; `_unused` is not reported
    col, message = by_line[1]
    assert lines[0][col - 1:].startswith("hidden") and "'hidden' of block 'head' is never used" in message
    assert "'_hidden'" in message
    col, message = by_line[9]
    assert lines[8][col - 1:].startswith("spare") and "network 'leftovers'" in message
    col, message = by_line[11]
    assert lines[10][col - 1:].startswith("input mask") and "input 'mask' is never used" in message
    # the dead chain z -> w is reported once, at its end; its parameters are those of the two 1x1 convs
    col, message = by_line[14]
    assert lines[13][col - 1:].startswith("same_signature") and message.startswith("'w' is computed but never used")
    assert f"({16 * 16 + 16 + 16 * 4 + 4:,} parameters)" in message


def test_the_cli_warns_on_stderr_and_goes_on(leftovers, capsys):
    assert main(["analyze", str(leftovers), "--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["network"] == "leftovers"  # stdout is the report, untouched
    heads = [line for line in err.splitlines() if ": warning: " in line]
    assert len(heads) == 4 and all(line.startswith(f"{leftovers}:") for line in heads)
    assert "Traceback" not in err
    assert main(["check", str(leftovers)]) == 0
    out, _ = capsys.readouterr()
    assert out.strip().endswith("; 4 warnings")


def test_the_api_raises_python_warnings(leftovers):
    with pytest.warns(cnndsl.CnnDslWarning) as record:
        net = cnndsl.load(str(leftovers))
    assert len(record) == len(net.warnings) == 4
    assert record[0].filename == __file__  # attributed to the caller of cnndsl.load
    with warnings.catch_warnings():
        warnings.simplefilter("error", cnndsl.CnnDslWarning)
        with pytest.raises(cnndsl.CnnDslWarning):
            cnndsl.load(str(leftovers))


def test_a_setting_that_changes_nothing_is_reported(capsys):
    # efficientnet's phi only feeds the defaults of width, depth and resolution; the preset gives those
    assert main(["check", "efficientnet_b0", "--set", "phi=3"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("--set:1:1: warning: 'phi' given by --set has no effect")
    assert "'width', 'depth' and 'resolution'" in err and "preset 'efficientnet_b0'" in err
    # on the network itself phi acts: no warning, and a bigger network than B0
    with warnings.catch_warnings():
        warnings.simplefilter("error", cnndsl.CnnDslWarning)
        scaled = cnndsl.load("efficientnet", phi=3)
        b0 = cnndsl.load("efficientnet_b0")
    assert scaled.params["resolution"] == round(224 * 1.15 ** 3) != b0.params["resolution"]
    assert cnndsl.analyze(scaled)["macs"] > 4 * cnndsl.analyze(b0)["macs"]


def test_a_setting_read_only_on_another_branch_is_reported():
    with pytest.warns(cnndsl.CnnDslWarning, match="'dropout_aux' given by settings has no effect"):
        cnndsl.load("googlenet", settings=["aux_logits=false", "dropout_aux=0.5"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", cnndsl.CnnDslWarning)
        assert cnndsl.load("googlenet", settings=["dropout_aux=0.5"]).params["dropout_aux"] == 0.5


def test_a_dead_value_inside_a_block_is_reported_once(tmp_path):
    path = tmp_path / "blocks.cnn"
    path.write_text(textwrap.dedent("""\
        block unit(x) {
            probe = x -> conv(2, 1)
            return x -> relu
        }

        network blocks() {
            input x: 3x8x8
            output y = x -> [unit, unit, unit]
        }
    """), encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = cnndsl.load(str(path))
    assert located(net) == [(2, 18, net.warnings[0].message)]
    assert net.warnings[0].message.startswith("'probe' is computed but never used")


# Every bundled architecture is free of warnings: tests/test_zoo.py checks it with both backends and the CLI.


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                   HealthCheck.function_scoped_fixture])
@given(net=networks(max_stages=4), dead=st.booleans(), where=st.data())
def test_random_networks_warn_exactly_at_their_dead_end(tmp_path, net, dead, where):
    # the generator's networks (tests/test_properties.py) chain every node into the output: no warning;
    # a 1x1 conv hung off any of its nodes is a dead end, reported once, at its line
    lines = net.text().splitlines()
    if dead:
        source = where.draw(st.sampled_from(list(net.nodes)))
        lines.insert(len(lines) - 2, f"    dead_end = {source} -> conv(2, 1)")
    path = tmp_path / "random.cnn"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = located(cnndsl.load(str(path)))
    if not dead:
        assert found == []
    else:
        (line, col, message), = found
        assert (line, col) == (len(lines) - 2, lines[-3].index("conv") + 1)
        assert message.startswith("'dead_end' is computed but never used")
