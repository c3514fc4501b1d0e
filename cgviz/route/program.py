"""The expression language's `train` as a .cgw record (torch-free): the same per-step numbers
`cgviz.watch` records for a model, for each `param` of the program, so one page serves both."""

from __future__ import annotations

import json
import math

import numpy as np

from ..cgw.writer import header, short

BINS = 16


class ProgramRecord:
    """Collects the record of a program's gradient descent from `lang.train.train`'s `on_run(k, run)`:
    one step in `every` (and the last), each written once the next run shows its update."""

    def __init__(self, graph, name: str, every: int = 10):
        from ..lang.train import params
        self.graph, self.name, self.every = graph, name, every
        self.ids = params(graph)
        self.lines: list[str] = []
        self._pending = None          # (record, {param id: value before the step})

    def names(self) -> list[str]:
        return [self.graph[i].name or i for i in self.ids]

    def on_run(self, k: int, run, last: bool = False) -> None:
        """The run after k steps (k = 0 … the last); `last` records it whatever `every` says."""
        if not self.lines:
            from ..view.export import to_dict
            self._write(header(self.name, json.loads(json.dumps(to_dict(self.graph, run), default=float)),
                               self.names(), [], every=self.every, module_types={}))
        if self._pending is not None:
            rec, before = self._pending
            for i, name in zip(self.ids, self.names()):
                st = rec["params"][name]
                if i in before and st["w"]:
                    st["update"] = short(_norm(run.values[i] - before[i]) / st["w"])
            self._write(rec)
            self._pending = None
        if k % self.every == 0 or last:
            loss = float(np.sum(run.values[self.graph.output]))
            rec = {"step": k, "loss": short(loss), "scaled": False, "modules": {},
                   "params": {name: _stats(run.values[i], run.grads.get(i))
                              for i, name in zip(self.ids, self.names())}}
            self._pending = (rec, {i: np.array(run.values[i], dtype=float, copy=True) for i in self.ids})

    def finish(self) -> bytes:
        """The record file's bytes (a pending last step has no update: the run ended before it)."""
        if self._pending is not None:
            self._write(self._pending[0])
            self._pending = None
        return "".join(self.lines).encode("utf-8")

    def _write(self, rec: dict) -> None:
        self.lines.append(json.dumps(rec, separators=(",", ":"), allow_nan=True) + "\n")


def _norm(a) -> float:
    return float(np.sqrt(np.sum(np.square(np.asarray(a, dtype=float)))))


def _stats(value, grad) -> dict:
    w = _norm(value)
    if grad is None:
        return {"w": short(w), "g": None, "ratio": None, "update": None, "hist": None, "nan": 0, "inf": 0}
    g = np.asarray(grad, dtype=float).reshape(-1)
    finite = np.isfinite(g)
    nan = int(np.isnan(g).sum())
    inf = int((~finite).sum()) - nan
    gn = _norm(g)
    hist = None
    vals = g[finite]
    if vals.size:
        lo, hi = float(vals.min()), float(vals.max())
        if lo == hi:            # as the model recorder bins one distinct value
            lo, hi = lo - 0.5 * (abs(lo) or 1.0), hi + 0.5 * (abs(hi) or 1.0)
        counts, _ = np.histogram(vals, bins=BINS, range=(lo, hi))
        hist = {"lo": short(lo), "hi": short(hi), "counts": [int(c) for c in counts]}
    return {"w": short(w), "g": short(gn), "ratio": short(gn / w) if w and math.isfinite(gn) else None,
            "update": None, "hist": hist, "nan": nan, "inf": inf}
