"""How a node is called in labels, formulas and chains: its name, or its expression when anonymous."""

from __future__ import annotations

from .ir import Graph, Node


def short(text: str, limit: int = 24) -> str:
    """`text` on one line, cut to `limit` characters with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def wrt(node: Node) -> str:
    """How the ∂ line names a node: its name, or its expression in parentheses when anonymous."""
    if node.name:
        return node.name
    return "(" + short(node.meta.get("expr") or node.id, 18) + ")"


def folded(graph: Graph, node_id: str) -> bool:
    """Scalar literals (the 2 in `(a - y)^2`) are drawn inside their consumer's label, not as boxes."""
    n = graph[node_id]
    return bool(n.meta.get("literal")) and n.attrs["value"].ndim == 0
