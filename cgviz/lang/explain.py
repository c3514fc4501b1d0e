"""`cgviz explain`: every node's local gradient as a formula in its inputs' names and as a number, and
each param's and input's chain of local gradients multiplied out, as the article's table does by hand.

The formulas come from the op table's `local` text with the op's parameter names replaced by the
actual arguments (`∂z/∂w = x` for `z = w * x`); anonymous sub-expressions are folded into the named
node above them (`∂L/∂a = 2 · (a − y)` for `L = (a - y)^2`), as chain.py folds them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import numpy as np

from .chain import MAX_PATHS, chain_text, chains, local
from ..core.names import folded, wrt
from .engine import Run
from ..core.fmt import columns, norm, num, value_text
from ..core.ir import Graph, Node
from .ops import OPS, shape_text

# an op parameter's name as a whole word: ASCII boundaries, so that `bᵀ` and `a^b` still match
_WORD = r"(?<![A-Za-z0-9_]){}(?![A-Za-z0-9_])"


@dataclass
class Term:
    """One local gradient of a named node with respect to one of its (named or leaf) inputs."""

    of: str                         # ∂<of>/∂<wrt>
    wrt: str
    wrt_id: str
    formula: str                    # in the arguments' names
    value: float | None             # the number in this run, when everything along it is a scalar
    shape: tuple[int, ...]          # the gradient's shape (the input's)


@dataclass
class Explained:
    """A named node (or the output): what it computes, its value and its local gradients."""

    node: str
    name: str
    expr: str
    computes: str                   # the op table's formula, in the arguments' names
    value: str
    shape: tuple[int, ...]
    terms: list[Term] = field(default_factory=list)


def _arg_text(graph: Graph, run: Run, node_id: str) -> str:
    """How an argument is written inside a formula: its name, its number, or `(expr)`."""
    n = graph[node_id]
    if folded(graph, node_id):
        text = num(n.attrs["value"])
        return f"({text})" if text.startswith("-") else text
    return wrt(n)


def substitute(template: str, names: dict[str, str]) -> str:
    """Replace whole-word parameter names in an op-table formula with argument texts, then tidy up."""
    if not names:
        return _tidy(template)
    pattern = re.compile("|".join(_WORD.format(re.escape(k)) for k in sorted(names, key=len, reverse=True)))
    return _tidy(pattern.sub(lambda m: names[m.group(0)], template))


def _tidy(text: str) -> str:
    """Fold what a person would: `2^(2−1)` exponents of plain numbers, `x^1`, `1 · y`."""
    def arith(m):
        a, op, b = float(m.group(1)), m.group(2), float(m.group(3))
        return num(a - b if op in "−-" else a + b)
    text = re.sub(r"\((\d+(?:\.\d+)?)\s*([−+-])\s*(\d+(?:\.\d+)?)\)", arith, text)
    text = re.sub(r"\^1(?![\d.])", "", text)
    # an argument already in parentheses needs no second pair: max(0, (x @ W1)) → max(0, x @ W1)
    text = re.sub(r"(?<=[(,] )\(([^()]*)\)(?=\))|(?<=\()\(([^()]*)\)(?=[),])",
                  lambda m: m.group(1) or m.group(2), text)
    text = re.sub(r"(?<![\w.])1 · ", "", text)
    text = re.sub(r" · 1(?![\w.])", "", text)
    return text


def _names(graph: Graph, run: Run, node: Node) -> dict[str, str]:
    """The op's parameter and attribute names mapped to this node's argument texts and settings."""
    d = OPS[node.op]
    out = {p: _arg_text(graph, run, src) for p, src in zip(d.param_names, node.inputs)}
    for k, v in node.attrs.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = num(v)
    return out


def _factor_text(graph: Graph, run: Run, node: Node, k: int) -> str:
    d = OPS[node.op]
    return substitute(d.local[k], _names(graph, run, node))


def _is_vjp(node: Node, k: int) -> bool:
    """Whether the op table writes this local gradient as a product with the incoming gradient `g`
    (matmul's `g @ bᵀ`): a Jacobian too big to write, given as the vector-Jacobian product instead."""
    return re.search(_WORD.format("g"), OPS[node.op].local[k]) is not None


def _product(parts: list[str]) -> str:
    """Local gradients along an anonymous chain, multiplied: factors of 1 drop out."""
    keep = [p for p in parts if p != "1"]
    if not keep:
        return "1"
    wrap = [f"({p})" if len(keep) > 1 and (" + " in p or " − " in p or " if " in p) and not
            (p.startswith("(") and p.endswith(")")) else p for p in keep]
    return " · ".join(wrap)


def _terms(graph: Graph, run: Run, top: Node) -> list[Term]:
    """Local gradients of a named node down to the named or leaf nodes its expression reads."""
    found: dict[str, list[tuple[str, float | None, bool]]] = {}
    first: dict[str, tuple[int, ...]] = {}   # the argument path that reaches each input first
    loss = _name(graph, graph[graph.output])

    # an explicit stack (not recursion): an expression may nest very deep
    stack: list[tuple[Node, list[str], float | None, tuple[int, ...]]] = [(top, [], 1.0, ())]
    while stack:
        node, texts, value, key = stack.pop()
        d = OPS[node.op]
        for k, src in enumerate(node.inputs):
            if k in d.nondiff or src not in run.requires_grad or folded(graph, src):
                continue
            lv = local(graph, run, node, k)
            v = None if value is None or lv is None else value * lv
            if _is_vjp(node, k):
                # ∂L/∂W = Xᵀ @ ∂L/∂(X @ W): the statement is about L, whatever sits above
                names = dict(_names(graph, run, node), g=f"∂{loss}/∂{_name(graph, node)}")
                t, vjp = [substitute(d.local[k], names)], True
            else:
                t, vjp = texts + [_factor_text(graph, run, node, k)], False
            s = graph[src]
            if s.kind == "op" and not s.name and src != graph.output:
                stack.append((s, t, v, key + (k,)))
                continue
            found.setdefault(src, []).append((_product(t) if not vjp else t[0], v, vjp))
            first[src] = min(first.get(src, key + (k,)), key + (k,))
    out = []
    for src in sorted(found, key=lambda i: first[i]):
        paths = found[src]
        formula = " + ".join(f"({f})" if len(paths) > 1 and " " in f else f for f, _, _ in paths)
        vals = [v for _, v, _ in paths]
        value = None if any(v is None for v in vals) else float(sum(vals))
        vjp = any(j for _, _, j in paths)
        out.append(Term(of=loss if vjp else _name(graph, top), wrt=wrt(graph[src]), wrt_id=src,
                        formula=formula, value=value, shape=tuple(run.values[src].shape)))
    return out


def _name(graph: Graph, node: Node) -> str:
    if node.id == graph.output:
        return graph.loss or node.name or "out"
    return wrt(node)


def rows(graph: Graph, run: Run) -> list[Explained]:
    """The table: one row per named op and the output, in the order the program computes them."""
    out = []
    for node in graph:
        if node.kind != "op" or not (node.name or node.id == graph.output):
            continue
        d = OPS[node.op]
        out.append(Explained(node=node.id, name=_name(graph, node), expr=node.meta.get("expr") or node.id,
                       computes=substitute(d.formula, _names(graph, run, node)),
                       value=value_text(run.values[node.id], sep=" "), shape=tuple(run.values[node.id].shape),
                       terms=_terms(graph, run, node)))
    return out


def leaves(graph: Graph, run: Run) -> list[Node]:
    """The params and inputs a gradient reaches: what the chain section explains."""
    return [n for n in graph if n.kind in ("param", "input") and n.id in run.requires_grad]


def states(graph: Graph) -> list[Node]:
    """Each loop's state at its first step (h@1): a value the next step reads, whose chain through
    time the explanation writes out (∂L/∂h₁ = ∂L/∂h₂₀ · ∂h₂₀/∂h₁₉ · … · ∂h₂/∂h₁)."""
    out = []
    for lp in graph.meta.get("loops", ()):
        if lp["last"] == lp["first"]:
            continue
        for name in lp["names"]:
            first, second = f"{name}@{lp['first']}", f"{name}@{lp['first'] + 1}"
            reads = {i for n in graph if n.meta.get("loop", {}).get("step") == lp["first"] + 1
                     and n.meta["loop"]["line"] == lp["line"] for i in n.inputs}
            if first in graph and second in graph and first in reads:
                out.append(graph[first])
    return out


def _through_time(graph: Graph, run: Run) -> list[str]:
    lines = []
    for n in states(graph):
        lp = n.meta["loop"]
        lines.append(f"through time, the loop on line {lp['line']} ({lp['last'] - lp['first']} steps back "
                     f"from step {lp['last']} to step {lp['first']}):")
        lines.extend(chain_text(graph, run, n.id))
    return lines


def _term_value(t: Term, run: Run) -> str:
    if t.value is not None:
        return num(t.value)
    return f"{shape_text(t.shape)} tensor"


# ---------------------------------------------------------------- output formats

def as_text(graph: Graph, run: Run) -> str:
    """Aligned columns for a terminal."""
    table = []
    for r in rows(graph, run):
        first = (f"{r.name} = {r.expr}", f"{r.computes} = {r.value}", "", "")
        if not r.terms:
            table.append(first)
        for i, t in enumerate(r.terms):
            cells = (f"∂{t.of}/∂{t.wrt} = {t.formula}", _term_value(t, run))
            table.append((first[0], first[1]) + cells if i == 0 else ("", "") + cells)
    lines = columns(("node", "computes", "local gradient", "value here"), table, rule=True)
    lines.append("")
    lines.append("chain rule, from the loss down to each param and input:" if graph.loss
                 else "chain rule, from the output down to each param and input:")
    for n in leaves(graph, run):
        for ln in chain_text(graph, run, n.id):
            lines.append(f"  {ln}")
    for ln in _through_time(graph, run):
        lines.append(f"  {ln}" if ln.startswith("∂") or ln.startswith("‖") else ln)
    if run.seeded_with_ones:
        lines.append("(the output is not a scalar: these are the gradients of its sum)")
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def as_markdown(graph: Graph, run: Run) -> str:
    """A GitHub table and a list of chains, for notes and course material."""
    lines = ["| node | computes | local gradient | value here |", "|---|---|---|---|"]
    for r in rows(graph, run):
        head = f"`{_md(r.name)} = {_md(r.expr)}`"
        comp = _md(f"{r.computes} = {r.value}")
        if not r.terms:
            lines.append(f"| {head} | {comp} |  | {_md(r.value)} |")
        for i, t in enumerate(r.terms):
            cells = f"∂{_md(t.of)}/∂{_md(t.wrt)} = {_md(t.formula)} | {_md(_term_value(t, run))}"
            lines.append(f"| {head} | {comp} | {cells} |" if i == 0 else f"| | | {cells} |")
    lines.append("")
    for n in leaves(graph, run):
        for ln in chain_text(graph, run, n.id):
            lines.append(f"- {_md(ln)}")
    for ln in _through_time(graph, run):
        lines.append(f"- {_md(ln)}" if ln.startswith(("∂", "‖")) else f"\n{_md(ln)}\n")
    return "\n".join(lines) + "\n"


def _jnum(v):
    return None if v is None or not np.isfinite(v) else float(v)


def as_json(graph: Graph, run: Run) -> str:
    """The same facts for programs: rows with their terms, and every chain with its factors."""
    doc = {"format": "cgviz-explain", "version": 1, "source": graph.source,
           "output": graph.output, "loss": graph.loss, "seeded_with_ones": run.seeded_with_ones,
           "rows": [], "chains": []}
    for r in rows(graph, run):
        doc["rows"].append({"node": r.node, "name": r.name, "expr": r.expr, "computes": r.computes,
                            "value": r.value, "shape": list(r.shape),
                            "local": [{"of": t.of, "wrt": t.wrt, "wrt_node": t.wrt_id, "formula": t.formula,
                                       "value": _jnum(t.value), "shape": list(t.shape)} for t in r.terms]})
    for n in leaves(graph, run) + states(graph):
        g = run.grads.get(n.id)
        paths = chains(graph, run, n.id)
        doc["chains"].append({
            "node": n.id, "name": n.name,
            "grad": None if g is None else (_jnum(g) if np.ndim(g) == 0 else None),
            "grad_norm": None if g is None else _jnum(norm(g)),
            "paths": [{"factors": p.names, "values": [_jnum(v) for v in p.values], "product": _jnum(p.total)}
                      for p in paths],
            # at most MAX_PATHS paths are listed: a loop's shared weight has one per step and more
            "all_paths": len(paths) < MAX_PATHS,
            "text": chain_text(graph, run, n.id)})
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


WRITERS = {"text": as_text, "md": as_markdown, "json": as_json}
