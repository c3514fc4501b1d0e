"""Model Explorer's graph JSON (Google AI Edge), from cgviz's JSON document: for models too big for
Graphviz, opened in a WebGL viewer with our numbers on them.

The graph is a GraphCollection (`{"label", "graphs": [graph]}`, one of the shapes its JSON adapter
reads). Each node carries cgviz's numbers as attributes (value and gradient statistics, the health
verdict) and its module path as its namespace, so modules are layers; a ×N fold is a layer of its own
(`blocks.0 … blocks.11 ×12`) holding the N blocks. The per-node data overlays (gradient norm, value
norm, health) are Model Explorer's node-data files (ModelNodeData: graph id → results by node id).
Torch-free: it reads only the JSON document and the fold groups.
"""

from __future__ import annotations

import json
import math

from ..core.fmt import num

# The overlays written beside the graph: name → what it colours
OVERLAYS = ("grad_norm", "value_norm", "health")
_HEALTH_COLOURS = {"vanishing": "#90caf9", "exploding": "#ef9a9a", "non-finite": "#ffab40", "ok": "#e8f5e9"}
# Node-data values are numbers in Model Explorer's schema (NodeDataResult.value): the health overlay
# codes each verdict, and colours it itself
HEALTH_CODES = {"ok": 0, "vanishing": 1, "exploding": 2, "non-finite": 3}


def fold_layers(groups) -> dict[tuple[str, ...], str]:
    """Each folded call's module keys → the name of the ×N layer that holds it."""
    out: dict[tuple[str, ...], str] = {}
    for grp in groups:
        if grp.n < 2:
            continue
        first, last = grp.calls[0][-1].key, grp.calls[-1][-1].key
        name = f"{first} … {last} ×{grp.n}" if grp.style == "fold" else f"{first} ×{grp.n} calls"
        for call in grp.calls:
            out[tuple(f.key for f in call)] = name
    return out


def _namespace(keys: list[str], folds: dict) -> str:
    """`blocks/blocks.0 … blocks.2 ×3/blocks.1`: module keys, with a fold's layer above its members."""
    parts: list[str] = []
    for i in range(len(keys)):
        layer = folds.get(tuple(keys[:i + 1]))
        if layer is not None:
            parts.append(layer)
        parts.append(keys[i])
    return "/".join(p.replace("/", "∕") for p in parts)


def _stats(prefix: str, stats: dict | None) -> list[dict]:
    if not stats:
        return []
    return [{"key": f"{prefix} {k}", "value": num(v)} for k, v in stats.items() if isinstance(v, (int, float))]


def _health(node: dict) -> str | None:
    if node.get("nonfinite"):
        return "non-finite"
    h = node.get("health")
    if not h:
        return None
    return h.get("flag") or "ok"


def _graph_node(n: dict, args: dict[str, list], folds: dict) -> dict:
    label = n.get("op") or n.get("name") or n["id"]
    attrs = [{"key": "kind", "value": n["kind"]}]
    for key in ("name", "module", "module_class", "dtype"):
        if n.get(key):
            attrs.append({"key": key, "value": str(n[key])})
    if n.get("shape") is not None:
        attrs.append({"key": "shape", "value": "×".join(map(str, n["shape"])) or "scalar"})
    attrs += _stats("value", n.get("value_stats")) + _stats("grad", n.get("grad_stats"))
    health = _health(n)
    if health:
        attrs.append({"key": "health", "value": health})
    node = {"id": n["id"], "label": str(label),
            "namespace": _namespace(list(n.get("module_call") or []), folds),
            "attrs": attrs,
            "incomingEdges": [{"sourceNodeId": src, "sourceNodeOutputId": "0", "targetNodeInputId": str(k)}
                              for k, src in args.get(n["id"], [])],
            "outputsMetadata": [{"id": "0", "attrs": [{"key": "tensor_name", "value": n["id"]}]
                                 + ([{"key": "shape", "value": "×".join(map(str, n["shape"]))}]
                                    if n.get("shape") is not None else [])}]}
    if health in ("vanishing", "exploding", "non-finite"):
        node["style"] = {"backgroundColor": _HEALTH_COLOURS[health], "borderColor": "#b71c1c"}
    return node


def graph_collection(doc: dict, groups=(), label: str = "cgviz") -> dict:
    """The Model Explorer GraphCollection of one cgviz JSON document (`groups`: the picture's folds)."""
    folds = fold_layers(groups)
    args: dict[str, list] = {}
    for e in doc["edges"]:
        args.setdefault(e["dst"], []).append((e.get("arg", 0), e["src"]))
    nodes = [_graph_node(n, args, folds) for n in doc["nodes"]]
    group_attrs: dict[str, dict[str, str]] = {"": {"source": label, "made by": "cgviz"}}
    model = doc.get("model") or {}
    for key in ("loss", "inputs", "params", "loss_value"):
        if key in model and model[key] is not None:
            group_attrs[""][key] = num(model[key]) if isinstance(model[key], float) else str(model[key])
    for grp in groups:
        if grp.n < 2:
            continue
        name = folds[tuple(f.key for f in grp.calls[0])]
        space = _namespace([f.key for f in grp.calls[0][:-1]], folds)
        norms = ", ".join(num(g) if g is not None else "–" for g in grp.grad_norms)
        group_attrs["/".join(p for p in (space, name) if p)] = {
            "repeated": f"{grp.n} × {grp.cls} ({grp.style})", "‖∇θ‖ per block": norms}
    graph = {"id": label, "nodes": nodes, "groupNodeAttributes": group_attrs}
    return {"label": label, "graphs": [graph]}


def node_data(doc: dict, label: str = "cgviz") -> dict[str, dict]:
    """The overlays as Model Explorer node-data documents (ModelNodeData), by name (OVERLAYS)."""
    grad, value, health = {}, {}, {}
    for n in doc["nodes"]:
        g, v = (n.get("grad_stats") or {}).get("norm"), (n.get("value_stats") or {}).get("norm")
        if isinstance(g, (int, float)) and math.isfinite(g):
            grad[n["id"]] = {"value": g}
        if isinstance(v, (int, float)) and math.isfinite(v):
            value[n["id"]] = {"value": v}
        h = _health(n)
        if h:
            health[n["id"]] = {"value": HEALTH_CODES[h], "bgColor": _HEALTH_COLOURS[h]}
    scale = [{"stop": 0, "bgColor": "#fff5f0"}, {"stop": 1, "bgColor": "#c62828"}]
    blue = [{"stop": 0, "bgColor": "#f0f5ff"}, {"stop": 1, "bgColor": "#1565c0"}]
    return {"grad_norm": {label: {"results": grad, "gradient": scale}},
            "value_norm": {label: {"results": value, "gradient": blue}},
            "health": {label: {"results": health}}}


def dumps(obj: dict) -> bytes:
    # NaN and infinities are not JSON: Model Explorer's parser (the browser's JSON.parse) refuses them
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, default=str).encode("utf-8")


def sibling(path, overlay: str):
    """Where an overlay goes beside the graph file: `net.me.json` → `net.me.grad_norm.json`."""
    name = path.name[:-5] if path.name.lower().endswith(".json") else path.name
    return path.with_name(f"{name}.{overlay}.json")
