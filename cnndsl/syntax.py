"""Text -> syntax tree. lark parses (grammars/cnn.lark, LALR); a Transformer builds the AST with spans.

This is the one place where lark's exceptions become CnnErrors, worded in the user's tokens.
"""

from __future__ import annotations

import difflib
import re
from functools import lru_cache

from lark import Lark, Token, v_args
from lark.visitors import Transformer_NonRecursive
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from . import ast as A
from .errors import CnnError, Source, Span
from .resources import grammar_text

# Newlines are dropped after these tokens (the line obviously goes on) ...
_CONTINUES_AFTER = {"->", ",", "{", "(", "[", "=", "+", "-", "*", "/", "//", "%", "**", "and", "or", "not",
                    "==", "!=", "<", ">", "<=", ">=", ":"}
# ... and before these (the next line continues this one, or closes a block).
_CONTINUES_BEFORE = {"->", "}", "else", ")", "]"}


class _Newlines:
    """Postlexer: keep only the newlines that end a statement (see the grammar's header)."""

    always_accept = ("_NL",)

    def process(self, stream):
        depth = 0
        prev = None
        pending = None
        for tok in stream:
            if tok.type == "_NL":
                if depth == 0 and prev is not None and not _punct(prev, _CONTINUES_AFTER) and pending is None:
                    pending = tok
                continue
            if pending is not None:
                if not _punct(tok, _CONTINUES_BEFORE):
                    yield pending
                pending = None
            if tok.value in ("(", "[") and tok.type != "STRING":
                depth += 1
            elif tok.value in (")", "]") and tok.type != "STRING":
                depth = max(0, depth - 1)
            prev = tok
            yield tok
        # a trailing newline is dropped: the grammar's optional _NL at the end would accept it anyway


def _punct(tok: Token, values: set[str]) -> bool:
    return tok.type not in ("STRING", "NAME", "NUMBER", "SHAPE") and tok.value in values


@lru_cache(maxsize=None)
def _parser() -> Lark:
    options = dict(parser="lalr", lexer="basic", postlex=_Newlines(), propagate_positions=True,
                   maybe_placeholders=True, start=["start", "chain"])
    try:  # lark stores the analysed grammar in the temp folder, keyed by grammar and options: 3x faster start
        parser = Lark(grammar_text(), cache=True, **options)
    except OSError:  # an unwritable temp folder only costs time
        parser = Lark(grammar_text(), **options)
    _pass_through_single_children(parser)
    return parser


class _PassThrough:
    """The callback of a `?rule` whose one symbol is kept: reduced from that one child, the rule's value is
    the child, whose positions lark has already set; lark's position wrapper would only copy them. Every
    operand climbs about ten such rules (test -> or_test -> ... -> atom), so this halves the parser's
    time per token. Anything else goes to lark's own callback."""

    __slots__ = ("full",)

    def __init__(self, full):
        self.full = full

    def __call__(self, children):
        return children[0] if len(children) == 1 else self.full(children)


def _pass_through_single_children(parser: Lark) -> None:
    callbacks = parser.parser.parser.parser.callbacks  # the LALR parser's table of reduce callbacks (shared)
    for rule, callback in list(callbacks.items()):
        if rule.options.expand1 and not rule.alias and len(rule.expansion) == 1:
            sym = rule.expansion[0]
            if not (sym.is_term and (sym.filter_out or sym.name.startswith("_"))):
                callbacks[rule] = _PassThrough(callback)


def parse(source: Source) -> A.Module:
    """Parse a whole .cnn file."""
    return _run(source, "start")


def parse_expression(source: Source, text: str | None = None) -> A.Node:
    """Parse one expression (a --set value, a shape on the command line). `text`, when given, is what
    is parsed (the value alone, blanked to its columns in `source`), while errors show `source`."""
    return _run(source, "chain", text)


def _run(source: Source, start: str, text: str | None = None):
    try:
        tree = _parser().parse(source.text if text is None else text, start=start)
    except UnexpectedInput as exc:
        raise _shape_hint(_syntax_error(source, exc, text)) from None
    try:
        return _Builder(source).transform(tree)
    except VisitError as exc:  # an error raised while building the AST (e.g. a bad string escape)
        if isinstance(exc.orig_exc, CnnError):
            raise exc.orig_exc from None
        raise


# ---------------------------------------------------------------- syntax errors

_FRIENDLY = {
    "NAME": "a name", "NUMBER": "a number", "STRING": "a string", "SHAPE": "a shape like 3x224x224",
    "_NL": "end of line", "$END": "end of file", "COMP_OP": "a comparison", "ADD_OP": "'+' or '-'",
    "MUL_OP": "'*', '/', '//' or '%'", "_POW": "'**'", "TOKENS": "'tokens'",
    "TRAINING": "'training'",
}
_EXPRESSION_START = {"NAME", "NUMBER", "STRING", "SHAPE", "LPAR", "LSQB", "TRUE", "FALSE", "NONE", "ADD_OP", "NOT"}


def _display(name: str) -> str:
    if name in _FRIENDLY:
        return _FRIENDLY[name]
    for term in _parser().terminals:
        if term.name == name and term.pattern.type == "str":
            return f"'{term.pattern.value}'"
    return name.lower()


def _describe_token(tok: Token) -> str:
    if tok.type == "$END":
        return "end of file"
    if tok.type == "_NL":
        return "end of line"
    kind = {"NAME": "name", "NUMBER": "number", "STRING": "string", "SHAPE": "shape"}.get(tok.type)
    return f"{kind} '{tok.value}'" if kind else f"'{tok.value}'"


_CLOSER = {"(": ")", "[": "]", "{": "}"}
_OPERATORS = {"ADD_OP", "MUL_OP", "_POW", "COMP_OP", "AND", "OR", "IF", "DOT", "LPAR", "LSQB", "COLON", "LBRACE"}
_STATEMENT_WORDS = {"input", "output", "return", "if", "for", "network", "block", "preset", "import"}
_KEYWORDS = ["network", "block", "preset", "import", "input", "output", "return", "for", "if", "else", "init"]


def _expected_words(names: set[str]) -> str:
    names = set(names) - {"$END"} if len(names) > 1 else set(names)
    words = []
    if len(names & _EXPRESSION_START) >= 4:
        names -= _EXPRESSION_START
        words.append("an expression")
    if len(names & {"ADD_OP", "MUL_OP", "COMP_OP"}) >= 2:
        names -= _OPERATORS
        words.append("an operator")
    words = sorted(_display(n) for n in names) + words
    if not words:
        return "something else"
    return ", ".join(words[:-1]) + (" or " if len(words) > 1 else "") + words[-1]


def _tokens_before(text: str, line: int, col: int) -> list[Token]:
    out = []
    try:
        for tok in _parser().lex(text, dont_ignore=False):
            if (tok.line, tok.column) >= (line, col):
                break
            out.append(tok)
    except UnexpectedInput:
        pass
    return out


def _syntax_error(source: Source, exc: UnexpectedInput, text: str | None = None) -> CnnError:
    """lark's exception -> a CnnError in the user's terms: what was expected (from the parser state,
    not lark's approximate set), an unclosed bracket at its opener, and the usual slips named."""
    text = source.text if text is None else text
    line, col = max(1, exc.line if exc.line != -1 else 1), max(1, exc.column if exc.column != -1 else 1)
    if isinstance(exc, UnexpectedCharacters):
        char = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else "?"
        span = Span(source, line, col, line, col + 1)
        if char == '"':
            return CnnError("unterminated string (a string ends with '\"' on the same line)", span)
        if char == "'":
            return CnnError("unexpected character \"'\": strings are written in double quotes", span)
        return CnnError(f"unexpected character {char!r}", span)
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        lines = source.text.rstrip("\n").splitlines() or [""]
        expected = getattr(exc, "expected", None) or ()
        message = "unexpected end of file"
        stack = _open_brackets(_tokens_before(text, len(lines) + 1, 1))
        if stack:
            opener = stack[-1]
            return CnnError(f"'{opener.value}' was never closed (expected '{_CLOSER[opener.value]}')",
                            Span(source, opener.line, opener.column, opener.line, opener.column + 1))
        if expected:
            message += f"; expected {_expected_words(set(expected))}"
        return CnnError(message, Span(source, len(lines), len(lines[-1]) + 1, len(lines), len(lines[-1]) + 2))
    tok = exc.token
    accepts = exc.interactive_parser.accepts() if getattr(exc, "interactive_parser", None) else set(exc.expected)
    before = _tokens_before(text, tok.line, tok.column)
    prev = before[-1] if before else None
    span = Span(source, tok.line, tok.column, tok.end_line or tok.line, tok.end_column or tok.column + 1)
    if prev is not None and prev.value == "->" and prev.type != "STRING" and prev.line < tok.line:
        end = len(source.line(prev.line).rstrip()) + 1
        return CnnError("unexpected end of line; expected a layer after '->'",
                        Span(source, prev.line, end, prev.line, end + 1))
    stack = _open_brackets(before)
    rest = text[tok.end_pos:].lstrip(" \t")
    starts_statement = tok.value in _STATEMENT_WORDS or (
        tok.type == "NAME" and prev is not None and prev.line < tok.line and rest.startswith("=")
        and not rest.startswith("=="))
    if stack and starts_statement and stack[-1].line < tok.line:
        opener = stack[-1]
        closer = {"(": "RPAR", "[": "RSQB", "{": "RBRACE"}[opener.value]
        if closer in accepts and (opener.value != "{" or tok.value in {"network", "block", "preset", "import"}):
            return CnnError(f"'{opener.value}' was never closed",
                            Span(source, opener.line, opener.column, opener.line, opener.column + 1))
    if tok.value == "=" and text[tok.end_pos:tok.end_pos + 1] == ">":
        return CnnError("unexpected '=>'; did you mean '->'?",
                        Span(source, tok.line, tok.column, tok.line, tok.column + 2))
    line_start = [t for t in before if t.line == tok.line][:2]  # `training aux = ...`: the word `output` left out
    if (len(line_start) == 2 and line_start[0].value == "training" and line_start[1].type == "NAME"
            and (len(before) == len(line_start) or before[-len(line_start) - 1].line < tok.line)):
        name = line_start[1]
        return CnnError(f"unexpected name '{name.value}' after 'training'; a training-only output is written "
                        f"`training output {name.value} = ...`",
                        Span(source, name.line, name.column, name.end_line or name.line,
                             name.end_column or name.column + 1))
    if tok.type == "NAME" and tok.value == "elif":
        return CnnError("unexpected name 'elif'; write 'else if'", span)
    if tok.value == "=" and "EQUAL" not in accepts and "COMP_OP" in accepts:
        return CnnError("unexpected '='; did you mean '=='?", span)
    if tok.type == "NAME" and prev is not None and prev.type == "NAME" and prev.column == 1:
        close = difflib.get_close_matches(prev.value, _KEYWORDS, n=1, cutoff=0.6)
        if close:
            return CnnError(f"unknown keyword '{prev.value}'; did you mean '{close[0]}'?",
                            Span(source, prev.line, prev.column, prev.line, prev.end_column))
    if "NAME" in accepts and tok.type != "STRING" and _RESERVED.fullmatch(tok.value or ""):
        return CnnError(f"'{tok.value}' is a reserved word and cannot be used as a name", span)
    if tok.type == "_NL":  # point at the end of the line that ended too early
        end = len(source.line(tok.line).rstrip()) + 1
        span = Span(source, tok.line, end, tok.line, end + 1)
    return CnnError(f"unexpected {_describe_token(tok)}; expected {_expected_words(accepts)}", span)


_INPUT_LINE = re.compile(r"\s*input\s+\w+\s*:")


def _shape_hint(err: CnnError) -> CnnError:
    """A syntax error in an input's shape (`3 x 32 x 32`, `(3, 32, 32)`) says how a shape is written."""
    span = err.span
    if span is not None and (span.source.path == "--input" or _INPUT_LINE.match(span.source.line(span.line))):
        err.message += "; a shape is written without spaces or brackets: 3x32x32 (or tokens 197x768)"
    return err


def _open_brackets(tokens: list[Token]) -> list[Token]:
    stack = []
    for t in tokens:
        if t.type == "STRING":
            continue
        if t.value in _CLOSER:
            stack.append(t)
        elif t.value in _CLOSER.values() and stack:
            stack.pop()
    return stack


_RESERVED = re.compile(r"[A-Za-z_]\w*")  # a keyword's text: the lexer made it a keyword, not a NAME


# ---------------------------------------------------------------- tree -> AST

_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}


@v_args(meta=True)
class _Builder(Transformer_NonRecursive):
    """Builds the dataclass AST; one method per grammar rule or alias."""

    def __init__(self, source: Source):
        super().__init__()
        self.source = source

    def _span(self, meta) -> Span:
        if getattr(meta, "empty", False):
            return Span(self.source, 1, 1, 1, 1)
        return Span(self.source, meta.line, meta.column, meta.end_line, meta.end_column)

    def _tok_span(self, tok: Token) -> Span:
        return Span(self.source, tok.line, tok.column, tok.end_line, tok.end_column)

    def _string(self, tok: Token) -> str:
        body, out, i = tok.value[1:-1], [], 0
        while i < len(body):
            if body[i] == "\\":
                esc = body[i + 1]
                if esc not in _ESCAPES:
                    col = tok.column + 1 + i
                    raise CnnError(f"unknown escape '\\{esc}' in string (use \\n, \\t, \\\" or \\\\)",
                                   Span(self.source, tok.line, col, tok.line, col + 2))
                out.append(_ESCAPES[esc])
                i += 2
            else:
                out.append(body[i])
                i += 1
        return "".join(out)

    # top level
    def start(self, meta, items):
        return A.Module(self._span(meta), items)

    def import_stmt(self, meta, c):
        return A.Import(self._span(meta), self._string(c[0]))

    def block_def(self, meta, c):
        return A.BlockDef(self._span(meta), str(c[0]), c[1] or [], c[2])

    def template_def(self, meta, c):
        return A.TemplateDef(self._span(meta), str(c[0]), c[1] or [], c[2])

    def network_def(self, meta, c):
        return A.NetworkDef(self._span(meta), str(c[0]), c[1] or [], c[2])

    def preset_def(self, meta, c):
        doc = self._string(c[3]) if c[3] is not None else ""
        return A.PresetDef(self._span(meta), str(c[0]), str(c[1]), c[2] or [], doc)

    def params(self, meta, c):
        seen = set()
        for p in c:
            if p.name in seen:
                raise CnnError(f"parameter '{p.name}' is declared twice", p.span)
            seen.add(p.name)
        return list(c)

    def param(self, meta, c):
        return A.Param(self._span(meta), str(c[0]), c[1])

    def body(self, meta, c):
        return list(c)

    # statements
    def assign(self, meta, c):
        return A.Assign(self._span(meta), c[0], c[1])

    def targets(self, meta, c):
        return [str(t) for t in c]

    def if_stmt(self, meta, c):
        orelse = c[2]
        if orelse is None:
            orelse = []
        elif isinstance(orelse, A.If):
            orelse = [orelse]
        return A.If(self._span(meta), c[0], c[1], orelse)

    def for_stmt(self, meta, c):
        return A.For(self._span(meta), c[0], c[1], c[2])

    def return_stmt(self, meta, c):
        return A.Return(self._span(meta), c[0])

    def input_stmt(self, meta, c):
        return A.Input(self._span(meta), str(c[0]), c[1] is not None, c[2])

    def output_stmt(self, meta, c):
        return A.Output(self._span(meta), str(c[1]), c[2], c[0] is not None)

    def doc_stmt(self, meta, c):
        return A.Doc(self._span(meta), self._string(c[0]))

    def init_stmt(self, meta, c):
        word = c[0]
        if str(word) != "init":
            close = difflib.get_close_matches(str(word), ["init"], n=1, cutoff=0.5)
            hint = "; did you mean 'init'?" if close else " (a statement is an assignment, input, output, init, ...)"
            raise CnnError(f"unknown statement '{word}'{hint}", self._tok_span(word))
        return A.Init(self._span(meta), list(c[1:-1]), c[-1] or [])

    def init_selector(self, meta, c):
        return A.Selector(self._span(meta), c[0], c[1])

    def init_path(self, meta, c):
        parts: list = []
        for p in c:
            if isinstance(p, Token):  # NUMBER: a numbered member, lexed with its dot (`classifier.1`)
                if not re.fullmatch(r"\.\d+", str(p)):
                    raise CnnError(f"'{p}' is not a member number (write classifier.1)", self._tok_span(p))
                parts.append(str(p)[1:])
            else:
                parts.append(p)
        return parts

    # expressions
    def chain(self, meta, c):
        return A.Chain(self._span(meta), list(c))

    def labeled(self, meta, c):
        return A.Labeled(self._span(meta), c[0], c[1])

    def label(self, meta, c):
        parts = [str(p) if isinstance(p, Token) else p for p in c if p is not None]
        return A.Label(self._span(meta), parts)

    def ternary(self, meta, c):
        return A.Ternary(self._span(meta), c[0], c[1], c[2])

    def or_(self, meta, c):
        return A.BoolOp(self._span(meta), "or", list(c))

    def and_(self, meta, c):
        return A.BoolOp(self._span(meta), "and", list(c))

    def not_(self, meta, c):
        return A.Not(self._span(meta), c[0])

    def compare(self, meta, c):
        return A.Compare(self._span(meta), [str(t) for t in c[1::2]], list(c[0::2]))

    def binop(self, meta, c):
        return A.BinOp(self._span(meta), [str(t) for t in c[1::2]], list(c[0::2]))

    def unary(self, meta, c):
        return A.Unary(self._span(meta), str(c[0]), c[1])

    def power(self, meta, c):
        return A.BinOp(self._span(meta), ["**"], [c[0], c[1]])

    def call(self, meta, c):
        return A.Call(self._span(meta), c[0], c[1] or [])

    def attr(self, meta, c):
        return A.Attr(self._span(meta), c[0], str(c[1]))

    def index(self, meta, c):
        return A.Index(self._span(meta), c[0], c[1])

    def name(self, meta, c):
        return A.Name(self._span(meta), str(c[0]))

    def number(self, meta, c):
        text = str(c[0])
        value = int(text) if text.isdigit() else float(text)
        return A.Const(self._span(meta), value)

    def string(self, meta, c):
        return A.Const(self._span(meta), self._string(c[0]))

    def shape(self, meta, c):
        return A.Const(self._span(meta), [int(d) for d in str(c[0]).split("x")])

    def true(self, meta, c):
        return A.Const(self._span(meta), True)

    def false(self, meta, c):
        return A.Const(self._span(meta), False)

    def none(self, meta, c):
        return A.Const(self._span(meta), None)

    def list(self, meta, c):
        return A.ListLit(self._span(meta), c[0] or [])

    def args(self, meta, c):
        return [a if isinstance(a, A.Arg) else A.Arg(a.span, None, a) for a in c]

    def kwarg(self, meta, c):
        return A.Arg(self._span(meta), str(c[0]), c[1])

    def elems(self, meta, c):
        return list(c)

    def list_for(self, meta, c):
        return A.ListFor(self._span(meta), c[0], c[1], c[2] or [])

    def list_if(self, meta, c):
        orelse = c[2]
        if orelse is None:
            orelse = []
        elif isinstance(orelse, A.ListIf):
            orelse = [orelse]
        return A.ListIf(self._span(meta), c[0], c[1] or [], orelse)

    def list_else(self, meta, c):
        return c[0] or []
