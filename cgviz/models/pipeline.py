"""`cgviz torch` as one library call: load → trace (forward, backward) → picture → DOT/JSON/image bytes."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CgvizError
from ..render import IMAGE_FORMATS, run_dot
from .structure import Picture, auto_depth, build_picture


@dataclass
class ModelResult:
    data: bytes
    nodes: int                      # drawn nodes (recorded nodes for JSON)
    recorded: int
    depth: int | None
    max_depth: int
    auto: bool
    loss: float | None
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    profile_table: str | None = None    # --profile: the top nodes by time, for the terminal


def _nonfinite_notes(run) -> list[str]:
    """A NaN or infinite loss or parameter gradient, said in words (the picture shows it too)."""
    import math
    out = []
    if run.loss is not None and not math.isfinite(run.loss):
        out.append(f"the loss is {run.loss}: every gradient below it is meaningless")
    bad = [name for name, g in run.param_grads.items()
           if g is not None and g.norm is not None and not math.isfinite(g.norm)]
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        out.append(f"non-finite gradient (NaN or inf) in {', '.join(bad[:3])}{more}")
    return out


def draw_model(spec: str, fmt: str, *, trust: bool = False, weights: str | None = None, opts=None,
               depth: int | None = None, fold: bool = True, rankdir: str = "TB", grad: bool = True,
               timeout: float | None = None, profile_top: int = 10, vanish: float | None = None,
               explode: float | None = None) -> ModelResult:
    """Everything `cgviz torch` does, minus printing and writing the file."""
    t0 = time.perf_counter()
    from ..needs import require_torch
    require_torch(f"drawing the model {spec}")      # timed on its own: it is most of the start-up
    from .draw import DrawOptions, to_dot
    from .export import to_json
    from .load import load_model
    from .trace import TraceOptions, trace
    opts = opts or TraceOptions()
    timings = {"import": time.perf_counter() - t0}
    t = time.perf_counter()
    loaded = load_model(spec, trust=trust, weights=weights, meta=opts.meta)
    timings["load"] = time.perf_counter() - t
    t = time.perf_counter()
    from .summary import HISTOGRAMS
    token = HISTOGRAMS.set(fmt == "html")
    try:
        traced = trace(loaded, opts)
    finally:
        HISTOGRAMS.reset(token)
    timings["run"] = time.perf_counter() - t
    graph, run = traced.graph, traced.run
    graph.source = Path(loaded.path).name
    profile_table = None
    if run.profile is not None:
        from .profile import table
        timings["profile"] = run.profile.wall_s      # part of "run"
        profile_table = table(run.profile, graph, run, profile_top)
    notes = list(loaded.notes) + list(traced.notes)
    t = time.perf_counter()
    pic: Picture
    auto = False
    view_depth = depth
    view = run.meta.get("view", opts.view)     # a TorchScript fallback may have changed it
    if view == "autograd":
        pic = build_picture(graph, run, None, fold=False)
    elif depth is None:
        pic, view_depth = auto_depth(graph, run, fold)
        auto = view_depth is not None
    else:
        pic = build_picture(graph, run, depth, fold)
    extra = {"view": view, "depth": view_depth, "folded": fold and view == "ops"}
    if view == "autograd" and (depth is not None or not fold):
        notes.append("--depth and --no-fold shape the ops view; the autograd view draws every grad_fn")
    run.warnings.extend(w for w in _nonfinite_notes(run) if w not in run.warnings)
    # Vanishing/exploding flags (cgviz.health) need a loss whose scale means something: the model's
    # own scalar output or a --loss the user chose. The default sum(output) of a tensor grows with the
    # output's size (tiny_gpt's summed logits flag 32 params "exploding"), so it gets none.
    flags = grad and not opts.meta and not (opts.loss is None and run.meta.get("loss") == "sum")
    if flags:
        from ..health import EXPLODE, VANISH, flag_warnings, model_verdicts
        vanish = VANISH if vanish is None else vanish
        explode = EXPLODE if explode is None else explode
        found = model_verdicts(graph, run, vanish, explode).values()
        run.warnings.extend(w for w in flag_warnings(found, vanish, explode) if w not in run.warnings)
    if fmt == "json":
        data = to_json(graph, run, extra, (vanish, explode) if flags else None).encode("utf-8")
        timings["picture"] = time.perf_counter() - t
        return ModelResult(data, len(graph), len(graph), view_depth, pic.max_depth, auto, run.loss, notes,
                           run.warnings, timings, profile_table)
    from .draw import count_text
    title = (f"{graph.source}  —  {loaded.description}, {count_text(run.meta.get('params', 0))} parameters, "
             f"{run.meta.get('mode')} mode, inputs {run.meta.get('inputs')}")
    if opts.meta:
        title += "  —  traced on the meta device: shapes only"
    if run.loss is not None:
        title += f"  —  loss ({run.meta.get('loss')}) = {run.loss:.4g}"
    thresholds = {k: v for k, v in (("vanish", vanish), ("explode", explode)) if v is not None}
    dot_text = to_dot(graph, run, pic, DrawOptions(rankdir=rankdir, grad=grad and not opts.meta, title=title,
                                                   flags=flags, **thresholds))
    timings["picture"] = time.perf_counter() - t
    if fmt == "dot":
        data = dot_text.encode("utf-8")
    elif fmt == "html":
        from ..html import model_page
        t = time.perf_counter()
        svg = run_dot(dot_text, "svg", timeout=timeout, nodes=len(pic.nodes)).decode("utf-8")
        timings["layout"] = time.perf_counter() - t
        data = model_page(graph, run, pic, svg, title).encode("utf-8")
    elif fmt in IMAGE_FORMATS:
        t = time.perf_counter()
        # advice for a picture too big or too slow to lay out: only what is not already in effect
        hint = "".join(h for h, wanted in (("a smaller --depth, ", view_depth is None or view_depth > 1),
                                           ("folding (leave out --no-fold), ", not fold)) if wanted)
        data = run_dot(dot_text, fmt, timeout=timeout, nodes=len(pic.nodes), hint=hint, rankdir=rankdir)
        timings["layout"] = time.perf_counter() - t
    else:
        raise CgvizError(f"unknown format {fmt!r}")
    return ModelResult(data, len(pic.nodes), len(graph), view_depth, pic.max_depth, auto, run.loss, notes,
                       run.warnings, timings, profile_table)
