"""User-facing errors: every mistake in a .cnn file or on the command line becomes a CnnError.

A CnnError carries a Span into a Source, and prints itself the way compilers do:

    resnet.cnn:12:9: error: unknown op 'convv'; did you mean 'conv'?
       12 |     y = convv(64, 3)
          |         ^^^^^
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Source:
    """The text of one .cnn file (or of one command-line argument) and the name to report it by."""

    path: str
    text: str = field(repr=False)

    def line(self, number: int) -> str:
        lines = self.text.splitlines()
        return lines[number - 1] if 1 <= number <= len(lines) else ""


@dataclass(frozen=True)
class Span:
    """A region of a Source: 1-based line and column, end column exclusive."""

    source: Source = field(repr=False, compare=False)
    line: int
    column: int
    end_line: int
    end_column: int

    @property
    def where(self) -> str:
        return f"{self.source.path}:{self.line}:{self.column}"


@dataclass(frozen=True)
class KeywordSpan(Span):
    """The span of a keyword argument's value, knowing where the whole `name=value` is: errors about the
    value point at the value, errors about the name at the name."""

    whole: Span | None = field(default=None, repr=False, compare=False)


def keyword_span(span: Span) -> Span:
    return getattr(span, "whole", None) or span


@dataclass
class Note:
    """A secondary location, shown under the error ("input 2 came from here")."""

    message: str
    span: Span | None = None


@dataclass
class Diagnostic:
    """A message located in the user's text, printed the way compilers print them."""

    message: str
    span: Span | None = None
    notes: list[Note] = field(default_factory=list)
    severity = "error"  # a class attribute, not a field

    def __str__(self) -> str:
        return self.format()

    def format(self) -> str:
        return _format(self.severity, self.message, self.span, self.notes)


@dataclass
class CnnError(Diagnostic, Exception):
    """A mistake in the user's input, reported at a place in their text."""


@dataclass
class CnnWarning(Diagnostic):
    """Legal but almost surely a mistake (an unused parameter, a value no output needs): reported, and the
    compiler goes on."""

    severity = "warning"


class CnnDslWarning(UserWarning):
    """The Python warning category `cnndsl.load` raises CnnWarnings as."""


def _format(severity: str, message: str, span: Span | None, notes: list[Note]) -> str:
    out = [f"{span.where}: {severity}: {message}" if span else f"cnndsl: {severity}: {message}"]
    if span:
        out += _excerpt(span)
    for note in notes:
        if note.span:
            out.append(f"{note.span.where}: note: {note.message}")
            out += _excerpt(note.span)
        else:
            out.append(f"note: {note.message}")
    return "\n".join(out)


def _excerpt(span: Span) -> list[str]:
    """The source line with carets under the span (clipped to that line)."""
    text = span.source.line(span.line)
    if not text:
        return []
    gutter = f"{span.line:>5} | "
    end = span.end_column if span.end_line == span.line and span.end_column > span.column else len(text) + 1
    width = max(1, min(end, len(text) + 1) - span.column)
    pad = "".join(c if c == "\t" else " " for c in text[: span.column - 1])
    return [gutter + text, " " * (len(gutter) - 2) + "| " + pad + "^" * width]


def suggest(word: str, candidates) -> str:
    """'; did you mean 'x'?' for the closest candidate, or ''."""
    close = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""
