"""Whole-process wall time of `cgviz torch` next to torchviz and torchview drawing the same big models.

    .venv/bin/python bench/bench_torch.py [--runs N] [--tools torchviz,torchview,cgviz]
                                          [--models resnet50_like,gpt2_like] [--md PATH | --no-md]

For ResNet-50 (bench/resnet50_like.py) and GPT-2 small (bench/gpt2_like.py), each tool draws the
model to a PNG in a fresh process, timed from the outside: what a user waits for. One warm-up run
of each (fills the disk and bytecode caches), then N rounds running every command once, round-robin.
Reported: median and min wall time, the picture's node count and pixel size, and where the time
goes: each peer script prints its stages (bench/peer_torchviz.py, bench/peer_torchview.py), cgviz
prints them with CGVIZ_TIMINGS=1, and `python -c "import torch"` is timed on its own for context.
The table is printed and written into BENCHMARKS.md between the `bench:torch` markers.

A tool that is missing (cgviz without its `torch` command, torchview not installed) gets a row
saying so instead of stopping the benchmark.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
# The same machine description and bytecode-cache policy as the render benchmark, so the sections agree.
from bench_render import bytecode_env, machine, version, write_md  # noqa: E402

BIN = Path(sys.executable).parent
MODELS = {"resnet50_like": ("ResNet-50", "bench/resnet50_like.py"),
          "gpt2_like": ("GPT-2 small", "bench/gpt2_like.py")}
TOOLS = ("torchviz", "torchview", "cgviz")
START, END = "<!-- bench:torch:start -->", "<!-- bench:torch:end -->"
HEADING = "## cgviz torch vs torchviz and torchview"
TIMEOUT = 900                          # seconds for one process; a hung `dot` must not hang the bench


@dataclass
class Job:
    """One tool drawing one model, and what its runs measured."""

    model: str
    tool: str
    argv: list[str]
    out: Path
    status: str = "ok"                 # ok | not available: ... | failed: ...
    times: list[float] = field(default_factory=list)
    stages: list[dict[str, float]] = field(default_factory=list)
    nodes: int | None = None
    size: tuple[int, int] | None = None


def cgviz_missing() -> str | None:
    """Why `cgviz torch` cannot run here, or None when it can."""
    exe = BIN / "cgviz"
    if not exe.exists():
        return f"not available: {exe.relative_to(ROOT) if exe.is_relative_to(ROOT) else exe} is missing"
    r = subprocess.run([str(exe), "torch", "--help"], capture_output=True, text=True)
    if r.returncode != 0:
        return "not available: `cgviz torch` is not a command of this cgviz"
    return None


def peer_missing(tool: str) -> str | None:
    r = subprocess.run([sys.executable, "-c", f"import {tool}"], capture_output=True, text=True)
    return None if r.returncode == 0 else f"not available: {tool} is not installed"


def jobs(tmp: Path, tools: list[str], models: list[str]) -> list[Job]:
    py = sys.executable
    missing = {"cgviz": cgviz_missing() if "cgviz" in tools else None}
    missing.update({t: peer_missing(t) for t in tools if t != "cgviz"})
    out = []
    for m in models:
        path = str(ROOT / MODELS[m][1])
        for t in tools:
            png = tmp / f"{m}.{t}.png"
            argv = ([str(BIN / "cgviz"), "torch", path, "-o", str(png)] if t == "cgviz"
                    else [py, str(ROOT / "bench" / f"peer_{t}.py"), path, str(png)])
            out.append(Job(m, t, argv, png, status=missing[t] or "ok"))
    return out


TIMINGS = re.compile(r"^timings:\s*(.*)$", re.M)
STAGE = re.compile(r"([A-Za-z][\w /+-]*?)\s+([0-9.]+)\s*s\b")
WROTE = re.compile(r"^wrote .*?\((\d+) nodes", re.M)


def parse_timings(stderr: str) -> dict[str, float]:
    """`timings: import 1.23 s, load 0.1 s, ...` → {"import": 1.23, "load": 0.1, ...} (last such line)."""
    lines = TIMINGS.findall(stderr)
    return {k.strip(): float(v) for k, v in STAGE.findall(lines[-1])} if lines else {}


# A node statement: an ID (bare or quoted) followed by its attribute list, not an edge and not a
# default-attribute statement. Multi-line labels only continue lines, so they never start one.
NODE = re.compile(r'^\s*("(?:[^"\\]|\\.)*"|[\w.]+)\s*\[(?!.*->)', re.M)


def count_dot_nodes(source: str) -> int:
    return len({m for m in NODE.findall(source) if m not in ("graph", "node", "edge")})


def png_size(path: Path) -> tuple[int, int] | None:
    from PIL import Image
    Image.MAX_IMAGE_PIXELS = None      # these pictures are legitimately huge; only the header is read
    try:
        with Image.open(path) as im:
            return im.size
    except OSError:
        return None


def run_once(job: Job, env: dict[str, str]) -> None:
    """Run the job once; on success record its time and stages, on failure mark it failed."""
    job.out.unlink(missing_ok=True)
    t = time.perf_counter()
    try:
        r = subprocess.run(job.argv, capture_output=True, text=True, env=env, cwd=ROOT, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        job.status = f"failed: still running after {TIMEOUT} s"
        return
    dt = time.perf_counter() - t
    if r.returncode != 0 or not job.out.exists():
        last = (r.stderr.strip().splitlines() or [f"exit status {r.returncode}"])[-1]
        job.status = f"failed: {last[:200]}"
        return
    job.times.append(dt)
    stages = parse_timings(r.stderr)
    if stages:
        job.stages.append(stages)
    if job.tool == "cgviz":
        m = WROTE.search(r.stderr)
        job.nodes = int(m.group(1)) if m else None
    else:
        gv = Path(str(job.out) + ".gv")
        job.nodes = count_dot_nodes(gv.read_text()) if gv.exists() else None
    job.size = png_size(job.out)


def time_import_torch(env: dict[str, str], runs: int) -> float:
    xs = []
    for _ in range(runs + 1):      # the first fills the bytecode cache, like the warm-up runs
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch"], check=True, env=env)
        xs.append(time.perf_counter() - t)
    return statistics.median(xs[1:])


def median_stages(job: Job) -> dict[str, float]:
    if not job.stages:
        return {}
    keys = [k for k in job.stages[0] if all(k in s for s in job.stages)]
    return {k: statistics.median(s[k] for s in job.stages) for k in keys}


def secs(x: float) -> str:
    return f"{x:.2f}"


def report(all_jobs: list[Job], runs: int, info: dict[str, str], import_torch: float) -> str:
    """The Markdown section (without markers)."""
    lines = [
        HEADING,
        "",
        f"Measured {info['date']} on {info['nproc']} CPUs ({info['cpu']}), {info['os']}; Python "
        f"{info['python']}, torch {info['torch']}, torchviz {info['torchviz']}, torchview "
        f"{version('torchview')}, Graphviz {info['graphviz']}.",
        "",
        f"Each command draws the model to a PNG in a fresh process started by `bench/bench_torch.py`: "
        f"one warm-up run each, then {runs} rounds, round-robin; seconds of wall time. "
        f"ResNet-50: input 1×3×64×64; GPT-2 small: 64 tokens (`bench/models.py`). "
        f"`python -c \"import torch\"` alone takes {secs(import_torch)} s here.",
        "",
        "| model | tool | median s | min s | nodes | PNG px (w×h) |",
        "|---|---|---:|---:|---:|---|",
    ]
    label = {"torchviz": "torchviz `make_dot` (`bench/peer_torchviz.py`)",
             "torchview": "torchview `draw_graph` (`bench/peer_torchview.py`)",
             "cgviz": "`cgviz torch MODEL.py -o out.png`"}
    for j in all_jobs:
        name = MODELS[j.model][0]
        if j.status != "ok" or not j.times:
            lines.append(f"| {name} | {label[j.tool]} | {j.status if j.status != 'ok' else 'not run'} | | | |")
            continue
        size = f"{j.size[0]}×{j.size[1]}" if j.size else "?"
        nodes = str(j.nodes) if j.nodes is not None else "?"
        lines.append(f"| {name} | {label[j.tool]} | {secs(statistics.median(j.times))} | "
                     f"{secs(min(j.times))} | {nodes} | {size} |")

    by = {(j.model, j.tool): j for j in all_jobs}
    ratios = []
    for m in dict.fromkeys(j.model for j in all_jobs):
        cg = by.get((m, "cgviz"))
        for peer in ("torchviz", "torchview"):
            p = by.get((m, peer))
            if cg and p and cg.times and p.times:
                r = statistics.median(cg.times) / statistics.median(p.times)
                ratios.append(f"| {MODELS[m][0]} | cgviz / {peer} | {r:.2f}× |")
    lines += ["", "| model | wall-time ratio (median; below 1 = cgviz faster) | value |", "|---|---|---:|"]
    lines += ratios or ["| – | not measured (cgviz or a peer did not run) | – |"]
    vs_torchviz = {m: statistics.median(by[(m, "cgviz")].times) / statistics.median(by[(m, "torchviz")].times)
                   for m in dict.fromkeys(j.model for j in all_jobs)
                   if by.get((m, "cgviz")) and by.get((m, "torchviz")) and by[(m, "cgviz")].times
                   and by[(m, "torchviz")].times}
    if vs_torchviz:
        met = all(r <= 1.0 for r in vs_torchviz.values())
        worst = max(vs_torchviz.values())
        lines += ["", f"**Target (cgviz, with values and gradients, no slower than torchviz, which shows "
                  f"neither): {'met' if met else 'NOT met'}** — the slowest ratio is {worst:.2f}× "
                  f"({', '.join(f'{MODELS[m][0]} {r:.2f}×' for m, r in vs_torchviz.items())})."]

    lines += ["", "Where the time goes (medians of the in-process stage timings, seconds; the rest of "
              "the wall time is interpreter start-up and exit). Peers: import = `import torch` + the "
              "tool, build = running the model file, graph = building the graph (torchview runs the "
              "forward pass there), render = `dot -Tpng` and the file write. cgviz: its "
              "`CGVIZ_TIMINGS=1` line.", "",
              "| model | tool | stages | sum of stages | wall (median) |", "|---|---|---|---:|---:|"]
    for j in all_jobs:
        st = median_stages(j)
        if not j.times:
            continue
        if not st:
            lines.append(f"| {MODELS[j.model][0]} | {j.tool} | (no timings line) | | "
                         f"{secs(statistics.median(j.times))} |")
            continue
        parts = {k: v for k, v in st.items() if k != "total"}
        text = ", ".join(f"{k} {secs(v)}" for k, v in parts.items())
        lines.append(f"| {MODELS[j.model][0]} | {j.tool} | {text} | {secs(sum(parts.values()))} | "
                     f"{secs(statistics.median(j.times))} |")
    lines += ["", "torchviz draws the autograd graph (one node per backward function and parameter), "
              "torchview the module graph down to depth 3; cgviz runs forward and backward and labels "
              "the edges with values and gradients. Node counts are those of each tool's own picture "
              "(peers: node statements in the DOT source; cgviz: its `wrote … (N nodes)` line)."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="measured rounds (default 3)")
    ap.add_argument("--tools", default=",".join(TOOLS), help="comma-separated subset of " + ",".join(TOOLS))
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of " + ",".join(MODELS))
    ap.add_argument("--md", type=Path, default=ROOT / "BENCHMARKS.md", help="Markdown file to update")
    ap.add_argument("--no-md", action="store_true", help="only print the table")
    args = ap.parse_args()
    tools = [t for t in args.tools.split(",") if t]
    models = [m for m in args.models.split(",") if m]
    if args.runs < 1 or not set(tools) <= set(TOOLS) or not set(models) <= set(MODELS) or not tools or not models:
        ap.error(f"--runs ≥ 1, --tools from {TOOLS}, --models from {tuple(MODELS)}")

    info = machine()
    with tempfile.TemporaryDirectory(prefix="cgviz-bench-torch-") as tmpdir:
        tmp = Path(tmpdir)
        env = bytecode_env(tmp / "pycache")
        env["CGVIZ_TIMINGS"] = "1"
        import_torch = time_import_torch(env, args.runs)
        all_jobs = jobs(tmp, tools, models)
        live = [j for j in all_jobs if j.status == "ok"]
        for j in live:                                  # warm-up, not counted
            run_once(j, env)
            j.times.clear()
            j.stages.clear()
            print(f"warm-up {j.model} {j.tool}: {j.status}", file=sys.stderr)
        for r in range(args.runs):
            live = [j for j in live if j.status == "ok"]
            k = r % len(live) if live else 0
            for j in live[k:] + live[:k]:               # each round starts one command later
                run_once(j, env)
            print(f"round {r + 1}/{args.runs} done", file=sys.stderr)
        section = report(all_jobs, args.runs, info, import_torch)
    print(section)
    if not args.no_md:
        write_md(args.md, section, START, END)
        print(f"\nwrote {args.md}", file=sys.stderr)


if __name__ == "__main__":
    main()
