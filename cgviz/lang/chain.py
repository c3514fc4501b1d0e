"""The chain rule spelled out for one node: each path from the output down to it as a product of
local gradients, `∂L/∂w = ∂L/∂a · ∂a/∂z · ∂z/∂w = 20 · 1 · 200 = 4000`, and their sum.

Anonymous sub-expressions (the `a - y` inside `L = (a - y)^2`) are folded into the factor of the
named node above them, as a person writing the chain by hand would.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.names import wrt
from .engine import Run
from ..core.fmt import norm, num
from ..core.ir import Graph, Node
from .ops import OPS

MAX_PATHS = 12


@dataclass
class ChainPath:
    names: list[str]            # ∂L/∂a, ∂a/∂z, ∂z/∂w
    values: list[float | None]  # 20, 1, 200 (None where a factor is not a scalar)
    total: float | None


def local(graph: Graph, run: Run, consumer: Node, k: int) -> float | None:
    """∂consumer/∂(its k-th input) as a number, when both are scalars: the VJP of a unit gradient."""
    d = OPS[consumer.op]
    if k in d.nondiff:
        return None
    xs = [run.values[i] for i in consumer.inputs]
    out = run.values[consumer.id]
    if out.ndim or any(np.ndim(x) for x in xs):
        return None
    with np.errstate(all="ignore"):
        gs = d.vjp(np.ones_like(out), xs, out, **consumer.attrs)
    return float(np.asarray(gs[k]).reshape(()))


def _paths(graph: Graph, node_id: str) -> list[list[tuple[str, str, int]]]:
    """Every path of edges (producer, consumer, arg) from the node up to the output (at most MAX_PATHS)."""
    consumers = graph.consumers()
    out: list[list[tuple[str, str, int]]] = []
    stack: list[tuple[str, list]] = [(node_id, [])]
    while stack and len(out) < MAX_PATHS:
        nid, path = stack.pop()
        if nid == graph.output:
            out.append(path)
            continue
        for e in reversed(consumers.get(nid, [])):
            stack.append((e.dst, path + [(e.src, e.dst, e.arg)]))
    return out


def chains(graph: Graph, run: Run, node_id: str) -> list[ChainPath]:
    """The paths from the output down to `node_id`, each as its named factors."""
    top = graph[graph.output]
    top_name = graph.loss or top.name or "out"
    result = []
    for path in _paths(graph, node_id):
        # walk from the node up: a factor closes at every named node (and at the output)
        factors: list[tuple[str, float | None]] = []
        lower = graph[node_id]
        value: float | None = 1.0
        for src, dst, k in path:
            lv = local(graph, run, graph[dst], k)
            value = None if value is None or lv is None else value * lv
            upper = graph[dst]
            if upper.name or dst == graph.output:
                up = top_name if dst == graph.output else wrt(upper)
                factors.append((f"∂{up}/∂{wrt(lower)}", value))
                lower, value = upper, 1.0
        factors.reverse()
        vals = [v for _, v in factors]
        total = None if any(v is None for v in vals) else float(np.prod(vals)) if vals else 1.0
        result.append(ChainPath([n for n, _ in factors], vals, total))
    return result


def chain_text(graph: Graph, run: Run, node_id: str) -> list[str]:
    """Lines for people: one per path, then the sum when there are several."""
    node = graph[node_id]
    top = graph.loss or graph[graph.output].name or "out"
    if node_id == graph.output:
        return [f"∂{top}/∂{top} = 1"]
    lines = []
    paths = chains(graph, run, node_id)
    if not paths:
        return [f"{wrt(node)} does not reach {top}: no gradient flows to it"]
    for p in paths:
        head = f"∂{top}/∂{wrt(node)} = " if len(paths) == 1 else ""
        prod = " · ".join(p.names)
        if len(p.names) == 1 and head:          # one factor: ∂L/∂a = 20, not ∂L/∂a = ∂L/∂a = 20 = 20
            lines.append(f"{head}{num(p.total)}" if p.total is not None else head.rstrip(" ="))
        elif p.total is not None:
            lines.append(f"{head}{prod} = {' · '.join(num(v) for v in p.values)} = {num(p.total)}")
        else:
            lines.append(f"{head}{prod}")
    if len(paths) > 1:
        g = run.grads.get(node_id)
        total = num(g) if g is not None and np.ndim(g) == 0 else (f"‖·‖ = {num(norm(g))}" if g is not None else "")
        what = f"the {len(paths)} paths above" if len(paths) < MAX_PATHS else \
            f"all the paths (the first {MAX_PATHS} are above)"
        lines.append(f"∂{top}/∂{wrt(node)} = sum of {what} = {total}")
    elif run.grads.get(node_id) is not None and np.ndim(run.grads[node_id]):
        lines.append(f"‖∂{top}/∂{wrt(node)}‖ = {num(norm(run.grads[node_id]))} (a tensor: the chain multiplies Jacobians)")
    return lines
