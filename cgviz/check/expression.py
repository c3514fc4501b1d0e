"""`cgviz check` for expression files: cgviz's gradients against PyTorch autograd and central differences.

Also holds what both checks (expressions and models) share: the per-tensor TensorCheck, the Report, the
error measures and the text/JSON output. Nothing here imports torch at module level; the torch
comparison is skipped, with a note, when torch is not installed.
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass, field

import numpy as np

from ..core.fmt import columns
from ..lang.ops import OPS, shape_text

# Defaults, documented in `cgviz check --help` and docs/commands.md.
# cgviz and torch compute the same float64 formulas, so they agree to rounding: tight tolerances.
RTOL, ATOL = 1e-5, 1e-8
# A central difference has truncation error ~h²·f‴ and rounding error ~eps·|L|/h; with h = 1e-6·|x|
# both are far below these, while a wrong formula is off by much more.
FD_RTOL, FD_ATOL = 1e-4, 1e-6
FD_SAMPLES = 64
TINY = 1e-300          # the denominator floor of a relative error
EPS64 = float(np.finfo(np.float64).eps)

from ..core.needs import TORCH_HINT, torch_available


# ---------------------------------------------------------------- shared measures and report


def errors(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Max absolute error and max relative error |a−b| / max(|b|, tiny) of a against reference b,
    over the elements where both are finite (non-finite elements are compared for equality apart)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    fin = np.isfinite(a) & np.isfinite(b)
    if not fin.any():
        return 0.0, 0.0
    d = np.abs(a[fin] - b[fin])
    return float(d.max()), float((d / np.maximum(np.abs(b[fin]), TINY)).max())


def close(a: np.ndarray, b: np.ndarray, rtol: float, atol: float) -> np.ndarray:
    """Elementwise |a−b| ≤ atol + rtol·|b| (np.isclose's rule); NaN matches NaN, inf matches itself."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True)


def sample_indices(n: int, k: int, key: str) -> np.ndarray:
    """Every flat index when n ≤ k, else k distinct ones drawn with a seed taken from the tensor's
    name: the same elements on every run, and not a regular grid that could miss a pattern."""
    if n <= k:
        return np.arange(n)
    rng = np.random.default_rng(zlib.crc32(key.encode("utf-8")))
    return np.sort(rng.choice(n, size=k, replace=False))


@dataclass
class TensorCheck:
    """One tensor's verdict: its gradient against torch and against finite differences."""

    name: str
    kind: str                          # input | param
    shape: tuple[int, ...]
    grad: str = ""                     # what cgviz shows for the gradient: the number, or ‖g‖
    torch_abs: float | None = None     # None: not compared
    torch_rel: float | None = None
    torch_ok: bool | None = None
    torch_what: str = "values"         # values | stats (norm, mean, min, max) when cgviz keeps no tensor
    fd_abs: float | None = None
    fd_rel: float | None = None
    fd_ok: bool | None = None
    checked: int = 0                   # elements checked by finite differences
    kinks: int = 0                     # elements at a kink: the one-sided differences disagree
    nonfinite: int = 0                 # elements skipped by FD because a value there is NaN/inf
    bad: list[str] = field(default_factory=list)   # what went wrong, in words

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def ok(self) -> bool:
        return self.torch_ok is not False and self.fd_ok is not False

    @property
    def verdict(self) -> str:
        if not self.ok:
            return "FAIL"
        if self.checked and self.nonfinite == self.checked:
            return "not checked (NaN/inf)"
        extra = []
        if self.kinks:
            extra.append(f"{self.kinks} kink{'s' if self.kinks != 1 else ''}")
        if self.nonfinite:
            extra.append(f"{self.nonfinite} non-finite")
        return "ok" + (f" ({', '.join(extra)})" if extra else "")


@dataclass
class Report:
    """Everything `cgviz check` prints: one row per input/param, forward problems, notes."""

    source: str
    rows: list[TensorCheck] = field(default_factory=list)
    forward_bad: list[str] = field(default_factory=list)   # node/loss whose value differs from torch
    diagnosis: list[str] = field(default_factory=list)     # where the first wrong number appears
    nonfinite: list[str] = field(default_factory=list)     # nodes whose value or gradient is NaN/inf
    notes: list[str] = field(default_factory=list)
    torch: bool = True                                     # whether torch was compared at all
    tolerances: dict = field(default_factory=dict)

    @property
    def failed(self) -> list[str]:
        return [r.name for r in self.rows if not r.ok]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.forward_bad and not self.nonfinite

    def summary(self) -> str:
        n = len(self.rows)
        against = "PyTorch autograd and finite differences" if self.torch else "finite differences"
        if self.ok:
            return f"ok: {n} gradient{'s agree' if n != 1 else ' agrees'} with {against}"
        parts = []
        if self.failed:
            parts.append(f"{len(self.failed)} of {n} gradients disagree: {', '.join(self.failed)}")
        if self.forward_bad:
            parts.append(f"forward values differ from PyTorch at: {', '.join(self.forward_bad)}")
        if self.nonfinite:
            names = ", ".join(self.nonfinite[:8]) + (", …" if len(self.nonfinite) > 8 else "")
            parts.append(f"values or gradients are NaN or infinite at {names} (the warnings say where "
                         "they first appear): a gradient there cannot be checked")
        return "FAIL: " + "; ".join(parts)


def _e(x: float | None) -> str:
    if x is None:
        return "-"
    if x == 0:
        return "0"
    if not math.isfinite(x):
        return str(x)
    return f"{x:.1e}"


def to_text(report: Report) -> str:
    """The aligned table, the notes and the one-line summary."""
    head = ("tensor", "shape", "gradient", "FD checked", "torch abs err", "torch rel err", "FD abs err",
            "FD rel err", "verdict")
    rows = []
    for r in report.rows:
        torch_abs = _e(r.torch_abs) + ("*" if r.torch_what != "values" and r.torch_abs is not None else "")
        rows.append((r.name, shape_text(r.shape), r.grad, f"{r.checked}/{r.numel}", torch_abs,
                     _e(r.torch_rel), _e(r.fd_abs), _e(r.fd_rel), r.verdict))
    out = columns(head, rows, right={3, 4, 5, 6, 7})
    for r in report.rows:
        out.extend(f"{r.name}: {b}" for b in r.bad)
    out.extend(report.diagnosis)
    if any(r.torch_what != "values" and r.torch_abs is not None for r in report.rows):
        out.append("* cgviz keeps only statistics of this gradient (it is large): compared are its "
                   "norm, mean, min and max")
    out.extend(f"note: {n}" for n in report.notes)
    out.append(report.summary())
    return "\n".join(out) + "\n"


def to_json(report: Report) -> str:
    def num(x):
        return None if x is None else (x if math.isfinite(x) else str(x))
    data = {
        "source": report.source,
        "ok": report.ok,
        "torch": report.torch,
        "tolerances": report.tolerances,
        "tensors": [{"name": r.name, "kind": r.kind, "shape": list(r.shape), "gradient": r.grad,
                     "elements": r.numel, "fd_checked": r.checked, "kinks": r.kinks,
                     "fd_nonfinite": r.nonfinite,
                     "torch": None if r.torch_ok is None else
                     {"compared": r.torch_what, "max_abs": num(r.torch_abs), "max_rel": num(r.torch_rel),
                      "ok": r.torch_ok},
                     "fd": None if r.fd_ok is None else
                     {"max_abs": num(r.fd_abs), "max_rel": num(r.fd_rel), "ok": r.fd_ok},
                     "ok": r.ok, "problems": r.bad} for r in report.rows],
        "forward_mismatch": report.forward_bad,
        "nonfinite": report.nonfinite,
        "diagnosis": report.diagnosis,
        "notes": report.notes,
        "failed": report.failed,
        "summary": report.summary(),
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def grad_label(g: np.ndarray | None) -> str:
    """The gradient as the picture writes it: the number for one element, else its norm."""
    from ..core.fmt import num
    if g is None:
        return "none"
    g = np.asarray(g, dtype=np.float64)
    if g.size == 1:
        return num(g.reshape(()))
    return "‖g‖=" + num(np.linalg.norm(g))


# ---------------------------------------------------------------- finite differences


@dataclass
class FD:
    """Central differences at the sampled elements, with the one-sided ones to spot kinks."""

    idx: np.ndarray
    central: np.ndarray
    forward: np.ndarray     # (f(x+h) − f(x)) / h
    backward: np.ndarray    # (f(x) − f(x−h)) / h
    noise: np.ndarray       # the rounding error of each central difference, about eps·|f|/h


def central_differences(f, flat: np.ndarray, f0: float, idx: np.ndarray) -> FD:
    """Differentiate a scalar function along each sampled flat index of a float64 tensor.

    f(i, v) is the function's value with element i set to v (and the others as in `flat`). The
    step is scaled to the element, h = 1e-6·max(1, |x|), and taken as the exactly representable
    differences (x+h) − x and x − (x−h), so the division uses the steps the function really saw."""
    c, fw, bw, noise = (np.empty(len(idx)) for _ in range(4))
    for j, i in enumerate(idx):
        xi = float(flat[i])
        h = 1e-6 * max(1.0, abs(xi))
        hp, hm = (xi + h) - xi, xi - (xi - h)
        fp = f(int(i), xi + hp)
        fm = f(int(i), xi - hm)
        with np.errstate(all="ignore"):
            c[j] = (fp - fm) / (hp + hm)
            fw[j] = (fp - f0) / hp
            bw[j] = (f0 - fm) / hm
            # the rounding error of the loss itself, magnified by 1/h
            noise[j] = 4 * EPS64 * max(abs(fp), abs(fm), abs(f0)) / min(hp, hm)
    return FD(idx, c, fw, bw, noise)


def judge_fd(row: TensorCheck, grad_flat: np.ndarray, fd: FD, rtol: float, atol: float, scale_atol: float = 0.0) -> None:
    """Compare gradient elements with central differences; an element that disagrees only because
    it sits at a kink (a ReLU at 0, |x| at 0, a tie in max), where the one-sided differences differ
    and the gradient lies between them (a subgradient, as torch also picks), counts as a kink."""
    a = np.asarray(grad_flat, dtype=np.float64)[fd.idx]
    fin = np.isfinite(a) & np.isfinite(fd.central)
    tol = atol + scale_atol + rtol * np.abs(fd.central) + fd.noise
    good = np.abs(a - fd.central) <= tol
    lo = np.minimum(fd.forward, fd.backward) - tol
    hi = np.maximum(fd.forward, fd.backward) + tol
    kink = (~good & fin & (np.abs(fd.forward - fd.backward) > tol) & (a >= lo) & (a <= hi))
    row.checked = len(fd.idx)
    row.nonfinite = int((~fin).sum())
    row.kinks = int(kink.sum())
    smooth = fin & ~kink
    row.fd_abs, row.fd_rel = errors(a[smooth], fd.central[smooth]) if smooth.any() else (0.0, 0.0)
    wrong = smooth & ~good
    row.fd_ok = not wrong.any()
    if wrong.any():
        j = int(np.flatnonzero(wrong)[np.argmax(np.abs(a - fd.central)[wrong])])
        at = np.unravel_index(int(fd.idx[j]), row.shape) if row.shape else ()
        where = f"[{', '.join(map(str, at))}]" if row.shape else ""
        row.bad.append(f"{int(wrong.sum())} of {len(fd.idx)} checked elements differ from finite "
                       f"differences; worst{(' at ' + where) if where else ''}: gradient {a[j]:.10g}, "
                       f"central difference {fd.central[j]:.10g}")


# ---------------------------------------------------------------- expression files


def _downstream(graph, leaf: str) -> list:
    """The op nodes whose value depends on `leaf`, in topological order."""
    dirty = {leaf}
    out = []
    for node in graph:
        if node.kind == "op" and any(i in dirty for i in node.inputs):
            dirty.add(node.id)
            out.append(node)
    return out


def _loss_function(graph, values: dict, leaf: str):
    """x ↦ the summed output with leaf `leaf` set to x, recomputing only what depends on it (with the
    op table's forwards, as the engine does): the function backward differentiates."""
    ops = _downstream(graph, leaf)
    out_id = graph.output

    base = np.array(values[leaf], dtype=np.float64)
    flat = base.reshape(-1)

    def f(i: int, v: float) -> float:
        old = flat[i]
        flat[i] = v
        env = dict(values)
        env[leaf] = base.copy()
        flat[i] = old
        with np.errstate(all="ignore"):
            for node in ops:
                d = OPS[node.op]
                env[node.id] = np.asarray(d.forward([env[k] for k in node.inputs], **node.attrs),
                                          dtype=np.float64)
            return float(np.sum(env[out_id]))
    return f


def _where(node) -> str:
    text = node.meta.get("expr")
    line = node.meta.get("line")
    name = node.name or node.id
    bits = [f"'{name}'"]
    if node.kind == "op":
        bits.append(f"({OPS[node.op].name}{': ' + text if text else ''}"
                    f"{', line ' + str(line) if line else ''})")
    return " ".join(bits)


def check_expression(result, *, rtol: float = RTOL, atol: float = ATOL, fd_rtol: float = FD_RTOL,
                     fd_atol: float = FD_ATOL, fd_samples: int = FD_SAMPLES, use_torch: bool = True,
                     source: str = "<input>") -> Report:
    """Check a `pipeline.evaluate` Result: every float input/param gradient against torch autograd
    (float64, from the op table's torch twins) and central differences of the summed output; every
    node's forward value against torch's."""
    graph, run = result.graph, result.run
    report = Report(source, tolerances={"rtol": rtol, "atol": atol, "fd_rtol": fd_rtol, "fd_atol": fd_atol,
                                        "fd_samples": fd_samples})
    leaves = [n for n in graph if n.kind in ("input", "param") and run.values[n.id].dtype.kind == "f"]
    tvals = tgrads = None
    if use_torch and torch_available():
        from .torch_ops import torch_run
        tvals, tgrads = torch_run(graph)
    elif use_torch:
        report.notes.append("PyTorch is not installed, so only finite differences were checked; "
                            f"to compare with torch autograd too: {TORCH_HINT}")
    report.torch = tvals is not None
    if not leaves:
        report.notes.append("the program has no float input or param, so there is no gradient to check")
    if tvals is not None:
        _check_forward(graph, run, tvals, rtol, atol, report)
    if run.seeded_with_ones:
        report.notes.append(f"the output '{graph.output}' is not a scalar: its gradients (and the finite "
                            "differences) are those of the sum of its elements")
    # NaN or inf anywhere is not "ok", whatever the comparisons say (torch computes the same NaN)
    report.nonfinite = [n.name or n.id for n in graph if n.id in run.nonfinite]
    f0 = float(np.sum(run.values[graph.output]))
    for node in leaves:
        g = run.grads.get(node.id)
        value = run.values[node.id]
        row = TensorCheck(node.name or node.id, node.kind, tuple(value.shape), grad_label(g))
        ga = np.zeros_like(value, dtype=np.float64) if g is None else np.asarray(g, dtype=np.float64)
        if tgrads is not None:
            tg = tgrads.get(node.id)
            tg = np.zeros_like(ga) if tg is None else tg
            row.torch_abs, row.torch_rel = errors(ga, tg)
            row.torch_ok = bool(close(ga, tg, rtol, atol).all())
            if not row.torch_ok:
                row.bad.append(f"differs from torch autograd: cgviz {grad_label(ga)}, torch {grad_label(tg)}")
        idx = sample_indices(value.size, fd_samples, node.id)
        fd = central_differences(_loss_function(graph, run.values, node.id), value.reshape(-1), f0, idx)
        judge_fd(row, ga.reshape(-1), fd, fd_rtol, fd_atol)
        report.rows.append(row)
    # A wrong forward makes every gradient below it wrong too; the forward diagnosis says where.
    if tgrads is not None and not report.forward_bad:
        _diagnose_backward(graph, run, tgrads, rtol, atol, report)
    if any(r.kinks for r in report.rows):
        report.notes.append("a kink is an element where the function has no derivative (ReLU or |x| at 0, "
                            "a tie in max/min): the one-sided differences disagree there, and the "
                            "gradient only has to lie between them, as torch's convention does")
    if any(r.nonfinite for r in report.rows):
        report.notes.append("elements where the gradient or the difference is NaN/inf are left out of "
                            "the finite-difference check (cgviz's warnings say where they come from)")
    return report


def _check_forward(graph, run, tvals, rtol, atol, report: Report) -> None:
    """Every node's value against torch's; name the first op whose value is wrong though its inputs
    are right (that op's forward is the culprit)."""
    wrong = set()
    for node in graph:
        a = run.values[node.id]
        b = tvals.get(node.id)
        if b is None or a.dtype.kind not in "fiu":
            continue
        if a.shape != b.shape or not close(a, b, rtol, atol).all():
            wrong.add(node.id)
    for node in graph:
        if node.id in wrong:
            report.forward_bad.append(node.name or node.id)
    for node in graph:
        if node.id in wrong and node.kind == "op" and not any(i in wrong for i in node.inputs):
            a, b = run.values[node.id], tvals[node.id]
            ea = errors(a, b)[0] if a.shape == b.shape else float("nan")
            report.diagnosis.append(f"the forward value first goes wrong at {_where(node)}: its inputs agree "
                                    f"with torch, its value does not (max abs error {_e(ea)}); check "
                                    f"{OPS[node.op].name}'s forward")


def _diagnose_backward(graph, run, tgrads, rtol, atol, report: Report) -> None:
    """Name the op whose vjp is wrong: a node whose gradient differs from torch's while the gradients
    of all its consumers agree received the error from one of those consumers' vjps."""
    def agrees(nid) -> bool:
        a, b = run.grads.get(nid), tgrads.get(nid)
        if a is None or b is None:
            return (a is None or not np.any(a)) and (b is None or not np.any(b))
        return a.shape == b.shape and bool(close(a, b, rtol, atol).all())

    consumers = graph.consumers()
    for node in graph:
        if node.id not in run.requires_grad or agrees(node.id):
            continue
        users = {e.dst for e in consumers[node.id]}
        if users and all(agrees(u) for u in users):
            culprits = ", ".join(_where(graph[u]) for u in sorted(users, key=lambda u: graph.nodes.index(graph[u])))
            report.diagnosis.append(f"the gradient first goes wrong at {_where(node)}: the gradient "
                                    f"arriving at its consumer {culprits} agrees with torch, the one it "
                                    f"passes back does not; check that op's vjp")
