"""A model picture's level: the coarser levels the layout budget may step down to, and a PNG's level chosen by its pixels."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from ..core.spelling import spell
from ..view.graphviz import LayoutLimit, layout
from ..plan.structure import Picture, build_picture

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


def attempt_limit(timeout: float | None) -> float | None:
    """The time one layout attempt may take while a coarser level is left to fall back on."""
    return None if timeout is None else min(timeout, max(MIN_ATTEMPT, timeout * ATTEMPT_SHARE))


def level_words(d) -> str:
    """`modules down to depth 2 (40 nodes)`, as the notes name the level drawn."""
    gathered = ", and the ops run in no module gathered into boxes" if d.gathered else ""
    return f"modules down to depth {d.depth}{gathered} ({len(d.pic.nodes)} nodes)"


def depth_note(d) -> str | None:
    """What to say when the depth drawn was chosen to keep the picture readable (none was asked for),
    and how to get more: None when the picture shows every level or the depth was the caller's."""
    if not (d.auto and d.depth is not None and d.depth < d.pic.max_depth):
        return None
    return (f"drew modules down to depth {d.depth} of {d.pic.max_depth} to keep the picture readable "
            f"({len(d.pic.nodes)} nodes); {spell('depth', d.depth + 1)} shows more, "
            f"{spell('format', 'json')} has every op")


def _what(d) -> str:
    if d.coarser and d.coarser[0].compact:
        return "every grad_fn with its edge labels"
    return "every op" if d.depth is None else f"depth {d.depth}" + (
        " with the ops run in no module gathered" if d.gathered else "")


def _now(d) -> str:
    return ("without edge labels (their numbers are in the SVG's tooltips and the JSON)" if d.compact
            else level_words(d))


def step_down(d, why: str, advice: str | None = None) -> bool:
    """Take the next coarser level, with a note that says why and how to get the detail back
    (`advice`; by default the formats without a pixel budget); False when there is none."""
    if not d.coarser:
        return False
    was = _what(d)
    take(d, d.coarser.pop(0))
    advice = advice or f"{spell('format', 'svg, pdf or json')} keep detail"
    d.notes.append(f"{why} for {was}, so cgviz drew {_now(d)}; {advice}" if why else f"drew {_now(d)}")
    return True


def take(d, level: Level) -> None:
    """Make `level` the drawing's picture (built the first time it is taken)."""
    if level.pic is None:
        level.pic = build_picture(d.shown, d.run, level.depth, d.fold, d.groups, level.gather)
    d.pic, d.depth, d.compact, d.gathered = level.pic, level.depth, level.compact, level.gather
    d.extra["depth"] = level.depth
    d.auto = d.auto or level.depth is not None


def choose(d, rankdir: str = "TB") -> None:
    """Start from the first level whose estimated layout cost fits the budget (cgviz.plan.budget)."""
    from ..plan.budget import LAYOUT_BUDGET
    from ..view.dot import scene_cost
    skipped = None
    while d.coarser:
        cost = scene_cost(d.scene(rankdir, labels=False))
        if cost.score <= LAYOUT_BUDGET:
            break
        skipped = skipped or (_what(d), cost)
        take(d, d.coarser.pop(0))
    if skipped is not None:
        was, cost = skipped
        d.notes.append(f"{was} would be too slow for Graphviz to lay out ({cost.describe()}), "
                       f"so cgviz drew {_now(d)}")


def _sized_copy(d):
    """A copy whose level list and notes extras can change without touching this drawing's."""
    return replace(d, extra=dict(d.extra), coarser=list(d.coarser), sized=True)


def for_png(d, rankdir: str = "TB", timeout: float | None = None, timings: dict[str, float] | None = None):
    """The drawing a default PNG shows: the finest level whose PNG at Graphviz's 96 dpi stays within
    the overview's pixels (cgviz.plan.budget.PNG_OVERVIEW_PIXELS), with a note when that is coarser
    than the finest. A copy: the other formats keep the finest level. --depth given: unchanged."""
    from ..plan.budget import DEFAULT_DPI, PNG_OVERVIEW_PIXELS, drawing_size, png_pixels
    out = _sized_copy(d)
    if not d.coarser or d.coarser[0].compact or "focus" in d.extra:
        return out          # --focus asks for the detail of one module, not an overview
    t = time.perf_counter()
    levels = [Level(d.depth, False, d.pic, d.gathered)] + d.coarser      # finest first
    limit = attempt_limit(timeout)
    # The pixels grow with the level and so does the layout's time (a few hundredths of a second
    # for the coarse levels), so the search starts at depth 2, where most models' overview
    # lies, and walks finer while the PNG fits, or coarser until it does. The levels that gather
    # the ops run in no module (Level.gather) are a second chain, tried only when even depth 1
    # is over: their pixels do not grow in step with the first chain's.
    fits: dict[int, bool] = {}                        # level index → its PNG fits
    sized: dict[int, tuple[str, str]] = {}            # level index → (DOT, layout), when laid out

    def measure(i: int) -> bool:
        take(out, levels[i])
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
        return _sized_copy(d)      # `out` was walked through the levels: a fresh copy
    i, text, laid = best
    take(out, levels[i])
    out.coarser = levels[i + 1:]
    out.laid = (text, laid)
    if i > 0:
        finest = levels[0].depth
        every = "every op" if finest is None else f"depth {finest}"
        asked = (out.pic.max_depth + 1) if finest is None else finest
        why = (f"the coarsest level, which is still over {PNG_OVERVIEW_PIXELS / 1e6:g} Mpx and so drawn at a "
               "lower resolution" if over else f"to stay within {PNG_OVERVIEW_PIXELS / 1e6:g} Mpx")
        note = (f"the PNG shows {level_words(out)}, {why}; "
                f"{every}: {spell('depth', asked)}, or "
                f"{spell('format', 'svg')} or {spell('format', 'html')}, which keep full detail")
        if note not in out.notes:
            out.notes.append(note)      # the same list as d.notes: cgviz.draw() shows it too
        out.auto = False                # this note says what the generic depth note would
    return out
