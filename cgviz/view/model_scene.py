"""The picture of a PyTorch model as a scene (cgviz.view.scene) that cgviz.view.dot writes: module
clusters, ×N folds, parameter boxes, blue edges with shape/dtype/summaries, red edges with gradients.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .dot import caption_label, dot_text
from .markup import BACKWARD, Html, Line, Row, html_text, lines_markup
from .scene import Cluster, Edge, Node, Scene
from .style import (EDGE_DEFAULTS, NODE_DEFAULTS, NONFINITE_STYLE, STYLE, forward_edge, grad_row, gradient_edge, graph_attrs, legend,
                    mark, saturation_line, scale_legend, small)
from ..core.fmt import info_grad_text, info_text, num, shape_label
from ..diagnose.health import EXPLODE, FLAG_COLOR, VANISH, Scale, node_saturation, scale_of
from ..diagnose.health import verdict as verdict_of   # `verdict` names the local result below
from ..core.ir import Graph, Scope, recursion_room
from ..plan.structure import WORDS, DEdge, DNode, Picture, cluster_id, combine
from ..core.summary import RunSummary, TensorInfo, first

MODULE_STYLE = dict(shape="box", style="filled,rounded", fillcolor="#e8f5e9", color="#2e7d32")
CLUSTER_COLORS = ("#f7f9fc", "#eef3fa", "#e6edf7", "#dde6f3")


@dataclass(frozen=True)
class DrawOptions:
    rankdir: str = "TB"
    grad: bool = True
    title: str = ""
    caveat: str = ""            # a caption line in the flag colour under the title (the fallback loss's)
    remarks: tuple[str, ...] = ()   # lines under the title: what the picture leaves out and why
    vanish: float = VANISH      # gradient-health thresholds (cgviz.diagnose.health)
    explode: float = EXPLODE
    flags: bool = True          # ⚠ vanishing/exploding rows on parameters (off for an arbitrary loss)
    compact: bool = False       # the layout budget's cheaper style: rounded boxes for ops, edge numbers
                                # in tooltips instead of labels (a label is a node more on every edge)
    labels: bool = True         # False: the scene's shape only, for cgviz.plan.budget.layout_cost: no node
                                # labels, and "·" for an edge label that would be there (DenseNet's every
                                # op: 0.25 s of numbers written only to be counted)


def _loss_line(run: RunSummary) -> str:
    """The loss node's line: `loss (ce vs targets) = 2.3`; a long tag (a function's, the model's own)
    is left to the title."""
    tag = run.meta.get("loss", "sum")
    head = f"loss ({tag})" if len(tag) <= 24 and "(" not in tag else "loss"
    return f"{head} = {num(run.loss)}" if run.loss is not None else "loss"


def count_text(n: int) -> str:
    """12.3M, 74.0k, 512."""
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def _node_label(pic: Picture, dn: DNode, graph: Graph, run: RunSummary, opts: DrawOptions) -> Html:
    rep = graph[dn.id] if dn.id in graph else graph[dn.members[0]]
    rows: list[Row] = []
    if dn.kind == "module":
        frames = dn.module
        path = frames[-1].key
        # a collapsed box can stand for a whole ×N fold or loop, or for one module inside a fold
        grp = pic.groups.get(frames)
        outer = next((g for rep, g in pic.groups.items() if g.style == "fold" and len(rep) < len(frames)
                      and frames[:len(rep)] == rep), None)
        if grp is not None and grp.style == "fold":
            rows.append(Line(f"{path} … {grp.calls[-1][-1].key}  ×{grp.n}", bold=True))
        elif grp is not None:
            rows.append(Line(f"{frames[-1].path}  time_step={grp.n}", bold=True))
        else:
            rows.append(Html(f"<B>{html_text(path)}</B>" + (f"  <B>×{outer.n}</B>" if outer else "")))
        rows.append(small(frames[-1].cls, "#2e7d32"))
        params = [graph[m] for m in dn.members if graph[m].kind == "param"]
        n_params = sum(p.meta.get("numel", 0) for p in _unique_params(params))
        blocks = grp.n if grp is not None and grp.style == "fold" else outer.n if outer else 1
        if n_params:
            rows.append(small(f"{count_text(n_params // blocks)} params" +
                              (f" each, {count_text(n_params)} in all" if blocks > 1 else "")))
        shared = _shared_reads(pic, dn, graph)
        if shared:
            rows.append(small("reads " + ", ".join(shared)))
        ins, outs = _boundary(pic, dn)
        loss = graph.output in dn.members
        if loss and not outs:
            outs = [shape_label(getattr(first(run.values.get(graph.output)), "shape", ()))]
        if ins or outs:
            rows.append(small(shapes_text(ins, "input shapes") + " → " + shapes_text(outs, "output shapes")))
        if loss:        # a collapsed loss box (or a module that computes it) says its value, as the loss op does
            rows.append(Line(_loss_line(run)))
        if opts.grad:
            g = _norm_of(run, [p.id for p in _unique_params(params)])
            if g is not None:
                rows.append(grad_row(f"‖∇θ‖ = {num(g)}" + (f" (all {blocks} blocks)" if blocks > 1 else "")))
            if grp is not None and any(x is not None for x in grp.grad_norms):
                what = "per step" if grp.style == "loop" else "per block"
                rows.append(grad_row(f"‖∇θ‖ {what}: " + ", ".join(num(x) if x is not None else "–"
                                                                     for x in grp.grad_norms)))
        return lines_markup(rows)
    if dn.kind == "params":
        return _params_label(pic, dn, graph, run, opts)
    v = first(run.values.get(rep.id))
    if rep.kind == "stub":
        return _stub_label(rep, v)
    if rep.kind == "op":
        head = rep.op + (f"  ×{dn.copies}" if dn.copies > 1 else "")
        rows.append(Line(head, bold=True))
        in_shapes = [shape_label(run.edge_values[(rep.id, k)].shape) for k in range(len(rep.inputs))
                     if run.edge_values.get((rep.id, k)) is not None
                     and graph[rep.inputs[k]].kind not in ("param", "const")]
        outs = run.values.get(rep.id)
        out_shapes = [shape_label(x.shape) for x in (outs if isinstance(outs, list) else [outs]) if x is not None]
        if in_shapes and (len(in_shapes) > 1 or in_shapes[0] != out_shapes[0]):
            rows.append(small(shapes_text(in_shapes, "inputs") + " → " + shapes_text(out_shapes, "outputs")))
        elif not in_shapes and out_shapes:
            rows.append(small("→ " + shapes_text(out_shapes, "outputs")))
        if rep.id == graph.output:
            rows.append(Line(_loss_line(run)))
        if opts.grad and rep.id != graph.output:
            g, note = _over(run, dn)
            if _frame_says(pic, dn):
                note = ""           # the ×N frame's caption says it once for everything inside
            if g is not None and g.norm is not None:
                rows.append(grad_row(f"‖∂L/∂out‖ = {num(g.norm)}{note}"))
        s = saturation_line(node_saturation(graph, run, rep)) if opts.grad else None
        if s is not None:
            rows.append(s)
        return lines_markup(rows)
    name = rep.name or rep.id
    n = len(dn.members)
    rows.append(Html(f"<B>{html_text(name)}</B> {html_text(shape_label(v.shape) if v is not None else '')}"
                     + (f"  <B>×{n}</B>" if n > 1 else "")))     # block 1's weight standing for every block's
    if n > 1:
        v = combine([first(run.values.get(m)) for m in dn.members])
    if v is not None:
        rows.append(small(info_text(v, dtype=rep.kind == "input" or not v.dtype.startswith("float32")).split("\n")[-1]))
    if opts.grad:
        g, note = _over(run, dn)
        if _frame_says(pic, dn):
            note = ""
        if g is not None and g.norm is not None:
            rows.append(grad_row(f"‖∇‖ = {num(g.norm)}{note}"))
    return lines_markup(rows)


def frame_of(pic: Picture, scope: tuple):
    """The innermost ×N fold or loop whose frame holds a drawn node of this scope, or None."""
    best = None
    for rep, grp in pic.groups.items():
        if len(scope) >= len(rep) and scope[:len(rep)] == rep and (best is None or len(rep) > len(best[0])):
            best = (rep, grp)
    return best


def _frame_says(pic: Picture, dn: DNode) -> bool:
    """A node drawn inside a ×N frame and standing for its N repetitions: the frame's caption says
    so once (every number inside is over all N), so its own label need not."""
    if dn.kind in ("param", "const", "params", "module", "stub") or len(dn.members) < 2:
        return False
    found = frame_of(pic, tuple(dn.scope))
    return found is not None and found[1].n == len(dn.members)


def _edge_in_frame(pic: Picture, e: DEdge) -> bool:
    """An edge between two nodes inside the frame of the fold or loop whose N repetitions it pools."""
    if e.over is None:
        return False
    a, b = pic.nodes[e.src], pic.nodes[e.dst]
    if any(x.kind in ("param", "const", "params") for x in (a, b)):
        return False        # parameter boxes are drawn outside the frames
    n = len(e.over)
    return tuple(a.scope)[:n] == e.over and tuple(b.scope)[:n] == e.over


def _shared_reads(pic: Picture, dn: DNode, graph: Graph) -> list[str]:
    """The parameters a collapsed module reads that are drawn outside it because other boxes read
    them too (T5's lm_head reads the tied shared.weight): its parameters, though not its own."""
    out = []
    for e in _edge_ends(pic)[0].get(dn.id, ()):        # its in-edges only: once per box over every edge was quadratic
        src = pic.nodes[e.src]
        if src.kind == "param" and not e.back:
            name = graph[src.id].name or src.id
            if name not in out:
                out.append(name)
    return out


def _stub_label(rep, v) -> Html:
    """A boundary stub of a focused module: where the tensor comes from or goes to outside. Its
    numbers are on its edges, which are the full graph's."""
    into = rep.meta.get("stub") == "in"
    return lines_markup([Line(("from " if into else "to ") + rep.meta["of"], bold=True),
                         small(f"outside: {shape_label(v.shape)}" if into and v is not None else "outside")])


def _over(run: RunSummary, dn: DNode, ids: list[str] | None = None) -> tuple[TensorInfo | None, str]:
    """The gradient a drawn node shows: its one recorded node's, or, when it stands for N steps,
    blocks or copies, all of theirs together (√Σ‖gᵢ‖²) and a note that says over what."""
    ids = dn.members if ids is None else ids
    if len(ids) < 2:
        return run.grads.get(ids[0]) if ids else None, ""
    g = combine([run.grads.get(m) for m in ids])
    return g, f" (all {len(ids)}{' ' + dn.word if dn.word else ''})"


def _params_label(pic: Picture, dn: DNode, graph: Graph, run: RunSummary, opts: DrawOptions) -> Html:
    """One box for a module's tensors: its path, then a row per parameter or buffer."""
    owner = dn.id.rpartition("/")[0]
    rows = [f'<TR><TD COLSPAN="3" ALIGN="LEFT"><B>{html_text(owner)}</B></TD></TR>']
    for m in dn.parts:
        n = graph[m]
        same = pic.same.get(m, [m])
        v = combine([first(run.values.get(x)) for x in same])
        g, note = _over(run, dn, same)
        short = (n.name or m)[len(owner) + 1:] + (f" ×{len(same)}" if len(same) > 1 else "")
        grey = ' COLOR="#757575"' if n.kind == "const" else ""
        stats = info_text(v, dtype=False).split("\n")[-1] if v is not None and v.stats is not None else ""
        grad = (f'<FONT COLOR="{BACKWARD}">‖∇‖ = {num(g.norm)}{html_text(note)}</FONT>'
                if opts.grad and g is not None and g.norm is not None else "")
        rows.append(f'<TR><TD ALIGN="LEFT"><FONT{grey}>{html_text(short)} {html_text(shape_label(v.shape) if v else "")}</FONT></TD>'
                    # no FONT around nothing: Graphviz 2.43 calls an empty one a syntax error (--meta has no stats)
                    f'<TD ALIGN="LEFT">{f"""<FONT POINT-SIZE="9" COLOR="#555555">{html_text(stats)}</FONT>""" if stats else ""}</TD>'
                    f'<TD ALIGN="LEFT">{grad}</TD></TR>')
        flag = _flag_text(graph, run, same, opts) if opts.grad and opts.flags and n.kind == "param" else ""
        if flag:
            rows.append(f'<TR><TD COLSPAN="3" ALIGN="LEFT"><FONT COLOR="{FLAG_COLOR}" POINT-SIZE="10"><B>⚠ '
                        f'{html_text(flag)}</B></FONT></TD></TR>')
    return Html('<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="1">' + "".join(rows) + "</TABLE>")


def _flag_text(graph: Graph, run: RunSummary, same: list[str], opts: DrawOptions) -> str:
    """The ⚠ row of a parameter box. A folded parameter stands for one tensor per block, and each block
    is judged: the row names the worst flagged one and how many blocks are flagged, so a layer that
    stops learning deep in the stack is not hidden behind block 1's healthy numbers."""
    found = [v for v in (verdict_of(graph, run, m, opts.vanish, opts.explode) for m in same)
             if v is not None and v.flag]
    if not found:
        return ""
    # the worst: furthest past its threshold, in decades
    worst = max(found, key=lambda v: abs(math.log10(v.measure / (opts.vanish if v.flag == "vanishing"
                                                                   else opts.explode)))
                if v.measure > 0 else math.inf)
    text = worst.text(opts.vanish, opts.explode)
    if len(same) > 1:
        text += f" ({worst.name}; {len(found)} of {len(same)} blocks flagged)"
    return text


def edge_scale(pic: Picture) -> Scale:
    """The red-edge scale of one model picture, fitted to the gradients on its drawn edges."""
    return scale_of(e.grad.norm for e in pic.edges if e.grad is not None)


def _has_nan(v) -> bool:
    return any(t is not None and t.has_nan for t in (v if isinstance(v, list) else [v]))


def _not_finite(g) -> bool:
    return g is not None and g.nonfinite


def _unique_params(params):
    seen, out = set(), []
    for p in params:
        if p.name not in seen:
            seen.add(p.name)
            out.append(p)
    return out


def _norm_of(run: RunSummary, ids) -> float | None:
    total, any_ = 0.0, False
    for i in ids:
        g = run.grads.get(i)
        if g is not None and g.norm is not None:
            total += g.norm ** 2
            any_ = True
    return math.sqrt(total) if any_ else None


# Up to this many shapes are listed one by one in a label; more are summarised (shapes_text)
LISTED_SHAPES = 4


def shapes_text(shapes: list[str], what: str = "inputs") -> str:
    """`[4], [8]`, or, past LISTED_SHAPES, a summary that does not grow with their number:
    `10,000 inputs of [4]`, `5 inputs: 4 of [4], 1 of [8]` (a `stack` of 10,000 tensors made a
    label too long for Graphviz)."""
    if len(shapes) <= LISTED_SHAPES:
        return ", ".join(shapes)
    counts = dict.fromkeys(shapes, 0)
    for x in shapes:
        counts[x] += 1
    if len(counts) == 1:
        return f"{len(shapes):,} {what} of {shapes[0]}"
    kinds = list(counts.items())
    shown = ", ".join(f"{n:,} of {x}" for x, n in kinds[:3])
    more = f", {len(kinds) - 3:,} more shapes" if len(kinds) > 3 else ""
    return f"{len(shapes):,} {what}: {shown}{more}"


def _boundary(pic: Picture, dn: DNode) -> tuple[list[str], list[str]]:
    ins_of, outs_of = _edge_ends(pic)
    ins = [shape_label(e.value.shape) for e in ins_of.get(dn.id, ()) if e.value is not None
           and pic.nodes[e.src].kind not in ("param", "const")]
    outs = [shape_label(e.value.shape) for e in outs_of.get(dn.id, ()) if e.value is not None]
    return list(dict.fromkeys(ins)), list(dict.fromkeys(outs))


def _edge_ends(pic: Picture) -> tuple[dict[str, list[DEdge]], dict[str, list[DEdge]]]:
    """The picture's edges by destination and by source, made once per picture: scanning every edge
    for every box was quadratic (10,000 sibling modules at depth 1 took minutes)."""
    cached = getattr(pic, "_edge_ends", None)
    if cached is not None and cached[0] is pic.edges and cached[1] == len(pic.edges):
        return cached[2]
    ins: dict[str, list[DEdge]] = {}
    outs: dict[str, list[DEdge]] = {}
    for e in pic.edges:
        ins.setdefault(e.dst, []).append(e)
        outs.setdefault(e.src, []).append(e)
    pic._edge_ends = (pic.edges, len(pic.edges), (ins, outs))
    return ins, outs


def _cluster_tree(pic: Picture) -> dict[tuple, list[str]]:
    """Cluster (scope prefix) → drawn nodes directly inside it.

    Parameter and buffer boxes stay outside the frames: inside, every frame holds boxes that have
    no inputs, and Graphviz then sets consecutive frames side by side in a staircase (ResNet-50's
    PNG was 8,400 pt wide instead of 3,600). Their qualified names say which module they belong to."""
    direct: dict[tuple, list[str]] = {}
    top = Scope()
    for dn in pic.nodes.values():
        scope = top if dn.kind in ("param", "const", "params") else Scope.of(dn.scope)
        direct.setdefault(scope, []).append(dn.id)
    return direct


def _cluster_caption(pic: Picture, scope: tuple, run: RunSummary, opts: DrawOptions,
                     numbers: bool = True) -> tuple[Row, ...]:
    f = scope[-1]
    grp = pic.groups.get(scope)
    rows: list[Row] = [Line(f"  {f.cls}", head=f.key)]
    if grp is not None and grp.style == "fold":
        last = grp.calls[-1][-1].key
        rows = [Html(f"<B>{html_text(f.key)} … {html_text(last)}</B>  {html_text(f.cls)}  <B>×{grp.n}</B>")]
    elif grp is not None:
        rows = [Html(f"<B>{html_text(f.path)}</B>  {html_text(f.cls)}  <B>time_step={grp.n}</B>")]
    if grp is not None and numbers:
        # every number inside stands for all N repetitions (structure._aggregate, _over): said once
        # here instead of "(all N blocks)" on every edge and node
        many = WORDS[grp.style][1]
        grads = f"; ‖g‖ = √Σ over the {many}" if opts.grad else ""
        rows.append(small(f"numbers inside: all {grp.n} {many} together (μ, σ pooled{grads})", "#6a1b9a"))
    if grp is not None and opts.grad:
        norms = ", ".join(num(g) if g is not None else "–" for g in grp.grad_norms)
        if any(g is not None for g in grp.grad_norms):
            what = "per step" if grp.style == "loop" else "per block"
            rows.append(grad_row(f"‖∇θ‖ {what}: {norms}"))
    if grp is not None and run.profile is not None:
        from .profile import cluster_row
        rows.append(small(cluster_row(run.profile, pic, scope), "#5d4037"))
    return tuple(rows)


def scene(graph: Graph, run: RunSummary, pic: Picture, opts: DrawOptions = DrawOptions()) -> Scene:
    """The scene of a model picture; same inputs, same scene."""
    caption: list[Row] = [Line(opts.title, bold=True)]
    if opts.caveat:
        caption.append(small(f"⚠ {opts.caveat}", FLAG_COLOR))
    caption.extend(small(r, "#6a1b9a") for r in opts.remarks)
    scale = edge_scale(pic) if opts.grad else None
    if opts.grad:
        caption.append(legend("tensors", "L"))
        caption.extend(scale_legend(scale))
    if run.profile is not None:
        from .profile import legend as profile_legend
        caption.append(Html(profile_legend(run.profile)))
    if opts.compact:
        caption.append(small("edge labels left out to keep the layout fast: hover an edge in the SVG or "
                              "HTML for its numbers; the JSON has them all"))
    direct = _cluster_tree(pic)
    # which clusters have enough inside them to be worth a frame
    total: dict[tuple, int] = {}
    for scope, ids in direct.items():
        for s in scope.prefixes():
            total[s] = total.get(s, 0) + len(ids)
    order = sorted(set(total) | {Scope()}, key=lambda s: (len(s), [f.key for f in s]))
    # each scope's child scopes in `order`, and the scopes with a drawn node somewhere below them:
    # asked of every scope, the two questions were a scan of all scopes each (DenseNet's every-op
    # picture spent a tenth of a second in them)
    children: dict[tuple, list[tuple]] = {}
    for c in order:
        if c:
            children.setdefault(c.parent, []).append(c)
    above: set[tuple] = set()
    for c in direct:
        if c:
            above.add(())
            above.update(c.prefixes()[:-1])

    def single_op(child: tuple) -> str | None:
        """A leaf module that ran one op (Conv2d → conv2d): its frame would only add a box around
        the op and its weights, so the op's label names the module instead."""
        if child in pic.groups or child in above:
            return None
        ops = [n for n in direct.get(child, []) if pic.nodes[n].kind in ("op", "module")]
        return ops[0] if len(ops) == 1 else None

    def items(scope: tuple, caption: dict | None = None) -> list[Node | Cluster]:
        out: list[Node | Cluster] = [_node(graph, run, pic, pic.nodes[nid], opts, (caption or {}).get(nid), nid in main)
                                     for nid in direct.get(scope, [])]
        for child in children.get(scope, ()):
            lone = single_op(child)
            if lone is not None:
                out.extend(items(child, {lone: child[-1]}))
            elif not direct.get(child) and child not in pic.groups:
                # a pure container (Sequential, ModuleList): a frame around frames only adds width
                out.extend(items(child))
            elif total.get(child, 0) >= 2 or child in pic.groups:
                grp = pic.groups.get(child)
                style = {"style": "rounded,dashed" if grp and grp.style == "loop" else "rounded,filled",
                         "fillcolor": CLUSTER_COLORS[min(len(child) - 1, len(CLUSTER_COLORS) - 1)],
                         "color": "#7b1fa2" if grp else "#90a4ae",
                         "penwidth": "1.8" if grp else "1", "labeljust": "l", "fontsize": "10"}
                out.append(Cluster(cluster_id(child), style, tuple(items(child)),
                                   _cluster_caption(pic, child, run, opts, numbers)))
            else:
                out.extend(items(child))
        return out

    main = set(main_path(pic))
    numbers = bool(pic.groups) and any(e.value is not None and e.value.stats is not None for e in pic.edges)
    with recursion_room(max((len(c) for c in order), default=0)):
        drawn = tuple(items(Scope()))
    return Scene(graph=graph_attrs(opts.rankdir, nodesep="0.3", ranksep="0.3", newrank="true"),
                 caption=tuple(caption), node=NODE_DEFAULTS, edge=EDGE_DEFAULTS,
                 items=drawn,
                 edges=tuple(x for e in pic.edges for x in _edges(e, opts, scale, _edge_in_frame(pic, e))),
                 same_rank=beside_their_op(pic))


def beside_their_op(pic: Picture) -> tuple[tuple[str, str], ...]:
    """Each parameter box on the rank of the op it feeds. Left to itself, Graphviz puts a box one rank
    above its op, outside the module frames, where it pushes the next frame aside: at every op,
    ResNet-50's block frames drifted right one after another (3,251 pt wide for 957 pt of content,
    EfficientNet-B0 9,103 pt, Inception 7,142), and beside its op the frames stack in one column
    (1,582, 2,743 and 3,133 pt). Only a box whose one edge is unlabelled (a leaf edge) is paired: a
    flat edge with a label is what Graphviz lays out worst."""
    pairs: dict[str, str] = {}
    for e in pic.edges:
        if e.leaf and not e.back and e.src != e.dst and pic.nodes[e.src].kind in ("param", "params"):
            pairs.setdefault(e.src, e.dst)
    return tuple(pairs.items())


def to_dot(graph: Graph, run: RunSummary, pic: Picture, opts: DrawOptions = DrawOptions()) -> str:
    """The DOT document of a model picture (see `scene`); same inputs, byte-identical text."""
    return dot_text(scene(graph, run, pic, opts))


def main_path(pic: Picture) -> list[str]:
    """The drawn nodes on the longest chain of the picture (the main path: a ResNet's convolutions,
    not its skip connections), which the scene keeps in one column with Graphviz's `group`: without it
    each block's frame starts beside the previous one's skip edge and the frames drift into a
    diagonal staircase."""
    skip = {n for n, dn in pic.nodes.items() if dn.kind in ("param", "const", "params")}
    succ: dict[str, list[str]] = {}
    indeg = {n: 0 for n in pic.nodes if n not in skip}
    for e in pic.edges:
        if e.back or e.src == e.dst or e.src in skip or e.dst in skip:
            continue
        succ.setdefault(e.src, []).append(e.dst)
        indeg[e.dst] += 1
    best: dict[str, tuple[int, str | None]] = {n: (0, None) for n in indeg}
    todo = [n for n, k in indeg.items() if k == 0]
    order = []
    while todo:
        a = todo.pop()
        order.append(a)
        for b in succ.get(a, ()):
            if best[a][0] + 1 > best[b][0]:
                best[b] = (best[a][0] + 1, a)
            indeg[b] -= 1
            if indeg[b] == 0:
                todo.append(b)
    if not order:
        return []
    end = max(order, key=lambda n: (best[n][0], n))
    path: list[str] = []
    on_path: set[str] = set()       # a set: `end not in path` made a 40,000-op chain quadratic (12 s)
    while end is not None and end not in on_path:
        path.append(end)
        on_path.add(end)
        end = best[end][1]
    return path[::-1] if len(path) > 2 else []


def _node(graph: Graph, run: RunSummary, pic: Picture, dn: DNode, opts: DrawOptions, frame=None,
          main: bool = False) -> Node:
    if not opts.labels:
        return Node(dn.id)
    kind = "param" if dn.kind == "params" else dn.kind
    style = dict(MODULE_STYLE if kind == "module" else STYLE.get(kind, STYLE["op"]))
    if opts.compact and kind == "op":
        style.update(shape="box", style="filled,rounded")   # an ellipse costs dot far more to route around
    prof = run.profile if dn.kind in ("op", "module") else None
    if prof is not None:     # --profile: shaded by share of the time (a NaN's orange still wins below)
        from .profile import cost_text, fill
        cost = prof.cost(dn.members)
        style["fillcolor"] = fill(prof.share(cost))
    # NaN is never meant (an attention mask's -inf is), nor is an infinite gradient; where a NaN or an
    # infinity is born is marked too
    born = [run.born[m] for m in dn.members if m in run.born] if run.born else []
    mark(style, loss=graph.output in dn.members,
         nonfinite=bool(born) or any(_has_nan(run.values.get(m)) or _not_finite(run.grads.get(m)) for m in dn.members))
    style["label"] = _node_label(pic, dn, graph, run, opts)
    if born and opts.labels:
        line = born[0] if dn.kind == "op" else born[0].replace(" born here", " born inside", 1)
        style["label"] = lines_markup([style["label"], Line(line, color=NONFINITE_STYLE["color"], bold=True,
                                                            small=True)])
    if main:
        style["group"] = "main"
    if prof is not None:
        style["label"] = lines_markup([style["label"], small(cost_text(cost), "#5d4037")])
    if frame is not None and dn.kind == "op":
        style["label"] = lines_markup([small(f"{frame.key} · {frame.cls}", "#455a64"), style["label"]])
    if dn.kind == "params":
        style["tooltip"] = f"parameters and buffers of {dn.id.rpartition('/')[0]}"
    elif dn.kind == "module":
        style["tooltip"] = f"{dn.module[-1].key} {dn.module[-1].cls}: {len(dn.members)} recorded nodes"
    else:
        rep = graph[dn.id] if dn.id in graph else graph[dn.members[0]]
        style["tooltip"] = " ".join(x for x in (rep.meta.get("module") or "", rep.op or rep.kind, rep.id) if x)
        if rep.meta.get("custom_function"):     # what the one node stands for (docs/model-labels.md)
            style["tooltip"] += f": {function_words(rep.meta)}"
    return Node(dn.id, style)


def function_words(meta: dict) -> str:
    """`custom autograd.Function STE (model.py:12); its forward ran round under no_grad`."""
    where = f" ({meta['defined']})" if meta.get("defined") else ""
    inner = ", ".join(meta.get("forward_ops") or ())
    ran = f"; its forward ran {inner} under no_grad (not drawn, no gradient there)" if inner else ""
    return f"custom autograd.Function {meta['custom_function']}{where}{ran}"


def drawn_texts(graph: Graph, run: RunSummary, pic: Picture,
                opts: DrawOptions) -> tuple[dict[str, list[str]], dict[tuple[str, str], tuple[list[str], list[str]]]]:
    """What the page compares to show another repetition's numbers on one layout, from one scene:
    each drawn node's label as the runs of text Graphviz writes for it (one SVG <text> each), in
    order (and each frame's caption, under the frame's id in the SVG, `cluster_<id>`), and each
    drawn edge's label lines, forward and gradient."""
    import html
    import re
    drawn = scene(graph, run, pic, opts)
    nodes: dict[str, list[str]] = {}

    def walk(items) -> None:
        # the labels as drawn, so that a module's name on its lone op ("blocks.5.attn.qkv · Linear")
        # and --profile's line are there too, not only _node_label's rows
        for it in items:
            if isinstance(it, Cluster):
                if it.caption:      # a frame's caption, under the id Graphviz gives the frame
                    nodes["cluster_" + it.id] = runs(caption_label(it.caption).markup)
                walk(it.items)
            elif isinstance(it.attrs.get("label"), Html):
                nodes[it.id] = runs(it.attrs["label"].markup)

    def runs(markup: str) -> list[str]:
        return [t for t in (html.unescape(x).strip() for x in re.split(r"<[^>]*>", markup)) if t]
    walk(drawn.items)

    def lines(d: Edge) -> list[str]:
        return str(d.attrs["label"]).split("\n") if d.attrs.get("label") else []
    edges: dict[tuple[str, str], tuple[list[str], list[str]]] = {}
    for d in drawn.edges:       # _edges: each drawn edge's blue edge, then its red one (dir=back), if any
        key = (d.src, d.dst)
        edges[key] = (edges[key][0], lines(d)) if d.attrs.get("dir") == "back" else (lines(d), [])
    return nodes, edges


def _edge_text(text_of, info: TensorInfo | None, opts: DrawOptions) -> str:
    """An edge's numbers (fmt.info_text or info_grad_text); without labels only whether there are any:
    info_text writes "" only without a summary, info_grad_text also without statistics (--meta)."""
    if opts.labels:
        return text_of(info, sep=" ")
    there = info is not None and (text_of is info_text or info.stats is not None)
    return "·" if there else ""


def _edges(e: DEdge, opts: DrawOptions, scale: Scale | None = None, framed: bool = False) -> list[Edge]:
    """The blue edge and the red one of a drawn edge. `framed`: it lies inside the ×N frame whose
    caption says that every number inside is over all N, so its own note is left out."""
    fwd = forward_edge()
    # A parameter's edge would repeat what its box says; unlabelled, it keeps big models compact.
    # One line per label: a second line makes every rank taller (ResNet-50: 0.8 s less rasterising).
    # An edge carrying several of a box's tensors names them: their statistics pooled would be
    # labelled with the first one's shape (an LSTM cell's [64×8]) and mean nothing.
    pooled = len(e.parts) > 1
    text = "" if e.leaf else ", ".join(e.parts) if pooled and opts.labels else _edge_text(info_text, e.value, opts)
    shapes = (len(e.shapes) > 1 and opts.labels and e.value is not None
              and text.startswith(shape_label(e.value.shape)))
    if shapes:      # tensors of several shapes as one edge (an FPN's feature maps): all their shapes
        named = [shape_label(x) for x in e.shapes]
        text = (", ".join(named) if len(named) < 3 else f"{named[0]} … {named[-1]}") + \
            text[len(shape_label(e.value.shape)):]
    if e.count > 1:
        text += f"\n×{e.count}" + (", pooled" if shapes else "")
    if e.per_step > 1:
        text += f" ({e.per_step} tensors each)"
    if text:
        fwd["label"] = text
    if e.back:
        fwd.update(style="dashed", constraint="false", label=(text + "\nnext step").strip())
        if e.src == e.dst:
            fwd["dir"] = "forward"       # a one-op body (LSTMCell): the step-to-step edge is a self-loop
    if opts.compact and "label" in fwd:
        fwd["tooltip"] = fwd.pop("label")
    out = [Edge(e.src, e.dst, fwd)]
    g = "" if e.leaf else _edge_text(info_grad_text, e.grad, opts)
    if g and pooled and opts.labels and e.grad.norm is not None:
        g = f"‖g‖={num(e.grad.norm)}"      # a mean over different tensors means nothing
    if g and e.note and not framed:
        g += f" ({e.note})"          # the sum over the steps or blocks the edge stands for, or which one
    if opts.grad and (g or (e.leaf and e.grad is not None)):
        bwd = gradient_edge(g or None, scale, e.grad.norm if e.grad is not None else None)
        if e.back:
            bwd["constraint"] = "false"
        if opts.compact and "label" in bwd:
            bwd["tooltip"] = bwd.pop("label")
        out.append(Edge(e.src, e.dst, bwd))
    return out
