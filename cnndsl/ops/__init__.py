"""The op registry: every op's one definition, by name. A duplicate name or alias is refused."""

from __future__ import annotations

from . import conv, elementwise, layout, multiscale, pool, resample, tensor, transformer, windows
from .spec import (GATED, GLOBAL, POINTWISE, Arg, Grid, OpCall, OpError, OpSpec, Param, Resample, Tiles, Transposed,
                   Window)

REGISTRY: dict[str, OpSpec] = {}
ALIASES: dict[str, str] = {}


def register(spec: OpSpec) -> OpSpec:
    for name in (spec.name, *spec.aliases):
        if name in REGISTRY or name in ALIASES:
            raise RuntimeError(f"op '{name}' is defined twice")
    REGISTRY[spec.name] = spec
    ALIASES.update({alias: spec.name for alias in spec.aliases})
    return spec


for _module in (conv, pool, resample, elementwise, layout, tensor, transformer, windows, multiscale):
    for _spec in _module.OPS:
        register(_spec)


def lookup(name: str) -> OpSpec | None:
    return REGISTRY.get(ALIASES.get(name, name))


def all_names() -> list[str]:
    return sorted([*REGISTRY, *ALIASES])


__all__ = ["REGISTRY", "ALIASES", "lookup", "all_names", "register", "OpSpec", "OpCall", "OpError", "Arg",
           "Param", "Window", "Resample", "Tiles", "Grid", "Transposed", "POINTWISE", "GLOBAL", "GATED"]
