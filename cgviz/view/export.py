"""The JSON form of a graph with its values and gradients (format `cgviz-graph`, version 1)."""

from __future__ import annotations

import json
import math

import numpy as np

from ..lang.engine import Run
from ..fmt import stats
from ..health import EXPLODE, VANISH, node_saturation, verdicts
from ..ir import Graph

FORMAT = "cgviz-graph"
VERSION = 1
FULL_LIMIT = 4096  # tensors up to this many elements are written in full; stats are always written


def json_safe(x):
    """JSON has no NaN or infinity: write them as the strings "NaN", "Infinity", "-Infinity"."""
    if isinstance(x, float):
        if math.isnan(x):
            return "NaN"
        if math.isinf(x):
            return "Infinity" if x > 0 else "-Infinity"
        return x
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    return x


def _tensor(a):
    if a is None:
        return None
    a = np.asarray(a)
    if a.size > FULL_LIMIT:
        return None
    return a.tolist()


def health_json(v) -> dict | None:
    if v is None:
        return None
    return {"flag": v.flag, "measure": v.measure, "relative": v.relative, "value_norm": v.value_norm,
            "grad_norm": v.grad_norm}


def _saturation(s) -> dict | None:
    return None if s is None else {"min": s.lo, "max": s.hi, "share": s.share, "limit": s.limit}


def to_dict(graph: Graph, run: Run, vanish: float = VANISH, explode: float = EXPLODE) -> dict:
    """Everything a picture shows, as data: nodes in topological order and edges in argument order."""
    flags = verdicts(graph, run, vanish, explode)
    nodes = []
    for n in graph:
        v = run.values[n.id]
        g = run.grads.get(n.id)
        attrs = {k: (list(a) if isinstance(a, tuple) else a) for k, a in n.attrs.items() if k != "value"}
        nodes.append({
            "id": n.id, "name": n.name, "kind": n.kind, "op": n.op, "inputs": list(n.inputs),
            "attrs": attrs, "shape": list(v.shape), "dtype": str(v.dtype),
            "value": _tensor(v), "grad": _tensor(g),
            "value_stats": stats(v), "grad_stats": stats(g),
            "requires_grad": n.id in run.requires_grad,
            "line": n.meta.get("line"), "expr": n.meta.get("expr"),
            "literal": bool(n.meta.get("literal")),
            "nonfinite": n.id in run.nonfinite,
            "health": health_json(flags.get(n.id)),
            "saturation": _saturation(node_saturation(graph, run, n)),
        })
    edges = []
    for e in graph.edges():
        g = run.edge_grads.get((e.dst, e.arg))
        edges.append({"src": e.src, "dst": e.dst, "arg": e.arg, "grad": _tensor(g), "grad_stats": stats(g)})
    doc = {
        "format": FORMAT, "version": VERSION, "source": graph.source,
        "loss": graph.loss, "output": graph.output, "seeded_with_ones": run.seeded_with_ones,
        "warnings": [str(w) for w in run.warnings],
        "health": {"vanish": vanish, "explode": explode},
    }
    if run.step is not None:   # render --lr: the update gradient descent would make
        s = run.step
        doc["step"] = {"lr": s.lr, "clip_norm": s.clip_norm, "scale": s.scale, "grad_norm": s.grad_norm,
                       "large": list(s.large), "updated": {i: _tensor(v) for i, v in s.updated.items()}}
    doc.update(nodes=nodes, edges=edges)
    return json_safe(doc)


def to_json(graph: Graph, run: Run, vanish: float = VANISH, explode: float = EXPLODE) -> str:
    """The document with one node or edge per line."""
    return dumps(to_dict(graph, run, vanish, explode))


def dumps(d: dict) -> str:
    """A cgviz-graph document with one node or edge per line: readable, diffable, and fast to write
    (json's C encoder only runs without `indent`)."""
    dump = lambda x: json.dumps(x, ensure_ascii=False, allow_nan=False)  # noqa: E731
    head = ",\n ".join(f"{dump(k)}: {dump(v)}" for k, v in d.items() if k not in ("nodes", "edges"))
    parts = ["{" + head + ","]
    for key in ("nodes", "edges"):
        items = ",\n  ".join(dump(x) for x in d[key])
        parts.append(f' "{key}": [\n  {items}\n ]' if items else f' "{key}": []')
        parts[-1] += "," if key == "nodes" else ""
    return "\n".join(parts) + "\n}\n"
