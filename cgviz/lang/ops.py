"""The op table: every op's forward, vector-Jacobian product, PyTorch twin, formula and label, in one place.

The parser, engine, checker and renderer all read this table; none of them switches on op names.
Conventions:
- `forward(xs, **attrs)` takes the tensor arguments as float64 ndarrays and returns an ndarray.
- `vjp(g, xs, out, **attrs)` returns one gradient per tensor argument, in the *broadcast* shape; the
  engine sums broadcast dimensions away (`unbroadcast`), so ops never have to.
- `torch(t, xs, **attrs)` is the same op written with PyTorch (`t` is the torch module, passed in so
  that this module never imports torch).
- `shape(shapes, **attrs)` infers the output shape or raises OpError naming the op and both shapes.
- `formula` and `local` are text for people: the forward formula and each argument's local gradient,
  written in the argument names of `params`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..core.errors import OpError
from ..core.fmt import shape_text  # noqa: F401  (defined in the core; kept importable here)

REQUIRED = object()  # default marker for an attribute the user must give


@dataclass(frozen=True)
class OpDef:
    """One op: what it computes, how its gradient flows back, and how people see it."""

    name: str
    params: tuple[str, ...]                 # tensor arguments; a trailing '?' marks an optional one
    forward: Callable[..., np.ndarray]
    vjp: Callable[..., list]
    torch: Callable[..., Any]
    shape: Callable[..., tuple]
    label: str                              # drawn on the node
    formula: str                            # forward, in the names of `params`
    local: tuple[str, ...]                  # ∂out/∂param, one per param
    attrs: tuple[tuple[str, Any], ...] = ()  # non-tensor arguments (name, default), after the tensors
    varattr: str | None = None              # collects extra positional constants (reshape's dims)
    nondiff: frozenset[int] = frozenset()   # params that never get a gradient (class labels)
    infix: str | None = None                # how the expression language writes it, if an operator
    nonfinite: Callable[..., str | None] | None = None  # why a NaN/inf appeared, given the inputs
    syntax: str | None = None               # how it is written, where that is not `a <infix> b` or a call
    internal: bool = False                  # made by the builder, not written by users (identity)
    doc: str = ""
    # |input| beyond which the local gradient is under ~7% of its peak (σ′(4) = 0.018 vs 0.25,
    # tanh′(2) = 0.071 vs 1): the op "saturates" there and gradients die; None for ops that do not
    saturates: float | None = None

    @property
    def usage(self) -> str:
        """How a user writes the op: `a + b`, `-x`, `relu(x)`."""
        return self.syntax or (f"a {self.infix} b" if self.infix else self.signature())

    @property
    def min_args(self) -> int:
        return sum(1 for p in self.params if not p.endswith("?"))

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.rstrip("?") for p in self.params)

    def signature(self) -> str:
        parts = [p.rstrip("?") + ("=None" if p.endswith("?") else "") for p in self.params]
        if self.varattr:
            parts.append(f"*{self.varattr}")
        for name, default in self.attrs:
            parts.append(name if default is REQUIRED else f"{name}={default!r}")
        return f"{self.name}({', '.join(parts)})"


OPS: dict[str, OpDef] = {}


def op(**kw) -> OpDef:
    d = OpDef(**kw)
    if d.name in OPS:
        raise ValueError(f"op {d.name} defined twice")
    OPS[d.name] = d
    return d


# ---------------------------------------------------------------- shape helpers

def sum_to_shape(g, shape) -> np.ndarray:
    """Sum a gradient over the dimensions broadcasting added or widened, down to `shape`."""
    g = np.asarray(g, dtype=np.float64)
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    for i, s in enumerate(shape):
        if s == 1 and g.shape[i] != 1:
            g = g.sum(axis=i, keepdims=True)
    return g


def _same(shapes, **_):
    return tuple(shapes[0])


def _broadcast(name, symbol=None):
    def infer(shapes, **_):
        if not any(shapes):
            return ()          # scalars only (every op of a long generated program): nothing to broadcast
        try:
            return tuple(np.broadcast_shapes(*shapes))
        except ValueError:
            texts = (f" {symbol} " if symbol else ", ").join(shape_text(s) for s in shapes)
            raise OpError(f"{name} {texts}: shapes cannot be broadcast together "
                          "(trailing dimensions must match or be 1)") from None
    return infer


def _axes(axis, ndim, opname) -> tuple[int, ...]:
    """Normalise an axis attribute (None, int or list) to a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    items = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    if not items:
        # NumPy would reduce nothing and PyTorch everything: refuse rather than pick one silently.
        raise OpError(f"{opname}: axis=[] names no dimension; use axis=None to reduce over all of them")
    out = []
    for a in items:
        if not isinstance(a, (int, np.integer)) or isinstance(a, bool):
            raise OpError(f"{opname}: axis must be a whole number or a list of them, got {a!r}")
        if ndim == 0:
            # like PyTorch, a scalar accepts axis 0 or -1, and there is nothing to reduce
            if a not in (0, -1):
                raise OpError(f"{opname}: axis {a} is out of range for a scalar (only 0 or -1)")
            continue
        if not -ndim <= a < ndim:
            raise OpError(f"{opname}: axis {a} is out of range for a tensor with {ndim} dimension"
                          f"{'s' if ndim != 1 else ''}")
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise OpError(f"{opname}: axis {axis!r} names the same dimension twice")
    return tuple(sorted(out))


def _reduce_shape(opname):
    def infer(shapes, axis=None, **_):
        s = shapes[0]
        axes = _axes(axis, len(s), opname)
        return tuple(d for i, d in enumerate(s) if i not in axes)
    return infer


def _expand(g, shape, axis, opname):
    """Undo a reduction: put the reduced axes back and broadcast g over them."""
    axes = _axes(axis, len(shape), opname)
    return np.broadcast_to(np.expand_dims(g, axes) if axes else g, shape)


def _single_axis(opname):
    def infer(shapes, axis=-1, **_):
        s = shapes[0]
        if len(s) == 0:
            raise OpError(f"{opname} needs a tensor with at least 1 dimension, got a scalar")
        if isinstance(axis, (list, tuple)) or axis is None:
            raise OpError(f"{opname}: axis must be a single whole number, got {axis!r}")
        _axes(axis, len(s), opname)
        return tuple(s)
    return infer


def _matmul_shape(shapes, **_):
    a, b = shapes
    if len(a) == 0 or len(b) == 0:
        raise OpError(f"matmul {shape_text(a)} @ {shape_text(b)}: both sides need at least 1 "
                      "dimension (use * to scale by a scalar)")
    ka = a[-1]
    kb = b[0] if len(b) == 1 else b[-2]
    if ka != kb:
        raise OpError(f"matmul {shape_text(a)} @ {shape_text(b)}: inner dimensions {ka} and {kb} differ")
    batch_a, batch_b = a[:-2], b[:-2]
    try:
        batch = tuple(np.broadcast_shapes(batch_a, batch_b))
    except ValueError:
        raise OpError(f"matmul {shape_text(a)} @ {shape_text(b)}: batch dimensions "
                      f"{shape_text(batch_a)} and {shape_text(batch_b)} cannot be broadcast") from None
    out = batch
    if len(a) >= 2:
        out += (a[-2],)
    if len(b) >= 2:
        out += (b[-1],)
    return out


def _matmul_vjp(g, a, b):
    """Gradients of a @ b for NumPy's matmul rules, 1-D operands included."""
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    g2 = np.asarray(g)
    # Put back the dimensions matmul dropped: b's column first, then a's row, so that the 0-d
    # gradient of a 1-D @ 1-D product becomes [1×1].
    if b.ndim == 1:
        g2 = np.expand_dims(g2, -1)
    if a.ndim == 1:
        g2 = np.expand_dims(g2, -2)
    ga = g2 @ np.swapaxes(b2, -1, -2)
    gb = np.swapaxes(a2, -1, -2) @ g2
    if a.ndim == 1:
        ga = ga.squeeze(-2)
    if b.ndim == 1:
        gb = gb.squeeze(-1)
    return ga, gb


def _loss_pair_shape(opname):
    """Pred and target of an elementwise loss: the same shape, or a scalar target."""
    def infer(shapes, **_):
        p, t = shapes
        if tuple(p) != tuple(t) and len(t) != 0 and len(p) != 0:
            raise OpError(f"{opname} {shape_text(p)} vs {shape_text(t)}: prediction and target shapes "
                          "differ; broadcasting them would silently compare every pair "
                          "(reshape one to match)")
        return ()
    return infer


def _has(pred):
    return bool(np.any(pred))


# ---------------------------------------------------------------- arithmetic

op(name="add", params=("a", "b"), infix="+", label="+", formula="a + b", local=("1", "1"),
   forward=lambda xs: xs[0] + xs[1],
   vjp=lambda g, xs, out: [g, g],
   torch=lambda t, xs: xs[0] + xs[1],
   shape=_broadcast("add", "+"))

op(name="sub", params=("a", "b"), infix="-", label="−", formula="a − b", local=("1", "−1"),
   forward=lambda xs: xs[0] - xs[1],
   vjp=lambda g, xs, out: [g, -g],
   torch=lambda t, xs: xs[0] - xs[1],
   shape=_broadcast("sub", "-"))

op(name="mul", params=("a", "b"), infix="*", label="×", formula="a · b", local=("b", "a"),
   forward=lambda xs: xs[0] * xs[1],
   vjp=lambda g, xs, out: [g * xs[1], g * xs[0]],
   torch=lambda t, xs: xs[0] * xs[1],
   shape=_broadcast("mul", "*"))

op(name="div", params=("a", "b"), infix="/", label="÷", formula="a / b", local=("1/b", "−a/b²"),
   forward=lambda xs: xs[0] / xs[1],
   vjp=lambda g, xs, out: [g / xs[1], -g * xs[0] / (xs[1] * xs[1])],
   torch=lambda t, xs: xs[0] / xs[1],
   shape=_broadcast("div", "/"),
   nonfinite=lambda xs: "division by zero" if _has(xs[1] == 0) else None)

op(name="neg", params=("x",), syntax="-x", label="−x", formula="−x", local=("−1",),
   forward=lambda xs: -xs[0],
   vjp=lambda g, xs, out: [-g],
   torch=lambda t, xs: -xs[0],
   shape=_same)


def _pow_vjp(g, xs, out):
    a, b = xs
    # PyTorch's convention: where b == 0 the base's gradient is 0 (not 0 · 0^(−1) = NaN).
    ga = np.where(b == 0, 0.0, g * b * np.power(a, b - 1))
    # PyTorch's convention: where a == 0 and b >= 0 the exponent's gradient is 0, not 0·log 0 = NaN.
    gb = np.where((a == 0) & (b >= 0), 0.0, g * out * np.log(np.where(a == 0, 1.0, a)))
    gb = np.where((a == 0) & (b < 0), g * out * -np.inf, gb) if _has((a == 0) & (b < 0)) else gb
    return [ga, gb]


def _pow_nonfinite(xs):
    a, b = np.broadcast_arrays(*xs)
    if _has((a < 0) & (b != np.round(b))):
        return "a negative number raised to a fractional power"
    if _has((a == 0) & (b < 0)):
        return "zero raised to a negative power"
    return None


op(name="pow", params=("a", "b"), infix="^", syntax="a ^ b, a ** b", label="^", formula="a^b", local=("b · a^(b−1)", "a^b · ln a"),
   forward=lambda xs: np.power(xs[0], xs[1]),
   vjp=_pow_vjp,
   torch=lambda t, xs: t.pow(xs[0], xs[1]),
   shape=_broadcast("pow", "^"),
   nonfinite=_pow_nonfinite)


def _matmul_fwd(xs):
    return np.asarray(np.matmul(xs[0], xs[1]), dtype=np.float64)


op(name="matmul", params=("a", "b"), infix="@", label="@", formula="a @ b", local=("g @ bᵀ", "aᵀ @ g"),
   forward=_matmul_fwd,
   vjp=lambda g, xs, out: list(_matmul_vjp(g, xs[0], xs[1])),
   torch=lambda t, xs: t.matmul(xs[0], xs[1]),
   shape=_matmul_shape,
   doc="matrix product with NumPy's rules (1-D operands, batch broadcasting)")

op(name="identity", params=("x",), internal=True, label="=", formula="x", local=("1",),
   forward=lambda xs: xs[0].copy(),
   vjp=lambda g, xs, out: [g],
   torch=lambda t, xs: xs[0].clone(),
   shape=_same,
   doc="`b = a` gives a its second name b")

# ---------------------------------------------------------------- elementwise functions


def _sigmoid(x):
    # Written in two halves so that neither exp overflows for large |x|.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


op(name="relu", params=("x",), label="ReLU", formula="max(0, x)", local=("1 if x > 0 else 0",),
   forward=lambda xs: np.maximum(xs[0], 0.0),
   vjp=lambda g, xs, out: [g * (xs[0] > 0)],
   torch=lambda t, xs: t.relu(xs[0]),
   shape=_same)

def _slope_shape(shapes, slope=0.01):
    # a list or a name here would broadcast against x (or crash) instead of being one slope
    if isinstance(slope, bool) or not isinstance(slope, (int, float)):
        raise OpError(f"leaky_relu: slope must be a number, got {slope!r}")
    return _same(shapes)


op(name="leaky_relu", params=("x",), attrs=(("slope", 0.01),), label="LeakyReLU",
   formula="x if x > 0 else slope · x", local=("1 if x > 0 else slope",),
   forward=lambda xs, slope: np.where(xs[0] > 0, xs[0], slope * xs[0]),
   vjp=lambda g, xs, out, slope: [np.where(xs[0] > 0, g, slope * g)],
   torch=lambda t, xs, slope: t.nn.functional.leaky_relu(xs[0], slope),
   shape=_slope_shape)

op(name="sigmoid", params=("x",), label="σ", formula="1 / (1 + e^−x)", local=("σ(x) · (1 − σ(x))",),
   forward=lambda xs: _sigmoid(xs[0]),
   vjp=lambda g, xs, out: [g * out * (1.0 - out)],
   torch=lambda t, xs: t.sigmoid(xs[0]),
   shape=_same, saturates=4.0)

op(name="tanh", params=("x",), label="tanh", formula="tanh(x)", local=("1 − tanh²(x)",),
   forward=lambda xs: np.tanh(xs[0]),
   vjp=lambda g, xs, out: [g * (1.0 - out * out)],
   torch=lambda t, xs: t.tanh(xs[0]),
   shape=_same, saturates=2.0)

op(name="exp", params=("x",), label="exp", formula="e^x", local=("e^x",),
   forward=lambda xs: np.exp(xs[0]),
   vjp=lambda g, xs, out: [g * out],
   torch=lambda t, xs: t.exp(xs[0]),
   shape=_same,
   nonfinite=lambda xs: f"exp overflowed (its input reaches {np.max(xs[0]):.4g})"
   if _has(xs[0] > 709) else None)


def _log_nonfinite(xs):
    if _has(xs[0] < 0):
        return "log of a negative number"
    if _has(xs[0] == 0):
        return "log of zero"
    return None


op(name="log", params=("x",), label="log", formula="ln x", local=("1/x",),
   forward=lambda xs: np.log(xs[0]),
   vjp=lambda g, xs, out: [g / xs[0]],
   torch=lambda t, xs: t.log(xs[0]),
   shape=_same, nonfinite=_log_nonfinite)

op(name="sqrt", params=("x",), label="√", formula="√x", local=("1 / (2√x)",),
   forward=lambda xs: np.sqrt(xs[0]),
   vjp=lambda g, xs, out: [g / (2.0 * out)],
   torch=lambda t, xs: t.sqrt(xs[0]),
   shape=_same,
   nonfinite=lambda xs: "square root of a negative number" if _has(xs[0] < 0)
   else ("square root at 0, whose slope is infinite" if _has(xs[0] == 0) else None))

op(name="abs", params=("x",), label="|x|", formula="|x|", local=("sign(x)",),
   forward=lambda xs: np.abs(xs[0]),
   vjp=lambda g, xs, out: [g * np.sign(xs[0])],
   torch=lambda t, xs: t.abs(xs[0]),
   shape=_same)

op(name="square", params=("x",), label="x²", formula="x²", local=("2x",),
   forward=lambda xs: xs[0] * xs[0],
   vjp=lambda g, xs, out: [2.0 * g * xs[0]],
   torch=lambda t, xs: t.square(xs[0]),
   shape=_same)

op(name="sin", params=("x",), label="sin", formula="sin x", local=("cos x",),
   forward=lambda xs: np.sin(xs[0]),
   vjp=lambda g, xs, out: [g * np.cos(xs[0])],
   torch=lambda t, xs: t.sin(xs[0]),
   shape=_same)

op(name="cos", params=("x",), label="cos", formula="cos x", local=("−sin x",),
   forward=lambda xs: np.cos(xs[0]),
   vjp=lambda g, xs, out: [-g * np.sin(xs[0])],
   torch=lambda t, xs: t.cos(xs[0]),
   shape=_same)

# PyTorch's softplus returns x itself above a threshold of 20; we match it so the check agrees.
op(name="softplus", params=("x",), label="softplus", formula="ln(1 + e^x)", local=("σ(x)",),
   forward=lambda xs: np.where(xs[0] > 20, xs[0], np.log1p(np.exp(np.minimum(xs[0], 20)))),
   vjp=lambda g, xs, out: [np.where(xs[0] > 20, g, g * _sigmoid(xs[0]))],
   torch=lambda t, xs: t.nn.functional.softplus(xs[0]),
   shape=_same)

_erf = np.vectorize(math.erf, otypes=[np.float64])

op(name="gelu", params=("x",), label="GELU", formula="x · Φ(x)", local=("Φ(x) + x · φ(x)",),
   forward=lambda xs: 0.5 * xs[0] * (1.0 + _erf(xs[0] / math.sqrt(2.0))),
   vjp=lambda g, xs, out: [g * (0.5 * (1.0 + _erf(xs[0] / math.sqrt(2.0)))
                                + xs[0] * np.exp(-0.5 * xs[0] ** 2) / math.sqrt(2.0 * math.pi))],
   torch=lambda t, xs: t.nn.functional.gelu(xs[0]),
   shape=_same)


def _maxmin_vjp(pick):
    # PyTorch splits the gradient in half where the two sides tie; so do we.
    def vjp(g, xs, out):
        a, b = np.broadcast_arrays(*xs)
        wins = pick(a, b)
        tie = a == b
        ga = np.where(tie, 0.5 * g, np.where(wins, g, 0.0))
        gb = np.where(tie, 0.5 * g, np.where(wins, 0.0, g))
        return [ga, gb]
    return vjp


op(name="max", params=("a", "b"), label="max", formula="max(a, b)",
   local=("1 if a > b else 0 (½ on a tie)", "1 if b > a else 0 (½ on a tie)"),
   forward=lambda xs: np.maximum(xs[0], xs[1]),
   vjp=_maxmin_vjp(lambda a, b: a > b),
   torch=lambda t, xs: t.maximum(*t.broadcast_tensors(xs[0], xs[1])),
   shape=_broadcast("max"))

op(name="min", params=("a", "b"), label="min", formula="min(a, b)",
   local=("1 if a < b else 0 (½ on a tie)", "1 if b < a else 0 (½ on a tie)"),
   forward=lambda xs: np.minimum(xs[0], xs[1]),
   vjp=_maxmin_vjp(lambda a, b: a < b),
   torch=lambda t, xs: t.minimum(*t.broadcast_tensors(xs[0], xs[1])),
   shape=_broadcast("min"))


def _clip_shape(shapes, lo=None, hi=None):
    if lo is None and hi is None:
        raise OpError("clip needs lo, hi or both")
    for name, v in (("lo", lo), ("hi", hi)):
        if v is not None and not isinstance(v, (int, float)):
            raise OpError(f"clip: {name} must be a number, got {v!r}")
    if lo is not None and hi is not None and lo > hi:
        raise OpError(f"clip: lo={lo} is above hi={hi}")
    return tuple(shapes[0])


def _clip_vjp(g, xs, out, lo, hi):
    x = xs[0]
    keep = np.ones(x.shape, dtype=bool)
    if lo is not None:
        keep &= x >= lo
    if hi is not None:
        keep &= x <= hi
    return [g * keep]


op(name="clip", params=("x",), attrs=(("lo", None), ("hi", None)), label="clip",
   formula="min(max(x, lo), hi)", local=("1 if lo ≤ x ≤ hi else 0",),
   forward=lambda xs, lo, hi: np.clip(xs[0], lo, hi),
   vjp=_clip_vjp,
   torch=lambda t, xs, lo, hi: t.clamp(xs[0], lo, hi),
   shape=_clip_shape)

# ---------------------------------------------------------------- reductions


def _dims(axis, ndim):
    return tuple(range(ndim)) if axis is None else axis


op(name="sum", params=("x",), attrs=(("axis", None),), label="Σ", formula="Σ x", local=("1",),
   forward=lambda xs, axis: np.sum(xs[0], axis=_axes(axis, xs[0].ndim, "sum")),
   vjp=lambda g, xs, out, axis: [_expand(g, xs[0].shape, axis, "sum")],
   torch=lambda t, xs, axis: t.sum(xs[0], dim=_dims(axis, xs[0].ndim)),
   shape=_reduce_shape("sum"))


def _count(shape, axis, opname):
    return int(np.prod([shape[i] for i in _axes(axis, len(shape), opname)], dtype=np.int64))


op(name="mean", params=("x",), attrs=(("axis", None),), label="mean", formula="(1/n) Σ x", local=("1/n",),
   forward=lambda xs, axis: np.mean(xs[0], axis=_axes(axis, xs[0].ndim, "mean")),
   vjp=lambda g, xs, out, axis: [_expand(g, xs[0].shape, axis, "mean")
                                 / max(_count(xs[0].shape, axis, "mean"), 1)],
   torch=lambda t, xs, axis: t.mean(xs[0], dim=_dims(axis, xs[0].ndim)),
   shape=_reduce_shape("mean"))


def _lse(x, axis):
    axes = _axes(axis, x.ndim, "logsumexp")
    m = np.max(x, axis=axes, keepdims=True) if x.size else np.zeros([1] * x.ndim)
    m = np.where(np.isfinite(m), m, 0.0)
    return np.squeeze(m, axis=axes) + np.log(np.sum(np.exp(x - m), axis=axes))


op(name="logsumexp", params=("x",), attrs=(("axis", None),), label="logsumexp",
   formula="ln Σ e^x", local=("softmax(x)",),
   forward=lambda xs, axis: _lse(xs[0], axis),
   vjp=lambda g, xs, out, axis: [_expand(g, xs[0].shape, axis, "logsumexp")
                                 * np.exp(xs[0] - _expand(out, xs[0].shape, axis, "logsumexp"))],
   torch=lambda t, xs, axis: t.logsumexp(xs[0], dim=_dims(axis, xs[0].ndim)),
   shape=_reduce_shape("logsumexp"))

op(name="norm", params=("x",), label="‖x‖", formula="√(Σ x²)", local=("x / ‖x‖",),
   forward=lambda xs: np.sqrt(np.sum(xs[0] * xs[0])),
   vjp=lambda g, xs, out: [g * xs[0] / out if out != 0 else np.zeros_like(xs[0])],
   torch=lambda t, xs: t.linalg.vector_norm(xs[0]),
   shape=lambda shapes: ())


def _softmax(x, axis):
    # initial=-inf: an empty axis gives an empty result (as torch does) instead of a NumPy error
    x = np.asarray(x, dtype=np.float64)
    z = x - np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    e = np.exp(z)
    return e / np.sum(e, axis=axis, keepdims=True)


def _log_softmax(x, axis):
    x = np.asarray(x, dtype=np.float64)
    z = x - np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))


op(name="softmax", params=("x",), attrs=(("axis", -1),), label="softmax",
   formula="e^x / Σ e^x", local=("diag(s) − s sᵀ",),
   forward=lambda xs, axis: _softmax(xs[0], axis),
   vjp=lambda g, xs, out, axis: [out * (g - np.sum(g * out, axis=axis, keepdims=True))],
   torch=lambda t, xs, axis: t.softmax(xs[0], dim=axis),
   shape=_single_axis("softmax"))

op(name="log_softmax", params=("x",), attrs=(("axis", -1),), label="log softmax",
   formula="x − ln Σ e^x", local=("I − softmax(x)",),
   forward=lambda xs, axis: _log_softmax(xs[0], axis),
   vjp=lambda g, xs, out, axis: [g - np.exp(out) * np.sum(g, axis=axis, keepdims=True)],
   torch=lambda t, xs, axis: t.log_softmax(xs[0], dim=axis),
   shape=_single_axis("log_softmax"))

# ---------------------------------------------------------------- losses


def _mse_vjp(g, xs, out):
    p, t = np.broadcast_arrays(*xs)
    d = 2.0 * g * (p - t) / max(p.size, 1)
    return [d, -d]


op(name="mse", params=("pred", "target"), label="MSE", formula="mean((pred − target)²)",
   local=("2(pred − target)/n", "−2(pred − target)/n"),
   forward=lambda xs: np.mean(np.square(np.subtract(*np.broadcast_arrays(*xs)))),
   vjp=_mse_vjp,
   torch=lambda t, xs: t.nn.functional.mse_loss(*t.broadcast_tensors(xs[0], xs[1])),
   shape=_loss_pair_shape("mse"))


def _clamped_log(x):
    # PyTorch clamps BCE's logs at −100 so that a saturated prediction gives a finite loss.
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.maximum(np.log(x), -100.0)


def _bce_fwd(xs):
    p, t = np.broadcast_arrays(*xs)
    return np.mean(-(t * _clamped_log(p) + (1.0 - t) * _clamped_log(1.0 - p)))


# PyTorch's clamp for BCE's denominator is the float32 constant 1e-12 (= 9.99999996e-13).
_BCE_EPS = float(np.float32(1e-12))


def _bce_vjp(g, xs, out):
    p, t = np.broadcast_arrays(*xs)
    n = max(p.size, 1)
    gp = g * (p - t) / np.maximum(p * (1.0 - p), _BCE_EPS) / n
    gt = g * (_clamped_log(1.0 - p) - _clamped_log(p)) / n
    return [gp, gt]


op(name="bce", params=("prob", "target"), label="BCE",
   formula="−mean(target · ln prob + (1 − target) · ln(1 − prob))",
   local=("(prob − target) / (prob (1 − prob)) / n", "(ln(1 − prob) − ln prob) / n"),
   forward=_bce_fwd, vjp=_bce_vjp,
   torch=lambda t, xs: t.nn.functional.binary_cross_entropy(*t.broadcast_tensors(xs[0], xs[1])),
   shape=_loss_pair_shape("bce"),
   nonfinite=lambda xs: "bce needs probabilities in [0, 1]"
   if _has((xs[0] < 0) | (xs[0] > 1)) else None)


def _labels(labels, classes):
    lab = np.asarray(labels)
    if lab.dtype.kind == "f":
        if not np.all(np.isfinite(lab)) or np.any(lab != np.round(lab)):
            raise OpError("cross_entropy: labels must be whole numbers (class indices)")
        lab = lab.astype(np.int64)
    if lab.size and (lab.min() < 0 or lab.max() >= classes):
        raise OpError(f"cross_entropy: labels must lie in 0..{classes - 1} for {classes} classes, "
                      f"got {int(lab.min())}..{int(lab.max())}")
    return lab


def _ce_shape(shapes, **_):
    lg, lb = shapes
    if len(lg) == 2 and tuple(lb) == (lg[0],):
        return ()
    if len(lg) == 1 and len(lb) == 0:
        return ()
    raise OpError(f"cross_entropy {shape_text(lg)} with labels {shape_text(lb)}: expects logits "
                  "[N×C] with labels [N], or logits [C] with one label")


def _ce_parts(xs):
    logits = xs[0] if xs[0].ndim == 2 else xs[0][None, :]
    lab = _labels(xs[1], logits.shape[1]).reshape(-1)
    return logits, lab


def _ce_fwd(xs):
    logits, lab = _ce_parts(xs)
    lsm = _log_softmax(logits, 1)
    return -np.mean(lsm[np.arange(len(lab)), lab])


def _ce_vjp(g, xs, out):
    logits, lab = _ce_parts(xs)
    grad = _softmax(logits, 1)
    grad[np.arange(len(lab)), lab] -= 1.0
    grad = g * grad / len(lab)
    return [grad.reshape(xs[0].shape), None]


op(name="cross_entropy", params=("logits", "labels"), nondiff=frozenset({1}), label="CE",
   formula="−mean(log_softmax(logits)[labels])", local=("(softmax(logits) − onehot(labels)) / N", "—"),
   forward=_ce_fwd, vjp=_ce_vjp,
   torch=lambda t, xs: t.nn.functional.cross_entropy(xs[0], xs[1].long()),
   shape=_ce_shape,
   doc="integer class labels, mean over the batch")

# ---------------------------------------------------------------- shape ops


op(name="transpose", params=("x",), syntax="transpose(x), x.T", label="ᵀ", formula="xᵀ", local=("gᵀ",),
   forward=lambda xs: np.transpose(xs[0]),
   vjp=lambda g, xs, out: [np.transpose(g)],
   torch=lambda t, xs: xs[0].permute(tuple(reversed(range(xs[0].ndim)))),
   shape=lambda shapes: tuple(reversed(shapes[0])),
   doc="reverses the axes; `x.T` is the same")


def _reshape_target(shape, dims):
    dims = list(dims[0]) if len(dims) == 1 and isinstance(dims[0], (list, tuple)) else list(dims)
    for d in dims:
        if not isinstance(d, (int, np.integer)) or isinstance(d, bool) or d < -1 or d == 0:
            raise OpError(f"reshape: dimensions must be positive whole numbers (or one -1), got {d!r}")
    size = int(np.prod(shape, dtype=np.int64))
    if dims.count(-1) > 1:
        raise OpError("reshape: only one dimension can be -1")
    if -1 in dims:
        rest = int(np.prod([d for d in dims if d != -1], dtype=np.int64))
        if rest == 0 or size % rest:
            raise OpError(f"reshape {shape_text(shape)} to {dims}: {size} elements do not divide into "
                          f"rows of {rest}")
        dims[dims.index(-1)] = size // rest
    if int(np.prod(dims, dtype=np.int64)) != size:
        raise OpError(f"reshape {shape_text(shape)} → {shape_text(dims)}: {size} elements cannot "
                      f"become {int(np.prod(dims, dtype=np.int64))}")
    return tuple(int(d) for d in dims)


op(name="reshape", params=("x",), varattr="shape", label="reshape", formula="reshape(x)",
   local=("reshape(g)",),
   forward=lambda xs, shape: np.reshape(xs[0], _reshape_target(xs[0].shape, shape)),
   vjp=lambda g, xs, out, shape: [np.reshape(g, xs[0].shape)],
   torch=lambda t, xs, shape: xs[0].reshape(_reshape_target(tuple(xs[0].shape), shape)),
   shape=lambda shapes, shape: _reshape_target(tuple(shapes[0]), shape))


def _linear_shape(shapes, **_):
    try:
        out = _matmul_shape(shapes[:2])
    except OpError as e:
        raise OpError("linear: x @ W is " + str(e).removeprefix("matmul ")) from None
    if len(shapes) == 3:
        try:
            out = tuple(np.broadcast_shapes(out, shapes[2]))
        except ValueError:
            raise OpError(f"linear: x @ W is {shape_text(out)} but b is {shape_text(shapes[2])}; "
                          "they cannot be added") from None
    return out


def _linear_vjp(g, xs, out):
    # b may broadcast x @ W up to a bigger shape ([1×1] + [1×2]); x @ W's share of g is g summed
    # back to x @ W's own shape
    g_mm = sum_to_shape(g, _matmul_shape([xs[0].shape, xs[1].shape]))
    gx, gw = _matmul_vjp(g_mm, xs[0], xs[1])
    return [gx, gw] + ([g] if len(xs) == 3 else [])


op(name="linear", params=("x", "W", "b?"), label="linear", formula="x @ W + b",
   local=("g @ Wᵀ", "xᵀ @ g", "1"),
   forward=lambda xs: _matmul_fwd(xs) + (xs[2] if len(xs) == 3 else 0.0),
   vjp=_linear_vjp,
   torch=lambda t, xs: t.matmul(xs[0], xs[1]) + (xs[2] if len(xs) == 3 else 0.0),
   shape=_linear_shape,
   doc="x @ W + b, W laid out [in×out]")

