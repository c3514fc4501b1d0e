"""The expression picture's DOT text: deterministic, snapshot-tested, blue forward and red backward edges, and nothing injectable."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from cgviz.view.expression_scene import DotOptions, to_dot
from cgviz.view.markup import quote
from cgviz.route.expression import evaluate

from conftest import ROOT, SAMPLES

GOLDEN = ROOT / "tests" / "golden"


def dot_of(text, name="t.cg", **opts):
    r = evaluate(text, name)
    return to_dot(r.graph, r.run, DotOptions(**opts)), r


@pytest.mark.parametrize("stem", ["pizza", "three_layer"])
def test_dot_matches_the_golden_file(stem):
    """Refresh after an intended change with: CGVIZ_UPDATE_GOLDEN=1 make test"""
    path = ROOT / "sample_graphs" / f"{stem}.cg"
    text, _ = dot_of(path.read_text(), path.name)
    golden = GOLDEN / f"{stem}.dot"
    if os.environ.get("CGVIZ_UPDATE_GOLDEN"):
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")


def test_dot_is_byte_identical_across_processes():
    # Fresh interpreters get different hash seeds; nothing may depend on set or dict-of-id order.
    outs = set()
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        p = subprocess.run([sys.executable, "-m", "cgviz", "render", str(ROOT / "sample_graphs/three_layer.cg"),
                            "--format", "dot", "-o", "-"], capture_output=True, env=env, check=True)
        outs.add(p.stdout)
    assert len(outs) == 1


def test_forward_edges_are_blue_and_gradient_edges_red_and_backwards(pizza_text):
    text, r = dot_of(pizza_text, "pizza.cg")
    edges = re.findall(r'^  "([^"]+)" -> "([^"]+)" \[(.*)\]$', text, re.M)
    blue = [e for e in edges if 'color="#1f5fbf"' in e[2]]
    red = [e for e in edges if 'color="#c62828"' in e[2]]
    # every drawn edge has a blue twin; the folded literal 2 is drawn inside the ^ node
    drawn = [e for e in r.graph.edges() if e.src != "L/2"]
    assert len(blue) == len(drawn)
    # a red edge for every edge a gradient flows along (not from the const y)
    assert {(a, b) for a, b, _ in red} == {("w", "z"), ("x", "z"), ("z", "a"), ("a", "L/sub"), ("L/sub", "L")}
    for _, _, attrs in red:
        # drawn along the forward direction with dir=back: the layout is decided by data flow alone
        assert 'dir="back"' in attrs and "constraint" not in attrs
    assert any(a == "w" and 'label="4000"' in attrs for a, _, attrs in red)
    assert any(a == "x" and 'label="10"' in attrs for a, _, attrs in red)


def test_node_shapes_follow_the_article(pizza_text):
    text, _ = dot_of(pizza_text, "pizza.cg")
    def attrs(node):
        return re.search(rf'^  "{re.escape(node)}" \[(.*)\]$', text, re.M).group(1)
    assert 'shape="box"' in attrs("x") and 'shape="box"' in attrs("w") and 'shape="box"' in attrs("y")
    assert 'shape="ellipse"' in attrs("z")
    assert attrs("w") != attrs("x").replace(">x<", ">w<")       # params look different from inputs
    assert 'fillcolor="#ececec"' in attrs("y")                  # consts are grey
    assert 'peripheries="2"' in attrs("L")                       # the loss is marked
    assert "∂L/∂w = 4000" in attrs("w") and "∂L/∂x = 10" in attrs("x")
    assert "loss L = 100" in attrs("L")


def test_no_grad_draws_no_red(pizza_text):
    text, _ = dot_of(pizza_text, "pizza.cg", grad=False)
    assert "#c62828" not in text and "∂" not in text


def test_rankdir(pizza_text):
    assert 'rankdir="TB"' in dot_of(pizza_text, rankdir="TB")[0]
    assert 'rankdir="LR"' in dot_of(pizza_text)[0]


def test_nan_nodes_are_highlighted():
    text, _ = dot_of("input x = -1\ny = log(x)\nloss L = y * 2\n")
    y = re.search(r'^  "y" \[(.*)\]$', text, re.M).group(1)
    assert 'fillcolor="#ffcc80"' in y and "⚠ NaN" in y


@pytest.mark.parametrize("raw", ['a"b', "back\\slash", "new\nline", "<b>html</b>", "{x|y}", 'x"; bgcolor="red'])
def test_quote_cannot_be_escaped(raw):
    q = quote(raw)
    assert q.startswith('"') and q.endswith('"')
    body = q[1:-1]
    # every quote inside is escaped by an odd run of backslashes: the string cannot end early
    for m in re.finditer(r'(\\*)"', body):
        assert len(m.group(1)) % 2 == 1


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz: `make test` installs it")
def test_hostile_file_names_render_as_text(tmp_path):
    name = 'we"ird <b>{x|y} \\N.cg'
    text, _ = dot_of("input x = 1\nloss L = x * 2\n", name)
    svg = subprocess.run(["dot", "-Tsvg"], input=text.encode(), capture_output=True, check=True).stdout.decode()
    assert "we&quot;ird &lt;b&gt;{x|y} \\N.cg" in svg


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz: `make test` installs it")
@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_every_sample_lays_out_without_warnings(path):
    text, _ = dot_of(path.read_text(), path.name)
    p = subprocess.run(["dot", "-Tsvg"], input=text.encode(), capture_output=True, check=True)
    assert p.stdout.startswith(b"<?xml") and p.stderr == b""
