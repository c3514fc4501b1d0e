"""Where a NaN or an infinity is born in a recorded model run (ops or autograd view), and why: the
op, the model's source line that called it, and the op's own reason where it has one (a square root
at 0, a log of 0, a division by 0, an exp that overflows, ∞ · 0). Pure and torch-free: it reads the
summaries a run kept (cgviz.core.summary), as the expression engine's scan reads its arrays.

Forward: an op whose output holds NaN (or ∞) while every tensor it read was finite is where it was
born. Backward: an op whose gradient along one input edge is non-finite while the gradient reaching
it, its own output and its inputs were finite is where the gradient's NaN was born (TorchLens's
`bisect_nan_backward` asks the same of the grad_fns). A sum of finite gradients at a tensor read
twice that overflows (or meets +∞ and −∞) is named at that tensor.

An infinity born in the forward pass is ordinary (an attention mask's −∞ is meant), so it is named
only when it reaches the loss or becomes NaN; a NaN is never meant and is always named.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

FINITE, INF, NAN = 0, 1, 2
WORD = {INF: "an infinity", NAN: "NaN"}
SHORT = {INF: "∞", NAN: "NaN"}
# ln of each dtype's largest number: exp overflows above it
EXP_LIMIT = {"float32": 88.72, "float64": 709.78, "float16": 11.09, "bfloat16": 88.72}


@dataclass(frozen=True)
class Birth:
    """One place a non-finite value first appears."""

    node: str                 # the op (its node id), or a tensor (a parameter holding NaN, a sum)
    op: str | None
    phase: str                # forward | backward | sum
    level: int                # INF or NAN
    reason: str               # why, in words
    site: str = ""            # `model.py:16: r = torch.sqrt(z)`, when the recorder knew the caller
    into: str | None = None   # backward: the node the non-finite gradient flows into
    via: tuple[str, ...] = () # a NaN made from infinities: where those infinities were born

    @property
    def what(self) -> str:
        return "NaN" if self.level == NAN else "inf"

    def message(self) -> str:
        """The warning line."""
        at = f"{self.node} [{self.op}]" if self.op and self.op not in self.node.rsplit("/", 1)[-1] else self.node
        if self.site:
            at += f" ({self.site})"
        if self.phase == "forward":
            head = f"{WORD[self.level]} is born in the forward pass at {at}"
        elif self.phase == "backward":
            head = (f"{WORD[self.level]} is born in the backward pass at {at}: the gradient it sends back to "
                    f"{self.into} is {self.what}, while the gradient reaching it is finite")
        else:
            head = f"{WORD[self.level]} is born where the gradients of {at} are summed over its uses"
        return f"{head}: {self.reason}"

    def mark(self) -> str:
        """The picture's line on the op: `⚠ NaN born here (backward): square root at 0`."""
        short = self.reason.split(",")[0].split(" (")[0]
        return f"⚠ {self.what} born here ({self.phase}): {short}"

    def to_json(self) -> dict:
        source, _, code = self.site.partition(": ")
        return {"node": self.node, "op": self.op, "phase": self.phase, "what": self.what,
                "reason": self.reason, "source": source or None, "code": code or None, "into": self.into}


# ---- levels ---------------------------------------------------------------------------------------

def level(t) -> int | None:
    """0 finite, 1 holds an infinity, 2 holds NaN; None when unknown (no statistics: the meta device,
    an autograd-view value autograd did not keep). A missing tensor (no gradient) is finite."""
    if t is None:
        return FINITE
    if isinstance(t, list):
        levels = [level(x) for x in t]
        return None if None in levels else max(levels, default=FINITE)
    if t.stats is None:
        return None
    if t.has_nan:
        return NAN
    return INF if t.nonfinite else FINITE


def _worst(levels) -> int | None:
    levels = list(levels)
    return None if None in levels else max(levels, default=FINITE)


# ---- what a tensor's summary says ----------------------------------------------------------------

def _vals(t):
    import numpy as np
    return None if t is None or t.values is None else np.asarray(t.values, dtype=float)


def _any(t, test, on_stats) -> bool | None:  # t: a TensorInfo
    """Whether some element passes `test` (exact when the values were kept, else from min/max by
    `on_stats(lo, hi)`, which may say None: cannot tell)."""
    if t is None or t.stats is None:
        return None
    v = _vals(t)
    if v is not None:
        return bool(test(v).any())
    lo, hi = t.stats.get("min"), t.stats.get("max")
    if lo is None or hi is None or lo != lo or hi != hi:
        return None
    return on_stats(lo, hi)


def has_zero(t) -> bool | None:
    return _any(t, lambda v: v == 0, lambda lo, hi: True if lo == 0 or hi == 0 else (False if lo > 0 or hi < 0 else None))


def has_negative(t) -> bool | None:
    return _any(t, lambda v: v < 0, lambda lo, hi: lo < 0)


def has_below(t, x: float) -> bool | None:
    return _any(t, lambda v: v < x, lambda lo, hi: lo < x)


def has_equal(t, x: float) -> bool | None:
    return _any(t, lambda v: v == x, lambda lo, hi: True if lo == x or hi == x else (False if lo > x or hi < x else None))


def _abs_over(t, x: float) -> bool | None:
    return _any(t, lambda v: abs(v) > x, lambda lo, hi: lo < -x or hi > x)


def _max(t) -> float | None:
    return None if t is None or t.stats is None else t.stats.get("max")


# ---- the ops' own reasons ------------------------------------------------------------------------

def op_key(op: str | None) -> str:
    """The op's name as the reasons know it: torch's name without an in-place `_` or Python's
    reversed-operand `r` (rtruediv), or an autograd node's (SqrtBackward0 → sqrt)."""
    if not op:
        return ""
    m = re.fullmatch(r"([A-Z][A-Za-z0-9]*?)Backward\d*", op)
    if m:
        return re.sub(r"(?<!^)(?=[A-Z])", "_", m.group(1)).lower()
    return op.rstrip("_")


_LOGS = {"log", "log2", "log10"}
_DIVS = {"div", "truediv", "true_divide", "divide", "floor_divide", "floordiv"}
_RDIVS = {"rtruediv", "rdiv", "rfloordiv"}
_EXPS = {"exp", "exp2", "expm1"}
_NORMS = {"norm", "linalg_vector_norm", "vector_norm", "linalg_norm", "dist", "cdist", "pdist"}
_STDS = {"std", "var", "std_mean", "var_mean"}


def _denominator(key: str, ins: list):
    if key in _RDIVS or key == "reciprocal":
        return ins[0] if ins else None
    if key in _DIVS:
        return ins[1] if len(ins) > 1 else None
    return None


def forward_reason(op: str | None, ins: list, out) -> tuple[str, int] | None:
    """Why op's output is not finite, and how bad it is, from what it read; None: no known reason."""
    key = op_key(op)
    x = ins[0] if ins else None
    dtype = x.dtype if x is not None else "float32"
    if key == "sqrt" and has_negative(x):
        return "square root of a negative number", NAN
    if key == "rsqrt":
        if has_negative(x):
            return "1/√x of a negative number", NAN
        if has_zero(x):
            return "1/√x at 0", INF
    if key in _LOGS:
        if has_negative(x):
            return f"{key} of a negative number" + (" (and of 0)" if has_zero(x) else ""), NAN
        if has_zero(x):
            return f"{key} of 0", INF
    if key == "log1p":
        if has_below(x, -1):
            return "log1p below −1", NAN
        if has_equal(x, -1):
            return "log1p at −1", INF
    d = _denominator(key, ins)
    if d is not None and has_zero(d):
        return "division by zero" + (" (0/0 is NaN)" if level(out) == NAN else ""), NAN if level(out) == NAN else INF
    if key in _EXPS:
        limit = EXP_LIMIT.get(dtype)
        top = _max(x)
        if limit is not None and top is not None and top > limit:
            return f"exp overflowed: its input reaches {top:.4g}, and e^x passes {dtype}'s largest number above {limit:g}", INF
    if key in ("acos", "asin") and _abs_over(x, 1):
        return f"{key} of a number outside [−1, 1]", NAN
    if key == "atanh":
        if _abs_over(x, 1):
            return "atanh of a number outside [−1, 1]", NAN
        if has_equal(x, 1) or has_equal(x, -1):
            return "atanh at ±1", INF
    if key == "pow" and x is not None:
        if level(out) == NAN and has_negative(x):
            return "a negative number raised to a fractional power", NAN
        if level(out) == INF and has_zero(x):
            return "0 raised to a negative power", INF
    return None


def backward_reason(op: str | None, ins: list, out, k: int) -> str | None:
    """Why op's gradient along input k is not finite while what reached it was: where its slope is
    infinite or undefined; None: no known reason."""
    key = op_key(op)
    x = ins[0] if ins else None
    if key == "sqrt" and (has_zero(x) or has_zero(out)):
        return "square root at 0, whose slope is infinite"
    if key == "rsqrt" and (has_zero(x) or _max(out) == math.inf):
        return "1/√x at 0, whose slope is infinite"
    if key in _LOGS and has_zero(x):
        return f"{key} at 0, whose slope 1/x is infinite"
    if key == "log1p" and has_equal(x, -1):
        return "log1p at −1, whose slope is infinite"
    d = _denominator(key, ins)
    if d is not None and has_zero(d):
        return "division by zero: the slope 1/b is infinite there"
    if key == "pow" and has_zero(x):
        return "x^p at 0 with p < 1, whose slope is infinite"
    if key in ("acos", "asin") and (has_equal(x, 1) or has_equal(x, -1)):
        return f"{key} at ±1, whose slope is infinite"
    if key in _NORMS and x is not None and x.stats is not None and x.stats.get("norm") == 0:
        return "the norm of a zero vector, whose slope is undefined"
    if key in _STDS and x is not None and x.stats is not None and x.stats.get("std") == 0:
        return f"{key} of equal values (0), whose slope is infinite"
    if key in _EXPS and level(out) == INF:
        return "exp overflowed, and so did its slope"
    return None


# ---- the scan ------------------------------------------------------------------------------------

def _site(node) -> str:
    site = node.meta.get("site")
    if not site:
        return ""
    from pathlib import Path
    import linecache
    name, line = site
    code = linecache.getline(name, line).strip()
    return f"{Path(name).name}:{line}" + (f": {code}" if code else "")


def find_births(graph, run) -> list[Birth]:
    """Every place a NaN (or an infinity that matters) is first born, forward then backward."""
    births: list[Birth] = []
    vlev: dict[str, int | None] = {}
    origins: dict[str, tuple[str, ...]] = {}     # where the infinities a node holds were born
    inf_born: dict[str, Birth] = {}
    for node in graph:
        out = run.values.get(node.id)
        lv = level(out)
        if node.kind != "op":
            vlev[node.id] = lv
            if lv == NAN:
                births.append(Birth(node.id, None, "forward", NAN,
                                    f"the {node.kind} {node.name or node.id} holds NaN before any op reads it"))
            elif lv == INF:
                origins[node.id] = (node.id,)
            continue
        ins = [run.edge_values.get((node.id, k)) for k in range(len(node.inputs))]
        arriving = _worst(level(t) for t in ins)
        seen = tuple(dict.fromkeys(o for src in node.inputs for o in origins.get(src, ())))
        if lv is None:
            # the value was not kept (the autograd view): an op's domain still tells, from its inputs
            why = forward_reason(node.op, ins, None) if arriving == FINITE else None
            vlev[node.id] = why[1] if why else (arriving if arriving else None)
            if why:
                births.append(Birth(node.id, node.op, "forward", why[1], why[0], _site(node)))
            continue
        vlev[node.id] = lv
        if lv == FINITE:
            continue
        if arriving is not None and lv <= arriving:
            if seen:
                origins[node.id] = seen
            continue
        if arriving is None:
            continue
        why = forward_reason(node.op, ins, out)
        if why is None and arriving == INF:
            where = ", ".join(seen[:3])
            why = (f"{node.op} turned an infinity in its input into NaN (as ∞ · 0, ∞ − ∞, ∞ / ∞ do)"
                   + (f"; the infinity was born at {where}" if where else ""), NAN)
        reason = why[0] if why else f"{node.op} produced {WORD[lv]} from finite inputs"
        b = Birth(node.id, node.op, "forward", lv, reason, _site(node), via=seen if arriving == INF else ())
        if lv == NAN:
            births.append(b)
        else:
            inf_born[node.id] = b
            origins[node.id] = (node.id,)
    # an infinity matters when it reaches the loss or was turned into NaN
    wanted = set(origins.get(graph.output, ())) if level(run.values.get(graph.output)) else set()
    for b in births:
        wanted.update(b.via)
    births[:0] = [inf_born[n] for n in inf_born if n in wanted]
    if len(births) > 1:
        order = {n.id: i for i, n in enumerate(graph)}
        births.sort(key=lambda b: order.get(b.node, 0))
    births.extend(_backward(graph, run, vlev))
    return births


def _backward(graph, run, vlev: dict) -> list[Birth]:
    out: list[Birth] = []
    consumers: dict[str, list[tuple[str, int]]] = {}
    for node in graph:
        for k, src in enumerate(node.inputs):
            consumers.setdefault(src, []).append((node.id, k))

    def edge(n, k):
        return run.edge_grads.get((n, k))

    # what reaches a node: its own gradient and what every edge out of it carried back
    def arriving(node_id: str) -> int:
        levels = [level(run.grads.get(node_id)) or FINITE]
        levels += [level(edge(c, k)) or FINITE for c, k in consumers.get(node_id, ())]
        return max(levels)

    for node in reversed(graph.nodes):
        if node.kind != "op":
            continue
        known = max([arriving(node.id), vlev.get(node.id) or FINITE]
                    + [vlev.get(i) or FINITE for i in node.inputs])
        ins = [run.edge_values.get((node.id, k)) for k in range(len(node.inputs))]
        for k, src in enumerate(node.inputs):
            lv = level(edge(node.id, k))
            if not lv or lv <= known:
                continue
            reason = backward_reason(node.op, ins, run.values.get(node.id), k)
            if reason is None:
                reason = "its slope is infinite or undefined here"
            if lv == NAN and "infinite" in reason:
                reason += " (∞ · 0 = NaN where the gradient reaching it is 0)"
            out.append(Birth(node.id, node.op, "backward", lv, reason, _site(node), into=src))
    # a tensor read twice whose finite gradients sum to something that is not
    for node in reversed(graph.nodes):
        uses = consumers.get(node.id, ())
        g = level(run.grads.get(node.id))
        if not g or node.id == graph.output or len(uses) < 2 or any(edge(c, k) is None for c, k in uses):
            continue
        from_edges = max(level(edge(c, k)) or FINITE for c, k in uses)
        if g > max(from_edges, vlev.get(node.id) or FINITE):
            out.append(Birth(node.id, node.op, "sum", g,
                             f"the gradients from its {len(uses)} uses are each "
                             f"{'finite' if from_edges == FINITE else 'at worst infinite'}, but their sum is "
                             f"{WORD[g]} (they overflow, or +∞ and −∞ cancel)", _site(node)))
    return out


def traced_to(graph, births: list[Birth], names: list[str]) -> str:
    """`: it was born in the backward pass at sqrt (model.py:16)`: the birth the parameters'
    non-finite gradients flowed from (one downstream of them), said briefly; '' when none is known."""
    if not births:
        return ""
    ids = {n.name: n.id for n in graph if n.kind == "param"}
    upstream: dict[str, set[str]] = {}

    def ancestors(node_id: str) -> set[str]:
        if node_id not in upstream:
            seen, todo = set(), [node_id]
            while todo:
                n = todo.pop()
                if n in seen or n not in graph:
                    continue
                seen.add(n)
                todo.extend(graph[n].inputs)
            upstream[node_id] = seen
        return upstream[node_id]
    hits = []
    for b in births:
        start = b.into if b.phase == "backward" else b.node
        if start is None:
            continue
        if any(ids.get(n) in ancestors(start) for n in names) or b.phase == "forward":
            hits.append(b)
    if not hits:
        return ""
    first = hits[0]
    where = f" ({first.site.split(': ')[0]})" if first.site else ""
    more = f" (and {len(hits) - 1} more place{'s' if len(hits) > 2 else ''})" if len(hits) > 1 else ""
    return f": it was born in the {first.phase} pass at {first.node}{where}{more}"
