"""Tensor types: a shape without the batch dimension, and whether it is a token sequence.

Channel-first spatial tensors are CxL, CxHxW, CxDxHxW; a flat feature vector is (F,); a token sequence
is NxD (tokens x features) and has no spatial axes.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod


@dataclass(frozen=True)
class TensorType:
    shape: tuple[int, ...]
    tokens: bool = False
    # a spatial map stored HxWxC (ConvNeXt's blocks between its permutes): the channels are the last axis,
    # so per-position layers (nn.LayerNorm, nn.Linear) act on them; `shape` is the stored order
    channels_last: bool = False

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def spatial_rank(self) -> int:
        """Number of spatial axes: 1 (CxL), 2 (CxHxW), 3 (CxDxHxW), else 0."""
        return 0 if self.tokens or self.rank < 2 else self.rank - 1

    @property
    def spatial(self) -> tuple[int, ...]:
        if not self.spatial_rank:
            return ()
        return self.shape[:-1] if self.channels_last else self.shape[1:]

    @property
    def channels(self) -> int:
        return self.shape[-1] if self.channels_last else self.shape[0]

    @property
    def numel(self) -> int:
        return prod(self.shape)

    def with_shape(self, shape) -> TensorType:
        return TensorType(tuple(shape), self.tokens, self.channels_last)

    def __str__(self) -> str:
        return "x".join(map(str, self.shape)) + (" tokens" if self.tokens else "") + \
            (" channels-last" if self.channels_last else "")


AXIS_NAMES = {1: ("length",), 2: ("height", "width"), 3: ("depth", "height", "width")}


def axis_name(spatial_rank: int, axis: int) -> str:
    return AXIS_NAMES.get(spatial_rank, ())[axis] if spatial_rank in AXIS_NAMES else f"axis {axis}"
