"""The small result types of the library's calls besides a Drawing: one node of a drawing (NodeView),
explain()'s, gradient_health()'s and check_gradients()'s results (cgviz.api builds them).

They live apart from cgviz.api so that `cgviz render`, which builds none of them, does not pay for
creating their classes at start-up (a dataclass costs ~0.3-0.9 ms to create on Python 3.11)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class NodeView:
    """One node of a drawing: what it is, its value and its gradient (∂loss/∂node).

    For an expression program `value` and `grad` are NumPy arrays; for a model they are tensor
    summaries (shape, dtype, mean, std, min, max, norm), since a model's tensors can be large."""

    id: str
    kind: str
    op: str | None
    value: Any
    grad: Any

    @property
    def shape(self) -> tuple[int, ...] | None:
        v = self.value
        s = getattr(v, "shape", None)
        return tuple(s) if s is not None else None


@dataclass
class Explanation:
    """explain()'s result: the text, the program it explains (its name) and the run's warnings."""

    text: str
    source: str
    warnings: list[str]

    def __str__(self) -> str:
        return self.text


@dataclass
class GradientHealth:
    """gradient_health()'s result: one row per layer (cgviz.diagnose.grads.LayerRow) and what a person should read."""

    rows: list
    vanish: float
    explode: float
    source: str                     # the file's name (a model's without its folder)
    kind: str                       # expression | model
    title: str
    warnings: list[str]
    notes: list[str]

    def table(self, format: str = "text") -> str:
        """The table: "text", "md" or "json"."""
        from ..diagnose.grads import WRITERS
        return WRITERS[format](self.rows, self.vanish, self.explode)

    def bar_chart(self) -> tuple[bytes, dict]:
        """A PNG of each layer's gradient norm (log scale, coloured by flag), and facts about it."""
        from ..view.plots import grad_bars
        return grad_bars(self.rows, self.vanish, self.explode, title=self.title)

    def histograms(self) -> tuple[bytes, dict]:
        """A PNG of each layer's gradient histogram (`panels` in the facts: how many were drawn)."""
        from ..view.plots import grad_histograms
        return grad_histograms(self.rows, title=f"{Path(self.source).name}: gradient histogram per layer")


@dataclass
class GradientCheck:
    """check_gradients()'s result: the report (cgviz.check.expression.Report) and the run's warnings."""

    report: Any
    warnings: list[str]

    @property
    def ok(self) -> bool:
        return self.report.ok

    def text(self) -> str:
        from ..check.expression import to_text
        return to_text(self.report)

    def json(self) -> str:
        from ..check.expression import to_json
        return to_json(self.report)
