"""Two steps of a training record (`run.cgw@10` ↔ `run.cgw@500`), or two records at a common step,
compared per parameter and per module: what moved, ranked, and where the runs part (torch-free)."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

from ..view import golden
from ..core.errors import CgvizError
from ..core.fmt import num
from .classify import ADDED, NUMBERS, REMOVED, SAME
from .numbers import Change, _pct, _safe

SUFFIX = ".cgw"
# A quantity in the third place is only compared where both sides have it: a last step has no update
# after it, a zero ‖w‖ no ratio; a gradient on one side only is news.
PARAM_FIELDS = (("w", "‖w‖"), ("g", "‖g‖"), ("ratio", "‖g‖/‖w‖", True), ("update", "update", True), ("nan", "NaN"),
                ("inf", "inf"))
MODULE_FIELDS = (("mean", "mean"), ("std", "σ"), ("saturated", "saturated"), ("dead", "dead"),
                 ("grad", "‖∂L/∂out‖"))
TOP = 5         # how many the summary names in each ranking


@dataclass(frozen=True)
class RecordSpec:
    """A side that is a record: its file, and the step after `@` as given (None: not given)."""

    path: str
    step: str | None

    @property
    def label(self) -> str:
        return self.path if self.step is None else f"{self.path}@{self.step}"


def record_spec(source: Any) -> RecordSpec | None:
    """`run.cgw` or `run.cgw@STEP` (STEP a step number, `first` or `last`) as a RecordSpec; None for
    anything else. Only the last `@` can start a step, and only when what precedes it ends in .cgw,
    so `me@home/run.cgw` is a whole record and `me@home/run.cgw@5` its step 5."""
    if not isinstance(source, (str, os.PathLike)):
        return None
    text = os.fspath(source)
    if not isinstance(text, str) or "\n" in text:
        return None
    if text.lower().endswith(SUFFIX):
        return RecordSpec(text, None)
    head, sep, tail = text.rpartition("@")
    if sep and head.lower().endswith(SUFFIX):
        return RecordSpec(head, tail)
    return None


@dataclass(frozen=True)
class EntryDiff:
    """One parameter or sampled module at A's step and at B's. `changes`: quantity symbol → Change
    (those recorded on either side); `status`: same, numbers (beyond the tolerance), added, removed."""

    kind: str           # param | module
    name: str
    status: str
    changes: dict[str, Change] = field(default_factory=dict)
    op: str = ""        # a module's class, from the header's module_types

    @property
    def distance(self) -> float:
        """The largest relative change beyond the tolerance (0: none): what the ranking sorts by."""
        return max((c.distance for c in self.changes.values() if c.beyond), default=0.0)

    @property
    def top(self) -> tuple[str, Change] | None:
        """The quantity that changed most."""
        beyond = [(s, c) for s, c in self.changes.items() if c.beyond]
        return max(beyond, key=lambda sc: sc[1].distance) if beyond else None

    # what cgviz.diff.result.Comparison asks of a node
    @property
    def id(self) -> str:
        return f"{self.kind}:{self.name}"

    def text(self) -> str:
        said = "; ".join(c.text(s) for s, c in self.changes.items() if c.beyond)
        what = {ADDED: "only in B", REMOVED: "only in A"}.get(self.status, said or "unchanged")
        return f"{self.kind} {self.name}{f' ({self.op})' if self.op else ''}: {what}"

    def to_dict(self) -> dict:
        return {"kind": self.kind, "name": self.name, "op": self.op or None, "status": self.status,
                "distance": _safe(self.distance), "changes": {s: c.to_dict() for s, c in self.changes.items()}}


@dataclass
class RunDifference:
    """What changed from A's step to B's: per parameter and module, the loss, and for two records the
    first step at which their loss curves part."""

    a_label: str
    b_label: str
    a_step: int
    b_step: int
    a_loss: float
    b_loss: float
    loss: Change | None
    params: list[EntryDiff]
    modules: list[EntryDiff]             # in forward order (the graph's), else the header's order
    rtol: float
    atol: float
    forward_order: bool                  # the module order is the graph's forward order
    records: int = 1                     # 1: two steps of one record; 2: two records
    curve: dict | None = None            # two records: {"steps": n, "first": step or None, "a": …, "b": …}
    nonfinite: dict = field(default_factory=dict)   # side → the first step (≤ its compared step) with a NaN/inf
    graph: dict | None = None            # the record's graph (B's, else A's): the picture is drawn on it

    @property
    def nodes(self) -> list[EntryDiff]:
        return self.params + self.modules

    @property
    def first_divergence(self) -> EntryDiff | None:
        """The first module, in forward order, whose ‖∂L/∂out‖ changed beyond the tolerance."""
        for m in self.modules:
            c = m.changes.get("‖∂L/∂out‖")
            if m.status in (ADDED, REMOVED) or (c is not None and c.beyond):
                return m
        return None

    @property
    def moved(self) -> list[EntryDiff]:
        """The parameters whose ‖w‖ changed beyond the tolerance, most first."""
        out = [p for p in self.params if p.changes.get("‖w‖") is not None and p.changes["‖w‖"].beyond]
        return sorted(out, key=lambda p: -p.changes["‖w‖"].distance)

    @property
    def unmoved(self) -> list[EntryDiff]:
        """Parameters in both whose ‖w‖ is the same within the tolerance (frozen, or not trained)."""
        return [p for p in self.params if p.status not in (ADDED, REMOVED) and
                (p.changes.get("‖w‖") is None or not p.changes["‖w‖"].beyond)]

    @property
    def ranked(self) -> list[EntryDiff]:
        """Everything that changed beyond the tolerance, largest relative change first."""
        return sorted((e for e in self.nodes if e.status != SAME),
                      key=lambda e: (e.status not in (ADDED, REMOVED), -e.distance))

    @property
    def same(self) -> bool:
        return (all(e.status == SAME for e in self.nodes) and (self.loss is None or not self.loss.beyond)
                and (self.curve is None or self.curve.get("first") is None))

    def summary_lines(self) -> list[str]:
        lines = [f"A: {self.a_label} (step {self.a_step}, loss {num(self.a_loss)})  ↔  B: {self.b_label} "
                 f"(step {self.b_step}, loss {num(self.b_loss)})" +
                 (f": {self.loss.text('loss')}" if self.loss is not None and self.loss.beyond else "")]
        counts = {s: sum(1 for e in self.nodes if e.status == s) for s in (NUMBERS, ADDED, REMOVED, SAME)}
        line = (f"{len(self.params)} parameters and {len(self.modules)} modules compared (rtol {self.rtol:g}, "
                f"atol {self.atol:g}): {counts[NUMBERS]} changed, {counts[SAME]} unchanged")
        only = [(w, [e.name for e in self.nodes if e.status == s]) for w, s in (("A", REMOVED), ("B", ADDED))]
        lines.append(line + "".join(f"; only in {w}: {_names(n)}" for w, n in only if n))
        if self.moved:
            lines.append("moved most (‖w‖): " + ", ".join(f"{p.name} {_signed(p.changes['‖w‖'])}"
                                                          for p in self.moved[:TOP]))
        unmoved = self.unmoved
        if unmoved and len(unmoved) < len(self.params):
            lines.append(f"‖w‖ unchanged: {_names([p.name for p in unmoved])}")
        ranked = [e for e in self.ranked if e.status == NUMBERS]
        if ranked:
            lines.append("largest changes: " + "; ".join(f"{e.name} {e.top[1].text(e.top[0])}" for e in ranked[:3]))
        first = self.first_divergence
        order = "forward order" if self.forward_order else "the record's module order (no graph recorded)"
        if first is not None:
            c = first.changes.get("‖∂L/∂out‖")
            lines.append(f"first module in {order} whose gradient changed beyond tolerance: {first.name}"
                         f"{f' ({first.op})' if first.op else ''}" + (f", {c.text('‖∂L/∂out‖')}" if c else
                                                                       f", only in {'B' if first.status == ADDED else 'A'}"))
        elif self.modules:
            lines.append("no module's gradient changed beyond tolerance")
        for side, step in sorted(self.nonfinite.items()):
            lines.append(f"NaN/inf first recorded in {side} at step {step}")
        if self.curve is not None:
            c = self.curve
            if c["first"] is None:
                lines.append(f"loss curves agree within tolerance over the {c['steps']} steps both recorded")
            else:
                lines.append(f"loss curves first differ beyond tolerance at step {c['first']}: {num(c['a'])} → "
                             f"{num(c['b'])} (of {c['steps']} steps both recorded)")
        return lines

    def text(self) -> str:
        out = self.summary_lines()
        changed = self.ranked
        if changed:
            out.append("changed, most first:")
            out += [f"  {e.text()}" for e in changed]
        return "\n".join(out)

    def to_dict(self) -> dict:
        first = self.first_divergence
        return {"format": "cgviz-run-diff", "version": 1, "rtol": self.rtol, "atol": self.atol, "same": self.same,
                "a": {"label": self.a_label, "step": self.a_step, "loss": _safe(self.a_loss)},
                "b": {"label": self.b_label, "step": self.b_step, "loss": _safe(self.b_loss)},
                "loss": self.loss.to_dict() if self.loss is not None else None,
                "summary": self.summary_lines(),
                "moved_most": [p.name for p in self.moved], "unmoved": [p.name for p in self.unmoved],
                "ranked": [e.id for e in self.ranked],
                "first_gradient_divergence": first.name if first is not None else None,
                "module_order": "forward" if self.forward_order else "registration",
                "nonfinite": self.nonfinite,
                "loss_curves": None if self.curve is None else {k: _safe(v) for k, v in self.curve.items()},
                "params": [e.to_dict() for e in self.params], "modules": [e.to_dict() for e in self.modules]}


def _signed(c: Change) -> str:
    r = c.relative
    if r is None or not math.isfinite(r):
        return f"{num(c.before) if c.before is not None else 'none'} → {num(c.after) if c.after is not None else 'none'}"
    return f"{'+' if r >= 0 else '−'}{_pct(abs(r))}"


def _names(names: list[str], most: int = 6) -> str:
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def quantity(a, b, rtol: float, atol: float, both: bool = False) -> Change | None:
    """One recorded number at A and at B (None: not recorded on that side; both None: no Change).
    Beyond the tolerance by cgviz.view.golden's rule, |b − a| > atol + rtol·|a|; a NaN or ∞ on one side, or
    a number on one side only, is as far as it gets (unless `both`: then it is not compared)."""
    if a is None and b is None:
        return None
    fa, fb = (None if x is None else float(x) for x in (a, b))
    if fa is None or fb is None:
        return Change(fa, fb, 0.0 if both else math.inf, not both, "recorded on one side only")
    if not (math.isfinite(fa) and math.isfinite(fb)):
        same = (math.isnan(fa) and math.isnan(fb)) or fa == fb
        return Change(fa, fb, 0.0 if same else math.inf, not same)
    gap = abs(fb - fa)
    beyond = gap > atol + rtol * abs(fa)
    dist = gap / abs(fa) if fa else (math.inf if gap > atol else 0.0)
    return Change(fa, fb, dist if beyond else min(dist, rtol), beyond)


def _entries(kind: str, fields, a: dict, b: dict, names: list[str], rtol: float, atol: float,
             ops: dict | None = None) -> list[EntryDiff]:
    out = []
    for name in names:
        x, y = a.get(name), b.get(name)
        status = ADDED if x is None else REMOVED if y is None else SAME
        changes = {}
        for attr, symbol, *both in fields:
            c = quantity(getattr(x, attr), getattr(y, attr), rtol, atol, bool(both)) \
                if x is not None and y is not None else None
            if c is not None:
                changes[symbol] = c
        if status == SAME and any(c.beyond for c in changes.values()):
            status = NUMBERS
        out.append(EntryDiff(kind, name, status, changes, (ops or {}).get(name, "")))
    return out


def _union(*lists) -> list[str]:
    return list(dict.fromkeys(x for xs in lists for x in xs))


def forward_modules(graph: dict | None) -> list[str]:
    """Module paths in the order the graph's forward pass first enters them (parents before children)."""
    order: dict[str, None] = {}
    for n in (graph or {}).get("nodes", []) if isinstance(graph, dict) else []:
        m = n.get("module") if isinstance(n, dict) else None
        if isinstance(m, str) and m:
            parts = m.split(".")
            for i in range(1, len(parts) + 1):
                order.setdefault(".".join(parts[:i]))
    return list(order)


# ---- reading the two sides ----------------------------------------------------------------------
def _read(path: str, cache: dict):
    from ..cgw.read import read_run
    key = os.path.realpath(path)
    if key not in cache:
        run = read_run(path)
        if not run.steps:
            raise CgvizError(f"{path}: no complete step record yet; nothing to compare")
        cache[key] = run
    return cache[key]


def _recorded(run) -> str:
    steps = [s.step for s in run.steps]
    every = run.header.get("every")
    head = f"{len(steps)} recorded step{'s' * (len(steps) != 1)}, {steps[0]} to {steps[-1]}"
    return head + (f", every {every}" if isinstance(every, int) and every > 1 else "")


def _at(run, spec: RecordSpec, number: int | None = None):
    """The Step `spec` names (`@first`, `@last`, `@N`), or step `number` when it names none."""
    by = {}
    for s in run.steps:
        by.setdefault(s.step, s)
    if spec.step is not None:
        word = spec.step.strip().lower()
        if word == "first":
            return run.steps[0]
        if word == "last":
            return run.steps[-1]
        if not re.fullmatch(r"\d+", word):
            raise CgvizError(f"{spec.label}: after @ comes a step number, first or last, not {spec.step!r} "
                             f"({spec.path} has {_recorded(run)})")
        number = int(word)
    if number in by:
        return by[number]
    near = sorted(by, key=lambda k: (abs(k - number), k))[:2]
    raise CgvizError(f"{spec.label}: step {number} was not recorded ({spec.path} has {_recorded(run)}; "
                     f"nearest: {' and '.join(str(k) for k in sorted(near))})")


def _first_nonfinite(run, upto: int) -> int | None:
    for s in run.steps:
        if s.step > upto:
            return None
        if not math.isfinite(s.loss) or any(p.nan or p.inf for p in s.params.values()):
            return s.step
    return None


def run_difference(a: RecordSpec, b: RecordSpec, rtol: float | None = None, atol: float | None = None,
                   step: int | None = None) -> RunDifference:
    """Compare record sides `a` and `b`. A side without `@STEP` is taken at `step` when given, else at
    the other side's step when that is given, else at the last step both records have."""
    rtol = golden.RTOL if rtol is None else rtol
    atol = golden.ATOL if atol is None else atol
    cache: dict = {}
    ra, rb = _read(a.path, cache), _read(b.path, cache)
    two = ra is not rb
    if step is not None and a.step is not None and b.step is not None:
        from ..core.spelling import spell
        raise CgvizError(f"{spell('step', step)} has nothing to choose: both {a.label} and {b.label} name their step")
    sa = _at(ra, a) if a.step is not None else None
    sb = _at(rb, b) if b.step is not None else None
    if step is None:
        step = sa.step if sa is not None else sb.step if sb is not None else None
    if step is None:
        common = sorted({s.step for s in ra.steps} & {s.step for s in rb.steps})
        if not common:
            raise CgvizError(f"{a.path} and {b.path} have no recorded step in common ({a.path}: {_recorded(ra)}; "
                             f"{b.path}: {_recorded(rb)}); name the steps: {a.path}@N {b.path}@M")
        step = common[-1]
    sa = sa if sa is not None else _at(ra, a, step)
    sb = sb if sb is not None else _at(rb, b, step)
    ops = {**(ra.header.get("module_types") or {}), **(rb.header.get("module_types") or {})}
    params = _entries("param", PARAM_FIELDS, sa.params, sb.params, _union(ra.params, rb.params, sa.params, sb.params),
                      rtol, atol)
    graph = rb.graph or ra.graph
    order = forward_modules(graph)
    names = _union(ra.modules, rb.modules, sa.modules, sb.modules)
    forward = bool(order) and any(m in order for m in names)
    if forward:
        rank = {m: i for i, m in enumerate(order)}
        names = sorted(names, key=lambda m: (rank.get(m, len(rank)), names.index(m)))
    modules = _entries("module", MODULE_FIELDS, sa.modules, sb.modules, names, rtol, atol, ops)
    loss = quantity(sa.loss, sb.loss, rtol, atol)
    curve = None
    if two:
        la = {s.step: s.loss for s in ra.steps}
        lb = {s.step: s.loss for s in rb.steps}
        common = sorted(set(la) & set(lb))
        curve = {"steps": len(common), "first": None, "a": None, "b": None}
        for k in common:
            if quantity(la[k], lb[k], rtol, atol).beyond:
                curve.update(first=k, a=la[k], b=lb[k])
                break
    nonfinite = {}
    for side, run, s in (("A", ra, sa), ("B", rb, sb)):
        k = _first_nonfinite(run, s.step)
        if k is not None and (two or side == "A" or nonfinite.get("A") != k):
            nonfinite[side] = k
    if not two and nonfinite.get("A") == nonfinite.get("B"):
        nonfinite.pop("B", None)
    return RunDifference(a.label, b.label, sa.step, sb.step, sa.loss, sb.loss, loss, params, modules, rtol, atol,
                         forward, 2 if two else 1, curve, nonfinite, graph)
