"""`cgviz torch` as one library call: load → trace (forward, backward) → picture → DOT/JSON/image bytes."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import CgvizError, OptionError
from ..spelling import spell
from ..view import formats
from ..view.graphviz import DOT_MEMORY_ENV, LayoutLimit, LayoutMemory, LayoutTimeout, PictureTooBig, rasterise, layout, run_dot
from ..plan.structure import WORDS, Picture, build_picture, find_groups
from .state import given_back

ATTEMPT_SHARE = 0.25        # of --timeout, for one layout attempt while a coarser level remains
MIN_ATTEMPT = 10.0          # seconds


GATHER_DEPTHS = 8       # the deepest level tried with the ops run in no module gathered (Level.gather)


@dataclass
class Level:
    """One picture the layout budget may choose: a depth (None: every op), or the compact style."""

    depth: int | None
    compact: bool = False
    pic: Picture | None = None
    gather: bool = False        # the ops run in no module collapsed too (structure.gathered_ops)


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
    # files written beside the output: Model Explorer's node-data overlays, name → bytes
    beside: dict[str, bytes] = field(default_factory=dict)


def nonfinite_warnings(graph, run) -> None:
    """Where a NaN or an infinity is born (cgviz.nonfinite: the op, the model's line, why), then the
    loss or parameter gradients it spoiled, traced to it: as warnings, in the JSON's `model` field
    (`nonfinite`), and as a mark on the op in the picture (run.born)."""
    import math

    from ..nonfinite import find_births, traced_to
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


@dataclass
class ModelDrawing:
    """A traced model and the picture chosen for it, ready to become any output format."""

    graph: Any
    run: Any
    pic: Picture
    title: str
    extra: dict                     # view, depth, folded: what the JSON records about the picture
    flags: bool                     # gradient-health flags mean something for this loss
    vanish: float | None
    explode: float | None
    grad: bool
    depth: int | None
    auto: bool
    fold: bool = True
    notes: list[str] = field(default_factory=list)
    profile_table: str | None = None
    compact: bool = False
    coarser: list[Level] = field(default_factory=list)    # what the budget may step down to, in order
    drawn: Any = None               # the graph the picture is drawn from (models.simplify), else `graph`
    sized: bool = False             # the PNG's level is already chosen by its size (for_png)
    laid: tuple[str, str] | None = None     # (DOT text, its layout) from for_png, so it is laid out once
    groups: dict | None = None      # structure.find_groups of the drawn graph, shared by every level
    focus_of: tuple | None = None   # --focus: (the whole drawn graph, its run, the focused call, its
                                    # find_groups, the title without the focus)
    caveat: str = ""                # a caption line under the title: why the gradients' scale means nothing
    remarks: list[str] = field(default_factory=list)    # lines under the title (an input not drawn)
    gathered: bool = False          # the level shown gathers the ops run in no module (Level.gather)

    @property
    def shown(self):
        """The graph the picture shows: the record less its pass-through ops (models.simplify)."""
        return self.graph if self.drawn is None else self.drawn

    @property
    def warnings(self) -> list[str]:
        return self.run.warnings

    def options(self, rankdir: str = "TB", labels: bool = True, title: str | None = None):
        """How the scene is drawn (cgviz.view.model_scene.DrawOptions)."""
        from ..view.model_scene import DrawOptions
        thresholds = {k: v for k, v in (("vanish", self.vanish), ("explode", self.explode)) if v is not None}
        return DrawOptions(rankdir=rankdir, grad=self.grad, title=self.title if title is None else title,
                           caveat=self.caveat, remarks=tuple(self.remarks),
                           flags=self.flags, compact=self.compact, labels=labels, **thresholds)

    def scene(self, rankdir: str = "TB", labels: bool = True):
        """The picture as a scene (cgviz.view.scene); labels=False: its shape only, enough for the
        layout cost (cgviz.view.dot.scene_cost)."""
        from ..view.model_scene import scene
        return scene(self.shown, self.run, self.pic, self.options(rankdir, labels))

    def page(self, root_svg: str, rankdir: str = "TB", timeout: float | None = None,
             timings: dict[str, float] | None = None) -> str:
        """The drill-down page (cgviz.plan.levels): this picture first, then the inside of every module
        with more than one op, each laid out on its own (in parallel: each is a `dot` process)."""
        import os
        from concurrent.futures import ThreadPoolExecutor
        from ..view.dot import dot_text
        from ..view.html import drill_page, model_page
        from ..plan.levels import build_levels
        from ..view.model_scene import scene
        if self.extra.get("view") != "ops":
            return model_page(self.shown, self.run, self.pic, root_svg, self.title)    # no modules to open
        t = time.perf_counter()
        whole, run, call, groups, base = self.focus_of or (self.shown, self.run, None, self.groups, self.title)
        levels = build_levels(whole, run, self.pic, self.fold, root=call, groups=groups,
                              focused=(self.graph, self.run) if call else None)
        root = next(iter(levels))

        def title(lv, name: str | None = None) -> str:
            """A level's caption; `name`: the repetition the block selector shows, the first by default."""
            f = lv.call[-1]
            once = f", drawn once for its {len(lv.reps)} {lv.word}s (the page's {lv.word} slider: whose numbers)" \
                if lv.reps else ""
            return f"{base}  —  inside {name or f.key} ({f.cls}){once}"

        def svg(lv) -> str:
            text = dot_text(scene(lv.graph, lv.run, lv.pic, self.options(rankdir, title=title(lv))))
            return run_dot(text, "svg", timeout=timeout, nodes=len(lv.pic.nodes)).decode("utf-8")
        rest = [lv for key, lv in levels.items() if key != root]
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            svgs = dict(zip((lv.key for lv in rest), pool.map(svg, rest)))
        svgs[root] = root_svg
        if timings is not None:
            timings["levels"] = time.perf_counter() - t
        return drill_page(levels, svgs, self.title, self.options(rankdir), caption=title)

    def dot(self, rankdir: str = "TB", labels: bool = True) -> str:
        from ..view.dot import dot_text
        return dot_text(self.scene(rankdir, labels))

    def _level_words(self) -> str:
        """`modules down to depth 2 (40 nodes)`, as the notes name the level drawn."""
        gathered = ", and the ops run in no module gathered into boxes" if self.gathered else ""
        return f"modules down to depth {self.depth}{gathered} ({len(self.pic.nodes)} nodes)"

    def _what(self) -> str:
        if self.coarser and self.coarser[0].compact:
            return "every grad_fn with its edge labels"
        return "every op" if self.depth is None else f"depth {self.depth}" + (
            " with the ops run in no module gathered" if self.gathered else "")

    def step_down(self, why: str, advice: str | None = None) -> bool:
        """Take the next coarser level, with a note that says why and how to get the detail back
        (`advice`; by default the formats without a pixel budget); False when there is none."""
        if not self.coarser:
            return False
        was = self._what()
        nxt = self.coarser.pop(0)
        self._take(nxt)
        now = ("without edge labels (their numbers are in the SVG's tooltips and the JSON)" if self.compact
               else self._level_words())
        advice = advice or f"{spell('format', 'svg, pdf or json')} keep detail"
        self.notes.append(f"{why} for {was}, so cgviz drew {now}; {advice}" if why else f"drew {now}")
        return True

    def _take(self, level: Level) -> None:
        if level.pic is None:
            level.pic = build_picture(self.shown, self.run, level.depth, self.fold, self.groups, level.gather)
        self.pic, self.depth, self.compact, self.gathered = level.pic, level.depth, level.compact, level.gather
        self.extra["depth"] = level.depth
        self.auto = self.auto or level.depth is not None

    def choose(self, rankdir: str = "TB") -> None:
        """Start from the first level whose estimated layout cost fits the budget (cgviz.plan.budget)."""
        from ..plan.budget import LAYOUT_BUDGET
        from ..view.dot import scene_cost
        skipped = None
        while self.coarser:
            cost = scene_cost(self.scene(rankdir, labels=False))
            if cost.score <= LAYOUT_BUDGET:
                break
            skipped = skipped or (self._what(), cost)
            self._take(self.coarser.pop(0))
        if skipped is not None:
            was, cost = skipped
            now = ("without edge labels (their numbers are in the SVG's tooltips and the JSON)" if self.compact
                   else self._level_words())
            self.notes.append(f"{was} would be too slow for Graphviz to lay out ({cost.describe()}), "
                              f"so cgviz drew {now}")

    def _sized_copy(self) -> "ModelDrawing":
        """A copy whose level list and notes extras can change without touching this drawing's."""
        return replace(self, extra=dict(self.extra), coarser=list(self.coarser), sized=True)

    def for_png(self, rankdir: str = "TB", timeout: float | None = None,
                timings: dict[str, float] | None = None) -> "ModelDrawing":
        """The drawing a default PNG shows: the finest level whose PNG at Graphviz's 96 dpi stays within
        the overview's pixels (cgviz.plan.budget.PNG_OVERVIEW_PIXELS), with a note when that is coarser
        than the finest. A copy: the other formats keep the finest level. --depth given: unchanged."""
        from ..plan.budget import DEFAULT_DPI, PNG_OVERVIEW_PIXELS, drawing_size, png_pixels
        out = self._sized_copy()
        if not self.coarser or self.coarser[0].compact or "focus" in self.extra:
            return out          # --focus asks for the detail of one module, not an overview
        t = time.perf_counter()
        levels = [Level(self.depth, False, self.pic, self.gathered)] + self.coarser      # finest first
        limit = None if timeout is None else min(timeout, max(MIN_ATTEMPT, timeout * ATTEMPT_SHARE))
        # The pixels grow with the level and so does the layout's time (a few hundredths of a second
        # for the coarse levels), so the search starts at depth 2, where most models' overview
        # lies, and walks finer while the PNG fits, or coarser until it does. The levels that gather
        # the ops run in no module (Level.gather) are a second chain, tried only when even depth 1
        # is over: their pixels do not grow in step with the first chain's.
        fits: dict[int, bool] = {}                        # level index → its PNG fits
        sized: dict[int, tuple[str, str]] = {}            # level index → (DOT, layout), when laid out

        def measure(i: int) -> bool:
            out._take(levels[i])
            text = out.dot(rankdir)
            try:
                laid = layout(text, limit, len(out.pic.nodes))
            except LayoutLimit:          # out of time or of memory: too big for this level
                fits[i] = False
                return False
            size = drawing_size(laid)
            w, h = png_pixels(*size, DEFAULT_DPI) if size else (0, 0)
            fits[i] = w * h <= PNG_OVERVIEW_PIXELS
            if size is not None:
                sized[i] = (text, laid)
            return fits[i]

        def search(chain: list[int]) -> int:
            k = max(len(chain) - 2, 0)
            if measure(chain[k]):
                while k > 0 and measure(chain[k - 1]):
                    k -= 1
            else:
                while k < len(chain) - 1 and not measure(chain[k + 1]):
                    k += 1
                k = min(k + 1, len(chain) - 1)
            return chain[k]

        chains = [[k for k, lv in enumerate(levels) if lv.gather == g] for g in (False, True)]
        chains = [c for c in chains if c]
        i = search(chains[0])
        if not fits.get(i) and len(chains) > 1:
            i = search(chains[1])
        over = not fits.get(i)          # even the coarsest level is over the overview's pixels
        # when nothing fits, the coarsest level is drawn at a lower dpi
        best = (i, *sized[i]) if i in sized else None
        if timings is not None:
            timings["size"] = timings.get("size", 0.0) + time.perf_counter() - t
        if best is None:
            return self._sized_copy()      # `out` was walked through the levels: a fresh copy
        i, text, laid = best
        out._take(levels[i])
        out.coarser = levels[i + 1:]
        out.laid = (text, laid)
        if i > 0:
            finest = levels[0].depth
            every = "every op" if finest is None else f"depth {finest}"
            asked = (out.pic.max_depth + 1) if finest is None else finest
            from ..spelling import spell
            why = (f"the coarsest level, which is still over {PNG_OVERVIEW_PIXELS / 1e6:g} Mpx and so drawn at a "
                   "lower resolution" if over else f"to stay within {PNG_OVERVIEW_PIXELS / 1e6:g} Mpx")
            note = (f"the PNG shows {out._level_words()}, {why}; "
                    f"{every}: {spell('depth', asked)}, or "
                    f"{spell('format', 'svg')} or {spell('format', 'html')}, which keep full detail")
            if note not in out.notes:
                out.notes.append(note)      # the same list as self.notes: cgviz.draw() shows it too
            out.auto = False                # this note says what the generic depth note would
        return out

    label = "model"         # the name Model Explorer shows (draw_model sets the file's)

    def overlays(self) -> dict[str, bytes]:
        """Model Explorer's node-data files: gradient norm, value norm and health, by name."""
        from ..view.modelexplorer import dumps, node_data
        return {name: dumps(doc) for name, doc in node_data(self.to_dict(), self.label).items()}

    def to_dict(self) -> dict:
        from ..health import EXPLODE, VANISH
        from ..view.export import to_dict
        return to_dict(self.graph, self.run, VANISH if self.vanish is None else self.vanish,
                       EXPLODE if self.explode is None else self.explode, self.extra, judge=self.flags)

    def output(self, fmt: str, rankdir: str = "TB", timeout: float | None = None,
               timings: dict[str, float] | None = None, dpi: float | None = None) -> bytes:
        """The bytes of one format: json, dot, html, or an image laid out by Graphviz."""
        timings = {} if timings is None else timings
        made_by = formats.lookup(fmt, formats.MODEL).producer     # one branch per producer below
        if made_by == formats.JSON:
            from ..view.export import dumps
            return dumps(self.to_dict()).encode("utf-8")
        if made_by == formats.VIEWER:
            from ..view.modelexplorer import dumps, graph_collection
            return dumps(graph_collection(self.to_dict(), self.pic.groups.values(), self.label))
        t = time.perf_counter()
        dot_text = self.dot(rankdir)
        timings["picture"] = timings.get("picture", 0.0) + time.perf_counter() - t
        if made_by == formats.DOT:
            return dot_text.encode("utf-8")
        t = time.perf_counter()
        if made_by not in (formats.GRAPHVIZ, formats.PAGE):
            raise AssertionError(f"no producer {made_by!r} for models")   # a registry entry without a branch here
        if fmt == "png" and not self.sized:
            return self.for_png(rankdir, timeout, timings).output(fmt, rankdir, timeout, timings, dpi)
        while True:
            # one attempt may use a share of the time while a coarser level is left to fall back on
            last = not self.coarser
            limit = timeout if last or timeout is None else min(timeout, max(MIN_ATTEMPT, timeout * ATTEMPT_SHARE))
            # advice for a picture too big or too slow to lay out: only what is not already in effect
            hint = "".join(h for h, wanted in ((f"a smaller {spell('depth')}, ", self.depth is None or self.depth > 1),
                                               (f"folding (leave out {spell('no_fold')}), ", not self.fold))
                           if wanted)
            nodes = len(self.pic.nodes)
            try:
                if made_by == formats.PAGE:
                    svg = run_dot(dot_text, "svg", timeout=limit, nodes=nodes).decode("utf-8")
                    data = self.page(svg, rankdir, limit, timings).encode("utf-8")
                elif fmt == "png":
                    laid = (self.laid[1] if self.laid and self.laid[0] == dot_text
                            else layout(dot_text, limit, nodes, hint))
                    data = rasterise(dot_text, laid, dpi, timeout, nodes, hint, rankdir)
                else:
                    data = run_dot(dot_text, fmt, timeout=limit, nodes=nodes, hint=hint, rankdir=rankdir)
                break
            except LayoutTimeout:
                if last:
                    raise
                why = f"Graphviz did not finish the layout within {limit:g} s"
                # another format is laid out just as slowly: only more time, or no layout, helps
                advice = (f"a longer {spell('timeout')} gives each level more time, and "
                          f"{spell('format', 'json')} has every op without a layout")
            except LayoutMemory as e:
                if last:
                    raise
                why = f"Graphviz ran out of the memory cgviz lets it use ({e.limit_text})"
                advice = (f"{DOT_MEMORY_ENV}=16G allows more, and {spell('format', 'json')} has every op "
                          "without a layout")
            except PictureTooBig:
                if last or dpi is not None:
                    raise
                why, advice = "a PNG would pass the pixel budget even at low resolution", None
            self.step_down(why, advice)
            dot_text = self.dot(rankdir)
        timings["layout"] = time.perf_counter() - t
        return data


def picture_model(loaded, opts=None, *, depth: int | None = None, fold: bool = True, grad: bool = True,
                  profile_top: int = 10, vanish: float | None = None, explode: float | None = None,
                  html: bool = False, timings: dict[str, float] | None = None, simplify: bool = True,
                  focus: str | None = None, choose: bool = True) -> ModelDrawing:
    """Trace a loaded model (forward, backward) and choose its picture: depth, folding, flags, title.
    `focus`: draw only the inside of that module call (cgviz.plan.inside), its depth counted from it."""
    from .trace import TraceOptions, trace
    opts = opts or TraceOptions()
    timings = {} if timings is None else timings
    t = time.perf_counter()
    from ..summary import HISTOGRAMS
    token = HISTOGRAMS.set(html)
    try:
        traced = trace(loaded, opts)
    finally:
        HISTOGRAMS.reset(token)
    timings["run"] = time.perf_counter() - t
    graph, run = traced.graph, traced.run
    from ..paths import shown
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
    # Vanishing/exploding flags (cgviz.health) need a loss whose scale means something: the user's,
    # the model's own, or its scalar output. The fallback sum(output) of a tensor grows with the
    # output's size (tiny_gpt's summed logits flag 32 params "exploding"), so it gets none.
    flags = grad and not opts.meta and not traced.loss_fallback
    caveat = ""
    if traced.loss_fallback and grad and not opts.meta:
        from .loss import fallback_caveat
        caveat = fallback_caveat()
        notes.append(caveat)
    if flags:
        from ..health import EXPLODE, VANISH, flag_warnings, verdicts
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
        from .loss import title_text
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
    from ..fmt import num
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


@given_back()
def draw_model(spec: str, fmt: str, *, trust: bool = False, weights: str | None = None, opts=None,
               depth: int | None = None, fold: bool = True, rankdir: str = "TB", grad: bool = True,
               timeout: float | None = None, profile_top: int = 10, vanish: float | None = None,
               explode: float | None = None, dpi: float | None = None, simplify: bool = True,
               focus: str | None = None) -> ModelResult:
    """Everything `cgviz torch` does, minus printing and writing the file."""
    t0 = time.perf_counter()
    from ..needs import require_torch
    require_torch(f"drawing the model {spec}")      # timed on its own: it is most of the start-up
    from .load import load_model
    from .trace import TraceOptions
    opts = opts or TraceOptions()
    timings = {"import": time.perf_counter() - t0}
    t = time.perf_counter()
    loaded = load_model(spec, trust=trust, weights=weights, meta=opts.meta)
    timings["load"] = time.perf_counter() - t
    d = picture_model(loaded, opts, depth=depth, fold=fold, grad=grad, profile_top=profile_top, vanish=vanish,
                      explode=explode, html=fmt == "html", timings=timings, simplify=simplify, focus=focus,
                      choose=formats.lookup(fmt, formats.MODEL).pictured)
    if fmt == "png":
        d = d.for_png(rankdir, timeout, timings)     # the PNG's level, so the counts below are its own
    from ..paths import split_spec
    d.label = Path(split_spec(spec)[0]).name
    data = d.output(fmt, rankdir, timeout, timings, dpi)
    nodes = len(d.pic.nodes) if formats.REGISTRY[fmt].pictured else len(d.graph)
    beside = d.overlays() if fmt == "modelexplorer" else {}
    return ModelResult(data, nodes, len(d.graph), d.depth, d.pic.max_depth, d.auto, d.run.loss, d.notes,
                       d.run.warnings, timings, d.profile_table, beside)
