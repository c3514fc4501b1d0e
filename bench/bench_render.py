"""Wall time of a whole `cgviz render` process next to torchviz drawing the same graph (`make bench`).

    .venv/bin/python bench/bench_render.py [--runs N] [--md PATH | --no-md]

Every measurement is a fresh process (new interpreter, imports, the `dot` layout, the file write),
timed from the outside, because that is what a user waits for. Each command runs once to warm the
disk cache and the bytecode caches; then N rounds run every command once each, round-robin (each
round starts one command later), so that machine noise falls on all of them alike. The table gives
the median and interquartile range of each and the torchviz/cgviz ratios; it is printed and written
into BENCHMARKS.md between the `bench:render` markers (the rest of the file is left alone).

A separate run of `cgviz render` with PYTHONPROFILEIMPORTTIME=1 (same as `python -X importtime`)
checks that cgviz's process never imports torch and lists its costliest imports; five more
processes time cgviz's stages (start-up, imports, building the parser, evaluation, layout, exit).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = "sample_graphs/pizza.cg"
TORCHVIZ_SCRIPT = "bench/torchviz_pizza.py"
TARGET = 10.0                        # issue 17: cgviz at least 10x faster than torchviz (SVG)
START, END = "<!-- bench:render:start -->", "<!-- bench:render:end -->"
INTRO = """\
# Benchmarks

Measurements of cgviz on a real machine, written by the scripts in `bench/`. Each section is
produced by one script, lies between its own `<!-- bench:NAME:start -->` / `<!-- bench:NAME:end -->`
markers, and is replaced whole when that script runs again; it records the machine (`nproc`, CPU
model from `/proc/cpuinfo`, Python, torch and Graphviz versions) and the date it was measured on.

```
make bench        # = .venv/bin/python bench/bench_render.py  (options: --runs N, --no-md, --inherit-env)
```

"""


# The environment of every measured process; main() points the bytecode cache into its temp folder.
ENV: dict[str, str] = dict(os.environ)


def bytecode_env(pycache: Path) -> dict[str, str]:
    """The environment a user runs in: compiled bytecode (.pyc) is cached and reused.

    PYTHONDONTWRITEBYTECODE (set in some sandboxes and CI images) would make every run compile
    cgviz's editable-installed sources again, a cost no installed user pays; so it is dropped, and
    PYTHONPYCACHEPREFIX keeps the caches in the benchmark's temp folder, never in the source tree.
    The warm-up run fills that cache for every command alike (torch included)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def checkout_env(env: dict[str, str]) -> dict[str, str]:
    """This checkout first on PYTHONPATH, so the `cgviz` command runs the code next to this bench
    (its console script imports cgviz.cli, which a shared environment may resolve to another checkout)."""
    env = dict(env)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


@dataclass
class Cmd:
    key: str
    label: str
    argv: list[str]
    output: Path | None = None         # checked to exist after every run
    times: list[float] = field(default_factory=list)


def cgviz_command() -> list[str]:
    """The `cgviz` command a user types: the console script installed beside this interpreter.

    Through checkout_env's PYTHONPATH it runs this checkout's code. `python -m cgviz` would add
    runpy's imports (~5-8 ms) that the installed command does not pay; it stands in only where
    the script is missing."""
    script = Path(sys.executable).with_name("cgviz")
    return [str(script)] if script.exists() else [sys.executable, "-m", "cgviz"]


def commands(tmp: Path) -> list[Cmd]:
    py = sys.executable
    cgviz = cgviz_command()
    how = "the `cgviz` console script" if len(cgviz) == 1 else "`python -m cgviz`: no console script found"
    return [
        Cmd("cg_svg", f"`cgviz render pizza.cg -o out.svg` ({how})",
            [*cgviz, "render", SAMPLE, "-o", str(tmp / "out.svg")], tmp / "out.svg"),
        Cmd("cg_dot", "`cgviz render pizza.cg --format dot -o out.dot` (no layout)",
            [*cgviz, "render", SAMPLE, "--format", "dot", "-o", str(tmp / "out.dot")],
            tmp / "out.dot"),
        Cmd("tv_svg", "torchviz `make_dot(L).render(format=\"svg\")` (`bench/torchviz_pizza.py`)",
            [py, TORCHVIZ_SCRIPT, str(tmp / "graph")], tmp / "graph.svg"),
        Cmd("torch", "`python -c \"import torch\"` (context)", [py, "-c", "import torch"]),
        Cmd("python", "`python -c \"pass\"` (context)", [py, "-c", "pass"]),
    ]


def run_once(cmd: Cmd) -> float:
    if cmd.output is not None and cmd.output.exists():
        cmd.output.unlink()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd.argv, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd.argv)} failed with exit status {proc.returncode}:\n"
                 f"{proc.stderr.decode(errors='replace')}")
    if cmd.output is not None and not (cmd.output.exists() and cmd.output.stat().st_size > 0):
        sys.exit(f"{' '.join(cmd.argv)} exited 0 but did not write {cmd.output}")
    return elapsed


def quartiles(xs: list[float]) -> tuple[float, float, float]:
    q1, q2, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    return q1, q2, q3


def import_profile(tmp: Path) -> tuple[list[str], list[tuple[str, float]], float, int]:
    """Run `cgviz render` once through its entry point with -X importtime (PYTHONPROFILEIMPORTTIME=1).

    Returns the torch modules it imported (there should be none), the costliest imports in ms
    (each third-party package's cumulative time, and the self time of cgviz's own modules), the
    total import time in ms, and the number of modules imported."""
    env = dict(ENV, PYTHONPROFILEIMPORTTIME="1")
    proc = subprocess.run([*cgviz_command(), "render", SAMPLE, "-o", str(tmp / "importtime.svg")],
                          cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        sys.exit(f"cgviz render (import profile) failed:\n{proc.stderr}")
    mods: list[tuple[str, int, int]] = []          # (name, self us, cumulative us)
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|\s*(\S+)", line)
        if m:
            mods.append((m.group(3), int(m.group(1)), int(m.group(2))))
    if not mods:
        sys.exit("no -X importtime output from cgviz render: cannot check that it avoids torch")
    torch_mods = [name for name, _, _ in mods if name == "torch" or name.startswith("torch.")]
    stdlib = set(getattr(sys, "stdlib_module_names", ()))
    costs = [(name, cum / 1000) for name, _, cum in mods
             if "." not in name and name not in stdlib and not name.startswith("_")
             and name != "cgviz" and cum >= 500]          # (a failed optional import shows as ~0)
    costs.append(("cgviz's own modules (self)",
                  sum(own for name, own, _ in mods if name.split(".")[0] == "cgviz") / 1000))
    costs.sort(key=lambda t: -t[1])
    total = sum(own for _, own, _ in mods) / 1000
    return torch_mods, costs, total, len(mods)


# Run in a fresh interpreter: how long each stage of `cgviz render` takes, with public functions
# only, in the order the command meets them. NumPy is imported with OpenBLAS on one thread, as the
# command line does (cgviz.cli). The first parse() builds the parser from its generated tables
# (cgviz/lang/lalr.py); the second reuses it. perf_counter is the system-wide monotonic clock, so the
# parent can also time the interpreter's start (spawn to the first line) and its exit (the last
# line to the process's end, which leaves as cgviz.cli.run does): the rows add up to the helper's
# whole wall time.
STAGES = r"""
import time
t = [time.perf_counter()]
import json, os, sys
def mark(): t.append(time.perf_counter())
import click; mark()
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy; mark()
import cgviz.lang.lalr; mark()
import cgviz.cli, cgviz.route.expression, cgviz.view.expression_scene, cgviz.view.graphviz, cgviz.lang.parser; mark()
text = open(sys.argv[1], encoding="utf-8").read()
cgviz.lang.parser.parse(text, "pizza.cg"); mark()
cgviz.lang.parser.parse(text, "pizza.cg"); mark()
res = cgviz.route.expression.evaluate(text, "pizza.cg"); mark()
dot = cgviz.view.expression_scene.to_dot(res.graph, res.run, cgviz.view.expression_scene.DotOptions()); mark()
cgviz.view.graphviz.run_dot(dot, "svg"); mark()
d = [b - a for a, b in zip(t, t[1:])]
print(json.dumps({"first": t[0], "last": time.perf_counter(),
                  "import click": d[0], "import numpy": d[1],
                  "import the parser's tables (cgviz.lang.lalr; with dataclasses and base64)": d[2],
                  "import cgviz's other modules": d[3],
                  "build the parser (first parse minus second)": d[4] - d[5],
                  "parse + build IR + forward/backward": d[6], "to_dot": d[7],
                  "`dot -Tsvg` subprocess": d[8], "torch imported": "torch" in sys.modules,
                  "lark imported": "lark" in sys.modules}))
sys.stdout.flush()
os._exit(0)             # as cgviz.cli.run leaves (the atexit handlers aside: nothing here registers one)
"""

FLAGS = ("torch imported", "lark imported")


def stage_profile(n: int = 5) -> dict[str, float] | None:
    """Median of each stage over n fresh processes; None (and a note) if the helper fails."""
    runs = []
    for _ in range(n):
        spawn = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", STAGES, SAMPLE], cwd=ROOT, env=ENV,
                              capture_output=True, text=True)
        end = time.perf_counter()
        if proc.returncode != 0:
            print(f"note: stage breakdown skipped, its helper failed:\n{proc.stderr}", file=sys.stderr)
            return None
        r = json.loads(proc.stdout)
        first, last = r.pop("first"), r.pop("last")
        runs.append({"interpreter start-up (spawn to the first line: site, .pth files)": first - spawn,
                     **r, "interpreter exit (last line to the process's end; os._exit, as cgviz.cli.run)": end - last,
                     "whole helper process": end - spawn})
    out = {k: statistics.median(r[k] for r in runs) for k in runs[0] if k not in FLAGS}
    for k in FLAGS:
        out[k] = any(r[k] for r in runs)
    return out


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    dot = shutil.which("dot")
    dot_v = (subprocess.run([dot, "-V"], capture_output=True, text=True).stderr.strip()
             if dot else "dot not found")
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "torch": version("torch"),
        "torchviz": version("torchviz"),
        "graphviz": f"{dot_v}; Python package graphviz {version('graphviz')}",
        "os": f"{platform.system()} {platform.release()}",
        "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "hooks": install_hooks(),
    }


def install_hooks() -> str:
    """How this environment's site-packages start every process: an editable install's import hook
    (pip's default editable mode for setuptools) is imported by `site` in every Python process, a
    cost no user who installs the package pays; `make install` uses compat mode (a plain path)."""
    import site
    hooks = sorted({p.name for d in site.getsitepackages() for p in Path(d).glob("__editable__*.pth")
                    if "import " in p.read_text(errors="replace")})
    if hooks:
        return (f"**an editable install's import hook runs in every process here ({', '.join(hooks)})**: it "
                "adds to each command's start-up, which a normal install does not; `make install` installs "
                "cgviz in compat mode (a plain path in a .pth file)")
    return "no import hook in site-packages (cgviz is installed as a path or a wheel, as a user's install behaves)"


def ms(s: float) -> str:
    return f"{s * 1000:.0f}"


def verdict(ratio: float, cautious: float) -> str:
    """The target's line. Met only when the cautious reading clears the target too: one run's medians
    move by ±10% between runs on a shared machine, and a ratio that clears 10x on medians alone can
    fall below it in the next run."""
    head = f"**Target (cgviz ≥ {TARGET:g}× faster than torchviz for SVG):"
    medians, q = f"{ratio:.1f}× on medians", f"{cautious:.1f}× comparing torchviz's Q1 with cgviz's Q3"
    if ratio >= TARGET and cautious >= TARGET:
        return f"{head} met** — measured {medians} and {q}."
    if ratio >= TARGET:
        return (f"{head} NOT settled** — measured {medians} but {q}; both must clear it, since one run's "
                "medians move by about ±10% between runs here.")
    return f"{head} NOT met** — measured {medians} ({q})."


def layout_share(svg_minus_dot: float) -> str:
    """What the SVG run adds to the DOT run: the `dot` subprocess, unless the medians are within noise."""
    if svg_minus_dot > 0:
        return f"{ms(svg_minus_dot)} ms the difference SVG − DOT (the `dot` layout subprocess)"
    return f"the `dot` layout subprocess is lost in the noise (SVG − DOT = {ms(svg_minus_dot)} ms: see the stage table)"


def report(cmds: list[Cmd], runs: int, info: dict[str, str], load: tuple[float, float],
           imports: tuple[list[str], list[tuple[str, float]], float, int],
           stages: dict[str, float] | None, cache: str) -> str:
    torch_mods, costs, import_total, n_mods = imports
    by = {c.key: c for c in cmds}
    med = {c.key: statistics.median(c.times) for c in cmds}
    ratio_svg = med["tv_svg"] / med["cg_svg"]
    ratio_dot = med["tv_svg"] / med["cg_dot"]
    # A cautious reading of the same data: torchviz's lower quartile over cgviz's upper quartile.
    low_svg = quartiles(by["tv_svg"].times)[0] / quartiles(by["cg_svg"].times)[2]
    lines = [
        "## Render: cgviz vs torchviz, whole-process wall time",
        "",
        f"Measured {info['date']} on {info['nproc']} CPUs ({info['cpu']}), {info['os']}; "
        f"Python {info['python']}, torch {info['torch']}, torchviz {info['torchviz']}, "
        f"Graphviz {info['graphviz']}.",
        "",
        f"Each command is a fresh process started by `bench/bench_render.py`: one warm-up run each, "
        f"then {runs} rounds that run every command once, round-robin; {cache}. Times in "
        f"milliseconds; IQR = interquartile range (Q1–Q3). Load average before/after: "
        f"{load[0]:.2f} / {load[1]:.2f}. Start-up: {info['hooks']}.",
        "",
        "| command | median ms | IQR ms (Q1–Q3) | min ms |",
        "|---|---:|---:|---:|",
    ]
    for c in cmds:
        q1, _, q3 = quartiles(c.times)
        lines.append(f"| {c.label} | {ms(med[c.key])} | {ms(q3 - q1)} ({ms(q1)}–{ms(q3)}) "
                     f"| {ms(min(c.times))} |")
    lines += [
        "",
        "| ratio | value |",
        "|---|---:|",
        f"| torchviz median / cgviz SVG median | **{ratio_svg:.1f}×** |",
        f"| torchviz median / cgviz DOT median | {ratio_dot:.1f}× |",
        f"| torchviz Q1 / cgviz SVG Q3 (cautious) | {low_svg:.1f}× |",
        f"| torchviz fastest / cgviz SVG fastest (the least disturbed runs) | "
        f"{min(by['tv_svg'].times) / min(by['cg_svg'].times):.1f}× |",
        "",
        verdict(ratio_svg, low_svg),
        "",
        f"Of cgviz's SVG time, {ms(med['python'])} ms is the bare interpreter start (`python -c pass`) and "
        f"{layout_share(med['cg_svg'] - med['cg_dot'])}; torchviz's time is mostly `import torch` "
        f"({ms(med['torch'])} ms).",
        "",
        ("**cgviz does not import torch**: `cgviz render` run through its entry point with "
         f"`-X importtime` (PYTHONPROFILEIMPORTTIME=1) imported {n_mods} modules, none of them `torch`."
         if not torch_mods else
         f"**cgviz imported torch**: {len(torch_mods)} torch modules showed up under `-X importtime` "
         f"(first: {', '.join(torch_mods[:5])})."),
        f"Its imports took {import_total:.0f} ms in all (inflated by the profiling itself); the "
        "largest: " + ", ".join(f"{name} {t:.0f} ms" for name, t in costs[:4]) + ".",
        "",
    ]
    if stages is not None:
        lines += [
            "Where cgviz's time goes, stage by stage (median of 5 fresh processes running the stages "
            "with public functions; start-up and exit timed from outside, the rest inside):",
            "",
            "| stage | ms |",
            "|---|---:|",
        ]
        whole = stages["whole helper process"]
        parts = {k: v for k, v in stages.items() if k not in FLAGS and k != "whole helper process"}
        lines += [f"| {k} | {v * 1000:.1f} |" for k, v in parts.items()]
        lines += [f"| sum of the stages | {sum(parts.values()) * 1000:.0f} |",
                  f"| the helper's whole wall time (compare the sum; the medians of parts need not add up) "
                  f"| {whole * 1000:.0f} |",
                  f"| `cgviz render` SVG median, above (the helper skips the command line itself: click's "
                  f"parsing, option and path checks, writing the file) | {med['cg_svg'] * 1000:.0f} |",
                  "",
                  "The helper runs `dot` after the other stages. The command starts it as the command "
                  "begins (`cgviz.view.graphviz.started_early`), so that `dot` loads its plugins on the "
                  "second core while the program is parsed and evaluated, and part of that row overlaps "
                  "the rows above it.",
                  "",
                  f"`torch` in `sys.modules` at the end of these runs: {stages['torch imported']}; "
                  f"`lark`: {stages['lark imported']}.",
                  ""]
    lines += [
        "torchviz draws only the autograd graph's structure; cgviz also runs the forward and backward "
        "pass and labels every edge with its value and gradient.",
    ]
    return "\n".join(lines)


def write_md(path: Path, section: str, start: str = START, end: str = END) -> None:
    """Replace the section between the markers, or append it; the rest of the file stays as it is."""
    block = f"{start}\n{section}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else INTRO
    if start in text and end in text and text.index(start) < text.index(end):
        text = text[:text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=11, help="measured rounds (default 11)")
    ap.add_argument("--md", type=Path, default=ROOT / "BENCHMARKS.md",
                    help="Markdown file to update (default BENCHMARKS.md)")
    ap.add_argument("--no-md", action="store_true", help="only print the table")
    ap.add_argument("--inherit-env", action="store_true",
                    help="run the commands in this environment as it is, PYTHONDONTWRITEBYTECODE "
                         "included (default: cache bytecode in a temp folder, as a user's install does)")
    args = ap.parse_args()
    if args.runs < 2:
        ap.error("--runs must be at least 2 (quartiles need two values)")

    info = machine()
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="cgviz-bench-") as tmpdir:
        tmp = Path(tmpdir)
        global ENV
        ENV = checkout_env(dict(os.environ) if args.inherit_env else bytecode_env(tmp / "pycache"))
        cmds = commands(tmp)
        print(f"warm-up: one run of each of {len(cmds)} commands", file=sys.stderr)
        for c in cmds:
            run_once(c)
        for r in range(args.runs):
            k = r % len(cmds)
            for c in cmds[k:] + cmds[:k]:
                c.times.append(run_once(c))
            print(f"round {r + 1}/{args.runs} done", file=sys.stderr)
        imports = import_profile(tmp)
        stages = stage_profile()
    load1 = os.getloadavg()[0]

    if args.inherit_env:
        cache = ("environment inherited as is (PYTHONDONTWRITEBYTECODE="
                 f"{os.environ.get('PYTHONDONTWRITEBYTECODE', 'unset')})")
    else:
        cache = ("bytecode cached as in a normal install (PYTHONPYCACHEPREFIX in a temp folder, "
                 "filled by the warm-up; PYTHONDONTWRITEBYTECODE unset)")
    section = report(cmds, args.runs, info, (load0, load1), imports, stages, cache)
    print(section)
    if not args.no_md:
        write_md(args.md, section)
        print(f"\nwrote {args.md}", file=sys.stderr)


if __name__ == "__main__":
    main()
