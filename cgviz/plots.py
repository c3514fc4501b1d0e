"""PNG plots (loss curves, gradient-norm bar charts, gradient histograms) drawn with matplotlib's Agg backend.

matplotlib is imported inside each function: `cgviz render` never pays for it.
"""

from __future__ import annotations

import io


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
    ax.plot([s for s, _ in finite], [v for _, v in finite], color="#1f5fbf", marker="." if len(finite) <= 60 else None,
            linewidth=1.5, label="loss")
    marked = [s for s, c in enumerate(clipped or []) if c and s < len(losses) and math.isfinite(losses[s])]
    if marked:
        ax.scatter(marked, [losses[s] for s in marked], color="#ef6c00", s=14, zorder=3,
                   label="gradient clipped at this step")
    if stopped and len(finite) < len(losses):
        ax.axvline(len(losses) - 1, color="#c62828", linestyle="--", linewidth=1, label="loss became NaN/inf")
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
