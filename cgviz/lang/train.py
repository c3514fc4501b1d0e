"""Gradient descent on an expression graph's params: one learning-rate step (`render --lr`) or many (`train`).

A step is a pass like forward and backward: it reads a Run and produces new param values, which the
renderer shows beside the old ones (`w: 0.5 → -3.5`) and `train` writes back before the next run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import engine
from .engine import Run
from ..core.errors import CgvizError
from ..core.spelling import spell
from ..core.fmt import norm, num
from ..core.ir import Graph

# A step that changes a param by more than this share of its size is "large": the article's pizza
# step (4 against a weight of 0.5) is 8×. Healthy training moves weights by a few percent per step.
LARGE_STEP = 0.5
# The rate we suggest aims at steps of about this share of the param's size.
TARGET_STEP = 0.1


@dataclass
class Step:
    """One gradient-descent update: w ← w − lr · scale · ∂L/∂w for every param that has a gradient."""

    lr: float
    updated: dict[str, np.ndarray]           # param id → value after the step
    delta: dict[str, np.ndarray]             # param id → the change (new − old)
    grad_norm: float                         # global norm of the params' gradients, before clipping
    clip_norm: float | None = None
    scale: float = 1.0                       # < 1 when clipping shrank the gradient
    large: list[str] = field(default_factory=list)   # params whose step is large for their size

    @property
    def clipped(self) -> bool:
        return self.scale < 1.0


def params(graph: Graph) -> list[str]:
    """The params gradient descent moves, in program order (inputs are data, consts are fixed)."""
    return [n.id for n in graph if n.kind == "param" and n.attrs["value"].dtype.kind == "f"]


def relative_step(old: np.ndarray, delta: np.ndarray) -> float:
    """‖Δw‖ / ‖w‖; infinite for a step away from a zero param (any step is large against nothing)."""
    size = norm(old)
    change = norm(delta)
    if size == 0:
        return math.inf if change > 0 else 0.0
    return change / size


def step(graph: Graph, run: Run, lr: float, clip_norm: float | None = None) -> Step:
    """The update gradient descent would make from this run's gradients (the graph is not changed)."""
    if not lr > 0 or not math.isfinite(lr):
        raise CgvizError(f"the learning rate must be a positive number, got {lr}")
    ids = [i for i in params(graph) if run.grads.get(i) is not None]
    grads = {i: run.grads[i] for i in ids}
    total = math.sqrt(sum(float(np.sum(np.square(g))) for g in grads.values())) if grads else 0.0
    scale = 1.0
    if clip_norm is not None and math.isfinite(total):
        # torch.nn.utils.clip_grad_norm_'s rule, its 1e-6 included: one factor for all gradients
        scale = min(1.0, clip_norm / (total + 1e-6))
    updated, delta, large = {}, {}, []
    for i in ids:
        old = run.values[i]
        d = -lr * scale * grads[i]
        updated[i] = old + d
        delta[i] = d
        # a param at 0 (a fresh bias) has no size to compare a step with: any step would be "large"
        if norm(old) > 0 and relative_step(old, d) > LARGE_STEP:
            large.append(i)
    return Step(lr=lr, updated=updated, delta=delta, grad_norm=total, clip_norm=clip_norm, scale=scale,
                large=large)


def overflowed(graph: Graph, s: Step) -> str:
    """The params (by name) a step makes NaN or infinite: `lr` so large that lr·g overflows, which
    the next run would otherwise carry on with silently (a dead ReLU then hides it)."""
    return ", ".join(graph[i].name or i for i, v in s.updated.items() if not np.all(np.isfinite(v)))


def suggest_lr(run_step: Step, run: Run) -> float | None:
    """A rate that makes the largest relative step about TARGET_STEP, rounded down to 1, 2 or 5 × 10^k."""
    ratios = [relative_step(run.values[i], run_step.delta[i]) for i in run_step.large]
    finite = [r for r in ratios if math.isfinite(r) and r > 0]
    if not finite:
        return None
    raw = run_step.lr * TARGET_STEP / max(finite)
    exp = math.floor(math.log10(raw))
    for m in (5, 2, 1):
        if m * 10 ** exp <= raw:
            return float(f"{m}e{exp}")
    return float(f"1e{exp}")


def large_step_warnings(graph: Graph, run: Run, s: Step) -> list[str]:
    """One line per param whose step is large for its size, then what rate would be gentler."""
    out = []
    blown = overflowed(graph, s)
    if blown:
        out.append(f"the step makes {blown} infinite: lr × ∂L/∂θ overflows a 64-bit float")
    for i in s.large:
        old, d = run.values[i], s.delta[i]
        name = graph[i].name or i
        r = relative_step(old, d)
        size = f"{num(r)}× its size"
        if old.ndim == 0:
            out.append(f"the step for {name} is {num(d)} ({size}): {name} goes {num(old)} → {num(s.updated[i])}")
        else:
            out.append(f"the step for {name} has norm {num(norm(d))} ({size}, ‖{name}‖ = {num(norm(old))})")
    if out:
        lr = suggest_lr(s, run)
        hint = f"; try {spell('lr', num(lr))} (steps of about {TARGET_STEP:.0%})" if lr else ""
        out.append(f"learning rate {num(s.lr)} is too large for these params{hint}")
    return out


def apply(graph: Graph, s: Step) -> None:
    """Write the stepped values into the params' nodes, so the next run starts from them."""
    for i, v in s.updated.items():
        graph[i].attrs["value"] = v


@dataclass
class History:
    """What `train` saw: the loss before each step, and each step's gradient norm and clipping."""

    losses: list[float] = field(default_factory=list)
    grad_norms: list[float] = field(default_factory=list)
    clipped: list[bool] = field(default_factory=list)
    stopped: str | None = None               # why training stopped early (a NaN loss), else None


def train(graph: Graph, lr: float, steps: int, clip_norm: float | None = None,
          on_step: Callable[[int, float, Step | None], None] | None = None,
          on_run: Callable[[int, Run], None] | None = None) -> tuple[Run, History]:
    """Run `steps` steps of gradient descent in place on the graph's params.

    Returns the run at the final params (forward and backward, so it can be drawn) and the history.
    Stops early, with `history.stopped` saying why, when the loss stops being a finite number.
    `on_run(k, run)` sees the run after k steps, for k = 0 … the last (the page's step slider).
    """
    hist = History()
    run = engine.run(graph)
    for k in range(steps + 1):          # k steps taken so far; the last pass only looks
        if on_run:
            on_run(k, run)
        loss = float(np.sum(run.values[graph.output]))
        hist.losses.append(loss)
        bad_grads = [graph[i].name or i for i in params(graph) if _nonfinite(run.grads.get(i))]
        if not math.isfinite(loss) or (bad_grads and k < steps):
            hist.stopped = _stop_reason(k, steps, loss, bad_grads)
            if on_step and k < steps:
                on_step(k, loss, None)
            return run, hist
        if k == steps:
            break
        s = step(graph, run, lr, clip_norm)
        hist.grad_norms.append(s.grad_norm)
        hist.clipped.append(s.clipped)
        if on_step:
            on_step(k, loss, s)
        blown = overflowed(graph, s)
        if blown:
            hist.stopped = (f"step {k + 1} made {blown} infinite: lr × ∂L/∂θ overflowed a 64-bit float; "
                            f"try a smaller {spell('lr')} or {spell('clip_norm')}")
            return run, hist
        apply(graph, s)
        run = engine.run(graph)
    return run, hist


def _nonfinite(g) -> bool:
    return g is not None and not np.all(np.isfinite(g))


def _stop_reason(k: int, steps: int, loss: float, bad_grads: list[str]) -> str:
    """Why training stops at run k: the learning rate is to blame only once steps have been taken."""
    what = (f"the loss is {num(loss)}" if not math.isfinite(loss)
            else f"the gradient of {', '.join(bad_grads)} is NaN or infinite")
    if k == 0:
        # nothing has moved yet: the program itself makes the NaN, whatever the rate
        return (f"{what} at the start, before any step: the program's own numbers are not finite "
                "(the warnings say where the NaN or infinity first appears), so no rate can help")
    when = f"before step {k + 1}" if k < steps else f"after step {steps}"
    became = what.replace(" is ", " became ", 1)
    return f"{became} {when}: the steps diverged; try a smaller {spell('lr')} or {spell('clip_norm')}"


def training_warnings(hist: History) -> list[str]:
    """What a person should notice in a finished run: the loss went up, or the gradient died."""
    out = []
    losses = hist.losses
    if hist.stopped is None and len(losses) >= 2 and losses[-1] > losses[0]:
        out.append(f"the loss went up ({num(losses[0])} → {num(losses[-1])}): the learning rate is too large "
                   "for this graph")
    dead = next((k for k, g in enumerate(hist.grad_norms) if g == 0), None)
    if dead is not None and losses[dead] != 0:
        out.append(f"the gradient is 0 from step {dead + 1} on while the loss is {num(losses[dead])}: nothing "
                   "moves any more (a ReLU whose input turned negative passes no gradient)")
    return out


def frame_steps(steps: int, most: int = 60) -> set[int]:
    """Which runs the page keeps for its slider: every one up to `most`, else `most` evenly spread,
    the first and the last always included (each kept run holds every value and gradient)."""
    if steps + 1 <= most:
        return set(range(steps + 1))
    return {round(i * steps / (most - 1)) for i in range(most)}
