"""The picture of a Difference on the union graph, as a scene (pure DOT, snapshot-testable): unchanged
quiet grey, added green, removed purple, changed structure orange, numbers on the edges in blue and red
shaded by the log of the relative change; modules with nothing changed collapse into one box each."""

from __future__ import annotations

import math

from ..diagnose.health import Scale
from ..view.dot import dot_text
from ..view.markup import BACKWARD, FORWARD, Html, Line, html_text, lines_markup
from ..view.scene import Edge, Node, Scene
from ..view.style import EDGE_DEFAULTS, NODE_DEFAULTS, graph_attrs
from .classify import ADDED, CHANGED, NUMBERS, REMOVED, SAME, Difference, NodeDiff

# The most boxes a picture draws before it collapses changed modules too, a level at a time: a
# GPT-2's 2,000 nodes are no picture, its twelve blocks are.
MAX_NODES = 250
ADDED_COLOR, REMOVED_COLOR, CHANGED_COLOR, QUIET = "#2e7d32", "#8e24aa", "#ef6c00", "#9e9e9e"
STYLE = {
    SAME: dict(style="filled", fillcolor="#f5f5f5", color="#c8c8c8", fontcolor=QUIET),
    NUMBERS: dict(style="filled", fillcolor="white", color="#424242"),
    CHANGED: dict(style="filled,bold", fillcolor="#fff3e0", color=CHANGED_COLOR, penwidth="2.2"),
    ADDED: dict(style="filled,bold", fillcolor="#e8f5e9", color=ADDED_COLOR, penwidth="2.2"),
    REMOVED: dict(style="filled,dashed", fillcolor="#f3e5f5", color=REMOVED_COLOR, penwidth="2.2"),
}
WORST = (REMOVED, ADDED, CHANGED, NUMBERS, SAME)      # a collapsed box shows the worst inside it


def to_dot(diff: Difference, rankdir: str = "TB", max_nodes: int = MAX_NODES, root: str = "",
           side: str | None = None) -> str:
    """The DOT text of the difference's picture (of one level of it: see scene)."""
    return dot_text(scene(diff, rankdir, max_nodes, root, side))


def boxes(diff: Difference, max_nodes: int = MAX_NODES, root: str = "") -> tuple[dict[str, str], int | None]:
    """Each union node inside module `root` ("": the whole model) and its box there (itself, or the
    module it collapses into), and the module depth below `root` the changed modules were cut at
    (None: not cut). A module with nothing changed inside is one box at its outermost unchanged
    level; when that still leaves more than `max_nodes` boxes, changed modules collapse too, at the
    deepest level that fits."""
    inside = [n for n in diff.nodes if within(n.module, root)]
    skip = len(_prefixes(root))         # a module level's own path and the ones around it are not boxes in it
    dirty = set()
    size: dict[str, int] = {}
    for n in inside:
        if n.status != SAME:
            dirty.update(_prefixes(n.module))
        for p in _prefixes(n.module):
            size[p] = size.get(p, 0) + 1

    def box(n: NodeDiff, cut: int | None) -> str:
        for i, p in enumerate(_prefixes(n.module)[skip:]):
            if size[p] == 1:            # a module of one node is that node: a box would hide it for nothing
                return n.id
            if p not in dirty or (cut is not None and i + 1 >= cut):
                return "module:" + p
        return n.id

    out: dict[str, str] = {}
    for cut in (None, *range(max((len(_prefixes(n.module)) - skip for n in inside), default=0), 0, -1)):
        out = {n.id: box(n, cut) for n in inside}
        if len(set(out.values())) <= max_nodes:
            return out, cut
    return out, cut


def within(module: str, root: str) -> bool:
    """Module `module` is `root` or nested in it ("" holds everything)."""
    return not root or module == root or module.startswith(root + ".")


def _prefixes(module: str) -> list[str]:
    """`layers.0.attn` → layers, layers.0, layers.0.attn."""
    if not module:
        return []
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def common_facts(diff: Difference) -> set[str]:
    """Facts shared by most matched nodes (float32 → bfloat16 on every one): said once in the
    caption, not on each node, so that the picture shows where the numbers went wrong."""
    matched = [n for n in diff.nodes if n.a and n.b]
    count: dict[str, int] = {}
    for n in matched:
        for f in n.facts:
            count[f] = count.get(f, 0) + 1
    return {f for f, k in count.items() if k > len(matched) / 2 and k > 1}


def _status(n, common: set[str]) -> str:
    """The status drawn: a node changed only in the common facts is drawn by its numbers."""
    if n.status != CHANGED or any(f not in common for f in n.facts):
        return n.status
    return NUMBERS if any(c is not None and c.beyond for c in (n.value, n.grad)) else SAME


def quieted(diff: Difference) -> tuple[Difference, set[str]]:
    """The difference as drawn: the facts most nodes share taken off each node (the caption says
    them once), and those facts."""
    common = common_facts(diff)
    if not common:
        return diff, common
    import dataclasses
    return dataclasses.replace(diff, nodes=[dataclasses.replace(n, status=_status(n, common),
                                                                facts=[f for f in n.facts if f not in common])
                                            for n in diff.nodes],
                               edges=[dataclasses.replace(e, status=_status(e, common),
                                                          facts=[f for f in e.facts if f not in common])
                                      for e in diff.edges]), common


def scene(diff: Difference, rankdir: str = "TB", max_nodes: int = MAX_NODES, root: str = "",
          side: str | None = None) -> Scene:
    """The picture of the inside of module `root` ("": the whole model), a level of the page's
    drill-down; `side` "a" or "b": that run's own nodes and edges only, named as it names them,
    coloured by what happened to them (the page's A and B panels at that level)."""
    original = diff         # the caption counts what changed; the nodes are drawn without the common facts
    diff, common = quieted(diff)
    where, cut = boxes(diff, max_nodes, root)
    by_id = {n.id: n for n in diff.nodes}
    if side is not None:
        gone = ADDED if side == "a" else REMOVED
        where = {k: v for k, v in where.items() if by_id[k].status != gone}
    scale = Scale(lo=math.log10(max(diff.rtol, 1e-9)), hi=1.0)     # a relative change from the tolerance to 10×
    members: dict[str, list[NodeDiff]] = {}
    for n in diff.nodes:
        if n.id in where:
            members.setdefault(where[n.id], []).append(n)
    # a node's own changes are written on its outgoing edges; only a node without one (the output)
    # says them itself
    feeds = {e.src for e in diff.edges}
    first = original.first_divergence if side is None else None
    items = []
    for key, inside in members.items():
        if key.startswith("module:"):
            items.append(Node(key, _module_box(key[len("module:"):], inside)))
        else:
            n = inside[0]
            style = _node(n, numbers=side is None and n.id not in feeds,
                          head=None if side is None else getattr(n, side))
            if first is not None and key == first.id:       # where the runs part: the answer looked for
                style["label"] = Html(style["label"].markup + "<BR/>" + Line("◆ first divergence", color="#d50000",
                                                                             bold=True, small=True).markup())
                style.update(penwidth="3", color="#d50000")
            items.append(Node(key, style))
    edges: dict[tuple[str, str], tuple] = {}
    stubs: dict[str, list[str]] = {}
    for e in diff.edges:
        if side is not None and e.status == (ADDED if side == "a" else REMOVED):
            continue
        s, d = where.get(e.src), where.get(e.dst)
        if s is None and d is None or s == d:
            continue
        if s is None or d is None:      # from or to outside the level: a stub names where
            out = e.src if s is None else e.dst
            stub = "outside:" + outside(by_id[out], root)
            stubs.setdefault(stub, []).append(out)
            s, d = (stub, d) if s is None else (s, stub)
        rank = WORST.index(e.status)
        weight = max((c.distance for c in (e.grad, e.value) if c is not None and c.beyond), default=0.0)
        old = edges.get((s, d))
        if old is None or (rank, -weight) < (old[0], -old[1]):
            edges[s, d] = (rank, weight, e)
    for stub in stubs:
        items.append(Node(stub, dict(shape="plaintext", fontcolor=QUIET, label=Html(
            f'<FONT POINT-SIZE="9">{html_text(stub[len("outside:"):])} (outside)</FONT>'),
            tooltip=f"{stub[len('outside:'):]}, outside {root}")))
    drawn = tuple(Edge(s, d, _edge(e, scale, collapsed=side is not None or s.startswith(("module:", "outside:"))
                                   or d.startswith(("module:", "outside:"))))
                  for (s, d), (_, _, e) in edges.items())
    caption = _caption(original, cut, common, root, side)
    return Scene(graph=graph_attrs(rankdir, "0.3", "0.35", newrank="true"), caption=tuple(caption),
                 node=dict(NODE_DEFAULTS), edge=dict(EDGE_DEFAULTS), items=tuple(items), edges=drawn)


def outside(n: NodeDiff, root: str) -> str:
    """What a stub calls a node outside level `root`: its module at `root`'s depth (a sibling block,
    `h.4.mlp` beside `h.5.mlp`), or itself when it is in no module that deep."""
    prefixes, depth = _prefixes(n.module), len(_prefixes(root))
    return prefixes[depth - 1] if len(prefixes) >= depth else n.id


def _node(n: NodeDiff, numbers: bool, head: str | None = None) -> dict:
    style = dict(STYLE[n.status])
    style["shape"] = "ellipse" if n.node.get("kind") == "op" else "box"
    if head is None:
        head = n.id if n.a in (None, n.b) or n.b is None else f"{n.b} ← {n.a}"
    lines: list = [Html(f"<B>{html_text(head)}</B>")]
    what = n.node.get("op") or n.node.get("kind")
    shape = n.node.get("shape")
    lines.append(Line(f"{what} {_shape(shape)}".strip(), color=QUIET if n.status == SAME else "#555555", small=True))
    if n.status == ADDED:
        lines.append(Line("+ only in B", color=ADDED_COLOR, bold=True, small=True))
    elif n.status == REMOVED:
        lines.append(Line("− only in A", color=REMOVED_COLOR, bold=True, small=True))
    for fact in n.facts:
        lines.append(Line(f"⚑ {fact}", color=CHANGED_COLOR, bold=True, small=True))
    if numbers and n.value is not None and n.value.beyond:
        lines.append(Line(n.value.text("‖v‖"), color=FORWARD, small=True))
    if numbers and n.grad is not None and n.grad.beyond:
        lines.append(Line(n.grad.text("‖g‖"), color=BACKWARD, small=True))
    style["label"] = lines_markup(lines)
    style["tooltip"] = n.reason or f"{n.id}: {n.status}"
    return style


def _module_box(module: str, inside: list[NodeDiff]) -> dict:
    counts = {s: sum(1 for n in inside if n.status == s) for s in WORST}
    worst = next(s for s in WORST if counts[s])
    style = dict(STYLE[worst], shape="box3d" if worst == SAME else "box")
    said = ", ".join(f"{counts[s]} {s if s != NUMBERS else 'numbers changed'}" for s in WORST[:-1] if counts[s])
    lines: list = [Html(f"<B>{html_text(module)}</B>"),
                   Line(f"{len(inside)} nodes" + (f": {said}" if said else ", unchanged"),
                        color=QUIET if worst == SAME else "#555555", small=True)]
    top = max((n for n in inside if n.value is not None and n.value.beyond), key=lambda n: n.value.distance, default=None)
    if top is not None:
        lines.append(Line(f"most: {top.id} {top.value.text('‖v‖')}", color=FORWARD, small=True))
    style["label"] = lines_markup(lines)
    style["tooltip"] = f"module {module}, collapsed"
    return style


def _edge(e, scale: Scale, collapsed: bool) -> dict:
    if e.status == ADDED:
        return {"color": ADDED_COLOR, "penwidth": "2"}
    if e.status == REMOVED:
        return {"color": REMOVED_COLOR, "penwidth": "2", "style": "dashed"}
    lines = [Line(f"⚑ {f}", color=CHANGED_COLOR, bold=True) for f in e.facts]
    if not collapsed:       # between boxes the numbers are the boxes' own: an edge says its own only
        if e.value is not None and e.value.beyond:
            lines.append(Line(e.value.text("‖v‖"), color=FORWARD))
        if e.grad is not None and e.grad.beyond:
            lines.append(Line(e.grad.text("‖g‖"), color=BACKWARD))
    out: dict = {"color": "#d0d0d0"} if e.status == SAME else {}
    if e.grad is not None and e.grad.beyond:
        out.update(scale.edge_attrs(e.grad.distance))
    elif e.value is not None and e.value.beyond:
        out.update(scale.edge_attrs(e.value.distance), color=FORWARD)
    elif e.status == CHANGED:
        out.update(color=CHANGED_COLOR, penwidth="2")
    if lines:
        out["label"] = lines_markup(lines)
    return out


def _shape(shape) -> str:
    if not shape:       # none, or a scalar's []
        return ""
    return "[" + "×".join(str(s) for s in shape) + "]"


def _caption(diff: Difference, cut: int | None, common: set[str] = frozenset(), root: str = "",
             side: str | None = None) -> list:
    if side is not None or root:        # a level of the page: the page's header has the summary
        who = f"{side.upper()}: {diff.a_label if side == 'a' else diff.b_label}" if side else "difference"
        rows = [Html(f"<B>{html_text(who)}{'  —  inside ' + html_text(root) if root else ''}</B>")]
        if cut is not None:
            rows.append(Line(f"modules nested deeper than {cut} level{'s' * (cut != 1)} below this one are collapsed "
                             "into one box each, changed ones too", color="#bf360c", small=True))
        return rows
    verdict = "no difference beyond tolerance" if diff.same else "differs beyond tolerance"
    rows: list = [Html(f"<B>cgviz diff  —  A: {html_text(diff.a_label)}  ↔  B: {html_text(diff.b_label)}  —  "
                       f"{verdict}</B>")]
    rows += [Line(line, color="#333333", small=True) for line in diff.summary_lines()]
    if common:
        rows.append(Line(f"⚑ on most nodes and edges (not marked on each): {'; '.join(sorted(common))}",
                         color=CHANGED_COLOR, bold=True, small=True))
    rows.append(Html(f'<FONT POINT-SIZE="9"><FONT COLOR="{QUIET}">grey: unchanged</FONT>   '
                     f'<FONT COLOR="{ADDED_COLOR}">green: only in B (added)</FONT>   '
                     f'<FONT COLOR="{REMOVED_COLOR}">purple dashed: only in A (removed)</FONT>   '
                     f'<FONT COLOR="{CHANGED_COLOR}">orange ⚑: op, shape or dtype changed</FONT>   '
                     f'<FONT COLOR="{FORWARD}">‖v‖ value</FONT> and <FONT COLOR="{BACKWARD}">‖g‖ gradient</FONT> '
                     f'changes A → B on the edges, width and shade: log of the relative change, from the '
                     f'tolerance {diff.rtol:g} (thin) to 10× (thick)</FONT>'))
    if cut is not None:
        rows.append(Line(f"modules nested deeper than {cut} level{'s' * (cut != 1)} are collapsed into one box "
                         "each, changed ones too, to keep the picture readable; the JSON has every node",
                         color="#bf360c", small=True))
    return rows
