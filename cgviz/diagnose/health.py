"""Gradient health, pure and torch-free: edge shading by log-magnitude, vanishing/exploding flags, saturation.

Three small pieces that the expression pictures, the model pictures and `cgviz grads` share:

- `Scale` maps a gradient's magnitude to a red edge's width and shade, on a log10 scale fitted to
  the graph's own range but clamped to [1e-6, 1e3] and never narrower than two decades, so a graph
  whose gradients are all alike is drawn in a middle shade rather than all at the maximum.
- `classify` flags a gradient as vanishing or exploding. A parameter is judged by ‖g‖/‖w‖ (how far
  one step would move it, relative to its size); an input, or a parameter whose norm is 0 (a bias
  initialised to zeros), by ‖g‖ itself.
- `saturation` measures how much of a sigmoid's or tanh's input lies where its slope has died
  (|z| > the op table's `saturates` limit: 4 for sigmoid, 2 for tanh).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from ..core.fmt import num
from ..core.summary import as_summary, first
from ..core.colours import BACKWARD

# Defaults, measured on the samples (docs/commands.md, "Gradient health"): at a learning rate of 0.1 a ratio
# of 1e-3 moves a weight by 0.01 % a step (it would take ~10,000 steps to change it by its own
# size), and a ratio of 10 replaces it entirely in one step. vanishing.cg's first layer sits at
# 3.3e-4, deep_sigmoid.cg's first three at 1e-5 … 1.1e-4, exploding.cg's at 27; the healthy deep
# ReLU and residual samples stay within 4e-3 … 6.
VANISH = 1e-3
EXPLODE = 10.0
EDGE = 1e-9     # relative: how far past a threshold a measure must be, beyond rounding

LOG_MIN, LOG_MAX = -6.0, 3.0   # the scale never reaches beyond 1e-6 … 1e3: beyond is thinnest / thickest
MIN_SPAN = 2.0                 # decades: a narrower range is widened around its middle
WIDTH_MIN, WIDTH_MAX = 0.8, 4.5
# Intensity is the opacity of cgviz.core.colours' BACKWARD red, not another hue: the stroke stays #c62828,
# which is how the HTML page tells red edges from blue ones (Graphviz writes stroke-opacity apart).
# Opacity in 1/255 steps; the ends are whole steps so that the graph's own smallest and largest
# gradient (t = 0 and 1, always present) never sit on a rounding boundary.
ALPHA_MIN, ALPHA_MAX = 77, 255                          # 0.3 … 1
ZERO_WIDTH, ZERO_ALPHA = 0.5, 38                        # an exactly-zero gradient: thin and paler still
# A NaN or infinite gradient is off the scale, not its top: a mid width, full red, dotted (the stroke
# stays BACKWARD, which is how the HTML page tells red edges from blue ones)
NONFINITE_WIDTH, NONFINITE_STYLE = 2.0, "dotted"
FLAG_COLOR = "#bf360c"                                  # deep orange: the ⚠ rows


@dataclass(frozen=True)
class Scale:
    """log10 magnitude → t in [0, 1] → penwidth and colour. `lo`/`hi` are the scale's ends (log10);
    `data` is the (min, max) of the nonzero finite magnitudes it was fitted to, or None."""

    lo: float = LOG_MIN
    hi: float = LOG_MAX
    data: tuple[float, float] | None = None
    nonfinite: bool = False          # some gradient it was fitted to is NaN or infinite (drawn apart)

    def t(self, m: float) -> float | None:
        """Where magnitude m sits on the scale (0 thinnest, 1 thickest); None for zero, and for NaN
        or ∞, which are not a magnitude (edge_attrs draws them apart)."""
        if m is None or m == 0 or not math.isfinite(m):
            return None
        return min(1.0, max(0.0, (math.log10(m) - self.lo) / (self.hi - self.lo)))

    def width(self, m: float) -> float:
        if m is not None and not math.isfinite(m):
            return NONFINITE_WIDTH
        t = self.t(m)
        return ZERO_WIDTH if t is None else WIDTH_MIN + (WIDTH_MAX - WIDTH_MIN) * t

    def alpha(self, m: float) -> int:
        """Opacity in 1/255 steps."""
        if m is not None and not math.isfinite(m):
            return 255
        t = self.t(m)
        return ZERO_ALPHA if t is None else round(ALPHA_MIN + (ALPHA_MAX - ALPHA_MIN) * t)

    def color(self, m: float) -> str:
        """The red with the magnitude's opacity: `#c62828` at full strength, `#c628284d` at 0.3."""
        a = self.alpha(m)
        return BACKWARD if a >= 255 else f"{BACKWARD}{a:02x}"

    def edge_attrs(self, m: float) -> dict:
        """The DOT attributes of a red edge carrying a gradient of magnitude m (NaN or ∞: dotted)."""
        out = {"penwidth": f"{self.width(m):.2f}", "color": self.color(m)}
        if m is not None and not math.isfinite(m):
            out["style"] = NONFINITE_STYLE
        return out

    def legend(self) -> str:
        """What the reader needs to read the edges: the ends of the scale and the graph's own range."""
        ends = f"from {_round(10 ** self.lo)} (thin, pale) to {_round(10 ** self.hi)} (thick, dark)"
        seen = (f"; this graph's gradients span {num(self.data[0])} … {num(self.data[1])}"
                if self.data else "")
        off = "; dotted: NaN or ∞, off the scale" if self.nonfinite else ""
        return f"red edge width and shade: log10 ‖gradient‖ {ends}{seen}{off}"


def _round(x: float) -> str:
    """Two significant digits: the scale's ends are a reading aid, not data."""
    return num(float(f"{x:.2g}"))


def scale_of(magnitudes: Iterable[float | None]) -> Scale:
    """The scale for one picture: its nonzero finite magnitudes' range in log10, clamped to
    [LOG_MIN, LOG_MAX] and widened to at least MIN_SPAN decades around its middle."""
    seen = [m for m in magnitudes if m is not None]
    ms = [m for m in seen if m > 0 and math.isfinite(m)]
    nonfinite = any(not math.isfinite(m) for m in seen)
    if not ms:
        return Scale(nonfinite=nonfinite)
    lo = min(max(math.log10(min(ms)), LOG_MIN), LOG_MAX)
    hi = min(max(math.log10(max(ms)), LOG_MIN), LOG_MAX)
    if hi - lo < MIN_SPAN:
        mid = (lo + hi) / 2
        lo, hi = mid - MIN_SPAN / 2, mid + MIN_SPAN / 2
    return Scale(lo, hi, (min(ms), max(ms)), nonfinite)


# ---------------------------------------------------------------- vanishing / exploding

@dataclass(frozen=True)
class Verdict:
    """One tensor's gradient health. `measure` is ‖g‖/‖w‖ when `relative`, else ‖g‖."""

    name: str
    kind: str                  # param | input
    value_norm: float
    grad_norm: float
    relative: bool
    measure: float
    flag: str | None           # vanishing | exploding | None

    @property
    def ratio(self) -> float | None:
        return self.grad_norm / self.value_norm if self.value_norm else None

    def what(self) -> str:
        return "‖g‖/‖w‖" if self.relative else "‖g‖"

    def text(self, vanish: float = VANISH, explode: float = EXPLODE) -> str:
        """`vanishing: ‖g‖/‖w‖ = 3.3e-4 < 0.001`."""
        if self.flag is None:
            return ""
        cmp = f"< {num(vanish)}" if self.flag == "vanishing" else f"> {num(explode)}"
        return f"{self.flag}: {self.what()} = {num(self.measure)} {cmp}"


def classify(name: str, kind: str, value_norm: float, grad_norm: float,
             vanish: float = VANISH, explode: float = EXPLODE) -> Verdict:
    """Judge a param by ‖g‖/‖w‖ (by ‖g‖ when ‖w‖ = 0), an input by ‖g‖; below `vanish` or above
    `explode` by more than rounding is flagged. A NaN/inf gradient, or a tensor that itself holds
    NaN/inf, is left to the NaN warnings (cgviz.diagnose.nonfinite): a measure built on one is no measure."""
    relative = kind == "param" and value_norm > 0 and math.isfinite(value_norm)
    measure = grad_norm / value_norm if relative else grad_norm
    flag = None
    # A measure on the threshold up to rounding is not flagged either way: the article's round
    # numbers land there (pizza's ∂L/∂x = 10, chain_0_1's ‖g‖/‖w‖ = 0.001), and another platform's
    # last bit must not flip the picture.
    if math.isfinite(measure) and math.isfinite(value_norm) and math.isfinite(grad_norm):
        if measure < vanish * (1 - EDGE):
            flag = "vanishing"
        elif measure > explode * (1 + EDGE):
            flag = "exploding"
    return Verdict(name, kind, value_norm, grad_norm, relative, measure, flag)


def verdicts(graph, run, vanish: float = VANISH, explode: float = EXPLODE) -> dict[str, Verdict]:
    """Node id → verdict for every node of a judged kind that has a value and a gradient: an
    expression's float params and inputs, a recorded model's parameters (RunSummary.judged)."""
    run = as_summary(graph, run)
    out: dict[str, Verdict] = {}
    for node in graph:
        if node.kind in run.judged:
            v = verdict(graph, run, node.id, vanish, explode)
            if v is not None:
                out[node.id] = v
    return out


def verdict(graph, run, node_id: str, vanish: float = VANISH, explode: float = EXPLODE) -> Verdict | None:
    """One node's verdict, or None without a value or gradient summary (no gradient flows, a frozen
    parameter, the meta device)."""
    run = as_summary(graph, run)
    v, g = first(run.values.get(node_id)), run.grads.get(node_id)
    if v is None or g is None or v.norm is None or g.norm is None:
        return None
    node = graph[node_id]
    return classify(node.name or node_id, node.kind, v.norm, g.norm, vanish, explode)


MAX_LISTED = 8   # names in one warning line; the rest are counted


def flag_warnings(found: Iterable[Verdict], vanish: float = VANISH, explode: float = EXPLODE) -> list[str]:
    """At most two lines: the vanishing gradients, then the exploding ones, each with its measure
    (`w (‖g‖/‖w‖ = 8000)` for a param, `x (‖g‖ = 14)` for an input), so the rule is in the line."""
    found = list(found)
    out = []
    for flag, rule in (("vanishing", f"below {num(vanish)}"), ("exploding", f"above {num(explode)}")):
        hits = [v for v in found if v.flag == flag]
        if hits:
            items = ", ".join(f"{v.name} ({v.what()} = {num(v.measure)})" for v in hits[:MAX_LISTED])
            if len(hits) > MAX_LISTED:
                items += f" and {len(hits) - MAX_LISTED} more"
            out.append(f"{flag} gradient{'s' if len(hits) > 1 else ''} ({rule}): {items}")
    return out


# ---------------------------------------------------------------- saturation

@dataclass(frozen=True)
class Saturation:
    """A saturating op's input: its range and the share of elements with |z| > limit."""

    lo: float
    hi: float
    share: float
    limit: float
    size: int

    def text(self) -> str:
        """`z ∈ [−12, 5]: 62% saturated (|z| > 4)`, or for one number `saturated: |z| = 5 > 4`;
        `partly beyond` when only a model tensor's range is known (share NaN)."""
        if self.share != self.share:
            return f"z ∈ [{num(self.lo)}, {num(self.hi)}]: partly beyond |z| > {num(self.limit)}"
        if self.size == 1:
            z = self.lo
            return f"saturated: |z| = {num(abs(z))} > {num(self.limit)}" if self.share else \
                f"|z| = {num(abs(z))} ≤ {num(self.limit)}"
        return f"z ∈ [{num(self.lo)}, {num(self.hi)}]: {_pct(self.share)} saturated (|z| > {num(self.limit)})"


def _pct(share: float) -> str:
    """0% only when nothing is saturated, 100% only when everything is."""
    p = share * 100
    if 0 < p < 1:
        return "<1%"
    if 99 < p < 100:
        return ">99%"
    return f"{p:.0f}%"


def saturation(z, limit: float) -> Saturation | None:
    """Range and saturated share of the finite elements of z; None when there are none."""
    z = np.asarray(z, dtype=np.float64)
    if z.size == 1:
        # one number (every node of a scalar program): plain floats, without five NumPy reductions
        x = float(z.reshape(()))
        if not math.isfinite(x):
            return None
        return Saturation(x, x, 1.0 if abs(x) > limit else 0.0, limit, 1)
    z = z.ravel()
    z = z[np.isfinite(z)]
    if z.size == 0:
        return None
    return Saturation(float(z.min()), float(z.max()), float(np.mean(np.abs(z) > limit)), limit, int(z.size))


def saturation_of_stats(stats: dict | None, limit: float) -> Saturation | None:
    """What a model's recorded input summary (min/max only) allows: the range; share unknown (NaN)
    unless the whole range lies inside or outside the limit."""
    if not stats:
        return None
    lo, hi = stats.get("min"), stats.get("max")
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return None
    if -limit <= lo and hi <= limit:
        share = 0.0
    elif lo > limit or hi < -limit:
        share = 1.0
    else:
        share = float("nan")
    return Saturation(lo, hi, share, limit, 2)


def node_saturation(graph, run, node) -> Saturation | None:
    """The saturation of an op's first input, when the op saturates (the op table's `saturates`):
    exact from the values a summary keeps (an expression's always), else from its min/max."""
    from ..lang.ops import OPS
    d = OPS.get(node.op or "") if node.kind == "op" else None
    if d is None or d.saturates is None or not node.inputs:
        return None
    return info_saturation(as_summary(graph, run).edge_values.get((node.id, 0)), d.saturates)


SATURATION_WARN = 0.5   # warn when at least half a sigmoid's or tanh's inputs are saturated


def saturation_warnings(graph, run) -> list[str]:
    """One line per saturating op whose input is mostly (≥ 50%) beyond its limit."""
    from ..lang.ops import OPS
    out = []
    run = as_summary(graph, run)
    # node_saturation's test, made here once: asking it of each node of a 100,000-node program took
    # 0.4 s (cProfile), most of it for nodes that do not saturate
    limits = {name: d.saturates for name, d in OPS.items() if d.saturates is not None}
    edge_values = run.edge_values
    for node in graph:
        if node.kind != "op" or node.op not in limits or not node.inputs:
            continue
        s = info_saturation(edge_values.get((node.id, 0)), limits[node.op])
        if s is not None and s.share >= SATURATION_WARN:
            where = f"line {node.meta['line']}: " if node.meta.get("line") else ""
            what = node.name or node.meta.get("expr") or node.id
            out.append(f"{where}{node.op} '{what}' is saturated: {s.text()}; its slope there is nearly 0, "
                       "so little gradient passes")
    return out


def info_saturation(info, limit: float) -> Saturation | None:
    """Saturation of a recorded model tensor (TensorInfo): exact from its values when it kept them
    (≤ 4096 elements), else what its min/max say."""
    if info is None:
        return None
    if info.values is not None:
        return saturation(info.values, limit)
    return saturation_of_stats(info.stats, limit)
