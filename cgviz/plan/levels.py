"""The levels of a model's drill-down page: the top picture, and the inside of every module that
has more than one op, each a picture of its own (cgviz.plan.inside) laid out on its own.

A ×N fold's block is one level drawn from its first repetition; the pictures of the other
repetitions are built too (no layout) and matched to it node by node, so the page can show any
block's numbers on the one layout. Every recorded node is indexed by the level where it is drawn
as itself, so a search can open the picture that holds it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..core.ir import Graph
from ..core.summary import RunSummary
from .inside import IN, OUT, calls_of, inside, repetition
from .structure import WORDS, Picture, build_picture, cluster_id, find_groups, max_depth, module_calls, param_norm

LEVEL_NODES = 60        # a level is drawn at the deepest depth with at most this many boxes


@dataclass
class Level:
    """One picture of the page: the model (key "") or the inside of one module call."""

    key: str
    call: tuple | None
    graph: Graph
    run: RunSummary
    pic: Picture
    parent: str | None = None
    label: str = "model"
    group: Any = None             # the ×N fold or loop this level is the first repetition of
    opens: dict[str, str] = field(default_factory=dict)    # drawn node or cluster id → the level it opens
    reps: list | None = None      # per repetition: (graph, run, pic, first's node id → its) or None
    word: str = ""                # block | step
    norms: list = field(default_factory=list)              # per repetition: ‖∇θ‖ of this module
    names: list[str] = field(default_factory=list)         # per repetition: the module call's name


def _ops(graph: Graph) -> int:
    return sum(1 for n in graph if n.kind == "op")


def _picture(graph: Graph, run: RunSummary, fold: bool, depth: int | None = "choose") -> Picture:
    """The inside's picture: at `depth`, or the deepest depth with at most LEVEL_NODES boxes."""
    groups = find_groups(graph, run) if fold else {}
    if depth != "choose":
        return build_picture(graph, run, depth, fold, groups)
    pic = None
    for d in [None] + list(range(max_depth(graph), 0, -1)):
        pic = build_picture(graph, run, d, fold, groups)
        if len(pic.nodes) <= LEVEL_NODES:
            break
    return pic


def _label(call: tuple, parent: tuple | None, grp) -> str:
    """The breadcrumb's name of a level: `attn` below `blocks.0`, `blocks ×24` for a fold."""
    path = call[-1].key
    base = parent[-1].path + "." if parent else ""
    rel = path[len(base):] if path.startswith(base) else path
    if grp is not None:
        stem, _, index = rel.rpartition(".")
        if grp.style == "fold" and index.isdigit() and stem:
            return f"{stem} ×{grp.n}"          # layers.0 … layers.31: the list's name
        if grp.style == "loop":
            return f"{rel}, {grp.n} {WORDS['loop'][1]}"
        last = grp.calls[-1][-1].key
        return f"{rel} … {last[len(base):] if last.startswith(base) else last} ×{grp.n}"
    return rel


def _match(a: Picture, b: Picture) -> dict[str, str] | None:
    """Repetition b's drawn node for each of repetition a's: the same structure is drawn alike, so
    the inside's nodes line up in order; None when they do not. Stubs line up only when both have
    as many (the last block's result goes to one reader outside, the others' to two): a stub left
    out has no counterpart in b."""
    def split(p: Picture):
        inner = [n for n in p.nodes.values() if n.kind != "stub"]
        stubs = {w: [n for n in p.nodes.values() if n.kind == "stub" and n.id.startswith(w)] for w in (IN, OUT)}
        return inner, stubs
    (ai, ast), (bi, bst) = split(a), split(b)
    if len(ai) != len(bi) or any(x.kind != y.kind for x, y in zip(ai, bi)):
        return None
    nodes = {x.id: y.id for x, y in zip(ai, bi)}
    for w in (IN, OUT):
        if len(ast[w]) == len(bst[w]):
            nodes.update((x.id, y.id) for x, y in zip(ast[w], bst[w]))
    inner = {(e.src, e.dst) for e in b.edges}
    if any((nodes.get(e.src), nodes.get(e.dst)) not in inner for e in a.edges
           if a.nodes[e.src].kind != "stub" and a.nodes[e.dst].kind != "stub"):
        return None
    return nodes


def build_levels(graph: Graph, run: RunSummary, pic: Picture, fold: bool = True, root: tuple | None = None,
                 groups: dict | None = None, focused: tuple[Graph, RunSummary] | None = None) -> dict[str, Level]:
    """Every level of the page, the first one the root, drawn as `pic`: the model, or, with `root`,
    the inside of that module call (a --focus page; `pic` is then a picture of inside(root)).
    `groups` (find_groups(graph, run)) and `focused` (inside(graph, run, root)): when the caller
    has them already, as the model's picture does."""
    members = module_calls(graph)
    calls = list(calls_of(graph, members).values())
    if groups is None:
        groups = find_groups(graph, run, members) if fold else {}
    if root is None:
        top = Level("", None, graph, run, pic)
    else:
        g, r = focused or inside(graph, run, root, members[root])
        top = Level(root[-1].key, root, g, r, pic, label=root[-1].key)
    levels = {top.key: top}
    todo = [top]
    while todo:
        level = todo.pop(0)
        base = level.call or ()
        wanted: dict[str, tuple] = {}     # drawn node or cluster id → the full module call it shows
        for dn in level.pic.nodes.values():
            if dn.kind == "module":
                wanted[dn.id] = base + dn.module
            for i in range(1, len(dn.scope) + 1):
                wanted["cluster_" + cluster_id(dn.scope[:i])] = base + tuple(dn.scope[:i])
        for drawn_id, call in wanted.items():
            if call not in members:
                continue                # a box of ops run in no module (structure.gathered_ops)
            key = call[-1].key
            if key not in levels:
                sub, sub_run = inside(graph, run, call, members[call])
                if _ops(sub) < 2:
                    continue            # one op: its box already says everything
                child = Level(key, call, sub, sub_run, _picture(sub, sub_run, fold))
                found = repetition(calls, groups, call)
                child.group = found[0] if found and found[0].calls[0] == call else None
                if found is not None:
                    _repetitions(child, found, graph, run, fold, members)
                levels[key] = child
                todo.append(child)
            level.opens[drawn_id] = key
    # a level's parent is the nearest module around it that has a level (a click from the top may
    # open blocks.0.attn directly; its breadcrumb still reads model › blocks ×24 › attn)
    for level in levels.values():
        if level is top:
            continue
        up = next((level.call[:i] for i in range(len(level.call) - 1, 0, -1) if level.call[i - 1].key in levels), None)
        level.parent = up[-1].key if up else top.key
        level.label = _label(level.call, up or top.call, level.group)
    return levels


def _repetitions(level: Level, found, graph: Graph, run: RunSummary, fold: bool,
                 members: dict[tuple, list[str]]) -> None:
    """Every repetition's picture of a level inside a ×N fold or loop, matched to the first's.
    `members`: structure.module_calls(graph)."""
    grp, calls = found
    level.word = WORDS[grp.style][0]
    level.reps = []
    depth = level.pic.depth
    for call in calls:
        if call is None:
            level.reps.append(None)
            level.norms.append(None)
            level.names.append("")
            continue
        g, r = (level.graph, level.run) if call == level.call else inside(graph, run, call, members[call])
        p = level.pic if call == level.call else _picture(g, r, fold, depth)
        m = _match(level.pic, p)
        level.reps.append(None if m is None else (g, r, p, m))
        level.norms.append(param_norm(g, r, [n.id for n in g if n.kind == "op"]))
        level.names.append(call[-1].key)


def index(levels: dict[str, Level]) -> dict[str, tuple[str, str, int]]:
    """Every recorded node → (the level that draws it as itself, its drawn id there, the repetition):
    the deepest such level, so that a search lands on the op, not on a box that holds it."""
    out: dict[str, tuple[str, str, int]] = {}
    depth: dict[str, int] = {}
    for level in levels.values():
        here = len(level.call or ())
        views = level.reps or [(level.graph, level.run, level.pic, None)]
        for k, view in enumerate(views):
            if view is None:
                continue
            _g, _r, p, back = view
            first = {v: u for u, v in back.items()} if back else None
            for dn in p.nodes.values():
                if dn.kind in ("module", "stub"):
                    continue
                shown = first[dn.id] if first else dn.id
                for m in dn.members:
                    if depth.get(m, -1) < here:
                        out[m], depth[m] = (level.key, shown, k), here
    return out
