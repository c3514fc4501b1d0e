"""One result type for both front ends (issue 13): the expression engine's run read as a RunSummary,
the one JSON writer and health path over it, a label's lines as data, and the page's package data."""

from __future__ import annotations

import dataclasses
import fnmatch
import math
import subprocess
import sys
import tomllib
from importlib import resources

import numpy as np
import pytest

from conftest import ROOT
from cgviz.core import fmt, summary
from cgviz.diagnose.health import node_saturation, verdicts
from cgviz.route.expression import evaluate
from cgviz.core.summary import RunSummary, TensorInfo
from cgviz.view import export, expression_scene, html
from cgviz.view.markup import Line, lines_markup

SAMPLES = ROOT / "sample_graphs"


def _sample(name: str):
    return evaluate((SAMPLES / name).read_text(), name)


def test_an_expression_run_summarises_into_the_model_runs_type():
    r = _sample("three_layer.cg")
    s = r.run.summary(r.graph)
    assert isinstance(s, RunSummary) and s.front == "expression" and s.judged == ("param", "input")
    for n in r.graph:
        v = s.values[n.id]
        assert isinstance(v, TensorInfo)
        assert v.shape == r.run.values[n.id].shape and v.dtype == str(r.run.values[n.id].dtype)
        assert v.stats == fmt.stats(r.run.values[n.id])
        assert v.values is r.run.values[n.id]          # the engine's array, not a copy
        g = r.run.grads.get(n.id)
        assert (s.grads[n.id] is None) == (g is None)
        for k, src in enumerate(n.inputs):             # an edge carries its producer's value
            assert s.edge_values[(n.id, k)].values is r.run.values[src]
            eg = r.run.edge_grads.get((n.id, k))
            assert (s.edge_grads.get((n.id, k)) is None) == (eg is None)
    assert math.isclose(s.loss, float(r.run.values[r.graph.output]))
    assert s.warnings == [str(w) for w in r.run.warnings]
    assert all(isinstance(w, str) for w in s.warnings)


def test_the_summary_is_made_once_per_graph_and_keeps_later_overlays():
    r = evaluate("param w = 0.5\ninput x = 2\nloss L = (w * x - 1)^2\n")
    first = r.run.summary(r.graph)
    assert r.run.summary(r.graph) is first
    r.run.step = "a step"                       # annotate() sets the step after the passes
    assert r.run.summary(r.graph).step == "a step"


def test_summaries_are_made_on_first_read(monkeypatch):
    made = []
    real = TensorInfo.of_array
    monkeypatch.setattr(TensorInfo, "of_array", staticmethod(lambda a: made.append(a) or real(a)))
    arrays = {str(i): np.full(3, float(i)) for i in range(1000)}
    lazy = summary.Summaries(arrays)
    assert len(lazy) == 1000 and made == []
    assert lazy["7"].stats["mean"] == 7.0 and lazy.get("7") is lazy["7"]
    assert len(made) == 1
    assert lazy.get("missing") is None


def test_a_model_run_reads_nonfinite_and_gradients_off_its_summaries():
    ok = TensorInfo((2,), "float32", fmt.stats(np.array([1.0, 2.0])))
    bad = TensorInfo((2,), "float32", fmt.stats(np.array([1.0, np.inf])))
    run = RunSummary(values={"a": ok, "b": bad}, grads={"a": ok, "b": None})
    assert run.wants_grad("a") and not run.wants_grad("b")
    assert not run.is_nonfinite("a") and run.is_nonfinite("b")


def test_one_json_writer_takes_either_form_of_an_expression_run():
    r = _sample("residual.cg")
    assert export.to_dict(r.graph, r.run) == export.to_dict(r.graph, r.run.summary(r.graph))


def test_the_json_writer_adds_model_fields_only_for_a_model_run():
    r = _sample("pizza.cg")
    as_model = dataclasses.replace(r.run.summary(r.graph), front="model",
                                   meta={"kind": "python"})
    d = export.to_dict(r.graph, as_model)
    assert d["model"] == {"kind": "python", "loss_value": 100.0} and "health" not in d
    nodes = {n["id"]: n for n in d["nodes"]}
    assert nodes["w"]["health"]["flag"] == "exploding" and "health" not in nodes["x"]
    assert "module" in nodes["z"] and "saturation" not in nodes["z"]
    assert all("shape" in e for e in d["edges"])
    e = export.to_dict(r.graph, r.run)
    assert "model" not in e and e["health"] == {"vanish": 1e-3, "explode": 10.0}
    assert "module" not in e["nodes"][0] and all("shape" not in x for x in e["edges"])


def test_health_judges_the_kinds_of_the_runs_front_end():
    r = _sample("pizza.cg")
    s = r.run.summary(r.graph)
    assert set(verdicts(r.graph, s)) == {"x", "w"}
    assert set(verdicts(r.graph, dataclasses.replace(s, front="model"))) == {"w"}


def test_saturation_is_exact_from_an_expression_summary():
    r = evaluate("input z = [-6, -5, 0, 1, 8]\nloss L = sum(sigmoid(z))\n")
    op = next(n for n in r.graph if n.op == "sigmoid")
    s = node_saturation(r.graph, r.run, op)
    assert (s.lo, s.hi, s.share, s.limit) == (-6.0, 8.0, 0.6, 4.0)


@pytest.mark.parametrize("line, markup, row", [
    (Line("+", bold=True), "<B>+</B>", ["+", None, True, False]),
    (Line("[2×3] → [3]", small=True), '<FONT POINT-SIZE="9">[2×3] → [3]</FONT>', ["[2×3] → [3]", None, False, True]),
    (Line(" [3×4]", head="W<1>"), "<B>W&lt;1&gt;</B> [3×4]", ["W<1> [3×4]", None, True, False]),
    (Line("⚠ z", color="#bf360c", bold=True, small=True),
     '<FONT POINT-SIZE="9" COLOR="#bf360c"><B>⚠ z</B></FONT>', ["⚠ z", "#bf360c", True, True]),
])
def test_a_label_line_gives_its_markup_and_the_training_pages_row(line, markup, row):
    assert line.markup() == markup and line.row() == row


def test_a_label_is_its_lines_and_to_dot_draws_given_labels():
    r = _sample("pizza.cg")
    opts = expression_scene.DotOptions()
    w = r.graph["w"]
    lines = expression_scene.label_lines(w, r.run, r.graph, opts, verdicts(r.graph, r.run))
    assert lines[0].head == "w" and any(line.color for line in lines)
    assert expression_scene.label(w, r.run, r.graph, opts, verdicts(r.graph, r.run)).markup == lines_markup(lines).markup
    text = expression_scene.to_dot(r.graph, r.run, opts, labels={"w": lines_markup([Line("drawn instead")])})
    assert "label=<drawn instead>" in text and text.count("drawn instead") == 1


def test_the_page_assets_are_package_data_and_in_every_page():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["cgviz.view"]
    folder = resources.files("cgviz.view").joinpath("assets")
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith((".js", ".css")))
    assert names == ["page.css", "page.js", "train.js", "watch.css", "watch.js"]
    for name in names:
        assert any(fnmatch.fnmatch(f"assets/{name}", pattern) for pattern in declared), name
    r = _sample("pizza.cg")
    page = html.dsl_page(r.graph, r.run, '<svg viewBox="0 0 1 1"></svg>')
    assert html.asset("page.js") in page and html.asset("page.css") in page and html.asset("train.js") not in page
    assert "--bwd: #c62828" in page


def test_the_expression_path_still_imports_no_torch():
    code = ("import sys, cgviz.route.expression as p, cgviz.view.html, cgviz.diagnose.grads; "
            f"r = p.evaluate(open({str(SAMPLES / 'pizza.cg')!r}).read()); "
            "from cgviz.view.export import to_json; to_json(r.graph, r.run); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"
