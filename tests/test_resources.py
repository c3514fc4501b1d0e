"""Bounded resources (issue 29): Graphviz runs under a memory limit, the expression engine refuses a
program whose tensors would not fit before allocating them, `snapshot -j` workers die with their
leader, and standard output that cannot be written, or a file name that is not UTF-8, is a message.

Every reproduction here is scaled down (a lower limit, a smaller program) so that the limit's path
runs in seconds and never allocates more than a few hundred MB."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cgviz.core.errors import CgvizError, SourceError
from cgviz.route.expression import evaluate
from cgviz.view import graphviz
from test_hardening import CGVIZ, PIZZA, ROOT, exit_cases, fake_dot, run_cgviz

needs_dot = pytest.mark.skipif(not os.environ.get("CI") and subprocess.run(["which", "dot"], capture_output=True)
                               .returncode != 0, reason="Graphviz is not installed")
linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS via prlimit is Linux's")


# ---------------------------------------------------------------- Graphviz's memory (item 14)

@pytest.mark.parametrize("text, expected", [("", graphviz.DEFAULT_DOT_MEMORY), ("8G", 8 * 1024**3),
                                            ("500M", 500 * 1024**2), ("1.5GB", int(1.5 * 1024**3)),
                                            ("0", None), ("none", None)])
def test_the_memory_limit_is_read_from_the_environment(monkeypatch, text, expected):
    monkeypatch.setenv(graphviz.DOT_MEMORY_ENV, text)
    got = graphviz.dot_memory()
    if text == "":
        assert got is not None and got <= expected      # or half the machine's memory, when that is less
    else:
        assert got == expected


@pytest.mark.parametrize("text", ["lots", "-1G", "12 parsecs", "100K"])
def test_a_bad_memory_limit_is_a_message(monkeypatch, text):
    monkeypatch.setenv(graphviz.DOT_MEMORY_ENV, text)
    with pytest.raises(CgvizError, match=f"{graphviz.DOT_MEMORY_ENV}=.*8G or 500M"):
        graphviz.run_dot("digraph { a }", "svg")


@linux
def test_dot_runs_under_the_limit(tmp_path, monkeypatch):
    """The limit reaches the process: a stand-in `dot` reports its own address-space limit."""
    # the limit is set before the graph is sent, so it is in place once the input has been read
    env = fake_dot(tmp_path / "bin", 'cat > /dev/null; grep "Max address space" /proc/$$/limits >&2; exit 1')
    monkeypatch.setenv("PATH", env["PATH"])
    monkeypatch.setenv(graphviz.DOT_MEMORY_ENV, "300M")
    with pytest.raises(CgvizError) as e:
        graphviz.run_dot("digraph { a }", "svg")
    assert re.search(rf"Max address space\s+{300 * 1024**2}\s+{300 * 1024**2}", str(e.value))


@linux
def test_a_lower_hard_limit_of_cgviz_s_own_is_the_bound(tmp_path):
    """Under `ulimit -v` (a hard limit dot inherits and cannot pass), that is the limit set and named."""
    import resource
    hard = 1536 * 1024**2
    env = fake_dot(tmp_path / "bin", 'cat > /dev/null; grep "Max address space" /proc/$$/limits >&2; exit 1')
    p = subprocess.run(CGVIZ + ["render", str(PIZZA), "--format", "svg", "-o", "p.svg"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120,
                       preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (hard, hard)))
    assert p.returncode == 1 and re.search(rf"Max address space\s+{hard}\s+{hard}", p.stderr), p.stderr
    assert graphviz.size_text(hard) == "1.5G"


@linux
@needs_dot
def test_graphviz_out_of_memory_is_a_message_that_names_the_limit(monkeypatch):
    """Cairo's surface for a 10,000 px square PNG (400 MB) does not fit in 300 MB: `dot` says "out of
    memory" and crashes; cgviz says which limit and how to change it."""
    monkeypatch.setenv(graphviz.DOT_MEMORY_ENV, "300M")
    with pytest.raises(graphviz.LayoutMemory) as e:
        graphviz.run_dot('digraph {\n  "a" [width=50 height=50 fixedsize=true]\n}\n', "png", dpi=200)
    text = str(e.value)
    assert "ran out of memory" in text and "at most 300M" in text and f"{graphviz.DOT_MEMORY_ENV}=16G" in text
    assert "1 nodes, 0 edges" in text          # what the layout holds, read from the DOT


@linux
@needs_dot
def test_a_wide_fan_out_is_stopped_at_the_limit(tmp_path):
    """fan3k.cg (issue 29) drove `dot` to 18.7 GB: each of its terms' edges spans the whole chain of
    sums. A 300-term version needs about 0.8 GB; under a 350 MB limit it fails in seconds, exit 1."""
    n = 300
    src = tmp_path / "fan.cg"
    src.write_text("input x = 1.5\n" + "".join(f"a{i} = x * {i}\n" for i in range(n))
                   + "loss L = " + " + ".join(f"a{i}" for i in range(n)) + "\n")
    env = {**os.environ, graphviz.DOT_MEMORY_ENV: "350M"}
    p = run_cgviz(["render", src, "--format", "svg", "-o", tmp_path / "fan.svg"], tmp_path, env, timeout=300)
    assert p.returncode == 1, p.stderr
    assert "ran out of memory" in p.stderr and "at most 350M" in p.stderr and "spanning 178,204 ranks" in p.stderr
    assert "Traceback" not in p.stderr and not (tmp_path / "fan.svg").exists()


@linux
@needs_dot
def test_a_model_picture_steps_down_when_graphviz_runs_out_of_memory(tmp_path, monkeypatch):
    """The usual step-down: a level Graphviz cannot lay out within its memory gives way to a coarser
    one, with a note that says why. A stand-in `dot` runs out of memory on any picture that still
    shows the convolutions one by one."""
    import torch  # noqa: F841
    real = subprocess.run(["which", "dot"], capture_output=True, text=True).stdout.strip()
    env = fake_dot(tmp_path / "bin", f'input=$(cat)\ncase "$input" in *"/conv2d"*) echo "out of memory" >&2; '
                                     f'kill -SEGV $$;; esac\nprintf "%s" "$input" | exec {real} "$@"')
    monkeypatch.setenv("PATH", env["PATH"])
    import cgviz
    d = cgviz.draw(str(ROOT / "sample_graphs" / "models" / "res_cnn.py"), format="svg")
    assert b"<svg" in d.output("svg")
    assert any("ran out of the memory cgviz lets it use" in n and graphviz.DOT_MEMORY_ENV in n
               and "so cgviz drew modules down to depth" in n for n in d.notes)


# ---------------------------------------------------------------- the expression engine's memory (item 15)

def test_a_program_whose_tensors_would_not_fit_is_refused_with_its_total():
    """The 246-byte program of issue 29 (a 6000×6000 input through twelve ops, 10 GB with its
    gradients), scaled down 3,600 times with the limit: every tensor fits the limit on its own, all
    of them together do not, and the message gives the total and points where it is passed."""
    text = "input x = ones(100, 100)\n" + "".join(f"h{i} = {'x' if i == 0 else f'h{i - 1}'} * 2\n"
                                                 for i in range(12)) + "loss L = sum(h11)\n"
    with pytest.raises(SourceError) as e:
        evaluate(text, "big.cg", max_elements=100_000)
    msg = str(e.value)
    # 12 ops of 10,000 elements, each with its gradient and its edge's, x's value and gradient, the loss
    assert "values and gradients would hold 390,002 elements in all" in msg
    assert "limit of 100,000 elements for all of them together" in msg and "max_elements" in msg
    assert (e.value.line, e.value.col) == (4, 9)        # h2 = h1 * 2: where the running total passes
    assert "   4 | h2 = h1 * 2\n     |         ^" in msg
    assert evaluate(text, "big.cg", max_elements=400_000).run.values["L"] == 100 * 100 * 2**12
    with pytest.raises(SourceError, match="program's values would hold 130,001"):      # no gradients
        evaluate(text, "big.cg", max_elements=100_000, grad=False)


def test_declarations_count_toward_the_total_as_they_are_made():
    text = "".join(f"param w{i} = randn(100, 100)\n" for i in range(12)) + "loss L = sum(w0)\n"
    with pytest.raises(SourceError) as e:
        evaluate(text, "decl.cg", max_elements=50_000)
    assert "declarations hold 60,000 elements" in str(e.value) and e.value.line == 6


def test_a_program_with_too_many_statements_is_refused_before_parsing(monkeypatch):
    """The million-line file of issue 29 ran for 9 minutes before a MemoryError. A program may have
    max_elements // NODE_COST nodes (at least MIN_NODES), and statements past that are refused before
    the parser sees them."""
    from cgviz.lang import inits
    from cgviz.route import expression as pipeline
    calls = []
    monkeypatch.setattr(pipeline, "parse", lambda *a: calls.append(a))
    n = inits.MIN_NODES + 50
    text = "input x = ones(4)\n" + "".join(f"a{i} = x * {i}\n" for i in range(n)) + "loss L = sum(a0)\n"
    with pytest.raises(SourceError) as e:
        evaluate(text, "long.cg")
    assert calls == []
    assert f"{n + 2:,} statements" in str(e.value) and e.value.line == inits.MIN_NODES + 1
    assert "max_elements" in str(e.value)
    pipeline.check_length(text, "long.cg", inits.NODE_COST * (inits.MIN_NODES + 100))  # a larger limit has room


def test_a_small_element_limit_limits_tensors_not_the_length_of_a_program():
    text = "input x = 1\n" + "".join(f"h{i} = {'x' if i == 0 else f'h{i - 1}'} * 2\n" for i in range(300)) \
        + "loss L = h299\n"
    assert evaluate(text, "t.cg", max_elements=2000).run.values["L"] == 2.0**300


def test_statement_lines_read_statements_as_the_parser_does():
    from cgviz.lang.parser import parse, statement_lines
    text = "# a comment\ninput x = [1,\n  2]\n\nparam w = \\\n  0.5   # trailing\ny = x * w\nloss L = sum(y)\n"
    assert list(statement_lines(text)) == [2, 5, 7, 8] and len(parse(text, "t.cg").statements) == 4
    for f in sorted((ROOT / "sample_graphs").glob("*.cg")):
        t = f.read_text()
        # a loop is one parsed statement; each statement of its body is one that runs (a node or more)
        want = sum(len(s.body) if s.kind == "for" else 1 for s in parse(t, f.name).statements)
        assert len(list(statement_lines(t))) == want, f.name
    loop = "h = 0\nfor t in 1..3:   # three steps\n    h = h + 1\n    g = h * 2\nloss L = g\n"
    assert list(statement_lines(loop)) == [1, 3, 4, 5]


def test_the_total_budget_on_the_command_line(cli, here):
    (here / "big.cg").write_text("input x = ones(300, 300)\na = x * 2\nb = a * 2\nloss L = sum(b)\n")
    r = cli("render", "big.cg", "--format", "json", "-o", "-", "--max-elements", "500000")
    assert r.exit_code == 1 and "810,002 elements in all" in r.stderr and "--max-elements" in r.stderr
    assert "big.cg:3:7:" in r.stderr and "   3 | b = a * 2\n     |       ^" in r.stderr
    assert cli("render", "big.cg", "--format", "json", "-o", "-", "--max-elements", "820000").exit_code == 0


# ---------------------------------------------------------------- snapshot -j workers (item 18)

def _descendants(pid: int) -> set[int]:
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        try:
            kids = [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except OSError:
            continue
        out.update(kids)
        todo.extend(kids)
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] not in "ZX"
    except (OSError, IndexError):
        return False


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs /proc to see the workers")
@pytest.mark.parametrize("sig, code", [(signal.SIGHUP, None), (signal.SIGKILL, None), (signal.SIGTERM, 143)],
                         ids=["sighup", "sigkill", "sigterm"])
def test_workers_die_with_their_leader(tmp_path, sig, code):
    """SIGHUP to the leader alone left its 3 workers alive for 21 minutes (issue 29). Each worker and
    the `dot` it runs must be gone within seconds, whatever signal ends the leader."""
    env = fake_dot(tmp_path / "bin", "exec sleep 300")       # a layout still running when the signal comes
    entries = []
    for i in range(4):
        (tmp_path / f"p{i}.cg").write_text(PIZZA.read_text())
        entries.append(tmp_path / f"p{i}.cg")
    leader = subprocess.Popen(CGVIZ + ["snapshot", *map(str, entries), "--golden", str(tmp_path / "g"),
                                       "--out", str(tmp_path / "out"), "-j", "3"],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and sum(1 for p in _descendants(leader.pid)
                                         if Path(f"/proc/{p}/cmdline").read_bytes().startswith(b"sleep")) < 3:
        time.sleep(0.1)
    family = _descendants(leader.pid)
    assert len(family) >= 6, "the workers and their dot never started"      # 3 workers, 3 dots (+ a tracker)
    time.sleep(0.5)
    leader.send_signal(sig)
    _, err = leader.communicate(timeout=30)
    if code is not None:
        assert leader.returncode == code and "terminated" in err
    deadline = time.time() + 10
    while time.time() < deadline and any(_alive(p) for p in family):
        time.sleep(0.1)
    assert not [p for p in family if _alive(p)], "processes outlived the leader"


# ---------------------------------------------------------------- standard output and file names (item 10)

@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("args", [["explain", PIZZA], ["render", PIZZA, "--format", "json", "-o", "-"],
                                  ["check", PIZZA], ["ops"], ["grads", PIZZA, "--no-plots"]],
                         ids=["explain", "render", "check", "ops", "grads"])
def test_a_full_standard_output_is_exit_1_with_a_message(tmp_path, args):
    """`cgviz explain x.cg > /dev/full` ended in an internal error (exit 3); docs/errors.md promises 1."""
    with open("/dev/full", "w") as full:
        p = subprocess.run(CGVIZ + [str(a) for a in args], cwd=tmp_path, stdout=full, stderr=subprocess.PIPE,
                           text=True, timeout=120)
    assert p.returncode == 1, p.stderr
    assert "cannot write to standard output: No space left on device" in p.stderr and "Traceback" not in p.stderr


BAD = os.fsdecode(b"bad\xff")        # a file name that is not UTF-8, as Python holds it


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS file systems refuse names that are not UTF-8")
def test_every_command_takes_a_file_name_that_is_not_utf8(cli, here):
    """`cgviz render $'bad\\xff.cg'` and friends ended in exit 3: the name went into DOT, JSON and plot
    titles as a lone surrogate, which no encoder takes. It is shown as `bad\\xff`."""
    from cgviz.cli import main
    (here / f"{BAD}.cg").write_text(PIZZA.read_text())
    cases = exit_cases(here)
    for name in sorted(main.commands):
        ok = [str(a) for a in cases[name][0]]
        if name == "ops":
            continue                            # reads no file
        if name == "torch":
            (here / f"{BAD}.py").write_text((here / "lin.py").read_text())
            ok = ["torch", f"{BAD}.py", "--format", "json", "-o", f"{BAD}.json"]
        elif name == "snapshot":        # a golden of its own, written then checked
            assert cli("snapshot", f"{BAD}.cg", "--golden", "g", "--out", "s", "--update").exit_code == 0
            ok = ["snapshot", f"{BAD}.cg", "--golden", "g", "--out", "s"]
        else:
            ok = [f"{BAD}.cg" if a == str(PIZZA) else a for a in ok]
        r = cli(*ok)
        assert r.exit_code == 0, (name, r.stderr[-500:])
    for fmt in ("svg", "json", "html", "dot"):
        r = cli("render", f"{BAD}.cg", "--format", fmt)
        assert r.exit_code == 0, (fmt, r.stderr)
        data = (here / f"{BAD}.{fmt}").read_text(encoding="utf-8")
        if fmt == "json":
            data = json.loads(data)["source"]
        if fmt == "dot":        # a backslash in a DOT label is escaped
            data = data.replace("\\\\", "\\")
        assert "bad\\xff.cg" in data, fmt
