"""A model drawing's bytes in any format of the registry (cgviz.view.formats), one branch per producer."""

from __future__ import annotations

import time

from ..core.spelling import spell
from ..view import formats
from ..view.graphviz import DOT_MEMORY_ENV, LayoutMemory, LayoutTimeout, PictureTooBig, layout, rasterise, run_dot
from .sizing import attempt_limit, for_png, step_down


def overlays(d) -> dict[str, bytes]:
    """Model Explorer's node-data files: gradient norm, value norm and health, by name."""
    from ..view.modelexplorer import dumps, node_data
    return {name: dumps(doc) for name, doc in node_data(d.to_dict(), d.label).items()}


def output(d, fmt: str, rankdir: str = "TB", timeout: float | None = None,
           timings: dict[str, float] | None = None, dpi: float | None = None) -> bytes:
    """The bytes of one format: json, dot, html, or an image laid out by Graphviz."""
    timings = {} if timings is None else timings
    made_by = formats.lookup(fmt, formats.MODEL).producer     # one branch per producer below
    if made_by == formats.JSON:
        from ..view.export import dumps
        return dumps(d.to_dict()).encode("utf-8")
    if made_by == formats.VIEWER:
        from ..view.modelexplorer import dumps, graph_collection
        return dumps(graph_collection(d.to_dict(), d.pic.groups.values(), d.label))
    if fmt == "png" and not d.sized:        # the PNG's level first: its DOT is the one drawn
        return output(for_png(d, rankdir, timeout, timings), fmt, rankdir, timeout, timings, dpi)
    t = time.perf_counter()
    dot_text = d.dot(rankdir)
    timings["picture"] = timings.get("picture", 0.0) + time.perf_counter() - t
    if made_by == formats.DOT:
        return dot_text.encode("utf-8")
    t = time.perf_counter()
    if made_by not in (formats.GRAPHVIZ, formats.PAGE):
        raise AssertionError(f"no producer {made_by!r} for models")   # a registry entry without a branch here
    while True:
        # one attempt may use a share of the time while a coarser level is left to fall back on
        last = not d.coarser
        limit = timeout if last else attempt_limit(timeout)
        # advice for a picture too big or too slow to lay out: only what is not already in effect
        hint = "".join(h for h, wanted in ((f"a smaller {spell('depth')}, ", d.depth is None or d.depth > 1),
                                           (f"folding (leave out {spell('no_fold')}), ", not d.fold))
                       if wanted)
        nodes = len(d.pic.nodes)
        try:
            if made_by == formats.PAGE:
                from .model_page import page
                svg = run_dot(dot_text, "svg", timeout=limit, nodes=nodes).decode("utf-8")
                data = page(d, svg, rankdir, limit, timings).encode("utf-8")
            elif fmt == "png":
                laid = (d.laid[1] if d.laid and d.laid[0] == dot_text
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
        step_down(d, why, advice)
        dot_text = d.dot(rankdir)
    timings["layout"] = time.perf_counter() - t
    return data
