"""Files -> programs: parse a .cnn file, follow its imports, evaluate its top-level constants, and find
a target (a path, or a bundled network or preset by name)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from . import ast as A
from .errors import CnnError, Source, suggest
from .resources import architectures_dir
from .syntax import parse
from .values import BlockClosure, Env, NetworkValue, TemplateClosure


@dataclass
class Program:
    """One loaded file: its global names (own and imported) and its networks and presets."""

    path: str
    env: Env
    networks: dict[str, A.NetworkDef] = field(default_factory=dict)  # declared in this file, in order
    presets: dict[str, A.PresetDef] = field(default_factory=dict)


def read_source(path: str | os.PathLike, shown: str | None = None) -> Source:
    try:
        text = Path(path).read_text(encoding="utf-8-sig")  # a byte-order mark (Windows editors) is not text
    except FileNotFoundError:
        raise CnnError(f"no such file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CnnError(f"cannot read {path}: {exc}") from None
    return Source(shown or str(path), text)


def load_program(path: str | os.PathLike, shown: str | None = None) -> Program:
    return _Loader().load(Path(path).resolve(), read_source(path, shown), [])


class _Loader:
    def __init__(self):
        self.done: dict[Path, Program] = {}

    def load(self, path: Path, source: Source, stack: list[Path]) -> Program:
        from .elaborate import Evaluator  # constants are evaluated by the same evaluator as networks

        module = parse(source)
        program = Program(source.path, Env())
        env = program.env
        origin: dict[str, A.Node] = {}

        def define(name: str, value, node: A.Node):
            if name in env.vars:
                first = origin[name]
                if isinstance(first, A.Import):
                    raise CnnError(f"'{name}' is already defined by '{first.path}' (imported at line "
                                   f"{first.span.line})", node.span)
                raise CnnError(f"'{name}' is already defined (at line {first.span.line})", node.span)
            env.vars[name] = value
            origin[name] = node

        for item in module.items:
            if isinstance(item, A.Import):
                target = (path.parent / item.path).resolve()
                if target == path:
                    raise CnnError(f"'{source.path}' imports itself", item.span)
                if target in stack:
                    chain = " -> ".join(p.name for p in [*stack, path, target])
                    raise CnnError(f"import cycle: {chain}", item.span)
                if target not in self.done:
                    if not target.is_file():
                        raise CnnError(f"cannot find '{item.path}' (looked in {path.parent})", item.span)
                    self.done[target] = self.load(target, read_source(target), [*stack, path])
                for name, value in self.done[target].env.vars.items():
                    if name in env.vars and env.vars[name] is not value:
                        first = origin[name]
                        where = (f"by the import at line {first.span.line}" if isinstance(first, A.Import)
                                 else f"at line {first.span.line}")
                        raise CnnError(f"'{name}' from '{item.path}' is already defined {where}", item.span)
                    env.vars[name] = value
                    origin.setdefault(name, item)
            elif isinstance(item, A.BlockDef):
                define(item.name, BlockClosure(item, env), item)
            elif isinstance(item, A.TemplateDef):
                define(item.name, TemplateClosure(item, env), item)
            elif isinstance(item, A.NetworkDef):
                define(item.name, NetworkValue(item, env), item)
                program.networks[item.name] = item
            elif isinstance(item, A.PresetDef):
                if item.name in program.presets or item.name in env.vars:
                    raise CnnError(f"'{item.name}' is already defined", item.span)
                program.presets[item.name] = item
            elif isinstance(item, A.Assign):
                value = Evaluator.constant(item.value, env)
                for name, v in zip(item.targets, Evaluator.unpack(item.targets, value, item.span)):
                    define(name, v, item)
        return program


# ---------------------------------------------------------------- targets


@dataclass
class Target:
    program: Program
    network: A.NetworkDef
    preset: A.PresetDef | None


_DECLARATION = re.compile(r"^\s*(preset|network)\s+([A-Za-z_]\w*)", re.M)


def zoo_index() -> dict[str, Path]:
    """Bundled network and preset names -> their file, read off the declarations' first words."""
    index: dict[str, Path] = {}
    for path in sorted(architectures_dir().glob("*.cnn")):
        for _, name in _DECLARATION.findall(path.read_text(encoding="utf-8")):
            index.setdefault(name, path)
    return index


def find_target(target: str) -> Target:
    """A path to a .cnn file (its first network), `path.cnn:name` (a network or preset in it), or the
    name of a bundled network or preset."""
    path, colon, name = target.rpartition(":")
    if colon and path.endswith(".cnn") and re.fullmatch(r"[A-Za-z_]\w*", name):
        return program_target(load_program(path), name)
    if target.endswith(".cnn") or os.sep in target or Path(target).is_file():
        program = load_program(target)
        if not program.networks:
            raise CnnError(f"{target} declares no network (only blocks or constants)")
        return Target(program, next(iter(program.networks.values())), None)
    index = zoo_index()
    if target not in index:
        raise CnnError(f"unknown architecture '{target}'{suggest(target, index)} ('cnndsl zoo' lists them)")
    path = index[target]
    program = load_program(path, shown=f"architectures/{path.name}")
    return program_target(program, target)


def program_target(program: Program, name: str) -> Target:
    if name in program.presets:
        preset = program.presets[name]
        try:
            network = program.env.lookup(preset.network)
        except KeyError:
            network = None
        if not isinstance(network, NetworkValue):
            raise CnnError(f"preset '{name}' names '{preset.network}', which is not a network"
                           f"{suggest(preset.network, program.networks)}", preset.span)
        return Target(program, network.defn, preset)
    if name in program.networks:
        return Target(program, program.networks[name], None)
    raise CnnError(f"{program.path} has no network or preset '{name}'"
                   f"{suggest(name, [*program.networks, *program.presets])}")


def every_target(program: Program) -> list[Target]:
    """Each preset of a file, and each network whose parameters all have defaults: what `check` builds."""
    out = [program_target(program, name) for name in program.presets]
    with_presets = {p.network for p in program.presets.values()}
    for net in program.networks.values():
        if net.name not in with_presets or all(p.default is not None for p in net.params):
            out.append(Target(program, net, None))
    return out
