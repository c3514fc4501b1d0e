"""Write a scene (cgviz.view.scene) as DOT text: pure and deterministic, no `dot` needed. The only
module that writes DOT syntax, for both front ends.

We write DOT ourselves rather than through the `graphviz` package: its quoting passes backslashes
through (so `\\l` or `\\N` in a file name would become DOT escapes) and turns any `<...>` string into
an HTML label. Here every name and attribute value goes through `markup.quote` and every label was
made with `markup.html_text`, so no text from a user's file can add attributes or markup.
"""

from __future__ import annotations

from .markup import Html, Row, attrs, quote, row_markup
from .scene import Cluster, Scene

INDENT = "  "


def caption_label(rows: tuple[Row, ...]) -> Html:
    """A caption's lines as one label, each line left-aligned (DOT's `labeljust` moves the block,
    not its lines)."""
    return Html("".join(row_markup(row) + '<BR ALIGN="LEFT"/>' for row in rows))


def _with_caption(d: dict, caption: tuple[Row, ...]) -> dict:
    if not caption:
        return d
    if "label" in d:
        raise ValueError("a caption and a label attribute: give one")
    return {**d, "label": caption_label(caption)}


def dot_text(scene: Scene) -> str:
    """The whole DOT document of a scene."""
    lines = [
        "digraph cgviz {",
        f"{INDENT}graph {attrs(_with_caption(scene.graph, scene.caption))}",
        f"{INDENT}node {attrs(scene.node)}",
        f"{INDENT}edge {attrs(scene.edge)}",
    ]
    _items(lines, scene.items, INDENT)
    lines.extend(f"{INDENT}{quote(e.src)} -> {quote(e.dst)} {attrs(e.attrs)}" for e in scene.edges)
    lines.extend(f"{INDENT}{{rank=same; " + "; ".join(quote(n) for n in ids) + "}" for ids in scene.same_rank)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _items(lines: list[str], items, indent: str) -> None:
    # a stack of (items, next index, indent) rather than recursion: frames nest as deep as the
    # model's modules, hundreds of levels past Python's recursion limit
    stack = [(items, 0, indent)]
    while stack:
        group, i, ind = stack.pop()
        if i == len(group):
            if len(stack):
                lines.append(f"{stack[-1][2]}}}")        # the end of the frame that held `group`
            continue
        stack.append((group, i + 1, ind))
        item = group[i]
        if isinstance(item, Cluster):
            lines.append(f"{ind}subgraph {quote('cluster_' + item.id)} {{")
            lines.append(f"{ind}{INDENT}graph {attrs(_with_caption(item.attrs, item.caption))}")
            stack.append((item.items, 0, ind + INDENT))
        else:
            lines.append(f"{ind}{quote(item.id)} {attrs(item.attrs)}")


def scene_cost(scene: Scene):
    """cgviz.plan.budget.layout_cost of the DOT text dot_text would write for this scene, read from the
    scene itself: writing the text of DenseNet's every op and reading it back with the budget's patterns
    cost a tenth of a second, the same numbers. Here, not in the budget, because it reads a scene."""
    from ..plan.budget import cost_of     # a render of an expression never loads the budget
    cluster_of: dict[str, str] = {}
    clusters = 0

    def walk(items, where: str) -> None:
        nonlocal clusters
        for item in items:
            if isinstance(item, Cluster):
                clusters += 1
                walk(item.items, item.id)
            else:
                cluster_of.setdefault(item.id, where)
    walk(scene.items, "")
    edges = [(e.src, e.dst, str(e.attrs.get("constraint", "")).lower() != "false", bool(e.attrs.get("label")))
             for e in scene.edges]
    return cost_of(cluster_of, edges, clusters)
