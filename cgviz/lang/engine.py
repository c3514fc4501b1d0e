"""Forward and backward passes over the IR with NumPy; values and gradients come back as environments."""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from collections.abc import Mapping
from typing import Any

import numpy as np

from . import inits
from ..core.errors import OpError, SourceError
from ..core.ir import Graph, Node
from ..core.summary import RunSummary, Summaries
from .ops import OPS, shape_text, sum_to_shape


@dataclass(frozen=True)
class Warn:
    """Something the user should see that is not an error: a NaN, a seed of ones, a dead branch."""

    message: str
    node: str | None = None
    line: int | None = None
    col: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return where + self.message


@dataclass
class Run:
    """What the passes computed: one value per node, one gradient per node and per edge."""

    values: dict[str, np.ndarray]
    grads: dict[str, np.ndarray | None] = field(default_factory=dict)
    edge_grads: dict[tuple[str, int], np.ndarray | None] = field(default_factory=dict)
    requires_grad: set[str] = field(default_factory=set)
    seeded_with_ones: bool = False
    warnings: list[Warn] = field(default_factory=list)
    # nodes whose value or gradient is NaN/inf → "NaN" (if any NaN) or "inf"
    nonfinite: dict[str, str] = field(default_factory=dict)
    # a gradient-descent step computed from these gradients (train.Step), when one was asked for
    step: object | None = None
    _summary: Any = field(default=None, repr=False, compare=False)

    def summary(self, graph: Graph) -> RunSummary:
        """This run as every view reads it (the model runs' type); the arrays stay here, summarised on
        first read, for explain, train and check. Made once per graph: each view asks per node."""
        if self._summary is not None and self._summary[0] is graph:
            s = self._summary[1]
            s.step = self.step                       # annotate() sets it after the passes
            if len(s.warnings) != len(self.warnings):
                s.warnings = [str(w) for w in self.warnings]
            return s
        edges = _EdgeSources(graph)
        out = self.values.get(graph.output)
        s = RunSummary(values=Summaries(self.values), grads=Summaries(self.grads),
                          edge_values=Summaries(self.values, edges), edge_grads=Summaries(self.edge_grads),
                          loss=float(out.reshape(())) if out is not None and out.size == 1 else None,
                          warnings=[str(w) for w in self.warnings], step=self.step, front="expression",
                          seeded_with_ones=self.seeded_with_ones,
                          requires_grad=self.requires_grad, nonfinite=self.nonfinite)
        self._summary = (graph, s)
        return s


class _EdgeSources(Mapping):
    """(consumer id, argument index) → the producer's id, read from the graph when asked: the dict
    of a 400,000-node program's 500,000 edges was made on every export whether it was read or not."""

    def __init__(self, graph: Graph):
        self._graph = graph

    def __getitem__(self, key):
        try:
            node_id, k = key
            k = operator.index(k)        # as a dict would: numpy's integers and True find the edge too
            node = self._graph[node_id]
        except (TypeError, ValueError, KeyError):
            raise KeyError(key) from None
        if not 0 <= k < len(node.inputs):
            raise KeyError(key)
        return node.inputs[k]

    def __iter__(self):
        return ((n.id, k) for n in self._graph for k in range(len(n.inputs)))

    def __len__(self) -> int:
        return sum(len(n.inputs) for n in self._graph)


def _located(e: OpError, node: Node) -> SourceError:
    return SourceError(str(e), line=node.meta.get("line"), col=node.meta.get("col"))


def forward(graph: Graph, shapes: dict[str, tuple] | None = None) -> dict[str, np.ndarray]:
    """Every node's value, in topological order; shape mistakes become errors at the op's position.
    `shapes`: each op's shape as plan() inferred and checked it (not inferred again)."""
    values: dict[str, np.ndarray] = {}
    # one errstate for the whole pass: entering it per op cost more than a scalar op itself
    with np.errstate(all="ignore"):
        for node in graph:
            _forward_one(node, values, shapes)
    return values


def _forward_one(node: Node, values: dict[str, np.ndarray], shapes: dict[str, tuple] | None) -> None:
    if node.is_leaf:
        values[node.id] = node.attrs["value"]
        return
    d = OPS[node.op]
    xs = [values[i] for i in node.inputs]
    try:
        if shapes is None:
            shape = d.shape([x.shape for x in xs], **node.attrs)
            inits.check_size(shape, f"the result of {d.name}")
        else:
            shape = shapes[node.id]
        out = np.asarray(d.forward(xs, **node.attrs), dtype=np.float64)
    except OpError as e:
        raise _located(e, node) from None
    assert out.shape == tuple(shape), f"{d.name}: shape rule says {shape}, forward gave {out.shape}"
    values[node.id] = out


def unbroadcast(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum a gradient over the dimensions broadcasting added, so it has its producer's shape."""
    if type(g) is np.ndarray and g.dtype == np.float64 and g.shape == shape:
        return g                  # nothing was broadcast (every scalar op): as sum_to_shape returns it
    if type(g) is np.float64 and shape == ():
        return np.asarray(g)      # NumPy's result of an op on scalars: as sum_to_shape returns it
    g = sum_to_shape(g, shape)
    return np.broadcast_to(g, shape).copy() if g.shape != tuple(shape) else g


def requires_grad(graph: Graph, values: dict[str, np.ndarray]) -> set[str]:
    """Inputs and params with float values, and every op downstream of one (consts get no gradient)."""
    out: set[str] = set()
    for node in graph:
        if node.kind in ("input", "param"):
            if values[node.id].dtype.kind == "f":
                out.add(node.id)
        elif node.kind == "op":
            d = OPS[node.op]
            if any(i in out and k not in d.nondiff for k, i in enumerate(node.inputs)):
                out.add(node.id)
    return out


def backward(graph: Graph, values: dict[str, np.ndarray], run: Run) -> None:
    """Reverse-mode pass: each edge's vector-Jacobian product, summed into each producer's gradient."""
    out = graph.output
    if out not in run.requires_grad:
        run.warnings.append(Warn("the output depends on no input or param, so no gradient flows"))
        return
    y = values[out]
    run.seeded_with_ones = y.size != 1
    if run.seeded_with_ones:
        run.warnings.append(Warn(f"the output '{out}' is not a scalar ({shape_text(y.shape)}): backward "
                                 "starts from a tensor of ones, as if its elements were summed",
                                 node=out))
    with np.errstate(all="ignore"):     # once for the pass, not per op (see forward)
        _backward(graph, values, run, out, y)


def _backward(graph: Graph, values: dict[str, np.ndarray], run: Run, out: str, y: np.ndarray) -> None:
    grads: dict[str, np.ndarray] = {out: np.ones_like(y, dtype=np.float64)}
    # the run's fields as locals: a 200,000-line program passes here 500,000 times
    edge_grads, needs = run.edge_grads, run.requires_grad
    for node in reversed(graph.nodes):
        if node.kind != "op" or node.id not in grads:
            continue
        d = OPS[node.op]
        xs = [values[i] for i in node.inputs]
        contribs = d.vjp(grads[node.id], xs, values[node.id], **node.attrs)
        for k, (src, c) in enumerate(zip(node.inputs, contribs, strict=True)):
            if src not in needs or k in d.nondiff or c is None:
                edge_grads[(node.id, k)] = None
                continue
            c = unbroadcast(c, values[src].shape)
            edge_grads[(node.id, k)] = c
            grads[src] = grads[src] + c if src in grads else c
    run.grads = {n.id: grads.get(n.id) for n in graph}


# How bad an array is: 0 all finite, 1 holds an infinity, 2 holds NaN. A warning is due wherever
# a node's level rises above what reaches it: that node is where the NaN (or the infinity) first
# appears, whatever the cause: an op's own domain, an infinity turned into NaN (∞ × 0, ∞ − ∞), a
# declaration whose value is already non-finite, or gradients that cancel or overflow when summed.
_FINITE, _INF, _NAN = 0, 1, 2
_WORD = {_INF: "an infinity", _NAN: "NaN"}


def _level(a) -> int:
    if a is None or a.dtype.kind != "f":
        return _FINITE
    if a.size == 1:
        # one number: a float's own test, ~20 times faster than NumPy's on an array of one
        x = float(a.reshape(()))
        return _FINITE if math.isfinite(x) else _NAN if x != x else _INF
    if np.all(np.isfinite(a)):
        return _FINITE
    return _NAN if np.any(np.isnan(a)) else _INF


def _all_finite(arrays) -> bool:
    for a in arrays:
        if a is not None and _level(a):
            return False
    return True


def find_nonfinite(graph: Graph, run: Run) -> None:
    """Mark NaN/inf nodes and warn where each first appeared (forward, then backward from the
    output), with the op's own explanation when it has one."""
    if _all_finite(run.values.values()) and _all_finite(run.grads.values()) \
            and _all_finite(run.edge_grads.values()):
        run.nonfinite = {}          # the usual case, in one pass: nothing to mark or explain
        return
    value_level: dict[str, int] = {}
    for node in graph:
        v = run.values[node.id]
        level = value_level[node.id] = _level(v)
        arriving = max((value_level[i] for i in node.inputs), default=_FINITE)
        if level <= arriving:
            continue
        what = _WORD[level]
        text = node.meta.get("expr") or node.id
        if node.kind != "op":
            # arithmetic on constants (`1e308 * 10`), an initializer's scale, a --set value
            message = f"the declared value of '{node.name or node.id}' holds {what} ({text})"
        else:
            d = OPS[node.op]
            reason = d.nonfinite([run.values[i] for i in node.inputs]) if d.nonfinite else None
            if reason is None and arriving == _INF:
                reason = f"{d.name} turned an infinity in its input into NaN (as ∞ × 0, ∞ − ∞, ∞ / ∞ do)"
            message = f"{reason or d.name + ' produced ' + what}: {what} in '{node.name or node.id}' ({text})"
        run.warnings.append(Warn(message, node=node.id, line=node.meta.get("line"), col=node.meta.get("col")))

    # Backward, from the output: an edge's gradient is new trouble when it is worse than the gradient
    # arriving at its op and than the op's own values (an op whose value is already infinite passing
    # back an infinity has been explained above; passing back NaN has not).
    grad_level = {n.id: _level(run.grads.get(n.id)) for n in graph}
    from_edges: dict[str, int] = {}
    for node in reversed(graph.nodes):
        if node.kind != "op":
            continue
        d = OPS[node.op]
        known = max([grad_level[node.id], value_level[node.id]] + [value_level[i] for i in node.inputs])
        for k, src in enumerate(node.inputs):
            c = run.edge_grads.get((node.id, k))
            if c is None:
                continue
            level = _level(c)
            from_edges[src] = max(from_edges.get(src, _FINITE), level)
            if level <= known:
                continue
            xs = [run.values[i] for i in node.inputs]
            reason = (d.nonfinite(xs) if d.nonfinite else None) or "its slope is infinite or undefined here"
            src_node = graph[src]
            run.warnings.append(Warn(f"the gradient flowing back from {d.name} ({node.meta.get('expr', node.id)}) "
                                     f"into '{src_node.name or src}' is {_WORD[level]}: {reason}",
                                     node=node.id, line=node.meta.get("line"), col=node.meta.get("col")))
    for node in reversed(graph.nodes):
        level = grad_level[node.id]
        if node.id != graph.output and level > max(from_edges.get(node.id, _FINITE), value_level[node.id]):
            # each use's gradient is finite (or only infinite), their sum is not: +∞ and −∞, or overflow
            run.warnings.append(Warn(f"the gradients reaching '{node.name or node.id}' from its uses are "
                                     f"each {'finite' if from_edges.get(node.id, _FINITE) == _FINITE else 'at worst infinite'}, "
                                     f"but their sum is {_WORD[level]} (they overflow, or +∞ and −∞ cancel)",
                                     node=node.id, line=node.meta.get("line"), col=node.meta.get("col")))
    run.nonfinite = {n: "NaN" if max(value_level[n], grad_level[n]) == _NAN else "inf"
                     for n in value_level if value_level[n] or grad_level[n]}


def check_loss(graph: Graph, values: dict[str, np.ndarray]) -> None:
    """A declared loss must be one number: backward from a tensor loss would silently sum it."""
    if graph.loss is None:
        return
    y = values[graph.output]
    if y.size != 1:
        where = graph.meta.get("output_stmt", {})
        raise SourceError(f"the loss '{graph.loss}' must be a single number, but it is "
                          f"{shape_text(y.shape)}; reduce it with sum(...) or mean(...)",
                          line=where.get("line"), col=where.get("col"))


def plan(graph: Graph, grad: bool = True) -> tuple[dict[str, tuple], set[str]] | None:
    """Every op's shape from the op table's shape rules, and what the run will hold, counted against
    the element budget (cgviz.lang.inits.element_limit) before forward allocates anything: each op's
    value, and with backward each gradient that requires one and each edge's into it; and the number
    of nodes (inits.node_room). Over the budget, the error points at the op where the total passes
    it, and gives the total. Returns each node's shape and the nodes that require a gradient (what
    forward and requires_grad would work out again), None without a budget."""
    b = inits.budget()
    if b is None:
        return None
    shapes: dict[str, tuple] = {}
    needs: set[str] = set()
    cost: list[tuple[Node, int]] = []
    what: dict[str, str] = {}        # check_size's words per op, not formatted again per node
    cap = inits.element_cap()
    for node in graph:
        if node.is_leaf:
            v = node.attrs["value"]
            shapes[node.id] = v.shape
            if node.kind in ("input", "param") and v.dtype.kind == "f":
                needs.add(node.id)
            n = 0                            # its value was counted when the declaration was made
        else:
            d = OPS[node.op]
            try:
                shape = tuple(d.shape([shapes[i] for i in node.inputs], **node.attrs))
                if shape or cap < 1:      # a scalar's one element is under any cap of at least 1
                    inits.check_size(shape, what.get(d.name) or what.setdefault(d.name, f"the result of {d.name}"))
            except OpError as e:
                raise _located(e, node) from None
            shapes[node.id] = shape
            n = _size(shape)
            diff = [i for k, i in enumerate(node.inputs) if i in needs and k not in d.nondiff]
            if diff:
                needs.add(node.id)
                if grad:
                    n += n + sum(_size(shapes[i]) for i in diff)
        if grad and node.is_leaf and node.id in needs:
            n += _size(shapes[node.id])      # its gradient
        cost.append((node, n))
    room = inits.node_room(b.limit)
    if len(cost) > room:
        node = cost[room][0]
        raise SourceError(inits.too_many(f"this program's {len(cost):,} nodes", room, "this one"),
                          line=node.meta.get("line"), col=node.meta.get("col"))
    total = b.used + sum(n for _, n in cost)
    if total <= b.limit:
        b.used = total
        return shapes, needs
    used = b.used
    for node, n in cost:
        used += n
        if used > b.limit:
            what = "the program's values and gradients" if grad else "the program's values"
            where = f"with this {'operation' if node.kind == 'op' else 'declaration'}"
            raise SourceError(inits.over_budget(what, total, b.limit, where),
                              line=node.meta.get("line"), col=node.meta.get("col"))


def _size(shape) -> int:
    if not shape:
        return 1
    n = 1
    for s in shape:
        n *= int(s)
    return n


def run(graph: Graph, grad: bool = True) -> Run:
    """Forward, then (unless grad=False) backward, then the NaN/inf scan."""
    planned = plan(graph, grad)
    values = forward(graph, planned and planned[0])
    check_loss(graph, values)
    # what *can* get a gradient is a fact of the graph, reported even when backward is skipped
    result = Run(values=values, requires_grad=planned[1] if planned else requires_grad(graph, values))
    if grad:
        backward(graph, values, result)
    find_nonfinite(graph, result)
    return result
