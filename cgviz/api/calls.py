"""The other commands, each one call: explain, train, gradient_health, check_gradients, op_table, backward_slides."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.errors import CgvizError, OptionError
from ..pytorch.state import given_back
from ..core.spelling import spell
from .checks import _check_targets_file, _checked, _refuse_model_options, check_thresholds
from .sources import _evaluate, _expression, _is_model, _is_text_or_path
# draw() (cgviz.api.drawer) is imported where it is called: explain and train never draw through it

if TYPE_CHECKING:
    from .results import Explanation, GradientCheck, GradientHealth


@given_back()
def explain(source: Any, *, format: str = "text", sets: dict[str, Any] | None = None, kind: str | None = None,
            max_elements: int | None = None) -> Explanation:
    """Backpropagation spelled out for an expression program (text or file): every node's local
    gradient as a formula and a number, then each param's and input's chain of local gradients
    multiplied out. format: "text" (aligned columns), "md" (Markdown tables) or "json"."""
    from ..lang.explain import WRITERS
    from .results import Explanation
    if format not in WRITERS:
        raise OptionError(f"explain(): format={format!r}: must be one of {', '.join(map(repr, WRITERS))}")
    checked = _checked("explain", max_elements=max_elements)
    result, name, _ = _evaluate(source, _expression(source, kind, "explain"), sets, checked["max_elements"])
    return Explanation(WRITERS[format](result.graph, result.run), name, [str(w) for w in result.run.warnings])


@given_back()
def train(source: Any, *, lr: float, steps: int = 100, clip_norm: float | None = None,
          sets: dict[str, Any] | None = None, format: str = "png", rankdir: str | None = None,
          timeout: float | None = 60.0, kind: str | None = None, on_step=None, every: int = 10):
    """Gradient descent on an expression program's params: the losses, a loss-curve PNG and the graph
    after the last step in `format` (html: the page with a slider over the steps; cgw: the training
    record cgviz.watch writes, one step in `every`). See cgviz.route.training."""
    from ..route.training import train as _train
    checked = _checked("train", lr=lr, steps=steps, clip_norm=clip_norm, rankdir=rankdir, timeout=timeout)
    if checked["lr"] is None:
        raise OptionError("train(): lr= is required (the learning rate)")
    from ..view.formats import names
    FORMATS = names("expression")
    if format not in FORMATS + ("cgw",):
        raise CgvizError(f"train(): format={format!r}: must be one of {', '.join(map(repr, FORMATS + ('cgw',)))}")
    if not isinstance(every, int) or isinstance(every, bool) or every < 1:
        raise OptionError(f"train(): every={every!r}: a whole number ≥ 1")
    result, name, _ = _evaluate(source, _expression(source, kind, "train"), sets)
    return _train((result, name), checked, format, on_step, every=every)


@given_back()
def gradient_health(source: Any, *inputs: Any, kind: str | None = None, vanish: float | None = None,
                    explode: float | None = None, sets: dict[str, Any] | None = None, input_size: Any = None,
                    input_file: str | None = None, dtype: str | None = None, loss: Any = None,
                    seed: int = 0, mode: str | None = None, trust: bool = False, weights: str | None = None,
                    max_elements: int | None = None, targets: Any = None, download: bool = False) -> GradientHealth:
    """Gradient health per layer after one backward pass: ‖w‖, ‖g‖, ‖g‖/‖w‖ and a vanishing or
    exploding flag for each param and input of an expression program, or each parameter tensor of a
    model (a file, an hf: model by name, or an nn.Module with its inputs, as draw() takes them;
    download=True lets an hf: model missing from the local cache be fetched, as in draw())."""
    from ..diagnose import grads as G
    from ..diagnose.health import EXPLODE, VANISH, flag_warnings
    from .results import GradientHealth
    checked = _checked("gradient_health", vanish=vanish, explode=explode)
    vanish = VANISH if checked["vanish"] is None else checked["vanish"]
    explode = EXPLODE if checked["explode"] is None else checked["explode"]
    check_thresholds(vanish, explode)
    if _is_model(source, kind):
        if sets:
            raise OptionError(f"{spell('set')} changes declarations of an expression file; {source} is a model")
        # the model runs as draw() runs it (load, trace); grad=False only keeps the picture's own
        # flags out, since each parameter is judged below from its live tensor, and depth=1 is the
        # cheapest picture, which nothing here draws
        from .drawer import draw
        d = draw(source, *inputs, kind="model" if _is_text_or_path(source) else None,
                 input_size=input_size or None, input_file=input_file, dtype=dtype, loss=loss, seed=seed,
                 mode=mode, trust=trust, weights=weights, max_elements=max_elements, grad=False, depth=1,
                 targets=targets, download=download)
        run, loaded = d._b.d.run, d._b.loaded
        if run.loss is None:
            raise CgvizError(f"{Path(loaded.path).name} is on the meta device (shapes only, no values): gradient "
                             "health needs a real forward and backward pass; build the model on the CPU, or "
                             "load its weights, and ask again")
        notes, warnings = d.notes, d.warnings
        from ..pytorch.loss import FALLBACK, fallback_caveat, title_text
        if run.meta.get("loss") == FALLBACK:
            notes.append(fallback_caveat() + "; the flags say little until then")
        rows = G.model_rows(loaded.model, run, vanish, explode)
        from ..core.paths import shown
        name = shown(Path(loaded.path).name)
        if not rows:
            raise CgvizError(f"{name} has no float parameters: there is no gradient per layer to show")
        title = f"{name}: ‖∂L/∂θ‖ per parameter tensor, {title_text(run.meta.get('loss'), run.loss)}"
        what = "model"
    else:
        _refuse_model_options(source, input_shape=input_size, input=input_file, dtype=dtype, loss=loss,
                              trust=trust, weights=weights, mode=mode, targets=targets is not None)
        from ..view.expression_scene import headline
        result, name, _ = _evaluate(source, kind, sets, _checked("gradient_health", max_elements=max_elements)
                                    ["max_elements"])
        notes, warnings = [], [str(w) for w in result.run.warnings]
        rows = G.expression_rows(result.graph, result.run, vanish, explode)
        if not any(r.grad_norm is not None for r in rows):
            raise CgvizError(f"{name}: no param or input gets a gradient, so there is nothing to show "
                             "(declare weights with `param`, data with `input`)")
        title = f"{Path(name).name}: ‖∂L/∂·‖ per param and input, {headline(result.graph, result.run)}"
        what = "expression"
    warnings += flag_warnings([r.verdict for r in rows if r.verdict], vanish, explode)
    return GradientHealth(rows, vanish, explode, name, what, title, warnings, notes)


@given_back()
def check_gradients(source: Any, *, kind: str | None = None, rtol: float | None = None, atol: float | None = None,
                    fd_rtol: float | None = None, fd_atol: float | None = None, fd_samples: int | None = None,
                    sets: dict[str, Any] | None = None, input_size: Any = None, input_file: str | None = None,
                    dtype: str | None = None, loss: Any = None, seed: int = 0, mode: str | None = None,
                    trust: bool = False, weights: str | None = None,
                    max_elements: int | None = None, targets: Any = None, download: bool = False) -> GradientCheck:
    """The gradients cgviz shows for an expression program or a model file, against PyTorch autograd
    and central finite differences (`cgviz check`; the tolerances' defaults are its). For a model, the
    gradients are of the loss draw() would draw: loss= and targets= as draw() takes them, and
    download= for an hf: model."""
    from ..check import expression as gradcheck
    from .results import GradientCheck
    checked = _checked("check_gradients", rtol=rtol, atol=atol, fd_rtol=fd_rtol, fd_atol=fd_atol,
                       fd_samples=fd_samples, dtype=dtype, loss=loss, seed=seed, mode=mode,
                       max_elements=max_elements)
    checked["targets"] = targets
    tol = {k: getattr(gradcheck, k.upper()) if checked[k] is None else checked[k]
           for k in ("rtol", "atol", "fd_rtol", "fd_atol")}
    if not _is_text_or_path(source):
        raise CgvizError(f"check_gradients() takes program text or a file path, not a {type(source).__name__}")
    if _is_model(source, kind):
        if sets:
            raise OptionError(f"{spell('set')} changes declarations of an expression file; {source} is a model")
        spec = os.fspath(source)
        from ..pytorch.load import check_model_files
        check_model_files(spec, input_file, weights)      # before torch is imported
        _check_targets_file(targets)
        from ..check.model import check_model
        from .drawer import _trace_options
        opts = _trace_options(False, input_size or None, checked, False, input_file)
        allowed = contextlib.nullcontext()
        if download:
            from ..pytorch.hf_source import downloads
            allowed = downloads(True)
        with allowed:
            report = check_model(spec, opts, trust=trust, weights=weights, fd_samples=fd_samples or 16, **tol)
        return GradientCheck(report, [])
    _refuse_model_options(source, input_shape=input_size, input=input_file, dtype=dtype, loss=loss, trust=trust,
                          weights=weights, mode=mode, targets=targets is not None)
    result, name, _ = _evaluate(source, kind, sets, checked["max_elements"])
    report = gradcheck.check_expression(result, fd_samples=fd_samples or gradcheck.FD_SAMPLES, source=name, **tol)
    return GradientCheck(report, [str(w) for w in result.run.warnings])


def op_table(format: str = "text") -> str:
    """The expression language's functions and operators with their formulas and local gradients,
    then its initializers: "text" (aligned) or "md" (docs/dsl.md's Markdown tables)."""
    from ..lang.inits import INITS
    from ..lang.ops import OPS
    rows = [(d.usage, d.formula, ", ".join(d.local)) for d in OPS.values() if not d.internal]
    if format == "md":
        out = ["| write | computes | local gradient(s) |", "|---|---|---|"]
        out += ["| `" + how + "` | " + formula.replace("|", "\\|") + " | " + local.replace("|", "\\|") + " |"
                for how, formula, local in rows]
        out += ["", "| initializer | gives |", "|---|---|"] + [f"| `{d.signature}` | {d.doc} |" for d in INITS.values()]
    else:
        width = max(len(r[0]) for r in rows)
        out = [f"{how:<{width}}  {formula}    ∂: {local}" for how, formula, local in rows]
        out += ["", "initializers (for input/param/const):"] + [f"  {d.signature}: {d.doc}" for d in INITS.values()]
    return "\n".join(out) + "\n"


def backward_slides(source: Any, *, format: str = "pdf", sets: dict[str, Any] | None = None,
                    rankdir: str | None = None, dpi: float | None = None, timeout: float | None = 60.0,
                    kind: str | None = None, lr: float | None = None, clip_norm: float | None = None,
                    vanish: float | None = None, explode: float | None = None, max_elements: int | None = None):
    """An expression's backward pass as slides, one step per PDF page or GIF frame (format "pdf" or
    "gif"), in the order the HTML page's stepper walks it; each highlights its edge and writes its
    chain-rule line (`∂L/∂w = ∂L/∂z · ∂z/∂w = 20 · 200 = 4000`). Gives a cgviz.view.slides.Slides:
    `.data` (the file's bytes), `.lines` (the steps' lines) and `.warnings` (the run's, as render's).
    lr= and clip_norm= show each param's step on every frame; vanish=, explode= and max_elements= are
    draw()'s. A loop is unrolled: each of its steps is a step of the backward pass."""
    from ..view import slides
    if format not in ("pdf", "gif"):
        raise CgvizError(f"slides are a pdf or a gif, not {format!r}")
    from .drawer import draw
    d = draw(source, kind=_expression(source, kind, "backward_slides"), sets=sets, rankdir=rankdir,
             timeout=timeout, lr=lr, clip_norm=clip_norm, vanish=vanish, explode=explode, max_elements=max_elements)
    b = d._b
    dots = slides.frames(b.result.graph, b.result.run, b.opts)
    if not dots:
        raise CgvizError("no backward step to show: no gradient reaches a named value")
    data = slides.pdf(dots, timeout) if format == "pdf" else slides.gif(dots, dpi, timeout)
    return slides.Slides(data, [s.line for s in slides.steps(b.result.graph, b.result.run)], list(d.warnings))
