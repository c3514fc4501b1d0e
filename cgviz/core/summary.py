"""What every view reads of a run, from either front end: a summary of each tensor (shape, dtype, stats,
values) per node and per edge, and the run's loss, warnings, notes and overlays (`RunSummary`).

A model's summaries are taken while it runs, so the picture never holds on to its activations: a
GPT-2-sized run keeps a few numbers per edge, not hundreds of megabytes of tensors. An expression
run's summaries are made on first read from the engine's arrays (`Summaries`), which it keeps.
"""

from __future__ import annotations

import math
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterable, Mapping

import numpy as np

from .fmt import stats as _stats

FULL_LIMIT = 4096   # tensors up to this many elements keep their values (JSON writes them in full)
# Below this many elements a summary's reductions run on one thread. torch splits a reduction over
# 32k elements across its OpenMP threads, and on a busy machine each split waits for a core: mean,
# norm and min/max of a 64k-element activation took 15 ms with 2 threads and 0.03 ms with one
# (2 shared cores, load 7), which over ResNet-50's thousand summaries was seconds. Only tensors this
# big (GPT-2's token embedding and its gradient) gain from splitting.
PARALLEL_STATS = 1 << 24
# Histograms of large tensors cost a pass over memory; only the HTML page shows them.
HISTOGRAMS: ContextVar[bool] = ContextVar("cgviz_histograms", default=False)


@dataclass(frozen=True)
class TensorInfo:
    """A tensor as the picture and the JSON show it."""

    shape: tuple[int, ...]
    dtype: str                       # torch's name without the prefix: float32, int64, bool
    stats: dict | None               # mean/std/min/max/norm (fmt.stats); None on the meta device
    # the values: a model tensor's only when small (≤ FULL_LIMIT elements), else None; an expression
    # array's always (the engine keeps it anyway, and saturation and histograms are then exact)
    values: np.ndarray | None = None
    hist: tuple | None = None         # (counts, lo, hi) of a large tensor, when histograms are on

    @property
    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def norm(self) -> float | None:
        return None if self.stats is None else self.stats["norm"]

    @property
    def has_nan(self) -> bool:
        """min/max are NaN exactly when a NaN is present (std is NaN for a mere -inf too)."""
        return self.stats is not None and any(self.stats.get(k) is not None and self.stats[k] != self.stats[k]
                                              for k in ("min", "max"))

    @property
    def nonfinite(self) -> bool:
        """Some value is NaN or infinite (an attention mask's -inf counts)."""
        return self.stats is not None and any(isinstance(x, float) and not math.isfinite(x)
                                              for x in self.stats.values())

    @staticmethod
    def of_array(a: np.ndarray) -> "TensorInfo":
        """Summarise a NumPy array of the expression engine, keeping the array itself."""
        return ArrayInfo(a)

    @staticmethod
    def of(t: Any) -> "TensorInfo":
        """Summarise a torch tensor (detached; meta/fake tensors give shape and dtype only)."""
        import torch

        dtype = str(t.dtype).replace("torch.", "")
        if getattr(t, "is_nested", False) or t.layout != torch.strided:
            t = _dense(t)
        shape = tuple(int(s) for s in t.shape)
        if t.device.type == "meta" or _is_fake(t):
            return TensorInfo(shape, dtype, None, None)
        d = t.detach()
        if d.is_complex():
            d = d.abs()
        if d.numel() <= FULL_LIMIT:
            # integers stay integers (token ids print whole); floats and bools go through float64
            whole = not d.dtype.is_floating_point and d.dtype != torch.bool
            arr = None
            if d.dtype in _numpy_dtypes() and d.device.type == "cpu":
                # NumPy widens the tensor's own memory into a fresh C-ordered array: the same numbers
                # as torch's .to(float64) and a copy, at half the cost (torch's fresh float64 buffer
                # made the statistics' passes over it twice as slow, ~60 µs of DenseNet's ~90 µs a
                # summary, 1,700 times)
                try:
                    arr = np.array(d.numpy(), dtype=np.int64 if whole else np.float64, order="C")
                except (RuntimeError, TypeError):      # a negative-bit view, a tensor subclass …
                    arr = None
            if arr is None:
                arr = (d.cpu().to(torch.int64) if whole else d.cpu().to(torch.float64)).numpy().copy()
            return TensorInfo(shape, dtype, _stats(arr), arr)
        # Large tensors: statistics in torch, without a NumPy copy. float32 stays float32 (torch's
        # reductions sum pairwise, and `norm` then equals what `param.grad.norm()` prints); other
        # dtypes go through float64.
        x = d if d.dtype in (torch.float32, torch.float64) else d.to(torch.float64)
        if x.numel() < PARALLEL_STATS:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                return TensorInfo._large(x, shape, dtype)
            finally:
                torch.set_num_threads(threads)
        return TensorInfo._large(x, shape, dtype)

    @staticmethod
    def _large(x: Any, shape: tuple[int, ...], dtype: str) -> "TensorInfo":
        """Statistics of a tensor over FULL_LIMIT elements (float32 or float64), without its values."""
        import torch

        # Three passes over memory (mean, norm, min/max) instead of torch.std_mean's slow
        # single-threaded Welford: for GPT-2's weights and gradients that is seconds saved.
        # std from the norm cancels badly when std ≪ |mean|; then take the exact centred norm.
        n = x.numel()
        mean = float(x.mean())
        norm = float(torch.linalg.vector_norm(x))
        var = norm * norm / n - mean * mean
        if var < 1e-4 * mean * mean:
            var = float(torch.linalg.vector_norm(x - mean)) ** 2 / n
        lo, hi = torch.aminmax(x)
        st = {"mean": mean, "std": math.sqrt(max(var, 0.0)), "min": float(lo), "max": float(hi),
              "norm": norm}
        hist = None
        if HISTOGRAMS.get() and math.isfinite(st["min"]) and math.isfinite(st["max"]) and st["min"] < st["max"]:
            # one more pass over memory, only for the HTML page, which draws it in the node's panel
            counts = torch.histc(x.to(torch.float32), bins=16, min=st["min"], max=st["max"])
            hist = ([int(c) for c in counts.tolist()], st["min"], st["max"])
        return TensorInfo(shape, dtype, st, None, hist)


def _dense(t: Any) -> Any:
    """The elements of a sparse or nested tensor as a plain one, to summarise: a sparse tensor (an
    `Embedding(sparse=True)`'s gradient) densified, a nested tensor's components one after another
    (its ragged shape has no single size; the summary's shape is that of the elements, [Σ rows × …])."""
    import torch
    d = t.detach()
    if getattr(d, "is_nested", False):
        if d.layout == torch.jagged:
            return d.values()
        parts = d.unbind()
        return torch.cat([p.reshape(-1, *p.shape[1:]) if p.dim() else p.reshape(1) for p in parts]) \
            if parts else torch.empty(0, dtype=d.dtype)
    if d.device.type == "meta":
        return torch.empty(d.shape, dtype=d.dtype, device="meta")
    return d.to_dense()


_DTYPE_NAMES: dict = {}


@lru_cache(maxsize=1)
def _numpy_dtypes() -> frozenset:
    """The torch dtypes whose tensors .numpy() reads as they are (no bfloat16, no complex); made on
    first use so that importing this module does not import torch."""
    import torch
    return frozenset({torch.float16, torch.float32, torch.float64, torch.bool, torch.uint8, torch.int8,
                      torch.int16, torch.int32, torch.int64})


class ArrayInfo(TensorInfo):
    """An expression array's summary, which keeps the array: its stats are computed on first read,
    so a view that reads only the values (saturation, labels) never pays five reductions for them."""

    def __init__(self, a: np.ndarray):   # frozen: fields are set the way dataclasses set them
        object.__setattr__(self, "shape", a.shape)   # already a tuple of ints
        name = _DTYPE_NAMES.get(a.dtype)
        if name is None:                             # str(dtype) is slow enough to show on 20,000 nodes
            name = _DTYPE_NAMES[a.dtype] = str(a.dtype)
        object.__setattr__(self, "dtype", name)
        object.__setattr__(self, "values", a)
        object.__setattr__(self, "hist", None)

    def __getattr__(self, name):
        # called only while `stats` is unset (the field has no class default to find instead)
        if name != "stats":
            raise AttributeError(name)
        st = _stats(self.values)
        object.__setattr__(self, "stats", st)
        return st


def first(v):
    """A node's (first) output: ops with several tensor outputs keep a list of summaries."""
    return v[0] if isinstance(v, list) else v


@lru_cache(maxsize=1)
def _fake_tensor_class():
    """torch's FakeTensor class, or None on an older torch: looked up once, not on every summary."""
    try:
        from torch._subclasses.fake_tensor import FakeTensor
    except ImportError:  # pragma: no cover - older torch
        return None
    return FakeTensor


def _is_fake(t) -> bool:
    fake = _fake_tensor_class()
    return fake is not None and isinstance(t, fake)


_UNSET = object()


class Summaries(Mapping):
    """key → TensorInfo (or None) of an array, made on first read: a view of a 20,000-node expression
    run pays only for the tensors it shows. `via` maps a key to the array's key (an edge to its producer)."""

    def __init__(self, arrays: Mapping[Any, np.ndarray | None], via: Mapping | None = None):
        self._arrays, self._via, self._made = arrays, via, {}

    def __getitem__(self, key):
        made = self._made.get(key, _UNSET)
        if made is _UNSET:
            a = self._arrays[self._via[key] if self._via is not None else key]
            made = self._made[key] = None if a is None else TensorInfo.of_array(a)
        return made

    def get(self, key, default=None):   # Mapping's own goes through an exception per miss
        made = self._made.get(key, _UNSET)
        if made is not _UNSET:
            return made
        k = key if self._via is None else self._via.get(key, _UNSET)
        if k is _UNSET or k not in self._arrays:
            return default
        return self[key]

    def __iter__(self):
        return iter(self._via if self._via is not None else self._arrays)

    def __len__(self) -> int:
        return len(self._via if self._via is not None else self._arrays)


@dataclass
class RunSummary:
    """What a run produced, beside its `ir.Graph`: the one result type both front ends give the views.

    values      node id → its output (a list for ops with several tensor outputs, e.g. `split`)
    grads       node id → ∂loss/∂(its first output), None where no gradient flows
    edge_values (consumer id, argument index) → the tensor that flowed along that edge
    edge_grads  (consumer id, argument index) → the gradient that flowed back along that edge
    param_grads qualified parameter name → summary of `param.grad` after backward (models)
    """

    values: Mapping[str, Any] = field(default_factory=dict)
    grads: Mapping[str, TensorInfo | None] = field(default_factory=dict)
    edge_values: Mapping[tuple[str, int], TensorInfo] = field(default_factory=dict)
    edge_grads: Mapping[tuple[str, int], TensorInfo | None] = field(default_factory=dict)
    param_grads: dict[str, TensorInfo | None] = field(default_factory=dict)
    loss: float | None = None
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)   # model kind, mode, inputs tried, timings …
    profile: Any = None      # a view.profile.Profile when `--profile` measured the run
    step: Any = None         # a lang.train.Step when `render --lr` took one gradient-descent step
    front: str = "model"     # which front end ran: "model" (cgviz torch) or "expression"
    seeded_with_ones: bool = False         # backward started from ones (an output that is not a scalar)
    # what can get a gradient (the expression engine knows it even without backward); None: what got one
    requires_grad: Iterable[str] | None = None
    # node id → "NaN" or "inf" as the expression engine's scan found them; None: read off the summaries
    nonfinite: dict[str, str] | None = None
    # node id → the ⚠ line of a NaN or infinity first born there (a model run: cgviz.diagnose.nonfinite)
    born: dict[str, str] = field(default_factory=dict)

    @property
    def judged(self) -> tuple[str, ...]:
        """The node kinds whose gradient health is judged: an expression's params and inputs (the
        article's ∂L/∂x is part of the lesson), a model's parameters (its inputs are data)."""
        return ("param", "input") if self.front == "expression" else ("param",)

    def wants_grad(self, node_id: str) -> bool:
        if self.requires_grad is not None:
            return node_id in self.requires_grad
        return self.grads.get(node_id) is not None

    def is_nonfinite(self, node_id: str) -> bool:
        if self.nonfinite is not None:
            return node_id in self.nonfinite
        return any(t is not None and t.nonfinite for t in (first(self.values.get(node_id)), self.grads.get(node_id)))


def as_summary(graph, run) -> RunSummary:
    """The run as the views read it: a RunSummary as it is, the expression engine's Run summarised."""
    return run if isinstance(run, RunSummary) else run.summary(graph)
