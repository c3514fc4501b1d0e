"""`cgviz.compare(a, b)` and its result: the Difference with its picture in every format, shown inline in a notebook."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..core.errors import CgvizError
from .classify import Difference, NodeDiff, difference
from .picture import MAX_NODES, to_dot
from .sides import Side, side

from ..view import formats

# kept for old imports: suffix → format, from the registry (cgviz.view.formats)
FORMATS = {s: n for n in formats.names(formats.DIFF) for s in formats.REGISTRY[n].suffixes}


class Comparison:
    """Two runs compared. `c.same` (nothing beyond the tolerance), `c.summary` (the lines the picture's
    title says), `c["layers.1/relu"]` one node's difference, `c.first_divergence`; `c.svg()`, `c.png()`,
    `c.pdf()`, `c.dot`, `c.to_dict()`/`c.json()` (the structured diff), `c.save("diff.png")`. A
    notebook shows the picture."""

    def __init__(self, diff: Difference, a: Side, b: Side, rankdir: str = "TB", timeout: float | None = 60.0,
                 max_nodes: int = MAX_NODES):
        self.difference, self.a, self.b = diff, a, b
        self.rankdir, self.timeout, self.max_nodes = rankdir, timeout, max_nodes
        self._svg: bytes | None = None

    @property
    def same(self) -> bool:
        return self.difference.same

    @property
    def summary(self) -> list[str]:
        return self.difference.summary_lines()

    @property
    def first_divergence(self) -> NodeDiff | None:
        return self.difference.first_divergence

    @property
    def nodes(self) -> list[NodeDiff]:
        return list(self.difference.nodes)

    def __getitem__(self, node_id: str) -> NodeDiff:
        for n in self.difference.nodes:
            if node_id in (n.id, n.a, n.b):
                return n
        raise KeyError(f"no node {node_id!r} in either run")

    def text(self) -> str:
        return self.difference.text()

    @property
    def dot(self) -> str:
        return to_dot(self.difference, self.rankdir, self.max_nodes)

    def to_dict(self) -> dict:
        return self.difference.to_dict()

    def json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=1, allow_nan=False) + "\n"

    def output(self, fmt: str, dpi: float | None = None) -> bytes:
        """The bytes of one format: png, svg, pdf, dot, json or html (cgviz.view.formats, source diff)."""
        made_by = formats.lookup(fmt, formats.DIFF).producer
        if made_by == formats.JSON:
            return self.json().encode("utf-8")
        if made_by == formats.DOT:
            return self.dot.encode("utf-8")
        if made_by == formats.PAGE:
            return self.html().encode("utf-8")
        if made_by != formats.GRAPHVIZ:
            raise AssertionError(f"no producer {made_by!r} for comparisons")   # a registry entry without a branch
        from ..view.graphviz import PictureTooBig, run_dot
        try:
            return run_dot(self.dot, fmt, timeout=self.timeout, nodes=len(self.difference.nodes), dpi=dpi)
        except PictureTooBig as e:
            # the message's advice names render's options; a comparison is saved as .svg or .pdf
            raise PictureTooBig(f"{str(e).split('. Use ')[0]}. Write the comparison as .svg or .pdf (no size "
                                "limit), or as .html to see it beside A and B") from None

    def html(self) -> str:
        """A's picture, the difference and B's side by side: a click selects a node's counterparts."""
        from .page import page
        return page(self)

    def svg(self) -> str:
        if self._svg is None:
            self._svg = self.output("svg")
        return self._svg.decode("utf-8")

    def png(self, dpi: float | None = None) -> bytes:
        return self.output("png", dpi)

    def pdf(self) -> bytes:
        return self.output("pdf")

    def save(self, path: str | os.PathLike, format: str | None = None, dpi: float | None = None) -> Path:
        """Write to `path` (format from its suffix unless given), atomically; never over either input."""
        from ..view.graphviz import write_atomic
        p = Path(path)
        fmt = format or formats.from_path(p)
        if fmt is None or fmt not in formats.names(formats.DIFF):
            raise CgvizError(f"cannot tell the format from {str(path)!r}: use {formats.suffixes_text(formats.DIFF)}, "
                             "or pass format=")
        for src in self._inputs():
            try:
                if p.exists() and p.samefile(src):
                    raise CgvizError(f"{path} is one of the compared files; cgviz never overwrites its input")
            except OSError:
                pass
        write_atomic(p, self.output(fmt, dpi))
        return p

    def _inputs(self) -> list:
        """The files the two sides were read from: save() never writes over one."""
        return [src for s in (self.a, self.b)
                for src in ((s.drawing._b.inputs if s.drawing is not None else ()) + ((s.label,) if s.drawing is None else ()))]

    def _repr_svg_(self) -> str | None:
        try:
            return self.svg()
        except CgvizError:
            return None

    def _repr_mimebundle_(self, include=None, exclude=None):
        """As a Drawing shows itself: the SVG fitted to the cell, the summary as text without Graphviz."""
        try:
            svg = self.svg()
        except CgvizError as e:
            return {"text/plain": f"{self.text()}\n(no picture: {e})"}
        from ..view.notebook import fitted
        bundle = {"text/html": fitted(svg), "image/svg+xml": svg, "text/plain": self.text()}
        return {k: v for k, v in bundle.items()
                if (include is None or k in include) and (exclude is None or k not in exclude)}

    def __repr__(self) -> str:
        verdict = "same within tolerance" if self.same else "differs"
        return f"<cgviz.Comparison of {self.a.label} and {self.b.label}: {verdict}>"


def compare(a: Any, b: Any, *, rtol: float | None = None, atol: float | None = None,
            a_options: dict[str, Any] | None = None, b_options: dict[str, Any] | None = None,
            rankdir: str = "TB", timeout: float | None = 60.0, max_nodes: int = MAX_NODES,
            **options: Any) -> Comparison:
    """Compare two runs: each a Drawing, a saved JSON graph (`--format json`) or golden, or a program
    or model file as draw() takes it; or two steps of training records (`"run.cgw@10"`,
    `"run.cgw@last"`, a whole `"run.cgw"` at the last step both records have, or `step=N`). `options` (dtype="bfloat16", seed=1, input_shape="1,4", …, a
    snapshot manifest's keys) apply to both sides, `a_options`/`b_options` to one: the same model
    with two option sets is `compare("net.py", "net.py", b_options={"dtype": "bfloat16"})`. Numbers
    within rtol/atol (the snapshot's defaults) are unchanged."""
    from ..api.checks import _converted
    rtol = None if rtol is None else _converted("rtol", rtol, "compare")
    atol = None if atol is None else _converted("atol", atol, "compare")
    rankdir = _converted("rankdir", rankdir, "compare")
    timeout = None if timeout is None else _converted("timeout", timeout, "compare")
    from .runs import record_spec
    ra, rb = record_spec(a), record_spec(b)
    if ra is not None or rb is not None:
        from .run_result import compare_runs
        return compare_runs(a, b, ra, rb, rtol=rtol, atol=atol, rankdir=rankdir, timeout=timeout,
                            options={**options, **(a_options or {}), **(b_options or {})})
    if "step" in options:
        from ..core.errors import OptionError
        raise OptionError("step= chooses the step of training records (.cgw); A and B are not records")
    sa = side(a, {**options, **(a_options or {})}, "A")
    sb = side(b, {**options, **(b_options or {})}, "B")
    diff = difference(sa.doc, sb.doc, rtol, atol, _label(sa, sb, a_options), _label(sb, sa, b_options))
    return Comparison(diff, sa, sb, rankdir, timeout, max_nodes)


def _label(s: Side, other: Side, opts: dict | None) -> str:
    """A side's name in the picture; the options that tell it from the other when the names agree."""
    if opts:
        return f"{s.label} ({', '.join(f'{k}={v}' for k, v in opts.items())})"
    return s.label
