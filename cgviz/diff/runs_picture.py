"""The picture of a RunDifference: on the record's graph (each box and red edge shaded by the log of the
relative change of the parameters and modules it stands for), or a ranked table when no graph was recorded."""

from __future__ import annotations

import math

from ..core.fmt import num
from ..diagnose.health import Scale
from ..view.dot import dot_text
from ..view.markup import BACKWARD, Html, Line, html_text, lines_markup
from ..view.scene import Edge, Node, Scene
from ..view.style import EDGE_DEFAULTS, NODE_DEFAULTS, graph_attrs
from .classify import ADDED, NUMBERS, REMOVED, SAME
from .picture import ADDED_COLOR, CHANGED_COLOR, QUIET, REMOVED_COLOR, STYLE, WORST
from .runs import EntryDiff, RunDifference

TABLE_ROWS = 60         # the table picture's most rows; the JSON has them all
GRADIENTS = ("‖g‖", "‖g‖/‖w‖", "‖∂L/∂out‖")      # written in the gradients' red


def to_dot(diff: RunDifference, rankdir: str = "TB") -> str:
    """The DOT text of the difference's picture: on the graph when the record has one that reads."""
    from ..core.errors import CgvizError
    if diff.graph:
        try:
            return dot_text(graph_scene(diff, rankdir))
        except CgvizError:
            pass        # a graph this cgviz cannot read: the table still says everything
    return dot_text(table_scene(diff))


def _scale(diff: RunDifference) -> Scale:
    return Scale(lo=math.log10(max(diff.rtol, 1e-9)), hi=1.0)     # from the tolerance to 10×


def _shade(scale: Scale, d: float) -> str:
    """A box's fill: white for no change, to orange at the scale's top (NaN/∞ at full strength)."""
    t = 1.0 if not math.isfinite(d) else (scale.t(d) or 0.0)
    lo, hi = (255, 255, 255), (255, 167, 38)
    return "#" + "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(lo, hi))


def _worst(entries: list[EntryDiff]) -> str:
    return next((s for s in WORST if any(e.status == s for e in entries)), SAME)


def _change_lines(entries: list[EntryDiff], most: int = 2) -> list:
    """The largest changes among `entries`, one line each: `fc.weight ‖w‖ 4.1 → 4.3, +4.9%`."""
    changed = sorted((e for e in entries if e.top is not None), key=lambda e: -e.distance)
    lines = []
    for e in changed[:most]:
        symbol, c = e.top
        lines.append(Line(f"{e.name} {c.text(symbol)}", color=BACKWARD if symbol in GRADIENTS else "#333333",
                          small=True))
    if len(changed) > most:
        lines.append(Line(f"and {len(changed) - most} more changed", color=QUIET, small=True))
    return lines


def graph_scene(diff: RunDifference, rankdir: str = "TB") -> Scene:
    """The record's folded graph (cgviz.view.watch_graph), each box coloured by what it stands for."""
    from ..view.html import edge_key, svg_key
    from ..view.watch_graph import from_json, mapping, picture
    graph, run = from_json(diff.graph, "the record")
    pic = picture(graph, run)
    nodes, edges, _ = mapping(graph, pic)
    by = {(e.kind, e.name): e for e in diff.nodes}
    scale = _scale(diff)
    first = diff.first_divergence
    items = []
    for dn in pic.nodes.values():
        m = nodes.get(svg_key(dn.id), {})
        inside = [by[k] for k in [("param", p) for p in m.get("params", [])] + [("module", x) for x in m.get("modules", [])]
                  if k in by]
        status = _worst(inside)
        style = dict(STYLE[status if status != SAME or not inside else SAME])
        if status == NUMBERS:
            style["fillcolor"] = _shade(scale, max(e.distance for e in inside))
        style["shape"] = "ellipse" if dn.kind == "op" else "box"
        title = _title(graph, dn)
        blocks = max(len(m.get("modules", [])), len({p.rpartition(".")[0] for p in m.get("params", [])}))
        if dn.kind != "module" and blocks > 1 and dn.word:     # one box of a ×N fold stands for all N
            title += f"  (×{blocks} {dn.word})"
        lines: list = [Html(f"<B>{html_text(title)}</B>")]
        if not inside:
            lines.append(Line("not in the record", color=QUIET, small=True))
        elif status == SAME:
            lines.append(Line("unchanged", color=QUIET, small=True))
        lines += _change_lines(inside)
        if dn.id == graph.output or (dn.members and graph.output in dn.members):
            if diff.loss is not None and diff.loss.beyond:     # the loss is the record's number too
                lines[1:] = [Line(diff.loss.text("loss"), color="#333333", small=True)]
                style.update(STYLE[NUMBERS], fillcolor=_shade(scale, diff.loss.distance))
                style.pop("fontcolor", None)
        if first is not None and first in inside:
            lines.append(Line("◆ first gradient divergence", color="#d50000", bold=True, small=True))
            style.update(penwidth="3", color="#d50000")
        style["label"] = lines_markup(lines)
        style["tooltip"] = "; ".join(e.text() for e in inside) or dn.id
        items.append(Node(dn.id, style))
    drawn = []
    for e in pic.edges:
        kind, names = edges.get(edge_key(e.src, e.dst), (None, []))
        symbol = "‖g‖" if kind == "p" else "‖∂L/∂out‖"
        cs = [by[k].changes[symbol] for k in (("param" if kind == "p" else "module", n) for n in names)
              if k in by and symbol in by[k].changes]
        beyond = [c for c in cs if c.beyond]
        if not beyond:
            drawn.append(Edge(e.src, e.dst, {"color": "#d0d0d0"}))
            continue
        top = max(beyond, key=lambda c: c.distance)
        attrs = scale.edge_attrs(top.distance)
        attrs["label"] = lines_markup([Line(top.text(symbol), color=BACKWARD)])
        drawn.append(Edge(e.src, e.dst, attrs))
    return Scene(graph=graph_attrs(rankdir, "0.3", "0.35", newrank="true"), caption=tuple(_caption(diff, True)),
                 node=dict(NODE_DEFAULTS), edge=dict(EDGE_DEFAULTS), items=tuple(items), edges=tuple(drawn))


def _title(graph, dn) -> str:
    if dn.kind == "module" and dn.module:
        f = dn.module[-1]
        return f"{f.path} ({f.cls})" if getattr(f, "cls", "") else f.path
    n = graph[dn.id] if dn.id in graph else graph[dn.members[0]]
    if dn.kind == "params":
        return f"{n.meta.get('module') or 'model'} parameters"
    if n.kind == "op":
        mod = n.meta.get("module") or ""
        return f"{n.op} {mod}".strip()
    return n.name or n.id


def table_scene(diff: RunDifference) -> Scene:
    """No graph recorded: one table, every parameter and module ranked by its largest change."""
    scale = _scale(diff)
    rows = sorted(diff.nodes, key=lambda e: (e.status == SAME, e.status not in (ADDED, REMOVED), -e.distance))
    cells = ['<TR><TD ALIGN="LEFT"><B>parameter or module</B></TD><TD ALIGN="LEFT"><B>largest change</B></TD>'
             '<TD ALIGN="LEFT"><B>‖w‖ or ‖∂L/∂out‖</B></TD><TD ALIGN="LEFT"><B>‖g‖</B></TD></TR>']
    for e in rows[:TABLE_ROWS]:
        colour = {ADDED: "#e8f5e9", REMOVED: "#f3e5f5", SAME: "#f5f5f5"}.get(e.status) or _shade(scale, e.distance)
        font = {ADDED: ADDED_COLOR, REMOVED: REMOVED_COLOR, SAME: QUIET}.get(e.status, "#000000")
        top = e.top
        said = {ADDED: "only in B", REMOVED: "only in A"}.get(e.status) or (top[1].text(top[0]) if top else "unchanged")
        main = e.changes.get("‖w‖") or e.changes.get("‖∂L/∂out‖")
        g = e.changes.get("‖g‖")
        name = f"{e.kind} {e.name}" + (f" ({e.op})" if e.op else "")
        if e is diff.first_divergence:
            name += " ◆ first gradient divergence"
        cells.append(f'<TR><TD ALIGN="LEFT" BGCOLOR="{colour}"><FONT COLOR="{font}">{html_text(name)}</FONT></TD>'
                     f'<TD ALIGN="LEFT" BGCOLOR="{colour}">{html_text(said)}</TD>'
                     f'<TD ALIGN="LEFT">{html_text(_pair(main))}</TD><TD ALIGN="LEFT">{html_text(_pair(g))}</TD></TR>')
    if len(rows) > TABLE_ROWS:
        cells.append(f'<TR><TD COLSPAN="4" ALIGN="LEFT">and {len(rows) - TABLE_ROWS} more (all in the JSON)</TD></TR>')
    table = Html('<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0" CELLPADDING="4">' + "".join(cells) + "</TABLE>")
    node = Node("ranked", {"shape": "plaintext", "label": table})
    return Scene(graph=graph_attrs("TB", "0.3", "0.35"), caption=tuple(_caption(diff, False)), node=dict(NODE_DEFAULTS),
                 edge=dict(EDGE_DEFAULTS), items=(node,))


def _pair(c) -> str:
    if c is None:
        return ""
    return f"{'none' if c.before is None else num(c.before)} → {'none' if c.after is None else num(c.after)}"


def _caption(diff: RunDifference, on_graph: bool) -> list:
    verdict = "no difference beyond tolerance" if diff.same else "differs beyond tolerance"
    rows: list = [Html(f"<B>cgviz diff  —  A: {html_text(diff.a_label)}  ↔  B: {html_text(diff.b_label)}  —  "
                       f"{verdict}</B>")]
    rows += [Line(line, color="#333333", small=True) for line in diff.summary_lines()]
    where = ("each box: the parameters and module outputs it stands for; red edges: the gradient they carry, "
             "width and shade by the log of its relative change" if on_graph else
             "every parameter and sampled module, the largest relative change first")
    rows.append(Html(f'<FONT POINT-SIZE="9"><FONT COLOR="{QUIET}">grey: unchanged</FONT>   '
                     f'orange fill: changed, shaded by the log of the relative change from the tolerance '
                     f'{diff.rtol:g} (pale) to 10× (full)   <FONT COLOR="{ADDED_COLOR}">green: only in B</FONT>   '
                     f'<FONT COLOR="{REMOVED_COLOR}">purple: only in A</FONT>   — {html_text(where)}</FONT>'))
    return rows


__all__ = ["to_dot", "graph_scene", "table_scene", "CHANGED_COLOR"]
