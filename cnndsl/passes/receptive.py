"""Receptive fields for every node of any DAG, per spatial axis: size, effective stride (jump) and
effective padding, following Araujo, Norris & Sim, "Computing Receptive Fields of Convolutional Neural
Networks", Distill 2019. For a window op with kernel k, stride s, dilation d and left padding p:

    size'    = size + d * (k - 1) * jump
    padding' = padding + p * jump
    jump'    = jump * s

Upsampling and transposed convolutions give several outputs per input pixel: the effective stride
becomes a fraction (1/2), and the field of an output position depends on its phase (nearest upsampling
by 2 maps outputs 2i and 2i + 1 to input i). Each axis is therefore kept exactly, as the first and last
input pixel that every output position sees (a rule periodic in the position, `Axis`); for strided ops
alone the period is 1 and the rule is Araujo's. `size` reports the widest field over the phases, which
the gradient of the widest output confirms (tests/test_receptive_upsampling.py).

A grid partition (MaxViT's grid attention, rule Grid) lets output o see the positions o mod step + t * step
of the whole axis: its fields repeat along the map instead of moving with the position (effective stride 0),
and a position's field is then no longer the continuation of its neighbours'. From there on each axis is
bounded to its map (`extent`): every output position is computed, and positions beyond the map, which only
padding reads, see nothing. Where every position of such a field spans the whole input along every axis
(from its first pixel to its last: like every field here, the hull of what it sees), the field is "global"
(maxvit_t from its second MBConv on; tests/test_zoo_maxvit.py measures both against gradients).

Where paths merge (add, concat, mul) with unequal fields, the largest is kept per axis and the node is
marked `merged`. After a global op (global pooling, a fully connected layer on a flattened map,
attention) the field is "global". A gate (squeeze-excitation's channel scale, rule GATED) makes every
output depend on the whole input too, but keeps each position's own window: the field goes on growing
along the conv path and is marked `global_gate`, so EfficientNet's last feature map still reports the
field papers quote, flagged as also seeing the whole image. Nodes without spatial axes report
no field (None) until a global op, though the pass tracks their source grid internally (flatten, token
sequences after a patch embedding).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from fractions import Fraction
from math import gcd

from .. import limits
from ..errors import CnnError
from ..ir import Network
from ..ops import GATED, GLOBAL, POINTWISE, Grid, Resample, Tiles, Window, lookup
from . import op_call


@dataclass(frozen=True)
class Axis:
    """The field of every output position along one axis, exactly: position o sees input pixels lo(o)..hi(o)
    (outside 0..n-1 where the field reaches into padding), and lo(o + period) = lo(o) + shift, likewise hi.
    A strided op keeps the period at 1 (Araujo's affine fields); upsampling and transposed convolutions
    make it grow (nearest upsampling by 2: outputs 2i and 2i + 1 both see input i), and the effective
    stride becomes the fraction shift / period. None marks a position that sees no input pixel (a
    transposed convolution whose stride exceeds its kernel). `extent`, set after a grid partition: the map's
    length; positions outside 0..extent-1 see nothing (zero padding), as they do not continue the period."""

    period: int
    shift: int
    lo: tuple
    hi: tuple
    extent: int | None = None

    def at(self, o: int) -> tuple:
        if self.extent is not None and not 0 <= o < self.extent:
            return (None, None)
        q, r = divmod(o, self.period)
        lo, hi = self.lo[r], self.hi[r]
        return (None, None) if lo is None else (lo + q * self.shift, hi + q * self.shift)

    @property
    def size(self) -> int:
        return max((hi - lo + 1 for lo, hi in zip(self.lo, self.hi) if lo is not None), default=0)

    @property
    def stride(self):
        jump = Fraction(self.shift, self.period)
        return int(jump) if jump.denominator == 1 else jump


def _axis(period: int, shift: int, fields: list[tuple], extent: int | None = None) -> Axis:
    return Axis(period, shift, tuple(f[0] for f in fields), tuple(f[1] for f in fields), extent)


def _bounded(a: Axis, period: int, shift: int, n: int) -> tuple:
    """(period, shift, extent) of a rule's output: its own, or, on an axis bounded to its map (after a grid
    partition), every one of the n output positions computed and the output bounded in turn."""
    return (n, 0, n) if a.extent is not None else (period, shift, None)


def _union(fields) -> tuple:
    known = [f for f in fields if f[0] is not None]
    if not known:
        return (None, None)
    return (min(f[0] for f in known), max(f[1] for f in known))


IDENTITY = Axis(1, 1, (0,), (0,))


@dataclass(frozen=True)
class ReceptiveField:
    size: tuple[int, ...]
    stride: tuple  # per axis: an int, or a Fraction after upsampling (1/2: two outputs per input pixel)
    padding: tuple[int, ...]
    merged: bool = False  # paths with unequal fields meet at this node; the largest is reported
    exact: bool = True  # False after adaptive pooling with uneven windows
    global_gate: bool = False  # a gate upstream scales this position by a value computed from every position
    axes: tuple[Axis, ...] | None = field(default=None, compare=False, repr=False)  # the exact per-position rule

    def as_dict(self) -> dict:
        return {"size": list(self.size), "stride": [_number(s) for s in self.stride], "padding": list(self.padding),
                "global_gate": self.global_gate}


def _number(value):
    """JSON has no fractions: an int, or "1/2"."""
    return value if isinstance(value, int) else str(value)


def from_axes(axes: tuple[Axis, ...], **flags) -> ReceptiveField:
    """size: the widest field of any output position; stride: shift / period; padding: how far position 0's
    field starts before the input's first pixel."""
    padding = tuple(-(a.at(0)[0] or 0) for a in axes)
    return ReceptiveField(tuple(a.size for a in axes), tuple(a.stride for a in axes), padding, axes=axes, **flags)


def _axes(f: ReceptiveField) -> tuple[Axis, ...]:
    if f.axes is not None:
        return f.axes
    return tuple(Axis(1, j, (-p,), (s - 1 - p,)) for s, j, p in zip(f.size, f.stride, f.padding))


def merge(fields: list) -> object:
    known = [f for f in fields if f is not None]
    if not known:
        return None
    if any(f == GLOBAL for f in known):
        return GLOBAL
    if len({len(f.size) for f in known}) > 1:
        return GLOBAL  # grids of different rank meet only after a reshape that mixes positions
    widest = list(known[0].size)
    pick = [known[0]] * len(widest)
    for f in known[1:]:
        for axis, size in enumerate(f.size):
            if size > widest[axis]:
                widest[axis], pick[axis] = size, f
    unequal = any((f.size, f.stride, f.padding) != (known[0].size, known[0].stride, known[0].padding) for f in known)
    axes = tuple(_axes(p)[a] for a, p in enumerate(pick))
    # on an axis bounded to its map (after a grid partition) fields are not monotone, so no one input's is the
    # largest everywhere: each position sees the union of what it sees through every path
    axes = tuple(_joined([_axes(f)[i] for f in known]) if any(_axes(f)[i].extent is not None for f in known) else a
                 for i, a in enumerate(axes))
    return from_axes(axes, merged=unequal, exact=all(f.exact for f in known),
                     global_gate=any(f.global_gate for f in known))


def _joined(axes: list[Axis]) -> Axis:
    """Position by position, the union of the fields of several paths over one map (one of them bounded)."""
    n = next(a.extent for a in axes if a.extent is not None)
    return _axis(n, 0, [_union([a.at(o) for a in axes]) for o in range(n)], n)


def _dense(a: Axis) -> bool:
    """Every position sees some input pixel. Fields then move right with the position (lo and hi never
    decrease), so the union over any set of positions is lo of the first and hi of the last. Not so after a
    grid partition (bounded axes), whose fields repeat along the map."""
    return None not in a.lo and a.extent is None


class TooMuchWork(Exception):
    """An exact field would cost more than limits.RF_WORK_MAX (`work`: positions times taps)."""

    def __init__(self, work: int):
        super().__init__(work)
        self.work = work


def _afford(period: int, taps: int) -> None:
    """Each rule states its cost (positions of a period times the taps read for each) before it loops."""
    if period * taps > limits.RF_WORK_MAX:
        raise TooMuchWork(period * taps)


def _window(a: Axis, k: int, s: int, d: int, p: int, n: int) -> Axis:
    """Output o reads inputs o*s - p + t*d, t < k."""
    period = a.period // gcd(a.period, s)
    period, shift, extent = _bounded(a, period, a.shift * (period * s // a.period), n)
    if _dense(a):  # the first and the last tap bound the union: a window of any size costs one step
        _afford(period, 2)
        fields = [(a.at(o * s - p)[0], a.at(o * s - p + (k - 1) * d)[1]) for o in range(period)]
    else:
        _afford(period, k)
        fields = [_union([a.at(o * s - p + t * d) for t in range(k)]) for o in range(period)]
    return _axis(period, shift, fields, extent)


def _resample(a: Axis, num: int, offset: int, den: int, linear: bool, n: int) -> Axis:
    """Output o reads input floor(src) (and ceil(src) when linear), src = (num*o + offset) / den."""
    q = den // gcd(num, den)  # src(o + q) = src(o) + m
    m = num * q // den
    k = a.period // gcd(a.period, m)
    period, shift, extent = _bounded(a, q * k, a.shift * (k * m // a.period), n)
    _afford(period, 2)

    def reads(o):
        lo, rem = divmod(num * o + offset, den)
        return [a.at(lo)] + ([a.at(lo + 1)] if linear and rem else [])
    return _axis(period, shift, [_union(reads(o)) for o in range(period)], extent)


def _transposed(a: Axis, k: int, s: int, d: int, p: int, n: int) -> Axis:
    """Output o receives input i where o = i*s - p + t*d, t < k."""
    period, shift, extent = _bounded(a, a.period * s, a.shift, n)
    _afford(period, k)

    def reads(o):
        return [a.at((o + p - t * d) // s) for t in range(k) if (o + p - t * d) % s == 0]
    return _axis(period, shift, [_union(reads(o)) for o in range(period)], extent)


def _tiles(a: Axis, size: int, shift: int, n: int) -> Axis:
    """Output o sees its whole tile: inputs t*size - shift .. t*size - shift + size - 1, t = (o + shift) // size."""
    k = a.period // gcd(a.period, size)
    period, moved, extent = _bounded(a, size * k, a.shift * (size * k // a.period), n)
    _afford(period, 2 if _dense(a) else size)

    def reads(o):
        start = (o + shift) // size * size - shift
        return [a.at(start), a.at(start + size - 1)] if _dense(a) else [a.at(i) for i in range(start, start + size)]
    return _axis(period, moved, [_union(reads(o)) for o in range(period)], extent)


def _grid(a: Axis, step: int, count: int) -> Axis:
    """Output o sees inputs o mod step + t * step, t < count: every output of a residue class the same field, so
    the period is `step` with no shift, and the axis is bounded to its step * count positions."""
    _afford(step, count)
    fields = [_union([a.at(o + t * step) for t in range(count)]) for o in range(step)]
    return _axis(step, 0, fields, step * count)


def _spans(a: Axis, n: int) -> bool:
    """Every position of a bounded axis sees from the input's first pixel to its last (n pixels) or beyond."""
    return a.extent is not None and all(lo is not None and lo <= 0 and hi >= n - 1
                                        for lo, hi in map(a.at, range(a.extent)))


def step(f: ReceptiveField, rule, sizes: tuple[int, ...]) -> ReceptiveField:
    """The field after one op; `sizes` are the op's output sizes per axis (none where the output has no spatial
    axes, as a patch embedding's tokens: their field is carried on, unbounded)."""
    axes = _axes(f)
    if len(sizes) != len(axes):
        sizes = (None,) * len(axes)
    if isinstance(rule, Window):
        new = [_window(a, k, s, d, p, n) for a, k, s, d, p, n in zip(axes, rule.kernel, rule.stride, rule.dilation,
                                                                      rule.padding, sizes)]
    elif isinstance(rule, Tiles):
        new = [_tiles(a, size, shift, n) for a, size, shift, n in zip(axes, rule.size, rule.shift, sizes)]
    elif isinstance(rule, Grid):
        new = [_grid(a, s, count) for a, s, count in zip(axes, rule.step, rule.count)]
    elif isinstance(rule, Resample):
        new = [_resample(a, u, o, q, rule.linear, n) for a, u, o, q, n in zip(axes, rule.num, rule.offset, rule.den,
                                                                               sizes)]
    else:
        new = [_transposed(a, k, s, d, p, n) for a, k, s, d, p, n in zip(axes, rule.kernel, rule.stride,
                                                                          rule.dilation, rule.padding, sizes)]
    return from_axes(tuple(new), exact=f.exact and getattr(rule, "exact", True), global_gate=f.global_gate)


def run(net: Network) -> None:
    state: dict[str, object] = {}
    images = {net.type_of(x).spatial for x in net.inputs.values()}
    image = images.pop() if len(images) == 1 else None  # the input's sizes, where every input has the same
    for data in net.nodes():
        name, t = data["name"], data["type"]
        if data["kind"] == "input":
            n = t.spatial_rank
            state[name] = from_axes((IDENTITY,) * n) if n else None
        else:
            spec = lookup(data["op"])
            incoming = merge([state[i] for i in data["inputs"][:spec.rf_inputs]])
            rule = spec.rf(op_call(net, name))
            if incoming == GLOBAL or incoming is None:
                state[name] = incoming if rule != GLOBAL or incoming == GLOBAL else None
                if rule != GLOBAL and isinstance(rule, Window) and incoming is None:
                    state[name] = step(from_axes((IDENTITY,) * len(rule.kernel)), rule, t.spatial)
            elif rule == POINTWISE:
                state[name] = incoming
            elif rule == GATED:
                state[name] = replace(incoming, global_gate=True)
            elif rule == GLOBAL:
                state[name] = GLOBAL
            else:
                try:
                    state[name] = step(incoming, rule, t.spatial)
                    if image and all(_spans(a, n) for a, n in zip(state[name].axes, image)):
                        state[name] = GLOBAL
                except TooMuchWork as exc:
                    raise CnnError(f"{data['op']}: its exact receptive field would take {exc.work:,} steps (positions "
                                   f"times taps; the limit is {limits.RF_WORK_MAX:,}): its kernel, stride or "
                                   f"output size is far beyond any real network's", data["span"]) from None
        if isinstance(state[name], ReceptiveField) and state[name].merged and len(data["inputs"]) < 2:
            state[name] = replace(state[name], merged=False)  # marked where paths meet, not downstream
        data["rf_state"] = state[name]
        s = state[name]
        data["rf"] = GLOBAL if s == GLOBAL else (s if isinstance(s, ReceptiveField) and t.spatial_rank else None)


def rf_json(rf) -> object:
    if rf is None or rf == GLOBAL:
        return rf
    return rf.as_dict()
