"""An expression graph much deeper than wide is laid out top to bottom unless --rankdir says otherwise."""

from __future__ import annotations

import re

import pytest

import cgviz
from cgviz.view.expression_scene import auto_rankdir, graph_shape
from cgviz.route.expression import evaluate, read_source
from conftest import ROOT

SAMPLES = ROOT / "sample_graphs"
DEEP = {"deep_relu", "deep_residual", "deep_sigmoid", "vanishing"}


def _rankdir(dot: str) -> str:
    return re.search(r'rankdir="(\w+)"', dot).group(1)


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("*.cg")), ids=lambda p: p.stem)
def test_every_sample_gets_the_direction_it_reads_best_in(path):
    text, name = read_source(str(path))
    graph = evaluate(text, name).graph
    ranks, width = graph_shape(graph)
    assert auto_rankdir(graph) == ("TB" if path.stem in DEEP else "LR"), (ranks, width)


def test_the_shape_of_a_chain_and_of_pizza():
    text, name = read_source(str(SAMPLES / "deep_residual.cg"))
    assert graph_shape(evaluate(text, name).graph) == (35, 2)
    text, name = read_source(str(SAMPLES / "pizza.cg"))
    assert graph_shape(evaluate(text, name).graph) == (5, 2)       # x and w, ×, −, ^2 (its 2 is folded)


def test_render_chooses_tb_for_deep_residual_and_lr_for_pizza(cli):
    deep = cli("render", SAMPLES / "deep_residual.cg", "--format", "dot", "-o", "-")
    pizza = cli("render", SAMPLES / "pizza.cg", "--format", "dot", "-o", "-")
    assert deep.exit_code == 0 and pizza.exit_code == 0
    assert _rankdir(deep.stdout) == "TB" and _rankdir(pizza.stdout) == "LR"


def test_rankdir_still_forces_the_direction(cli):
    deep = cli("render", SAMPLES / "deep_residual.cg", "--rankdir", "LR", "--format", "dot", "-o", "-")
    pizza = cli("render", SAMPLES / "pizza.cg", "--rankdir", "tb", "--format", "dot", "-o", "-")
    assert _rankdir(deep.stdout) == "LR" and _rankdir(pizza.stdout) == "TB"


def test_a_long_chain_goes_top_to_bottom(cli, tmp_path):
    chain = "\n".join(["input x = 1"] + [f"h{i} = {'h' + str(i - 1) if i else 'x'} * 1" for i in range(300)])
    (tmp_path / "long.cg").write_text(chain + "\n")
    r = cli("render", tmp_path / "long.cg", "--format", "dot", "-o", "-")
    assert r.exit_code == 0 and _rankdir(r.stdout) == "TB"


def test_train_chooses_the_same_way(cli, tmp_path):
    for stem, want in (("deep_relu", "TB"), ("pizza", "LR")):
        out = tmp_path / f"{stem}.dot"
        r = cli("train", SAMPLES / f"{stem}.cg", "--lr", "1e-6", "--steps", "1", "-q", "-o", out,
                "--curve", tmp_path / f"{stem}_loss.png")
        assert r.exit_code == 0, r.stderr
        assert _rankdir(out.read_text()) == want
    r = cli("train", SAMPLES / "deep_relu.cg", "--lr", "1e-6", "--steps", "1", "-q", "--rankdir", "LR",
            "-o", tmp_path / "lr.dot", "--curve", tmp_path / "lr_loss.png")
    assert _rankdir((tmp_path / "lr.dot").read_text()) == "LR"


def test_draw_chooses_for_an_expression_unless_told():
    deep, pizza = cgviz.draw(str(SAMPLES / "deep_residual.cg")), cgviz.draw(str(SAMPLES / "pizza.cg"))
    assert deep.rankdir == "TB" and _rankdir(deep.dot) == "TB"
    assert pizza.rankdir == "LR" and _rankdir(pizza.dot) == "LR"
    forced = cgviz.draw(str(SAMPLES / "deep_residual.cg"), rankdir="LR")
    assert forced.rankdir == "LR" and _rankdir(forced.dot) == "LR"
