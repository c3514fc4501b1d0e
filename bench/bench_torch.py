"""Whole-process time of `cgviz torch` next to torchviz, torchview and the floor, on big models.

    .venv/bin/python bench/bench_torch.py [--runs N] [--tools floor,cgviz,torchview,torchviz]
                                          [--models resnet50_like,...] [--md PATH | --no-md]

For each model (bench/resnet50_like.py, bench/gpt2_like.py and the twins of bench/twins_bench.py,
one file each: bench/twin_*.py), each tool draws it to a PNG in a fresh process, timed from the
outside: what a user waits for. The floor (bench/floor.py) imports torch, builds the model and runs
one forward and backward pass, drawing nothing: no tool can do less. cgviz runs as
`python -m cgviz` with this checkout first on PYTHONPATH, so the bench measures the code it lives
in (the `cgviz` console script of a shared environment may point at another checkout).

The machine may be shared: besides the wall time, each process's CPU time (user + system, its
`dot` included) and peak memory (ru_maxrss) are read with os.wait4. One warm-up run of each tool
on the first model fills the disk and bytecode caches; then N rounds run every command once,
round-robin. Reported: medians, the picture's node count and pixel size, and where the time goes
(each script's `timings:` line; cgviz prints it with CGVIZ_TIMINGS=1). The tables are printed and
written into BENCHMARKS.md between the `bench:torch` markers.

A tool that is missing (cgviz without its `torch` command, torchview not installed) gets a row
saying so instead of stopping the benchmark.
"""

from __future__ import annotations

import argparse
import os
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

# name → (label, model file, traced on the meta device)
MODELS = {"resnet18_like": ("ResNet-18 (shared ReLU)", "bench/twin_resnet18_like.py", False),
          "resnet50_like": ("ResNet-50", "bench/resnet50_like.py", False),
          "densenet121_like": ("DenseNet-121", "bench/twin_densenet121_like.py", False),
          "inception_like": ("Inception (GoogLeNet)", "bench/twin_inception_like.py", False),
          "efficientnet_b0_like": ("EfficientNet-B0 (depthwise + SE)", "bench/twin_efficientnet_b0_like.py", False),
          "gpt2_like": ("GPT-2 small", "bench/gpt2_like.py", False),
          "llama_like": ("Llama-style, 8 layers, d 512 (rotary)", "bench/twin_llama_like.py", False),
          "t5_like": ("T5-small-style, 6+6 layers", "bench/twin_t5_like.py", False),
          "llama7b_meta": ("Llama-7B shape, --meta", "bench/twin_llama7b_meta.py", True)}
TOOLS = ("floor", "cgviz", "torchview", "torchviz")
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
    cpu: list[float] = field(default_factory=list)       # user + system seconds, children included
    rss: list[float] = field(default_factory=list)       # peak resident MB (ru_maxrss)
    stages: list[dict[str, float]] = field(default_factory=list)
    nodes: int | None = None
    size: tuple[int, int] | None = None


def checkout_env(env: dict[str, str]) -> dict[str, str]:
    """This checkout first on PYTHONPATH: `python -m cgviz` runs the code next to this bench."""
    env = dict(env)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def cgviz_missing() -> str | None:
    """Why `cgviz torch` cannot run here, or None when it can."""
    r = subprocess.run([sys.executable, "-m", "cgviz", "torch", "--help"], capture_output=True, text=True,
                       env=checkout_env(dict(os.environ)))
    if r.returncode != 0:
        return "not available: `python -m cgviz torch` failed in this checkout"
    return None


def peer_missing(tool: str) -> str | None:
    r = subprocess.run([sys.executable, "-c", f"import {tool}"], capture_output=True, text=True)
    return None if r.returncode == 0 else f"not available: {tool} is not installed"


def jobs(tmp: Path, tools: list[str], models: list[str]) -> list[Job]:
    py = sys.executable
    missing = {"cgviz": cgviz_missing() if "cgviz" in tools else None}
    missing.update({t: peer_missing(t) for t in tools if t not in ("cgviz", "floor")})
    missing["floor"] = None              # bench/floor.py needs only torch, which cgviz torch needs too
    out = []
    for m in models:
        path, meta = str(ROOT / MODELS[m][1]), MODELS[m][2]
        for t in tools:
            if meta and t == "torchviz":
                continue                 # the autograd graph of a meta model is not torchviz's use
            png = tmp / f"{m}.{t}.png"
            if t == "cgviz":
                argv = [py, "-m", "cgviz", "torch", path, "-o", str(png)] + (["--meta"] if meta else [])
            elif t == "floor":
                png = tmp / f"{m}.floor.txt"
                argv = [py, str(ROOT / "bench" / "floor.py"), path, str(png)]
            else:
                argv = [py, str(ROOT / "bench" / f"peer_{t}.py"), path, str(png)]
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


def measure(argv: list[str], env: dict[str, str], log: Path) -> tuple[int | None, float, float, float, str]:
    """Run argv; (exit status or None on timeout, wall s, CPU s, peak MB, stderr). os.wait4 gives
    this one child's resource use (its own reaped children, `dot`, included), unlike RUSAGE_CHILDREN."""
    with open(log, "w+b") as err, open(os.devnull, "wb") as null:
        t = time.perf_counter()
        p = subprocess.Popen(argv, stdout=null, stderr=err, env=env, cwd=ROOT)
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - t > TIMEOUT:
                p.kill()
                os.wait4(p.pid, 0)
                p.returncode = -9
                return None, TIMEOUT, 0.0, 0.0, ""
            time.sleep(0.005)
        dt = time.perf_counter() - t
        p.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        text = err.read().decode("utf-8", "replace")
    return p.returncode, dt, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, text


def run_once(job: Job, env: dict[str, str]) -> None:
    """Run the job once; on success record its time and stages, on failure mark it failed."""
    job.out.unlink(missing_ok=True)
    code, dt, cpu, rss, stderr = measure(job.argv, env, job.out.with_name(job.out.name + ".log"))
    if code is None:
        job.status = f"failed: still running after {TIMEOUT} s"
        return
    if code != 0 or not job.out.exists():
        last = (stderr.strip().splitlines() or [f"exit status {code}"])[-1]
        job.status = f"failed: {last[:200]}"
        return
    job.times.append(dt)
    job.cpu.append(cpu)
    job.rss.append(rss)
    stages = parse_timings(stderr)
    if stages:
        job.stages.append(stages)
    if job.tool == "floor":
        return
    if job.tool == "cgviz":
        m = WROTE.search(stderr)
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


def med(xs: list[float]) -> float:
    return statistics.median(xs)


FLOOR_TARGET, PEER_MEDIAN, PEER_MAX = 1.2, 1.0, 1.3        # issue 17: cgviz/floor, cgviz/torchview
META_SECONDS, META_MB = 10.0, 1024.0                          # the 7B Llama under --meta


def report(all_jobs: list[Job], runs: int, info: dict[str, str], import_torch: float, load: tuple) -> str:
    """The Markdown section (without markers)."""
    lines = [
        HEADING,
        "",
        f"Measured {info['date']} on {info['nproc']} CPUs ({info['cpu']}), {info['os']}; Python "
        f"{info['python']}, torch {info['torch']}, torchviz {info['torchviz']}, torchview "
        f"{version('torchview')}, Graphviz {info['graphviz']}. Load average before/after: "
        f"{load[0]:.2f} / {load[1]:.2f} (the machine is shared: wall time includes waiting for a CPU, "
        "CPU time does not, though torch's OpenMP threads spin while they wait).",
        "",
        f"Each command draws the model to a PNG in a fresh process started by `bench/bench_torch.py`: "
        f"one warm-up run of each tool, then {runs} rounds, round-robin; medians. CPU = user + system "
        f"seconds of the process and its children (`dot`); peak MB = its ru_maxrss. Floor = "
        f"`bench/floor.py`: import torch, build, one forward and backward, nothing drawn. Images: "
        f"1×3×64×64; language models: 64 tokens (T5: 64 in, 32 out). `python -c \"import torch\"` "
        f"alone takes {secs(import_torch)} s here.",
        "",
        "| model | tool | wall s | CPU s | nodes | PNG px (w×h) | peak MB |",
        "|---|---|---:|---:|---:|---|---:|",
    ]
    label = {"torchviz": "torchviz `make_dot`", "torchview": "torchview `draw_graph` (depth 3)",
             "cgviz": "`cgviz torch MODEL.py -o out.png`", "floor": "floor (no picture)"}
    for j in all_jobs:
        name = MODELS[j.model][0]
        if j.status != "ok" or not j.times:
            lines.append(f"| {name} | {label[j.tool]} | {j.status if j.status != 'ok' else 'not run'} | | | | |")
            continue
        size = "–" if j.tool == "floor" else (f"{j.size[0]}×{j.size[1]}" if j.size else "?")
        nodes = "–" if j.tool == "floor" else (str(j.nodes) if j.nodes is not None else "?")
        lines.append(f"| {name} | {label[j.tool]} | {secs(med(j.times))} | {secs(med(j.cpu))} | {nodes} | "
                     f"{size} | {med(j.rss):.0f} |")

    by = {(j.model, j.tool): j for j in all_jobs if j.times}
    lines += ["", "Ratios of medians, cgviz over the other (below 1 = cgviz faster); wall time, CPU time "
              "in brackets.", "",
              "| model | cgviz / floor | cgviz / torchview | cgviz / torchviz |", "|---|---:|---:|---:|"]
    to_floor, to_view = {}, {}
    for m in dict.fromkeys(j.model for j in all_jobs):
        cg = by.get((m, "cgviz"))
        cells = []
        for other in ("floor", "torchview", "torchviz"):
            o = by.get((m, other))
            if cg is None or o is None:
                cells.append("–")
                continue
            r, rc = med(cg.times) / med(o.times), med(cg.cpu) / med(o.cpu)
            cells.append(f"{r:.2f}× ({rc:.2f}×)")
            if other == "floor" and not MODELS[m][2]:
                to_floor[m] = r
            if other == "torchview" and not MODELS[m][2]:
                to_view[m] = r
        lines.append(f"| {MODELS[m][0]} | " + " | ".join(cells) + " |")

    lines += ["", "Targets (issue 17), on wall-time medians of this run:", ""]
    if to_floor:
        worst = max(to_floor, key=to_floor.get)
        ok = all(r <= FLOOR_TARGET for r in to_floor.values())
        lines.append(f"- cgviz's default PNG within {FLOOR_TARGET}× of the floor on every model: "
                     f"**{'met' if ok else 'NOT met'}** (worst {MODELS[worst][0]} {to_floor[worst]:.2f}×; "
                     f"median {statistics.median(to_floor.values()):.2f}×).")
    if to_view:
        mv, worst = statistics.median(to_view.values()), max(to_view, key=to_view.get)
        lines.append(f"- against torchview (depth 3), median ≤ {PEER_MEDIAN}×: "
                     f"**{'met' if mv <= PEER_MEDIAN else 'NOT met'}** ({mv:.2f}×); none above {PEER_MAX}×: "
                     f"**{'met' if to_view[worst] <= PEER_MAX else 'NOT met'}** (worst {MODELS[worst][0]} "
                     f"{to_view[worst]:.2f}×).")
    for m in (m for m in dict.fromkeys(j.model for j in all_jobs) if MODELS[m][2]):
        cg = by.get((m, "cgviz"))
        if cg is not None:
            ok = med(cg.times) < META_SECONDS and max(cg.rss) < META_MB
            lines.append(f"- {MODELS[m][0]} to PNG in under {META_SECONDS:g} s and {META_MB / 1024:g} GB: "
                         f"**{'met' if ok else 'NOT met'}** ({secs(med(cg.times))} s, {max(cg.rss):.0f} MB peak).")

    lines += ["", "Where the time goes (medians of the in-process stage timings, seconds; the rest of "
              "the wall time is interpreter start-up and exit). Floor and peers: import = `import torch` "
              "(+ the tool), build = running the model file, graph = building the graph (torchview runs the "
              "forward pass there), render = `dot -Tpng` and the file write. cgviz: its "
              "`CGVIZ_TIMINGS=1` line (run = forward, backward and the statistics of every tensor; "
              "size = laying out candidate levels, `dot -Tdot`, to choose the PNG's by its pixels; "
              "layout = `dot -Tpng` of the chosen one).", "",
              "| model | tool | stages | sum of stages | wall (median) |", "|---|---|---|---:|---:|"]
    for j in all_jobs:
        st = median_stages(j)
        if not j.times:
            continue
        if not st:
            lines.append(f"| {MODELS[j.model][0]} | {j.tool} | (no timings line) | | {secs(med(j.times))} |")
            continue
        parts = {k: v for k, v in st.items() if k != "total"}
        text = ", ".join(f"{k} {secs(v)}" for k, v in parts.items())
        lines.append(f"| {MODELS[j.model][0]} | {j.tool} | {text} | {secs(sum(parts.values()))} | "
                     f"{secs(med(j.times))} |")
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
    ap.add_argument("--full-warmup", dest="quick_warmup", action="store_false",
                    help="warm up every command, not only each tool on the first model")
    args = ap.parse_args()
    tools = [t for t in args.tools.split(",") if t]
    models = [m for m in args.models.split(",") if m]
    if args.runs < 1 or not set(tools) <= set(TOOLS) or not set(models) <= set(MODELS) or not tools or not models:
        ap.error(f"--runs ≥ 1, --tools from {TOOLS}, --models from {tuple(MODELS)}")

    info = machine()
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="cgviz-bench-torch-") as tmpdir:
        tmp = Path(tmpdir)
        env = checkout_env(bytecode_env(tmp / "pycache"))
        env["CGVIZ_TIMINGS"] = "1"
        import_torch = time_import_torch(env, args.runs)
        all_jobs = jobs(tmp, tools, models)
        live = [j for j in all_jobs if j.status == "ok"]
        # warm-up, not counted: each tool once on the first model fills the bytecode and disk caches
        # (a warm-up of every command doubled the bench's hour for no difference in the medians)
        for j in [j for j in live if j.model == models[0]] if args.quick_warmup else live:
            run_once(j, env)
            j.times.clear()
            j.cpu.clear()
            j.rss.clear()
            j.stages.clear()
            print(f"warm-up {j.model} {j.tool}: {j.status}", file=sys.stderr)
        for r in range(args.runs):
            live = [j for j in live if j.status == "ok"]
            k = r % len(live) if live else 0
            for j in live[k:] + live[:k]:               # each round starts one command later
                run_once(j, env)
            print(f"round {r + 1}/{args.runs} done", file=sys.stderr)
        section = report(all_jobs, args.runs, info, import_torch, (load0, os.getloadavg()[0]))
    print(section)
    if not args.no_md:
        write_md(args.md, section, START, END)
        print(f"\nwrote {args.md}", file=sys.stderr)


if __name__ == "__main__":
    main()
