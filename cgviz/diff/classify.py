"""The node-by-node and edge-by-edge difference of two golden documents: what was added, removed,
changed in structure, or moved in its numbers beyond the tolerance, and the summary of it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..view import golden
from .match import NAME, Match, match, module_renames
from .numbers import Change, change

SAME, NUMBERS, CHANGED, ADDED, REMOVED = "same", "numbers", "changed", "added", "removed"
# the facts of a node compared exactly; the module is not one of them: a renamed module is the same
# node (the match's reason says it), not a change
FACTS = ("kind", "op", "attrs", "shape", "dtype", "outputs")
TOP = 5


@dataclass
class NodeDiff:
    """One node of the union graph: `id` is B's id (A's for a removed node, prefixed `A:` if B has
    that id too); `a`/`b` the ids in each run, None where it has none."""

    id: str
    a: str | None
    b: str | None
    status: str
    node: dict                               # B's golden node (A's when removed)
    facts: list[str] = field(default_factory=list)   # `op sigmoid → relu`, `dtype float32 → bfloat16`
    value: Change | None = None
    grad: Change | None = None
    how: str | None = None                   # how the pair was found (cgviz.diff.match)
    reason: str | None = None

    @property
    def op(self) -> str:
        return self.node.get("op") or self.node.get("kind") or "?"

    @property
    def module(self) -> str:
        return self.node.get("module") or ""

    def to_dict(self) -> dict:
        return {"id": self.id, "a": self.a, "b": self.b, "status": self.status, "kind": self.node.get("kind"),
                "op": self.node.get("op"), "module": self.module or None, "shape": self.node.get("shape"),
                "dtype": self.node.get("dtype"), "facts": self.facts, "match": self.how, "reason": self.reason,
                "value": self.value.to_dict() if self.value else None,
                "grad": self.grad.to_dict() if self.grad else None}


@dataclass
class EdgeDiff:
    """One edge of the union graph, between union ids; `value` is its source's value change."""

    src: str
    dst: str
    arg: int
    status: str
    facts: list[str] = field(default_factory=list)
    value: Change | None = None
    grad: Change | None = None

    def to_dict(self) -> dict:
        return {"src": self.src, "dst": self.dst, "arg": self.arg, "status": self.status, "facts": self.facts,
                "value": self.value.to_dict() if self.value else None,
                "grad": self.grad.to_dict() if self.grad else None}


@dataclass
class Difference:
    """Two runs compared: the union graph's nodes (forward order) and edges, and what they add up to."""

    nodes: list[NodeDiff]
    edges: list[EdgeDiff]
    renames: list[str]
    loss: Change | None
    rtol: float
    atol: float
    a_label: str = "A"
    b_label: str = "B"
    top_facts: list[str] = field(default_factory=list)    # loss name, output, model facts that differ

    # ---- what it adds up to --------------------------------------------------------------------
    def count(self, status: str) -> int:
        return sum(1 for n in self.nodes if n.status == status)

    @property
    def same(self) -> bool:
        """Nothing differs beyond the tolerance (the exit status 0 of `cgviz diff`)."""
        return (all(n.status == SAME for n in self.nodes) and all(e.status == SAME for e in self.edges)
                and not (self.loss and self.loss.beyond) and not self.top_facts)

    @property
    def first_divergence(self) -> NodeDiff | None:
        """The first op, in forward order, whose value differs beyond the tolerance: where the runs part
        (a leaf that differs, a weight or an input, is a cause given, not a divergence found)."""
        # a changed dtype alone is no divergence (float32 against bfloat16 changes every node's): its
        # numbers say whether it matters; a node whose numbers cannot be compared (its shape or op
        # changed them) diverges by being changed
        return next((n for n in self.nodes if n.node.get("kind") == "op" and n.b and n.a
                     and (n.value.beyond if n.value is not None else n.status == CHANGED)), None)

    @property
    def first_gradient_divergence(self) -> NodeDiff | None:
        """The first node, in backward order, whose gradient differs beyond the tolerance."""
        return next((n for n in reversed(self.nodes) if n.grad is not None and n.grad.beyond), None)

    @property
    def given(self) -> list[NodeDiff]:
        """Leaves (inputs, parameters, constants) whose values differ: the causes."""
        return [n for n in self.nodes if n.node.get("kind") != "op" and n.value is not None and n.value.beyond]

    def largest(self, which: str, n: int = TOP) -> list[NodeDiff]:
        """The nodes whose value (`which` "value") or gradient ("grad") moved most, beyond the tolerance."""
        moved = [d for d in self.nodes if getattr(d, which) is not None and getattr(d, which).beyond]
        return sorted(moved, key=lambda d: -_finite(getattr(d, which).distance))[:n]

    def moved_modules(self) -> list[tuple[str, float]]:
        """Modules (or parameters outside any) ranked by how far their parameters moved: the layers a
        fine-tuning or a few optimizer steps changed most, first."""
        best: dict[str, float] = {}
        for d in self.nodes:
            if d.node.get("kind") == "param" and d.value is not None and d.value.beyond:
                key = d.module or d.id
                best[key] = max(best.get(key, 0.0), _finite(d.value.distance))
        return sorted(best.items(), key=lambda kv: -kv[1])

    def summary_lines(self) -> list[str]:
        """The summary the picture's title, the command line and the pytest plugin show."""
        counts = f"{self.count(ADDED)} added, {self.count(REMOVED)} removed, {self.count(CHANGED)} changed " \
                 f"(op, shape or dtype), {self.count(NUMBERS)} with numbers beyond tolerance " \
                 f"(rtol {self.rtol:g}, atol {self.atol:g}), {self.count(SAME)} unchanged"
        lines = [f"nodes: {counts}"]
        lines += self.top_facts
        if self.loss is not None and self.loss.beyond:
            lines.append(f"loss: {self.loss.text('L')[2:]}")
        first = self.first_divergence
        if first is not None:
            what = f": {first.value.text('‖v‖')}" if first.value is not None and first.value.beyond else \
                f": {', '.join(first.facts)}"
            lines.append(f"first divergence (forward order): {first.id} ({first.op}){what}")
        elif self.first_gradient_divergence is not None:
            g = self.first_gradient_divergence
            lines.append(f"values agree; first gradient divergence (backward order): {g.id} ({g.op}): "
                         f"{g.grad.text('‖g‖')}")
        given = self.given
        if given:
            names = ", ".join(d.id for d in given[:TOP]) + (f" and {len(given) - TOP} more" if len(given) > TOP else "")
            lines.append(f"given values that differ: {names}")
        for which, symbol, title in (("value", "‖v‖", "largest value changes"), ("grad", "‖g‖", "largest gradient changes")):
            top = self.largest(which)
            if top:
                lines.append(f"{title}: " + "; ".join(f"{d.id} {getattr(d, which).text(symbol)}" for d in top))
        moved = self.moved_modules()
        if moved:
            lines.append("parameters moved most: " + ", ".join(f"{m} ({_pct(x)})" for m, x in moved[:TOP]))
        if self.renames:
            lines.append("matched by structure: " + "; ".join(self.renames[:TOP])
                         + (f"; and {len(self.renames) - TOP} more" if len(self.renames) > TOP else ""))
        return lines

    def text(self) -> str:
        verdict = "no difference beyond tolerance" if self.same else "differs beyond tolerance"
        return "\n".join([f"A: {self.a_label}", f"B: {self.b_label}", verdict] + self.summary_lines())

    def to_dict(self) -> dict:
        first = self.first_divergence
        return {"format": "cgviz-diff", "version": 1, "a": self.a_label, "b": self.b_label,
                "rtol": self.rtol, "atol": self.atol, "same": self.same,
                "counts": {s: self.count(s) for s in (SAME, NUMBERS, CHANGED, ADDED, REMOVED)},
                "first_divergence": None if first is None else {"id": first.id, "op": first.op},
                "loss": self.loss.to_dict() if self.loss else None, "facts": self.top_facts,
                "renames": self.renames, "summary": self.summary_lines(),
                "moved_modules": [[m, x] for m, x in self.moved_modules()],
                "nodes": [n.to_dict() for n in self.nodes], "edges": [e.to_dict() for e in self.edges]}


def difference(old: dict, new: dict, rtol: float | None = None, atol: float | None = None,
               a_label: str = "A", b_label: str = "B") -> Difference:
    """Compare golden document `old` (A) with `new` (B) under the snapshot's tolerances (None: the default)."""
    rtol = golden.RTOL if rtol is None else rtol
    atol = golden.ATOL if atol is None else atol
    a_by_id = {n["id"]: n for n in old["nodes"]}
    b_by_id = {n["id"]: n for n in new["nodes"]}
    matches = match(old["nodes"], new["nodes"])
    by_b = {m.b: m for m in matches}
    a_to_b = {m.a: m.b for m in matches}
    union_of_a = {}          # A id → union id
    for m in matches:
        union_of_a[m.a] = m.b
    for n in old["nodes"]:
        if n["id"] not in union_of_a:
            union_of_a[n["id"]] = f"A:{n['id']}" if n["id"] in b_by_id else n["id"]

    diffs: dict[str, NodeDiff] = {}
    for n in new["nodes"]:
        m = by_b.get(n["id"])
        diffs[n["id"]] = _pair(m, a_by_id[m.a], n, rtol, atol) if m else NodeDiff(n["id"], None, n["id"], ADDED, n)
    # the union in forward order: B's nodes, each removed node of A right after the union node of
    # its predecessor in A
    order: list[str] = []
    after: dict[str | None, list[str]] = {}
    prev = None
    for n in old["nodes"]:
        if n["id"] not in a_to_b:
            uid = union_of_a[n["id"]]
            diffs[uid] = NodeDiff(uid, n["id"], None, REMOVED, n)
            after.setdefault(union_of_a.get(prev) if prev else None, []).append(uid)
        prev = n["id"]
    order += after.pop(None, [])
    for n in new["nodes"]:
        order.append(n["id"])
        order += after.pop(n["id"], [])
    for rest in after.values():
        order += rest

    edges = _edges(old, new, a_to_b, union_of_a, diffs, rtol, atol)
    # the output and the loss are node ids: the same when A's lines up with B's (renamed or not)
    top = [f"{k}: {golden._show(old.get(k))} → {golden._show(new.get(k))}"
           for k in ("loss", "output", "seeded_with_ones")
           if new.get(k) not in (old.get(k), union_of_a.get(old.get(k)) if k != "seeded_with_ones" else None)]
    loss = change("loss", old.get("loss_value"), new.get("loss_value"), rtol, atol)
    return Difference([diffs[i] for i in order], edges, module_renames(matches, a_by_id, b_by_id), loss, rtol, atol,
                      a_label, b_label, top)


def _pair(m: Match, o: dict, n: dict, rtol: float, atol: float) -> NodeDiff:
    facts = [f"{k} {golden._show(o.get(k))} → {golden._show(n.get(k))}" for k in FACTS if o.get(k) != n.get(k)]
    d = NodeDiff(n["id"], o["id"], n["id"], CHANGED if facts else SAME, n, facts, how=m.how,
                 reason=None if m.how == NAME and m.a == m.b else m.reason(o, n))
    if o.get("shape") == n.get("shape"):
        d.value = change(n["id"], o.get("value"), n.get("value"), rtol, atol)
        d.grad = change(golden._d(n["id"]), o.get("grad"), n.get("grad"), rtol, atol)
        if d.status == SAME and any(c is not None and c.beyond for c in (d.value, d.grad)):
            d.status = NUMBERS
    return d


def _edges(old: dict, new: dict, a_to_b: dict, union_of_a: dict, diffs: dict, rtol: float,
           atol: float) -> list[EdgeDiff]:
    old_edges = {(e["src"], e["dst"], e["arg"]): e for e in old["edges"]}
    seen = set()
    out = []
    b_to_a = {b: a for a, b in a_to_b.items()}
    for e in new["edges"]:
        key = (b_to_a.get(e["src"]), b_to_a.get(e["dst"]), e["arg"])
        o = old_edges.get(key) if None not in key[:2] else None
        value = diffs[e["src"]].value
        if o is None:
            out.append(EdgeDiff(e["src"], e["dst"], e["arg"], ADDED))
            continue
        seen.add(key)
        facts = [f"{k} {golden._show(o.get(k))} → {golden._show(e.get(k))}" for k in golden.EDGE_FACTS
                 if o.get(k) != e.get(k)]
        grad = change(f"edge {e['src']} → {e['dst']}", o.get("grad"), e.get("grad"), rtol, atol) \
            if o.get("shape") == e.get("shape") else None
        status = CHANGED if facts else NUMBERS if any(c is not None and c.beyond for c in (value, grad)) else SAME
        out.append(EdgeDiff(e["src"], e["dst"], e["arg"], status, facts, value, grad))
    for key, o in old_edges.items():
        if key not in seen:
            out.append(EdgeDiff(union_of_a[o["src"]], union_of_a[o["dst"]], o["arg"], REMOVED))
    return out


def _finite(x: float) -> float:
    return x if math.isfinite(x) else 1e300


def _pct(x: float) -> str:
    return "NaN" if math.isnan(x) else ("∞" if math.isinf(x) else f"{100 * x:.3g}%")
