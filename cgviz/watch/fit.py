"""`cgviz train MODEL`: N optimizer steps on a model file's example inputs, recorded as `cgviz.watch`
records a loop (the "can it overfit one batch?" check)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import CgvizError, OptionError

OPTIMIZERS = ("sgd", "adam")


@dataclass
class Fitted:
    """What a run of `train_model` gives: the loss before each step, and why it stopped early."""

    source: str
    losses: list[float]
    done: int                           # optimizer steps taken
    stopped: str | None                 # the loss became NaN or infinite
    path: Path
    diagnosis: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def train_model(spec: str, opts, *, lr: float, steps: int = 100, every: int = 10, optimizer: str = "sgd",
                output: str | os.PathLike = "run.cgw", trust: bool = False, weights: str | None = None,
                on_step=None) -> Fitted:
    """Train the model of `spec` (a model file, as `cgviz torch` takes it) on its example inputs for `steps`
    optimizer steps with the loss of `opts` (TraceOptions: --loss, --targets, inputs, dtype, mode, seed),
    recording one step in `every` (and the last) into `output`. `on_step(k, loss)` after each step."""
    import torch

    from ..pytorch.load import load_model
    from ..pytorch.loss import check_connected, resolve
    from ..pytorch.run import call, fresh_inputs, prepare
    from ..pytorch.state import given_back
    from ..cgw.analysis import diagnosis
    from ..cgw.read import read_run
    from .record import Watch

    if optimizer not in OPTIMIZERS:
        raise OptionError(f"optimizer {optimizer!r}: one of {', '.join(OPTIMIZERS)}")
    if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
        raise OptionError(f"the learning rate must be a positive number, got {lr}")
    if not isinstance(steps, int) or steps < 1:
        raise OptionError(f"steps must be a whole number ≥ 1, got {steps!r}")
    if opts.meta:
        raise OptionError("training needs real values; it cannot run on the meta device")
    out = Path(output)
    # the inputs and the loss are prepared as `cgviz torch` prepares them; given back at once, so the
    # training below owns plain parameters (the model is cgviz's own copy, loaded from the file)
    with given_back():
        loaded = load_model(spec, trust=trust, weights=weights)
        if loaded.kind in ("export", "torchscript"):
            raise CgvizError(f"{loaded.path} is a {loaded.description}: its weights cannot be trained here; "
                             "give the Python file that builds the model (model.py, or model.py:factory)")
        model, args, kwargs = prepare(loaded, opts)
        loss = resolve(loaded, opts)
    if opts.mode:
        model.train(opts.mode == "train")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise CgvizError(f"{loaded.path}: the model has no parameter that needs a gradient: nothing to train")
    opt = (torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam)(params, lr=lr)
    part = out.with_name(f".{out.name}.{os.getpid()}.part")
    losses, stopped, notes = [], None, []
    try:
        with Watch(model, part, every, loss, source=Path(loaded.path).name) as w:
            for k in range(steps):
                a, kw = fresh_inputs(args, kwargs)
                y = call(loaded, model, a, kw)
                value = loss(y, seed=opts.seed)
                if k == 0:
                    check_connected(value, y, loss.what)
                    if value.fallback:
                        from ..pytorch.loss import fallback_caveat
                        notes.append(fallback_caveat())
                t = value.tensor
                t.backward()
                losses.append(float(t.detach()))
                last = k == steps - 1 or not math.isfinite(losses[-1])
                w.step(t, record=True if last else None)
                if on_step:
                    on_step(k, losses[-1])
                if not math.isfinite(losses[-1]):
                    stopped = f"the loss became {losses[-1]} at step {k}"
                    break
                opt.step()
                opt.zero_grad(set_to_none=True)
        os.replace(part, out)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    done = len(losses) - (1 if stopped else 0)
    return Fitted(Path(loaded.path).name, losses, done, stopped, out, diagnosis(read_run(out)), notes)
