"""Traced numbers (cnndsl/symbolic.py): the expression a number carries, printed as Python, evaluates to the number
itself, whatever the operators, their nesting and the folding and collecting of terms did on the way."""

from __future__ import annotations

import operator

from hypothesis import given, settings
from hypothesis import strategies as st

from cnndsl.symbolic import Sym, TracedFloat, TracedInt, plain, sym_of, traced

OPERATORS = [operator.add, operator.sub, operator.mul, operator.floordiv, operator.mod]


@st.composite
def computations(draw, depth: int = 0):
    """(traced value, names -> values) built by random integer arithmetic over two parameters and literals."""
    values = {"planes": draw(st.integers(1, 50)), "groups": draw(st.integers(1, 8))}
    leaves = [TracedInt(values["planes"], Sym.name("planes")), TracedInt(values["groups"], Sym.name("groups"))]
    value = draw(st.sampled_from(leaves))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(OPERATORS))
        other = draw(st.one_of(st.sampled_from(leaves), st.integers(-5, 9)))
        left, right = (other, value) if draw(st.booleans()) else (value, other)
        if op in (operator.floordiv, operator.mod) and plain(right) == 0:
            continue
        value = op(left, right)
    return value, values


@settings(max_examples=300, deadline=None)
@given(computations())
def test_the_printed_expression_evaluates_to_the_value(case):
    value, names = case
    sym = sym_of(value)
    if sym is None:  # folded to a literal, or too long an expression to keep
        return
    assert eval(sym.text(), {}, dict(names)) == plain(value), sym.text()  # noqa: S307 - our own expression text


def test_expressions_read_as_written():
    planes, growth = TracedInt(64, Sym.name("planes")), TracedInt(32, Sym.name("growth_rate"))
    assert sym_of(planes * 4).text() == "planes * 4"
    assert sym_of((planes + 1) * 2).text() == "(planes + 1) * 2"
    assert sym_of(planes - (planes - 1)) is None  # collected to the literal 1
    assert sym_of(planes + growth + growth).text() == "planes + growth_rate * 2"
    assert sym_of(2 ** planes).text() == "2 ** planes"
    assert sym_of(-(planes // 2)).text() == "-(planes // 2)"


def test_a_traced_number_is_its_number():
    planes = TracedInt(64, Sym.name("planes"))
    assert planes == 64 and hash(planes) == hash(64) and str(planes) == "64" and repr(planes) == "64"
    assert {planes: 1}[64] == 1 and f"{planes:,}" == "64"
    width = TracedFloat(0.5, Sym.name("width"))
    assert width * 2 == 1.0 and sym_of(width * 2).text() == "width * 2"
    assert traced(3, Sym.num(3)) == 3 and type(traced(3, Sym.num(3))) is int  # a literal carries no expression
    assert plain([planes, (planes, 1)]) == [64, (64, 1)] and type(plain(planes)) is int
