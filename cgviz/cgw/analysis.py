"""What went wrong in a recorded run, and when: events (NaN, a layer that stopped learning, vanishing or
exploding gradients, saturated or dead units) over step ranges, and a diagnosis in words (torch-free).

Layers are modules: a parameter `blocks.3.fc.weight` belongs to layer `blocks.3.fc`, whose norms are
those of all its parameters together. The thresholds are rules of thumb, named below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .read import Run

VANISH = 1e-3       # a layer's ‖g‖/‖w‖ below this fraction of the largest layer's at that step: vanishing
VANISH_ABS = 1e-7   # or below this at all: even lr 1 would move the weights by a ten-millionth
EXPLODE = 10.0      # ‖g‖/‖w‖ above 10: one SGD step at lr 0.1 would more than replace the weights
STOPPED = 1e-5      # an update ratio ‖Δw‖/‖w‖ below this: the layer no longer changes (healthy is ~1e-3)
BIG_UPDATE = 1e-1   # an update ratio above this: each step rewrites a tenth of the weights
SATURATED = 0.5     # a sigmoid/tanh whose outputs are mostly within 1% of their bounds
DEAD = 0.5          # a ReLU-like layer with most of its units zero on the whole batch
HEALTHY_UPDATE = 1e-3


@dataclass(frozen=True)
class Event:
    kind: str           # nan, stopped, vanishing, exploding, saturated, dead
    step_from: int
    step_to: int        # the last recorded step where it still held
    where: str          # a layer or module name ("" when the loss itself)
    text: str


def layer_of(param: str) -> str:
    """`blocks.3.fc.weight` → `blocks.3.fc`; a top-level parameter `scale` belongs to the model, ``."""
    return param.rpartition(".")[0]


def _fin(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def layer_series(run: Run) -> dict[str, list[tuple[int, float | None, float | None, float | None]]]:
    """layer → [(step, ‖g‖/‖w‖, ‖Δw‖/‖w‖, ‖w‖)] over the recorded steps, from the summed squares of its params."""
    order: list[str] = []
    for p in run.params or [p for s in run.steps for p in s.params]:
        if layer_of(p) not in order:
            order.append(layer_of(p))
    out: dict[str, list] = {layer: [] for layer in order}
    for s in run.steps:
        acc: dict[str, list[float]] = {}
        for name, ps in s.params.items():
            a = acc.setdefault(layer_of(name), [0.0, 0.0, 0.0, 0, 0])
            a[0] += ps.w ** 2 if _fin(ps.w) else math.nan
            if ps.g is not None:
                a[1] += ps.g ** 2 if _fin(ps.g) else math.inf
                a[3] += 1
            if ps.update is not None and _fin(ps.w):
                a[2] += (ps.update * ps.w) ** 2 if _fin(ps.update) else math.inf
                a[4] += 1
        for layer, (w2, g2, u2, ng, nu) in acc.items():
            w = math.sqrt(w2) if w2 == w2 else math.nan
            ratio = math.sqrt(g2) / w if ng and w > 0 else None
            update = math.sqrt(u2) / w if nu and w > 0 else None
            out.setdefault(layer, []).append((s.step, ratio, update, w))
    return out


def _runs(steps: list[int], flags: list[bool], last: int) -> list[tuple[int, int]]:
    """Contiguous stretches of recorded steps where the flag holds, as (first, last) step."""
    found, start, prev = [], None, None
    for st, f in zip(steps, flags):
        if f and start is None:
            start = st
        if not f and start is not None:
            found.append((start, prev))
            start = None
        prev = st
    if start is not None:
        found.append((start, last))
    return found


def _span(a: int, b: int) -> str:
    """'from step 10 to 40', or 'at step 0' when the range is one recorded step."""
    return f"at step {a}" if a == b else f"from step {a} to {b}"


def _between(xs: list) -> str:
    """'0.001…0.3', or the one number when every recorded step had the same."""
    lo, hi = _g(min(xs)), _g(max(xs))
    return lo if lo == hi else f"{lo}…{hi}"


def _g(x: float) -> str:
    from ..core.fmt import num
    return num(x)


def events(run: Run) -> list[Event]:
    """Every event of the run, in step order."""
    found: list[Event] = []
    found += _nan_events(run)
    series = layer_series(run)
    last = run.steps[-1].step if run.steps else 0
    # the largest layer ratio per step, which vanishing is measured against
    top: dict[int, float] = {}
    for rows in series.values():
        for st, r, _, _ in rows:
            if _fin(r):
                top[st] = max(top.get(st, 0.0), r)
    for layer, rows in series.items():
        if not rows:
            continue
        steps = [st for st, *_ in rows]
        name = layer or "(the model's own parameters)"
        vanish = [_fin(r) and top.get(st, 0) > 0 and (r < VANISH * top[st] or r < VANISH_ABS)
                  for st, r, _, _ in rows]
        for a, b in _runs(steps, vanish, last):
            rs = [r for st, r, _, _ in rows if a <= st <= b]
            tops = [top[st] for st, r, _, _ in rows if a <= st <= b]
            found.append(Event("vanishing", a, b, layer,
                               f"{name}: ‖g‖/‖w‖ {_between(rs)} {_span(a, b)}, against "
                               f"{_between(tops)} for the largest layer's"))
        explode = [_fin(r) and r > EXPLODE for st, r, _, _ in rows]
        for a, b in _runs(steps, explode, last):
            rs = [r for st, r, _, _ in rows if a <= st <= b]
            found.append(Event("exploding", a, b, layer,
                               f"{name}: ‖g‖/‖w‖ up to {_g(max(rs))} (over {_g(EXPLODE)}) {_span(a, b)}"))
        stopped = [_fin(u) and u < STOPPED for st, _, u, _ in rows]
        spans = _runs(steps, stopped, last)
        if spans and spans[-1][1] == last and any(not f for f in stopped):
            # it learned, then stopped, and never started again
            a, b = spans[-1]
            us = [u for st, _, u, _ in rows if a <= st <= b and _fin(u)]
            found.append(Event("stopped", a, b, layer,
                               f"{name} stopped learning at step {a}: its update ‖Δw‖/‖w‖ is {_g(max(us))} or "
                               f"less from then on (healthy is about {_g(HEALTHY_UPDATE)})"))
        elif spans and all(stopped):
            us = [u for _, _, u, _ in rows if _fin(u)]
            found.append(Event("stopped", steps[0], last, layer,
                               f"{name} never learned: its update ‖Δw‖/‖w‖ is {_g(max(us))} or less at every "
                               f"recorded step (healthy is about {_g(HEALTHY_UPDATE)})"))
    found += _module_events(run, last)
    kinds = ["nan", "stopped", "vanishing", "exploding", "saturated", "dead"]
    return sorted(found, key=lambda e: (e.step_from, kinds.index(e.kind)))


def _nan_events(run: Run) -> list[Event]:
    """The first step where NaN or inf appears: in a module's output (the first in forward order), in a
    gradient, or in the loss; the recorder's own nan event (the exact step of an unrecorded one) first."""
    out = []
    for e in run.events:
        if e.get("event") == "nan":
            step = int(e.get("step", 0))
            where = e.get("module") or ""
            op = e.get("op")
            text = e.get("text") or (f"NaN or inf first appears at step {step}"
                                     + (f" in {where}" + (f" ({op})" if op else "") if where else " in the loss"))
            out.append(Event("nan", step, step, where, text))
            return out
    types = run.header.get("module_types", {})
    for s in run.steps:
        bad_mod = [m for m, ms in s.modules.items() if not (_fin(ms.mean) and _fin(ms.std))]
        bad_par = [p for p, ps in s.params.items() if ps.nan or ps.inf or (ps.g is not None and not _fin(ps.g))]
        bad_loss = s.loss is not None and not _fin(s.loss)
        if not (bad_mod or bad_par or bad_loss):
            continue
        if bad_mod:
            m = bad_mod[0]      # modules are recorded in the order the forward ran them
            op = types.get(m)
            text = (f"NaN or inf first appears at step {s.step} in the output of {m}" + (f" ({op})" if op else "")
                    + (f"; the gradients of {', '.join(bad_par[:3])}{'…' if len(bad_par) > 3 else ''} follow"
                       if bad_par else ""))
            out.append(Event("nan", s.step, s.step, m, text))
        elif bad_par:
            text = (f"NaN or inf first appears at step {s.step} in the gradient of {bad_par[0]}"
                    + (f" (and {len(bad_par) - 1} more)" if len(bad_par) > 1 else "")
                    + (f"; the loss is {s.loss}" if bad_loss else ""))
            out.append(Event("nan", s.step, s.step, layer_of(bad_par[0]), text))
        else:
            out.append(Event("nan", s.step, s.step, "", f"the loss is {s.loss} at step {s.step}"))
        break
    return out


def _module_events(run: Run, last: int) -> list[Event]:
    out = []
    types = run.header.get("module_types", {})
    names: list[str] = []
    for s in run.steps:
        for m in s.modules:
            if m not in names:
                names.append(m)
    for m in names:
        rows = [(s.step, s.modules[m]) for s in run.steps if m in s.modules]
        steps = [st for st, _ in rows]
        kind = f" ({types[m]})" if m in types else ""
        sat = [ms.saturated is not None and _fin(ms.saturated) and ms.saturated > SATURATED for _, ms in rows]
        for a, b in _runs(steps, sat, last):
            fr = [ms.saturated for st, ms in rows if a <= st <= b]
            rng = [ms.input_range for st, ms in rows if a <= st <= b and ms.input_range]
            seen = (f"; its inputs span [{_g(min(r[0] for r in rng))}, {_g(max(r[1] for r in rng))}]"
                    if rng else "")
            out.append(Event("saturated", a, b, m,
                             f"{m}{kind} is saturated {_span(a, b)}: {_pct(min(fr))}–{_pct(max(fr))} of its "
                             f"outputs are within 1% of their bounds, where its slope is nearly 0{seen}"))
        dead = [ms.dead is not None and _fin(ms.dead) and ms.dead > DEAD for _, ms in rows]
        for a, b in _runs(steps, dead, last):
            fr = [ms.dead for st, ms in rows if a <= st <= b]
            out.append(Event("dead", a, b, m,
                             f"{m}{kind} has dead units {_span(a, b)}: {_pct(min(fr))}–{_pct(max(fr))} of "
                             "its units are zero for every example of the batch, so they pass no gradient"))
    return out


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _names(xs: list[str], most: int = 4) -> str:
    xs = [x or "(model)" for x in xs]
    if len(xs) <= most:
        return ", ".join(xs[:-1]) + (" and " if len(xs) > 1 else "") + xs[-1]
    return ", ".join(xs[:most]) + f" and {len(xs) - most} more"


def diagnosis(run: Run) -> list[str]:
    """The run's problems in words, as the lesson's case 6 tells them: which layer, from which step,
    the likely cause and the usual remedies. Empty when nothing looks wrong."""
    evs = events(run)
    if not run.steps:
        return ["no step was recorded: call w.step(loss) after each backward (and every= sets how often one is kept)"]
    by = {k: [e for e in evs if e.kind == k] for k in ("nan", "stopped", "vanishing", "exploding", "saturated", "dead")}
    out = []
    series = layer_series(run)
    for e in by["nan"]:
        out.append(f"{e.text}. Usual causes: a learning rate too large for the loss's curvature (the updates "
                   "grow until a value overflows), log/sqrt/division of a value that reached 0 or below, or an "
                   "exp/softmax without subtracting the maximum. Remedies: a smaller learning rate or warm-up, "
                   "gradient clipping (clip_grad_norm_), eps in log/sqrt/division, the fused losses "
                   "(F.cross_entropy, F.binary_cross_entropy_with_logits) instead of log(softmax(...)).")
    if by["vanishing"]:
        layers = list(dict.fromkeys(e.where for e in by["vanishing"]))
        a = min(e.step_from for e in by["vanishing"])
        b = max(e.step_to for e in by["vanishing"])
        order = list(series)
        pos = sorted(order.index(x) for x in layers if x in order)
        early = pos and pos == list(range(len(pos))) and len(pos) < len(order)
        where = f"the first {len(layers)} of {len(order)} layers ({_names(layers)})" if early else _names(layers)
        text = (f"The gradient vanishes in {where} {_span(a, b)}: their ‖g‖/‖w‖ is under "
                f"{_g(VANISH)} of the largest layer's (or under {_g(VANISH_ABS)}), so they learn a thousand "
                "times slower than the rest, or not at all.")
        sat = by["saturated"]
        if sat:
            mods = list(dict.fromkeys(e.where for e in sat))
            text += (f" Likely cause: {_names(mods)} saturate ({sat[0].text.split(': ', 1)[-1]}); a sigmoid's "
                     "slope is at most 1/4 and about 0 for inputs beyond ±5, and the backward pass multiplies "
                     "one such slope per layer, so the early layers get the product.")
        elif _sigmoid_inputs(run, layers, a):
            text += f" Likely cause: {_sigmoid_inputs(run, layers, a)}"
        else:
            text += (" Likely cause: a deep stack that multiplies small factors in the backward pass (sigmoid or "
                     "tanh activations, whose slope is at most 1/4 and 1, or small initial weights).")
        text += (" Usual remedies: ReLU (or GELU) instead of sigmoid or tanh with Kaiming (He) initialisation, "
                 "BatchNorm or LayerNorm before the activations, residual connections; then record again and "
                 "look at the gradients' distribution.")
        out.append(text)
    elif by["saturated"]:
        mods = list(dict.fromkeys(e.where for e in by["saturated"]))
        a = min(e.step_from for e in by["saturated"])
        out.append(f"{_names(mods)} saturate from step {a}: {by['saturated'][0].text.split(': ', 1)[-1]}. "
                   "Their gradients are nearly 0 there. Usual remedies: normalise the inputs, "
                   "BatchNorm/LayerNorm before the activation, smaller initial weights, or ReLU/GELU.")
    if by["dead"]:
        mods = list(dict.fromkeys(e.where for e in by["dead"]))
        a = min(e.step_from for e in by["dead"])
        text = f"Dead ReLUs in {_names(mods)} from step {a}: {by['dead'][0].text.split(': ', 1)[-1]}."
        big = _big_updates(series, a)
        if big:
            text += (f" Likely cause: updates too large before that: {big}, far above the healthy ~"
                     f"{_g(HEALTHY_UPDATE)}, pushed the units' biases and weights to where they are negative "
                     "for every input.")
        else:
            text += " Likely cause: a learning rate too large, or a large negative bias."
        text += (" Usual remedies: a smaller learning rate (aim for ‖Δw‖/‖w‖ ≈ 1e-3), LeakyReLU or GELU, "
                 "He initialisation, gradient clipping.")
        out.append(text)
    if by["exploding"]:
        layers = list(dict.fromkeys(e.where for e in by["exploding"]))
        a = min(e.step_from for e in by["exploding"])
        b = max(e.step_to for e in by["exploding"])
        out.append(f"The gradient explodes in {_names(layers)} {_span(a, b)}: ‖g‖/‖w‖ above "
                   f"{_g(EXPLODE)}. Usual remedies: gradient clipping (clip_grad_norm_), a smaller learning "
                   "rate or warm-up, normalisation layers, a smaller initialisation.")
    stopped = [e for e in by["stopped"] if e.where not in {v.where for v in by["vanishing"]}]
    if stopped:
        for e in stopped[:4]:
            out.append(f"{e.text}. If it is not frozen on purpose, look at its gradient (‖g‖/‖w‖) and the "
                       "learning rate its optimizer group has.")
    return out


def _sigmoid_inputs(run: Run, layers: list[str], step: int) -> str:
    """The sigmoid/tanh modules at `step` whose inputs reach where their slope is nearly 0, in words."""
    types = run.header.get("module_types", {})
    rec = next((s for s in run.steps if s.step >= step), None)
    if rec is None:
        return ""
    wide = [(m, ms) for m, ms in rec.modules.items() if types.get(m) in ("Sigmoid", "Tanh") and ms.input_range
            and max(-ms.input_range[0], ms.input_range[1]) > (5 if types.get(m) == "Sigmoid" else 2.5)]
    if not wide:
        return ""
    lo = min(ms.input_range[0] for _, ms in wide)
    hi = max(ms.input_range[1] for _, ms in wide)
    sat = max((ms.saturated or 0.0) for _, ms in wide)
    kind = types.get(wide[0][0])
    return (f"the {kind.lower()} inputs of {_names([m for m, _ in wide])} span [{_g(lo)}, {_g(hi)}] at step "
            f"{rec.step} (up to {_pct(sat)} of their outputs saturated), and beyond ±5 a sigmoid's slope is "
            "under 0.007 (at most 1/4 anywhere); the backward pass multiplies one such slope per layer, so the "
            "early layers get the product.")


def _big_updates(series, before: int) -> str:
    worst = []
    for layer, rows in series.items():
        us = [u for st, _, u, _ in rows if st <= before and _fin(u)]
        if us and max(us) > BIG_UPDATE:
            worst.append((max(us), layer))
    if not worst:
        return ""
    worst.sort(reverse=True)
    return ", ".join(f"{layer or '(model)'} ‖Δw‖/‖w‖ {_g(u)}" for u, layer in worst[:3])
