"""The page and the picture of a recorded training run (.cgw): the model's folded graph with a step
slider, a layers × steps heatmap of log ‖g‖/‖w‖ and of the update ratio, the loss curve, each layer's
gradient histograms over time, and the timeline of events and the diagnosis in words."""

from __future__ import annotations

import html as _html
import math
from pathlib import Path

import numpy as np

from ..core.errors import CgvizError

HIST_STEPS = 120    # histograms over time: at most this many recorded steps (evenly spread) per layer
HIST_BINS = 24      # … each re-binned onto this many bins over the layer's range across the run


def _finite(x) -> float | None:
    """A number for the page's JSON (which has no NaN): None for a missing or non-finite one."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _layers(run) -> tuple[list[str], dict[str, list[str]]]:
    """The layers (as cgviz.cgw.analysis names them: a parameter's owning module) in the record's
    order, and each one's parameters. A parameter of no module (an expression program's `param`, a
    model's own) is a row of its own: the analysis pools them as the model's, the heatmap need not."""
    from ..cgw.analysis import layer_of as owner

    def layer_of(p: str) -> str:
        return owner(p) or p
    names = list(run.header.get("params") or [])
    for s in run.steps:
        for k in s.params:
            if k not in names:
                names.append(k)
    layers: dict[str, list[str]] = {}
    for p in names:
        layers.setdefault(layer_of(p), []).append(p)
    return list(layers), layers


def matrices(run) -> dict:
    """Per layer and step: log10 ‖g‖/‖w‖ and log10 of the update ratio ‖Δw‖/‖w‖, over the layer's
    parameters together (√Σ‖g‖² / √Σ‖w‖²); NaN where the step recorded no gradient or update, ±inf
    where one was not finite. Also the steps, the losses, and the layers' names and parameters."""
    names, layers = _layers(run)
    n, k = len(names), len(run.steps)
    ratio = np.full((n, k), np.nan)
    update = np.full((n, k), np.nan)
    bad = np.zeros((n, k), dtype=bool)
    for j, s in enumerate(run.steps):
        for i, layer in enumerate(names):
            w2 = g2 = u2 = 0.0
            seen_g = seen_u = False
            for p in layers[layer]:
                st = s.params.get(p)
                if st is None:
                    continue
                w = st.w if st.w is not None else 0.0
                w2 += w * w
                if st.nan or st.inf:
                    bad[i, j] = True
                if st.g is not None:
                    g2 += st.g * st.g
                    seen_g = True
                if st.update is not None:
                    u2 += (st.update * w) ** 2
                    seen_u = True
            with np.errstate(divide="ignore", invalid="ignore"):
                if seen_g and w2 > 0:
                    ratio[i, j] = np.log10(math.sqrt(g2) / math.sqrt(w2)) if g2 > 0 else -np.inf
                if seen_u and w2 > 0:
                    update[i, j] = np.log10(math.sqrt(u2) / math.sqrt(w2)) if u2 > 0 else -np.inf
    return {"layers": names, "params": layers, "steps": [s.step for s in run.steps],
            "loss": [s.loss for s in run.steps], "ratio": ratio, "update": update, "bad": bad}


def _cells(m: np.ndarray) -> list[list]:
    """A matrix for the page: 3 decimals of log10; null where nothing was recorded; ±99 for ±inf."""
    out = np.round(np.clip(m, -99, 99), 3).astype(object)
    out[np.isnan(m)] = None
    return out.tolist()


def _histograms(run, layers: dict[str, list[str]]) -> dict:
    """Each parameter's gradient histograms at up to HIST_STEPS recorded steps, re-binned onto
    HIST_BINS bins over its range across the run: {param: {"lo", "hi", "at": [step index], "counts"}}."""
    k = len(run.steps)
    keep = sorted({round(i * (k - 1) / max(HIST_STEPS - 1, 1)) for i in range(min(k, HIST_STEPS))}) if k else []
    out = {}
    for ps in layers.values():
        for p in ps:
            seen = [(j, run.steps[j].params.get(p)) for j in keep]
            seen = [(j, st) for j, st in seen if st is not None and len(st.hist_counts) and len(st.hist_edges) == len(st.hist_counts) + 1]
            if not seen:
                continue
            lo = min(st.hist_edges[0] for _, st in seen)
            hi = max(st.hist_edges[-1] for _, st in seen)
            if not (math.isfinite(lo) and math.isfinite(hi)):
                continue
            if hi <= lo:
                hi = lo + 1.0
            at, counts = [], []
            for j, st in seen:
                e = np.asarray(st.hist_edges, dtype=float)
                centres = (e[:-1] + e[1:]) / 2
                c, _ = np.histogram(centres, bins=HIST_BINS, range=(lo, hi), weights=np.asarray(st.hist_counts, dtype=float))
                at.append(j)
                counts.append([int(x) for x in c])
            out[p] = {"lo": lo, "hi": hi, "at": at, "counts": counts}
    return out


def _metrics(run, names: list[str], field_names: tuple[str, ...], attr: str) -> dict:
    """{field: [[value per step] per name]} of each step's params or modules record."""
    out = {f: [] for f in field_names}
    for name in names:
        rows = {f: [] for f in field_names}
        for s in run.steps:
            st = getattr(s, attr).get(name)
            for f in field_names:
                v = getattr(st, f) if st is not None else None
                rows[f].append(None if v is None else (float(f"{float(v):.4g}") if math.isfinite(float(v)) else str(float(v))))
        for f in field_names:
            out[f].append(rows[f])
    return out


def page_data(run, events: list, diagnosis: list[str], nodes: dict, edges: dict, frames: dict | None = None) -> dict:
    """Everything the page's script reads besides the graph's own panels (see watch.js)."""
    m = matrices(run)
    frames = frames or {}
    params = [p for layer in m["layers"] for p in m["params"][layer]]
    modules = list(run.header.get("modules") or [])
    for s in run.steps:
        for k in s.modules:
            if k not in modules:
                modules.append(k)
    # which drawn node shows a layer: the one holding its first parameter (a params box, a module box)
    where = {}
    for key, d in nodes.items():
        for p in d["params"]:
            where.setdefault(p, key)
        for mod in d["modules"]:
            where.setdefault("module:" + mod, key)
    layer_node = {layer: next((where[p] for p in m["params"][layer] if p in where), None) for layer in m["layers"]}
    return {
        "steps": m["steps"], "loss": [_finite(x) for x in m["loss"]],
        "lossText": [None if x is None or _finite(x) is not None else str(x) for x in m["loss"]],   # no loss given: "–"
        "scaled": any(s.scaled for s in run.steps),
        "layers": m["layers"], "layerParams": m["params"], "layerNode": layer_node,
        "ratio": _cells(m["ratio"]), "update": _cells(m["update"]), "bad": m["bad"].astype(int).tolist(),
        "params": params, "P": _metrics(run, params, ("w", "g", "ratio", "update", "nan", "inf"), "params"),
        "modules": modules, "M": _metrics(run, modules, ("mean", "std", "saturated", "dead", "grad"), "modules"),
        "hist": _histograms(run, m["params"]),
        "events": [{"kind": e.kind, "from": e.step_from, "to": e.step_to, "where": e.where, "text": e.text,
                    "node": where.get(e.where) or layer_node.get(e.where) or where.get("module:" + str(e.where))
                    } for e in events],
        "diagnosis": list(diagnosis), "nodes": nodes, "edges": edges, "frames": frames,
    }


SECTION = """<div id="watch">
  <div class="wbox" id="w-heat-box"><div class="wh"><b>layers × steps</b>
    <label><input type="radio" name="w-metric" value="ratio" checked> log₁₀ ‖g‖/‖w‖</label>
    <label><input type="radio" name="w-metric" value="update"> log₁₀ update ratio ‖Δw‖/‖w‖</label>
    <span id="w-heat-info"></span></div>
    <div id="w-heat-scroll"><canvas id="w-heat"></canvas></div></div>
  <div class="wbox" id="w-mid"><div class="wh"><b>loss</b> <span id="w-loss-info"></span></div>
    <svg id="w-loss" viewBox="0 0 400 120" preserveAspectRatio="none"></svg>
    <div class="wh"><b>gradient histograms over time</b> <span id="w-hist-layer"></span></div>
    <div id="w-hists"></div></div>
  <div class="wbox" id="w-text"><div class="wh"><b>diagnosis</b></div><div id="w-diagnosis">%(diagnosis)s</div>
    <div class="wh"><b>events</b></div><ol id="w-events">%(events)s</ol></div>
</div>
"""

BAR = ('<span id="train"><b>step</b> <input type="range" id="train-step" min="0" max="%(max)d" value="%(max)d" '
       'step="1" title="recorded step"><span id="train-info"></span></span>')


def watch_page(run, events: list, diagnosis: list[str], timeout: float | None = 60.0) -> str:
    """The page for a recorded run (`cgviz render run.cgw -o run.html`)."""
    from .html import asset, page
    title = f"{Path(str(run.header.get('source') or 'run')).name} — {len(run.steps)} recorded steps"
    if run.header.get("world_size"):
        title += f" (rank {run.header.get('rank', 0)} of {run.header['world_size']} ranks wrote it)"
    nodes, edges, frames, panels, svg, drill = {}, {}, {}, {}, _NO_GRAPH, None
    if run.graph is not None:
        from .html import model_panels
        from .watch_graph import from_json, mapping, picture, svg_of
        graph, grun = from_json(run.graph)
        pic = picture(graph, grun)
        nodes, edges, frames = mapping(graph, pic)
        panels = _recorded(model_panels(graph, grun, pic))
        svg = svg_of(graph, grun, pic, f"{title}: the model as recorded (numbers follow the step slider)", timeout)
        drill = _drill(graph, grun, pic, svg, title, timeout)
    data = page_data(run, events, diagnosis, nodes, edges, frames)
    from .markup import BACKWARD
    bar = BAR % {"max": max(len(run.steps) - 1, 0)}
    if drill is None:
        text = page(svg, title, panels, [], {}, BACKWARD, extra_bar=bar)
    else:
        data["levels"], levels, root, found = drill
        text = page(svg, title, {}, [], {}, BACKWARD, extra_bar=bar, levels=levels, root=root, found=found)
    import json
    blob = json.dumps(data, ensure_ascii=False, allow_nan=False).replace("<", "\\u003c")
    esc = _html.escape
    # what the record itself says it lacks, then the diagnosis
    said = [f"Note: {run.header['note']}"] if run.header.get("note") else []
    if getattr(run, "torn", False):
        said.append("The record's last line was incomplete (a run still writing, or killed): the page shows "
                    "every complete step before it.")
    section = SECTION % {
        "diagnosis": "".join(f"<p>{esc(line)}</p>" for line in said + list(diagnosis)) or "<p>no diagnosis</p>",
        "events": "".join(f'<li data-i="{i}" class="w-event w-{esc(e.kind)}"><b>{esc(_steps(e))}</b> '
                          f'{esc(e.text)}</li>' for i, e in enumerate(events)) or '<li class="none">none</li>'}
    extra = (f'{section}<script type="application/json" id="cgviz-watch">{blob}</script>\n'
             f'<style>\n{asset("watch.css")}</style>\n<script>\n{asset("watch.js")}</script>\n')
    return text.replace("</body>", extra + "</body>", 1)


def _recorded(panels: dict) -> dict:
    """Panels whose rows say they are the drawing's (the slider's "at step N" row comes first)."""
    for d in panels.values():
        d["rows"] = [[f"{k} (as the graph was recorded)", v] for k, v in d["rows"]]
    return panels


def _drill(graph, grun, pic, svg: str, title: str, timeout: float | None):
    """The drill-down levels of the recorded graph, as the model page has them (cgviz.plan.levels):
    (each level's record mapping, the page's levels, the root's key, the search index); None when
    the graph has no module to open."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    from .html import drill_data
    from ..plan.levels import build_levels
    from .model_scene import DrawOptions
    from .watch_graph import level_maps, svg_of
    levels = build_levels(graph, grun, pic, True)
    if len(levels) < 2:
        return None
    root = next(iter(levels))

    def caption(lv, name: str | None = None) -> str:
        f = lv.call[-1]
        once = f", drawn once for its {len(lv.reps)} {lv.word}s (the {lv.word} slider: whose numbers)" if lv.reps else ""
        return f"{title}: inside {name or f.key} ({f.cls}){once} (numbers follow the step slider)"
    rest = [lv for key, lv in levels.items() if key != root]
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:     # each layout is a dot process
        svgs = dict(zip((lv.key for lv in rest), pool.map(lambda lv: svg_of(lv.graph, lv.run, lv.pic, caption(lv), timeout), rest)))
    svgs[root] = svg
    data, root, found = drill_data(levels, svgs, DrawOptions(rankdir="TB", grad=True, flags=False), caption)
    for entry in data.values():
        _recorded(entry["nodes"])
        for d in (entry.get("reps") or {}).get("data") or []:
            if d is not None and d["nodes"] is not entry["nodes"]:
                _recorded({k: v for k, v in d["nodes"].items() if all(v is not x for x in entry["nodes"].values())})
    return level_maps(levels), data, root, found


def _steps(e) -> str:
    return f"step {e.step_from}" if e.step_to == e.step_from else f"steps {e.step_from}–{e.step_to}"


_NO_GRAPH = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 400 60" width="400pt" height="60pt">'
             '<g class="graph"><text x="10" y="35" font-size="14">this record holds no model graph '
             '(the recorder was given none): the numbers are below</text></g></svg>')


def watch_picture(run, events: list, fmt: str, dpi: float = 100) -> bytes:
    """The static picture (png, svg or pdf): the heatmap of log ‖g‖/‖w‖, the loss curve and the event list."""
    import io

    from matplotlib.figure import Figure

    from .plots import _pyplot
    plt = _pyplot()         # the plots' Agg backend, set up in one place
    m = matrices(run)
    layers, steps = m["layers"], m["steps"]
    ratio = m["ratio"].copy()
    lines = [f"{i}. {_steps(e)}: {e.text}" for i, e in enumerate(events, start=1)] or ["no events"]
    shown = lines[:14] + ([f"… and {len(lines) - 14} more"] if len(lines) > 14 else [])
    h_heat = min(max(2.5, 0.16 * len(layers) + 1.2), 14)
    fig = Figure(figsize=(11, h_heat + 2.6 + 0.22 * len(shown) + 0.6), dpi=dpi, layout="constrained")
    gs = fig.add_gridspec(3, 1, height_ratios=[h_heat, 2.6, 0.22 * len(shown) + 0.6])
    ax = fig.add_subplot(gs[0])
    finite = ratio[np.isfinite(ratio)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (-6.0, 0.0)
    if hi <= lo:
        hi = lo + 1
    shown_m = np.where(np.isfinite(ratio), ratio, np.where(np.isneginf(ratio), lo, np.where(np.isposinf(ratio), hi, np.nan)))
    cmap = plt.get_cmap("viridis").copy()
    cmap.set_bad("#dddddd")
    im = ax.imshow(np.ma.masked_invalid(shown_m), aspect="auto", cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest",
                   extent=(-0.5, len(steps) - 0.5, len(layers) - 0.5, -0.5))
    if m["bad"].any():       # NaN/inf in a layer's gradient: red cells over the map
        red = np.zeros((*m["bad"].shape, 4))
        red[m["bad"]] = (0.84, 0.0, 0.0, 1.0)
        ax.imshow(red, aspect="auto", interpolation="nearest", extent=(-0.5, len(steps) - 0.5, len(layers) - 0.5, -0.5))
        ax.text(1.0, 1.01, "red: NaN/inf", transform=ax.transAxes, ha="right", va="bottom", fontsize=8, color="#d50000")
    every = max(1, len(layers) // 40)
    ax.set_yticks(range(0, len(layers), every))
    ax.set_yticklabels([x or "(model)" for x in layers[::every]], fontsize=7 if len(layers) > 20 else 9)
    # every recorded step when they fit, else evenly spaced ones (rounded linspace skipped 20 and 70 of 0…90)
    ticks = (list(range(len(steps))) if len(steps) <= 12
             else np.linspace(0, len(steps) - 1, 8).round().astype(int) if steps else [])
    ax.set_xticks(ticks)
    ax.set_xticklabels([str(steps[t]) for t in ticks])
    ax.set_xlabel("recorded step")
    ax.set_title(f"{Path(str(run.header.get('source') or 'run')).name}: log₁₀ ‖g‖/‖w‖ per layer and step")
    # an inset beside the map: a colorbar given `ax` goes to the right of the whole grid, which the
    # event list's long lines push to the picture's edge
    cax = ax.inset_axes((1.01, 0.0, 0.015, 1.0))
    fig.colorbar(im, cax=cax, label="log₁₀ ‖g‖/‖w‖")
    ax2 = fig.add_subplot(gs[1])
    loss = np.array([x if x is not None else np.nan for x in m["loss"]], dtype=float)
    ax2.plot(steps, loss, color="#1565c0", lw=1.5)
    ok = loss[np.isfinite(loss)]
    if ok.size and ok.min() > 0 and ok.max() / ok.min() > 30:
        ax2.set_yscale("log")
    # each event's first step, numbered as the list below numbers it (spans shaded would pile up)
    starts: dict[int, list[int]] = {}
    for i, e in enumerate(events[:len(shown)], start=1):
        starts.setdefault(e.step_from, []).append(i)
    for st, nums in starts.items():
        ax2.axvline(st, color="#d32f2f", alpha=0.6, lw=1)
        ax2.text(st, 1.0, ",".join(map(str, nums[:4])) + ("…" if len(nums) > 4 else ""), transform=ax2.get_xaxis_transform(),
                 color="#d32f2f", fontsize=8, ha="left", va="top")
    if len(steps) > 1:
        ax2.set_xlim(steps[0], steps[-1])
    ax2.set_xlabel("step")
    ax2.set_ylabel("loss")
    ax2.set_title("loss (red lines: where the numbered events begin)")
    ax2.grid(alpha=0.3)
    ax3 = fig.add_subplot(gs[2])
    ax3.axis("off")
    ax3.set_title("events", loc="left")
    ax3.text(0, 1, "\n".join(shown), va="top", ha="left", fontsize=9, transform=ax3.transAxes, wrap=True)
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt)
    return buf.getvalue()


def render_run(path: str, fmt: str, timeout: float | None = 60.0, dpi: float | None = None) -> tuple[bytes, str]:
    """`cgviz render run.cgw`: the bytes of the page (html) or the picture (png, svg, pdf), and a
    one-line summary for the terminal."""
    from ..cgw.analysis import diagnosis, events
    from ..cgw.read import read_run
    from .formats import RUN, names, written
    if fmt not in names(RUN):
        raise CgvizError(f"{path}: a recorded run is drawn as {written(RUN)}, not {fmt}")
    run = read_run(path)
    if not run.steps:
        raise CgvizError(f"{path}: the record holds no step yet (w.step(loss) writes one per recorded step)")
    evs = list(events(run))
    if fmt == "html":
        data = watch_page(run, evs, list(diagnosis(run)), timeout).encode("utf-8")
    else:
        data = watch_picture(run, evs, fmt, dpi or 100)
    return data, f"{len(run.steps)} recorded steps, {len(evs)} event{'s' if len(evs) != 1 else ''}"
