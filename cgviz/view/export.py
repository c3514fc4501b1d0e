"""The JSON form of a graph with its values and gradients (format `cgviz-graph`, version 1), from either front end."""

from __future__ import annotations

import json
import os
import math

import numpy as np

from ..diagnose.health import EXPLODE, VANISH, node_saturation, verdicts
from ..core.ir import Graph
from ..core.fmt import stats as _stats
from ..core.summary import FULL_LIMIT, RunSummary, as_summary, first

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


def _document(graph: Graph, run, vanish: float, explode: float, extra: dict | None, judge: bool,
              text: bool = False) -> dict:
    """to_dict's document before NaN and infinities are spelled as strings (dumps does it per item).
    `text`: an expression program's nodes and edges come as their JSON text already (to_json's)."""
    raw = None if isinstance(run, RunSummary) else run     # the expression engine's arrays
    run = as_summary(graph, run)
    model = run.front == "model"
    flags = verdicts(graph, run, vanish, explode) if judge else {}
    if raw is not None and not model and text:
        spelled: dict = {}
        nodes = _expression_nodes_text(graph, run, raw, flags, spelled)
        edges = _expression_edges_text(graph, raw, spelled)
    elif raw is not None and not model:
        nodes = [_expression_node(graph, run, raw, n, flags) for n in graph]
        edges = _edges(graph, run, _Arrays(raw.edge_grads), model)
    else:
        nodes = [_node(graph, run, n, flags, model, judge) for n in graph]
        edges = _edges(graph, run, run.edge_grads, model)
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


def _edges(graph: Graph, run, edge_grads, model: bool) -> list[dict]:
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
    return edges


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


# The JSON text of an expression program's nodes and edges, written from templates where a node's value
# and gradient are finite float64 scalars (every node of a long generated program): encoding 900,000
# dicts one by one (their 12 floats each, of which a scalar's stats repeat 2) was most of the export of
# a 200,000-line program. Anything else goes through _expression_node and the encoder: the same bytes.
_STR = json.encoder.encode_basestring      # the encoder's own spelling of a string (ensure_ascii=False)
_F64 = np.dtype(np.float64)


def _text(x) -> str:
    return "null" if x is None else _STR(x)


def _expression_nodes_text(graph: Graph, run, raw, flags: dict, spelled: dict) -> list:
    """Each node's JSON text; `spelled` gets each id's JSON string (the edges write them again)."""
    from ..lang.ops import OPS
    from ..diagnose.health import saturation
    out = []
    append = out.append
    values, grads = raw.values, raw.grads
    rg, nonfinite = run.requires_grad, run.nonfinite
    limits = {name: d.saturates for name, d in OPS.items() if d.saturates is not None}
    spelled_limits = {name: _dump(x) for name, x in limits.items()}
    kind_op: dict = {}
    ndarray, f64, isfinite = np.ndarray, _F64, math.isfinite
    for n in graph:
        nid = spelled[n.id] = _STR(n.id)
        # a finite float64 scalar, tested inline: this loop runs for each of 400,000 nodes
        a = values[n.id]
        v = None
        if type(a) is ndarray and a.ndim == 0 and a.dtype is f64:
            x = float(a)
            if isfinite(x):
                v = repr(x)
        g = grads.get(n.id)
        gr = "null"
        if g is not None:
            gr = None
            if type(g) is ndarray and g.ndim == 0 and g.dtype is f64:
                x = float(g)
                if isfinite(x):
                    gr = repr(x)
        meta = n.meta
        line = meta.get("line")
        if v is None or gr is None or (line is not None and type(line) is not int) or rg is None \
                or nonfinite is None:
            append(_dump(_expression_node(graph, run, raw, n, flags)))
            continue
        attrs = n.attrs
        if len(attrs) > (1 if "value" in attrs else 0):
            attrs = _dump({k: (list(a) if isinstance(a, tuple) else a) for k, a in attrs.items() if k != "value"})
        else:
            attrs = "{}"
        f = flags.get(n.id)
        sat = "null"
        if n.op in limits and n.kind == "op" and n.inputs:
            z = saturation(values[n.inputs[0]], limits[n.op])
            if z is not None:
                # lo, hi and share are finite floats (saturation() reads finite elements only)
                sat = (f'{{"min": {float.__repr__(z.lo)}, "max": {float.__repr__(z.hi)}, '
                       f'"share": {float.__repr__(z.share)}, "limit": {spelled_limits[n.op]}}}')
        ko = kind_op.get((n.kind, n.op))
        if ko is None:
            ko = kind_op[(n.kind, n.op)] = f'"kind": {_STR(n.kind)}, "op": {_text(n.op)}'
        name = nid if n.name == n.id else _text(n.name)
        expr = meta.get("expr")
        vn = v[1:] if v[0] == "-" else v
        if g is None:
            gs = "null"
        else:
            gn = gr[1:] if gr[0] == "-" else gr
            gs = f'{{"mean": {gr}, "std": 0.0, "min": {gr}, "max": {gr}, "norm": {gn}}}'
        append(
            f'{{"id": {nid}, "name": {name}, {ko}, '
            f'"inputs": [{", ".join([spelled[i] for i in n.inputs])}], "attrs": {attrs}, '
            f'"shape": [], "dtype": "float64", "value": {v}, "grad": {gr}, '
            f'"value_stats": {{"mean": {v}, "std": 0.0, "min": {v}, "max": {v}, "norm": {vn}}}, '
            f'"grad_stats": {gs}, "requires_grad": {"true" if n.id in rg else "false"}, '
            f'"line": {"null" if line is None else line}, "expr": {"null" if expr is None else _STR(expr)}, '
            f'"literal": {"true" if meta.get("literal") else "false"}, '
            f'"nonfinite": {"true" if n.id in nonfinite else "false"}, '
            f'"health": {"null" if f is None else _dump(health_json(f))}, "saturation": {sat}}}')
    return out


def _expression_edges_text(graph: Graph, raw, spelled: dict) -> list:
    out = []
    append = out.append
    edge_grads = raw.edge_grads
    ndarray, f64, isfinite = np.ndarray, _F64, math.isfinite
    for n in graph:
        dst = spelled[n.id]
        for k, src in enumerate(n.inputs):
            g = edge_grads.get((n.id, k))
            if g is None:
                append(f'{{"src": {spelled[src]}, "dst": {dst}, "arg": {k}, "grad": null, "grad_stats": null}}')
                continue
            r = None
            if type(g) is ndarray and g.ndim == 0 and g.dtype is f64:
                x = float(g)
                if isfinite(x):
                    r = repr(x)
            if r is None:
                append(_dump({"src": src, "dst": n.id, "arg": k, "grad": _array(g), "grad_stats": _stats(g)}))
            else:
                append(f'{{"src": {spelled[src]}, "dst": {dst}, "arg": {k}, "grad": {r}, '
                       f'"grad_stats": {{"mean": {r}, "std": 0.0, "min": {r}, "max": {r}, '
                       f'"norm": {r[1:] if r[0] == "-" else r}}}}}')
    return out


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
    return dumps(_document(graph, run, vanish, explode, extra, judge, text=True))


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
    parts = ["{", head, ",\n"]
    for key in ("nodes", "edges"):
        # an item already written (an expression program's, _expression_nodes_text) stays as it is
        items = d[key]
        if not all(type(x) is str for x in items):
            items = [x if type(x) is str else dump(x) for x in items]
        parts += [f' "{key}": [\n  ', ",\n  ".join(items), "\n ]"] if items else [f' "{key}": []']
        parts.append(",\n" if key == "nodes" else "")
    parts.append("\n}\n")
    # one join: the document of a 200,000-line program is 270 MB, and each copy of it takes a while
    return "".join(parts)
