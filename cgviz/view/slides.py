"""The backward pass as slides: one frame per step of the HTML page's stepper, all in one layout, as a
multi-page PDF (Graphviz's vector pages joined by pypdf) or an animated GIF (Pillow)."""

from __future__ import annotations

import io
from dataclasses import dataclass, field, replace

import numpy as np

from ..core.errors import CgvizError
from ..core.fmt import norm, num
from ..lang.chain import local
from ..core.names import wrt
from .dot import dot_text
from .expression_scene import DotOptions, scene
from .graphviz import DEFAULT_TIMEOUT, run_dot
from .markup import BACKWARD, Html, html_text

HIGHLIGHT = "#ff6f00"      # the edge being computed: orange, between the blue and the red
DONE = "#555555"           # a step already taken
# Only colours change from frame to frame (no text, no bold, no size), so Graphviz lays every frame
# out alike and nothing moves: every step's line is in every frame's caption, the ones still to come
# in white.
HIDDEN = "white"
FRAME_MS = 1600            # a GIF frame's time on screen: long enough to read its line


@dataclass(frozen=True)
class Slides:
    data: bytes              # the PDF or the GIF
    lines: list[str]         # each step's chain-rule line, in order
    warnings: list[str] = field(default_factory=list)   # the run's, as `cgviz render` prints them


@dataclass(frozen=True)
class Step:
    src: str                 # the node the gradient flows into
    dst: str                 # the consumer it comes from
    line: str                # ∂L/∂w = ∂L/∂z · ∂z/∂w = 20 · 200 = 4000, as `cgviz explain` writes it
    grad: float | None       # the edge's gradient when a scalar (4000)


def steps(graph, run) -> list[Step]:
    """The stepper's walk (cgviz.view.html.backward_walk) over the edges into named nodes: an edge out
    of an anonymous sub-expression (the `a - y` of `L = (a - y)^2`) is folded into its statement's
    factor, as `explain` folds it. The pizza gives the lesson's ∂L/∂a, ∂L/∂z, ∂L/∂w, ∂L/∂x."""
    from .html import backward_walk
    top = graph.loss or graph[graph.output].name or "out"
    consumers = graph.consumers()
    out = []
    for src, node, k, eg in backward_walk(graph, run):
        if not graph[src].name:
            continue
        consumer, factor = node.id, local(graph, run, node, k)
        while not node.name and node.id != graph.output:      # up to the statement that holds it
            e = consumers[node.id][0]
            lv = local(graph, run, graph[e.dst], e.arg)
            factor = None if factor is None or lv is None else factor * lv
            node = graph[e.dst]
        g_up = run.grads.get(node.id)
        scalar = eg is not None and np.ndim(eg) == 0
        name, up = wrt(graph[src]), top if node.id == graph.output else wrt(node)
        eq = "+=" if len(consumers[src]) > 1 else "="      # one of several contributions
        if node.id == graph.output and scalar:
            line = f"∂{top}/∂{name} {eq} {num(float(eg))}"
        elif scalar and factor is not None and g_up is not None and np.ndim(g_up) == 0:
            line = f"∂{top}/∂{name} {eq} ∂{top}/∂{up} · ∂{up}/∂{name} = {num(float(g_up))} · {num(factor)} = {num(float(eg))}"
        elif node.id == graph.output:          # tensors: the chain multiplies Jacobians; say the norm
            line = f"∂{top}/∂{name}   ‖·‖ = {num(norm(eg))}"
        else:
            line = f"∂{top}/∂{name} {eq} ∂{top}/∂{up} · ∂{up}/∂{name}   ‖·‖ = {num(norm(eg))}"
        out.append(Step(src, consumer, line, float(eg) if scalar else None))
    return out


def frames(graph, run, opts: DotOptions = DotOptions()) -> list[str]:
    """The DOT text of each step's frame: the picture, the step's red edge in orange and thick, and
    the caption listing the steps so far."""
    # a step is one edge of the unrolled graph: a loop is drawn step by step here (not folded)
    base = scene(graph, run, replace(opts, fold=False))
    todo = steps(graph, run)
    out = []
    for i, step in enumerate(todo):
        edges = tuple(replace(e, attrs={**e.attrs, "color": HIGHLIGHT, "fontcolor": HIGHLIGHT,
                                        "penwidth": "4", "style": "solid"})
                      if (e.src, e.dst) == (step.src, step.dst) and e.attrs.get("dir") == "back" else e
                      for e in base.edges)
        rows = [Html(f'<FONT COLOR="{BACKWARD}"><B>backward pass, one edge at a time</B></FONT>')]
        for j, s in enumerate(todo):
            colour = DONE if j < i else BACKWARD if j == i else HIDDEN
            mark = BACKWARD if j == i else HIDDEN
            rows.append(Html(f'<FONT COLOR="{mark}">▶ </FONT><FONT COLOR="{colour}">{html_text(s.line)}</FONT>'))
        out.append(dot_text(replace(base, edges=edges, caption=base.caption + tuple(rows))))
    return out


def pdf(dots: list[str], timeout: float | None = DEFAULT_TIMEOUT) -> bytes:
    """One page per frame: each drawn by Graphviz (vector, fonts embedded), joined with pypdf."""
    from pypdf import PdfWriter
    writer = PdfWriter()
    for text in dots:
        writer.append(io.BytesIO(run_dot(text, "pdf", timeout)))
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def gif(dots: list[str], dpi: float | None = None, timeout: float | None = DEFAULT_TIMEOUT) -> bytes:
    """An animated GIF, a frame per step, looping; every frame at one resolution (the first's)."""
    from PIL import Image
    images = []
    for text in dots:
        with Image.open(io.BytesIO(run_dot(text, "png", timeout, dpi=dpi))) as im:
            images.append(im.convert("RGB"))
    if len({im.size for im in images}) > 1:      # one layout for all (see HIDDEN): never expected
        raise CgvizError("the slides' frames came out in different sizes; please report this program")
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=FRAME_MS, loop=0,
                   optimize=False, disposal=1)
    return buf.getvalue()
