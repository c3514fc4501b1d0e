"""Parse a long program one line at a time, reusing the parse of each statement *shape*: generated code
repeats a few shapes (`v8 = v7 * w + 1`, `v9 = tanh(v8)`) thousands of times, and Lark parsed each
copy anew, at about 200 µs a line.

A line's shape is its text with every name and number replaced by a placeholder, plus which of them
are names, numbers or keywords. An LALR parse depends only on the token types, so two lines of one
shape parse alike: the first is parsed by Lark (the grammar stays the one definition), and its AST is
turned into a template whose names, numbers and positions are filled in from each later line of
that shape. Anything unusual (a statement over several lines, a comment after code, a range or a
malformed number, an error) makes the caller parse the whole program with Lark as before.
"""

from __future__ import annotations

import math
import re

from ..core.errors import SourceError
from .parser import (Attr, BinOp, Call, Item, ListLit, Num, Pos, Stmt, Unary, Var, _BadName, _lark, _set,
                     _short, UnexpectedInput, VisitError)

# Below this many lines a program is parsed whole, as before: the cache pays off on long files only.
MIN_LINES = 500

_NEW = object.__new__


class Fallback(Exception):
    """The program needs Lark's own parse of the whole text (an error, or a line this module skips)."""


def _tokens_regex():
    """Names and numbers as the grammar's own terminals define them (a name that is a keyword is told
    apart after matching, so keywords stay in the shape)."""
    lark = _lark()
    name = lark.get_terminal("NAME").pattern.to_regexp()
    number = lark.get_terminal("NUMBER").pattern.to_regexp()
    # a number first, as Lark's lexer reads `1e5`; groups: 1 = number, 2 = name (NUMBER has its own)
    number = re.sub(r"\((?!\?)", "(?:", number)
    return re.compile(f"({number})|({name})")


def _keywords() -> frozenset:
    lark = _lark()
    word = re.compile(lark.get_terminal("NAME").pattern.to_regexp())
    return frozenset(t.pattern.value for t in lark.terminals
                     if t.pattern.type == "str" and word.fullmatch(t.pattern.value))


def _maker(cls):
    """A constructor of an AST class taking every field by position, without _Node.__init__'s checks
    (the template passes the fields Lark's parse had): half the cost of a generic loop over the slots."""
    args = ", ".join(f"v{i}" for i in range(len(cls.__slots__)))
    sets = "".join(f"    s(o, {name!r}, v{i})\n" for i, name in enumerate(cls.__slots__))
    ns = {"n": _NEW, "s": _set, "cls": cls}
    exec(f"def make({args}):\n    o = n(cls)\n{sets}    return o\n", ns)
    return ns["make"]


_MAKE = {cls: _maker(cls) for cls in (Pos, Var, Num, BinOp, Unary, Call, Attr, ListLit, Item, Stmt)}


def _make(cls, *values):
    return _MAKE[cls](*values)


class _Uncacheable(Exception):
    pass


class Shapes:
    """The templates of one parse: shape → a function of a line's tokens that makes its statement."""

    def __init__(self, to_ast):
        self.to_ast = to_ast
        self.templates: dict = {}
        self.tokens = _tokens_regex()
        self.keywords = _keywords()

    # ------------------------------------------------------------ per line

    def statements(self, body: str) -> list:
        """Every statement of `body`, or Fallback."""
        out: list = []
        tokens, keywords, templates = self.tokens, self.keywords, self.templates
        finditer = tokens.finditer
        line_no, base = 0, 0
        for line in body.split("\n"):
            line_no += 1
            start = base
            base += len(line) + 1
            stripped = line.strip()
            if not stripped or stripped[0] == "#":
                continue
            # a name outside ASCII is checked and NFKC-normalised by the lexer (parser._checked_name)
            if not line.isascii() or "#" in line or "\\" in line or ".." in line or \
                    line.count("(") != line.count(")") or line.count("[") != line.count("]"):
                raise Fallback
            S, E, T, kinds = [], [], [], []
            for m in finditer(line):
                text = m.group()
                S.append(m.start() + start)
                E.append(m.end() + start)
                T.append(text)
                kinds.append(text if text in keywords else ("n" if m.lastindex == 2 else "0"))
            key = (tokens.sub("\x00", line), tuple(kinds))
            make = templates.get(key)
            if make is None:
                stmt = self._parse_line(line, start, line_no)
                if stmt is None:
                    continue
                make = self._template(stmt, S, E, start)
                # the template must give back what Lark gave: else this shape is always Lark's
                templates[key] = make if make and make((S, E, T, start, line_no)) == stmt else False
                out.append(stmt)
                continue
            if make is False:
                stmt = self._parse_line(line, start, line_no)
                if stmt is not None:
                    out.append(stmt)
                continue
            out.append(make((S, E, T, start, line_no)))
        return out

    def _parse_line(self, line: str, start: int, line_no: int):
        to_ast = self.to_ast
        to_ast.line0, to_ast.off = line_no - 1, start
        try:
            stmts = to_ast.transform(_lark().parse(line + "\n"))
        except (UnexpectedInput, VisitError, _BadName):
            raise Fallback from None
        if len(stmts) != 1:
            if not stmts:
                return None
            raise Fallback
        return stmts[0]

    # ------------------------------------------------------------ templates

    def _template(self, stmt, S, E, base):
        """A function of a line's tokens that rebuilds `stmt` for that line, or False when one of its
        positions or texts does not come from the line's tokens in a way the shape fixes."""
        starts = {s: i for i, s in enumerate(S)}
        ends = {e: i for i, e in enumerate(E)}

        def spec(o):
            if o in starts:
                return (0, starts[o], 0)
            if o in ends:
                return (1, ends[o], 0)
            before = [i for i, e in enumerate(E) if e <= o]
            if any(s < o < e for s, e in zip(S, E)):
                raise _Uncacheable
            if before:
                i = before[-1]
                return (1, i, o - E[i])
            return (2, 0, o - base)

        def tok(o):
            if o not in starts:
                raise _Uncacheable
            return starts[o]

        make_pos = _MAKE[Pos]

        def pos(p):
            ss, es = spec(p.start), spec(p.end)

            def f(ctx):
                a = (ctx[0][ss[1]] if ss[0] == 0 else ctx[1][ss[1]] if ss[0] == 1 else ctx[3]) + ss[2]
                b = (ctx[0][es[1]] if es[0] == 0 else ctx[1][es[1]] if es[0] == 1 else ctx[3]) + es[2]
                return make_pos(ctx[4], a - ctx[3] + 1, a, b)
            return f

        def const(v):
            return lambda ctx: v

        def expr(e):
            t = type(e)
            if t is Var:
                i, p = tok(e.pos.start), pos(e.pos)
                mk = _MAKE[Var]
                return lambda ctx: mk(ctx[2][i], p(ctx))
            if t is Num:
                i, p = tok(e.pos.start), pos(e.pos)
                return lambda ctx: _number(ctx[2][i], p(ctx))
            if t is BinOp:
                left, right, p, q, op = expr(e.left), expr(e.right), pos(e.pos), pos(e.op_pos), e.op
                mk = _MAKE[BinOp]
                return lambda ctx: mk(op, left(ctx), right(ctx), p(ctx), q(ctx))
            if t is Unary:
                x, p, op = expr(e.operand), pos(e.pos), e.op
                return lambda ctx: _make(Unary, op, x(ctx), p(ctx))
            if t is Call:
                i, p = tok(e.pos.start), pos(e.pos)
                args = [expr(a) for a in e.args]
                kws = [(tok(kp.start), expr(ke), pos(kp)) for _, ke, kp in e.kwargs]
                return lambda ctx: _make(Call, ctx[2][i], tuple(a(ctx) for a in args),
                                         tuple((ctx[2][j], k(ctx), kp(ctx)) for j, k, kp in kws), p(ctx))
            if t is Attr:
                x, i, p, q = expr(e.obj), tok(e.attr_pos.start), pos(e.pos), pos(e.attr_pos)
                return lambda ctx: _make(Attr, x(ctx), ctx[2][i], p(ctx), q(ctx))
            if t is ListLit:
                items, p = [expr(a) for a in e.items], pos(e.pos)
                return lambda ctx: _make(ListLit, tuple(a(ctx) for a in items), p(ctx))
            if t is Item:
                i, x, p, q = tok(e.name_pos.start), expr(e.index), pos(e.pos), pos(e.name_pos)
                return lambda ctx: _make(Item, ctx[2][i], x(ctx), p(ctx), q(ctx))
            raise _Uncacheable        # a sequence's declaration, a loop: rare, parsed by Lark each time

        try:
            if type(stmt) is not Stmt:
                raise _Uncacheable
            value, p, q, kind = expr(stmt.expr), pos(stmt.pos), pos(stmt.name_pos), stmt.kind
            if stmt.name_pos.start in starts and stmt.name_pos.end in ends:
                i = starts[stmt.name_pos.start]
                return lambda ctx: _make(Stmt, kind, ctx[2][i], value(ctx), p(ctx), q(ctx))
            name = stmt.name       # `loss = …` names the loss after its keyword
            return lambda ctx: _make(Stmt, kind, name, value(ctx), p(ctx), q(ctx))
        except _Uncacheable:
            return False


def _number(text: str, p: Pos) -> Num:
    """A number token as the transformer reads it (parser._ToAst.number)."""
    value = float(text)
    if value == math.inf:
        raise SourceError(f"the number {_short(text)} is too large: the largest a 64-bit float "
                          f"holds is about 1.8e308", line=p.line, col=p.col, width=len(text))
    return _MAKE[Num](value, text, p)
