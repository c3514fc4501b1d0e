"""cgviz.compare and `cgviz diff` on expression programs: two different programs, saved JSON graphs,
the picture's DOT, the formats, and the exit statuses 0, 1 and 2 through click's CliRunner."""

from __future__ import annotations

import json
import shutil

import pytest

import cgviz
from cgviz.diff.classify import ADDED, NUMBERS, REMOVED, SAME
from conftest import ROOT

PIZZA = ROOT / "sample_graphs" / "pizza.cg"
ONE = "input x = 3\nparam w = 0.5\nz = w * x\nh = sigmoid(z)\nloss L = h^2\n"
TWO = "input x = 3\nparam w = 0.5\nz = w * x\nh = relu(z)\ns = h + 1\nloss L = s^2\n"
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot")


def test_two_different_programs(tmp_path):
    c = cgviz.compare(ONE, TWO)
    assert c["h"].facts == ["op sigmoid → relu"] and c["h"].how == "name"
    assert {n.id for n in c.nodes if n.status == ADDED} == {"s", "s/1"}      # s = h + 1, and its literal 1
    assert not [n for n in c.nodes if n.status == REMOVED]
    # upstream of the swap the values agree (their gradients moved: the loss above them changed)
    assert not c["x"].value.beyond and not c["w"].value.beyond and c["w"].grad.beyond
    assert c["z"].value is not None and not c["z"].value.beyond          # upstream of the change
    assert c.first_divergence.id == "h"
    assert not c.same and c.difference.loss.beyond
    edges = {(e.src, e.dst): e.status for e in c.difference.edges}
    assert edges[("h", "s")] == ADDED and edges[("s", "L")] == ADDED
    assert edges[("h", "L")] == REMOVED


def test_one_program_with_itself_is_the_same_and_a_set_moves_only_numbers():
    assert cgviz.compare(PIZZA, PIZZA).same
    c = cgviz.compare(PIZZA, PIZZA, b_options={"w": 0.6})
    assert {n.status for n in c.nodes} == {SAME, NUMBERS}
    assert c["w"].value.text("‖v‖") == "v 0.5 → 0.6, +20.0%"
    assert c["w"].grad.text("‖g‖") == "g 4000 → 1.2e4, +200.0%"
    assert c.first_divergence.id == "z"
    assert c.difference.given[0].id == "w"
    assert c["y"].status == SAME


def test_tolerances_are_the_snapshots():
    from cgviz.view import golden
    c = cgviz.compare(PIZZA, PIZZA, b_options={"w": 0.500001})
    assert (c.difference.rtol, c.difference.atol) == (golden.RTOL, golden.ATOL)
    assert c.same                                   # 2e-6 of w (2e-5 of a - y): within rtol 1e-4
    assert not cgviz.compare(PIZZA, PIZZA, b_options={"w": 0.500001}, rtol=1e-7).same


def test_a_saved_json_graph_and_a_golden_compare_with_a_file(tmp_path):
    d = cgviz.draw(PIZZA)
    d.save(tmp_path / "pizza.json")
    assert cgviz.compare(PIZZA, tmp_path / "pizza.json").same
    golden = ROOT / "tests" / "snapshots" / "pizza.json"
    assert cgviz.compare(golden, PIZZA).same
    assert not cgviz.compare(golden, cgviz.draw(PIZZA, sets={"w": 0.6})).same


def test_the_picture_colours_what_changed(tmp_path):
    dot = cgviz.compare(ONE, TWO).dot
    lines = dot.splitlines()
    node = {line.split()[0].strip('"'): line for line in lines if line.startswith('  "') and "->" not in line}
    assert 'fillcolor="#e8f5e9"' in node["s"] and "+ only in B" in node["s"]          # added: green
    assert 'fillcolor="#fff3e0"' in node["h"] and "⚑ op sigmoid → relu" in node["h"]  # changed: orange
    assert 'fontcolor="#9e9e9e"' in node["L/2"]                         # unchanged (the exponent 2): grey
    removed = next(line for line in lines if '"h" -> "L"' in line)
    assert 'style="dashed"' in removed and "#8e24aa" in removed                       # removed edge: purple
    assert "first divergence (forward order): h (relu)" in dot


def test_the_edge_says_the_gradients_relative_change_shaded_by_its_log():
    c = cgviz.compare(PIZZA, PIZZA, b_options={"w": 0.6})
    edge = next(line for line in c.dot.splitlines() if '"w" -> "z"' in line)
    assert "g 4000 → 1.2e4, +200.0%" in edge and "v 0.5 → 0.6, +20.0%" in edge
    assert 'penwidth="' in edge and "#c62828" in edge
    small = cgviz.compare(PIZZA, PIZZA, b_options={"w": 0.5001}, rtol=1e-6)
    thin = next(line for line in small.dot.splitlines() if '"w" -> "z"' in line)
    width = lambda line: float(line.split('penwidth="')[1].split('"')[0])  # noqa: E731
    assert width(thin) < width(edge)                   # a 0.02% change is drawn thinner than a 200% one


@needs_dot
@pytest.mark.parametrize("fmt, magic", [("png", b"\x89PNG"), ("svg", b"<?xml"), ("pdf", b"%PDF")])
def test_formats(tmp_path, fmt, magic):
    c = cgviz.compare(ONE, TWO)
    path = c.save(tmp_path / f"d.{fmt}")
    assert path.read_bytes().startswith(magic)


def test_json_is_the_structured_diff(tmp_path):
    c = cgviz.compare(ONE, TWO)
    doc = json.loads(c.save(tmp_path / "d.json").read_text())
    assert doc["format"] == "cgviz-diff" and doc["same"] is False
    assert doc["first_divergence"] == {"id": "h", "op": "relu"}
    assert {n["id"]: n["status"] for n in doc["nodes"]}["s"] == "added"
    assert doc["counts"]["added"] == sum(1 for n in doc["nodes"] if n["status"] == "added")


# ---- the command line ------------------------------------------------------------------------------
def test_cli_exit_0_when_nothing_differs(cli, tmp_path):
    r = cli("diff", PIZZA, PIZZA)
    assert r.exit_code == 0, r.stderr
    assert "no difference beyond tolerance" in r.stdout


def test_cli_exit_1_and_the_picture_when_something_differs(cli, tmp_path):
    a, b = tmp_path / "a.cg", tmp_path / "b.cg"
    a.write_text(ONE)
    b.write_text(TWO)
    r = cli("diff", a, b, "-o", tmp_path / "d.svg")
    assert r.exit_code == 1, r.stderr
    assert "first divergence (forward order): h (relu)" in r.stdout
    assert (tmp_path / "d.svg").read_text().count("<svg") == 1
    assert cli("diff", PIZZA, PIZZA, "--b", "w=0.6", "-q").exit_code == 1
    assert cli("diff", PIZZA, PIZZA, "--b", "w=0.500001", "--rtol", "1e-7", "-q").exit_code == 1
    assert cli("diff", PIZZA, PIZZA, "--b", "w=0.500001", "-q").exit_code == 0


@pytest.mark.parametrize("args, words", [
    (["missing.cg", PIZZA], "missing.cg: no such file"),
    ([PIZZA, PIZZA, "--b", "nosuch=1"], "no declaration named 'nosuch'"),
    ([PIZZA, PIZZA, "--a", "novalue"], "--a takes KEY=VALUE"),
    ([PIZZA, PIZZA, "-o", "d.txt"], "cannot tell the format"),
    ([PIZZA, PIZZA, "--rtol", "nan"], "--rtol"),
])
def test_cli_exit_2_on_an_error_without_a_traceback(cli, here, args, words):
    r = cli("diff", *args)
    assert r.exit_code == 2, (r.stdout, r.stderr)
    assert words in r.stderr and "Traceback" not in r.stderr
    assert not list(here.iterdir())                        # no output written


def test_cli_never_overwrites_an_input(cli, tmp_path):
    a = tmp_path / "a.json"
    cgviz.draw(PIZZA).save(a)
    before = a.read_bytes()
    r = cli("diff", a, PIZZA, "-o", a)
    assert r.exit_code == 2 and a.read_bytes() == before


def test_compare_checks_its_options_in_words():
    with pytest.raises(cgviz.CgvizError, match="rankdir='XX'"):
        cgviz.compare(PIZZA, PIZZA, rankdir="XX")
    with pytest.raises(cgviz.CgvizError, match="rtol=-1"):
        cgviz.compare(PIZZA, PIZZA, rtol=-1)
    with pytest.raises(cgviz.CgvizError, match="cannot apply to a Drawing"):
        cgviz.compare(cgviz.draw(PIZZA), PIZZA, a_options={"w": 1})


def test_a_nan_on_one_side_is_a_divergence_and_the_json_stays_valid():
    c = cgviz.compare("input x = [1, -1]\nloss L = sum(log(x))\n", "input x = [1, 2]\nloss L = sum(log(x))\n")
    assert c.first_divergence.id == "L/log"
    assert c["L"].value.text("‖v‖") == "v NaN → 0.6931"
    doc = json.loads(c.json())
    assert doc["loss"]["before"] == "nan" and doc["first_divergence"]["op"] == "log"
