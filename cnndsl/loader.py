"""Files -> programs: parse a .cnn file, follow its imports, evaluate its top-level constants, and find
a target (a path, or a bundled network or preset by name)."""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from . import ast as A
from .errors import CnnError, Source, suggest
from .limits import FILE_MAX
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
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO must not block the compiler
        with open(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise CnnError(f"cannot read {shown or path}: not a regular file")
            data = f.read(FILE_MAX + 1)
        if len(data) > FILE_MAX:
            raise CnnError(f"{shown or path} is larger than {FILE_MAX // 1024} KiB, the limit for a .cnn file")
        text = data.decode("utf-8-sig")  # a byte-order mark (Windows editors) is not text
        text = text.replace("\r\n", "\n").replace("\r", "\n")  # universal newlines, as read_text() did
    except FileNotFoundError:
        raise CnnError(f"no such file: {path}") from None
    except UnicodeDecodeError as exc:  # the message names the offset, never the bytes
        raise CnnError(f"cannot read {shown or path}: not UTF-8 text (at byte {exc.start})") from None
    except OSError as exc:
        raise CnnError(f"cannot read {shown or path}: {exc.strerror or type(exc).__name__}") from None
    return Source(shown or str(path), text)


def load_program(path: str | os.PathLike, shown: str | None = None, include: list[str] | None = None) -> Program:
    """Load a file and its imports; `include` names folders imports may also come from (as CNNDSL_PATH)."""
    return _Loader(include).load(Path(path).resolve(), read_source(path, shown), [])


def import_roots(include: list[str] | None = None) -> list[Path]:
    """The folders beside a file's own that imports may come from: the bundled library, then the folders
    named by --import-path (`include`), then those of the CNNDSL_PATH environment variable."""
    named = [*(include or []), *filter(None, os.environ.get("CNNDSL_PATH", "").split(os.pathsep))]
    return [architectures_dir().resolve(), *(Path(p).resolve() for p in named)]


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


class _Loader:
    def __init__(self, include: list[str] | None = None):
        self.done: dict[Path, Program] = {}
        self.roots = import_roots(include)
        self.top: Path | None = None  # the folder of the file being compiled: its imports stay under it

    def resolve_import(self, item: A.Import, path: Path) -> Path:
        """Where `import "x.cnn"` in the file at `path` leads: relative to that file's folder, else to the
        bundled library or a folder named by --import-path or CNNDSL_PATH; it must lie under the folder of
        the file being compiled or under one of those. Anything else is refused before it is opened, so no
        message ever shows a byte of a file that was not a .cnn file."""
        name = item.path
        if "\0" in name or not name.endswith(".cnn"):
            raise CnnError("an import names a .cnn file (import \"blocks.cnn\")", item.span)
        if os.path.isabs(name) or name.startswith("~"):
            raise CnnError("an import is a path relative to the importing file's folder, not an absolute path",
                           item.span)
        allowed = [self.top or path.parent, *self.roots]
        outside = None
        for start in [path.parent, *self.roots]:
            target = (start / name).resolve()
            if not any(_within(target, root) for root in allowed):
                outside = outside or target
                continue
            if target.is_file():
                return target
        if outside is not None and outside.exists():
            raise CnnError(f"cannot import '{name}': it is outside {allowed[0]}, the folder of the file being "
                           f"compiled (imports come from there, the bundled library, --import-path DIR or "
                           f"CNNDSL_PATH)", item.span)
        raise CnnError(f"cannot find '{name}' (looked in {path.parent}, the bundled library"
                       f"{', --import-path and CNNDSL_PATH' if len(self.roots) > 1 else ''})", item.span)

    def load(self, path: Path, source: Source, stack: list[Path]) -> Program:
        from .elaborate import Evaluator  # constants are evaluated by the same evaluator as networks

        if self.top is None:
            self.top = path.parent

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
                target = self.resolve_import(item, path)
                if target == path:
                    raise CnnError(f"'{source.path}' imports itself", item.span)
                if target in stack:
                    chain = " -> ".join(p.name for p in [*stack, path, target])
                    raise CnnError(f"import cycle: {chain}", item.span)
                if target not in self.done:
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


def find_target(target: str, include: list[str] | None = None) -> Target:
    """A path to a .cnn file (its first network), `path.cnn:name` (a network or preset in it), or the
    name of a bundled network or preset. `include`: folders imports may come from (see import_roots)."""
    path, colon, name = target.rpartition(":")
    if colon and path.endswith(".cnn") and re.fullmatch(r"[A-Za-z_]\w*", name):
        return program_target(load_program(path, include=include), name)
    if target.endswith(".cnn") or os.sep in target or Path(target).is_file():
        if not target.endswith(".cnn"):
            raise CnnError(f"{target}: a target file must be a .cnn file (or name a bundled architecture: "
                           f"'cnndsl zoo' lists them)")
        program = load_program(target, include=include)
        if not program.networks:
            raise CnnError(f"{target} declares no network (only blocks or constants)")
        return Target(program, next(iter(program.networks.values())), None)
    index = zoo_index()
    if target not in index:
        raise CnnError(f"unknown architecture '{target}'{suggest(target, index)} ('cnndsl zoo' lists them)")
    path = index[target]
    program = load_program(path, shown=f"{BUNDLED_PREFIX}{path.name}", include=include)
    return program_target(program, target)


BUNDLED_PREFIX = "architectures/"  # how errors and generated headers name a bundled file


def bundled_file(name: str) -> Path:
    """The installed file of a bundled network, preset or file stem (`resnet50`, `resnet`)."""
    index = zoo_index()
    if name in index:
        return index[name]
    stems = {p.stem: p for p in sorted(architectures_dir().glob("*.cnn"))}
    if name.removesuffix(".cnn") in stems:
        return stems[name.removesuffix(".cnn")]
    raise CnnError(f"unknown architecture '{name}'{suggest(name, [*index, *stems])} ('cnndsl zoo' lists them)")


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
