"""The picture of an expression graph with its values and gradients, as a scene (cgviz.view.scene)
that cgviz.view.dot writes: full values on blue edges and in labels, gradients on red ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..lang.engine import Run
from ..core.fmt import grad_text, inline_values, norm, num, value_text
from ..diagnose.health import EXPLODE, FLAG_COLOR, VANISH, Scale, node_saturation, scale_of, verdicts
from ..core.ir import Graph, Node
from .dot import dot_text
from .markup import BACKWARD, STEP, Html, Line, Row, lines_markup
from .scene import Edge, Node as SceneNode, Scene
from .style import (EDGE_DEFAULTS, NODE_DEFAULTS, STYLE, forward_edge, gradient_edge, graph_attrs, legend, mark,
                    saturation_line, scale_legend)
from ..core.names import folded, title, wrt
from ..lang.ops import OPS, shape_text

# Automatic layout direction (DotOptions.rankdir None): top to bottom when the graph is much deeper
# than wide. Measured on sample_graphs/*.cg: the pictures that read well left to right have at most
# 7 ranks and at most 3.5 ranks per node of the widest rank (pizza 5/2, residual 7/2, three_layer
# 6/3; their LR pictures are 4-8 times as wide as tall); the deep ones have 13-35 ranks at 6.5-17.5
# per node (vanishing 13/2, deep_relu 19/2, deep_residual 35/2; LR pictures 10-39 times as wide as
# tall, 17948×463 px for deep_residual).
TB_MIN_RANKS = 8        # a chain shorter than this fits a screen left to right
TB_RANKS_PER_WIDTH = 5  # … and one at least this many times deeper than wide goes top to bottom


@dataclass(frozen=True)
class DotOptions:
    rankdir: str | None = None  # LR | TB, or None: auto_rankdir chooses from the graph's shape
    grad: bool = True           # draw red gradient edges and ∂ lines
    caption: str | None = None  # one more caption line (what `train` did before this picture)
    vanish: float = VANISH      # flag params with ‖g‖/‖w‖ (inputs with ‖g‖) below this …
    explode: float = EXPLODE    # … or above this (cgviz.diagnose.health)
    fold: bool = True           # draw each loop's body once in a `time_step=T` frame (cgviz.view.loop_scene)


def graph_shape(graph: Graph) -> tuple[int, int]:
    """(ranks, width) of the drawn graph as `dot` ranks it, roughly: an op one rank after its latest
    input, a leaf (input, param, const) one rank before its first reader, where dot puts it; width is
    the most nodes on one rank. Folded literals are not drawn and do not count."""
    rank: dict[str, int] = {}
    for n in graph:
        if folded(graph, n.id):
            continue
        rank[n.id] = max((rank[i] + 1 for i in n.inputs if i in rank), default=0)
    first_reader: dict[str, int] = {}
    for n in graph:
        for i in n.inputs:
            if i in rank and n.id in rank and not graph[i].inputs:
                first_reader[i] = min(first_reader.get(i, rank[n.id]), rank[n.id])
    for i, r in first_reader.items():
        rank[i] = max(r - 1, 0)
    if not rank:
        return 0, 0
    per: dict[int, int] = {}
    for r in rank.values():
        per[r] = per.get(r, 0) + 1
    return max(per) + 1, max(per.values())


def auto_rankdir(graph: Graph) -> str:
    """TB for a graph much deeper than wide (a long chain of layers), LR otherwise."""
    ranks, width = graph_shape(graph)
    return "TB" if ranks >= TB_MIN_RANKS and ranks >= TB_RANKS_PER_WIDTH * width else "LR"


def _grad_line(node: Node, g, top: str) -> str:
    if g is None:
        return ""
    if g.ndim and inline_values(g) is None:
        return f"‖∂{top}/∂{wrt(node)}‖ = {num(norm(g))}"
    return f"∂{top}/∂{wrt(node)} = {grad_text(g)}"


def _op_head(graph: Graph, node: Node) -> str:
    """The op's symbol, with folded literals in place: `^ 2`, `2 ×`, `max(0, ·)`, `Σ (axis=0)`."""
    d = OPS[node.op]
    lits = [num(graph[i].attrs["value"]) if folded(graph, i) else None for i in node.inputs]
    head = d.label
    if any(x is not None for x in lits):
        if d.infix and len(lits) == 2:
            head = f"{lits[0]} {d.label}" if lits[0] is not None else f"{d.label} {lits[1]}"
        else:
            head = f"{d.label}(" + ", ".join(x if x is not None else "·" for x in lits) + ")"
    defaults = dict(d.attrs)
    # only what differs from the op's defaults: `Σ (axis=0)`, but plain `softmax` for axis=-1
    extra = ", ".join(f"{k}={v}" for k, v in sorted(node.attrs.items())
                      if k not in defaults or v != defaults[k])
    return f"{head} ({extra})" if extra else head


def _shape_line(graph: Graph, run: Run, node: Node) -> str | None:
    """`[4×3] @ [3×4] → [4×4]`: the article's advice to annotate dimensions on every tensor op."""
    ins = [run.values[i] for i in node.inputs if not folded(graph, i)]
    out = run.values[node.id]
    if out.ndim == 0 and all(x.ndim == 0 for x in ins):
        return None   # all scalars: nothing to annotate
    if len(ins) < 2 and all(x.shape == out.shape for x in ins):
        return None   # an elementwise op on one tensor: its edges already say the shape
    d = OPS[node.op]
    joiner = f" {d.infix} " if d.infix else ", "
    return joiner.join(shape_text(x.shape) for x in ins) + " → " + shape_text(out.shape)


def label(node: Node, run: Run, graph: Graph, opts: DotOptions, flags: dict | None = None) -> Html:
    return lines_markup(label_lines(node, run, graph, opts, flags))


def label_lines(node: Node, run: Run, graph: Graph, opts: DotOptions, flags: dict | None = None) -> list[Line]:
    """A node's label as lines of data (cgviz.view.markup.Line): its op or name, value, marks and gradient."""
    v = run.values[node.id]
    rows: list[Line] = []
    if node.kind == "op":
        rows.append(Line(_op_head(graph, node), bold=True))
        shapes = _shape_line(graph, run, node)
        if shapes:
            rows.append(Line(shapes, small=True))
        if node.id == graph.output:
            name = node.name or node.id
            prefix = "loss " if graph.loss else ""
            rows.append(Line(f"{prefix}{name} = {value_text(v, sep=' ')}"))
        elif node.name:
            rows.append(Line(node.name))
    elif node.meta.get("literal"):
        rows.append(Line(value_text(v, sep=" ")))
    else:
        rows.append(Line(f" {shape_text(v.shape)}" if v.ndim else "", head=node.name))
        rows.append(Line(value_text(v, sep=" ", with_shape=False)))
    if node.id in run.nonfinite:
        rows.append(Line(f"⚠ {run.nonfinite[node.id]}", bold=True))
    rows.extend(_step_rows(node, run))
    if opts.grad:
        rows.extend(_health_rows(graph, run, node, flags or {}, opts))
    if opts.grad and not node.meta.get("literal"):
        line = _grad_line(node, run.grads.get(node.id), _top(graph))
        if line and node.id != graph.output:
            rows.append(Line(line, color=BACKWARD))
    return rows


def _health_rows(graph: Graph, run: Run, node: Node, flags: dict, opts: DotOptions) -> list[Line]:
    """A ⚠ row for a vanishing/exploding gradient; the input range and saturated share of a
    sigmoid/tanh (for one number, only once it is saturated: its edge already shows the value)."""
    rows = []
    v = flags.get(node.id)
    if v is not None and v.flag:
        rows.append(Line(f"⚠ {v.text(opts.vanish, opts.explode)}", color=FLAG_COLOR, bold=True))
    s = saturation_line(node_saturation(graph, run, node))
    if s is not None:
        rows.append(s)
    return rows


def grad_scale(run: Run) -> Scale:
    """The edge scale of one picture, fitted to the norms of the gradients on its red edges."""
    return scale_of(norm(g) for g in run.edge_grads.values() if g is not None)


def _step_rows(node: Node, run: Run) -> list[Line]:
    """`w: 0.5 → -3.5` under a param after a learning-rate step, with a mark when the step is large."""
    s = run.step
    if s is None or node.id not in s.updated:
        return []
    old, new = run.values[node.id], s.updated[node.id]
    name = node.name or node.id
    if old.ndim == 0:
        text = f"{name}: {num(old)} → {num(new)}"
    else:
        size = norm(old)
        share = f" ({norm(s.delta[node.id]) / size:.0%} of ‖{name}‖)" if size else ""
        text = f"step: ‖Δ{name}‖ = {num(norm(s.delta[node.id]))}{share}"
    rows = [Line(text, color=STEP)]
    if node.id in s.large:
        ratio = norm(s.delta[node.id]) / norm(old)
        rows.append(Line(f"⚠ the step is {num(ratio)}× its size", color=STEP, bold=True))
    return rows


def _step_caption(run: Run) -> str | None:
    s = run.step
    if s is None:
        return None
    clip = ""
    if s.clip_norm is not None:
        clip = (f", gradient clipped to norm {num(s.clip_norm)} (×{num(s.scale)})" if s.clipped
                else f", clip-norm {num(s.clip_norm)} (not reached)")
    return f"green: values after one step of gradient descent, w ← w − {num(s.lr)} · ∂L/∂w{clip}"


def _top(graph: Graph) -> str:
    return graph.loss or (graph[graph.output].name if graph.output else None) or "out"


def headline(graph: Graph, run: Run) -> str:
    """`loss L = 100`: the output and its value, as the caption and the CLI's summary say it."""
    value = value_text(run.values[graph.output], sep=" ")
    return f"{'loss ' if graph.loss else ''}{_top(graph)} = {value}"


def caption(graph: Graph, run: Run, opts: DotOptions, scale: Scale | None = None) -> tuple[Row, ...]:
    """The graph's caption: file, output value, and what the colours mean, one line each."""
    top = _top(graph)
    rows: list[Row] = [Line(f"  —  {headline(graph, run)}", head=title(graph))]
    if opts.grad:
        rows.append(legend("values", top))
        if run.seeded_with_ones:
            rows.append(Line(f"{top} is not a scalar: the gradients are those of sum({top})"))
        rows.extend(scale_legend(scale))
    step = _step_caption(run)
    if step:
        rows.append(Line(step, color=STEP))
    if opts.caption:
        rows.append(Line(opts.caption))
    return tuple(rows)


def scene(graph: Graph, run: Run, opts: DotOptions = DotOptions(), labels: dict[str, Html] | None = None) -> Scene:
    """The picture of a graph and its run. `labels`: node id → a label to draw instead of the run's
    own (the training page sizes each box for its widest step)."""
    scale = grad_scale(run) if opts.grad else None
    flags = verdicts(graph, run, opts.vanish, opts.explode) if opts.grad else {}
    if opts.fold and graph.meta.get("loops"):
        return _folded_scene(graph, run, opts, scale, flags)
    nodes = []
    for node in graph:
        if folded(graph, node.id):
            continue
        style = mark(dict(STYLE["literal" if node.meta.get("literal") else node.kind]),
                     loss=node.id == graph.output, nonfinite=node.id in run.nonfinite)
        style["label"] = labels[node.id] if labels and node.id in labels else label(node, run, graph, opts, flags)
        style["tooltip"] = _tooltip(node)
        nodes.append(SceneNode(node.id, style))
    edges = []
    for node in graph:
        for k, src in enumerate(node.inputs):
            if folded(graph, src):
                continue
            edges.extend(_edges(graph, run, opts, src, node, k, scale))
    return Scene(graph=graph_attrs(opts.rankdir or auto_rankdir(graph), nodesep="0.35", ranksep="0.6"),
                 caption=caption(graph, run, opts, scale), node=NODE_DEFAULTS, edge=EDGE_DEFAULTS,
                 items=tuple(nodes), edges=tuple(edges))


def _folded_scene(graph: Graph, run: Run, opts: DotOptions, scale, flags) -> Scene:
    """The picture with each loop drawn once, in a dashed `time_step=T` frame (cgviz.view.loop_scene)."""
    from . import loop_scene
    drawn, members = loop_scene.fold_map(graph)
    top = _top(graph)

    def head(rep: Node) -> list[Line]:
        if rep.kind == "op":
            rows = [Line(_op_head(graph, rep), bold=True)]
            shapes = _shape_line(graph, run, rep)
            return rows + ([Line(shapes, small=True)] if shapes else [])
        v = run.values[rep.id]
        return [Line(f" {shape_text(v.shape)} per step" if v.ndim else "", head=f"{rep.meta['seq']['name']}[t]")]

    nodes = []
    for node in graph:
        did = drawn[node.id]
        if folded(graph, node.id) or members[did][0] != node.id:
            continue
        style = mark(dict(STYLE["literal" if node.meta.get("literal") else node.kind]),
                     loss=node.id == graph.output, nonfinite=any(m in run.nonfinite for m in members[did]))
        if did == node.id:
            style["label"] = label(node, run, graph, opts, flags)
        else:
            style["label"] = loop_scene.node_label(graph, run, did, members[did], head, top, opts.grad)
        style["tooltip"] = _tooltip(node)
        nodes.append(SceneNode(did, style))
    edges = loop_scene.loop_edges(graph, run, drawn, opts.grad, forward_edge, gradient_edge, scale)
    return Scene(graph=graph_attrs(opts.rankdir or "LR", nodesep="0.35", ranksep="0.6"),
                 caption=caption(graph, run, opts, scale), node=NODE_DEFAULTS, edge=EDGE_DEFAULTS,
                 items=loop_scene.loop_clusters(graph, nodes, drawn), edges=edges)


def to_dot(graph: Graph, run: Run, opts: DotOptions = DotOptions(), labels: dict[str, Html] | None = None) -> str:
    """The whole DOT document (see `scene`). Same graph and run in, byte-identical text out."""
    return dot_text(scene(graph, run, opts, labels))


def _tooltip(node: Node) -> str:
    where = f"line {node.meta['line']}: " if node.meta.get("line") else ""
    if node.kind == "op":
        return f"{where}{node.meta.get('expr', node.id)}  [{OPS[node.op].formula}]"
    return f"{where}{node.kind} {node.name or ''} = {node.meta.get('expr', '')}".strip()


def _edges(graph: Graph, run: Run, opts: DotOptions, src: str, dst: Node, k: int,
           scale: Scale | None) -> list[Edge]:
    producer = graph[src]
    literal = producer.meta.get("literal")
    out = [Edge(src, dst.id, forward_edge(None if literal else value_text(run.values[src])))]
    g = run.edge_grads.get((dst.id, k))
    if opts.grad and g is not None:
        out.append(Edge(src, dst.id, gradient_edge(grad_text(g), scale, norm(g))))
    return out
