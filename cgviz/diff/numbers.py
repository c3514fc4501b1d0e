"""How far a value or gradient moved from A to B: beyond the snapshot's tolerance or not (cgviz.view.golden's
rule, reused), its norm before and after, and one relative distance to rank the changes by."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..view import golden
from ..core.fmt import num


@dataclass(frozen=True)
class Change:
    """One tensor in A and in B. `before`/`after` are norms (‖v‖ or ‖g‖, None when unknown);
    `distance` is |B − A| relative to A's scale (0: the same); `beyond`: past the tolerance, and
    `detail` then says so in cgviz.view.golden's words (`4 of 8 elements, most at [3]: 0.5 → 0.6`)."""

    before: float | None
    after: float | None
    distance: float
    beyond: bool
    detail: str | None = None
    scalar: bool = False        # one number: before/after are it, signed, not a norm

    @property
    def relative(self) -> float | None:
        """(‖B‖ − ‖A‖) / ‖A‖: the percentage the picture writes."""
        if self.before is None or self.after is None or not self.before or not math.isfinite(self.before):
            return None
        return (self.after - self.before) / abs(self.before)

    def text(self, symbol: str) -> str:
        """`‖g‖ 3.2 → 0.004, −99.9%`."""
        if self.scalar:     # ‖v‖ of one number hides its sign: `v −0.5 → 0.5`
            symbol = symbol.strip("‖")
        head = f"{symbol} {_n(self.before)} → {_n(self.after)}"
        r = self.relative
        if r is None or not math.isfinite(r):
            return head
        return f"{head}, {'+' if r >= 0 else '−'}{_pct(abs(r))}"

    def to_dict(self) -> dict:
        return {"scalar": self.scalar, "before": _safe(self.before), "after": _safe(self.after), "relative": _safe(self.relative),
                "distance": _safe(self.distance), "beyond": self.beyond, "detail": self.detail}


def change(label: str, old, new, rtol: float, atol: float) -> Change | None:
    """The Change from `old` to `new` (a golden's number, nested list or statistics dict), or None
    when either side has none."""
    if old is None or new is None:
        return None
    detail = golden._number_change(label, old, new, rtol, atol)
    if _number(old) and _number(new):
        return Change(_float(old), _float(new), distance(old, new), detail is not None, detail, scalar=True)
    return Change(norm(old), norm(new), distance(old, new), detail is not None, detail)


def _float(x) -> float:
    return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[x] if isinstance(x, str) else x


def _number(x) -> bool:
    """One number, a NaN or an infinity as the golden writes them ("NaN", "Infinity") included."""
    return (isinstance(x, (int, float)) and not isinstance(x, bool)) or x in ("NaN", "Infinity", "-Infinity")


def norm(x) -> float | None:
    """‖x‖ of a golden's tensor: its statistics' norm, or the L2 norm of its numbers."""
    if isinstance(x, dict):
        v = x.get("norm")
        return v if isinstance(v, (int, float)) else None
    flat = [v for v in golden._flat(x)]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in flat):
        return math.nan
    return math.sqrt(sum(v * v for v in flat))


def distance(old, new) -> float:
    """The largest |B − A| of the numbers (or of the statistics) over A's largest magnitude: the
    measure cgviz.view.golden's tolerance applies to, so a change is ranked as it is judged."""
    if isinstance(old, dict) and isinstance(new, dict):
        # the norm sums every element: its change is relative to itself, not to one element's size
        a = [old.get(k) for k in golden.STATS if k != "norm"]
        b = [new.get(k) for k in golden.STATS if k != "norm"]
        scale = golden._scale([old.get("min"), old.get("max")])
        na, nb = old.get("norm"), new.get("norm")
        if all(isinstance(v, (int, float)) and math.isfinite(v) for v in (na, nb)) and na:
            by_norm = abs(nb - na) / abs(na)
            rest = distance(dict(old, norm=None), dict(new, norm=None)) if scale else 0.0
            return max(by_norm, rest)
    else:
        a, b = golden._flat(old), golden._flat(new)
        if len(a) != len(b):
            return math.inf
        scale = golden._scale(a)
    gaps = []
    for x, y in zip(a, b):
        if isinstance(x, (int, float)) and isinstance(y, (int, float)) and math.isfinite(x) and math.isfinite(y):
            gaps.append(abs(y - x))
        elif x != y:
            return math.inf          # NaN on one side only: as far as it gets
    top = max(gaps, default=0.0)
    return top / scale if scale else (math.inf if top else 0.0)


def _n(x) -> str:
    return "none" if x is None else golden._num(x) if isinstance(x, str) else num(x)


def _pct(r: float) -> str:
    p = 100 * r
    return f"{p:.1f}%" if p < 1000 else f"{num(p, 3)}%"


def _safe(x):
    return x if not isinstance(x, float) or math.isfinite(x) else str(x)
