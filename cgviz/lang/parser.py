"""Parse the expression language (lark grammar) into a small AST whose nodes remember where they came from.

The parser is Lark's stand-alone LALR parser generated from grammar.lark (cgviz/lang/lalr.py, written by
`python -m cgviz.lang.gen_parser`): lark itself is not imported."""

from __future__ import annotations

import math
import re
import unicodedata
from bisect import bisect_right
from dataclasses import FrozenInstanceError, dataclass, field
from functools import lru_cache

from ..core.errors import CgvizError, Source, SourceError
from .lalr import (Lark, Lark_StandAlone, Token, Transformer_NonRecursive, UnexpectedCharacters, UnexpectedEOF,
                   UnexpectedInput, UnexpectedToken, VisitError, v_args)
from .postlex import DropNewlinesInBrackets as _DropNewlinesInBrackets


# ---------------------------------------------------------------- AST

class _Node:
    """Immutable AST node with __slots__, value equality, hashing and a repr that names every field:
    what @dataclass(frozen=True, slots=True) generated for these classes, written once here, because
    generating them cost ~5 ms of every `cgviz render`'s start-up (dataclasses compiles each method
    with exec, and slots=True builds each class twice). The fields are the __slots__, in order, and
    the one __init__ below takes them by position or name."""

    __slots__ = ()

    def __init__(self, *args, **kwargs):
        names = self.__slots__
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__}() takes {len(names)} fields, {len(args)} given")
        given = dict(zip(names, args))
        for name, value in kwargs.items():
            if name not in names or name in given:
                raise TypeError(f"{type(self).__name__}(): unexpected or repeated field {name!r}")
            given[name] = value
        if len(given) != len(names):
            missing = [n for n in names if n not in given]
            raise TypeError(f"{type(self).__name__}() missing fields {missing}")
        for name in names:
            _set(self, name, given[name])

    def _values(self) -> tuple:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__qualname__}({fields})"

    def __eq__(self, other):
        if other.__class__ is self.__class__:
            return self._values() == other._values()
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._values())

    def __setattr__(self, name, value):
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name):
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __getstate__(self):
        return self._values()

    def __setstate__(self, state):
        for name, value in zip(self.__slots__, state):
            _set(self, name, value)


_set = object.__setattr__


class Pos(_Node):
    __slots__ = ("line", "col", "start", "end")   # start, end: character offsets into the source


class Num(_Node):
    __slots__ = ("value", "text", "pos")


class Var(_Node):
    __slots__ = ("name", "pos")


class ListLit(_Node):
    __slots__ = ("items", "pos")


class Call(_Node):
    __slots__ = ("func", "args", "kwargs", "pos")   # kwargs: ((name, expr, pos), ...) in the order written


class BinOp(_Node):
    # op: the op table's name (add, sub, mul, div, matmul, pow); pos: the whole expression;
    # op_pos: the operator itself, where a caret points for shape errors
    __slots__ = ("op", "left", "right", "pos", "op_pos")


class Unary(_Node):
    __slots__ = ("op", "operand", "pos")   # op: neg or pos


class Attr(_Node):
    __slots__ = ("obj", "attr", "pos", "attr_pos")


class Stmt(_Node):
    # kind: input, param, const, loss or assign; pos: the statement
    __slots__ = ("kind", "name", "expr", "pos", "name_pos")


class Item(_Node):
    __slots__ = ("name", "index", "pos", "name_pos")    # `x[t]`: step `index` of the sequence `name`


class Seq(_Node):
    # `input x[20] = VALUE`: a declaration's value as a sequence of `steps` steps (its first axis)
    __slots__ = ("steps", "expr", "pos", "steps_pos")


class Loop(_Node):
    # `for var in first..last: body`; kind is "for" and name None, so that it reads like a statement;
    # body: the assignments run at every step, in order
    __slots__ = ("kind", "name", "var", "first", "last", "body", "pos", "var_pos", "range_pos")


@dataclass
class Program:
    statements: list[Stmt] = field(default_factory=list)
    source: Source | None = None


# ---------------------------------------------------------------- lark plumbing

@lru_cache(maxsize=1)
def _lark() -> Lark:
    """The LALR parser: Lark's stand-alone parser, its tables built from grammar.lark beforehand (lalr.py)."""
    return Lark_StandAlone(postlex=_DropNewlinesInBrackets(), lexer_callbacks={"NAME": _checked_name})


class _BadName(Exception):
    """A NAME token holding a character Python does not allow in a name (raised while lexing, so it is
    reported in the order of the text, before any later syntax error)."""

    def __init__(self, token: Token, index: int):
        super().__init__(str(token))
        self.token, self.index = token, index


def _checked_name(tok: Token) -> Token:
    """The lexer's NAME as Python reads a name: each character checked (XID_Start first, XID_Continue
    after, as str.isidentifier does), then NFKC-normalised, so `ｘ` and `x` are one name, as in Python."""
    if tok.isascii():
        return tok              # the grammar's pattern already takes only ASCII letters, digits and _
    for i, ch in enumerate(tok):
        if not (ch.isidentifier() if i == 0 else ("a" + ch).isidentifier()):
            raise _BadName(tok, i)
    name = unicodedata.normalize("NFKC", tok)
    return tok if name == tok else tok.update(value=name)


NAME_RULE = ("A name starts with a letter (of any script: x, θ, 损) or '_', and goes on with letters, "
             "digits and '_'")


def _lookalike(ch: str) -> str | None:
    """What the language writes for a character pasted from a paper, a slide or a Chinese keyboard."""
    if ch in _LOOKALIKES:
        return _LOOKALIKES[ch]
    if ch.isascii():
        return None
    ascii_form = unicodedata.normalize("NFKC", ch)     # full-width （ ） ， ＝ ＋ → ( ) , = +
    if len(ascii_form) == 1 and ascii_form.isascii() and not ascii_form.isalnum() and ascii_form != "_":
        return ascii_form
    return None


def _bad_name_error(e: _BadName, line0: int, source: Source) -> SourceError:
    tok, i = e.token, e.index
    ch = tok[i]
    line, col = tok.line + line0, tok.column + i
    instead = _lookalike(ch)
    if instead is not None:
        msg = f"syntax error: unexpected character {ch!r}; write {instead} instead"
        hint = None
    elif i == 0:
        msg = f"syntax error: {ch!r} (U+{ord(ch):04X}) cannot start a name"
        hint = f"{NAME_RULE}."
    else:
        msg = f"syntax error: {ch!r} (U+{ord(ch):04X}) cannot be part of a name"
        hint = f"{NAME_RULE}, as in Python."
    return SourceError(msg, line=line, col=col, source=source, hint=hint)


def _pos(meta_or_tok) -> Pos:
    if isinstance(meta_or_tok, Token):
        return Pos(meta_or_tok.line, meta_or_tok.column, meta_or_tok.start_pos, meta_or_tok.end_pos)
    m = meta_or_tok
    return Pos(m.line, m.column, m.start_pos, m.end_pos)


def _binop(name):
    def make(self, meta, children):
        left, right = children[0], children[-1]
        op_tok = next((c for c in children if isinstance(c, Token)), None)
        op_pos = self._pos(op_tok) if op_tok is not None else _operator_pos(self.text, self.line_starts, left, right)
        return BinOp(name, left, right, self._pos(meta), op_pos)
    return make


def line_starts(text: str) -> list[int]:
    """The offset at which each line begins: one pass over the text, for line_col's bisect."""
    starts = [0]
    find = text.find
    i = find("\n")
    while i != -1:
        starts.append(i + 1)
        i = find("\n", i + 1)
    return starts


def line_col(starts: list[int], offset: int) -> tuple[int, int]:
    """1-based line and column of a character offset, in O(log lines) (the lexer's counting: \\n ends a line)."""
    line = bisect_right(starts, offset)
    return line, offset - starts[line - 1] + 1


def _operator_pos(text, starts, left, right) -> Pos:
    """Anonymous operator tokens are filtered by lark; find the operator between the two operands.

    Only the characters between the operands are scanned, and the line comes from the precomputed
    line starts: counting newlines from the top of the file for every operator made parsing quadratic."""
    start, end = left.pos.end, right.pos.start
    i = start
    while i < end and text[i] in " \t\\\r\n()":
        i += 1
    j = i
    while j < end and text[j] not in " \t(":
        j += 1
    line, col = line_col(starts, i)
    return Pos(line, col, i, max(j, i + 1))


def _short(text: str, limit: int = 24) -> str:
    """A long literal as the message shows it: its first digits, an ellipsis and its length."""
    return text if len(text) <= limit else f"{text[:12]}… ({len(text):,} characters)"


KEYWORDS = ("input", "param", "const", "loss", "for")


def _not_keyword(tok: Token, pos: Pos) -> None:
    # After `param` the lexer accepts any name, keywords included; reserve them here.
    if str(tok) in KEYWORDS:
        raise SourceError(f"'{tok}' is a keyword and cannot be used as a name", line=pos.line,
                          col=pos.col, width=len(str(tok)))


@v_args(meta=True)
class _ToAst(Transformer_NonRecursive):
    def __init__(self, text):
        super().__init__()
        self.text = text
        self.line_starts = line_starts(text)
        # where the chunk being transformed starts: its first line's number - 1, and its offset
        self.line0 = 0
        self.off = 0

    def _pos(self, meta_or_tok) -> Pos:
        """A position in the whole text (lark counts from the start of the chunk it parsed)."""
        p = _pos(meta_or_tok)
        if not self.off:
            return p
        return Pos(p.line + self.line0, p.col, p.start + self.off, p.end + self.off)

    def start(self, meta, children):
        return [c for c in children if isinstance(c, (Stmt, Loop))]

    def kind(self, meta, children):
        return children[0]

    def decl(self, meta, children):
        kind, name, *steps, expr = children
        _not_keyword(name, self._pos(name))
        if steps:
            count, where = steps[0]
            expr = Seq(count, expr, expr.pos, where)
        return Stmt(str(kind), str(name), expr, self._pos(meta), self._pos(name))

    def steps(self, meta, children):
        tok = children[0]
        p = self._pos(tok)
        if not str(tok).isdigit() or int(str(tok)) < 1:
            raise SourceError(f"a sequence's length is a whole number of steps (1 or more), not {tok}",
                              line=p.line, col=p.col, width=len(str(tok)))
        return int(str(tok)), p

    def loop(self, meta, children):
        var, rng, *body = children
        _not_keyword(var, self._pos(var))
        first, last = (int(x) for x in str(rng).split(".."))
        p = self._pos(rng)
        if last < first:
            raise SourceError(f"the range {first}..{last} is empty: write the first step, then the last "
                              f"({last}..{first} counts up)", line=p.line, col=p.col, width=len(str(rng)))
        return Loop("for", None, str(var), first, last, tuple(body), self._pos(meta), self._pos(var), p)

    def loss(self, meta, children):
        if len(children) == 2:
            name, expr = children
            _not_keyword(name, self._pos(name))
            return Stmt("loss", str(name), expr, self._pos(meta), self._pos(name))
        # `loss = EXPR` names the loss "loss"
        expr = children[0]
        p = self._pos(meta)
        return Stmt("loss", "loss", expr, p, Pos(p.line, p.col, p.start, p.start + 4))

    def assign(self, meta, children):
        name, expr = children
        return Stmt("assign", str(name), expr, self._pos(meta), self._pos(name))

    add = _binop("add")
    sub = _binop("sub")
    mul = _binop("mul")
    div = _binop("div")
    matmul = _binop("matmul")
    pow = _binop("pow")

    def neg(self, meta, children):
        return Unary("neg", children[0], self._pos(meta))

    def pos(self, meta, children):
        return Unary("pos", children[0], self._pos(meta))

    def attr(self, meta, children):
        obj, name = children
        return Attr(obj, str(name), self._pos(meta), self._pos(name))

    def badnumber(self, meta, children):
        tok = children[0]
        p = self._pos(tok)
        raise SourceError(f"syntax error: '{tok}' is not a number", line=p.line, col=p.col,
                          width=len(str(tok)))

    def number(self, meta, children):
        tok = children[0]
        p = self._pos(tok)
        value = float(tok)       # never raises: float() reads any length, and overflows to inf
        if value == math.inf:
            raise SourceError(f"the number {_short(str(tok))} is too large: the largest a 64-bit float "
                              f"holds is about 1.8e308", line=p.line, col=p.col, width=len(str(tok)))
        return Num(value, str(tok), p)

    def var(self, meta, children):
        return Var(str(children[0]), self._pos(children[0]))

    def item(self, meta, children):
        name, index = children
        return Item(str(name), index, self._pos(meta), self._pos(name))

    def call(self, meta, children):
        func, *rest = children
        args, kwargs = [], []
        for a in rest:
            if isinstance(a, tuple) and len(a) == 3 and a[0] == "__kw__":
                kwargs.append(a[1])
            else:
                if kwargs:
                    raise SourceError("a positional argument cannot follow a keyword argument",
                                      line=a.pos.line, col=a.pos.col)
                args.append(a)
        return Call(str(func), tuple(args), tuple(kwargs), self._pos(meta))

    def kwarg(self, meta, children):
        name, expr = children
        return ("__kw__", (str(name), expr, self._pos(name)), None)

    def list(self, meta, children):
        return ListLit(tuple(children), self._pos(meta))


# ---------------------------------------------------------------- errors

_TOKEN_WORDS = {
    "NAME": "a name", "NUMBER": "a number", "_NL": "end of line", "$END": "end of file",
    "POW": "'^'",
}


def _describe(term: str) -> str:
    if term in _TOKEN_WORDS:
        return _TOKEN_WORDS[term]
    try:
        pattern = _lark().get_terminal(term).pattern
        if pattern.type == "str":
            return f"'{pattern.value}'"
    except KeyError:
        pass
    return term.lower()


# Characters people paste from papers and slides, and what the language writes instead.
_LOOKALIKES = {"×": "*", "·": "*", "⋅": "*", "÷": "/", "−": "-", "–": "-", "²": "^2", "³": "^3",
               "√": "sqrt(...)", "σ": "sigmoid(...)", "Σ": "sum(...)", "→": "=", "≤": "min/max", "≥": "min/max",
               "\u3000": "a space", "\xa0": "a space"}


def _expected_text(expected, in_brackets: bool = True, end_of_line: bool = True) -> str:
    skip = {"BADNUMBER"}
    if not in_brackets:
        # LALR merges states, so ')' and ',' show up as "expected" even outside any bracket
        skip |= {"RPAR", "RSQB", "COMMA"}
    if not end_of_line:
        skip.add("_NL")
    words = sorted({_describe(t) for t in expected if t not in skip},
                   key=lambda w: (not w.startswith("a "), w == "end of line", w))
    if not words:
        return ""
    if len(words) > 12:
        words = words[:12] + ["…"]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _syntax_error(e: UnexpectedInput, source: Source) -> SourceError:
    if isinstance(e, UnexpectedCharacters):
        ch = source.text[e.pos_in_stream] if e.pos_in_stream < len(source.text) else ""
        msg = f"syntax error: unexpected character {ch!r}"
        inside = _unclosed_bracket(source.text[:e.pos_in_stream]) is not None
        if ch in "=<>!" and source.text[e.pos_in_stream:e.pos_in_stream + 2] in ("==", "<=", ">=", "!="):
            msg += " (comparisons are not part of the language)"
        elif _lookalike(ch) is not None:
            msg += f"; write {_lookalike(ch)} instead"
        elif ch in "\"'":
            msg += " (the language has no strings: values are numbers, lists and initializers)"
        elif e.allowed:
            msg += f"; expected {_expected_text(e.allowed, inside, end_of_line=False)}"
            if "NAME" in e.allowed:
                return SourceError(msg, line=e.line, col=e.column, source=source, hint=f"{NAME_RULE}.")
        return SourceError(msg, line=e.line, col=e.column, source=source)
    if isinstance(e, UnexpectedToken):
        e.expected = _acceptable(e)
        tok = e.token
        if tok.type == "$END":
            # lark places end-of-file after the final newline we appended; point at the last real line.
            unclosed = _unclosed_bracket(source.text)
            if unclosed:
                ch, line, col = unclosed
                return SourceError(f"syntax error: '{ch}' is never closed", line=line, col=col,
                                   source=source)
            last = max(1, len(source.lines))
            col = len(source.line_text(last)) + 1
            return SourceError(f"syntax error: the file ends in the middle of a statement; "
                               f"expected {_expected_text(e.expected)}", line=last, col=col, source=source)
        unclosed = _unclosed_bracket(source.text[:tok.start_pos])
        if unclosed and unclosed[1] < tok.line:
            ch, line, col = unclosed
            return SourceError(f"syntax error: '{ch}' is not closed before line {tok.line}",
                               line=line, col=col, source=source)
        if tok.type == "_NL":
            what = "end of line"
        else:
            what = repr(str(tok))
        msg = f"syntax error: unexpected {what}"
        expected = _expected_text(e.expected)
        line_text = source.line_text(tok.line)
        if str(tok) == "=" and "==" in line_text[max(0, tok.column - 2):tok.column + 1]:
            msg += " (comparisons are not part of the language)"
        elif tok.type in ("NAME", "NUMBER", "LPAR", "LSQB") and "STAR" in e.expected:
            msg += "; is an operator (such as * or +) missing before it?"
        elif expected:
            inside = _unclosed_bracket(source.text[:tok.start_pos]) is not None
            msg += f"; expected {_expected_text(e.expected, inside)}"
        hint = None
        first = line_text.split()[0] if line_text.split() else ""
        if str(tok) == "=" and first in ("input", "param", "const"):
            hint = f"'{first}' is a keyword: write `{first} NAME = VALUE`."
        if tok.type == "NAME" and str(tok) in ("input", "param", "const", "loss"):
            hint = f"'{tok}' is a keyword and cannot be used as a name here."
        return SourceError(msg, line=tok.line, col=tok.column, source=source, hint=hint,
                           width=max(1, len(str(tok))) if tok.type != "_NL" else 1)
    if isinstance(e, UnexpectedEOF):
        last = max(1, len(source.lines))
        return SourceError("syntax error: the file ends in the middle of a statement",
                           line=last, col=len(source.line_text(last)) + 1, source=source)
    return SourceError(f"syntax error: {e}", source=source)


def _acceptable(e: UnexpectedToken) -> set:
    """The terminals the parser could take where it stopped. lark's `expected` also holds the
    post-lexer's always-accepted end of line, even where a statement cannot end (`for t in 1..3 h`
    would say "expected ':' or end of line"), so it is narrowed to the parse state's actions."""
    try:
        actions = e.state.parse_conf.states[e.state.position]
    except (AttributeError, KeyError, TypeError):
        return set(e.expected)
    return {t for t in e.expected if t in actions} or set(e.expected)


def _unclosed_bracket(text: str):
    """The first '(' or '[' that is never closed, as (char, line, col), ignoring comments."""
    stack = []
    line, col = 1, 0
    in_comment = False
    for ch in text:
        col += 1
        if ch == "\n":
            line, col, in_comment = line + 1, 0, False
            continue
        if in_comment:
            continue
        if ch == "#":
            in_comment = True
        elif ch in "([":
            stack.append((ch, line, col))
        elif ch in ")]" and stack:
            stack.pop()
    return stack[0] if stack else None


# ---------------------------------------------------------------- entry point

# Lines per lark parse. A long file is parsed a chunk of whole statements at a time, so that only one
# chunk's parse tree exists at once (a million-line tree would take gigabytes); the AST is kept.
CHUNK_LINES = 2000

# What decides where a statement ends: newlines, brackets, comments and backslash continuations.
_STRUCTURE = re.compile(r"[\n()\[\]#]|\\[ \t]*\r?\n")


def chunks(body: str, lines: int = CHUNK_LINES):
    """(start, end, first line - 1) of runs of about `lines` lines that each end at a statement's end.

    A newline ends a statement unless it is inside brackets or continues a backslash, as the
    post-lexer and the grammar decide; comments are skipped. If this scan ever cut a statement in two,
    its first half would not parse, and parse() falls back to one parse of the whole text."""
    start, line, depth, start_line = 0, 1, 0, 1
    pos = 0
    n = len(body)
    while pos < n:
        m = _STRUCTURE.search(body, pos)
        if m is None:
            break
        ch = m.group()
        pos = m.end()
        if ch == "\n":
            line += 1
            if depth == 0 and line - start_line >= lines:
                yield start, pos, start_line - 1
                start, start_line = pos, line
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth = max(0, depth - 1)
        elif ch == "#":
            nl = body.find("\n", pos)
            pos = n if nl == -1 else nl
        else:                       # a backslash continuation: its newline does not end the statement
            line += 1
    if start < n:
        yield start, n, start_line - 1


_CONTENT = re.compile(r"[^ \t\r\f\n]")
_LOOP_HEADER = re.compile(r"for\b[^\n#]*:[ \t]*(#[^\n]*)?$", re.M)


def statement_lines(body: str):
    """The line of each statement's start, as chunks() reads the text (a newline inside brackets or
    after a backslash continues the statement; blank lines and comments are none), without parsing it."""
    pos, line, depth, pending = 0, 1, 0, None
    n = len(body)
    while pos < n:
        m = _STRUCTURE.search(body, pos)
        end = n if m is None else m.start()
        if pending is None and depth == 0 and (c := _CONTENT.search(body, pos, end)):
            # something that is not blank starts a statement here; a loop's header with its body on
            # the lines below (`for t in 1..20:`) is none: each body line is one, run at every step
            pending = None if _LOOP_HEADER.match(body, c.start(), end) else line
        if m is None:
            break
        ch = m.group()
        pos = m.end()
        if ch == "\n":
            if depth == 0 and pending is not None:
                yield pending
                pending = None
            line += 1
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth = max(0, depth - 1)
        elif ch == "#":
            nl = body.find("\n", pos)
            pos = n if nl == -1 else nl
        else:                               # a backslash continuation
            line += 1
    if pending is not None:
        yield pending


def _shapes():
    from . import shapes       # a long program's line-by-line parse (imported when one is read)
    return shapes


def parse(text: str, name: str = "<input>") -> Program:
    """Parse a whole program; a SourceError names file, line and column and shows a caret.

    Linear in the length of the text: the file is parsed in chunks of whole statements (see chunks),
    and every position is computed from precomputed line starts, never by counting from the top."""
    source = Source(text, name)
    body = text if text.endswith("\n") else text + "\n"
    to_ast = _ToAst(body)
    statements: list[Stmt] = []
    if body.count("\n") >= _shapes().MIN_LINES:
        try:
            statements = _shapes().Shapes(to_ast).statements(body)
        except _shapes().Fallback:
            statements = []
        except SourceError as e:
            raise e.at(source) from None
    parts = [] if statements else list(chunks(body))
    try:
        try:
            for start, end, line0 in parts:
                to_ast.line0, to_ast.off = line0, start
                statements += to_ast.transform(_lark().parse(body[start:end] if len(parts) > 1 else body))
        except UnexpectedInput:
            if len(parts) == 1:
                raise
            # One parse of the whole text: the error message looks at all of it (unclosed brackets, the
            # end of the file), and should the scan have cut a statement, the whole parse is right.
            to_ast.line0 = to_ast.off = 0
            statements = to_ast.transform(_lark().parse(body))
    except UnexpectedInput as e:
        raise _syntax_error(e, source) from None
    except _BadName as e:
        raise _bad_name_error(e, to_ast.line0, source) from None
    except VisitError as e:
        if isinstance(e.orig_exc, SourceError):
            raise e.orig_exc.at(source) from None
        raise
    if any(type(s) is Loop for s in statements):
        try:
            statements = group_loops(statements)
        except SourceError as e:
            raise e.at(source) from None
    return Program(statements, source)


def group_loops(statements: list) -> list:
    """A loop header written alone takes the statements indented below it as its body (as Python's
    blocks do; the lexer ignores indentation, and the column of each statement says it)."""
    out: list = []
    i = 0
    while i < len(statements):
        s = statements[i]
        i += 1
        if type(s) is not Loop:
            out.append(s)
            continue
        body = list(s.body)
        while i < len(statements) and statements[i].pos.col > s.pos.col:
            inner = statements[i]
            if type(inner) is Loop:
                raise SourceError("loops cannot be nested: write the inner recurrence as its own loop",
                                  line=inner.pos.line, col=inner.pos.col, width=3)
            if s.body:
                raise SourceError("this loop's body is already on its line (after the colon): "
                                  "this indented statement belongs to no loop", line=inner.pos.line,
                                  col=inner.pos.col, width=max(1, inner.name_pos.end - inner.name_pos.start))
            body.append(inner)
            i += 1
        if not body:
            raise SourceError(f"the loop over {s.var} has no body: write one statement after the colon, "
                              "or indent the statements of the body on the lines below it",
                              line=s.pos.line, col=s.pos.col, width=3)
        out.append(Loop(s.kind, s.name, s.var, s.first, s.last, tuple(body), s.pos, s.var_pos, s.range_pos))
    return out


def parse_value(text: str, what: str, name: str):
    """Parse the right-hand side of `--set NAME=VALUE` as an expression, for the builder to evaluate.

    `what` is how the caller wrote the option (`--set NAME`), `name` the declaration's. A number the value cannot hold (1e400) is a SourceError located in the
    argument as typed, `NAME=VALUE`, with a caret under the number."""
    prefix = "const __set__ = "
    try:
        prog = parse(f"{prefix}{text}\n", what)
    except SourceError as e:
        if not e.message.startswith("syntax error") and e.line == 1 and e.col is not None \
                and e.col > len(prefix):
            arg = f"{name}={text}"
            raise SourceError(e.message, line=1, col=e.col - len(prefix) + len(name) + 1,
                              source=Source(arg, what), width=e.width) from None
        raise CgvizError(f"cannot read {text!r} as a value "
                         f"({e.message.removeprefix('syntax error: ')})") from None
    if len(prog.statements) != 1:
        raise CgvizError(f"cannot read {text!r} as a value (one value, not several statements)")
    return prog.statements[0].expr
