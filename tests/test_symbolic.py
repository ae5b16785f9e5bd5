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


COMPARISONS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
               ">=": operator.ge}


@st.composite
def conditional_computations(draw):
    """(sym, its value, names -> values): `a if cond else b` over comparisons joined by and, or, not, used inside
    arithmetic, as a block's `stride=1 if dilation > 1 else stride` is."""
    from cnndsl.symbolic import binary, choice, compare, invert, logical

    values = {"stride": draw(st.integers(1, 4)), "dilation": draw(st.integers(1, 4))}

    def condition():
        name = draw(st.sampled_from(sorted(values)))
        op = draw(st.sampled_from(sorted(COMPARISONS)))
        literal = draw(st.integers(0, 4))
        sym, truth = compare([op], [Sym.name(name), Sym.num(literal)]), COMPARISONS[op](values[name], literal)
        for _ in range(draw(st.integers(0, 2))):
            kind = draw(st.sampled_from(["and", "or", "not"]))
            if kind == "not":
                sym, truth = invert(sym), not truth
            else:
                other, other_truth = compare(["<"], [Sym.name("stride"), Sym.name("dilation")]), \
                    values["stride"] < values["dilation"]
                sym = logical(kind, [sym, other])
                truth = (truth and other_truth) if kind == "and" else (truth or other_truth)
        return sym, truth

    def number():
        return draw(st.sampled_from([(Sym.name("stride"), values["stride"]), (Sym.name("dilation"),
                                                                               values["dilation"]),
                                     (Sym.num(1), 1), (Sym.num(2), 2)]))

    cond, truth = condition()
    (a, va), (b, vb) = number(), number()
    sym, value = choice(cond, a, b), va if truth else vb
    (c, vc) = number()
    op = draw(st.sampled_from(OPERATORS[:3]))
    if draw(st.booleans()):
        sym, value = binary({operator.add: "+", operator.sub: "-", operator.mul: "*"}[op], sym, c), op(value, vc)
    return sym, value, values


@settings(max_examples=300, deadline=None)
@given(conditional_computations())
def test_a_conditional_number_prints_and_substitutes_to_its_value(case):
    sym, value, names = case
    assert eval(sym.text(), {}, dict(names)) == value, sym.text()  # noqa: S307 - our own expression text
    folded = sym.subs({k: Sym.num(v) for k, v in names.items()})
    assert folded.literal and folded.args[0] == value, (sym.text(), folded)


def test_a_conditional_reads_as_written():
    from cnndsl.symbolic import binary, choice, compare, invert, logical

    dilation, stride = Sym.name("dilation"), Sym.name("stride")
    pick = choice(compare([">"], [dilation, Sym.num(1)]), Sym.num(1), stride)
    assert pick.text() == "1 if dilation > 1 else stride"
    assert binary("*", pick, Sym.num(2)).text() == "(1 if dilation > 1 else stride) * 2"
    assert pick.subs({"dilation": Sym.num(2)}) == Sym.num(1) and pick.subs({"dilation": Sym.num(1)}) == stride
    both = logical("and", [compare(["=="], [stride, Sym.num(1)]), invert(compare([">"], [dilation, Sym.num(1)]))])
    assert both.text() == "stride == 1 and not dilation > 1"
    assert choice(both, stride, stride) == stride  # branches that agree need no condition


def test_a_list_parameters_elements_read_and_substitute_as_written():
    from cnndsl.symbolic import binary

    second = Sym.item("kernel", 1, 2)
    assert second.text() == "kernel[1]" and second.names() == {"kernel"}
    assert binary("//", second, Sym.num(2)).text() == "kernel[1] // 2"
    # the caller's list, its elements traced or not: the element itself
    assert second.subs({"kernel": Sym.of([1, 7])}) == Sym.num(7)
    assert second.subs({"kernel": Sym("list", (Sym.num(1), Sym.name("k")))}) == Sym.name("k")


def test_the_variant_merger_simplifies_every_kind_of_expression():
    # backends/pytorch_variants.py compares variants' sizes after simplifying them; it once knew only the
    # arithmetic operators and failed on a comparison's operator tuple or an element's index
    from cnndsl.backends.pytorch_variants import _simplified
    from cnndsl.symbolic import binary, choice, compare

    d, kernel = Sym.name("d"), Sym.item("kernel", 1, 2)
    inner = choice(compare([">"], [d, Sym.num(1)]), binary("//", Sym.num(4), binary("-", d, Sym.num(1))), kernel)
    nested = choice(compare(["=="], [Sym.name("s"), Sym.num(1)]), inner, Sym.num(2))
    rounded = Sym("call", ("int", nested))
    assert _simplified(rounded, frozenset({"d", "s"})).text() == nested.text()  # int() of an integer choice
    assert _simplified(Sym("list", (d, kernel, d)), frozenset()).text() == "[d, kernel[1], d]"
