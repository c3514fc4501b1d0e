"""Which node of A is which node of B: by name first, then by structure (op, shape, place in forward order)."""

from __future__ import annotations

from dataclasses import dataclass
from difflib import SequenceMatcher

# How a pair was found, strongest first; the reason strings say it in words.
NAME, STRUCTURE, POSITION = "name", "structure", "position"


@dataclass(frozen=True)
class Match:
    """Node `a` of A is node `b` of B; `how` is NAME, STRUCTURE or POSITION."""

    a: str
    b: str
    how: str

    def reason(self, na: dict, nb: dict) -> str:
        """`layers.3/linear in A ↔ blocks.3/linear in B (same op and shape, same place in forward order)`."""
        if self.how == NAME:
            return f"{self.a} in A ↔ {self.b} in B (same name)"
        if self.how == STRUCTURE:
            return f"{self.a} in A ↔ {self.b} in B (same op and shape, same place in forward order)"
        return f"{self.a} in A ↔ {self.b} in B (same place in forward order, between matched nodes)"


def signature(n: dict) -> tuple:
    """What structural matching compares: kind, op and shape (not dtype: float32 against bfloat16
    must still line up, its dtype is then a change)."""
    shape = n.get("shape")
    return n.get("kind"), n.get("op"), tuple(shape) if isinstance(shape, list) else shape


def match(a_nodes: list[dict], b_nodes: list[dict]) -> list[Match]:
    """Pairs of nodes, each node in at most one pair, in B's forward order.

    1. Same id and same signature: the common case, and the only one on two runs of one model.
    2. The rest aligned as two sequences of signatures in forward order (difflib's longest common
       blocks): a renamed module's nodes line up with the old ones, an inserted block is left over.
    3. Left over with the same id: the same node changed (its op, its shape).
    4. Left over inside a replaced stretch of the alignment, in order, when the kind agrees and the
       op or the shape does: sigmoid swapped for relu where the names differ too (layers.1/relu)."""
    pairs: dict[str, Match] = {}        # by B id
    taken_a: set[str] = set()

    def pair(a: str, b: str, how: str) -> None:
        pairs[b] = Match(a, b, how)
        taken_a.add(a)

    a_by_id = {n["id"]: n for n in a_nodes}
    for n in b_nodes:
        o = a_by_id.get(n["id"])
        if o is not None and signature(o) == signature(n):
            pair(o["id"], n["id"], NAME)
    ra = [n for n in a_nodes if n["id"] not in taken_a]
    rb = [n for n in b_nodes if n["id"] not in pairs]
    replaced = []
    if ra and rb:
        sm = SequenceMatcher(None, [signature(n) for n in ra], [signature(n) for n in rb], autojunk=False)
        for tag, i1, i2, j1, j2 in sm.get_opcodes():
            if tag == "equal":
                for o, n in zip(ra[i1:i2], rb[j1:j2]):
                    pair(o["id"], n["id"], STRUCTURE)
            elif tag == "replace":
                replaced.append((ra[i1:i2], rb[j1:j2]))
    for n in b_nodes:
        o = a_by_id.get(n["id"])
        if n["id"] not in pairs and o is not None and o["id"] not in taken_a:
            pair(o["id"], n["id"], NAME)
    for olds, news in replaced:
        olds = [o for o in olds if o["id"] not in taken_a]
        for n in news:
            if n["id"] in pairs:
                continue
            o = next((o for o in olds if o["id"] not in taken_a and o.get("kind") == n.get("kind")
                      and (o.get("op") == n.get("op") or o.get("shape") == n.get("shape"))), None)
            if o is not None:
                pair(o["id"], n["id"], POSITION)
    return [pairs[n["id"]] for n in b_nodes if n["id"] in pairs]


def module_renames(matches: list[Match], a_by_id: dict, b_by_id: dict) -> list[str]:
    """One line per module that lines up under another name: `layers.3 in A ↔ blocks.3 in B (same ops
    and shapes, 4 nodes)`, from the nodes matched by structure."""
    count: dict[tuple[str, str], int] = {}
    for m in matches:
        if m.how == NAME:
            continue
        ma, mb = a_by_id[m.a].get("module") or "", b_by_id[m.b].get("module") or ""
        if ma != mb and ma and mb:
            count[ma, mb] = count.get((ma, mb), 0) + 1
    return [f"{ma} in A ↔ {mb} in B (same ops and shapes, {k} node{'s' * (k != 1)})"
            for (ma, mb), k in count.items()]
