"""How generated files write text they did not make: the one place user text becomes Python source.

`string` writes any text as a double-quoted literal; `docstring_text` writes it for the inside of a
triple-quoted docstring. Both escape backslashes and the double quotes that could end the literal (a
quote at the end of a docstring, or a run of them), and write every character that is not printable as
an escape: NUL and other control characters, and the Unicode line and paragraph separators (\\u2028)
that str.splitlines() would break on. Printable text (accents, other scripts) stays as it is; the
escapes give back the text exactly.
"""

from __future__ import annotations


def _escape(text: str, quotes: str = '"') -> str:
    out = []
    text = str(text)
    for i, ch in enumerate(text):
        if ch == "\\" or (ch == '"' and (quotes == '"' or text[i + 1:i + 2] in ('"', ""))):
            out.append("\\" + ch)
        elif ch.isprintable():  # False for controls, separators other than space, unassigned code points
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return "".join(out)


def string(text: str) -> str:
    """A double-quoted Python string literal holding exactly `text`."""
    return '"' + _escape(text) + '"'


def docstring_text(text: str) -> str:
    """`text` for the inside of a triple-quoted docstring (one line: a newline in it is escaped too). A double
    quote is escaped only where it could end the docstring: before another quote, or last."""
    return _escape(text, quotes='"""')
