"""Ops that pass their input through unchanged, left out of the picture: eval-mode dropout, `.to()`
to the dtype the tensor already has, `.contiguous()`, a `view`/`reshape`/`flatten` to the same shape.

The recorded graph (and the JSON, which is the full record) keeps every op; this pass returns a
second graph for the picture only, in which each such op's readers read its input directly. An op
counts as a pass-through only when the run shows it: one output with the shape and dtype of its
first input, the same values, and (when gradients were taken) the same gradient on both sides. So
the edge that bypasses it carries exactly the numbers the recorded edges carry: the value along
(reader, k) is the op's output, which is its input; the gradient along (reader, k) is what the
reader sent back, unchanged by the op. Edge numbers stay keyed by (reader id, argument index),
which the bypass keeps, so the run needs no mapping.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from ..core.ir import Graph
from ..core.summary import RunSummary, TensorInfo
from .structure import scope_of

# Identities by construction whenever shape and dtype are kept (a meta-device trace, which has no
# values, can still drop them): layout, dtype and shape changes that turned out to change nothing.
STRUCTURAL = frozenset({
    "to", "_to_copy", "type", "type_as", "float", "double", "half", "bfloat16", "cpu", "contiguous",
    "view", "view_as", "reshape", "reshape_as", "flatten", "squeeze", "expand", "expand_as", "alias",
    "_unsafe_view",
})
# Identities only as the run shows them (dropout with training=False or p=0): values must be seen.
BY_VALUE = frozenset({
    "dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout",
    "feature_dropout",
})
# Never merged though their output may equal their input: `detach` stops the gradient, `clone` is a
# copy the code asked for (before an in-place change, say).


@dataclass
class Simplified:
    """The graph the picture is drawn from, and what was left out of it."""

    graph: Graph
    merged: dict[str, str] = field(default_factory=dict)   # left-out op → the node its readers now read
    dropped: list[str] = field(default_factory=list)       # nodes that only fed a left-out op (type_as's other)

    @property
    def count(self) -> int:
        return len(self.merged)

    def within(self, original: Graph, call: tuple) -> "Simplified":
        """Only what was left out of one module call (`--focus`): the ops and nodes in its scope."""
        def inside(m: str) -> bool:
            return scope_of(original[m])[:len(call)] == call
        return Simplified(self.graph, {m: v for m, v in self.merged.items() if inside(m)},
                          [m for m in self.dropped if inside(m)])

    def note(self, original: Graph) -> str | None:
        """`3 pass-through ops not drawn (dropout ×2, view)`, or None when nothing was left out."""
        if not self.merged:
            return None
        ops: dict[str, int] = {}
        for m in self.merged:
            ops[original[m].op] = ops.get(original[m].op, 0) + 1
        order = sorted(ops.items(), key=lambda x: (-x[1], x[0]))
        what = ", ".join(f"{op} ×{k}" if k > 1 else op for op, k in order[:4]) + (", …" if len(order) > 4 else "")
        n = len(self.merged)
        also = f", nor {len(self.dropped)} node{'s' if len(self.dropped) != 1 else ''} only they read" \
            if self.dropped else ""
        return f"{n} pass-through op{'s' if n != 1 else ''} not drawn ({what}){also}; --no-simplify draws them"


def _same_number(a, b) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def same(a: TensorInfo | None, b: TensorInfo | None) -> bool | None:
    """Do two summaries describe the same tensor? True, False, or None when they carry no numbers
    (a meta-device trace). Small tensors compare element by element; large ones by their statistics,
    which identical tensors give identically (the same reductions over the same memory)."""
    if a is None or b is None:
        return a is None and b is None
    if not isinstance(a, TensorInfo) or not isinstance(b, TensorInfo):
        return False
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.values is not None and b.values is not None:
        return bool(np.array_equal(a.values, b.values, equal_nan=True))
    if a.stats is not None and b.stats is not None:
        return a.stats.keys() == b.stats.keys() and all(_same_number(a.stats[k], b.stats[k]) for k in a.stats)
    if a.stats is None and b.stats is None:
        return None
    return False


def passes_through(graph: Graph, run: RunSummary, node_id: str) -> bool:
    """The run shows this op's output to be its first input, forward and backward."""
    n = graph[node_id]
    if n.kind != "op" or not n.inputs or node_id == graph.output:
        return False
    if n.op not in STRUCTURAL and n.op not in BY_VALUE:
        return False
    out = run.values.get(node_id)
    inp = run.edge_values.get((node_id, 0))
    if not isinstance(out, TensorInfo) or not isinstance(inp, TensorInfo):
        return False            # several outputs (a list), or nothing recorded
    value = same(out, inp)
    if value is False or (value is None and n.op not in STRUCTURAL):
        return False
    # the gradient the op received equals the one it passed back along its first input
    g_out, g_in = run.grads.get(node_id), run.edge_grads.get((node_id, 0))
    return same(g_out, g_in) is not False


def simplify(graph: Graph, run: RunSummary) -> Simplified:
    """The picture's graph: pass-through ops left out, their readers reading what they read."""
    to: dict[str, tuple[str, int]] = {}          # left-out op → (node, output index) it passes on
    merged: dict[str, str] = {}
    for n in graph:
        if passes_through(graph, run, n.id):
            src = n.inputs[0]
            idx = (n.meta.get("out_index") or (0,))[0]
            to[n.id] = to.get(src, (src, idx))
            merged[n.id] = to[n.id][0]
    if not merged:
        return Simplified(graph)
    view = Graph(source=graph.source, meta=graph.meta, output=graph.output, loss=graph.loss)
    need = {graph.output}
    kept = []
    for n in reversed(graph.nodes):
        if n.id in need and n.id not in merged:
            kept.append(n)
            need.update(to[i][0] if i in to else i for i in n.inputs)
    dropped = [n.id for n in graph if n.id not in need and n.id not in merged]
    for n in reversed(kept):
        if any(i in to for i in n.inputs):
            outs = list(n.meta.get("out_index") or (0,) * len(n.inputs))
            inputs = list(n.inputs)
            for k, i in enumerate(n.inputs):
                if i in to:
                    inputs[k], outs[k] = to[i]
            n = dataclasses.replace(n, inputs=tuple(inputs), meta={**n.meta, "out_index": tuple(outs)})
        view.add(n)
    return Simplified(view, merged, dropped)
