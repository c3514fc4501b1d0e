"""Loops over time in the expression language: they run and differentiate as unrolled (checked against a
PyTorch RNN cell run over the same steps), are drawn as one `time_step=T` frame, and their mistakes
point at the line."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

import cgviz
from cgviz.cli import main
from cgviz.route.expression import evaluate
from conftest import ROOT

import torch


def _lit(a) -> str:
    return json.dumps(np.asarray(a, dtype=np.float64).tolist())


def _rnn_program(cell, xs, body: str) -> str:
    p = {k: v.detach().double().numpy() for k, v in cell.named_parameters()}
    T, n = xs.shape[0], cell.hidden_size
    return (f"input x[{T}] = {_lit(xs.numpy())}\n"
            f"param W_ih = {_lit(p['weight_ih'])}\nparam W_hh = {_lit(p['weight_hh'])}\n"
            f"param b_ih = {_lit(p['bias_ih'])}\nparam b_hh = {_lit(p['bias_hh'])}\n"
            f"h = zeros({n})\n"
            f"for t in 1..{T}:\n{body}\n"
            "loss L = sum(h * h)\n")


@pytest.mark.parametrize("T", [1, 5, 20])
def test_an_rnn_loop_equals_torch_rnncell(T):
    torch.manual_seed(T)
    cell = torch.nn.RNNCell(3, 4).double()
    xs = torch.randn(T, 3, dtype=torch.float64, requires_grad=True)
    h = torch.zeros(4, dtype=torch.float64)
    for t in range(T):
        h = cell(xs[t], h)
    loss = (h * h).sum()
    loss.backward()
    text = _rnn_program(cell, xs.detach(), "    h = tanh(W_ih @ x[t] + b_ih + W_hh @ h + b_hh)")
    r = evaluate(text, "rnn.cg")
    assert float(r.run.values[r.graph.output]) == pytest.approx(loss.item(), rel=1e-12)
    for name, p in cell.named_parameters():
        key = name.replace("weight", "W").replace("bias", "b")
        np.testing.assert_allclose(r.run.grads[key], p.grad.numpy(), rtol=1e-10, atol=1e-14)
    for t in range(T):
        np.testing.assert_allclose(r.run.grads[f"x@{t + 1}"], xs.grad[t].numpy(), rtol=1e-10, atol=1e-14)
        # the state of every step is a node of its own, with a readable id
        assert f"h@{t + 1}" in r.graph


def test_a_body_of_several_statements_with_nested_expressions_equals_torch():
    torch.manual_seed(0)
    T = 6
    W = torch.randn(4, 4, dtype=torch.float64, requires_grad=True)
    U = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    xs = torch.randn(T, 2, dtype=torch.float64)
    h = torch.full((4,), 0.1, dtype=torch.float64)
    c = torch.zeros(4, dtype=torch.float64)
    for t in range(T):
        a = W @ torch.tanh(h) + U @ xs[t] * 2
        c = 0.5 * c + torch.sigmoid(a) * (1 - torch.exp(-a ** 2))
        h = torch.tanh(c) - 0.25 * h
    loss = ((h - 1) ** 2).mean()
    loss.backward()
    text = (f"input x[{T}] = {_lit(xs)}\nparam W = {_lit(W.detach())}\nparam U = {_lit(U.detach())}\n"
            "h = [0.1, 0.1, 0.1, 0.1]\nc = zeros(4)\n"
            f"for t in 1..{T}:\n"
            "    a = W @ tanh(h) + U @ x[t] * 2\n"
            "    c = 0.5 * c + sigmoid(a) * (1 - exp(-a^2))\n"
            "    h = tanh(c) - 0.25 * h\n"
            "loss L = mean((h - 1)^2)\n")
    r = evaluate(text, "nested.cg")
    assert float(r.run.values[r.graph.output]) == pytest.approx(loss.item(), rel=1e-12)
    np.testing.assert_allclose(r.run.grads["W"], W.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(r.run.grads["U"], U.grad.numpy(), rtol=1e-10)
    assert {"a@1", "c@6", "h@6", "c@3/mul"} <= {n.id for n in r.graph}


def test_one_line_and_indented_bodies_build_the_same_graph():
    head = "input x[3] = [1, 2, 3]\nparam w = 0.5\nh = 0\n"
    a = evaluate(head + "for t in 1..3: h = w * h + x[t]\nloss L = h^2\n")
    b = evaluate(head + "for t in 1..3:\n    h = w * h + x[t]\n\n    # a comment\nloss L = h^2\n")
    assert [n.id for n in a.graph] == [n.id for n in b.graph]
    assert float(a.run.grads["w"]) == float(b.run.grads["w"])


def test_the_lesson_cases_through_time():
    small = cgviz.draw(ROOT / "sample_graphs" / "time_0_1.cg")
    big = cgviz.draw(ROOT / "sample_graphs" / "time_3.cg")
    assert small["x"].grad == pytest.approx(0.1 ** 5, rel=1e-12)
    assert big["x"].grad == pytest.approx(3.0 ** 5, rel=1e-12)
    assert small.folds == ["time_step=5 (for t in 1..5, line 5)"]


def test_the_20_step_rnn_is_one_time_step_frame_and_its_gradients_fade():
    d = cgviz.draw(ROOT / "sample_graphs" / "rnn_20.cg")
    dot = d.dot
    assert dot.count("time_step=20") == 1 and dot.count("subgraph \"cluster_loop") == 1
    assert "dashed" in dot
    assert "h@3" not in dot and "h@t" in dot          # one copy of the body, not 20
    norms = [float(np.linalg.norm(d[f"h@{t}"].grad)) for t in range(1, 21)]
    assert all(a < b for a, b in zip(norms, norms[1:])), norms   # smaller the further back in time
    assert norms[0] < 1e-6 * norms[-1]
    # ‖g‖ at every step on the state's edges: 19 numbers on the step-to-step edge
    back = [line for line in dot.splitlines() if "next step" in line]
    assert back
    grads = re.findall(r'label="‖g‖ per step:([^"]*)"', dot)
    assert any(len(g.split(",")) == 20 for g in grads)


def test_no_fold_draws_every_step(tmp_path):
    out = tmp_path / "rnn.dot"
    res = CliRunner().invoke(main, ["render", str(ROOT / "sample_graphs" / "rnn_20.cg"), "-o", str(out),
                                    "--no-fold", "-q"])
    assert res.exit_code == 0, res.output
    text = out.read_text()
    assert "time_step" not in text and '"h@20"' in text and '"h@1/add"' in text


def test_json_is_the_unrolled_graph_with_stable_ids():
    d = cgviz.draw(ROOT / "sample_graphs" / "time_3.cg")
    ids = [n["id"] for n in d.to_dict()["nodes"]]
    assert ids == ["x", "k", "h", "h@1", "h@2", "h@3", "h@4", "h@5", "L"]


ERRORS = [
    ("for t in 1..3: h = h + 1\n", 1, 20, "'h' has no value before the first step"),
    ("input x[3] = [1, 2]\nh = 0\nfor t in 1..3: h = h + x[t]\n", 1, 14, "needs 3 along its first axis"),
    ("input x[3] = [1, 2, 3]\nh = 0\nfor t in 1..3: h = h + x[t + 1]\n", 3, 26, "x[4] is out of range"),
    ("for t in 3..1: h = 1\n", 1, 10, "the range 3..1 is empty"),
    ("for t in 1..3:\nh = 1\n", 1, 1, "has no body"),
    ("h = 0\nfor t in 1..3:\n  h = h + 1\n  for s in 1..2: h = h\n", 4, 3, "loops cannot be nested"),
    ("input x[3] = [1, 2, 3]\ny = x * 2\n", 2, 5, "'x' is a sequence of 3 steps"),
    ("h = 0\nfor t in 1..3:\n  loss L = h\n", 3, 3, "a loss is computed once, after the loop"),
    ("h = 0\nfor t in 1..3: h = h * t\n", 2, 24, "'t' is the loop's step number"),
    ("x = 1\ny = x[1]\n", 2, 5, "'x' is not a sequence"),
    ("h = 0\nfor t in 1..3 h = h\n", 2, 15, "syntax error: unexpected 'h'; expected ':'\n"),
    ("h = 0\nfor t in 1..2: h = h + 1\nh = 3\n", 3, 1, "already defined"),
]


@pytest.mark.parametrize("text,line,col,words", ERRORS, ids=[e[3][:30] for e in ERRORS])
def test_loop_mistakes_name_file_line_and_column_with_a_caret(tmp_path, text, line, col, words):
    src = tmp_path / "bad.cg"
    src.write_text(text)
    out = tmp_path / "bad.json"
    res = CliRunner().invoke(main, ["render", str(src), "-o", str(out)])
    assert res.exit_code != 0
    err = res.output
    assert f"bad.cg:{line}:{col}:" in err and words in err, err
    assert "Traceback" not in err and not out.exists()
    caret = [ln for ln in err.splitlines() if set(ln.split("|")[-1].strip()) == {"^"}]
    assert caret and caret[0].split("|", 1)[1].index("^") == col, err


def test_explain_writes_the_chain_rule_through_time(tmp_path):
    path = ROOT / "sample_graphs" / "rnn_20.cg"
    res = CliRunner().invoke(main, ["explain", str(path)])
    assert res.exit_code == 0, res.output
    line = next(ln for ln in res.output.splitlines() if ln.strip().startswith("∂L/∂h₁ = "))
    names, numbers, total = line.split(" = ")[1:4]
    factors = names.split(" · ")
    assert factors[0] == "∂L/∂h₂₀" and factors[-1] == "∂h₂/∂h₁"
    assert len(factors) == 20                   # the loss's factor, then 19 steps back through time
    assert [f"∂h{_sub(t)}/∂h{_sub(t - 1)}" for t in range(20, 1, -1)] == factors[1:]
    values = [float(v) for v in numbers.split(" · ")]
    d = cgviz.draw(path)
    assert float(total) == pytest.approx(float(d["h@1"].grad), rel=1e-3)
    assert np.prod(values) == pytest.approx(float(d["h@1"].grad), rel=1e-2)
    # each local factor is tanh'(a_t) · W, below 1: the product fades
    assert all(0 < v < 0.5 for v in values[1:])
    small = CliRunner().invoke(main, ["explain", str(ROOT / "sample_graphs" / "time_0_1.cg")]).output
    assert "∂L/∂h₁ = ∂L/∂h₅ · ∂h₅/∂h₄ · ∂h₄/∂h₃ · ∂h₃/∂h₂ · ∂h₂/∂h₁ = 1 · 0.1 · 0.1 · 0.1 · 0.1 = 0.0001" in small
    assert "∂L/∂x = " in small and "= 1e-5" in small


def _sub(t: int) -> str:
    return str(t).translate(str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉"))


def test_the_html_page_draws_every_step_for_its_stepper(tmp_path):
    # the page steps through the backward pass node by node, so its picture is the unrolled one
    out = tmp_path / "t.html"
    res = CliRunner().invoke(main, ["render", str(ROOT / "sample_graphs" / "time_3.cg"), "-o", str(out), "-q"])
    assert res.exit_code == 0, res.output
    page = out.read_text()
    assert "h@3" in page and "time_step=5" not in page


def test_the_training_page_of_a_loop_draws_every_step(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, ["train", str(ROOT / "sample_graphs" / "time_0_1.cg"), "--lr", "0.1",
                                    "--steps", "2", "-o", "t.html"])
    assert res.exit_code == 0, res.output
    page = (tmp_path / "t.html").read_text()
    assert "h@3" in page and "time_step=5" not in page
