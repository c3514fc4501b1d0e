"""The drill-down page's build time and size next to drawing the same model flat at full depth.

    .venv/bin/python bench/bench_page.py [--models resnet18_like,gpt2_like,...] [--runs N]

For each bench model (bench/bench_torch.py's list), two fresh processes, timed from the outside,
one after the other in the same run: `cgviz torch MODEL --format html` (the page: the top level
the budget chooses, and the inside of every module laid out on its own) and
`cgviz torch MODEL --depth 1000 --format svg` (every op in one flat layout, no budget). Reported:
median wall seconds, the page's size, its number of levels and its biggest level, and the flat
SVG's node count and size. Prints a Markdown table.
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
    """How many levels the page has, and the most boxes one of them draws."""
    text = page.read_text(encoding="utf-8")
    blob = re.search(r'<script type="application/json" id="cgviz-data">(.*?)</script>', text, re.S).group(1)
    levels = json.loads(blob).get("levels") or {"": {"nodes": {}}}
    return len(levels), max(len(lv["nodes"]) for lv in levels.values())


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
            page_times, flat_times, stages = [], [], {}
            for _ in range(args.runs):
                wall, err = timed([py, "-m", "cgviz", "torch", path, "--format", "html", "-o", str(page)])
                page_times.append(wall)
                stages = parse_timings(err)
                wall, err = timed([py, "-m", "cgviz", "torch", path, "--depth", "1000", "--format", "svg",
                                   "-o", str(flat)])
                flat_times.append(wall)
                flat_nodes = int(re.search(r"\((\d+) nodes", err).group(1))
            n_levels, biggest = levels_of(page)
            rows.append((MODELS[name][0], statistics.median(page_times), stages.get("levels", 0.0),
                         page.stat().st_size, n_levels, biggest, statistics.median(flat_times), flat_nodes,
                         flat.stat().st_size))
            print(f"{name}: page {rows[-1][1]:.1f} s, flat {rows[-1][6]:.1f} s", file=sys.stderr)
    print("| model | page: build s | of it, laying out the levels s | page size | levels | biggest level "
          "(boxes) | flat SVG, every op: s | flat nodes | flat SVG size |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, pt, lv, size, n, big, ft, fn, fsize in rows:
        print(f"| {label} | {pt:.1f} | {lv:.1f} | {size / 1e6:.1f} MB | {n} | {big} | {ft:.1f} | {fn} | "
              f"{fsize / 1e6:.1f} MB |")


if __name__ == "__main__":
    main()
