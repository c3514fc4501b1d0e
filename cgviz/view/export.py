"""The JSON form of a graph with its values and gradients (format `cgviz-graph`, version 1), from either front end."""

from __future__ import annotations

import json
import os
import math

import numpy as np

from ..health import EXPLODE, VANISH, node_saturation, verdicts
from ..ir import Graph
from ..fmt import stats as _stats
from ..summary import FULL_LIMIT, RunSummary, as_summary, first

FORMAT = "cgviz-graph"
VERSION = 1


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


def _full(t):
    """A tensor's values for `value`/`grad`: in full up to FULL_LIMIT elements, else None (stats say it)."""
    if t is None or t.values is None or t.values.size > FULL_LIMIT:
        return None
    return np.asarray(t.values).tolist()


def health_json(v) -> dict | None:
    if v is None:
        return None
    return {"flag": v.flag, "measure": v.measure, "relative": v.relative, "value_norm": v.value_norm,
            "grad_norm": v.grad_norm}


def _saturation(s) -> dict | None:
    return None if s is None else {"min": s.lo, "max": s.hi, "share": s.share, "limit": s.limit}


def to_dict(graph: Graph, run, vanish: float = VANISH, explode: float = EXPLODE, extra: dict | None = None,
            judge: bool = True) -> dict:
    """Everything a picture shows, as data: nodes in topological order and edges in argument order,
    never folded or collapsed (JSON is the IR, the picture a view). `run` is either front end's
    (summary.RunSummary, or the expression engine's Run); a model run adds its `model` fields, with
    `extra` merged into `model`. `judge`: the gradient health is judged (for a model, a loss whose
    scale means something)."""
    return json_safe(_document(graph, run, vanish, explode, extra, judge))


def _document(graph: Graph, run, vanish: float, explode: float, extra: dict | None, judge: bool) -> dict:
    """to_dict's document before NaN and infinities are spelled as strings (dumps does it per item)."""
    raw = None if isinstance(run, RunSummary) else run     # the expression engine's arrays
    run = as_summary(graph, run)
    model = run.front == "model"
    flags = verdicts(graph, run, vanish, explode) if judge else {}
    if raw is not None and not model:
        nodes = [_expression_node(graph, run, raw, n, flags) for n in graph]
        edge_grads = _Arrays(raw.edge_grads)
    else:
        nodes = [_node(graph, run, n, flags, model, judge) for n in graph]
        edge_grads = run.edge_grads
    edges = []
    # the edges straight from the nodes: graph.edges() makes an Edge object for each, which took a
    # quarter of the export of a 200,000-line program
    for e in ((src, n.id, k) for n in graph for k, src in enumerate(n.inputs)):
        g = edge_grads.get((e[1], e[2]))
        item = {"src": e[0], "dst": e[1], "arg": e[2], "grad": _full(g), "grad_stats": g.stats if g else None}
        if model:
            v = run.edge_values.get((e[1], e[2]))
            item.update(shape=list(v.shape) if v is not None else None, dtype=v.dtype if v is not None else None)
        edges.append(item)
    doc = {
        "format": FORMAT, "version": VERSION, "source": graph.source,
        "loss": graph.loss, "output": graph.output, "seeded_with_ones": run.seeded_with_ones,
        "warnings": list(run.warnings),
    }
    if model:
        doc["model"] = dict(run.meta) | {"loss_value": run.loss} | (extra or {})
        doc["param_grad_norms"] = {k: (t.norm if t is not None else None) for k, t in run.param_grads.items()}
    else:
        doc["health"] = {"vanish": vanish, "explode": explode}
    if run.step is not None:   # render --lr: the update gradient descent would make
        s = run.step
        doc["step"] = {"lr": s.lr, "clip_norm": s.clip_norm, "scale": s.scale, "grad_norm": s.grad_norm,
                       "large": list(s.large), "updated": {i: _array(v) for i, v in s.updated.items()}}
    if run.profile is not None:
        from .profile import to_json_fields
        doc["profile"] = to_json_fields(run.profile)
    doc.update(nodes=nodes, edges=edges)
    return doc


def _array(a):
    a = np.asarray(a)
    return None if a.size > FULL_LIMIT else a.tolist()


class _Info:
    """What _node reads of a TensorInfo, straight from an expression's array: the summaries' layers
    (a Summaries lookup, an ArrayInfo) cost more than the numbers on a scalar program of 400,000 nodes."""

    __slots__ = ("shape", "dtype", "values", "stats")

    def __init__(self, a: np.ndarray):
        self.shape, self.dtype, self.values, self.stats = a.shape, _dtype(a), a, _stats(a)


_DTYPES: dict = {}


def _dtype(a) -> str:
    name = _DTYPES.get(a.dtype)
    if name is None:
        name = _DTYPES[a.dtype] = str(a.dtype)
    return name


class _Arrays:
    """key → _Info of an engine's array (None stays None), for the edges' gradients."""

    def __init__(self, arrays):
        self.arrays = arrays

    def get(self, key):
        a = self.arrays.get(key)
        return None if a is None else _Info(a)


def _expression_node(graph: Graph, run, raw, n, flags: dict) -> dict:
    """_node of an expression program, read from the engine's arrays: the same fields, in the same order."""
    v = _Info(raw.values[n.id])
    g = raw.grads.get(n.id)
    g = None if g is None else _Info(g)
    return {
        "id": n.id, "name": n.name, "kind": n.kind, "op": n.op, "inputs": list(n.inputs),
        "attrs": {k: (list(a) if isinstance(a, tuple) else a) for k, a in n.attrs.items() if k != "value"},
        "shape": list(v.shape), "dtype": v.dtype,
        "value": _full(v), "grad": _full(g),
        "value_stats": v.stats, "grad_stats": g.stats if g is not None else None,
        "requires_grad": run.wants_grad(n.id),
        "line": n.meta.get("line"), "expr": n.meta.get("expr"), "literal": bool(n.meta.get("literal")),
        "nonfinite": run.is_nonfinite(n.id),
        "health": health_json(flags.get(n.id)),
        "saturation": _saturation(node_saturation(graph, run, n)) if n.kind == "op" else None,
    }


def _node(graph: Graph, run, n, flags: dict, model: bool, judge: bool) -> dict:
    """One node's fields: the common ones, then an expression's saturation or a model's module facts."""
    outs = run.values.get(n.id)
    v = first(outs)
    g = run.grads.get(n.id)
    item = {
        "id": n.id, "name": n.name, "kind": n.kind, "op": n.op, "inputs": list(n.inputs),
        "attrs": {k: (list(a) if isinstance(a, tuple) else a) for k, a in n.attrs.items() if k != "value"},
        "shape": list(v.shape) if v is not None else None, "dtype": v.dtype if v is not None else None,
        "value": _full(v), "grad": _full(g),
        "value_stats": v.stats if v is not None else None, "grad_stats": g.stats if g is not None else None,
        "requires_grad": run.wants_grad(n.id),
        "line": n.meta.get("line"), "expr": n.meta.get("expr"), "literal": bool(n.meta.get("literal")),
        "nonfinite": run.is_nonfinite(n.id),
    }
    if not model:
        item["health"] = health_json(flags.get(n.id))
        item["saturation"] = _saturation(node_saturation(graph, run, n))
        return item
    scope = n.meta.get("scope") or ()
    site = n.meta.get("site")
    item.update(module=n.meta.get("module", ""), module_class=n.meta.get("class") or None,
                module_call=[f.key for f in scope],
                # the model's line that called the op (`model.py:16`), as the recorder saw it
                source=f"{os.path.basename(site[0])}:{site[1]}" if site else None)
    if isinstance(outs, list) and len(outs) > 1:
        item["outputs"] = [{"shape": list(o.shape), "dtype": o.dtype} for o in outs]
    if n.meta.get("custom_function"):       # one node for a torch.autograd.Function (docs/model-labels.md)
        item["custom_function"] = {"class": n.meta["custom_function"], "defined": n.meta.get("defined") or None,
                                   "forward_ops": list(n.meta.get("forward_ops") or ())}
    if n.meta.get("checkpoint"):
        item["checkpoint"] = n.meta["checkpoint"]
    if n.meta.get("out_index") and any(n.meta["out_index"]):
        item["input_outputs"] = list(n.meta["out_index"])
    if n.kind == "param" and judge:
        item["health"] = health_json(flags.get(n.id))
    if run.profile is not None:
        from .profile import node_json
        item["profile"] = node_json(run.profile, n.id) if n.kind == "op" else None
    return item


def to_json(graph: Graph, run, vanish: float = VANISH, explode: float = EXPLODE, extra: dict | None = None,
            judge: bool = True) -> str:
    """The document with one node or edge per line."""
    return dumps(_document(graph, run, vanish, explode, extra, judge))


_ENCODE = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode


def _dump(x) -> str:
    """One item as JSON; NaN and infinities as the strings json_safe writes. The walk that spells them
    is taken only for an item that holds one: walking every item of a 200,000-line program's
    document took longer than encoding it."""
    try:
        return _ENCODE(x)
    except ValueError:
        return _ENCODE(json_safe(x))


def dumps(d: dict) -> str:
    """A cgviz-graph document with one node or edge per line: readable, diffable, and fast to write
    (json's C encoder only runs without `indent`). NaN and infinities are written as to_dict spells them."""
    dump = _dump
    head = ",\n ".join(f"{dump(k)}: {dump(v)}" for k, v in d.items() if k not in ("nodes", "edges"))
    parts = ["{" + head + ","]
    for key in ("nodes", "edges"):
        items = ",\n  ".join(dump(x) for x in d[key])
        parts.append(f' "{key}": [\n  {items}\n ]' if items else f' "{key}": []')
        parts[-1] += "," if key == "nodes" else ""
    return "\n".join(parts) + "\n}\n"
