"""`cgviz train` as one call: gradient descent on an expression program, its loss curve, and the graph
after the last step (a picture, or the page whose slider steps through the training)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ..core.errors import CgvizError


@dataclass
class Training:
    """What a training run gives: the losses, both outputs' bytes, and what a person should read."""

    source: str                     # the program's name, as warnings show it
    losses: list[float]             # before each step, and after the last
    done: int                       # steps taken (fewer than asked when stopped)
    stopped: str | None             # why training stopped early (the loss became NaN or infinite)
    curve: bytes                    # the loss-curve PNG
    graph: bytes                    # the graph after the last step, in the format asked for
    warnings: list[str]             # the program's own, before any step
    advice: list[str]               # on the finished run: the loss went up, the gradient died


def train(evaluated, checked: dict, fmt: str, on_step=None, every: int = 10) -> Training:
    """Run the steps (`on_step(k, loss, step)` after each), then draw the curve and the final graph.
    `evaluated` is the program run once, with its name ((pipeline.Result, name), from cgviz.api.train);
    `checked` holds lr, steps, clip_norm, rankdir and timeout, already checked. fmt "cgw": the graph's
    bytes are the training record cgviz.watch writes (docs/watch-format.md), one step in `every`."""
    from ..core.fmt import num
    from .expression import output_bytes
    from ..lang.train import frame_steps, params, train as descend, training_warnings
    from ..view.expression_scene import DotOptions
    from ..view.plots import loss_curve
    lr, steps, clip_norm = checked["lr"], checked["steps"] or 100, checked["clip_norm"]
    result, name = evaluated
    graph = result.graph
    if not params(graph):
        raise CgvizError(f"{name} declares no float param: there is nothing to train (declare weights with `param`)")
    warnings = [str(w) for w in result.run.warnings]
    frames, keep = [], frame_steps(steps) if fmt == "html" else set()

    record = None
    if fmt == "cgw":
        from .program import ProgramRecord
        record = ProgramRecord(graph, name, every)

    def on_run(k, r):       # the runs the page's step slider shows
        if k in keep:
            frames.append((k, r))
        if record is not None:
            record.on_run(k, r, last=k == steps)

    run, hist = descend(graph, lr, steps, clip_norm, on_step, on_run)
    done = len(hist.grad_norms)
    clip_text = f", clip-norm {num(clip_norm)} ({sum(hist.clipped)} of {done} steps clipped)" if clip_norm else ""
    curve, _ = loss_curve(hist.losses, hist.clipped, stopped=hist.stopped,
                          title=f"{Path(name).name}: gradient descent, lr {num(lr)}{clip_text}")
    result.run = run
    caption = (f"after {done} step{'s' if done != 1 else ''} of gradient descent, lr {num(lr)}{clip_text}; "
               f"loss {num(hist.losses[0])} → {num(hist.losses[-1])}")
    rankdir = checked["rankdir"]
    dot_opts = DotOptions(rankdir=rankdir and rankdir.upper(), caption=caption)
    timeout = checked["timeout"]
    if record is not None:
        data = record.finish()
    elif fmt == "html":
        from ..view.graphviz import run_dot
        from ..view.html import train_page
        if not frames or frames[-1][0] != len(hist.losses) - 1:
            frames.append((len(hist.losses) - 1, run))      # stopped early: the last run is the NaN one
        # the page's frames label every node of every step: a loop is drawn unrolled there
        data = train_page(graph, frames, hist.losses, replace(dot_opts, fold=False),
                          lambda d: run_dot(d, "svg", timeout=timeout, nodes=len(graph)).decode("utf-8")).encode("utf-8")
    else:
        data = output_bytes(result, fmt, dot_opts, timeout=timeout)
    return Training(name, hist.losses, done, hist.stopped, curve, data, warnings, training_warnings(hist))
