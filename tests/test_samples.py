"""Every sample's values and gradients against PyTorch autograd, and the article's exact numbers."""

from __future__ import annotations

import numpy as np
import pytest

from cgviz.route.expression import evaluate
from cgviz.check.torch_ops import torch_run

from conftest import SAMPLES


def _eval(path):
    return evaluate(path.read_text(), path.name)


def test_the_samples_the_issue_asks_for_exist():
    names = {p.stem for p in SAMPLES}
    assert {"pizza", "challenge", "three_layer", "softmax_classifier", "vanishing", "exploding",
            "residual"} <= names


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_sample_matches_torch_autograd(path):
    r = _eval(path)
    values, grads = torch_run(r.graph)
    for node in r.graph:
        np.testing.assert_allclose(r.run.values[node.id], values[node.id], rtol=1e-10, atol=1e-12,
                                   err_msg=f"value of {node.id}")
        ours, theirs = r.run.grads[node.id], grads[node.id]
        if node.kind in ("input", "param"):
            assert (ours is None) == (theirs is None), node.id
        if ours is not None and theirs is not None:
            np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12, err_msg=f"grad of {node.id}")
    assert not r.run.nonfinite
    assert r.run.values[r.graph.output].size == 1


def test_pizza_gives_the_articles_numbers():
    from conftest import ROOT

    r = _eval(ROOT / "sample_graphs" / "pizza.cg")
    v, g = r.run.values, r.run.grads
    assert (float(v["z"]), float(v["a"]), float(v["L"])) == (100.0, 100.0, 100.0)
    assert float(g["a"]) == 20.0 and float(g["z"]) == 20.0
    assert float(g["w"]) == 4000.0 and float(g["x"]) == 10.0
    assert g["y"] is None, "a const gets no gradient"


def test_chains_vanish_and_explode_as_the_article_says():
    from conftest import ROOT

    exploding = _eval(ROOT / "sample_graphs" / "exploding.cg")
    assert float(exploding.run.grads["x"]) == pytest.approx(243.0, rel=1e-12)
    small = _eval(ROOT / "sample_graphs" / "chain_0_1.cg")
    assert float(small.run.grads["x"]) == pytest.approx(1e-5, rel=1e-9)
    sig = _eval(ROOT / "sample_graphs" / "vanishing.cg")
    # five sigmoids: every layer shrinks the gradient by at least 4×
    assert abs(float(sig.run.grads["x"])) < 0.25 ** 5 * 2
    assert abs(float(sig.run.grads["w1"])) < abs(float(sig.run.grads["w5"])) / 50


def test_residual_skip_path_carries_more_gradient_than_the_block():
    from conftest import ROOT

    r = _eval(ROOT / "sample_graphs" / "residual.cg")
    out = r.graph["out"]
    skip = next(k for k, i in enumerate(out.inputs) if i == "x")
    skip_norm = np.linalg.norm(r.run.edge_grads[("out", skip)])
    block_edges = [(e.dst, e.arg) for e in r.graph.edges() if e.src == "x" and e.dst != "out"]
    block_norm = max(np.linalg.norm(r.run.edge_grads[k]) for k in block_edges)
    assert skip_norm > 10 * block_norm
