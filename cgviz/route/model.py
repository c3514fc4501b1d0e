"""A model's route: a loaded model traced (forward, backward) and its picture chosen, as a `ModelDrawing`."""

from __future__ import annotations

import time
from pathlib import Path

from ..core.errors import OptionError
from ..core.spelling import spell
from ..plan.structure import WORDS, Picture, build_picture, find_groups
from .drawing import ModelDrawing
from .sizing import GATHER_DEPTHS, Level


def nonfinite_warnings(graph, run) -> None:
    """Where a NaN or an infinity is born (cgviz.diagnose.nonfinite: the op, the model's line, why), then the
    loss or parameter gradients it spoiled, traced to it: as warnings, in the JSON's `model` field
    (`nonfinite`), and as a mark on the op in the picture (run.born)."""
    import math

    from ..diagnose.nonfinite import find_births, traced_to
    births = find_births(graph, run)
    for b in births:
        run.born.setdefault(b.node, b.mark())
    if births:
        run.meta["nonfinite"] = [b.to_json() for b in births]
    out = [b.message() for b in births]
    if run.loss is not None and not math.isfinite(run.loss):
        out.append(f"the loss is {run.loss}: every gradient below it is meaningless")
    bad = [name for name, g in run.param_grads.items()
           if g is not None and g.norm is not None and not math.isfinite(g.norm)]
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        out.append(f"non-finite gradient (NaN or inf) in {', '.join(bad[:3])}{more}{traced_to(graph, births, bad)}")
    run.warnings.extend(w for w in out if w not in run.warnings)


def picture_model(loaded, opts=None, *, depth: int | None = None, fold: bool = True, grad: bool = True,
                  profile_top: int = 10, vanish: float | None = None, explode: float | None = None,
                  html: bool = False, timings: dict[str, float] | None = None, simplify: bool = True,
                  focus: str | None = None, choose: bool = True) -> ModelDrawing:
    """Trace a loaded model (forward, backward) and choose its picture: depth, folding, flags, title.
    `focus`: draw only the inside of that module call (cgviz.plan.inside), its depth counted from it."""
    from ..pytorch.trace import TraceOptions, trace
    opts = opts or TraceOptions()
    timings = {} if timings is None else timings
    t = time.perf_counter()
    from ..core.summary import HISTOGRAMS
    token = HISTOGRAMS.set(html)
    try:
        traced = trace(loaded, opts)
    finally:
        HISTOGRAMS.reset(token)
    timings["run"] = time.perf_counter() - t
    graph, run = traced.graph, traced.run
    from ..core.paths import shown
    graph.source = shown(Path(loaded.path).name)
    nonfinite_warnings(graph, run)          # on every recorded op, before any is left out or folded
    profile_table = None
    if run.profile is not None:
        from ..view.profile import table
        timings["profile"] = run.profile.wall_s      # part of "run"
        profile_table = table(run.profile, graph, run, profile_top)
    notes = list(loaded.notes) + list(traced.notes)
    t = time.perf_counter()
    pic: Picture
    auto = False
    view_depth = depth
    view = run.meta.get("view", opts.view)     # a TorchScript fallback may have changed it
    coarser: list[Level] = []
    groups = None
    from ..plan.simplify import simplify as _simplify
    simple = _simplify(graph, run) if simplify and view == "ops" else None
    drawn = graph if simple is None else simple.graph
    focused = focus_of = left_out = None
    if focus is not None:
        if view == "autograd":
            raise OptionError(f"{spell('focus')} draws the inside of a module of the ops view; the autograd "
                              "view has no modules")
        from ..plan.inside import find_call, inside
        call = find_call(drawn, focus)
        whole_groups = find_groups(drawn, run) if fold else {}
        focused = _focus_title(call, whole_groups)
        focus_of = (drawn, run, call, whole_groups)
        if simple is not None:       # the pass-through ops left out of this module only
            left_out = simple.within(graph, call).note(graph)
        graph, run = inside(drawn, run, call)       # the focused module with its boundary stubs
        drawn = graph
    if view == "autograd":
        # every grad_fn stays; what the budget may drop is the edge labels and the ellipses
        pic = build_picture(graph, run, None, fold=False)
        coarser = [Level(None, True, pic)]
    else:
        groups = find_groups(drawn, run) if fold else {}
        pic = build_picture(drawn, run, depth, fold, groups)
        if depth is None:
            from ..plan.structure import gathered_ops, max_depth
            coarser = [Level(d) for d in range(max_depth(drawn), 0, -1)]
            # after depth 1, the depths again with the ops run in no module gathered into boxes,
            # where there are any: Mask R-CNN's post-processing (~800 ops after roi_heads, pasting
            # each mask) kept even its depth-1 PNG over the budget
            # each: the chain is tried only when even depth 1 is over the budget, so a gathered level
            # deeper than GATHER_DEPTHS cannot be the one that fits; and finding the gathered ops costs
            # O(ops × depth) a level (a model nested 600 deep spent minutes on all 600)
            coarser += [Level(d, gather=True) for d in range(min(max_depth(drawn), GATHER_DEPTHS), 0, -1)
                        if gathered_ops(drawn, d)]
    extra = {"view": view, "depth": view_depth, "folded": fold and view == "ops"}
    if view == "autograd" and (depth is not None or not fold):
        notes.append(f"{spell('depth')} and {spell('no_fold')} shape the ops view; the autograd view draws every grad_fn")
    # Vanishing/exploding flags (cgviz.diagnose.health) need a loss whose scale means something: the user's,
    # the model's own, or its scalar output. The fallback sum(output) of a tensor grows with the
    # output's size (tiny_gpt's summed logits flag 32 params "exploding"), so it gets none.
    flags = grad and not opts.meta and not traced.loss_fallback
    caveat = ""
    if traced.loss_fallback and grad and not opts.meta:
        from ..pytorch.loss import fallback_caveat
        caveat = fallback_caveat()
        notes.append(caveat)
    if flags:
        from ..diagnose.health import EXPLODE, VANISH, flag_warnings, verdicts
        vanish = VANISH if vanish is None else vanish
        explode = EXPLODE if explode is None else explode
        found = verdicts(graph, run, vanish, explode).values()
        run.warnings.extend(w for w in flag_warnings(found, vanish, explode) if w not in run.warnings)
    from ..view.model_scene import count_text
    title = (f"{graph.source}  —  {loaded.description}, {count_text(run.meta.get('params', 0))} parameters, "
             f"{run.meta.get('mode')} mode, inputs {run.meta.get('inputs')}")
    if opts.meta:
        title += "  —  traced on the meta device: shapes only"
    if run.loss is not None:
        from ..pytorch.loss import title_text
        title += f"  —  {title_text(run.meta.get('loss'), run.loss)}"
    if focused is None and simple is not None:
        left_out = simple.note(graph)
    if left_out:
        title += f"  —  {left_out}"
    remarks = []
    if traced.unread and focused is None:
        # a named input the picture does not draw is said in the picture (a line of its own under
        # the title: in the title it would widen the picture) and on stderr
        extra["unread_inputs"] = {name: ops for name, (ops, _v) in traced.unread.items()}
        remarks = [unread_note(name, ops, v) for name, (ops, v) in traced.unread.items()]
        notes.extend(remarks)
    base_title = title
    if focused:
        title += f"  —  {focused}"
        extra["focus"] = focus
        focus_of += (base_title,)
    drawing = ModelDrawing(graph, run, pic, title, extra, flags, vanish, explode, grad and not opts.meta,
                           view_depth, auto, fold, notes, profile_table, coarser=coarser, drawn=drawn,
                           groups=groups, focus_of=focus_of, caveat=caveat, remarks=remarks)
    # choosing the level is picture work too (DenseNet: every op's DOT text and three coarser
    # pictures, a few tenths of a second that the stage line used to leave out). `choose=False`: the
    # output is the JSON, which has every op whatever the picture (a 40,000-op chain spent 30 s here
    # and printed a note about Graphviz)
    if choose:
        drawing.choose()
    timings["picture"] = time.perf_counter() - t
    return drawing


def unread_note(name: str, ops: list[str], value) -> str:
    """What the picture says of an input it does not draw because the loss does not depend on it:
    only what the run shows (its values, the ops that read it), no guess at the model's reasons.
    BERT with an all-ones mask: `attention_mask (all ones): not drawn, no op on the way to the loss
    reads it; the model read it only in to → all = True`."""
    from ..core.fmt import num
    st = getattr(value, "stats", None)
    same = st is not None and st.get("min") is not None and st["min"] == st["max"]
    facts = (f" (all {({0: 'zeros', 1: 'ones'}).get(st['min'], num(st['min']))})" if same else "")
    read = (f"the model read it only in {' → '.join(ops[:4])}{' …' if len(ops) > 4 else ''}" if ops
            else "the model never read it")
    return f"{name}{facts}: not drawn, no op on the way to the loss reads it; {read}"


def _focus_title(call: tuple, groups_of: dict) -> str:
    """`inside blocks.7 (Block), block 8 of 12`: what a focused picture shows."""
    f = call[-1]
    text = f"inside {f.key} ({f.cls})"
    for grp in groups_of.values():
        # the repetition the call is (or is inside of): a prefix of it, so never longer than it
        k = next((k for k, c in enumerate(grp.calls) if call[:len(c)] == c), None)
        if k is not None:
            text += f", {WORDS[grp.style][0]} {k + 1} of {grp.n}"
    return text
