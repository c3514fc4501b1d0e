"""Forward and backward passes: fan-out, broadcasting, what gets a gradient, NaN warnings, errors."""

from __future__ import annotations

import numpy as np
import pytest

from cgviz.lang.engine import unbroadcast
from cgviz.core.errors import SourceError
from cgviz.route.expression import evaluate


def run(text):
    return evaluate(text, "t.cg")


def test_fan_out_sums_the_contributions_of_every_use():
    r = run("input x = 3\ny = x * x\nloss L = y + x\n")
    # dL/dx = 2x + 1, made of three edge contributions: x·1 (arg 0), x·1 (arg 1), and 1
    assert float(r.run.grads["x"]) == 7.0
    contribs = [r.run.edge_grads[(e.dst, e.arg)] for e in r.graph.edges() if e.src == "x"]
    assert sorted(float(c) for c in contribs) == [1.0, 3.0, 3.0]


def test_node_gradient_is_the_sum_of_its_outgoing_edges_everywhere():
    r = run("input x = [1, 2, 3]\nparam w = 0.5\nh = tanh(w * x)\nloss L = sum(h * x + h)\n")
    consumers = r.graph.consumers()
    for node in r.graph:
        edges = [r.run.edge_grads[(e.dst, e.arg)] for e in consumers[node.id]]
        edges = [e for e in edges if e is not None]
        if edges and r.run.grads[node.id] is not None:
            np.testing.assert_allclose(sum(edges), r.run.grads[node.id])


def test_broadcast_gradients_are_reduced_to_the_operands_shape():
    r = run("input X = ones(4, 3)\nparam b = [1, 2, 3]\nloss L = sum(X + b)\n")
    assert r.run.grads["b"].shape == (3,)
    assert r.run.grads["b"].tolist() == [4.0, 4.0, 4.0]


def test_unbroadcast():
    g = np.ones((2, 4, 3))
    assert unbroadcast(g, (3,)).tolist() == [8.0, 8.0, 8.0]
    assert unbroadcast(g, (4, 1)).shape == (4, 1)
    assert unbroadcast(g, ()).shape == () and float(unbroadcast(g, ())) == 24.0


def test_consts_and_nodes_off_the_loss_path_get_no_gradient():
    r = run("input x = 2\nconst c = 5\nparam unused = 1\nk = c * 3\nloss L = x * k\n")
    assert r.run.grads["c"] is None and r.run.grads["k"] is None
    assert r.run.grads["unused"] is None
    assert float(r.run.grads["x"]) == 15.0


def test_without_a_loss_the_last_assignment_is_the_output_and_non_scalars_start_from_ones():
    r = run("input x = [1, 2]\ny = x * 3\n")
    assert r.graph.output == "y" and r.graph.loss is None
    assert r.run.seeded_with_ones
    assert r.run.grads["x"].tolist() == [3.0, 3.0]
    assert any("not a scalar" in str(w) for w in r.run.warnings)


def test_a_tensor_loss_is_an_error_that_points_at_the_line():
    with pytest.raises(SourceError) as e:
        run("input x = [1, 2]\nloss L = x * 3\n")
    assert e.value.line == 2 and "must be a single number" in str(e.value) and "[2]" in str(e.value)


def test_nan_is_a_warning_that_names_where_it_first_appeared():
    r = run("input x = -1\ny = log(x)\nloss L = y * 2\n")
    assert "y" in r.run.nonfinite and "L" in r.run.nonfinite
    first = [w for w in r.run.warnings if w.node is not None]
    assert first[0].node == "y" and first[0].line == 2
    assert "log of a negative number" in first[0].message


def test_infinite_slope_is_reported_on_the_gradient():
    r = run("input x = 0\nloss L = sqrt(x)\n")
    assert np.isinf(r.run.grads["x"]) and "x" in r.run.nonfinite
    # the warning points at the op whose slope is infinite, and says why
    (w,) = r.run.warnings
    assert w.node == "L" and w.line == 2 and "square root at 0" in w.message and "'x'" in w.message


def test_an_infinite_value_is_explained_once_not_again_for_its_gradient():
    r = run("input x = 1\nconst z = 0\nloss L = x / z\n")
    assert [w.node for w in r.run.warnings] == ["L"] and "division by zero" in r.run.warnings[0].message


def test_integer_labels_stay_integers_and_get_no_gradient():
    r = run("input X = randn(3, 2, seed=0)\ninput y = randint(0, 2, shape=[3], seed=0)\n"
            "loss L = cross_entropy(X, y)\n")
    assert r.run.values["y"].dtype.kind == "i"
    assert r.run.grads["y"] is None and r.run.grads["X"].shape == (3, 2)


def test_values_are_float64():
    r = run("input x = [1, 2]\nconst k = 3\nloss L = sum(x * k)\n")
    assert all(r.run.values[n.id].dtype == np.float64 for n in r.graph)


def test_set_can_change_a_shape_and_the_checks_still_apply():
    text = "input x = 200\nparam w = 0.5\nloss L = w * x\n"
    with pytest.raises(SourceError, match="must be a single number"):
        evaluate(text, "t.cg", overrides={"x": "[1, 2]"})
    r = evaluate(text.replace("loss L = w * x", "loss L = sum(w * x)"), "t.cg", overrides={"x": "[1, 2]"})
    assert float(r.run.grads["w"]) == 3.0


def test_set_replaces_values_and_keeps_the_rest():
    r = evaluate("input x = 200\nparam w = 0.5\nloss L = w * x\n", "t.cg", overrides={"w": "0.1"})
    assert float(r.run.values["L"]) == pytest.approx(20.0)
    assert r.graph["w"].meta["set"] is True


def test_a_chain_of_ten_thousand_ops_runs_without_recursion():
    lines = ["input x = 1"] + [f"h{i} = h{i - 1} * 1" if i else "h0 = x * 1" for i in range(10_000)]
    r = run("\n".join(lines) + "\n")
    assert float(r.run.grads["x"]) == 1.0


def test_huge_tensors_are_refused_before_allocation_and_the_limit_can_be_raised():
    with pytest.raises(SourceError, match="over the limit") as e:
        run("param W = randn(100000, 100000)\nloss L = sum(W)\n")
    assert "max_elements=" in str(e.value) and e.value.line == 1
    with pytest.raises(SourceError, match="result of matmul"):
        evaluate("input a = ones(3000, 1)\ninput b = ones(1, 3000)\nloss L = sum(a @ b)\n", "t.cg",
                 max_elements=1_000_000)
    # the limit covers the run's total: the 9M-element product, its gradient and its edge's (27M in all)
    with pytest.raises(SourceError, match="27,018,002 elements in all") as e:
        evaluate("input a = ones(3000, 1)\ninput b = ones(1, 3000)\nloss L = sum(a @ b)\n", "t.cg",
                 max_elements=10_000_000)
    assert (e.value.line, e.value.col) == (3, 16)
    r = evaluate("input a = ones(3000, 1)\ninput b = ones(1, 3000)\nloss L = sum(a @ b)\n", "t.cg",
                 max_elements=30_000_000)
    assert float(r.run.values["L"]) == 9e6
