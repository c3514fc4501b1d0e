"""The backward pass as slides (issue 28): a PDF page or GIF frame per step of the HTML stepper's walk,
each with its chain-rule line, all in one layout."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from cgviz.route.expression import evaluate
from cgviz.view import slides
from cgviz.view.html import _dsl_parts, edge_key

import pypdf      # the `slides` extra; `make install` installs it
pytestmark = pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz: `make install` installs it")

ROOT = Path(__file__).resolve().parent.parent
PIZZA = ROOT / "sample_graphs" / "pizza.cg"
PIZZA_ZH = ("input 重量 = 200\nparam θ = 0.5\nconst 实际 = 90\n预测 = relu(θ * 重量)\nloss 损失 = (预测 - 实际)^2\n")


def _run(text, name="t.cg"):
    r = evaluate(text, name)
    return r.graph, r.run


def test_the_pizza_gives_the_lessons_sequence_with_explains_lines():
    g, run = _run(PIZZA.read_text(), "pizza.cg")
    st = slides.steps(g, run)
    assert [s.grad for s in st] == [20, 20, 4000, 10]
    assert [s.src for s in st] == ["a", "z", "w", "x"]
    assert st[2].line == "∂L/∂w = ∂L/∂z · ∂z/∂w = 20 · 200 = 4000"
    assert st[3].line == "∂L/∂x = ∂L/∂z · ∂z/∂x = 20 · 0.5 = 10"


@pytest.mark.parametrize("sample", ["pizza.cg", "three_layer.cg", "residual.cg", "softmax_classifier.cg"])
def test_steps_follow_the_html_stepper(sample):
    g, run = _run((ROOT / "sample_graphs" / sample).read_text(), sample)
    _, order, _, _ = _dsl_parts(g, run)
    keys = [edge_key(s.src, s.dst) for s in slides.steps(g, run)]
    assert keys and [k for k in order if k in keys] == keys       # the stepper's order, its named edges
    for s in slides.steps(g, run):
        assert g[s.src].name                                         # only edges explain speaks of


def _positions(svg: bytes) -> dict:
    """Each node's ellipse or polygon coordinates in an SVG, by its title."""
    out = {}
    for m in re.finditer(rb'class="node">\s*<title>(.*?)</title>.*?<(?:ellipse|polygon)([^>]*)>', svg, re.S):
        out[m.group(1)] = re.sub(rb'(fill|stroke|stroke-width)="[^"]*"', b"", m.group(2))
    return out


@pytest.mark.parametrize("sample, n", [("pizza_zh.cg", 4), ("three_layer.cg", 9), ("residual.cg", 7)])
def test_every_frame_has_one_layout_and_highlights_its_edge(sample, n):
    from cgviz.view.graphviz import run_dot
    g, run = _run((ROOT / "sample_graphs" / sample).read_text(encoding="utf-8"), sample)
    dots = slides.frames(g, run)
    assert len(dots) == n
    svgs = [run_dot(d, "svg") for d in dots]
    first = _positions(svgs[0])
    assert len(first) >= 6
    for svg in svgs:
        assert _positions(svg) == first
        assert re.search(rb'<svg width="(\d+)pt" height="(\d+)pt"', svg).groups() == \
            re.search(rb'<svg width="(\d+)pt" height="(\d+)pt"', svgs[0]).groups()
    for d, s in zip(dots, slides.steps(g, run)):
        assert d.count(slides.HIGHLIGHT) == 2           # the one edge's colour and its label's
        assert f'"{s.src}" -> "{s.dst}"' in d.split(slides.HIGHLIGHT)[0].rsplit("\n", 1)[-1]


def test_render_steps_writes_a_pdf_page_per_step(cli, tmp_path):
    out = tmp_path / "lesson.pdf"
    r = cli("render", PIZZA, "--steps", "-o", out)
    assert r.exit_code == 0, r.output
    reader = pypdf.PdfReader(out)
    assert len(reader.pages) == 4
    texts = [p.extract_text() for p in reader.pages]
    assert "20 · 200 = 4000" in texts[2].replace("\n", " ") or "4000" in texts[2]
    sizes = {(float(p.mediabox.width), float(p.mediabox.height)) for p in reader.pages}
    assert len(sizes) == 1
    assert not list(tmp_path.glob("*.tmp*")) and sorted(p.name for p in tmp_path.iterdir()) == ["lesson.pdf"]


def test_render_steps_writes_a_gif_frame_per_step(cli, tmp_path):
    f = tmp_path / "zh.cg"
    f.write_text(PIZZA_ZH, encoding="utf-8")
    out = tmp_path / "lesson.gif"
    r = cli("render", f, "--steps", "-o", out)
    assert r.exit_code == 0, r.output
    with Image.open(out) as im:
        assert im.format == "GIF" and im.n_frames == len(slides.steps(*_run(PIZZA_ZH))) == 3
        sizes, pixels = set(), []
        for i in range(im.n_frames):
            im.seek(i)
            sizes.add(im.size)
            pixels.append(im.convert("RGB").tobytes())
    assert len(sizes) == 1 and len(set(pixels)) == 3              # one size, three different frames


@pytest.mark.parametrize("args, says", [(["-o", "x.png"], "-o lesson.pdf"), (["-o", "-"], "-o lesson.pdf"),
                                        (["-o", "x.gif", "--no-grad"], "drop --no-grad")])
def test_render_steps_refuses_what_it_cannot_write(cli, here, args, says):
    r = cli("render", PIZZA, "--steps", *args)
    assert r.exit_code == 2 and says in r.output
    assert list(here.iterdir()) == []


def test_tensor_steps_say_the_norm_and_a_shared_input_adds_up():
    g, run = _run((ROOT / "sample_graphs" / "residual.cg").read_text(), "residual.cg")
    lines = [s.line for s in slides.steps(g, run)]
    assert lines[0].startswith("∂L/∂out   ‖·‖ = ")
    assert sum(line.startswith("∂L/∂x += ∂L/∂") for line in lines) == 2     # x feeds the skip and the block


def test_render_steps_takes_the_step_and_the_thresholds_as_render_does(cli, tmp_path):
    """--lr shows each param's step on every frame and warns as render does; --vanish/--explode set
    the flags; --max-elements bounds the program (slides used to ignore all of them silently)."""
    from cgviz.api.calls import backward_slides
    out = tmp_path / "lesson.pdf"
    r = cli("render", PIZZA, "--steps", "-o", out, "--lr", "0.01")
    assert r.exit_code == 0, r.output
    assert "warning: " in r.stderr and "w goes 0.5 → -39.5" in r.stderr
    assert "exploding gradient (above 10)" in r.stderr
    quiet = cli("render", PIZZA, "--steps", "-o", tmp_path / "b.pdf", "--explode", "1e9")
    assert quiet.exit_code == 0 and "exploding" not in quiet.stderr
    shown = backward_slides(str(PIZZA), lr=0.01)
    assert any("0.5 → -39.5" in w for w in shown.warnings)
    import cgviz
    b = cgviz.draw(str(PIZZA), lr=0.01)._b
    assert all("→" in f for f in slides.frames(b.result.graph, b.result.run, b.opts))
    big = cli("render", PIZZA, "--steps", "-o", tmp_path / "c.pdf", "--set", "x=[1,2,3,4,5]", "--max-elements", "2")
    assert big.exit_code != 0 and "--max-elements" in big.output and "Traceback" not in big.output
