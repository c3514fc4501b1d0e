"""Every sample's graph held by cgviz's own pytest fixture (cgviz.pytest_plugin), as a Python project
holds its models: goldens in tests/__graph_snapshots__/test_samples_snapshot/. After an intended change,
`pytest tests/test_samples_snapshot.py --cgviz-update` rewrites the ones that changed."""

from __future__ import annotations

import pytest

import cgviz
from conftest import ROOT, SAMPLES


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_sample(path, graph_snapshot):
    graph_snapshot(cgviz.draw(path))


def test_a_model_in_float32_by_equality(graph_snapshot):
    # a model run as users run theirs, float32: the tolerance absorbs another CPU's last bits
    d = cgviz.draw(ROOT / "sample_graphs" / "models" / "res_cnn.py", depth=1)
    assert d == graph_snapshot


def test_several_goldens_in_one_test_are_named(graph_snapshot):
    for w in ("0.1", "2"):
        graph_snapshot(ROOT / "sample_graphs" / "pizza.cg", sets={"w": w}, name=f"w={w}")
