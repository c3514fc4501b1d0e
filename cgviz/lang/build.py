"""Lower a parsed program to the graph IR: resolve names, evaluate declarations, one node per operation."""

from __future__ import annotations

import sys
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np

from . import inits
from ..core.errors import CgvizError, OpError, SourceError, did_you_mean
from ..core.spelling import spell
from ..core.ir import Graph, Node
from .ops import OPS, REQUIRED, OpDef, shape_text
from .parser import Attr, BinOp, Call, Item, ListLit, Loop, Num, Pos, Program, Seq, Stmt, Unary, Var, parse_value

_CONSTANT_NAMES = {"None": None, "True": True, "False": False, "true": True, "false": False}
_DECL_KINDS = ("input", "param", "const")


def _err(msg: str, pos: Pos, hint: str | None = None, width: int | None = None) -> SourceError:
    return SourceError(msg, line=pos.line, col=pos.col, hint=hint,
                       width=width if width is not None else max(1, pos.end - pos.start))


class _Builder:
    def __init__(self, program: Program, overrides: dict[str, str] | None):
        self.program = program
        self.text = program.source.text if program.source else ""
        # The picture and the JSON name the file by its base name, so they do not depend on the folder.
        name = program.source.name if program.source else "<input>"
        self.graph = Graph(source=name if name.startswith("<") else Path(name).name)
        first = next((line.strip() for line in self.text.splitlines() if line.strip()), "")
        if first.startswith("#") and first.lstrip("#").strip():
            self.graph.meta["comment"] = first.lstrip("#").strip()     # a name for text without a file
        self.env: dict[str, str] = {}          # name → node id
        self.defined_at: dict[str, Stmt] = {}
        self.later = {s.name: s for s in program.statements if s.name}
        for loop in program.statements:
            if type(loop) is Loop:
                self.later.update((s.name, s) for s in loop.body if s.name not in self.later)
        self.seqs: dict[str, int] = {}          # a sequence's name → its number of steps
        self.step: dict[str, int] = {}          # the loop variable → the step being lowered
        # a name as the parser reads it (NFKC, as Python does): `--set ϑ=1` sets θ
        self.overrides = {unicodedata.normalize("NFKC", k): v for k, v in (overrides or {}).items()}
        self.counters: dict[str, int] = {}
        self.stmt: Stmt | None = None
        self.loop_meta: dict | None = None      # while lowering a loop's body: the loop and the step

    # ------------------------------------------------------------ statements

    def run(self) -> Graph:
        last_assign = None
        loss_stmt = None
        for stmt in self.program.statements:
            self.stmt = stmt
            if type(stmt) is Loop:
                last_assign = self._loop(stmt, loss_stmt) or last_assign
                continue
            if stmt.name in self.defined_at:
                first = self.defined_at[stmt.name]
                raise _err(f"'{stmt.name}' is already defined on line {first.pos.line}; "
                           "each name is defined once (pick a new name)", stmt.name_pos)
            if stmt.kind in _DECL_KINDS:
                self._declare(stmt)
            else:
                if stmt.kind == "loss":
                    if loss_stmt is not None:
                        raise _err(f"a second loss: the loss is already '{loss_stmt.name}' "
                                   f"(line {loss_stmt.pos.line}); a file has one loss", stmt.name_pos)
                    loss_stmt = stmt
                node_id = self._lower(stmt.expr, top=stmt.name)
                self.env[stmt.name] = node_id
                last_assign = stmt
            self.defined_at[stmt.name] = stmt
        unused = sorted(self.overrides)
        if unused:
            name = unused[0]
            declared = [s.name for s in self.program.statements if s.kind in _DECL_KINDS]
            # --set mistakes are on the command line, not in the file: no file:line prefix
            if name in self.env:
                raise CgvizError(f"{spell('set', name)}: '{name}' is computed, not declared; "
                                 "only input, param and const values can be set")
            raise CgvizError(f"{spell('set', name)}: no declaration named '{name}'"
                              f"{did_you_mean(name, declared)}; declared: {', '.join(declared) or 'none'}")
        if last_assign is None:
            example = "(add a line such as `loss L = (w * x - y)^2`)"
            if self.program.statements:
                what = "the file declares values but has no expression"
            elif self.text.strip():
                what = "the file has only comments"
            else:
                what = "the file is empty"
            raise SourceError(f"nothing to compute: {what} {example}", line=None)
        out = loss_stmt or last_assign
        self.graph.output = self.env[out.name]
        self.graph.loss = loss_stmt.name if loss_stmt else None
        self.graph.meta["output_stmt"] = {"name": out.name, "line": out.pos.line, "col": out.pos.col}
        return self.graph

    def _loop(self, loop: Loop, loss_stmt: Stmt | None) -> Stmt:
        """Lower a recurrence unrolled, one copy of its body per step: step t's `h` is the node `h@t`
        and its sub-expressions `h@t/mul`, …; reading `h` gives the latest value (the previous step's,
        or the one given before the loop at the first step); after the loop `h` is the last step's."""
        if loop.var in self.env or loop.var in self.seqs:
            raise _err(f"the loop variable '{loop.var}' is already a name on line "
                       f"{self.defined_at[loop.var].pos.line}; pick another", loop.var_pos)
        for stmt in loop.body:
            if stmt.kind != "assign":
                what = "a loss is computed once, after the loop" if stmt.kind == "loss" else \
                    f"declare '{stmt.name}' before the loop"
                raise _err(f"a loop's body holds assignments only: {what}", stmt.pos, width=len(stmt.kind))
            first = self.defined_at.get(stmt.name)
            if first is not None and (first.kind == "loss" or stmt.name in self.seqs):
                raise _err(f"'{stmt.name}' is already defined on line {first.pos.line} as a "
                           f"{'loss' if first.kind == 'loss' else 'sequence'}; the loop cannot assign it",
                           stmt.name_pos)
            if first is not None and type(first) is Loop:
                raise _err(f"'{stmt.name}' is already computed by the loop on line {first.pos.line}; "
                           "each name is defined once (pick a new name)", stmt.name_pos)
        steps = loop.last - loop.first + 1
        info = {"line": loop.pos.line, "var": loop.var, "first": loop.first, "last": loop.last}
        for t in range(loop.first, loop.last + 1):
            self.step[loop.var] = t
            for stmt in loop.body:
                self.stmt = Stmt(stmt.kind, f"{stmt.name}@{t}", stmt.expr, stmt.pos, stmt.name_pos)
                self.loop_meta = {**info, "step": t, "name": stmt.name}
                self.env[stmt.name] = self._lower(stmt.expr, top=self.stmt.name)
        self.loop_meta = None
        del self.step[loop.var]
        self.graph.meta.setdefault("loops", []).append({**info, "steps": steps,
                                                        "names": [s.name for s in loop.body]})
        for stmt in loop.body:
            self.defined_at[stmt.name] = loop
        return loop.body[-1]

    def _declare(self, stmt: Stmt) -> None:
        if isinstance(stmt.expr, Seq):
            return self._declare_seq(stmt)
        text = self.overrides.pop(stmt.name, None)
        if text is None:
            value = self._init_value(stmt.expr, stmt.name)
            expr_text = self._text(stmt.expr)
        else:
            try:
                expr = parse_value(text, spell("set", stmt.name), stmt.name)
                if isinstance(expr, Var) and expr.name not in _CONSTANT_NAMES:
                    raise CgvizError(f"the value must be a number, a list or an initializer, "
                                     f"not the name '{expr.name}'")
                value = self._init_value(expr, stmt.name)
            except SourceError as e:
                if e.source is not None:
                    raise                # already located in the --set argument itself (parse_value)
                raise CgvizError(f"{spell('set', f'{stmt.name}={text}')}: {e.message}") from None
            except CgvizError as e:
                raise CgvizError(f"{spell('set', f'{stmt.name}={text}')}: {e}") from None
            expr_text = text
        meta = {"line": stmt.pos.line, "col": stmt.name_pos.col, "expr": expr_text}
        if text is not None:
            meta["set"] = True   # the value came from the command line, not the file
        self.graph.add(Node(id=stmt.name, kind=stmt.kind, name=stmt.name, attrs={"value": value},
                            meta=meta))
        self.env[stmt.name] = stmt.name
        return value

    def _declare_seq(self, stmt: Stmt) -> None:
        """`input x[20] = VALUE`: one leaf per step, `x@1` … `x@20`, holding VALUE[0] … VALUE[19], so
        that each step's gradient is its own (the picture folds them back into one box)."""
        seq: Seq = stmt.expr
        value = self._declare(Stmt(stmt.kind, stmt.name, seq.expr, stmt.pos, stmt.name_pos))
        self.graph.nodes.pop()                  # the whole value stays in the declaration only
        del self.graph._index[stmt.name], self.env[stmt.name]
        if value.ndim == 0 or value.shape[0] != seq.steps:
            got = "a single number" if value.ndim == 0 else f"{value.shape[0]} along its first axis"
            raise _err(f"'{stmt.name}' has {seq.steps} steps, so its value needs {seq.steps} along its "
                       f"first axis (one per step); it has {got} (shape {shape_text(value.shape)})",
                       seq.expr.pos)
        for t in range(1, seq.steps + 1):
            self.graph.add(Node(id=f"{stmt.name}@{t}", kind=stmt.kind, name=f"{stmt.name}[{t}]",
                                attrs={"value": np.array(value[t - 1])},
                                meta={"line": stmt.pos.line, "col": stmt.name_pos.col,
                                      "expr": f"{self._text(seq.expr, 60)} [step {t}]",
                                      "seq": {"name": stmt.name, "step": t, "steps": seq.steps}}))
        self.seqs[stmt.name] = seq.steps

    # ------------------------------------------------------------ constant values

    def _init_value(self, expr, decl_name: str) -> np.ndarray:
        """A declaration's value: a number, a list literal, an initializer, or arithmetic on those."""
        v = self._const(expr, decl_name, tensor=True)
        arr = np.asarray(v)
        if arr.dtype.kind not in "iufb":
            raise _err("a declaration's value must be a number, a list of numbers or an initializer",
                       expr.pos)
        if arr.dtype.kind in "iu" and not _is_initializer_int(expr):
            arr = arr.astype(np.float64)
        elif arr.dtype.kind in "fb":
            arr = arr.astype(np.float64)
        return arr

    def _const(self, expr, decl_name: str, tensor: bool) -> Any:
        """Evaluate a constant expression: no names, only literals, initializers and ops on them."""
        if isinstance(expr, Num):
            # a tensor's number is a float64 (a 300-digit integer included); an argument such as a
            # dimension or a seed keeps a whole number whole
            return float(expr.value) if tensor else _number(expr)
        if isinstance(expr, Unary):
            v = self._const(expr.operand, decl_name, tensor)
            if expr.op == "pos":
                return v
            return -v if not isinstance(v, list) else (-np.asarray(v, dtype=np.float64))
        if isinstance(expr, ListLit):
            items = [self._const(i, decl_name, tensor) for i in expr.items]
            try:
                arr = np.array(items, dtype=np.float64)
            except ValueError as e:
                if "maximum number of dimension" in str(e):
                    raise _err("a list literal nested this deep has too many dimensions "
                               "(NumPy allows at most 64)", expr.pos) from None
                raise _err("a list literal must be rectangular: every row the same length",
                           expr.pos) from None
            inits.check_size(arr.shape, "list")
            return arr if tensor else items
        if isinstance(expr, Var):
            if expr.name in _CONSTANT_NAMES:
                if tensor:
                    raise _err(f"'{expr.name}' can only be an option's value, such as axis=None; "
                               "a declaration needs a number, a list or an initializer", expr.pos)
                return _CONSTANT_NAMES[expr.name]
            if tensor:
                raise _err(f"a declaration's value cannot refer to '{expr.name}'; compute it with an "
                           f"assignment instead (`{decl_name} = ...`)", expr.pos)
            raise _err(f"this argument must be written as a constant (a number, a list, None), "
                       f"not the name '{expr.name}'", expr.pos)
        if isinstance(expr, Call) and expr.func in inits.INITS:
            args = [self._const(a, decl_name, tensor=False) for a in expr.args]
            kwargs = self._const_kwargs(expr, decl_name)
            valid = inits.keywords(expr.func)
            for name, _, pos in expr.kwargs:
                if name not in valid:
                    raise _err(f"{expr.func} has no argument '{name}'{did_you_mean(name, valid)}; "
                               f"usage {inits.INITS[expr.func].signature}", pos)
            try:
                return inits.make(expr.func, args, kwargs, decl_name)
            except OpError as e:
                raise _err(str(e), expr.pos) from None
        if isinstance(expr, (BinOp, Call)) and tensor:
            # Arithmetic on constants (`param w = 1/3`) runs through the same op table as the engine.
            return self._fold(expr, decl_name)
        if isinstance(expr, Call):
            raise _err(f"this argument must be a constant, not a call to {expr.func}()", expr.pos)
        raise _err("this argument must be a constant (a number, a list, None, true or false)",
                   expr.pos)

    def _const_kwargs(self, call: Call, decl_name: str) -> dict[str, Any]:
        out = {}
        for name, e, pos in call.kwargs:
            if name in out:
                raise _err(f"{call.func}: '{name}' is given twice", pos)
            out[name] = self._const(e, decl_name, tensor=False)
        return out

    def _fold(self, expr, decl_name: str) -> np.ndarray:
        if isinstance(expr, BinOp):
            # `1 + 1 + ... + 1` is as deep as it is long: fold along its left spine with a loop
            spine = _left_spine(expr)
            acc = np.asarray(self._const(spine[-1].left, decl_name, True), dtype=np.float64)
            for b in reversed(spine):
                right = np.asarray(self._const(b.right, decl_name, True), dtype=np.float64)
                acc = self._apply(OPS[b.op], [acc, right], {}, b.op_pos)
            return acc
        d = self._opdef(expr)
        tensors, attrs = self._split_args(d, expr)
        xs = [np.asarray(self._const(a, decl_name, True), dtype=np.float64) for a in tensors]
        return self._apply(d, xs, attrs, expr.pos)

    def _apply(self, d: OpDef, xs, attrs, pos) -> np.ndarray:
        try:
            # the same element budget as the engine's ops: `ones(1e5, 1) * ones(1, 1e5)` is refused
            inits.check_size(d.shape([x.shape for x in xs], **attrs), f"the result of {d.name}", charge=True)
            with np.errstate(all="ignore"):
                return np.asarray(d.forward(xs, **attrs), dtype=np.float64)
        except OpError as e:
            raise _err(str(e), pos) from None

    # ------------------------------------------------------------ expressions

    def _new_id(self, top: str | None, base: str) -> str:
        if top is not None:
            return top
        stem = f"{self.stmt.name}/{base}"
        k = self.counters.get(stem, 0)
        self.counters[stem] = k + 1
        return stem if k == 0 else f"{stem}_{k}"

    def _text(self, expr, limit: int = 80) -> str:
        """An expression's source text, cut at `limit` characters: a 10,000-term sum has 10,000
        nested sub-expressions, and keeping each one's full text would cost quadratic memory."""
        start, end = expr.pos.start, expr.pos.end
        text = " ".join(self.text[start:min(end, start + limit + 1)].split())
        return text if end - start <= limit else text[:limit - 1] + "…"

    def _meta(self, expr, pos: Pos) -> dict:
        meta = {"line": pos.line, "col": pos.col, "expr": self._text(expr), "stmt": self.stmt.name}
        if self.loop_meta is not None:
            meta["loop"] = self.loop_meta
        return meta

    def _op_node(self, d: OpDef, inputs: list[str], attrs: dict, expr, pos: Pos, top) -> str:
        node = Node(id=self._new_id(top, d.name), kind="op", op=d.name, inputs=tuple(inputs),
                    name=top, attrs=attrs, meta=self._meta(expr, pos))
        self.graph.add(node)
        return node.id

    def _literal(self, expr, top) -> str:
        value = self._init_value(expr, top or self.stmt.name)
        text = self._text(expr)
        base = text if isinstance(expr, Num) or (isinstance(expr, Unary) and isinstance(expr.operand, Num)) \
            else "const"
        node = Node(id=self._new_id(top, base.replace(" ", "")), kind="const", name=top,
                    attrs={"value": value},
                    meta={**self._meta(expr, expr.pos), "literal": top is None})
        self.graph.add(node)
        return node.id

    def _lower(self, expr, top: str | None = None) -> str:
        if isinstance(expr, Item):
            node_id = self._item(expr)
            if top is None:
                return node_id
            return self._op_node(OPS["identity"], [node_id], {}, expr, expr.pos, top)
        if isinstance(expr, Var):
            if expr.name in self.seqs:
                raise _err(f"'{expr.name}' is a sequence of {self.seqs[expr.name]} steps: read one step, "
                           f"as {expr.name}[t] inside a loop over t", expr.pos)
            if expr.name in self.step:
                raise _err(f"'{expr.name}' is the loop's step number: it can only index a sequence, "
                           f"as x[{expr.name}]", expr.pos)
            if expr.name not in self.env:
                raise self._undefined(expr)
            if top is None:
                return self.env[expr.name]
            # `b = a`: an alias gets its own node so that `b` appears (and is named) in the picture.
            return self._op_node(OPS["identity"], [self.env[expr.name]], {}, expr, expr.pos, top)
        if _is_constant(expr):
            return self._literal(expr, top)
        if isinstance(expr, Unary):
            if expr.op == "pos":
                return self._lower(expr.operand, top)
            x = self._lower(expr.operand)
            return self._op_node(OPS["neg"], [x], {}, expr, expr.pos, top)
        if isinstance(expr, BinOp):
            # A flat sum `x + x + ... + x` is a left-deep tree as deep as it has terms: lower its left
            # spine with a loop (same order, same node ids as recursing), so its length has no limit.
            spine = _left_spine(expr)
            acc = self._lower(spine[-1].left)
            for b in reversed(spine):
                right = self._lower(b.right)
                acc = self._op_node(OPS[b.op], [acc, right], {}, b, b.op_pos, top if b is expr else None)
            return acc
        if isinstance(expr, Attr):
            if expr.attr != "T":
                raise _err(f"unknown attribute '.{expr.attr}' (only .T, the transpose, exists)",
                           expr.attr_pos)
            x = self._lower(expr.obj)
            return self._op_node(OPS["transpose"], [x], {}, expr, expr.attr_pos, top)
        if isinstance(expr, ListLit):
            bad = _first_variable(expr)
            raise _err("a list can only hold numbers; to combine computed values use an op",
                       bad.pos if bad is not None else expr.pos)
        if isinstance(expr, Call):
            if expr.func in inits.INITS:
                return self._literal(expr, top)
            d = self._opdef(expr)
            tensors, attrs = self._split_args(d, expr)
            inputs = [self._lower(a) for a in tensors]
            return self._op_node(d, inputs, attrs, expr, expr.pos, top)
        raise _err("cannot use this here", expr.pos)

    def _item(self, expr: Item) -> str:
        """`x[t]`: the node of one step of a sequence, the index an integer of the loop's step."""
        if expr.name not in self.seqs:
            if expr.name in self.env:
                raise _err(f"'{expr.name}' is not a sequence, so it cannot be indexed; declare one with "
                           f"`input {expr.name}[STEPS] = VALUE`", expr.name_pos)
            return self._lower(Var(expr.name, expr.name_pos))       # the undefined-name message
        t = self._index(expr.index)
        n = self.seqs[expr.name]
        if not 1 <= t <= n:
            raise _err(f"{expr.name}[{t}] is out of range: '{expr.name}' has steps 1..{n}", expr.index.pos)
        return f"{expr.name}@{t}"

    def _index(self, expr) -> int:
        if isinstance(expr, Num) and float(expr.value).is_integer():
            return int(expr.value)
        if isinstance(expr, Var) and expr.name in self.step:
            return self.step[expr.name]
        if isinstance(expr, BinOp) and expr.op in ("add", "sub"):
            a, b = self._index(expr.left), self._index(expr.right)
            return a + b if expr.op == "add" else a - b
        if isinstance(expr, Var):
            raise _err(f"an index is the loop's step number ('{expr.name}' is not a loop variable here)",
                       expr.pos)
        raise _err("an index is the loop's step number, or it plus or minus a whole number (x[t - 1])",
                   expr.pos)

    def _undefined(self, expr: Var) -> SourceError:
        if self.loop_meta is not None and expr.name in {s.name for s in self._body()}:
            return _err(f"'{expr.name}' has no value before the first step of the loop: give it one "
                        f"before the loop (`{expr.name} = 0`)", expr.pos)
        later = self.later.get(expr.name)
        if later is not None and later.pos.line > expr.pos.line:
            return _err(f"'{expr.name}' is used before it is defined (on line {later.pos.line}); "
                        "statements run top to bottom", expr.pos)
        if later is not None and later is self.stmt:
            return _err(f"'{expr.name}' is defined in terms of itself", expr.pos)
        if expr.name in _CONSTANT_NAMES:
            return _err(f"'{expr.name}' can only be an option's value, such as axis=None", expr.pos)
        names = list(self.env) + list(OPS)
        return _err(f"undefined name '{expr.name}'{did_you_mean(expr.name, names)}", expr.pos)

    def _body(self) -> tuple:
        line = self.loop_meta["line"]
        return next(s.body for s in self.program.statements if type(s) is Loop and s.pos.line == line)

    def _opdef(self, call: Call) -> OpDef:
        d = OPS.get(call.func)
        if d is None or d.internal:
            known = [n for n, o in OPS.items() if not o.internal] + list(inits.INITS)
            hint = None
            if call.func in self.env:
                hint = f"'{call.func}' is a variable here, not a function."
            close = did_you_mean(call.func, known)
            if call.func in _TEXTBOOK and call.func not in self.env:
                # σ and Σ are names now (Greek letters are), but written as a call they are a textbook's
                close = f"; write {_TEXTBOOK[call.func]}(...) for {call.func}(...)"
            raise SourceError(f"unknown function '{call.func}'{close or '; `cgviz ops` lists them all'}",
                              line=call.pos.line, col=call.pos.col, width=len(call.func), hint=hint)
        return d

    def _split_args(self, d: OpDef, call: Call) -> tuple[list, dict]:
        """Positional and keyword arguments → tensor expressions and constant attributes."""
        names = d.param_names
        tensors: list = list(call.args[:len(names)])
        extra = list(call.args[len(names):])
        attrs: dict[str, Any] = {}
        attr_names = [a for a, _ in d.attrs]
        if d.varattr:
            attrs[d.varattr] = tuple(self._const(e, self.stmt.name, tensor=False) for e in extra)
            extra = []
        if len(extra) > len(attr_names):
            raise _err(f"{d.name} takes {_count_text(d)}, got {len(call.args)}: "
                       f"usage {d.signature()}", call.args[len(names) + len(attr_names)].pos)
        for name, e in zip(attr_names, extra):
            attrs[name] = self._const(e, self.stmt.name, tensor=False)
        by_kw = {}
        for kname, e, pos in call.kwargs:
            if kname in by_kw or kname in attrs:
                raise _err(f"{d.name}: '{kname}' is given twice", pos)
            if kname in names:
                i = names.index(kname)
                if i < len(tensors):
                    raise _err(f"{d.name}: '{kname}' is given twice", pos)
                by_kw[kname] = e
            elif kname in attr_names:
                attrs[kname] = self._const(e, self.stmt.name, tensor=False)
            else:
                valid = list(names) + attr_names
                raise _err(f"{d.name} has no argument '{kname}'{did_you_mean(kname, valid)}: "
                           f"usage {d.signature()}", pos)
        for i in range(len(tensors), len(names)):
            if names[i] in by_kw:
                tensors.append(by_kw.pop(names[i]))
            elif d.params[i].endswith("?"):
                break
            else:
                raise _err(f"{d.name} takes {_count_text(d)}, got {len(tensors)}: "
                           f"usage {d.signature()}", call.pos, width=len(call.func))
        if by_kw:
            name = next(iter(by_kw))
            raise _err(f"{d.name}: '{name}' given, but an earlier argument is missing", call.pos)
        for name, default in d.attrs:
            if name not in attrs:
                if default is REQUIRED:
                    raise _err(f"{d.name} needs {name}=: usage {d.signature()}", call.pos)
                attrs[name] = default
        return tensors, attrs


def _count_text(d: OpDef) -> str:
    lo, hi = d.min_args, len(d.params)
    n = f"{lo}" if lo == hi else f"{lo} or {hi}"
    return f"{n} tensor argument{'s' if hi != 1 else ''}"


def _number(expr: Num):
    text = expr.text
    if all(c.isdigit() for c in text):
        return int(text)
    return float(expr.value)


def _is_constant(expr) -> bool:
    if isinstance(expr, Num):
        return True
    if isinstance(expr, Unary) and expr.op == "neg":
        return isinstance(expr.operand, Num)
    if isinstance(expr, ListLit):
        return all(_is_constant(i) for i in expr.items)
    return False


def _first_variable(expr):
    """The first item of a list literal that is not a constant (for the caret)."""
    for item in expr.items:
        if isinstance(item, ListLit):
            found = _first_variable(item)
            if found is not None:
                return found
        elif not _is_constant(item):
            return item
    return None


# Functions textbooks write with a symbol, which is a name in the language (a Greek letter)
_TEXTBOOK = {"σ": "sigmoid", "Σ": "sum", "∑": "sum"}


def _left_spine(expr: BinOp) -> list[BinOp]:
    """The chain of binary operations down the left operands, outermost first: `a + b - c * d` gives
    [(a + b) - c * d, a + b]."""
    spine = [expr]
    while isinstance(spine[-1].left, BinOp):
        spine.append(spine[-1].left)
    return spine


def _is_initializer_int(expr) -> bool:
    return isinstance(expr, Call) and expr.func == "randint"


# Lowering recurses once per level of an expression; `x + x + ... + x` with thousands of terms is
# that deep. Python 3.11+ keeps Python-to-Python calls off the C stack, so a higher limit is safe.
_DEPTH_LIMIT = 50_000


def build(program: Program, overrides: dict[str, str] | None = None) -> Graph:
    """The IR of a parsed program; `overrides` replaces declarations' values (`--set w=0.1`)."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, _DEPTH_LIMIT))
    try:
        return _Builder(program, overrides).run()
    except SourceError as e:
        if program.source is not None:
            e.at(program.source)
        raise
    except RecursionError:
        raise SourceError("an expression is nested too deeply to evaluate; split it over several "
                          "lines with intermediate names").at(program.source) from None
    finally:
        sys.setrecursionlimit(old)
