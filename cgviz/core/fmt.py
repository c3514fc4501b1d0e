"""How numbers, shapes and tensors are written in labels and messages: one place, so every output agrees."""

from __future__ import annotations

import math

import numpy as np

from . import textwidth

__all__ = ["num", "shape_text", "shape_label", "value_text", "grad_text", "info_text", "info_grad_text", "norm",
           "stats", "inline_values"]


def shape_text(shape) -> str:
    """`[4×3]`, `[]` for a scalar: the way every message and label writes a shape."""
    return "[" + "×".join(str(int(s)) for s in shape) + "]"


def shape_label(shape) -> str:
    """A model tensor's shape in a label: `[2×3]`, and `scalar` for a 0-d tensor (shape_text,
    for messages and the expression language, writes a scalar as `[]`)."""
    return "[" + "×".join(str(s) for s in shape) + "]" if shape else "scalar"


def num(v, digits: int = 4) -> str:
    """4 significant digits (or `digits`); -0 prints as 0 and non-finite values as NaN, inf, -inf.
    An integer (a token id, an index) prints whole: 49910, not 4.991e4."""
    if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) and abs(int(v)) < 10**15:
        return str(int(v))
    v = float(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    text = f"{v:.{digits}g}"
    if text in ("-0", "0"):
        return "0"
    # 1e+04 → 1e4 and 1e-05 → 1e-5: shorter, and the same on every platform.
    if "e" in text:
        mant, exp = text.split("e")
        text = f"{mant}e{int(exp)}"
    return text


def inline_values(a: np.ndarray, limit: int = 4) -> str | None:
    """`[1, 2, 3]` or `[[1], [0]]` for a tensor of at most `limit` elements, else None."""
    if a.ndim == 0 or a.size > limit:
        return None

    def nested(x):
        if x.ndim == 0:
            return num(x)
        return "[" + ", ".join(nested(r) for r in x) + "]"
    return nested(a)


def value_text(a: np.ndarray, sep: str = "\n", with_shape: bool = True) -> str:
    """A value as a label: the number for a scalar, a short vector in full, else shape, mean and std."""
    a = np.asarray(a)
    if a.size == 1 and a.ndim == 0:
        return num(a)
    short = inline_values(a)
    if short is not None:
        return short
    head = shape_text(a.shape) + sep if with_shape else ""
    if a.size == 0:
        return head + "empty"
    if a.dtype.kind in "iu":
        return f"{head}ints {int(a.min())}…{int(a.max())}"   # class labels: their range says more
    af = a.astype(np.float64)
    with np.errstate(all="ignore"):    # inf − inf inside std is NaN, said as such, not warned about
        return f"{head}μ={num(np.mean(af))} σ={num(np.std(af))}"


def grad_text(g: np.ndarray, sep: str = "\n") -> str:
    """A gradient as a label: the number for a scalar, a short vector in full, else shape and L2 norm."""
    g = np.asarray(g)
    if g.size == 1 and g.ndim == 0:
        return num(g)
    short = inline_values(g)
    if short is not None:
        return short
    return f"{shape_text(g.shape)}{sep}‖g‖={num(norm(g))}"


def info_text(t, dtype: bool = True, sep: str = "\n") -> str:
    """A tensor summary (summary.TensorInfo) as a model picture writes it: `[2×32] float32` + `μ=0.1 σ=1`,
    or the values themselves when there are at most 4; a 0-d tensor's shape is `scalar`."""
    if t is None:
        return ""
    head = shape_label(t.shape) + (f" {t.dtype}" if dtype else "")
    if t.values is not None:
        short = inline_values(t.values) if t.values.ndim else num(t.values)
        if short is not None:
            return f"{head}{sep}{short}" if t.values.ndim else f"{short} {t.dtype}" if dtype else short
    if t.stats is None:
        return head
    s = t.stats
    if t.dtype.startswith(("int", "uint", "bool")):
        lo, hi = (int(s[k]) if math.isfinite(s[k]) else s[k] for k in ("min", "max"))
        return f"{head}{sep}{num(lo)}…{num(hi)}"
    return f"{head}{sep}μ={num(s['mean'])} σ={num(s['std'])}"


def info_grad_text(g, sep: str = "\n") -> str:
    """A gradient summary as a model picture writes it: its values when at most 4, else `‖g‖=…` and μ."""
    if g is None or g.stats is None:
        return ""
    if g.values is not None:
        short = inline_values(g.values) if g.values.ndim else num(g.values)
        if short is not None:
            return short
    return f"‖g‖={num(g.norm)}{sep}μ={num(g.stats['mean'])}"


def columns(head, rows, right=frozenset(), rule: bool = False) -> list[str]:
    """Cells as aligned terminal lines: the header, a ─ rule under it if asked, then the rows.
    Columns in `right` are right-aligned (numbers); trailing spaces are trimmed."""
    table = [tuple(head)] + [tuple(r) for r in rows]
    widths = [max(textwidth.width(row[i]) for row in table) for i in range(len(table[0]))]

    def line(cells) -> str:
        # by terminal columns, not characters: a CJK name (损失) takes two columns a character
        return "  ".join(textwidth.rjust(c, w) if i in right else textwidth.ljust(c, w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    out = [line(table[0])]
    if rule:
        out.append("  ".join("─" * w for w in widths))
    return out + [line(r) for r in table[1:]]


def norm(a: np.ndarray) -> float:
    """The L2 norm of a whole tensor (inf when its squares overflow, without a NumPy warning)."""
    with np.errstate(all="ignore"):
        return float(np.linalg.norm(np.asarray(a, dtype=np.float64).ravel()))


def stats(a: np.ndarray | None) -> dict | None:
    """mean, std, min, max and L2 norm, as plain floats (NaN where the tensor holds one)."""
    if a is None:
        return None
    a = np.asarray(a, dtype=np.float64)
    if a.size == 1:
        # the common scalar case, without five numpy reductions
        v = float(a.reshape(()))
        return {"mean": v, "std": 0.0 if math.isfinite(v) else math.nan, "min": v, "max": v, "norm": abs(v)}
    if a.size == 0:
        return {"mean": None, "std": None, "min": None, "max": None, "norm": 0.0}
    # The same arithmetic as np.mean, np.std and np.linalg.norm (so the same bits), without their
    # per-call overhead: a recorded model summarises thousands of small tensors (DenseNet: 2,000),
    # and the five NumPy calls took 100 µs each time, a fifth of the whole run.
    flat = a.ravel()
    n = flat.size
    with np.errstate(all="ignore"):
        mean = np.add.reduce(flat) / n
        c = flat - mean
        return {"mean": float(mean), "std": float(np.sqrt(np.add.reduce(c * c) / n)),
                "min": float(np.minimum.reduce(flat)), "max": float(np.maximum.reduce(flat)),
                "norm": float(np.sqrt(flat @ flat))}


BARS = "▁▂▃▄▅▆▇█"


def histogram_text(counts, lo: float, hi: float) -> str:
    """`-1.2 ▁▂▅█▇▃▁ 1.3`: a histogram in one line of block characters (empty bins are spaces)."""
    top = max(counts) if len(counts) else 0
    if not top:
        return ""
    bars = "".join(" " if c == 0 else BARS[min(len(BARS) - 1, int(c * len(BARS) / (top + 1e-12)))]
                   for c in counts)
    return f"{num(lo)} {bars} {num(hi)}"


def histogram(a, bins: int = 16) -> str:
    """The histogram line of an array's finite values ("" when there is nothing to bin)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    a = a[np.isfinite(a)]
    if a.size < 2 or a.min() == a.max():
        return ""
    counts, edges = np.histogram(a, bins=bins)
    return histogram_text(counts.tolist(), float(edges[0]), float(edges[-1]))
