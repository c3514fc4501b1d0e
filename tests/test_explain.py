"""`cgviz explain`: the article's table of local gradients and the chains multiplied out."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cgviz.lang.explain import as_json, rows, substitute
from cgviz.route.expression import evaluate
from conftest import ROOT, SAMPLES

PIZZA = ROOT / "sample_graphs" / "pizza.cg"


def _result(text: str):
    return evaluate(text, "t.cg")


def test_pizza_table_and_chains_have_the_articles_numbers(cli):
    r = cli("explain", PIZZA)
    assert r.exit_code == 0, r.stderr
    out = r.stdout
    assert "∂z/∂w = x" in out and "∂z/∂x = w" in out
    assert "∂a/∂z = 1 if z > 0 else 0" in out
    assert "∂L/∂a = 2 · (a - y)" in out
    assert "∂L/∂w = ∂L/∂a · ∂a/∂z · ∂z/∂w = 20 · 1 · 200 = 4000" in out
    assert "∂L/∂x = ∂L/∂a · ∂a/∂z · ∂z/∂x = 20 · 1 · 0.5 = 10" in out
    # the local gradient's number sits on the same line as its formula
    line = next(ln for ln in out.splitlines() if "∂L/∂a = 2 · (a - y)" in ln)
    assert line.rstrip().endswith("20")


def test_markdown_is_a_table_with_one_row_per_local_gradient(cli):
    out = cli("explain", PIZZA, "--format", "md").stdout
    table = [ln for ln in out.splitlines() if ln.startswith("|")]
    assert table[0].startswith("| node |") and table[1] == "|---|---|---|---|"
    assert len(table) == 2 + 4            # ∂z/∂w, ∂z/∂x, ∂a/∂z, ∂L/∂a
    assert all(ln.count("|") - ln.count("\\|") == 5 for ln in table)
    assert "- ∂L/∂w = ∂L/∂a · ∂a/∂z · ∂z/∂w = 20 · 1 · 200 = 4000" in out


def test_json_carries_formulas_values_and_chain_products(cli):
    doc = json.loads(cli("explain", PIZZA, "-f", "json").stdout)
    assert doc["format"] == "cgviz-explain"
    z = next(r for r in doc["rows"] if r["name"] == "z")
    assert [(t["wrt"], t["formula"], t["value"]) for t in z["local"]] == [("w", "x", 200.0), ("x", "w", 0.5)]
    w = next(c for c in doc["chains"] if c["name"] == "w")
    assert w["grad"] == 4000.0 and w["paths"][0]["values"] == [20.0, 1.0, 200.0]
    assert w["paths"][0]["product"] == 4000.0


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_every_chain_multiplies_out_to_the_engines_gradient(path):
    """Each scalar path's factors multiply to its product, and the paths add up to the gradient."""
    res = _result(path.read_text())
    doc = json.loads(as_json(res.graph, res.run))
    assert doc["rows"], "every sample has at least one named op"
    for c in doc["chains"]:
        g = res.run.grads[c["node"]]
        products = [p["product"] for p in c["paths"]]
        for p in c["paths"]:
            if p["product"] is not None:
                assert np.isclose(np.prod(p["values"]), p["product"])
        if g is not None and np.ndim(g) == 0 and products and None not in products and c["all_paths"]:
            assert np.isclose(sum(products), float(g), rtol=1e-12, atol=0), c["name"]


def test_a_value_feeding_two_consumers_shows_each_path_and_their_sum():
    res = _result("input x = 3\nparam w = 2\na = w * x\nb = x * x\nloss L = a + b\n")
    doc = json.loads(as_json(res.graph, res.run))
    x = next(c for c in doc["chains"] if c["name"] == "x")
    assert sorted(p["product"] for p in x["paths"]) == [2.0, 3.0, 3.0]
    assert "sum of the 3 paths above = 8" in x["text"][-1]
    # x * x: both arguments are x, so its local gradient is the sum of two terms
    b = next(r for r in doc["rows"] if r["name"] == "b")
    assert b["local"][0]["formula"] == "x + x" and b["local"][0]["value"] == 6.0


def test_tensor_ops_give_formulas_shapes_and_vector_jacobian_products():
    res = _result((ROOT / "sample_graphs" / "three_layer.cg").read_text())
    z1 = next(r for r in rows(res.graph, res.run) if r.name == "z1")
    by = {t.wrt: t for t in z1.terms}
    assert by["W1"].formula == "Xᵀ @ ∂L/∂z1" and by["W1"].of == "L"       # matmul: a VJP, said as one
    assert by["W1"].shape == res.run.values["W1"].shape and by["W1"].value is None
    assert by["b1"].formula == "1" and by["b1"].of == "z1"


def test_substitution_replaces_whole_words_only():
    assert substitute("b · a^(b−1)", {"a": "(a - y)", "b": "2"}) == "2 · (a - y)"
    assert substitute("max(0, x)", {"x": "(x @ W1)"}) == "max(0, x @ W1)"
    assert substitute("softmax(x)", {"x": "h"}) == "softmax(h)"        # the x in softmax stays
    assert substitute("g @ bᵀ", {"a": "X", "b": "W"}) == "g @ Wᵀ"


def test_leaky_relu_slope_and_anonymous_chains_fold_into_the_named_node():
    res = _result("input x = -2\nloss L = 3 * leaky_relu(x, slope=0.1)\n")
    (row,) = rows(res.graph, res.run)
    (t,) = row.terms
    assert t.formula == "3 · (1 if x > 0 else 0.1)" and np.isclose(t.value, 0.3)


def test_a_long_chain_explains_without_recursion():
    lines = ["input x = 1"] + [f"h{i} = {'x' if i == 0 else f'h{i-1}'} * 1" for i in range(3000)]
    lines.append("loss L = h2999 + 0")
    res = _result("\n".join(lines))
    doc = json.loads(as_json(res.graph, res.run))
    assert len(doc["rows"]) == 3001


def test_explain_errors_and_output_file(cli, tmp_path):
    bad = tmp_path / "bad.cg"
    bad.write_text("input x = 1\nloss L = x +\n")
    r = cli("explain", bad)
    assert r.exit_code == 1 and "bad.cg:2:" in r.stderr and "^" in r.stderr
    out = tmp_path / "pizza.md"
    r = cli("explain", PIZZA, "-f", "md", "-o", out)
    assert r.exit_code == 0 and "4000" in out.read_text()
    r = cli("explain", bad, "-o", bad)
    assert r.exit_code == 2 and bad.read_text().startswith("input x = 1")
