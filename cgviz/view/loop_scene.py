"""The picture of an expression program with loops, folded: each loop's body drawn once inside a dashed
frame labelled `time_step=T`, its edges carrying every step's value and gradient norm (the lesson's
rule: don't unroll 20 time steps into 20 copies). `--no-fold` draws the unrolled graph instead."""

from __future__ import annotations

from ..core.fmt import norm, num, value_text
from ..core.ir import Graph, Node
from ..lang.engine import Run
from ..lang.ops import shape_text
from ..core.names import folded
from .markup import BACKWARD, Line, lines_markup
from .scene import Cluster, Edge, Node as SceneNode

PER_LINE = 5          # numbers per label line: a 20-step loop's edge reads as four short lines
LOOP_STYLE = {"style": "rounded,dashed", "color": "#7b1fa2", "penwidth": "1.8", "labeljust": "l",
              "fontsize": "10", "fillcolor": "#f7f9fc"}


def template(node: Node) -> str | None:
    """The drawn id of a node made by a loop or a sequence: `h@3/mul` → `h@t/mul`, `x@3` → `x[t]`."""
    loop = node.meta.get("loop")
    if loop is not None:
        head = f"{loop['name']}@{loop['step']}"
        return f"{loop['name']}@{loop['var']}{node.id[len(head):]}"
    seq = node.meta.get("seq")
    if seq is not None:
        return f"{seq['name']}[t]"
    return None


def fold_map(graph: Graph) -> tuple[dict[str, str], dict[str, list[str]]]:
    """node id → drawn id, and drawn id → its members in step order (a node outside loops is its own)."""
    drawn: dict[str, str] = {}
    members: dict[str, list[str]] = {}
    for n in graph:
        d = template(n) or n.id
        drawn[n.id] = d
        members.setdefault(d, []).append(n.id)
    return drawn, members


def per_step(values: list[str]) -> str:
    """`a, b, c, d, e,\\nf, …`: a list of per-step numbers broken into lines of PER_LINE."""
    rows = [", ".join(values[i:i + PER_LINE]) for i in range(0, len(values), PER_LINE)]
    return ",\n".join(rows)


def _values_text(arrays) -> str:
    if all(a.size == 1 for a in arrays):
        return per_step([num(a.reshape(())) for a in arrays])
    return f"{shape_text(arrays[0].shape)}, ‖v‖ per step:\n" + per_step([num(norm(a)) for a in arrays])


def grad_norms(run: Run, ids) -> list[float | None]:
    return [None if run.grads.get(i) is None else norm(run.grads[i]) for i in ids]


def _norms_text(norms: list[float | None]) -> str:
    return per_step([num(g) if g is not None else "–" for g in norms])


def node_label(graph: Graph, run: Run, did: str, ids: list[str], head_lines, top: str, grad: bool):
    """A folded node's label: what one step's node says (its op or name), then per step its values and
    ‖∂top/∂node‖, so that the gradient fading over time shows on the state."""
    rep = graph[ids[0]]
    rows = list(head_lines(rep))
    name = rep.meta["loop"]["name"] if rep.meta.get("loop") else rep.meta["seq"]["name"]
    is_state = rep.kind != "op" or rep.name is not None
    if is_state:
        what = f"{name}[t]" if rep.kind != "op" else name
        rows.append(Line(f"{what}, t = 1..{len(ids)}:" if rep.kind != "op" else f"{what} per step:", small=True))
        rows.append(Line(_values_text([run.values[i] for i in ids]), small=True))
        if grad:
            norms = grad_norms(run, ids)
            if any(g is not None for g in norms):
                rows.append(Line(f"‖∂{top}/∂{name}‖ per step:", color=BACKWARD, small=True))
                rows.append(Line(_norms_text(norms), color=BACKWARD, small=True))
    return lines_markup(rows)


def loop_clusters(graph: Graph, items: list[SceneNode], drawn: dict[str, str]) -> tuple:
    """The scene's items with each loop's body nodes moved into its dashed `time_step=T` frame."""
    frames = {}
    for loop in graph.meta.get("loops", ()):
        frames[loop["line"]] = loop
    inside: dict[int, list[SceneNode]] = {line: [] for line in frames}
    where: dict[str, int] = {}
    for n in graph:
        if n.meta.get("loop"):
            where[drawn[n.id]] = n.meta["loop"]["line"]
    out: list = []
    placed: dict[int, int] = {}
    for item in items:
        line = where.get(item.id)
        if line is None:
            out.append(item)
            continue
        if line not in placed:
            placed[line] = len(out)
            out.append(None)
        inside[line].append(item)
    for line, index in placed.items():
        loop = frames[line]
        steps = loop["last"] - loop["first"] + 1
        caption = (Line(f"time_step={steps}", bold=True),
                   Line(f"for {loop['var']} in {loop['first']}..{loop['last']} (line {line}); "
                        "numbers are per step", small=True))
        out[index] = Cluster(f"loop_{line}", dict(LOOP_STYLE), tuple(inside[line]), caption)
    return tuple(out)


def loop_edges(graph: Graph, run: Run, drawn: dict[str, str], grad: bool, forward_edge, gradient_edge,
               scale) -> tuple[Edge, ...]:
    """One blue and one red edge per edge of the folded graph: its values and its gradient norms at
    every step it stands for; the step-to-step edge (h@t-1 → h@t) dashed and labelled `next step`."""
    groups: dict[tuple[str, str, int], list[tuple[str, str, int]]] = {}
    back: set[tuple[str, str, int]] = set()
    for n in graph:
        for k, src in enumerate(n.inputs):
            if folded(graph, src):
                continue
            key = (drawn[src], drawn[n.id], k)
            groups.setdefault(key, []).append((src, n.id, k))
            s, d = graph[src].meta.get("loop"), n.meta.get("loop")
            if s and d and s["line"] == d["line"] and s["step"] != d["step"]:
                back.add(key)
    out = []
    for key, edges in groups.items():
        src, dst, _ = key
        literal = graph[edges[0][0]].meta.get("literal")
        values = [run.values[e[0]] for e in edges]
        same = len({e[0] for e in edges}) == 1        # a value read at every step (W): said once
        text = None if literal else (value_text(values[0]) if same else _values_text(values))
        fwd = forward_edge(text)
        if key in back:
            fwd.update(style="dashed", constraint="false", label=((text or "") + "\nnext step").strip())
            if src == dst:
                fwd["dir"] = "forward"
        out.append(Edge(src, dst, fwd))
        gs = [run.edge_grads.get((e[1], e[2])) for e in edges]
        if grad and any(g is not None for g in gs):
            norms = [None if g is None else norm(g) for g in gs]
            if len(edges) == 1:
                from ..core.fmt import grad_text
                label = grad_text(gs[0])
            else:
                label = "‖g‖ per step:\n" + _norms_text(norms)
            bwd = gradient_edge(label, scale, max((x for x in norms if x is not None), default=None))
            if key in back:
                bwd["constraint"] = "false"
            out.append(Edge(src, dst, bwd))
    return tuple(out)
