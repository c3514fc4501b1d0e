"""A model's page: the drill-down page of its picture and every module's inside, each laid out on its own."""

from __future__ import annotations

import time

from ..view.graphviz import run_dot


def page(d, root_svg: str, rankdir: str = "TB", timeout: float | None = None,
         timings: dict[str, float] | None = None) -> str:
    """The drill-down page (cgviz.plan.levels): this picture first, then the inside of every module
    with more than one op, each laid out on its own (in parallel: each is a `dot` process)."""
    import os
    from concurrent.futures import ThreadPoolExecutor
    from ..view.dot import dot_text
    from ..view.html import drill_page, model_page
    from ..plan.levels import build_levels
    from ..view.model_scene import scene
    if d.extra.get("view") != "ops":
        return model_page(d.shown, d.run, d.pic, root_svg, d.title)    # no modules to open
    t = time.perf_counter()
    whole, run, call, groups, base = d.focus_of or (d.shown, d.run, None, d.groups, d.title)
    levels = build_levels(whole, run, d.pic, d.fold, root=call, groups=groups,
                          focused=(d.graph, d.run) if call else None)
    root = next(iter(levels))

    def title(lv, name: str | None = None) -> str:
        """A level's caption; `name`: the repetition the block selector shows, the first by default."""
        f = lv.call[-1]
        once = f", drawn once for its {len(lv.reps)} {lv.word}s (the page's {lv.word} slider: whose numbers)" \
            if lv.reps else ""
        return f"{base}  —  inside {name or f.key} ({f.cls}){once}"

    def svg(lv) -> str:
        text = dot_text(scene(lv.graph, lv.run, lv.pic, d.options(rankdir, title=title(lv))))
        return run_dot(text, "svg", timeout=timeout, nodes=len(lv.pic.nodes)).decode("utf-8")
    rest = [lv for key, lv in levels.items() if key != root]
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        svgs = dict(zip((lv.key for lv in rest), pool.map(svg, rest)))
    svgs[root] = root_svg
    if timings is not None:
        timings["levels"] = time.perf_counter() - t
    return drill_page(levels, svgs, d.title, d.options(rankdir), caption=title)
