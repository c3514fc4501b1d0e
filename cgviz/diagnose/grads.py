"""`cgviz grads`: per-layer gradient health as a table (text, Markdown, JSON) and the rows its plots draw.

A "layer" is one tensor that gets a gradient: for an expression file each float `param` and `input`
in declaration order; for a PyTorch model each parameter tensor by its qualified name
(`layer1.0.conv1.weight`), in `named_parameters()` order, which is what TensorBoard's gradient
histograms show. torch is imported only for models.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from ..core.fmt import columns, num, shape_text
from .health import EXPLODE, VANISH, Verdict, classify, verdicts
from ..core.summary import as_summary, first

BINS = 30


@dataclass
class LayerRow:
    """One layer: its norms, the verdict, and a histogram of its gradient's elements."""

    name: str
    kind: str                           # param | input
    shape: tuple[int, ...]
    value_norm: float
    grad_norm: float | None             # None: no gradient reaches it
    verdict: Verdict | None
    hist: tuple[list[int], list[float]] | None = None   # (counts, bin edges)

    @property
    def flag(self) -> str | None:
        return self.verdict.flag if self.verdict else None

    @property
    def ratio(self) -> float | None:
        if self.grad_norm is None or not self.value_norm:
            return None
        return self.grad_norm / self.value_norm

    def limits(self, vanish: float, explode: float) -> tuple[float, float] | None:
        """The thresholds in units of ‖g‖, for the bar chart: scaled by ‖w‖ when judged relatively."""
        if self.verdict is None:
            return None
        k = self.value_norm if self.verdict.relative else 1.0
        return vanish * k, explode * k


def _hist(a: np.ndarray) -> tuple[list[int], list[float]] | None:
    a = np.asarray(a, dtype=np.float64).ravel()
    a = a[np.isfinite(a)]
    if a.size == 0:
        return None
    counts, edges = np.histogram(a, bins=BINS if a.size > 1 else 1)
    return [int(c) for c in counts], [float(e) for e in edges]


def expression_rows(graph, run, vanish: float = VANISH, explode: float = EXPLODE) -> list[LayerRow]:
    """The judged float tensors of a run's summary (an expression's params and inputs), in graph order."""
    run = as_summary(graph, run)
    judged = verdicts(graph, run, vanish, explode)
    rows = []
    for node in graph:
        v = first(run.values.get(node.id))
        if node.kind not in run.judged or v is None or not v.dtype.startswith("float"):
            continue
        g = run.grads.get(node.id)
        rows.append(LayerRow(node.name or node.id, node.kind, v.shape, v.norm, g.norm if g is not None else None,
                        judged.get(node.id), _hist(g.values) if g is not None and g.values is not None else None))
    return rows


def model_rows(model, run, vanish: float = VANISH, explode: float = EXPLODE) -> list[LayerRow]:
    """Every parameter tensor of a model after `trace` ran its backward pass: norms from the live
    tensors (float64 sums, so they equal `p.grad.norm()` to rounding), else from the recorded summary."""
    import torch

    rows = []
    for name, p in model.named_parameters():
        if not p.is_floating_point():
            continue
        w = p.detach()
        value_norm = float(torch.linalg.vector_norm(w.to(torch.float64)))
        g = p.grad
        hist = None
        if g is not None:
            g = g.detach()
            g = (g.to_dense() if g.layout != torch.strided else g).to(torch.float64)   # Embedding(sparse=True)
            gn = float(torch.linalg.vector_norm(g))
            hist = _torch_hist(g)
        else:
            info = run.param_grads.get(name)
            gn = info.norm if info is not None and info.norm is not None else None
            if info is not None and info.values is not None:
                hist = _hist(info.values)
        verdict = classify(name, "param", value_norm, gn, vanish, explode) if gn is not None else None
        rows.append(LayerRow(name, "param", tuple(int(s) for s in p.shape), value_norm, gn, verdict, hist))
    return rows


def _torch_hist(g) -> tuple[list[int], list[float]] | None:
    import torch
    g = g.flatten()
    g = g[torch.isfinite(g)]
    if g.numel() == 0:
        return None
    lo, hi = float(g.min()), float(g.max())
    if lo == hi:
        return [int(g.numel())], [lo - 0.5, hi + 0.5]
    counts = torch.histc(g, bins=BINS, min=lo, max=hi)
    return [int(c) for c in counts.tolist()], [float(e) for e in np.linspace(lo, hi, BINS + 1)]


# ---------------------------------------------------------------- the table

HEAD = ("param", "shape", "‖w‖", "‖g‖", "‖g‖/‖w‖", "flag")


def _cells(r: LayerRow) -> tuple[str, ...]:
    name = r.name if r.kind == "param" else f"{r.name} ({r.kind})"
    grad = "—" if r.grad_norm is None else num(r.grad_norm)
    ratio = "—" if r.ratio is None else num(r.ratio)
    flag = r.flag or ("no gradient" if r.grad_norm is None else
                      "not finite" if not math.isfinite(r.grad_norm) or not math.isfinite(r.value_norm) else "ok")
    if r.flag and not r.verdict.relative:
        flag += " (by ‖g‖)"
    return name, shape_text(r.shape), num(r.value_norm), grad, ratio, flag


def rule(vanish: float, explode: float) -> str:
    return (f"flags: a param is judged by ‖g‖/‖w‖, an input or a param whose ‖w‖ is 0 by ‖g‖; "
            f"vanishing below {num(vanish)}, exploding above {num(explode)}")


def to_text(rows: list[LayerRow], vanish: float = VANISH, explode: float = EXPLODE) -> str:
    lines = columns(HEAD, [_cells(r) for r in rows], right={2, 3, 4})
    lines.append("")
    lines.append(rule(vanish, explode))
    return "\n".join(lines) + "\n"


def to_md(rows: list[LayerRow], vanish: float = VANISH, explode: float = EXPLODE) -> str:
    esc = lambda s: s.replace("|", "\\|")   # noqa: E731
    lines = ["| " + " | ".join(HEAD) + " |", "|---|---|--:|--:|--:|---|"]
    for r in rows:
        c = list(_cells(r))
        c[0] = f"`{c[0]}`" if r.kind == "param" else f"`{r.name}` ({r.kind})"
        lines.append("| " + " | ".join(esc(x) for x in c) + " |")
    lines.append("")
    lines.append(rule(vanish, explode))
    return "\n".join(lines) + "\n"


def to_json(rows: list[LayerRow], vanish: float = VANISH, explode: float = EXPLODE) -> str:
    def clean(x):
        return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else x
    doc = {"thresholds": {"vanish": vanish, "explode": explode},
           "layers": [{"name": r.name, "kind": r.kind, "shape": list(r.shape), "value_norm": clean(r.value_norm),
                       "grad_norm": clean(r.grad_norm), "ratio": clean(r.ratio),
                       "judged_by": None if r.verdict is None else ("ratio" if r.verdict.relative else "grad_norm"),
                       "flag": r.flag} for r in rows]}
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


WRITERS = {"text": to_text, "md": to_md, "json": to_json}
