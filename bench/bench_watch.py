"""What `cgviz.watch` costs a training loop: step time with recording every 10 and every 100 steps against
the same loop without cgviz, in one run, and the record's size per 1,000 steps of GPT-2 small.

    .venv/bin/python bench/bench_watch.py [--steps N] [--models resnet50_like,gpt2_like] [--md PATH | --no-md]

Each model (bench/resnet50_like.py: [1×3×64×64]; bench/gpt2_like.py: GPT-2 small, 124M parameters, 64
tokens) trains with SGD on CPU, one thread, in three loops that take turns, step by step: plain
PyTorch, watched with every=10, watched with every=100 (graph=False: the graph is drawn once per
run, timed apart). Every step is timed. A step's cost is the median of the plain loop's steps; the
watch's cost is measured apart on its recorded steps (mean extra time over the plain median) and on
its other steps (the `w.step` call, timed itself: there it is all the watch runs), and the overhead
of `every=N` is ((N − 1) · call_unrecorded + extra_recorded) / (N · plain): the average over N
steps, because a run of a few dozen steps holds too few recorded ones to time every=100 directly. The direct ratio
of the every=10 loop's total time to the plain loop's is printed too. The machine may be shared
(other processes' load is in the step times of all three loops alike).

The file size is measured: the bytes of the step records written (every=1 for a few steps), per
record, times 1,000, plus the header, extrapolated to 1,000 recorded steps.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

START, END = "<!-- bench:watch:start -->", "<!-- bench:watch:end -->"
MODELS = {"resnet50_like": ("ResNet-50-like, [1×3×64×64]", "bench/resnet50_like.py"),
          "gpt2_like": ("GPT-2 small, 64 tokens", "bench/gpt2_like.py")}


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_watch_{name}", ROOT / MODELS[name][1])
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.model.train(), mod.example_inputs


def loss_of(out):
    import torch
    out = out if isinstance(out, torch.Tensor) else out[0]
    return out.float().pow(2).mean()


def bench_model(name: str, steps: int) -> dict:
    import torch

    import cgviz
    model, inputs = load(name)
    opt = torch.optim.SGD(model.parameters(), lr=1e-6)
    tmp = Path(tempfile.mkdtemp())
    times = {"plain": [], "every10": [], "every100": []}
    recorded = {"every10": [], "every100": []}
    watches = {"every10": cgviz.watch(model, tmp / "e10.cgw", every=10, graph=False).__enter__(),
               "every100": cgviz.watch(model, tmp / "e100.cgw", every=100, graph=False).__enter__()}

    calls = {"every10": [], "every100": []}

    def one(w, v=None):
        t = time.perf_counter()
        loss = loss_of(model(*inputs))
        loss.backward()
        if w is not None:
            c = time.perf_counter()
            w.step(loss)
            calls[v].append(time.perf_counter() - c)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t

    one(None)                               # warm-up: allocator, first-call costs
    for k in range(steps):
        for v in ("plain", "every10", "every100"):
            w = watches.get(v)
            if w is not None:
                recorded[v].append(w.recorded(k))
            times[v].append(one(w, v))
    for w in watches.values():
        w.close()
    plain = statistics.median(times["plain"])
    out = {"name": name, "plain": plain, "steps": steps}
    # a recorded step does the same work in both loops: its extra is the mean over both loops' recorded steps,
    # each loop's first apart (it also allocates the buffers the weights are copied into, once per run)
    rec, first = [], []
    for v in ("every10", "every100"):
        ks = [i for i, r in enumerate(recorded[v]) if r]
        first.append(times[v][ks[0]] - plain)
        rec += [times[v][i] - plain for i in ks[1:]]
    out["first"] = statistics.mean(first)
    for v, n in (("every10", 10), ("every100", 100)):
        other = [t - plain for t, r in zip(times[v], recorded[v]) if not r]
        call = [t for t, r in zip(calls[v], recorded[v]) if not r]
        x_rec, x_other, x_call = statistics.mean(rec), statistics.median(other), statistics.median(call)
        out[v] = {"rec": x_rec, "other": x_other, "call": x_call,
                  "overhead": ((n - 1) * x_call + x_rec) / (n * plain),
                  "overhead_noisy": ((n - 1) * x_other + x_rec) / (n * plain)}
    out["direct10"] = sum(times["every10"]) / sum(times["plain"]) - 1
    # the graph, drawn once per run
    w = cgviz.watch(model, tmp / "g.cgw", every=1)
    with w:
        loss = loss_of(model(*inputs))
        loss.backward()
        t = time.perf_counter()
        w.step(loss)
        out["graph_s"] = time.perf_counter() - t
        opt.zero_grad(set_to_none=True)
    # the file: step records of every=1 (with the sampled module outputs)
    with cgviz.watch(model, tmp / "size.cgw", every=1, graph=False) as w:
        for _ in range(3):
            loss = loss_of(model(*inputs))
            loss.backward()
            w.step(loss)
            opt.step()
            opt.zero_grad(set_to_none=True)
    lines = (tmp / "size.cgw").read_bytes().split(b"\n")
    head = len(lines[0]) + 1 + len((tmp / "g.cgw").read_bytes().split(b"\n")[0]) - len(lines[0])
    per = statistics.mean(len(x) + 1 for x in lines[1:] if x)
    out.update(header_bytes=head, record_bytes=per, per_1000=head + 1000 * per,
               params=sum(p.numel() for p in model.parameters()), tensors=len(list(model.parameters())))
    return out


def table(results: list[dict]) -> str:
    import platform

    import torch
    rows = ["| model | plain step | extra on a recorded step | `w.step` on another step (its step's time − plain) "
            "| **overhead every 10** (target ≤ 5%) | **overhead every 100** (target ≤ 1%) | every 10, whole loops "
            "| once per run: first record, graph |",
            "|---|---|---|---|---|---|---|---|"]
    for r in results:
        e10, e100 = r["every10"], r["every100"]
        rows.append(f"| {MODELS[r['name']][0]} | {r['plain'] * 1000:.0f} ms | {e10['rec'] * 1000:+.0f} ms | "
                    f"{e10['call'] * 1e6:.0f} µs ({e10['other'] * 1000:+.1f} ms) | {100 * e10['overhead']:.1f}% | "
                    f"{100 * e100['overhead']:.2f}% | {100 * r['direct10']:+.1f}% | {r['first'] * 1000:+.0f} ms, "
                    f"{r['graph_s']:.1f} s |")
    size = ["", "| model | parameters (tensors) | header (with the graph) | one step record | 1,000 recorded steps "
                "(target < 50 MB) |", "|---|---|---|---|---|"]
    for r in results:
        size.append(f"| {MODELS[r['name']][0]} | {r['params'] / 1e6:.1f} M ({r['tensors']}) | "
                    f"{r['header_bytes'] / 1e3:.0f} kB | {r['record_bytes'] / 1e3:.1f} kB | "
                    f"**{r['per_1000'] / 1e6:.1f} MB** (extrapolated from 3 measured records) |")
    steps = results[0]["steps"] if results else 0
    return "\n".join([
        "## cgviz.watch: what recording costs a training step",
        "",
        f"`python bench/bench_watch.py` ({steps} SGD steps per loop on CPU, one torch thread, torch "
        f"{torch.__version__}, Python {platform.python_version()}, {os.cpu_count()} cores shared with other "
        "work). Three loops take turns step by step in one process: plain PyTorch, `cgviz.watch(every=10)` and "
        "`cgviz.watch(every=100)`. Overhead every N = ((N − 1) · `w.step` on an unrecorded step + extra on a "
        "recorded step) / (N · plain step): on an unrecorded step `w.step` is all the watch runs (no hook is "
        "installed; torch.optim's step hook returns at once), so its call is timed itself; the difference of "
        "whole step times is shown beside it, and is the shared machine's noise. The extra on a recorded step "
        "is its whole step's time over the plain median (the mean over both loops' recorded steps but their "
        "first, which also allocates the buffers the weights are copied into: shown apart, as a once-per-run "
        "cost). Whole loops: the every-10 loop's total time over the plain loop's, first record included. The "
        "graph is drawn once per run, on the first recorded step.",
        "", *rows, *size])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--md", default=str(ROOT / "BENCHMARKS.md"))
    ap.add_argument("--no-md", action="store_true")
    a = ap.parse_args()
    import torch
    torch.set_num_threads(1)
    torch.manual_seed(0)
    results = []
    for name in a.models.split(","):
        r = bench_model(name, a.steps)
        print(name, {k: v for k, v in r.items()}, flush=True)
        results.append(r)
    text = table(results)
    print(text)
    if not a.no_md:
        from bench_render import write_md
        write_md(Path(a.md), text, START, END)


if __name__ == "__main__":
    main()
