"""`cgviz.compare("run.cgw@10", "run.cgw@500")`: a Comparison of two training-record steps, with the same
save, formats and notebook display as a comparison of two graphs."""

from __future__ import annotations

import html
import json
from typing import Any

from ..core.errors import CgvizError, OptionError
from .result import Comparison
from .runs import RecordSpec, RunDifference, run_difference
from .sides import Side


class RunComparison(Comparison):
    """Two recorded steps compared: `c.same`, `c.summary`, `c["param:fc.weight"]` (or `c["fc.weight"]`),
    `c.moved` (parameters ranked by how much ‖w‖ moved), `c.first_divergence` (the first module in
    forward order whose gradient changed), `c.curve` (two records: where their losses part); `c.save()`
    writes .png, .svg, .pdf, .dot, .json or .html."""

    difference: RunDifference

    def __init__(self, diff: RunDifference, a: RecordSpec, b: RecordSpec, rankdir: str = "TB",
                 timeout: float | None = 60.0):
        super().__init__(diff, Side({}, a.label), Side({}, b.label), rankdir, timeout)
        self.specs = (a, b)

    @property
    def moved(self) -> list:
        return self.difference.moved

    @property
    def curve(self) -> dict | None:
        return self.difference.curve

    def __getitem__(self, name: str):
        for n in self.difference.nodes:
            if name in (n.id, n.name):
                return n
        raise KeyError(f"no parameter or module {name!r} in either record")

    @property
    def dot(self) -> str:
        from .runs_picture import to_dot
        return to_dot(self.difference, self.rankdir)

    def html(self) -> str:
        """The picture with the summary and every change, one self-contained page."""
        d = self.difference
        rows = "".join(f"<li>{html.escape(e.text())}</li>" for e in d.ranked)
        summary = "".join(f"<li>{html.escape(line)}</li>" for line in d.summary_lines())
        title = html.escape(f"cgviz diff: {d.a_label} ↔ {d.b_label}")
        data = json.dumps(self.to_dict(), ensure_ascii=False, allow_nan=False).replace("</", "<\\/")
        return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
                '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'">'
                '<style>body{font-family:"DejaVu Sans",sans-serif;margin:12px}li{font-size:13px}'
                '.svg{overflow:auto}</style></head><body>'
                f'<h1 style="font-size:16px">{title}</h1><ul>{summary}</ul><div class="svg">{self.svg()}</div>'
                f'<h2 style="font-size:14px">changed, most first</h2><ul>{rows or "<li>nothing</li>"}</ul>'
                f'<script id="cgviz-diff-data" type="application/json">{data}</script></body></html>\n')

    def _inputs(self) -> list:
        return [s.path for s in self.specs]


def compare_runs(a: Any, b: Any, ra: RecordSpec | None, rb: RecordSpec | None, *, rtol=None, atol=None,
                 rankdir: str = "TB", timeout: float | None = 60.0, options: dict | None = None) -> RunComparison:
    """Both sides records (checked here: a record against a graph is a mistake said plainly)."""
    if ra is None or rb is None:
        spec, other = (ra, b) if rb is None else (rb, a)
        raise CgvizError(f"{spec.label} is a training record and {other!r} is not: cgviz diff compares a record with "
                         "a record (two steps, or two runs), or two graphs")
    options = dict(options or {})
    step = options.pop("step", None)
    if options:
        raise OptionError(f"options {', '.join(sorted(options))} do not apply to training records; a record's "
                          "step is chosen with @STEP (run.cgw@100, @first, @last) or step=")
    if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 0):
        raise OptionError(f"step is a recorded step's number (0 or more), not {step!r}")
    return RunComparison(run_difference(ra, rb, rtol, atol, step), ra, rb, rankdir, timeout)
