"""Lines per second of `cgviz render prog.cg -o out.json` on long flat generated programs, before and
after a change, measured in one run (`make bench`).

    .venv/bin/python bench/bench_lines.py [--lines 200000] [--before REV] [--md PATH | --no-md]

The program: one statement a line, each reading the one before, scalars, as generated code (an
unrolled loop) is written: `v7 = v6 * w + 1`, `v8 = tanh(v7)`, …, `loss L = v… ^ 2`. Each measurement
is a fresh process that runs the stages with the library's functions (cgviz.route.expression: parse,
build and run, annotate, JSON export), timing each (wall and CPU); `--before REV` also runs the code of
git revision REV (main, say), extracted with `git archive` into a temporary folder, in alternation
with this checkout's, so both see the same machine load. The table goes into BENCHMARKS.md between the
`bench:lines` markers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- bench:lines:start -->", "<!-- bench:lines:end -->"
TARGET_S = 15.0          # issue 28: 200,000 lines to JSON in under 15 s
MAX_ELEMENTS = 400_000_000   # `--max-elements 4e8`: room for the 200,000-line program's ~400,000 nodes


def program(n: int) -> str:
    lines = ["input x = 1", "param w = 0.5"]
    prev = "x"
    for i in range(n - 3):
        lines.append(f"v{i} = {prev} * w + 1" if i % 2 == 0 else f"v{i} = tanh({prev})")
        prev = f"v{i}"
    lines.append(f"loss L = {prev} ^ 2")
    return "\n".join(lines) + "\n"


def one(path: str) -> dict:
    """Inside a fresh process: every stage of `cgviz render FILE -o out.json`, timed."""
    from cgviz.route import expression as pipeline
    from cgviz.lang.parser import parse

    text = Path(path).read_text(encoding="utf-8")
    out: dict = {"lines": text.count("\n")}
    t0 = w0 = None

    def tick(name):
        nonlocal t0, w0
        c, w = time.process_time(), time.perf_counter()
        if t0 is not None:
            out[name] = {"cpu": c - t0, "wall": w - w0}
        t0, w0 = c, w

    parse("x = 1\n")               # the parser's tables loaded, as at a real start-up
    tick(None)
    parse(text, "flat.cg")
    tick("parse")
    # parses again: the command's own path; a program this long needs --max-elements (a node each
    # is counted against the element budget: 512 elements a node)
    result = pipeline.evaluate(text, "flat.cg", max_elements=MAX_ELEMENTS)
    tick("evaluate")
    pipeline.annotate(result)
    tick("annotate")
    data = pipeline.output_bytes(result, "json")
    tick("json")
    out["nodes"] = len(result.graph)
    out["bytes"] = len(data)
    return out


def measure(code_root: Path, path: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(code_root))
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--one", str(path)],
                          capture_output=True, text=True, env=env, cwd=str(code_root), check=False)
    if proc.returncode != 0:
        raise SystemExit(f"the measurement failed in {code_root}:\n{proc.stderr}")
    r = json.loads(proc.stdout)
    # `render -o out.json` = evaluate (parse included) + annotate + json; the separate parse is for the table
    r["total"] = {k: r["evaluate"][k] + r["annotate"][k] + r["json"][k] for k in ("cpu", "wall")}
    return r


def checkout(rev: str, into: Path) -> Path:
    """The `cgviz` package of git revision REV, extracted into a folder."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "cgviz"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def table(rows: list[tuple[str, dict]], n: int, rounds: int, info: str, load) -> str:
    lines = ["## Long flat programs: lines per second, parse to JSON", "",
             f"Measured {info}. Load average before/after: {load[0]:.2f} / {load[1]:.2f} (the machine is shared: "
             "wall time includes waiting for a CPU, CPU time does not).", "",
             f"A generated program of {n:,} lines (`bench/bench_lines.py`: one scalar statement a line, each "
             "reading the one before, `v7 = v6 * w + 1`, `v8 = tanh(v7)`), run through the stages of "
             "`cgviz render flat.cg -o flat.json --max-elements 4e8` in a fresh process; best of "
             f"{rounds} rounds, the revisions measured in alternation. Seconds; lines/s of the whole.", "",
             "| code | parse s (CPU) | evaluate s (CPU, parse included) | annotate s | JSON s | total s (CPU) | "
             "total s (wall) | lines/s (CPU) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in rows:
        c = r["total"]["cpu"]
        lines.append(f"| {name} | {r['parse']['cpu']:.2f} | {r['evaluate']['cpu']:.2f} | {r['annotate']['cpu']:.2f} | "
                     f"{r['json']['cpu']:.2f} | **{c:.2f}** | {r['total']['wall']:.2f} | {n / c:,.0f} |")
    if len(rows) == 2:
        lines += ["", f"Speed-up (CPU, whole): **{rows[0][1]['total']['cpu'] / rows[1][1]['total']['cpu']:.1f}×**."]
    after = rows[-1][1]["total"]
    ok = after["cpu"] < TARGET_S and after["wall"] < TARGET_S
    lines += ["", f"Target ({n:,} lines to JSON in under {TARGET_S:.0f} s): "
                  f"**{'met' if ok else 'NOT met'}** (CPU {after['cpu']:.1f} s, wall {after['wall']:.1f} s)."]
    return "\n".join(lines)


def write_md(path: Path, text: str) -> None:
    doc = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    block = f"{START}\n{text}\n{END}"
    if START in doc and END in doc:
        doc = doc[:doc.index(START)] + block + doc[doc.index(END) + len(END):]
    else:
        doc = doc.rstrip("\n") + "\n\n" + block + "\n"
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(doc, encoding="utf-8")
    os.replace(tmp, path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--before", metavar="REV", help="also measure git revision REV (e.g. main)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--md", default=str(ROOT / "BENCHMARKS.md"))
    ap.add_argument("--no-md", action="store_true")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(one(a.one)))
        return 0
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "flat.cg"
        path.write_text(program(a.lines), encoding="utf-8")
        codes = []
        if a.before:
            codes.append((f"`{a.before}` (before)", checkout(a.before, Path(tmp))))
        codes.append(("this checkout (after)", ROOT))
        best: dict[str, dict] = {}
        for _ in range(a.rounds):
            for name, root in codes:
                r = measure(root, path)
                print(f"{name}: total {r['total']['cpu']:.2f} s CPU, {r['total']['wall']:.2f} s wall "
                      f"(parse {r['parse']['cpu']:.2f}, evaluate {r['evaluate']['cpu']:.2f}, "
                      f"annotate {r['annotate']['cpu']:.2f}, json {r['json']['cpu']:.2f})", file=sys.stderr)
                if name not in best or r["total"]["cpu"] < best[name]["total"]["cpu"]:
                    best[name] = r
    rows = [(name, best[name]) for name, _ in codes]
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    info = (f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} CPUs ({cpu}), "
            f"Python {platform.python_version()}")
    text = table(rows, a.lines, a.rounds, info, (load0[0], os.getloadavg()[0]))
    print(text)
    if not a.no_md:
        write_md(Path(a.md), text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
