"""The drill-down page's build time and size next to drawing the same model flat at full depth.

    .venv/bin/python bench/bench_page.py [--models resnet18_like,gpt2_like,...] [--runs N]

For each bench model (bench/bench_torch.py's list), three fresh processes, timed from the outside,
one after the other in the same run: `cgviz torch MODEL --format html` (the page: the top level
the budget chooses, and the inside of every module laid out on its own), and every op in one flat
layout with no budget, `--depth 1000 --format svg`, folded (×N blocks drawn once, as the page
draws them) and `--no-fold`. Reported: median wall seconds, the stages CGVIZ_TIMINGS names (the
run: forward and backward, which for the page also bins the histograms its panels show; the
output: the page's levels, layouts and panels, or the SVG's layout), the page's size, its levels
and its biggest inner level, and the flat pictures' boxes. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from bench_torch import MODELS, checkout_env, parse_timings  # noqa: E402

DEFAULT = ["resnet18_like", "resnet50_like", "gpt2_like", "llama_like", "t5_like"]
TIMEOUT = 900


def timed(argv: list[str]) -> tuple[float, str]:
    """Wall seconds of one process and its stderr (with CGVIZ_TIMINGS' stage line)."""
    env = checkout_env(dict(os.environ, CGVIZ_TIMINGS="1"))
    t = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=TIMEOUT, cwd=ROOT)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {r.stderr.strip().splitlines()[-1:]}")
    return wall, r.stderr


def levels_of(page: Path) -> tuple[int, int]:
    """How many levels the page has, and the most boxes an inner one (not the top) draws."""
    text = page.read_text(encoding="utf-8")
    blob = re.search(r'<script type="application/json" id="cgviz-data">(.*?)</script>', text, re.S).group(1)
    data = json.loads(blob)
    inner = [lv for key, lv in (data.get("levels") or {}).items() if key != data.get("root")]
    return 1 + len(inner), max((len(lv["nodes"]) for lv in inner), default=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=",".join(DEFAULT))
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    py = sys.executable
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            path = str(ROOT / MODELS[name][1])
            page, flat = Path(tmp) / f"{name}.html", Path(tmp) / f"{name}.svg"
            runs: dict[str, list] = {"page": [], "flat": [], "unfolded": []}
            for _ in range(args.runs):
                for what, extra, out in (("page", ["--format", "html"], page),
                                         ("flat", ["--depth", "1000", "--format", "svg"], flat),
                                         ("unfolded", ["--depth", "1000", "--no-fold", "--format", "svg"], flat)):
                    try:
                        wall, err = timed([py, "-m", "cgviz", "torch", path, *extra, "-o", str(out)])
                    except RuntimeError as e:           # a flat layout Graphviz gives up on is a result
                        print(f"{name} {what}: {e}", file=sys.stderr)
                        runs[what].append(None)
                        continue
                    stages = parse_timings(err)
                    nodes = int(re.search(r"\((\d+) nodes", err).group(1))
                    runs[what].append((wall, stages.get("run", 0.0), stages.get("layout", 0.0), nodes,
                                       out.stat().st_size))
            med = {what: [statistics.median(x[i] for x in rs) for i in range(5)] if None not in rs else None
                   for what, rs in runs.items()}
            n_levels, biggest = levels_of(page)
            rows.append((MODELS[name][0], med, n_levels, biggest))
            print(f"{name}: {', '.join(f'{k} {v[0]:.1f} s' for k, v in med.items() if v)}", file=sys.stderr)
    print("| model | page: whole process s | its run (with histograms) s | its levels + page s | page MB | levels "
          "| biggest inner level (boxes) | flat SVG, every op, folded: s | its layout s | boxes | flat SVG, every op, "
          "unfolded: s | its layout s | boxes |")
    print("|---|" + "---:|" * 12)
    for label, m, n, big in rows:
        p = m["page"]

        def flat(x) -> str:
            return f"{x[0]:.1f} | {x[2]:.1f} | {x[3]:.0f}" if x else "no layout within --timeout 60 s | – | –"
        print(f"| {label} | {p[0]:.1f} | {p[1]:.1f} | {p[2]:.1f} | {p[4] / 1e6:.1f} | {n} | {big} | "
              f"{flat(m['flat'])} | {flat(m['unfolded'])} |")


if __name__ == "__main__":
    main()
