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
