"""A recorded run's model graph, from the cgviz-graph JSON in a .cgw header, without torch: the Graph and
RunSummary the model views read, its folded picture, and which parameters and modules each drawn
node and red edge stands for (so the page can put any step's numbers on the one layout)."""

from __future__ import annotations

import math

import numpy as np

from ..core.errors import CgvizError
from ..core.ir import Frame, Graph, Node, Scope
from ..core.summary import RunSummary, TensorInfo

MAX_DRAWN = 120     # the finest depth whose picture has at most this many boxes is drawn


def _float(x):
    """The JSON's "NaN"/"Infinity" strings (export.json_safe) back as floats."""
    if isinstance(x, str):
        return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}.get(x, math.nan)
    return x


def _info(shape, dtype, stats, values=None) -> TensorInfo | None:
    if shape is None and stats is None:
        return None
    st = None if stats is None else {k: _float(v) for k, v in stats.items()}
    arr = None
    if values is not None:
        try:
            arr = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            arr = None
    return TensorInfo(tuple(shape or ()), dtype or "float32", st, arr)


def from_json(doc: dict, where: str = "the record") -> tuple[Graph, RunSummary]:
    """The graph and run of a cgviz-graph document (`cgviz torch -f json`), as the recorder saw them."""
    if not isinstance(doc, dict) or doc.get("format") != "cgviz-graph" or not isinstance(doc.get("nodes"), list):
        raise CgvizError(f"{where}: its \"graph\" is not a cgviz-graph document")
    classes = {n.get("module"): n.get("module_class") for n in doc["nodes"] if n.get("module_class")}
    graph = Graph(output=doc.get("output"), loss=doc.get("loss"), source=str(doc.get("source", "<model>")))
    values, grads, edge_values, edge_grads = {}, {}, {}, {}
    try:
        for n in doc["nodes"]:
            frames = []
            for key in n.get("module_call") or []:
                path, _, nth = key.rpartition(":") if ":" in key and key.rpartition(":")[2].isdigit() else (key, "", "1")
                frames.append(Frame(path, classes.get(path) or "", int(nth)))
            shape = n.get("shape")
            meta = {"scope": Scope.of(frames), "module": n.get("module", ""), "class": n.get("module_class") or ""}
            if n["kind"] == "param" and shape is not None:
                meta["numel"] = int(np.prod(shape)) if shape else 1
            if n.get("input_outputs"):
                meta["out_index"] = tuple(n["input_outputs"])
            graph.add(Node(n["id"], n["kind"], n.get("op"), tuple(n.get("inputs", ())), n.get("name"),
                           dict(n.get("attrs") or {}), meta))
            v = _info(shape, n.get("dtype"), n.get("value_stats"), n.get("value"))
            if n.get("outputs"):
                values[n["id"]] = [v] + [_info(o.get("shape"), o.get("dtype"), None) for o in n["outputs"][1:]]
            else:
                values[n["id"]] = v
            grads[n["id"]] = _info(shape, n.get("dtype"), n.get("grad_stats")) if n.get("grad_stats") else None
        for e in doc.get("edges", []):
            k = (e["dst"], e["arg"])
            src = values.get(e["src"])
            src = src[0] if isinstance(src, list) else src
            edge_values[k] = _info(e.get("shape"), e.get("dtype"), src.stats if src is not None else None) \
                if e.get("shape") is not None else src
            edge_grads[k] = _info(e.get("shape"), e.get("dtype"), e.get("grad_stats")) if e.get("grad_stats") else None
    except (KeyError, TypeError, ValueError) as e:
        raise CgvizError(f"{where}: its graph has a node or edge with a missing or wrong field ({e})") from None
    model = dict(doc.get("model") or {})
    norms = doc.get("param_grad_norms") or {}
    param_grads = {k: (None if v is None else TensorInfo((), "float32", {"norm": _float(v)})) for k, v in norms.items()}
    loss = model.get("loss_value")
    run = RunSummary(values=values, grads=grads, edge_values=edge_values, edge_grads=edge_grads,
                     param_grads=param_grads, loss=_float(loss) if loss is not None else None,
                     warnings=list(doc.get("warnings") or []), meta=model, front="model")
    return graph, run


def picture(graph: Graph, run: RunSummary, limit: int = MAX_DRAWN):
    """The folded picture: every op when that is at most `limit` boxes, else the finest module depth
    that is (depth 1 at worst)."""
    from ..plan.structure import build_picture, find_groups, max_depth
    groups = find_groups(graph, run)
    pic = build_picture(graph, run, None, True, groups)
    depth = max_depth(graph)
    while len(pic.nodes) > limit and depth >= 1:
        pic = build_picture(graph, run, depth, True, groups)
        depth -= 1
    return pic


def _outputs(graph: Graph) -> dict[str, str]:
    """op id → the innermost module path whose output it is (the last op run inside that call)."""
    last: dict[str, str] = {}
    for n in graph:
        if n.kind == "op":
            for f in n.meta.get("scope") or ():
                last[f.path] = n.id
    out: dict[str, str] = {}
    for path, op in last.items():      # the innermost (longest path) module names the op
        if op not in out or len(path) > len(out[op]):
            out[op] = path
    return out


def mapping(graph: Graph, pic, rename: dict[str, str] | None = None) -> tuple[dict, dict, dict]:
    """What each drawn node and drawn red edge stands for in a step's record. `rename`: drawn id →
    the id it is shown as (a ×N block's repetition on the first repetition's layout); a node or
    edge without one is left out.

    nodes: svg key → {"rows": [[prefix, "p"|"m", [names]], ...], "params": [names], "modules": [paths]}:
    each gradient row of the node's label, in the order the label has them, with the text it starts
    with and the parameters (‖∇θ‖, ‖∇‖: their norms together) or modules (‖∂L/∂out‖: their outputs'
    gradient norms together) whose numbers it shows at a step.
    edges: edge key → ["p"|"m", [names]]: the gradient the red edge carries back out of its source.
    frames: a ×N fold's frame (its SVG title) → rows as nodes', "pb" with the parameters of each block."""
    from .html import edge_key, svg_key
    from ..plan.structure import cluster_id
    outs = _outputs(graph)
    as_id = (lambda i: i) if rename is None else rename.get

    def params_of(ids) -> list[str]:
        names = []
        for m in ids:
            for x in pic.same.get(m, [m]):
                n = graph[x]
                if n.kind == "param" and n.name and n.name not in names:
                    names.append(n.name)
        return names

    def modules_of(ids) -> list[str]:
        return list(dict.fromkeys(outs[m] for m in ids if m in outs))

    nodes, sources = {}, {}
    for dn in pic.nodes.values():
        rows, mods, ps = [], [], []
        if dn.kind == "module":
            ps = params_of(dn.members)
            grp = pic.groups.get(dn.module)
            calls = grp.calls if grp is not None and grp.style == "fold" else [dn.module]
            mods = [c[-1].path for c in calls]
            if ps:
                rows.append(["‖∇θ‖ = ", "p", ps])
            sources[dn.id] = ["m", mods]
        elif dn.kind == "params":
            for m in dn.parts:
                one = params_of([m])
                if one:
                    rows.append(["‖∇‖ = ", "p", one])
                    ps += one
            sources[dn.id] = ["p", ps]
        elif dn.kind == "op":
            rep = graph[dn.id] if dn.id in graph else graph[dn.members[0]]
            mods = modules_of(dn.members)
            if rep.id != graph.output:
                rows.append(["‖∂L/∂out‖ = ", "m", mods])
            else:
                rows.append(["loss", "L", []])
            rows.append(["z ∈ ", "s", mods])        # a sigmoid's or tanh's saturation line
            sources[dn.id] = ["m", mods]
        else:
            rep = graph[dn.id] if dn.id in graph else graph[dn.members[0]]
            if rep.kind == "param":
                ps = params_of(dn.members)
                rows.append(["‖∇‖ = ", "p", ps])
                sources[dn.id] = ["p", ps]
            else:       # an input's gradient is not part of the record
                rows.append(["‖∇‖ = ", "m", []])
        if as_id(dn.id) is not None:
            nodes[svg_key(as_id(dn.id))] = {"rows": rows, "params": ps, "modules": mods}
    frames = {}     # a ×N fold's frame caption: ‖∇θ‖ per block
    for rep, grp in pic.groups.items():
        if grp.style == "fold":
            per = [[n.name for n in graph if n.kind == "param" and n.name
                    and n.name.startswith(c[-1].path + ".")] for c in grp.calls]
            frames["cluster_" + cluster_id(rep)] = [["‖∇θ‖ per block: ", "pb", per]]
    edges = {}
    for e in pic.edges:
        if e.grad is None or e.src not in sources or as_id(e.src) is None or as_id(e.dst) is None:
            continue
        edges[edge_key(as_id(e.src), as_id(e.dst))] = sources[e.src]
    return nodes, edges, frames


def level_maps(levels: dict) -> dict:
    """`mapping` of every level of a drill-down page (cgviz.plan.levels), keyed as the page keys its
    levels: {"nodes", "edges", "frames"}, and for a level inside a ×N fold, "reps": each block's
    mapping on the first block's layout (None for a block drawn otherwise)."""
    out = {}
    for key, lv in levels.items():
        nodes, edges, frames = mapping(lv.graph, lv.pic)
        entry = {"nodes": nodes, "edges": edges, "frames": frames}
        if lv.reps is not None:
            entry["reps"] = []
            for rep in lv.reps:
                if rep is None:
                    entry["reps"].append(None)
                    continue
                g, _run, p, ids = rep
                n, e, _f = mapping(g, p, {b: a for a, b in ids.items()})
                entry["reps"].append({"nodes": n, "edges": e, "frames": {}})
        out[key] = entry
    return out


def svg_of(graph: Graph, run: RunSummary, pic, title: str, timeout: float | None = 60.0) -> str:
    """The picture laid out by Graphviz, as the model page draws it (gradient flags off: the page's
    numbers change with the step, and the header's first-step flags would not)."""
    from .dot import dot_text
    from .graphviz import run_dot
    from .model_scene import DrawOptions, scene
    opts = DrawOptions(rankdir="TB", grad=True, title=title, flags=False)
    return run_dot(dot_text(scene(graph, run, pic, opts)), "svg", timeout=timeout,
                   nodes=len(pic.nodes)).decode("utf-8")
