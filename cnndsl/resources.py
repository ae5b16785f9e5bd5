"""Where the shipped data lives: the grammar and the model zoo.

The wheel maps the repository's top-level `grammars/` and `architectures/` folders into the package as
`cnndsl.grammars` and `cnndsl.architectures` (see pyproject.toml), so both are found through
importlib.resources, installed or editable. A plain checkout on sys.path falls back to the folders
beside the package.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent


def _folder(package: str, folder: str) -> Path:
    try:
        found = resources.files(package)
        path = Path(str(found))
        if path.is_dir():
            return path
    except (ModuleNotFoundError, TypeError):
        pass
    return _REPO / folder


def grammar_text() -> str:
    return (_folder("cnndsl.grammars", "grammars") / "cnn.lark").read_text(encoding="utf-8")


def architectures_dir() -> Path:
    return _folder("cnndsl.architectures", "architectures")
