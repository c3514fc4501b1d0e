"""Building the page and the picture of a recorded run of GPT-2 small: 1,000 recorded steps.

    .venv/bin/python bench/bench_watch_page.py [--steps 1000] [--runs 1]

The record is synthesised in the documented .cgw format (tests/watch_records.py): the header holds
GPT-2 small's graph as `cgviz torch bench/gpt2_like.py --format json` writes it (148 parameters),
and each step every parameter's ‖w‖, ‖g‖, ratios and a 16-bin gradient histogram (the recorder's default), and every module's
activation numbers. Then, each in a fresh process, timed from the outside, in the same run:
reading the record alone (`cgviz.watch.read.read_run`, the floor every view pays), `cgviz render
run.cgw -o run.html` (the page) and `-o run.png` (the picture); and, for scale, drawing the model's
one-step page, `cgviz torch bench/gpt2_like.py --format html`. Reported: median wall seconds and
CPU seconds (user + sys) of each, the record's and the page's size. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from watch_records import synthetic  # noqa: E402

TIMEOUT = 900


def timed(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + sys, the child's) of one process."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=TIMEOUT, cwd=ROOT)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {r.stderr.strip().splitlines()[-1:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        graph = tmp / "gpt2.json"
        cases = {"draw the model once: `cgviz torch gpt2_like.py -f html`":
                 [py, "-m", "cgviz", "torch", "bench/gpt2_like.py", "-f", "html", "-o", str(tmp / "model.html"), "-q"]}
        subprocess.run([py, "-m", "cgviz", "torch", "bench/gpt2_like.py", "-f", "json", "-o", str(graph), "-q"],
                       check=True, cwd=ROOT, timeout=TIMEOUT,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
        doc = json.loads(graph.read_text())
        params = {n["name"]: n["shape"] for n in doc["nodes"] if n["kind"] == "param"}
        modules = sorted({n["module"] for n in doc["nodes"] if n.get("module")})
        record = tmp / "run.cgw"
        synthetic(record, params, modules, args.steps, graph=doc, every=10, bins=16,
                  fade={p: (lambda k: 10 ** (-k / 300)) for p in params if p.startswith("h.0.")})
        cases = {"read the record (`read_run`)": [py, "-c", f"from cgviz.watch.read import read_run; read_run({str(record)!r})"],
                 "the page: `cgviz render run.cgw -o run.html`": [py, "-m", "cgviz", "render", str(record), "-o", str(tmp / "run.html"), "-q"],
                 "the picture: `cgviz render run.cgw -o run.png`": [py, "-m", "cgviz", "render", str(record), "-o", str(tmp / "run.png"), "-q"],
                 **cases}
        results = {}
        for name, argv in cases.items():
            runs = [timed(argv) for _ in range(args.runs)]
            results[name] = (statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs))
        load = os.getloadavg()[0]
        print(f"GPT-2 small ({len(params)} parameters, {len(modules)} modules), {args.steps} recorded steps; "
              f"record {record.stat().st_size / 1e6:.0f} MB, page {(tmp / 'run.html').stat().st_size / 1e6:.1f} MB; "
              f"median of {args.runs} run(s); load average {load:.1f} on {os.cpu_count()} cores\n")
        print("| step | wall s | CPU s |")
        print("|---|---:|---:|")
        for name, (wall, cpu) in results.items():
            print(f"| {name} | {wall:.1f} | {cpu:.1f} |")


if __name__ == "__main__":
    main()
