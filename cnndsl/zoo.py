"""The bundled model zoo: every network and preset in architectures/, with its one-line description."""

from __future__ import annotations

from dataclasses import dataclass

from .loader import load_program
from .resources import architectures_dir


@dataclass(frozen=True)
class Entry:
    name: str
    description: str
    file: str
    network: str  # the network a preset instantiates (itself for a network)


def entries() -> list[Entry]:
    """Presets and networks of every bundled file; a network that has presets is listed by them."""
    out: list[Entry] = []
    for path in sorted(architectures_dir().glob("*.cnn")):
        program = load_program(path, shown=f"architectures/{path.name}")
        with_presets = {p.network for p in program.presets.values()}
        for name, net in program.networks.items():
            if name not in with_presets:
                out.append(Entry(name, net.doc, path.name, name))
        for name, preset in program.presets.items():
            network = program.networks.get(preset.network)
            doc = preset.doc or (network.doc if network is not None else "")
            out.append(Entry(name, doc, path.name, preset.network))
    return out
