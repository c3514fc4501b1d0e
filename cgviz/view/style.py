"""The look both pictures share, so an expression and a model read alike: node styles and their
loss and NaN marks, the caption's colour legend, the two kinds of edge, and the gradient rows and
saturation line of a label. Builders of scenes (cgviz.view.expression_scene, cgviz.view.model_scene)
use these; cgviz.view.dot writes what they make."""

from __future__ import annotations

from ..diagnose.health import FLAG_COLOR, Saturation, Scale
from .markup import BACKWARD, FONT, FORWARD, Html, Line, html_text

STYLE = {
    "input": dict(shape="box", style="filled", fillcolor="#e3eefb", color="#3b6fb6"),
    "param": dict(shape="box", style="filled,bold", fillcolor="#ffe9a8", color="#a67c00", penwidth="1.6"),
    "const": dict(shape="box", style="filled", fillcolor="#ececec", color="#9e9e9e", fontcolor="#555555"),
    "literal": dict(shape="box", style="filled", fillcolor="#f4f4f4", color="#bdbdbd", fontcolor="#616161",
                    fontsize="9", margin="0.05,0.02", height="0.25", width="0.3"),
    "op": dict(shape="ellipse", style="filled", fillcolor="white", color="#424242"),
    # a tensor entering or leaving a focused module (cgviz.plan.inside): outside the picture proper
    "stub": dict(shape="box", style="dashed,rounded,filled", fillcolor="#fafafa", color="#9e9e9e",
                 fontcolor="#424242"),
}
LOSS_STYLE = dict(peripheries="2", color="#6a1b9a", penwidth="1.4")
NONFINITE_STYLE = dict(fillcolor="#ffcc80", color="#d50000", penwidth="2.6")

GREY = "#555555"      # a label's small print
# Every picture's defaults, an expression's and a model's alike (spacing aside: graph_attrs)
NODE_DEFAULTS = {"fontname": FONT, "fontsize": "11"}
EDGE_DEFAULTS = {"fontname": FONT, "fontsize": "9", "arrowsize": "0.7"}


def graph_attrs(rankdir: str, nodesep: str, ranksep: str, **more: str) -> dict:
    """A picture's graph attributes: its direction and spacing, the caption at the top left."""
    return {"rankdir": rankdir, "fontname": FONT, "fontsize": "12", "labelloc": "t", "labeljust": "l",
            "nodesep": nodesep, "ranksep": ranksep, "bgcolor": "white", "pad": "0.2", **more}


def mark(style: dict, loss: bool, nonfinite: bool) -> dict:
    """A node's style with the loss's double border and a NaN/inf's orange fill, which wins over any
    other fill (a profile's shade)."""
    if loss:
        style.update(LOSS_STYLE)
    if nonfinite:
        style.update(NONFINITE_STYLE)
        style["style"] = "filled,bold"
    return style


def legend(values: str, top: str) -> Html:
    """The caption line that says what blue and red mean: `values` is what the blue edges carry,
    `top` what the gradients are of."""
    return Html(f'<FONT COLOR="{FORWARD}">blue →  {values} (forward)</FONT>     '
                f'<FONT COLOR="{BACKWARD}">red ⇠  gradients ∂{html_text(top)}/∂· (backward)</FONT>')


def grad_row(text: str) -> Html:
    """A red line: a gradient's norm in a label, or the edge scale's legend in a caption."""
    return Html(f'<FONT COLOR="{BACKWARD}" POINT-SIZE="10">{html_text(text)}</FONT>')


def scale_legend(scale: Scale | None) -> list[Html]:
    """The caption line that reads the red edges' width and shade, when the picture has gradients."""
    return [grad_row(scale.legend())] if scale is not None and (scale.data is not None or scale.nonfinite) else []


def small(text: str, color: str = GREY) -> Line:
    """A small grey (or `color`) line under a label's head."""
    return Line(text, color=color, small=True)


def saturation_line(s: Saturation | None) -> Line | None:
    """A sigmoid/tanh op's input range and saturated share (the op table's `saturates` limit); for
    one number only once it is saturated, since its edge already shows the value. Warned in bold at
    half saturated; a share a model's min/max leave unknown (NaN) is shown in the flag colour."""
    if s is None or (s.size == 1 and not s.share):
        return None
    warn = s.share >= 0.5
    return Line(f"⚠ {s.text()}" if warn else s.text(), color=FLAG_COLOR if s.share != 0 else GREY,
                bold=warn, small=True)


def forward_edge(label: str | None = None) -> dict:
    """A blue edge: a value flowing forward."""
    return {"color": FORWARD, "fontcolor": FORWARD, **({"label": label} if label is not None else {})}


def gradient_edge(label: str | None, scale: Scale | None, norm: float | None) -> dict:
    """A red edge: a gradient flowing back. Drawn in the forward direction with dir=back, so the arrow
    points at the producer while the forward edges alone decide ranks: gradients never distort the
    layout. Its width and shade follow the gradient's log-magnitude on the picture's scale; the label
    keeps the plain red to stay legible."""
    out = {"color": BACKWARD, "fontcolor": BACKWARD, "dir": "back", "style": "dashed", "arrowtail": "normal"}
    if label is not None:
        out["label"] = label
    if scale is not None and norm is not None:
        out.update(scale.edge_attrs(norm))
    return out
