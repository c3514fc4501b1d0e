"""Record files (.cgw) for the page's tests and benchmark, written in the documented format
(docs/watch-format.md): a header line, then one JSON line per recorded step."""

from __future__ import annotations

import json
import math

import numpy as np


def short(x: float) -> float:
    """4 significant digits, as the recorder keeps them (cgviz.watch.writer)."""
    return x if not math.isfinite(x) or x == 0 else float(f"{x:.4g}")


def synthetic(path, params: dict[str, tuple], modules: list[str], steps: int, graph: dict | None = None,
              every: int = 1, seed: int = 0, fade: dict | None = None, nan_at: tuple | None = None,
              bins: int = 16, source: str = "synthetic.py") -> None:
    """A run of `steps` recorded steps: each parameter's ‖w‖ drifts, ‖g‖ is lognormal around 1e-3·‖w‖
    and multiplied by fade[name](k) when given; `nan_at=(step index, param)` makes that gradient NaN
    from then on (and the loss with it)."""
    rng = np.random.default_rng(seed)
    sizes = {p: int(np.prod(s)) for p, s in params.items()}
    w0 = {p: float(np.sqrt(n) * 0.05) for p, n in sizes.items()}
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps({"format": "cgviz-watch", "version": 1, "source": source, "graph": graph,
                            "params": list(params), "modules": list(modules)}) + "\n")
        for k in range(steps):
            broken = nan_at is not None and k >= nan_at[0]
            loss = float("nan") if broken else 2.3 * math.exp(-k / max(steps / 3, 1)) + 0.05 * rng.random()
            rec = {"step": k * every, "loss": loss, "params": {}, "modules": {}, "scaled": False}
            for p in params:
                w = w0[p] * (1 + 0.1 * k / steps)
                g = w * 1e-3 * float(np.exp(rng.normal(0, 0.3))) * (fade[p](k) if fade and p in fade else 1.0)
                counts = rng.multinomial(min(sizes[p], 10_000), np.ones(bins) / bins).tolist()
                nan = sizes[p] if broken and p == nan_at[1] else 0
                rec["params"][p] = {"w": short(w), "g": float("nan") if nan else short(g),
                                    "ratio": float("nan") if nan else short(g / w),
                                    "update": short(1e-3 * float(np.exp(rng.normal(0, 0.2)))),
                                    "hist": {"lo": short(-3 * g), "hi": short(3 * g), "counts": counts},
                                    "nan": nan, "inf": 0}
            for m in modules:
                rec["modules"][m] = {"mean": 0.5, "std": 0.2, "saturated": 0.1 if "act" in m else None,
                                     "dead": None, "grad": short(1e-2 * float(np.exp(rng.normal(0, 0.3))))}
            f.write(json.dumps(rec) + "\n")
