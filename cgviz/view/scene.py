"""What a picture is before it is DOT text: the caption, the default styles, nodes inside nested
clusters, and edges, in the order they are drawn.

Both front ends build one (cgviz.view.expression_scene for an expression file, cgviz.view.model_scene
for a PyTorch model) and cgviz.view.dot writes it, the only place that writes DOT syntax. A scene holds
no DOT text: attribute values are plain strings, which the writer quotes, or `markup.Html` labels,
whose user text was escaped when the label was made; caption lines are `markup.Line`s or `Html`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from .markup import Row

Attrs = dict    # attribute name → str, or markup.Html for an HTML-like label


@dataclass(frozen=True)
class Node:
    id: str
    attrs: Attrs = field(default_factory=dict)


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    attrs: Attrs = field(default_factory=dict)


@dataclass(frozen=True)
class Cluster:
    """A frame around nodes and smaller frames. `id` names it (the writer adds Graphviz's `cluster_`
    prefix); `caption` is its label, left-aligned lines, when it has one."""

    id: str
    attrs: Attrs = field(default_factory=dict)
    items: tuple[Item, ...] = ()
    caption: tuple[Row, ...] = ()


Item = Union[Node, Cluster]


@dataclass(frozen=True)
class Scene:
    """A whole picture. `caption`: the graph's label, one left-aligned line per entry; `graph`: the
    other graph attributes; `node`, `edge`: every node's and edge's defaults. `items` are drawn in
    order, then `edges` in order, then the `same_rank` sets: same scene in, same DOT out."""

    graph: Attrs
    caption: tuple[Row, ...] = ()
    node: Attrs = field(default_factory=dict)
    edge: Attrs = field(default_factory=dict)
    items: tuple[Item, ...] = ()
    edges: tuple[Edge, ...] = ()
    same_rank: tuple[tuple[str, ...], ...] = ()   # node ids Graphviz must put on one rank
