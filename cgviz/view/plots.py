"""PNG plots (loss curves, gradient-norm bar charts, gradient histograms) drawn with matplotlib's Agg backend.

matplotlib is imported inside each function: `cgviz render` never pays for it.
"""

from __future__ import annotations

import io

from .markup import BACKWARD, FORWARD


def _pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed, same pixels everywhere)."""
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def _png(fig) -> bytes:
    """The figure as PNG bytes; the figure is closed so repeated plots do not pile up in memory."""
    plt = _pyplot()
    buf = io.BytesIO()
    try:
        # no timestamp or software tag: the same data gives the same bytes
        fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    finally:
        plt.close(fig)
    return buf.getvalue()


def spans_decades(values, decades: float = 2.0) -> bool:
    """Whether a positive series covers at least `decades` powers of ten: then a log axis reads better."""
    import math
    pos = [v for v in values if v > 0 and math.isfinite(v)]
    return len(pos) == len([v for v in values if math.isfinite(v)]) and len(pos) >= 2 and \
        math.log10(max(pos) / min(pos)) >= decades


def loss_curve(losses: list[float], clipped: list[bool] | None = None, title: str = "",
               stopped: str | None = None) -> tuple[bytes, dict]:
    """The loss before each step (and after the last), log scale when it spans decades.

    Returns the PNG and what was drawn (`points`, `log`, `clipped` steps), so tests can check the
    plot's content without reading pixels."""
    import math
    plt = _pyplot()
    steps = list(range(len(losses)))
    finite = [(s, v) for s, v in zip(steps, losses) if math.isfinite(v)]
    log = spans_decades([v for _, v in finite])
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.plot([s for s, _ in finite], [v for _, v in finite], color=FORWARD, marker="." if len(finite) <= 60 else None,
            linewidth=1.5, label="loss")
    marked = [s for s, c in enumerate(clipped or []) if c and s < len(losses) and math.isfinite(losses[s])]
    if marked:
        ax.scatter(marked, [losses[s] for s in marked], color="#ef6c00", s=14, zorder=3,
                   label="gradient clipped at this step")
    if stopped and len(finite) < len(losses):
        ax.axvline(len(losses) - 1, color=BACKWARD, linestyle="--", linewidth=1, label="loss became NaN/inf")
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss" + (" (log scale)" if log else ""))
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    if marked or stopped:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig), {"points": len(finite), "log": log, "clipped": marked}


HEALTHY, VANISHING, EXPLODING = "#607d8b", "#1e88e5", BACKWARD   # bar colours by flag


def grad_bars(rows, vanish: float, explode: float, title: str = "") -> tuple[bytes, dict]:
    """One bar per layer (cgviz.diagnose.grads.LayerRow): its gradient norm on a log axis, coloured by its flag,
    with each bar's own thresholds as short dashed lines (for a param they scale with ‖w‖).

    Returns the PNG and what was drawn (`bars`: how many bar patches the chart holds, `heights`,
    `colors`, `labels`), so tests can check the content without reading pixels."""
    import math
    plt = _pyplot()
    from matplotlib.patches import Patch
    from matplotlib.lines import Line2D

    n = len(rows)
    norms = [r.grad_norm for r in rows]
    positive = [g for g in norms if g is not None and g > 0 and math.isfinite(g)]
    limits = [r.limits(vanish, explode) for r in rows]
    span = positive + [x for lim in limits if lim for x in lim]
    floor = min(span) / 10 if span else 1e-6
    # a zero (or missing) gradient cannot sit on a log axis: a stub at the floor, marked "0"
    heights = [g if g is not None and g > 0 and math.isfinite(g) else floor for g in norms]
    colors = [VANISHING if r.flag == "vanishing" else EXPLODING if r.flag == "exploding" else HEALTHY for r in rows]
    fig, ax = plt.subplots(figsize=(min(60.0, max(6.4, 1.2 + 0.42 * n)), 4.2))
    bars = ax.bar(range(n), heights, color=colors, width=0.7, zorder=2)
    for i, lim in enumerate(limits):
        if lim is None:
            continue
        ax.hlines([lim[0]], i - 0.42, i + 0.42, colors=VANISHING, linestyles="dashed", linewidth=1.2, zorder=3)
        ax.hlines([lim[1]], i - 0.42, i + 0.42, colors=EXPLODING, linestyles="dashed", linewidth=1.2, zorder=3)
    for i, g in enumerate(norms):
        if g is None or g == 0:
            ax.text(i, floor, "0" if g == 0 else "–", ha="center", va="bottom", fontsize=7)
    ax.set_yscale("log")
    ax.set_xticks(range(n))
    ax.set_xticklabels([r.name for r in rows], rotation=60 if n > 6 else 0, ha="right" if n > 6 else "center",
                       fontsize=7 if n > 12 else 8)
    ax.set_xlim(-0.6, n - 0.4)
    ax.set_ylabel("‖gradient‖ (log scale)")
    ax.grid(True, axis="y", which="major", alpha=0.3, zorder=0)
    handles = [Patch(color=HEALTHY, label="ok"), Patch(color=VANISHING, label="vanishing"),
               Patch(color=EXPLODING, label="exploding"),
               Line2D([], [], color=VANISHING, linestyle="--", label=f"vanishing below {vanish:g}·‖w‖ (inputs: {vanish:g})"),
               Line2D([], [], color=EXPLODING, linestyle="--", label=f"exploding above {explode:g}·‖w‖ (inputs: {explode:g})")]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    info = {"bars": len(bars.patches), "heights": heights, "colors": colors, "labels": [r.name for r in rows],
            "log": ax.get_yscale() == "log"}
    return _png(fig), info


MAX_PANELS = 64


def grad_histograms(rows, title: str = "") -> tuple[bytes, dict]:
    """Small multiples: one panel per layer with a histogram of its gradient's elements, as
    TensorBoard's histograms tab shows them (at most MAX_PANELS; the rest are counted as omitted).

    Returns the PNG and `panels` (drawn), `omitted`, `labels`."""
    import math
    plt = _pyplot()
    shown = [r for r in rows if r.hist is not None][:MAX_PANELS]
    omitted = len([r for r in rows if r.hist is not None]) - len(shown)
    cols = min(4, max(1, len(shown)))
    nrows = max(1, math.ceil(len(shown) / cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.3 * nrows + (0.5 if title else 0)), squeeze=False)
    for ax in axes.flat[len(shown):]:
        ax.axis("off")
    if not shown:
        axes.flat[0].text(0.5, 0.5, "no gradients", ha="center", va="center")
    for ax, r in zip(axes.flat, shown):
        counts, edges = r.hist
        color = VANISHING if r.flag == "vanishing" else EXPLODING if r.flag == "exploding" else HEALTHY
        ax.stairs(counts, edges, fill=True, color=color, alpha=0.85)
        head = r.name if len(r.name) <= 34 else "…" + r.name[-33:]
        ax.set_title(f"{head}\n‖g‖ = {r.grad_norm:.3g}" + (f"  ({r.flag})" if r.flag else ""), fontsize=8)
        ax.tick_params(labelsize=7)
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 3))
    if title:
        fig.suptitle(title + (f"  (first {len(shown)} of {len(shown) + omitted})" if omitted else ""), fontsize=10)
    fig.tight_layout()
    return _png(fig), {"panels": len(shown), "omitted": omitted, "labels": [r.name for r in shown]}
