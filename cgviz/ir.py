"""The graph IR: nodes in topological order with stable readable ids; facts live in each node's `meta`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

LEAF_KINDS = ("input", "param", "const")


@dataclass
class Node:
    """One declaration or one operation.

    id      stable and readable: the declared/assigned name, or `<statement>/<op>[_k]` for an
            anonymous sub-expression (the `a - y` inside `L = (a - y)^2` is `L/sub`).
    kind    input | param | const | op
    op      the op table's name for kind == op, else None
    inputs  producer ids in argument order (the same id may appear twice: `x * x`)
    attrs   the op's constant arguments (axis=…), or a leaf's initial value under "value"
    meta    facts for people and passes: line, col, expr text, literal, …
    """

    id: str
    kind: str
    op: str | None = None
    inputs: tuple[str, ...] = ()
    name: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def is_leaf(self) -> bool:
        return self.kind in LEAF_KINDS


@dataclass(frozen=True)
class Edge:
    """Data flowing from producer `src` into argument `arg` of consumer `dst`."""

    src: str
    dst: str
    arg: int


@dataclass
class Graph:
    """Nodes in topological order (every input before its consumer), plus which node is the output."""

    nodes: list[Node] = field(default_factory=list)
    output: str | None = None        # the node backward starts from
    loss: str | None = None          # its name when declared with `loss`
    source: str = "<input>"
    meta: dict[str, Any] = field(default_factory=dict)
    _index: dict[str, Node] = field(default_factory=dict, repr=False)

    def add(self, node: Node) -> Node:
        if node.id in self._index:
            raise ValueError(f"duplicate node id {node.id}")
        for i in node.inputs:
            if i not in self._index:
                raise ValueError(f"node {node.id} uses {i} before it is defined")
        self.nodes.append(node)
        self._index[node.id] = node
        return node

    def __getitem__(self, node_id: str) -> Node:
        return self._index[node_id]

    def __contains__(self, node_id: str) -> bool:
        return node_id in self._index

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def edges(self) -> list[Edge]:
        return [Edge(src, n.id, k) for n in self.nodes for k, src in enumerate(n.inputs)]

    def consumers(self) -> dict[str, list[Edge]]:
        out: dict[str, list[Edge]] = {n.id: [] for n in self.nodes}
        for e in self.edges():
            out[e.src].append(e)
        return out
