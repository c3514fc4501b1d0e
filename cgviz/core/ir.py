"""The graph IR: nodes in topological order with stable readable ids; facts live in each node's `meta`."""

from __future__ import annotations

import sys
from contextlib import contextmanager
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
class Frame:
    """One module call on a node's scope stack (`meta["scope"]`): its attribute path, class, and which
    call of it this is. Every source makes them (the PyTorch recorder, an ONNX file's scope names, a
    record's JSON), and the pictures read them, so they live here, free of torch."""

    path: str
    cls: str
    call: int = 1

    # Tuples of frames key every scope dict of the picture, and a tuple's hash is never cached: the
    # generated __hash__ ran ~100k times for one DenseNet picture. The same value, computed once.
    def __post_init__(self):
        object.__setattr__(self, "_hash", hash((self.path, self.cls, self.call)))

    def __hash__(self) -> int:
        return self._hash

    @property
    def key(self) -> str:
        return self.path if self.call == 1 else f"{self.path}:{self.call}"


class Scope(tuple):
    """A node's stack of module calls (`meta["scope"]`), outermost first: a tuple that knows its
    hash and its prefixes.

    Pictures key dicts by scopes and by every prefix of them (each enclosing module call). As plain
    tuples, a prefix cost its length to build and again to hash at every lookup: cubic in the
    nesting (150 nested modules took 40 s). A Scope computes its hash once, and its prefixes are
    Scopes made once and shared (`prefix`), so walking every enclosing call of a node costs its depth.
    Equal to, and hashed like, the plain tuple of the same frames."""

    def __new__(cls, frames=(), parent: "Scope | None" = None):
        self = super().__new__(cls, frames)
        self._h = tuple.__hash__(self)
        self._parent = parent
        self._kids: dict | None = None
        self._pre: tuple | None = None
        return self

    def __hash__(self) -> int:
        return self._h

    def __reduce__(self):
        return Scope, (tuple(self),)

    def child(self, frame) -> "Scope":
        """This stack with `frame` called inside it; the same object for the same frame."""
        if self._kids is None:
            self._kids = {}
        kid = self._kids.get(frame)
        if kid is None:
            kid = self._kids[frame] = Scope((*self, frame), self)
        return kid

    @property
    def parent(self) -> "Scope":
        """The stack without its innermost call (a Scope of its own for the empty stack)."""
        if self._parent is None:
            self._parent = Scope(self[:-1])
        return self._parent

    def prefixes(self) -> tuple["Scope", ...]:
        """Every enclosing stack, from the outermost call's (length 1) to this one."""
        if self._pre is None:
            chain, s = [], self
            while len(s):
                chain.append(s)
                s = s.parent
            self._pre = tuple(reversed(chain))
        return self._pre

    def prefix(self, n: int) -> "Scope":
        """The first `n` calls (`self[:n]`, as a shared Scope)."""
        if n <= 0:
            return self.prefixes()[0].parent if len(self) else self
        return self.prefixes()[min(n, len(self)) - 1]

    @staticmethod
    def of(frames) -> "Scope":
        """`frames` as a Scope (itself if it is one)."""
        if type(frames) is Scope:
            return frames
        s = Scope()
        for f in frames:
            s = s.child(f)
        return s


@contextmanager
def recursion_room(depth: int, frames_per_level: int = 4):
    """Within the block, Python's recursion limit leaves room for a pass that recurses once per
    level of module nesting (`depth`), however deep the model nests. Only for recursion between
    Python functions, which Python 3.11+ keeps off the C stack."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, old + frames_per_level * depth))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


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
