"""Model Explorer's graph JSON (cgviz.view.modelexplorer): loaded with Model Explorer's own schema
dataclasses (strict: no unknown field, every type right), with cgviz's numbers on the nodes, ×N folds
as layers, and the node-data overlays beside the graph."""

from __future__ import annotations

import json

import pytest

from conftest import ROOT

import dacite      # both come with the modelexplorer extra (`make install`)
import model_explorer as me
from model_explorer import graph_builder, node_data_builder  # noqa: E402

GPT = ROOT / "sample_graphs" / "models" / "tiny_gpt.py"
STRICT = dacite.Config(strict=True)


def _load_graph(doc: dict):
    """As Model Explorer's JSON adapter reads a file: a GraphCollection ({label, graphs})."""
    assert set(doc) == {"label", "graphs"}
    return dacite.from_dict(graph_builder.GraphCollection, doc, config=STRICT)


def _load_node_data(doc: dict):
    return node_data_builder.ModelNodeData(
        graphsData={k: dacite.from_dict(node_data_builder.GraphNodeData, v, config=STRICT) for k, v in doc.items()})


@pytest.fixture(scope="module")
def gpt(tmp_path_factory):
    """tiny_gpt drawn to Model Explorer's format with a real loss (so health is judged), and its JSON."""
    from click.testing import CliRunner

    from cgviz.cli import main
    d = tmp_path_factory.mktemp("me")
    args = [str(GPT) + ":build", "--input-shape", "1,16:long", "--loss", "ce", "--explode", "0.1"]
    runner = CliRunner()
    r = runner.invoke(main, ["torch", *args, "-o", str(d / "gpt.me.json")], catch_exceptions=False)
    assert r.exit_code == 0, r.stderr
    j = runner.invoke(main, ["torch", *args, "-f", "json", "-o", "-", "-q"], catch_exceptions=False)
    return d, json.loads(j.stdout), r.stderr


def test_the_graph_loads_with_model_explorers_schema(gpt):
    d, doc, _ = gpt
    coll = _load_graph(json.loads((d / "gpt.me.json").read_text()))
    (graph,) = coll.graphs
    assert coll.label == graph.id == "tiny_gpt.py"
    ids = {n.id for n in graph.nodes}
    assert ids == {n["id"] for n in doc["nodes"]}        # every recorded node: nothing folded away
    for n in graph.nodes:                               # every edge joins two nodes of the graph
        assert all(e.sourceNodeId in ids for e in n.incomingEdges), n.id
    edges = sum(len(n.incomingEdges) for n in graph.nodes)
    assert edges == len(doc["edges"])


def test_nodes_carry_cgvizs_numbers(gpt):
    d, doc, _ = gpt
    graph = _load_graph(json.loads((d / "gpt.me.json").read_text())).graphs[0]
    ours = {n["id"]: n for n in doc["nodes"]}
    op = next(n for n in graph.nodes if ours[n.id]["kind"] == "op" and ours[n.id]["grad_stats"])
    attrs = {a.key: a.value for a in op.attrs}
    from cgviz.core.fmt import num
    assert attrs["grad norm"] == num(ours[op.id]["grad_stats"]["norm"])
    assert attrs["value mean"] == num(ours[op.id]["value_stats"]["mean"])
    assert op.label == ours[op.id]["op"]


def test_folds_are_layers(gpt):
    d, doc, _ = gpt
    graph = _load_graph(json.loads((d / "gpt.me.json").read_text())).graphs[0]
    layer = "blocks.0 … blocks.3 ×4"
    spaces = {n.namespace for n in graph.nodes}
    for k in range(4):     # each block is a layer inside the fold's layer
        assert any(s.startswith(f"{layer}/blocks.{k}") for s in spaces), k
    attrs = graph.groupNodeAttributes[layer]
    assert attrs["repeated"] == "4 × Block (fold)" and len(attrs["‖∇θ‖ per block"].split(", ")) == 4


def test_overlays_are_node_data_files_beside_the_graph(gpt):
    d, doc, stderr = gpt
    assert sorted(p.name for p in d.iterdir()) == ["gpt.me.grad_norm.json", "gpt.me.health.json",
                                                   "gpt.me.json", "gpt.me.value_norm.json"]
    grads = _load_node_data(json.loads((d / "gpt.me.grad_norm.json").read_text()))
    results = grads.graphsData["tiny_gpt.py"].results
    expected = {n["id"]: n["grad_stats"]["norm"] for n in doc["nodes"] if n["grad_stats"]}
    assert results.keys() == expected.keys()
    assert all(results[k].value == pytest.approx(v) for k, v in expected.items())
    health = _load_node_data(json.loads((d / "gpt.me.health.json").read_text())).graphsData["tiny_gpt.py"].results
    flagged = {n["id"] for n in doc["nodes"] if (n.get("health") or {}).get("flag") == "exploding"}
    assert flagged and {k for k, r in health.items() if r.value == 2} == flagged   # --explode 0.1 flags some
    graph = _load_graph(json.loads((d / "gpt.me.json").read_text())).graphs[0]
    nonfinite = {n["id"] for n in doc["nodes"] if n["nonfinite"]}    # the attention mask's -inf
    assert nonfinite and {k for k, r in health.items() if r.value == 3} == nonfinite
    styled = {n.id for n in graph.nodes if n.style is not None}
    assert styled == flagged | nonfinite
    assert "gpt.me.health.json" in stderr


def test_standard_output_has_the_graph_only(cli, tmp_path):
    r = cli("torch", GPT.as_posix() + ":build", "--input-shape", "1,8:long", "-f", "modelexplorer", "-o", "-", "-q")
    assert r.exit_code == 0, r.stderr
    _load_graph(json.loads(r.stdout))


def test_the_default_name_and_an_expression_program(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = cli("render", ROOT / "sample_graphs" / "pizza.cg", "-f", "modelexplorer")
    assert r.exit_code == 0, r.stderr
    coll = _load_graph(json.loads((tmp_path / "pizza.me.json").read_text()))
    assert len(coll.graphs[0].nodes) > 3


def test_drawing_save_writes_the_overlays(tmp_path):
    import torch

    import cgviz
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    out = cgviz.draw(model, torch.randn(2, 3)).save(tmp_path / "m.me.json")
    _load_graph(json.loads(out.read_text()))
    _load_node_data(json.loads((tmp_path / "m.me.value_norm.json").read_text()))
