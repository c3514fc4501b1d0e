"""How a node is called in labels, formulas and chains: its name, or its expression when anonymous."""

from __future__ import annotations

from .ir import Graph, Node


def short(text: str, limit: int = 24) -> str:
    """`text` on one line, cut to `limit` characters with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


_SUB = str.maketrans("0123456789-", "₀₁₂₃₄₅₆₇₈₉₋")


def wrt(node: Node) -> str:
    """How the ∂ line names a node: its name (a loop's step t of `h` as hₜ: h₃ for the node h@3), or its
    expression in parentheses when anonymous."""
    loop = node.meta.get("loop")
    if node.name and loop is not None and node.name == f"{loop['name']}@{loop['step']}":
        return loop["name"] + str(loop["step"]).translate(_SUB)
    if node.name:
        return node.name
    return "(" + short(node.meta.get("expr") or node.id, 18) + ")"


def folded(graph: Graph, node_id: str) -> bool:
    """Scalar literals (the 2 in `(a - y)^2`) are drawn inside their consumer's label, not as boxes."""
    n = graph[node_id]
    return bool(n.meta.get("literal")) and n.attrs["value"].ndim == 0


def title(graph: Graph) -> str:
    """What a picture's caption and page call a program: its file's name; for text given in Python
    (source `<text>`), its first line when that is a comment (`# Predict pizza calories`), else
    `expression`. Warnings and errors keep `<text>`, as Python's own say `<string>`."""
    if graph.source != "<text>":
        return graph.source
    return graph.meta.get("comment") or "expression"
