"""The JSON of a model graph: the same `cgviz-graph` v1 format as `cgviz render`, plus `module` fields."""

from __future__ import annotations

from .export import FORMAT, VERSION, dumps, json_safe
from ..ir import Graph
from ..summary import ModelRun, TensorInfo


def _full(t: TensorInfo | None):
    return None if t is None or t.values is None else t.values.tolist()


def to_dict(graph: Graph, run: ModelRun, extra: dict | None = None,
            health: tuple[float, float] | None = None) -> dict:
    """Every recorded node and edge (never folded or collapsed: JSON is the IR, the picture is a view).
    `health`: the (vanish, explode) thresholds when the parameters' gradient health is judged (a loss
    whose scale means something), else None."""
    nodes = []
    for n in graph:
        v = run.values.get(n.id)
        outs = v if isinstance(v, list) else [v]
        first = outs[0]
        g = run.grads.get(n.id)
        scope = n.meta.get("scope") or ()
        item = {
            "id": n.id, "name": n.name, "kind": n.kind, "op": n.op, "inputs": list(n.inputs), "attrs": {},
            "shape": list(first.shape) if first is not None else None,
            "dtype": first.dtype if first is not None else None,
            "value": _full(first), "grad": _full(g),
            "value_stats": first.stats if first is not None else None,
            "grad_stats": g.stats if g is not None else None,
            "requires_grad": g is not None, "line": None, "expr": None, "literal": False,
            "nonfinite": any(t is not None and t.nonfinite for t in (first, g)),
            "module": n.meta.get("module", ""), "module_class": n.meta.get("class") or None,
            "module_call": [f.key for f in scope],
        }
        if len(outs) > 1:
            item["outputs"] = [{"shape": list(o.shape), "dtype": o.dtype} for o in outs]
        if n.meta.get("out_index") and any(n.meta["out_index"]):
            item["input_outputs"] = list(n.meta["out_index"])
        if n.kind == "param" and health is not None:
            from .export import health_json
            from ..health import param_verdict
            item["health"] = health_json(param_verdict(graph, run, n.id, *health))
        if run.profile is not None:
            from .profile import node_json
            item["profile"] = node_json(run.profile, n.id) if n.kind == "op" else None
        nodes.append(item)
    edges = []
    for e in graph.edges():
        g = run.edge_grads.get((e.dst, e.arg))
        v = run.edge_values.get((e.dst, e.arg))
        edges.append({"src": e.src, "dst": e.dst, "arg": e.arg, "grad": _full(g),
                      "grad_stats": g.stats if g is not None else None,
                      "shape": list(v.shape) if v is not None else None,
                      "dtype": v.dtype if v is not None else None})
    doc = {"format": FORMAT, "version": VERSION, "source": graph.source, "loss": graph.loss,
           "output": graph.output, "seeded_with_ones": False, "warnings": list(run.warnings),
           "model": {k: v for k, v in run.meta.items()} | {"loss_value": run.loss},
           "param_grad_norms": {k: (t.norm if t is not None else None) for k, t in run.param_grads.items()}}
    if extra:
        doc["model"].update(extra)
    if run.profile is not None:
        from .profile import to_json_fields
        doc["profile"] = to_json_fields(run.profile)
    doc["nodes"] = nodes
    doc["edges"] = edges
    return json_safe(doc)


def to_json(graph: Graph, run: ModelRun, extra: dict | None = None,
            health: tuple[float, float] | None = None) -> str:
    """One node or edge per line, as `cgviz render` writes it."""
    return dumps(to_dict(graph, run, extra, health))
