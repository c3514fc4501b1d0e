"""A drawing in a notebook cell: the SVG fitted to the cell's width, a click away from full size.

Graphviz's SVG asks for its natural size (a 131-node model: 3664 × 5356 pt), which a notebook shows
as is, to be scrolled both ways. The cell's HTML puts the same SVG inline, no wider than the cell
and never enlarged, inside a label whose hidden checkbox a click toggles: full size, scrolled
inside a box of at most 80 % of the window's height, and back. No script and no id: the notebook
may hold many drawings, trusted or not, and the output must read the same after every run.
"""

from __future__ import annotations

import re

NOTE_WIDER_THAN = 1000          # px: a picture this wide is shrunk in most cells, and says so

STYLE = """<style>
.cgviz-fit > label { display: block; cursor: zoom-in; }
.cgviz-fit > label > input { display: none; }
.cgviz-fit > label > div > svg { max-width: 100%; height: auto; }
.cgviz-fit > label > input:checked + div { max-height: 80vh; overflow: auto; cursor: zoom-out; }
.cgviz-fit > label > input:checked + div > svg { max-width: none; }
.cgviz-fit > .cgviz-note { font: 12px sans-serif; color: #666; margin-top: 2px; }
</style>"""


def natural_size(svg: str) -> tuple[float, float] | None:
    """The root <svg>'s width and height in CSS pixels (Graphviz writes points), if it says them."""
    root = re.search(r"<svg\b[^>]*>", svg)
    if root is None:
        return None
    size = []
    for attr in ("width", "height"):
        m = re.search(rf'\b{attr}="([0-9.]+)(pt|px)?"', root.group(0))
        if m is None:
            return None
        size.append(float(m.group(1)) * (4 / 3 if m.group(2) == "pt" else 1))
    return size[0], size[1]


def fitted(svg: str) -> str:
    """The cell's HTML for an SVG: inline, at most the cell's width, a click toggling full size."""
    from .html import _clean_svg
    size = natural_size(svg)
    note = ""
    if size is not None and size[0] > NOTE_WIDER_THAN:
        note = (f'<div class="cgviz-note">{size[0]:,.0f} × {size[1]:,.0f} px at full size, fitted to the '
                "cell: click the picture for full size, or call <code>.page()</code> to pan, zoom and "
                "search</div>")
    return (f'<div class="cgviz-fit">{STYLE}<label title="click: full size / fitted to the cell">'
            f'<input type="checkbox"><div>{_clean_svg(svg)}</div></label>{note}</div>')
