"""One self-contained HTML page: the SVG graph with pan/zoom and search, a panel with each node's
derivative, toggles for the two kinds of edges, and a step-through of the backward pass.

Everything is inline (no network request of any kind), so the page opens offline and can be
attached to an issue or a course page as a single file; its CSS and JavaScript are kept as package
data in cgviz/view/assets and written into each page.
"""

from __future__ import annotations

import functools
import html
import json
import re
from importlib import resources

import numpy as np

from .markup import BACKWARD, FORWARD

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>%(title)s</title>
<style>
:root { --fwd: %(fwd)s; --bwd: %(bwd)s; }
%(css)s</style>
</head>
<body>
<div id="bar">
  <span class="title" title="%(title)s">%(title)s</span>
  <nav id="crumbs" hidden></nav>
  <span id="reps" hidden><b id="rep-word"></b> <input type="range" id="rep" min="0" max="0" value="0" step="1">
    <span id="rep-info"></span><span id="rep-chart"></span></span>
  <input id="search" placeholder="find a node (Enter)" size="15">
  <button id="fit" title="the whole graph in the window">fit</button>
  <label class="fwd" title="the blue edges: values, forward"><input type="checkbox" id="show-fwd" checked> values</label>
  <label class="bwd" title="the red edges: gradients, backward"><input type="checkbox" id="show-bwd" checked> gradients</label>
  <button id="reset" title="show every gradient again">reset</button>
  <button id="step" title="backprop one edge">step backward</button>
  <button id="play" title="backprop edge by edge">play</button>%(extra_bar)s
</div>
<div id="main">
  <div id="graph">%(svg)s</div>
  <div id="status"><div id="step-info"></div><div id="view-note" hidden></div></div>
  <div id="panel"><h2 id="panel-title"></h2><div id="panel-body"></div>
    <div class="k" id="chain-head">chain rule</div><pre id="panel-chain"></pre></div>
</div>
<script type="application/json" id="cgviz-data">%(data)s</script>
<script>
%(script)s
</script>
</body>
</html>
"""


@functools.cache
def asset(name: str) -> str:
    """A file of the page's CSS or JavaScript (package data in cgviz/view/assets), read once."""
    return resources.files("cgviz.view").joinpath("assets", name).read_text(encoding="utf-8")


def svg_key(node_id: str) -> str:
    """A node's id as the SVG's <title> shows it, the key the page's data uses for that node.

    Graphviz unescapes only the \\" of a quoted DOT id; a doubled backslash (dot.quote doubles each
    one) stays doubled in the title, and a line break stays the two characters \\n."""
    from .markup import quote
    return quote(node_id)[1:-1].replace('\\"', '"')


def edge_key(src: str, dst: str) -> str:
    """An edge's <title>: its two ends as `svg_key`, joined by Graphviz's `->`."""
    return f"{svg_key(src)}->{svg_key(dst)}"


def _clean_svg(svg: str) -> str:
    """Graphviz's SVG without the XML prolog, doctype and comments, ready to inline."""
    svg = re.sub(r"<\?xml[^>]*\?>", "", svg)
    svg = re.sub(r"<!DOCTYPE[^>]*>", "", svg)
    svg = re.sub(r"<!--.*?-->", "", svg, flags=re.S)
    return svg.strip()


def page(svg: str, title: str, nodes: dict, order: list[str], steps: dict[str, str], backward: str,
         train: dict | None = None, extra_bar: str = "", levels: dict | None = None, root: str = "",
         found: dict | None = None) -> str:
    """The whole document. `nodes`: id → {title, rows: [[heading, text]], chain: [lines]};
    `train`: the slider's frames (train_page), with `extra_bar` its controls; `levels`: a drill-down
    page's pictures (drill_page), `root` the first, `found` the search index."""
    data = {"nodes": nodes, "order": order, "steps": steps, "backward": backward.lower(), "train": train}
    if levels is not None:
        data.update(levels=levels, root=root, found=found)
    # </script> inside the JSON must not end the script element: escape every "<"
    blob = json.dumps(data, ensure_ascii=False, allow_nan=False).replace("<", "\\u003c")
    script = asset("page.js") + (asset("train.js") if train else "")
    return PAGE % {"fwd": FORWARD, "bwd": BACKWARD, "css": asset("page.css"), "title": html.escape(title),
                   "svg": _clean_svg(svg), "data": blob, "script": script, "extra_bar": extra_bar}


def dsl_page(graph, run, svg: str) -> str:
    """The page for an expression file: every node's value, gradient, formula, locals and chain."""
    nodes, order, steps, title = _dsl_parts(graph, run)
    return page(svg, title, nodes, order, steps, BACKWARD)


def _dsl_parts(graph, run):
    """The panel's rows per node, the backward stepper's order and texts, and the page title."""
    from ..lang.chain import chain_text, local
    from .expression_scene import headline
    from ..core.names import folded, title, wrt
    from ..core.fmt import grad_text, num, value_text
    from ..lang.ops import OPS
    from ..core.summary import as_summary
    info = as_summary(graph, run)     # histograms as the model page reads them
    top = graph.loss or graph[graph.output].name or "out"
    nodes = {}
    for n in graph:
        if folded(graph, n.id):
            continue
        v, g = run.values[n.id], run.grads.get(n.id)
        rows = []
        if n.kind == "op":
            d = OPS[n.op]
            rows.append(["op", f"{d.name}: {d.formula}"])
            rows.append(["expression", str(n.meta.get("expr", n.id))])
            names = [p.rstrip("?") for p in d.params]
            locs = []
            for k, src in enumerate(n.inputs):
                formula = d.local[k] if k < len(d.local) else ""
                lv = local(graph, run, n, k)
                val = f" = {num(lv)}" if lv is not None else ""
                locs.append(f"∂{wrt(n)}/∂{wrt(graph[src])}: {formula}{val}   ({names[k] if k < len(names) else ''})")
            rows.append(["local gradients", "\n".join(locs)])
            rows.append(["shapes", ", ".join(str(list(run.values[i].shape)) for i in n.inputs)
                         + f" → {list(v.shape)}"])
        else:
            rows.append([f"{n.kind} (declared)", f"{n.kind} {n.name} = {n.meta.get('expr', '')}"])
        rows.append(["value", value_text(v)])
        if _hist(info.values[n.id]):
            rows.append(["value histogram", _hist(info.values[n.id])])
        if g is not None:
            rows.append([f"gradient ∂{top}/∂{wrt(n)}", grad_text(g)])
            if _hist(info.grads[n.id]):
                rows.append(["gradient histogram", _hist(info.grads[n.id])])
        nodes[svg_key(n.id)] = {"title": n.name or n.meta.get("expr") or n.id, "rows": rows,
                       "chain": chain_text(graph, run, n.id) if g is not None else []}
    def visits():
        for src, n, k, eg in backward_walk(graph, run):
            shared = len(graph.consumers()[src]) > 1
            yield src, n.id, lambda: (f"∂{top}/∂{wrt(graph[src])} {'+' if shared else ''}= "
                                      f"{grad_text(eg, sep=' ')}   (from {wrt(n)})")
    order, steps = _stepper(visits())
    return nodes, order, steps, f"{title(graph)} — {headline(graph, run)}"


def backward_walk(graph, run):
    """(src, consumer node, argument, edge gradient) of each red edge of an expression's picture, the
    loss first, as backprop visits them: the stepper's walk (and the slides', cgviz.view.slides)."""
    from ..core.names import folded
    for n in reversed(graph.nodes):
        for k, src in enumerate(n.inputs):
            eg = run.edge_grads.get((n.id, k))
            if eg is not None and not folded(graph, src):
                yield src, n, k, eg


def _stepper(visits) -> tuple[list[str], dict[str, str]]:
    """The backward stepper's order and texts from (src, dst, text) in the order backprop visits the
    red edges; an edge drawn once for several arguments keeps its first text (made only then)."""
    order, steps = [], {}
    for src, dst, text in visits:
        key = edge_key(src, dst)
        if key not in steps:
            order.append(key)
            steps[key] = text()
    return order, steps


def _hist(t) -> str:
    """A tensor summary's histogram line: from its values (an expression's always, a model tensor's
    when small; more than 4 of them), else from the binned counts a large model tensor kept."""
    from ..core.fmt import histogram, histogram_text
    if t is None:
        return ""
    if t.values is not None:
        return histogram(t.values) if np.size(t.values) > 4 else ""
    if t.hist is not None:
        counts, lo, hi = t.hist
        return histogram_text(counts, lo, hi)
    return ""


def model_page(graph, run, pic, svg: str, title: str) -> str:
    """The page for one model picture: each drawn node's tensors, gradient norms and module facts."""
    order, steps = _model_stepper(pic)
    return page(svg, title, model_panels(graph, run, pic), order, steps, BACKWARD)


def model_panels(graph, run, pic) -> dict:
    """The panel of each drawn node of a model picture, keyed as the SVG names the node."""
    from .model_scene import count_text
    from ..plan.structure import combine
    from ..core.fmt import info_grad_text as grad_text, info_text as value_text
    from ..core.summary import first as first_output
    nodes = {}
    for dn in pic.nodes.values():
        rows = []
        if dn.kind == "module":
            f = dn.module[-1]
            params = sorted({m for m in dn.members if graph[m].kind == "param"})
            rows.append(["module", f"{f.key} ({f.cls}), {len(dn.members)} recorded nodes"])
            n_params = sum(graph[m].meta.get("numel", 0) for m in params)
            rows.append(["parameters", f"{count_text(n_params)}"])
            norms = [f"{graph[m].name}: ‖∇‖ = {run.grads[m].norm:.4g}" for m in params
                     if run.grads.get(m) is not None and run.grads[m].norm is not None]
            if norms:
                rows.append(["parameter gradient norms", "\n".join(norms)])
        elif dn.kind == "params":
            lines = []
            which = _which(pic, dn, max((len(pic.same.get(m, [m])) for m in dn.parts), default=1))
            for m in dn.parts:
                v, g = run.values.get(m), run.grads.get(m)
                g_text = f"  ‖∇‖ = {g.norm:.4g}" if g is not None and g.norm is not None else ""
                same = pic.same.get(m, [m])
                if len(same) > 1:       # the box's label: over every block; these numbers: the first's
                    every = combine([run.grads.get(x) for x in same])
                    if every is not None and every.norm is not None:
                        g_text += f"  (all {len(same)} {dn.word or 'together'}: ‖∇‖ = {every.norm:.4g})"
                lines.append(f"{graph[m].name}  {value_text(v, sep=' ')}{g_text}")
            rows.append(["parameters and buffers" + (f", {which}" if which else ""), "\n".join(lines)])
        elif dn.kind == "stub":
            n = graph[dn.id]
            into = n.meta.get("stub") == "in"
            rows.append(["boundary", f"{'enters from' if into else 'leaves to'} {n.meta['of']}, outside this module"])
            for k, src in enumerate(n.inputs):     # an out: stub's reads (an in: stub has none)
                v, g = run.edge_values.get((n.id, k)), run.edge_grads.get((n.id, k))
                rows.append([f"value from {src}", value_text(v, sep=" ")])
                if g is not None:
                    rows.append(["gradient back along it", grad_text(g, sep="  ")])
            if into:
                rows.append(["value", value_text(first_output(run.values.get(n.id)), sep=" ")])
        else:
            n = graph[dn.id] if dn.id in graph else graph[dn.members[0]]
            v, g = run.values.get(n.id), run.grads.get(n.id)
            first = first_output(v)
            rows.append([n.kind, f"{n.op or n.name or n.id}" + (f"  ×{dn.copies}" if dn.copies > 1 else "")])
            if n.meta.get("module"):
                rows.append(["module", f"{n.meta['module']} ({n.meta.get('class', '')})"])
            which = _which(pic, dn, len(dn.members))
            if which:    # the label speaks of every block or step; this panel of one
                every = combine([run.grads.get(m) for m in dn.members])
                over = (f"; the drawing's ‖∂L/∂out‖ = {every.norm:.4g} is all {len(dn.members)} {dn.word} together"
                        if every is not None and every.norm is not None and n.id != graph.output else "")
                rows.append(["numbers below", f"{which} only{over}"])
            ins = [run.edge_values.get((n.id, k)) for k in range(len(n.inputs))]
            if any(ins):
                rows.append(["inputs", "\n".join(f"{graph[i].name or i}: {value_text(t, sep=' ')}"
                                                   for i, t in zip(n.inputs, ins) if t is not None)])
            if first is not None:
                rows.append(["value", value_text(first, sep=" ")])
                if first.stats is not None:
                    rows.append(["value statistics", _stats_text(first.stats)])
                if hist := _hist(first):
                    rows.append(["value histogram", hist])
            if g is not None:
                rows.append(["gradient ∂L/∂(this)", grad_text(g, sep="  ") + (f"  (‖∇‖ = {g.norm:.4g})"
                                                                           if g.norm is not None else "")])
                if g.stats is not None:
                    rows.append(["gradient statistics", _stats_text(g.stats)])
                if hist := _hist(g):
                    rows.append(["gradient histogram", hist])
        if getattr(run, "profile", None) is not None and dn.kind in ("op", "module"):
            from .profile import cost_text
            cost = run.profile.cost(dn.members)     # a collapsed or folded node: the sum of its members
            rows.append(["profile (--profile)", f"{cost_text(cost)}  ({100 * run.profile.share(cost):.1f}% of the time)"])
        nodes[svg_key(dn.id)] = {"title": dn.id, "rows": rows, "chain": []}
    return nodes


def _which(pic, dn, n: int) -> str:
    """Which of the N blocks or steps a drawn node stands for the panel's numbers are (the first's,
    as the node's id is): `block 0 of 4 (blocks.0)`; "" when it stands for one."""
    from ..plan.structure import WORDS
    if n < 2 or not dn.word:
        return ""
    grp = next((g for rep, g in pic.groups.items() if tuple(dn.scope[:len(rep)]) == tuple(rep)), None)
    word = next((one for one, many in WORDS.values() if many == dn.word), dn.word)
    name = f" ({grp.calls[0][-1].key})" if grp is not None and grp.calls and grp.calls[0] else ""
    return f"{word} 0 of {n}{name}"


def _stats_text(st: dict) -> str:
    """mean, std, min, max and norm to 6 significant digits: the JSON's numbers, readable."""
    return "  ".join(f"{k} {st[k]:.6g}" for k in ("mean", "std", "min", "max", "norm") if st.get(k) is not None)


def _model_stepper(pic) -> tuple[list[str], dict[str, str]]:
    """The backward stepper of a model picture: the red edges from the loss back, a loop's
    step-to-step edge last (it carries the gradient on to the previous step)."""
    edges = [e for e in reversed(pic.edges) if not e.back] + [e for e in reversed(pic.edges) if e.back]
    return _stepper((e.src, e.dst, lambda e=e: f"‖∂L/∂{e.src}‖ = {e.grad.norm:.4g}   (from {e.dst})"
                     if e.grad.norm is not None else edge_key(e.src, e.dst))
                    for e in edges if e.grad is not None)


def drill_page(levels: dict, svgs: dict[str, str], title: str, opts, caption=None) -> str:
    """The drill-down page of a model (cgviz.plan.levels): the first level's SVG inline, every other
    level's in the page's data with its panels, breadcrumb, the levels its boxes and frames open,
    and, inside a ×N block, every repetition's panels and labels; plus the index search uses.
    `opts`: the model_scene.DrawOptions the levels were drawn with, to write their labels alike;
    `caption(level, name)`: the title a level's picture has, as it would name the repetition `name`
    (the module call's key), so that the caption follows the block selector too."""
    data_levels, root, found = drill_data(levels, svgs, opts, caption)
    return page(svgs[root], title, {}, [], {}, BACKWARD, levels=data_levels, root=root, found=found)


def drill_data(levels: dict, svgs: dict[str, str], opts, caption=None) -> tuple[dict, str, dict]:
    """The page data of drill_page's levels: (levels by key, the root's key, the search index); the
    recorded-run page (watch_page) puts its own bar beside them."""
    from ..plan.levels import index
    root = next(iter(levels))
    data_levels = {}
    for key, lv in levels.items():
        crumbs, up = [], lv
        while up is not None:
            crumbs.append([up.label, up.key])
            up = levels.get(up.parent) if up.parent is not None else None
        order, steps = _model_stepper(lv.pic)
        entry = {"svg": None if key == root else _clean_svg(svgs[key]), "nodes": model_panels(lv.graph, lv.run, lv.pic),
                 "order": order, "steps": steps, "crumbs": crumbs[::-1],
                 "opens": {svg_key(i): k for i, k in lv.opens.items()}}
        if lv.reps is not None:
            from .model_scene import drawn_texts
            first = (entry["nodes"], *drawn_texts(lv.graph, lv.run, lv.pic, opts))
            entry["reps"] = {"word": lv.word, "names": lv.names,
                             "norms": [None if x is None else round(x, 6) for x in lv.norms],
                             "data": [None if r is None else _repetition(lv, r, opts, first) for r in lv.reps]}
            if caption is not None:
                was = caption(lv, lv.names[0])
                for k, d in enumerate(entry["reps"]["data"]):
                    now = caption(lv, lv.names[k])
                    if d is not None and now != was:
                        d["caption"] = {was: now}
        data_levels[key] = entry
    found = {m: [lvl, svg_key(drawn), k] for m, (lvl, drawn, k) in index(levels).items()}
    return data_levels, root, found


def _repetition(lv, rep, opts, first: tuple) -> dict:
    """One repetition's panels and labels, keyed by the first repetition's drawn ids (the ids the
    one layout has), so the page can put them on it. A label's text is given as the changes from the
    first repetition's: the runs of text that differ, old → new. `first`: the first repetition's
    panels and model_scene.drawn_texts, which the level's own picture (repetition 0) reuses."""
    from .model_scene import drawn_texts
    g, r, p, ids = rep
    back = {v: u for u, v in ids.items()}
    panels, mine, edge_texts = first if p is lv.pic else (model_panels(g, r, p), *drawn_texts(g, r, p, opts))
    nodes = {svg_key(back[i]): panels[svg_key(i)] for i in p.nodes if i in back}
    was = first[1]
    labels = {}
    pairs = dict(ids)
    for a, b in ids.items():     # the frames around a node and around its twin: the same depth
        sa, sb = lv.pic.nodes[a].scope, p.nodes[b].scope
        for i in range(1, min(len(sa), len(sb)) + 1):
            pairs.setdefault(_frame(sa[:i]), _frame(sb[:i]))
    for a, b in pairs.items():
        if a in was and b in mine and len(was[a]) == len(mine[b]):
            changed = {x: y for x, y in zip(was[a], mine[b]) if x != y}
            if changed:
                labels[svg_key(a)] = changed
    texts = {edge_key(a, b): [fwd, bwd] for (a, b), (fwd, bwd) in edge_texts.items()}
    _, own_steps = _model_stepper(p)
    edges, steps = {}, {}
    for e in lv.pic.edges:       # the first repetition's edges, each with this repetition's numbers
        twin = edge_key(ids[e.src], ids[e.dst]) if e.src in ids and e.dst in ids else None
        edges[edge_key(e.src, e.dst)] = texts.get(twin, [None, None])     # None: no counterpart, no number
        if twin in own_steps:    # the backward stepper's text for this edge, in this repetition's words
            steps[edge_key(e.src, e.dst)] = own_steps[twin]
    return {"nodes": nodes, "edges": edges, "labels": labels, "steps": steps}


def _frame(scope: tuple) -> str:
    """The id Graphviz gives the frame of a module scope (model_scene writes it, levels opens it)."""
    from ..plan.structure import cluster_id
    return "cluster_" + cluster_id(scope)


# ---------------------------------------------------------------- cgviz train: a slider over the steps

def _curve(losses: list[float], frames: list[int], w: int = 220, h: int = 36):
    """A small loss curve for the bar (log scale when it spans decades) and each frame's marker spot."""
    import math
    from .plots import spans_decades
    finite = [v for v in losses if math.isfinite(v)]
    log = spans_decades(finite)
    f = (lambda v: math.log10(v)) if log else (lambda v: v)
    ys = [f(v) for v in finite] or [0.0]
    lo, hi = min(ys), max(ys)
    span = (hi - lo) or 1.0
    n = max(len(losses) - 1, 1)

    def at(k):
        v = losses[k] if k < len(losses) else losses[-1]
        y = f(v) if math.isfinite(v) and (v > 0 or not log) else hi
        return round(2 + (w - 4) * k / n, 1), round(h - 3 - (h - 6) * (y - lo) / span, 1)
    pts = " ".join(f"{x},{y}" for x, y in (at(k) for k in range(len(losses)) if math.isfinite(losses[k])))
    svg = (f'<svg id="train-curve" width="{w}" height="{h}" viewBox="0 0 {w} {h}">'
           f'<rect width="{w}" height="{h}" fill="white" stroke="#ccc"/>'
           f'<polyline points="{pts}" fill="none" stroke="{FORWARD}" stroke-width="1.5"/>'
           f'<circle id="train-marker" r="3.5" fill="{BACKWARD}"/></svg>')
    return svg, {k: at(k) for k in frames}, log


def train_page(graph, frames: list, losses: list[float], opts, render_svg) -> str:
    """The page of `cgviz train -o x.html`: the last step's graph and panel, plus a slider that
    shows any kept step's values, gradients, flags and red-edge strengths, and its spot on the loss curve.

    `frames` holds (step, Run) pairs, the last one the run the picture shows; `render_svg` lays out
    DOT text. The layout is made with each node's widest label over all kept steps, so that
    whichever step the slider shows fits inside its box."""
    from .expression_scene import label_lines, to_dot
    from .markup import lines_markup
    from ..core.names import folded, wrt
    from ..core.fmt import grad_text, num, value_text
    from ..core.fmt import norm
    from ..diagnose.health import scale_of, verdicts

    last = frames[-1][1]
    nodes, order, steps, title = _dsl_parts(graph, last)
    # one scale over every kept step, so that an edge's strength can be compared across steps
    scale = scale_of(norm(g) for _, r in frames for g in r.edge_grads.values() if g is not None)
    curve, spots, log = _curve(losses, [k for k, _ in frames])
    top = graph.loss or graph[graph.output].name or "out"
    out = []
    widest: dict[str, tuple] = {}
    for k, run in frames:
        flags = verdicts(graph, run, opts.vanish, opts.explode) if opts.grad else {}
        lines = {n.id: label_lines(n, run, graph, opts, flags) for n in graph if not folded(graph, n.id)}
        for i, ls in lines.items():
            size = (len(ls), max(len(line.head + line.text) for line in ls))
            if i not in widest or size > widest[i][0]:
                widest[i] = (size, ls)
        fe: dict[str, list] = {}
        for n in graph:
            for i, src in enumerate(n.inputs):
                if folded(graph, src):
                    continue
                shown = [] if graph[src].meta.get("literal") else value_text(run.values[src]).split("\n")
                fe.setdefault(edge_key(src, n.id), []).append({"lines": shown})
                g = run.edge_grads.get((n.id, i))
                if opts.grad and g is not None:
                    m = norm(g)
                    fe[edge_key(src, n.id)].append({"lines": grad_text(g).split("\n"), "w": round(scale.width(m), 2),
                                                    "a": round(scale.alpha(m) / 255, 3)})
        panel = {}
        for n in graph:
            if folded(graph, n.id):
                continue
            kv = {"value": value_text(run.values[n.id])}
            g = run.grads.get(n.id)
            if g is not None:
                kv[f"gradient ∂{top}/∂{wrt(n)}"] = grad_text(g)
            panel[svg_key(n.id)] = kv
        loss = float(np.sum(run.values[graph.output]))
        mx, my = spots[k]
        out.append({"step": k, "loss": f"{'loss ' if graph.loss else ''}{top} = {num(loss)}",
                    "nodes": {svg_key(i): [line.row() for line in ls] for i, ls in lines.items()},
                    "edges": fe, "panel": panel, "mx": mx, "my": my})
    svg = render_svg(to_dot(graph, last, opts, labels={i: lines_markup(ls) for i, (_, ls) in widest.items()}))
    train = {"steps": len(losses) - 1, "frames": out, "log": log}
    bar = (f'<span id="train"><b>training</b> <input type="range" id="train-step" min="0" '
           f'max="{len(out) - 1}" value="{len(out) - 1}" step="1" title="step of gradient descent">'
           f'<span id="train-info"></span>{curve}</span>')
    return page(svg, title, nodes, order, steps, BACKWARD, train=train, extra_bar=bar)
