"""Hostile and extreme inputs: deep and huge graphs, PNG size limits, dot failures, Ctrl-C,
injection through labels, resource limits, and the exit status of every command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from cgviz.core.errors import CgvizError, SourceError
from cgviz.route.expression import evaluate
from conftest import named_layers_model

ROOT = Path(__file__).resolve().parent.parent
PIZZA = ROOT / "sample_graphs" / "pizza.cg"
CGVIZ = [sys.executable, "-m", "cgviz"]
SVG = "{http://www.w3.org/2000/svg}"


def chain(n: int) -> str:
    """x → ×1 → ×1 … n times: 2n + 1 nodes, each statement one op and one literal."""
    return "\n".join(["input x = 1"] + [f"h{i} = {'h' + str(i - 1) if i else 'x'} * 1" for i in range(n)]) + "\n"


def svg_texts(svg: bytes) -> list[str]:
    return [t.text or "" for t in ET.fromstring(svg).iter(SVG + "text")]


# ---------------------------------------------------------------- deep and huge graphs

def test_a_thousand_nested_parentheses_render_to_dot_and_png(cli, here):
    (here / "nest.cg").write_text("input x = 2\nloss L = " + "(" * 1000 + "x * x" + ")" * 1000 + "\n")
    r = cli("render", "nest.cg", "-o", "nest.png")
    assert r.exit_code == 0, r.stderr
    assert (here / "nest.png").read_bytes()[:4] == b"\x89PNG" and "loss L = 4" in r.stderr


def test_a_thousand_nested_calls_and_a_ten_thousand_term_sum_work(cli, here):
    (here / "calls.cg").write_text("input x = 2\nloss L = " + "relu(" * 1000 + "x" + ")" * 1000 + "\n")
    r = cli("render", "calls.cg", "--format", "json", "-o", "-")
    assert r.exit_code == 0 and json.loads(r.stdout)["nodes"][1]["grad"] == 1.0
    (here / "sum.cg").write_text("input x = 2\nloss L = " + " + ".join(["x"] * 10_000) + "\n")
    r = cli("render", "sum.cg", "--format", "json", "-o", "-")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["nodes"][0]["grad"] == 10_000.0 and len(doc["nodes"]) == 10_000


def test_a_list_nested_too_deep_is_a_clean_error():
    with pytest.raises(SourceError, match="too many dimensions"):
        evaluate("const c = " + "[" * 1000 + "1" + "]" * 1000 + "\nloss L = sum(c)\n", "t.cg")


def test_twenty_thousand_nodes_in_dot_and_json(cli, here):
    # correctness only: how long it takes is measured by `make bench` (bench_parse), not by a timed test
    (here / "big.cg").write_text(chain(10_000))          # 20,001 nodes
    for fmt in ("dot", "json"):
        r = cli("render", "big.cg", "--format", fmt)
        assert r.exit_code == 0 and "20001 nodes" in r.stderr, r.stderr
    assert len(json.loads((here / "big.json").read_text())["nodes"]) == 20_001


def test_a_png_too_big_for_cairo_is_refused_with_advice(cli, here):
    (here / "long.cg").write_text(chain(300))     # 601 nodes side by side: ~80,000 px wide
    (here / "long.png").write_bytes(b"old")
    r = cli("render", "long.cg", "-o", "long.png", "--rankdir", "LR")     # by default a chain goes TB
    # the pixel budget (cgviz.plan.budget) refuses it: even at the lowest readable dpi it is too big
    assert r.exit_code == 1 and "too big for a readable PNG" in r.stderr and "16,000 px" in r.stderr
    assert "--format svg" in r.stderr and "--rankdir TB" in r.stderr and "--dpi" in r.stderr
    assert (here / "long.png").read_bytes() == b"old" and sorted(os.listdir(here)) == ["long.cg", "long.png"]
    # at a resolution asked for, Cairo's own limit still refuses what it would shrink unreadably
    r = cli("render", "long.cg", "-o", "long.png", "--dpi", "96", "--rankdir", "LR")
    assert r.exit_code == 1 and "too big for a PNG" in r.stderr and "32,767" in r.stderr
    assert (here / "long.png").read_bytes() == b"old"
    r = cli("render", "long.cg", "-o", "long.svg")
    assert r.exit_code == 0 and (here / "long.svg").stat().st_size > 10_000


def test_a_slightly_too_big_png_is_kept(monkeypatch):
    """Cairo's scaling above MIN_PNG_SCALE still leaves readable labels: no error."""
    from cgviz.view import graphviz as render
    render._check_cairo_scale(b"Warning: graph is too large for cairo-renderer bitmaps. Scaling by 0.8 to fit\n",
                              10, "")
    with pytest.raises(CgvizError, match="shrink it to 10%"):
        render._check_cairo_scale(b"dot: graph is too large for cairo-renderer bitmaps. Scaling by 0.1 to fit",
                                  10, "")


# ---------------------------------------------------------------- dot failures and Ctrl-C

def fake_dot(folder: Path, body: str) -> dict:
    folder.mkdir(exist_ok=True)
    exe = folder / "dot"
    exe.write_text("#!/bin/sh\n" + body + "\n")
    exe.chmod(0o755)
    return {**os.environ, "PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


def run_cgviz(args, cwd, env=None, **kw):
    return subprocess.run(CGVIZ + [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, **kw)


def test_a_failing_dot_leaves_the_old_output_and_nothing_else(tmp_path):
    env = fake_dot(tmp_path / "bin", "echo 'Error: syntax error in line 1' >&2; exit 1")
    work = tmp_path / "w"
    work.mkdir()
    (work / "out.png").write_bytes(b"old picture")
    p = run_cgviz(["render", PIZZA, "-o", "out.png"], work, env)
    assert p.returncode == 1 and "failed (exit status 1)" in p.stderr and "syntax error" in p.stderr
    assert "Traceback" not in p.stderr
    assert (work / "out.png").read_bytes() == b"old picture" and os.listdir(work) == ["out.png"]


def test_a_hanging_dot_is_stopped_by_the_timeout_and_killed(tmp_path):
    marker = tmp_path / "dot-still-running"
    env = fake_dot(tmp_path / "bin", f"sleep 30; touch {marker}")
    work = tmp_path / "w"
    work.mkdir()
    t = time.perf_counter()
    p = run_cgviz(["render", PIZZA, "-o", "out.svg", "--timeout", "1"], work, env, timeout=60)
    assert time.perf_counter() - t < 20
    assert p.returncode == 1 and "within 1 s" in p.stderr and "--format dot" in p.stderr
    assert os.listdir(work) == []


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(c) for c in text.split()]


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs /proc to see dot start")
@pytest.mark.parametrize("sig, code, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated"),
                                             (signal.SIGHUP, 129, "terminated")],
                         ids=["ctrl-c", "sigterm", "sighup"])
def test_an_interrupted_layout_leaves_no_output_and_no_temporary_file(tmp_path, sig, code, word):
    """Ctrl-C, or SIGTERM from a CI runner's timeout: dot is stopped, the old output stays, no temp file."""
    env = fake_dot(tmp_path / "bin", "sleep 30")       # a layout that is still running when the signal comes
    work = tmp_path / "w"
    work.mkdir()
    (work / "out.svg").write_bytes(b"old picture")
    proc = subprocess.Popen(CGVIZ + ["render", str(PIZZA), "-o", "out.svg"], cwd=work, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while not _children(proc.pid) and time.time() < deadline:
        time.sleep(0.05)
    dots = _children(proc.pid)
    assert dots, "dot never started"
    # The child shows up in /proc as soon as it is forked, before Popen has returned: a signal in that
    # window interrupts Popen itself. Give it time to finish starting, as a user's Ctrl-C would.
    time.sleep(0.5)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == code and word in err and "Traceback" not in err
    assert (work / "out.svg").read_bytes() == b"old picture" and os.listdir(work) == ["out.svg"]
    time.sleep(0.2)
    for d in dots:      # the layout did not outlive cgviz
        assert not Path(f"/proc/{d}").exists() or "zombie" in Path(f"/proc/{d}/status").read_text()


def test_ctrl_c_during_a_real_layout(tmp_path):
    """The same with Graphviz itself, on a graph it needs seconds for."""
    import shutil
    if shutil.which("dot") is None:
        pytest.skip("needs Graphviz: `make test` installs it")
    (tmp_path / "big.cg").write_text(chain(3000))
    proc = subprocess.Popen(CGVIZ + ["render", "big.cg", "-o", "out.svg"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not _children(proc.pid) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert sorted(os.listdir(tmp_path)) == ["big.cg"]


def test_an_output_under_a_regular_file_is_a_clear_message(cli, here):
    (here / "file.txt").write_text("x")
    for args in (["render", PIZZA, "--format", "dot"], ["render", PIZZA]):
        r = cli(*args, "-o", "file.txt/out." + ("dot" if "dot" in args else "png"))
        assert r.exit_code == 1 and "cannot write file.txt/out" in r.stderr and "Traceback" not in r.stderr
    assert os.listdir(here) == ["file.txt"]


# ---------------------------------------------------------------- labels cannot break the DOT

HOSTILE = ['a"b<c>{d}|e\\f', "é∂😀", "<b>x</b>", 'x" color="red', "new\nline", "&amp; ]]>"]


@pytest.mark.parametrize("name", HOSTILE + ["\\N \\G \\L", "}; x -> y; {"])
def test_a_hostile_file_name_shows_as_text_and_injects_nothing(tmp_path, name):
    import shutil
    if shutil.which("dot") is None:
        pytest.skip("needs Graphviz: `make test` installs it")
    from cgviz.view.expression_scene import to_dot

    def svg_of(file_name):
        r = evaluate(PIZZA.read_text(), file_name)
        p = subprocess.run(["dot", "-Tsvg"], input=to_dot(r.graph, r.run).encode(), capture_output=True,
                           check=True)
        return ET.fromstring(p.stdout)

    def shape(root):     # what the name must not change: the nodes, edges and their colours
        return sorted((g.get("class") or "", tuple(sorted(e.get("stroke") for e in g.iter() if e.get("stroke")))) for g in root.iter(SVG + "g"))

    root, plain = svg_of(name + ".cg"), svg_of("plain.cg")
    texts = "\n".join(t.text or "" for t in root.iter(SVG + "text"))
    for part in name.split("\n"):
        assert part in texts
    assert shape(root) == shape(plain)


def test_hostile_module_names_show_as_text(cli, here):
    import torch  # noqa: F401
    import shutil
    if shutil.which("dot") is None:
        pytest.skip("needs Graphviz")
    src = here / "names.py"
    src.write_text(named_layers_model(HOSTILE))
    for view in ("ops", "autograd"):
        r = cli("torch", src, "--no-fold", "--view", view, "-o", "m.svg")
        assert r.exit_code == 0, r.stderr
        svg = (here / "m.svg").read_bytes()
        texts = "\n".join(svg_texts(svg))
        for name in HOSTILE:
            for part in name.split("\n"):          # a newline in a name breaks the label's line
                assert part in texts, (view, part)
        assert "red" not in {e.get("fill") for e in ET.fromstring(svg).iter()} - {None}
        r = cli("torch", src, "--no-fold", "--view", view, "--format", "json", "-o", "-")
        assert r.exit_code == 0 and json.loads(r.stdout)["nodes"]


# ---------------------------------------------------------------- resource limits

def test_a_huge_declaration_by_arithmetic_is_refused_before_allocation():
    with pytest.raises(SourceError, match="result of mul: 100000×100000") as e:
        evaluate("param w = ones(100000, 1) * ones(1, 100000)\nloss L = sum(w)\n", "t.cg")
    assert "max_elements=" in str(e.value)


def test_model_input_shape_limit_and_how_to_raise_it(cli, here):
    import torch  # noqa: F401
    (here / "lin.py").write_text("import torch\nmodel = torch.nn.Linear(10, 2)\n")
    r = cli("torch", "lin.py", "--input-shape", "100000,100000", "--format", "json", "-o", "-")
    assert r.exit_code == 2 and "10,000,000,000 elements" in r.stderr and "--max-elements" in r.stderr
    r = cli("torch", "lin.py", "--input-shape", "300,10", "--max-elements", "1000", "--format", "dot", "-o", "-")
    assert r.exit_code == 2 and "more than the 1,000 allowed" in r.stderr
    r = cli("torch", "lin.py", "--input-shape", "300,10", "--max-elements", "3000", "--format", "json", "-o", "-")
    assert r.exit_code == 0 and json.loads(r.stdout)["model"]["inputs"]
    # --meta allocates nothing, so any shape is fine
    r = cli("torch", "lin.py", "--input-shape", "100000,10", "--meta", "--max-elements", "10", "--format", "dot",
            "-o", "-")
    assert r.exit_code == 0, r.stderr


# ---------------------------------------------------------------- found by the fuzzer

@pytest.mark.parametrize("program, message", [
    # 1e400 is refused at the literal now (issue 16); the initializers' own checks stay for hi < lo
    ("param w = rand(2, lo=-1e400)\nloss L = sum(w)\n", "the number 1e400 is too large"),
    ("param w = rand(2, lo=1, hi=0)\nloss L = sum(w)\n", "finite lo ≤ hi"),
    ("param w = arange(0, 1e400)\nloss L = sum(w)\n", "the number 1e400 is too large"),
    ("param w = arange(0, 1e308, 1e-308)\nloss L = sum(w)\n", "must be finite"),
    ("param w = randint(0, 100000000000000000000000, shape=[2])\nloss L = sum(w)\n", "out of bounds"),
    ("input x = [1, 2]\nloss L = sum(leaky_relu(x, slope=[0, 1]))\n", "slope must be a number"),
])
def test_initializer_and_attribute_mistakes_are_clean_errors(program, message):
    with pytest.raises(SourceError, match=message) as e:
        evaluate(program, "t.cg")
    assert e.value.line is not None


def test_softmax_over_an_empty_axis_is_empty_as_in_torch():
    r = evaluate("input x = zeros(0, 3)\nloss L = sum(softmax(x, axis=0)) + sum(log_softmax(x))\n", "t.cg")
    assert float(r.run.values["L"]) == 0.0


def test_linear_with_a_bias_that_broadcasts_the_output_matches_torch():
    import torch
    from cgviz.check.torch_ops import torch_run
    r = evaluate("input x = [[1, 2]]\nparam W = [[3], [4]]\nparam b = [[1, 10]]\n"
                 "loss L = sum(linear(x, W, b) * [[1, 2]])\n", "t.cg")
    values, grads = torch_run(r.graph)
    for k in ("x", "W", "b"):
        np.testing.assert_allclose(r.run.grads[k], grads[k])
    assert torch is not None


def test_numpy_warnings_never_reach_stderr(cli, here):
    (here / "w.cg").write_text("param w = zeros(0)\nloss L = mean(w)\n")
    r = cli("render", "w.cg", "--format", "dot")
    assert r.exit_code == 0 and "RuntimeWarning" not in r.stderr and "NaN" in r.stderr


# ---------------------------------------------------------------- exit statuses of every command

def _torch_cases(d: Path):
    (d / "lin.py").write_text("import torch\nmodel = torch.nn.Linear(2, 1)\nexample_inputs = (torch.ones(3, 2),)\n")
    return d / "lin.py"


# command → (arguments that work, arguments with a user/data mistake, arguments with a usage mistake);
# None where a command cannot fail that way. Every command of `cgviz` must be listed here.
def exit_cases(d: Path) -> dict:
    (d / "bad.cg").write_text("loss L = rleu(2)\n")
    model = _torch_cases(d)
    return {
        "render": (["render", PIZZA, "--format", "dot", "-o", d / "p.dot"], ["render", d / "bad.cg", "--format", "dot"],
                   ["render", PIZZA, "--nope"]),
        "explain": (["explain", PIZZA], ["explain", d / "bad.cg"], ["explain", PIZZA, "--format", "nope"]),
        "train": (["train", PIZZA, "--lr", "1e-6", "--steps", "2", "-q", "-o", d / "t.dot", "--curve", d / "c.png"],
                  ["train", d / "bad.cg", "--lr", "0.1"], ["train", PIZZA]),
        "ops": (["ops"], None, ["ops", "--format", "nope"]),
        "torch": (["torch", model, "--format", "dot", "-o", d / "m.dot"], ["torch", d / "missing.pt"],
                  ["torch", model, "--input-shape", "a,b"]),
        "check": (["check", PIZZA], ["check", d / "bad.cg"], ["check", PIZZA, "--nope"]),
        "grads": (["grads", PIZZA, "--no-plots"], ["grads", d / "missing.pt"], ["grads", PIZZA, "--nope"]),
        "snapshot": (["snapshot", PIZZA, "--golden", ROOT / "tests" / "snapshots", "--out", d / "snap"],
                     ["snapshot", d / "bad.cg", "--golden", d / "g", "--out", d / "snap2"],
                     ["snapshot", "--golden", d / "g"]),
        # diff's 1 is "the two differ" (as diff(1) has it), tested in tests/test_diff_programs.py;
        # any error, a missing file included, is 2
        "diff": (["diff", PIZZA, PIZZA], None, ["diff", PIZZA, d / "missing.cg"]),
    }


def test_every_command_has_exit_cases(tmp_path):
    from cgviz.cli import main
    missing = set(main.commands) - set(exit_cases(tmp_path))
    assert not missing, f"add ok/user-error/usage-error invocations for: {sorted(missing)}"


@pytest.mark.parametrize("kind, code", [(0, 0), (1, 1), (2, 2)], ids=["ok", "user-error", "usage-error"])
def test_exit_status_of_every_command(cli, here, kind, code):
    from cgviz.cli import main
    cases = exit_cases(here)
    for name in sorted(main.commands):
        args = cases[name][kind]
        if args is None:
            continue
        r = cli(*args)
        assert r.exit_code == code, (name, args, r.exit_code, r.stderr[-500:])
        assert "Traceback" not in r.stderr
        if code:
            assert r.stderr.strip(), (name, "a failure must say why")


def test_a_ctrl_c_python_wrapped_while_a_class_was_made_is_still_an_interruption(cli, monkeypatch, tmp_path):
    """A Ctrl-C landing while a lazily imported module creates a dataclass reaches cgviz as a
    RuntimeError caused by it ('Error calling __set_name__ …'): exit 130 and the interruption's
    message, not an internal error (seen in CI, test_ctrl_c_during_a_real_layout)."""
    import cgviz.api.drawer as drawer

    def interrupted(*args, **kwargs):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as e:
            raise RuntimeError("Error calling __set_name__ on 'Field' instance 'requires_grad' in 'Run'") from e
    monkeypatch.setattr(drawer, "draw", interrupted)
    r = cli("render", PIZZA, "-o", tmp_path / "out.svg")
    assert r.exit_code == 130 and "interrupted; no output was written" in r.stderr
    assert "internal error" not in r.stderr and not (tmp_path / "out.svg").exists()
