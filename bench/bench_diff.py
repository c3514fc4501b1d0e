"""Time to compare two GPT-2-small-sized runs (`cgviz.compare` of two Drawings, and its PNG) against
the time to draw one (`cgviz.draw` and its PNG), in one process, medians of N rounds.

    .venv/bin/python bench/bench_diff.py [--runs N] [--md PATH | --no-md]

A is bench/models.py's GPT-2 small; B is the same model with block 6's MLP weights scaled by 1.01,
so the numbers differ from block 6 on and the picture opens at the level where the change is. A
third pair compares A with A renamed (every node id and module path given a new prefix), the worst
case for matching: no name agrees and every node is matched by structure. The target (issue 26):
the comparison under 2× the time to draw one run. The table is written into BENCHMARKS.md between
the `bench:diff` markers.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from bench_render import machine, write_md  # noqa: E402

START, END = "<!-- bench:diff:start -->", "<!-- bench:diff:end -->"


def _renamed(doc: dict) -> dict:
    """A golden document with every node id and module path under a new name: `m.` in front."""
    new = copy.deepcopy(doc)
    for n in new["nodes"]:
        n["id"] = "m." + n["id"]
        if n.get("module"):
            n["module"] = "m." + n["module"]
    for e in new["edges"]:
        e["src"], e["dst"] = "m." + e["src"], "m." + e["dst"]
    new["output"] = "m." + new["output"] if new.get("output") else None
    return new


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--md", default=str(ROOT / "BENCHMARKS.md"))
    ap.add_argument("--no-md", action="store_true")
    args = ap.parse_args()
    import torch

    import cgviz
    import models
    from cgviz.diff.classify import difference
    from cgviz.diff.picture import to_dot
    from cgviz.view.golden import document
    from cgviz.view.graphviz import run_dot

    x = models.example_inputs("gpt2_small_like")
    t_draw, t_draw_b, t_cmp, t_png, t_ren, t_ren_png = [], [], [], [], [], []
    for _ in range(args.runs):
        a_model = models.gpt2_small_like()
        t = time.perf_counter()
        a = cgviz.draw(a_model, *x)
        a.png()
        t_draw.append(time.perf_counter() - t)
        b_model = models.gpt2_small_like()
        with torch.no_grad():
            for p in b_model.h[6].mlp.parameters():
                p.mul_(1.01)
        t = time.perf_counter()
        b = cgviz.draw(b_model, *x)
        t_draw_b.append(time.perf_counter() - t)
        t = time.perf_counter()
        c = cgviz.compare(a, b)
        t_cmp.append(time.perf_counter() - t)
        t = time.perf_counter()
        c.png()
        t_png.append(time.perf_counter() - t)
        doc = document(a)
        t = time.perf_counter()
        r = difference(doc, _renamed(doc))
        t_ren.append(time.perf_counter() - t)
        t = time.perf_counter()
        run_dot(to_dot(r), "png", nodes=len(r.nodes))
        t_ren_png.append(time.perf_counter() - t)
        assert r.same and all(n.a and n.b for n in r.nodes), "the renamed copy did not match itself"
    med = statistics.median
    draw, draw_b, cmp_, png, ren, ren_png = map(med, (t_draw, t_draw_b, t_cmp, t_png, t_ren, t_ren_png))
    end_to_end = [a_ + b_ + c_ + p_ for a_, b_, c_, p_ in zip(t_draw, t_draw_b, t_cmp, t_png)]
    first = c.first_divergence
    m = machine()
    rows = [("draw one run: `cgviz.draw(model, x)` + `.png()`", draw, "1.00×"),
            ("compare two Drawings: `cgviz.compare(a, b)` + `.png()`", cmp_ + png, f"{(cmp_ + png) / draw:.2f}×"),
            ("  of which matching, classifying (golden documents of both)", cmp_, f"{cmp_ / draw:.2f}×"),
            ("  of which the diff picture's PNG", png, f"{png / draw:.2f}×"),
            ("A against A renamed (every node matched by structure) + PNG", ren + ren_png,
             f"{(ren + ren_png) / draw:.2f}×"),
            ("from two sources, as `cgviz diff` runs: draw A (with its PNG), draw B, compare + PNG",
             med(end_to_end), f"{med(end_to_end) / draw:.2f}×")]
    table = "\n".join(["| step | seconds (median) | against drawing one |", "|---|---:|---:|"]
                      + [f"| {name} | {s:.2f} | {ratio} |" for name, s, ratio in rows])
    section = (f"## cgviz diff: comparing two GPT-2-small runs\n\n"
               f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `bench/bench_diff.py --runs "
               f"{args.runs}` (medians of {args.runs}) on {m.get('cpu', '?')}, a shared 2-CPU machine, in one "
               f"process. A: GPT-2 small ({len(a)} nodes); B: the same with block 6's MLP weights × 1.01. "
               f"The picture opens where the change is (first divergence: {first.id if first else 'none'}; "
               f"{sum(1 for n in c.nodes if n.status != 'same')} nodes differ). Target: comparing under 2× "
               f"drawing one run. The comparison of two drawn runs is a small fraction of drawing one; "
               f"from two sources both runs are drawn first (the last row: A's draw includes its PNG, "
               f"which `cgviz diff` does not make, and B's does not).\n\n{table}\n")
    print(section)
    if not args.no_md:
        write_md(Path(args.md), section, START, END)


if __name__ == "__main__":
    main()
