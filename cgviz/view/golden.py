"""The machine-independent golden of a drawing (format `cgviz-snapshot`) and a tolerant comparison that says what changed, node by node."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from ..core.errors import CgvizError
from ..core.fmt import num
from .export import dumps as graph_dumps, json_safe

FORMAT = "cgviz-snapshot"
VERSION = 1
# A tensor of up to this many elements is kept in full, a larger one by its mean, std, min, max and
# norm. An expression program is small and its numbers are the point; a model's tensors are kept as
# the picture shows them (values inline up to 4 elements), so its golden is kilobytes, not megabytes.
FULL = {"expression": 64, "model": 4}
# Ten significant digits: far below any sensible tolerance, and `0.1 + 0.2` is kept as 0.3.
DIGITS = 10
# float32 kernels differ by CPU and thread count in the last bits; over a few dozen layers and
# reductions that grows to ~1e-6 of a tensor's scale (measured: tests/test_golden.py). rtol 1e-4
# leaves a hundredfold margin and still fails a real change (w 0.5 → 0.50005 does not pass).
RTOL = 1e-4
# Only where a whole tensor is ~0: a difference relative to nothing at all.
ATOL = 1e-12
STATS = ("mean", "std", "min", "max", "norm")
# The facts compared exactly, per node (the picture's structure); `inputs` are compared as edges.
NODE_FACTS = ("kind", "op", "attrs", "shape", "dtype", "module", "module_class", "outputs", "requires_grad")
EDGE_FACTS = ("shape", "dtype")


class GoldenError(CgvizError):
    """A golden file that is not a cgviz-snapshot document."""


# ---- the document ----------------------------------------------------------------------------------
def document(drawing) -> dict:
    """The golden of a `cgviz.Drawing`: its cgviz-graph JSON less what varies without meaning (the
    source line numbers, large tensors' values), plus the picture's folds."""
    return from_graph(drawing.to_dict(), loss=drawing.loss, folds=drawing.folds)


def from_graph(doc: dict, loss: float | None = None, folds: list[str] | None = None) -> dict:
    """The golden of a cgviz-graph document (`--format json`)."""
    model = dict(doc.get("model") or {})
    loss_value = model.pop("loss_value", loss)
    if loss_value is None:           # an expression's document: the loss is its scalar output's value
        out_node = next((n for n in doc["nodes"] if n["id"] == doc.get("output")), None)
        if out_node is not None and out_node.get("shape") == [] and not isinstance(out_node.get("value"), list):
            loss_value = out_node.get("value")
    out: dict = {"format": FORMAT, "version": VERSION, "source": doc.get("source"), "loss": doc.get("loss"),
                 "output": doc.get("output"), "loss_value": _round(loss_value),
                 "seeded_with_ones": doc.get("seeded_with_ones")}
    if model:
        out["model"] = model
        out["folds"] = list(folds or [])
    full = FULL["model" if model else "expression"]
    nodes = []
    for n in doc["nodes"]:
        item = {"id": n["id"]} | {k: n[k] for k in NODE_FACTS if k in n and n[k] not in (None, {}, "")}
        item["value"] = _tensor(n.get("value"), n.get("value_stats"), n.get("shape"), full)
        item["grad"] = _tensor(n.get("grad"), n.get("grad_stats"), n.get("shape"), full)
        nodes.append(item)
    shapes = {n["id"]: n.get("shape") for n in doc["nodes"]}
    edges = []
    for e in doc["edges"]:
        item = {"src": e["src"], "dst": e["dst"], "arg": e["arg"]}
        item |= {k: e[k] for k in EDGE_FACTS if e.get(k) is not None}
        item["grad"] = _tensor(e.get("grad"), e.get("grad_stats"), e.get("shape", shapes.get(e["src"])), full)
        edges.append(item)
    out.update(nodes=nodes, edges=edges)
    return out


def _tensor(values, stats, shape, full: int):
    """A value or gradient: the numbers when small, else the statistics (a dict)."""
    if values is None and stats is None:
        return None
    size = math.prod(shape) if shape is not None else 1
    if values is not None and size <= full:
        return _round(values)
    return {k: _round(stats.get(k)) for k in STATS} if stats else None


def _round(x):
    """Numbers to DIGITS significant digits; NaN and infinities as the JSON document writes them."""
    if isinstance(x, float):
        return float(f"{x:.{DIGITS}g}") if math.isfinite(x) else json_safe(x)
    if isinstance(x, (list, tuple)):
        return [_round(v) for v in x]
    return x


def dumps(doc: dict) -> str:
    """One node or edge per line, so a changed golden reads as a changed node in a pull request."""
    return graph_dumps(doc)


def loads(text: str | bytes, where: str = "the golden") -> dict:
    """A golden's document, or GoldenError saying what is wrong with the file."""
    try:
        doc = json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise GoldenError(f"{where} is not valid JSON ({e}); restore it from version control or write it "
                          "again with the update option") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise GoldenError(f"{where} is not a {FORMAT} document (its \"format\" should be {FORMAT!r})")
    if doc.get("version") != VERSION:
        raise GoldenError(f"{where} is {FORMAT} version {doc.get('version')!r}; this cgviz reads version "
                          f"{VERSION}: write it again with the update option")
    if not isinstance(doc.get("nodes"), list) or not isinstance(doc.get("edges"), list):
        raise GoldenError(f"{where} has no \"nodes\" and \"edges\" lists")
    return doc


# ---- the comparison --------------------------------------------------------------------------------
@dataclass
class GraphDiff:
    """What changed from a golden to a new document: `lines` one fact each, structure first."""

    structure: list[str] = field(default_factory=list)
    numbers: list[str] = field(default_factory=list)
    added: int = 0
    removed: int = 0
    edges_added: int = 0
    edges_removed: int = 0
    rtol: float = RTOL
    atol: float = ATOL

    @property
    def same(self) -> bool:
        return not self.structure and not self.numbers

    @property
    def summary(self) -> str:
        """`0 nodes added, 0 removed; 9 numbers beyond tolerance` — the table's detail."""
        parts = [f"{self.added} node{'s' * (self.added != 1)} added, {self.removed} removed"]
        if self.edges_added or self.edges_removed:
            parts.append(f"{self.edges_added} edge{'s' * (self.edges_added != 1)} added, {self.edges_removed} removed")
        others = len(self.structure) - self.added - self.removed - self.edges_added - self.edges_removed
        if others:
            parts.append(f"{others} other change{'s' * (others != 1)} of structure")
        if self.numbers:
            parts.append(f"{len(self.numbers)} number{'s' * (len(self.numbers) != 1)} beyond tolerance "
                         f"(rtol {self.rtol:g}, atol {self.atol:g})")
        return "; ".join(parts)

    @property
    def changes(self) -> list[str]:
        return self.structure + self.numbers

    @property
    def lines(self) -> list[str]:
        return self.changes + [self.summary]

    def text(self) -> str:
        return "\n".join(self.lines)


def compare(old: dict, new: dict, rtol: float | None = None, atol: float | None = None) -> GraphDiff:
    """Structure exactly (nodes, ops, edges, shapes, dtypes, modules, folds), numbers within
    |new − old| ≤ atol + rtol·max(|old|, scale), scale being the golden tensor's largest magnitude:
    float32 rounding grows with the magnitudes summed, so a mean near 0 of values near 1 carries
    errors near 1e-7, not near 1e-7 of itself. A tolerance not given (None) is the default."""
    diff = GraphDiff(rtol=RTOL if rtol is None else rtol, atol=ATOL if atol is None else atol)
    s = diff.structure
    for key in ("loss", "output", "seeded_with_ones", "model", "folds"):
        if old.get(key) != new.get(key):
            s.append(f"{key}: {_show(old.get(key))} → {_show(new.get(key))}")
    on, nn = {n["id"]: n for n in old["nodes"]}, {n["id"]: n for n in new["nodes"]}
    for n in new["nodes"]:
        if n["id"] not in on:
            s.append(f"added node {_describe(n)}")
            diff.added += 1
    for n in old["nodes"]:
        if n["id"] not in nn:
            s.append(f"removed node {_describe(n)}")
            diff.removed += 1
    oe, ne = {_edge_key(e): e for e in old["edges"]}, {_edge_key(e): e for e in new["edges"]}
    for e in new["edges"]:
        if _edge_key(e) not in oe:
            s.append(f"added edge {_edge_name(e)}")
            diff.edges_added += 1
    for e in old["edges"]:
        if _edge_key(e) not in ne:
            s.append(f"removed edge {_edge_name(e)}")
            diff.edges_removed += 1
    changed_grads = set()
    output = new.get("output")
    # What was given (an input's, a param's or a constant's value) is said first: it is the cause a
    # reviewer looks for (w: 0.5 → 0.6), and everything after it in graph order follows from it.
    for n in new["nodes"]:
        o = on.get(n["id"])
        if o is not None and n.get("kind") != "op" and o.get("shape") == n.get("shape"):
            _numbers(diff, n["id"], o.get("value"), n.get("value"))
    for n in new["nodes"]:
        o = on.get(n["id"])
        if o is None:
            continue
        for key in NODE_FACTS:
            if o.get(key) != n.get(key):
                s.append(f"{n['id']}: {key} {_show(o.get(key))} → {_show(n.get(key))}")
        if o.get("shape") != n.get("shape"):
            continue                       # its numbers cannot be set side by side
        if n.get("kind") == "op" and (n["id"] != output or new.get("loss_value") is None):
            _numbers(diff, n["id"], o.get("value"), n.get("value"))   # the output's value is the loss line
        if _numbers(diff, _d(n["id"]), o.get("grad"), n.get("grad")):
            changed_grads.add(n["id"])
    for e in new["edges"]:
        o = oe.get(_edge_key(e))
        if o is None:
            continue
        for key in EDGE_FACTS:
            if o.get(key) != e.get(key):
                s.append(f"edge {_edge_name(e)}: {key} {_show(o.get(key))} → {_show(e.get(key))}")
        # an edge's gradient changes with its source's: said once, at the node, unless only the edge moved
        if e["src"] not in changed_grads and o.get("shape") == e.get("shape"):
            _numbers(diff, f"{_d(e['src'])} via {e['dst']}", o.get("grad"), e.get("grad"))
    _numbers(diff, "loss", old.get("loss_value"), new.get("loss_value"))
    return diff


def _d(node_id: str) -> str:
    return f"∂L/∂{node_id}" if "/" not in node_id else f"∂L/∂({node_id})"


def _edge_key(e: dict) -> tuple:
    return e["src"], e["dst"], e["arg"]


def _edge_name(e: dict) -> str:
    return f"{e['src']} → {e['dst']} (argument {e['arg'] + 1})"


def _describe(n: dict) -> str:
    what = n.get("op") or n.get("kind")
    shape = f" {_show(n['shape'])}" if n.get("shape") not in (None, []) else ""
    module = f" in {n['module']}" if n.get("module") else ""
    return f"{n['id']} ({what}{shape}{module})"


def _show(x) -> str:
    if x is None:
        return "none"
    if isinstance(x, str):
        return x
    return json.dumps(x, ensure_ascii=False)


def _numbers(diff: GraphDiff, label: str, old, new) -> bool:
    """Add a line when `old` and `new` differ beyond the tolerance; True when they do."""
    line = _number_change(label, old, new, diff.rtol, diff.atol)
    if line:
        diff.numbers.append(line)
    return bool(line)


def _number_change(label: str, old, new, rtol: float, atol: float) -> str | None:
    if old is None or new is None:
        return None if old is new else f"{label}: {_num(old)} → {_num(new)}"
    if isinstance(old, dict) or isinstance(new, dict):
        if not (isinstance(old, dict) and isinstance(new, dict)):
            return f"{label}: {_show(old)} → {_show(new)}"
        scale = _scale([old.get("min"), old.get("max")])
        moved = [f"{k} {_pair(old.get(k), new.get(k))}" for k in STATS
                 if not _close(old.get(k), new.get(k), scale, rtol, atol)]
        return f"{label}: {', '.join(moved)}" if moved else None
    a, b = _flat(old), _flat(new)
    if len(a) != len(b):
        return f"{label}: {_show(old)} → {_show(new)}"
    scale = _scale(a)
    bad = [i for i, (x, y) in enumerate(zip(a, b)) if not _close(x, y, scale, rtol, atol)]
    if not bad:
        return None
    if not isinstance(old, list):
        return f"{label}: {_pair(old, new)}"
    if len(a) <= 4:
        return f"{label}: {_tree(old)} → {_tree(new)}"
    worst = max(bad, key=lambda i: _gap(a[i], b[i]))
    return f"{label}: {len(bad)} of {len(a)} elements, most at [{_index(old, worst)}]: {_pair(a[worst], b[worst])}"


def _flat(x) -> list:
    if isinstance(x, list):
        return [v for item in x for v in _flat(item)]
    return [x]


def _index(nested: list, flat_index: int) -> str:
    """The multi-index of the flat position `flat_index` in a nested list."""
    dims, x = [], nested
    while isinstance(x, list):
        dims.append(len(x))
        x = x[0] if x else None
    idx = []
    for d in reversed(dims):
        idx.append(flat_index % d if d else 0)
        flat_index //= d if d else 1
    return ", ".join(str(i) for i in reversed(idx))


def _scale(values) -> float:
    finite = [abs(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
    return max(finite, default=0.0)


def _close(x, y, scale: float, rtol: float, atol: float) -> bool:
    """y is the golden's number, x the new one; strings ("NaN", "Infinity") and None match exactly."""
    if isinstance(x, str) or isinstance(y, str) or x is None or y is None:
        return x == y
    return abs(x - y) <= atol + rtol * max(abs(y), scale)


def _gap(x, y) -> float:
    try:
        return abs(x - y)
    except TypeError:
        return math.inf


def _num(x) -> str:
    """As the picture writes a number (4 digits), but a whole number in full: 12000, not 1.2e4."""
    if x is None:
        return "none"
    if isinstance(x, str):
        return {"NaN": "NaN", "Infinity": "inf", "-Infinity": "-inf"}.get(x, x)
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return num(x)


def _tree(x) -> str:
    """A small nested list as the picture writes it: `[[1, 0.5], [2, 3]]`."""
    return "[" + ", ".join(_tree(v) for v in x) + "]" if isinstance(x, list) else _num(x)


def _pair(old, new) -> str:
    """`0.5 → 0.6`, with as many digits as it takes to tell the two apart (4 to 10)."""
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (old, new)):
        return f"{_num(old)} → {_num(new)}"
    a, b = _num(old), _num(new)
    digits = 4
    while a == b and digits < DIGITS:
        digits += 1
        a, b = num(old, digits), num(new, digits)
    return f"{a} → {b}"
