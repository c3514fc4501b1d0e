"""`Drawing`, what every call that draws gives: its outputs, its nodes and its notebook display; and `Page`."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import CgvizError
from .checks import _converted

if TYPE_CHECKING:
    from ..diff import Comparison
    from .results import NodeView


class Drawing:
    """A computation graph with its values and gradients, and every way to show it.

    `d.svg()`, `d.png()`, `d.pdf()` lay it out with Graphviz; `d.dot`, `d.json()`, `d.to_dict()` need
    no Graphviz; `d.save("graph.svg")` writes atomically with the format from the suffix; `d.page()`
    is the interactive HTML page (shown inline in Jupyter); `d["w"].grad` reads one node. A notebook
    cell ending in a Drawing shows the SVG, fitted to the cell's width (a click: full size)."""

    def __init__(self, backend, rankdir: str, timeout: float | None):
        self._b = backend
        self.rankdir = rankdir
        self.timeout = timeout
        self._svg: bytes | None = None

    # ---- what was drawn ------------------------------------------------------------------------
    @property
    def graph(self):
        """The IR (cgviz.core.ir.Graph): nodes in topological order."""
        return self._b.graph

    @property
    def warnings(self) -> list[str]:
        """What cgviz would print as `warning:` lines (NaNs, vanishing or exploding gradients …)."""
        return list(self._b.warnings)

    @property
    def notes(self) -> list[str]:
        return list(getattr(self._b, "notes", []))

    @property
    def loss(self) -> float | None:
        return self._b.loss

    @property
    def folds(self) -> list[str]:
        """The repeated module calls the picture draws once, each named by its first call:
        `layers.0 ×12 (fold)` for twelve identical blocks, `cell ×20 (loop)` for one module called
        again and again; for an expression, its loops: `time_step=20 (for t in 1..20, line 6)`."""
        return self._b.folds()

    @property
    def source(self) -> str:
        """The name the drawing was read from, as warnings and titles show it (`<text>` for text)."""
        return self._b.source

    @property
    def headline(self) -> str:
        """One line on the result: `loss L = 100` (the command line's `wrote …` says it)."""
        return self._b.headline

    def __getitem__(self, name: str) -> NodeView:
        graph = self._b.graph
        node = graph[name] if name in graph else next((n for n in graph if n.name == name), None)
        if node is None:
            import difflib
            near = difflib.get_close_matches(name, [n.id for n in graph], n=3)
            hint = f"; did you mean {', '.join(map(repr, near))}?" if near else ""
            raise KeyError(f"no node {name!r} in this drawing{hint}")
        from .results import NodeView
        return NodeView(node.id, node.kind, node.op, self._b.value(node.id), self._b.grad(node.id))

    def __contains__(self, name: str) -> bool:
        return name in self._b.graph or any(n.name == name for n in self._b.graph)

    def __len__(self) -> int:
        return len(self._b.graph)

    def __iter__(self):
        return (n.id for n in self._b.graph)

    # ---- outputs ---------------------------------------------------------------------------------
    @property
    def dot(self) -> str:
        """The Graphviz DOT text (pure: no Graphviz needed)."""
        return self._b.dot(self.rankdir)

    def to_dict(self) -> dict:
        """The cgviz-graph JSON document (documented in docs/json-format.md) as a dict."""
        return self._b.to_dict()

    def json(self) -> str:
        return self.output("json").decode("utf-8")

    def svg(self) -> str:
        if self._svg is None:
            self._svg = self.output("svg")
        return self._svg.decode("utf-8")

    def png(self, dpi: float | None = None) -> bytes:
        """The PNG, at `dpi` if given (else as large as the pixel budget allows, up to Graphviz's 96)."""
        return self.output("png", dpi=dpi)

    def pdf(self) -> bytes:
        return self.output("pdf")

    def html(self) -> str:
        """The interactive page: one self-contained HTML file."""
        return self.output("html").decode("utf-8")

    def page(self) -> "Page":
        """The interactive page, shown inline when it is the last thing in a notebook cell."""
        return Page(self.html())

    def output(self, fmt: str, dpi: float | None = None) -> bytes:
        """The bytes of one format: png, svg, pdf, dot, json, html or modelexplorer (`dpi`: a PNG's
        resolution); the list is cgviz.view.formats'."""
        from ..view import formats
        formats.lookup(fmt, self._b.kind)
        if dpi is not None:
            dpi = _converted("dpi", dpi)
        return self._b.output(fmt, self.rankdir, self.timeout, dpi)

    def save(self, path: str | os.PathLike, format: str | None = None, dpi: float | None = None) -> Path:
        """Write to `path` (format from its suffix unless `format` is given), atomically: a failure
        leaves no partial file and an existing file untouched. Returns the path."""
        from ..view import formats
        from ..view.graphviz import write_atomic
        p = Path(path)
        fmt = format or formats.from_path(p)
        if fmt is None:
            raise CgvizError(f"cannot tell the format from {str(path)!r}: use a suffix such as "
                             f"{formats.suffixes_text(self._b.kind)}, or pass format=")
        for src in self._b.inputs:
            with contextlib.suppress(OSError):
                if p.exists() and p.samefile(src):
                    raise CgvizError(f"{path} is the file this drawing was read from; cgviz never overwrites "
                                     "its input")
        write_atomic(p, self.output(fmt, dpi))
        beside = self.beside(fmt)
        if beside:
            from ..view.modelexplorer import sibling
            for name, data in beside.items():
                write_atomic(sibling(p, name), data)
        return p

    def beside(self, format: str) -> dict[str, bytes]:
        """The files an output of `format` has beside it, by name: a model's Model Explorer node-data
        overlays (gradient norm, value norm, health) beside its graph; save() writes them."""
        return self._b.beside(format)

    def nodes(self, format: str) -> int:
        """How many nodes an output of `format` holds: the picture's for a drawn format (a model's, as
        the last output drew it: its level may show fewer than were recorded), every node for a data format."""
        return self._b.nodes(format)

    @property
    def depth_note(self) -> str | None:
        """When the last picture of a model shows its modules only down to a depth chosen to keep it
        readable: that, and how to see more; else None."""
        return self._b.depth_note()

    @property
    def profile(self) -> str | None:
        """With draw(profile=True): the table of the nodes that took the most time (`cgviz torch --profile`)."""
        return self._b.profile

    @property
    def timings(self) -> dict[str, float]:
        """Seconds each stage took so far (a model: import, load, run, picture, then each output's layout),
        as the command line prints them under CGVIZ_TIMINGS=1."""
        return dict(self._b.timings)

    def diff(self, other, **options) -> "Comparison":
        """This drawing (A) compared with `other` (B: a Drawing, a file, a saved graph): see cgviz.compare."""
        from ..diff import compare
        return compare(self, other, **options)

    # ---- notebooks ---------------------------------------------------------------------------------
    def _repr_mimebundle_(self, include=None, exclude=None):
        """What a notebook shows for a cell ending in a Drawing: HTML with the SVG fitted to the cell's
        width, full size a click away (cgviz.view.notebook); the plain SVG for front ends without
        HTML (QtConsole, a PDF export); without Graphviz, text, so that displaying never raises."""
        try:
            svg = self.svg()
        except CgvizError as e:
            return {"text/plain": f"{self!r}\n(no picture: {e})"}
        from ..view.notebook import fitted
        bundle = {"text/html": fitted(svg), "image/svg+xml": svg, "text/plain": repr(self)}
        return {k: v for k, v in bundle.items()
                if (include is None or k in include) and (exclude is None or k not in exclude)}

    def __repr__(self) -> str:
        loss = f", loss={self.loss:.4g}" if isinstance(self.loss, float) else ""
        return f"<cgviz.Drawing of {self._b.source}: {len(self._b.graph)} nodes{loss}>"


class Page:
    """The interactive HTML page of a drawing; a notebook shows it inline (in a sandboxed iframe)."""

    def __init__(self, html: str):
        self.text = html

    def _repr_html_(self) -> str:
        import html as _html
        return (f'<iframe srcdoc="{_html.escape(self.text, quote=True)}" style="width:100%;height:720px;'
                'border:1px solid #ddd" sandbox="allow-scripts"></iframe>')

    def save(self, path: str | os.PathLike) -> Path:
        from ..view.graphviz import write_atomic
        write_atomic(Path(path), self.text.encode("utf-8"))
        return Path(path)
