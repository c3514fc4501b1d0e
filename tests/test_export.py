"""The JSON format (`cgviz-graph` version 1) that other tools read."""

from __future__ import annotations

import json


from cgviz.view.export import to_dict, to_json
from cgviz.route.expression import evaluate


def doc(text, name="t.cg"):
    r = evaluate(text, name)
    return json.loads(to_json(r.graph, r.run))


def test_pizza_json(pizza_text):
    d = doc(pizza_text, "pizza.cg")
    assert (d["format"], d["version"], d["source"], d["loss"], d["output"]) == ("cgviz-graph", 1, "pizza.cg", "L", "L")
    nodes = {n["id"]: n for n in d["nodes"]}
    w = nodes["w"]
    assert (w["name"], w["kind"], w["op"], w["inputs"], w["shape"], w["dtype"]) == ("w", "param", None, [], [], "float64")
    assert w["value"] == 0.5 and w["grad"] == 4000.0
    assert w["value_stats"] == {"mean": 0.5, "std": 0.0, "min": 0.5, "max": 0.5, "norm": 0.5}
    assert nodes["x"]["grad"] == 10.0 and nodes["x"]["kind"] == "input"
    assert nodes["y"]["grad"] is None and nodes["y"]["grad_stats"] is None and nodes["y"]["kind"] == "const"
    assert nodes["z"]["op"] == "mul" and nodes["z"]["inputs"] == ["w", "x"] and nodes["z"]["grad"] == 20.0
    assert nodes["L/sub"]["name"] is None and nodes["L/sub"]["kind"] == "op"
    edges = {(e["src"], e["dst"], e["arg"]): e for e in d["edges"]}
    assert edges[("w", "z", 0)]["grad"] == 4000.0 and edges[("x", "z", 1)]["grad"] == 10.0
    assert edges[("y", "L/sub", 1)]["grad"] is None


def test_nodes_come_in_topological_order(pizza_text):
    d = doc(pizza_text)
    seen = set()
    for n in d["nodes"]:
        assert set(n["inputs"]) <= seen
        seen.add(n["id"])


def test_big_tensors_keep_stats_but_not_values():
    d = doc("input x = randn(100, 50, seed=0)\nloss L = mean(x * x)\n")
    x = next(n for n in d["nodes"] if n["id"] == "x")
    assert x["value"] is None and x["grad"] is None
    assert x["shape"] == [100, 50] and x["value_stats"]["norm"] > 0 and x["grad_stats"]["norm"] > 0
    small = doc("input x = randn(64, 64, seed=0)\nloss L = mean(x)\n")   # 4,096 elements: kept
    assert len(next(n for n in small["nodes"] if n["id"] == "x")["value"]) == 64


def test_non_finite_numbers_are_strings_so_the_file_stays_valid_json():
    r = evaluate("input x = [-1, 0, 1]\nloss L = sum(log(x))\n", "t.cg")
    text = to_json(r.graph, r.run)
    json.loads(text)  # strict JSON: no bare NaN / Infinity tokens
    d = json.loads(text)
    logx = next(n for n in d["nodes"] if n["op"] == "log")
    assert logx["value"][0] == "NaN" and logx["value"][1] == "-Infinity" and logx["nonfinite"]
    assert d["warnings"]


def test_json_is_deterministic(pizza_text):
    assert doc(pizza_text) == doc(pizza_text)
    r = evaluate(pizza_text, "p.cg")
    assert to_json(r.graph, r.run) == to_json(r.graph, r.run)


def test_integer_labels_keep_their_dtype():
    d = doc("input X = randn(3, 2, seed=0)\nconst y = randint(0, 2, shape=[3], seed=0)\nloss L = cross_entropy(X, y)\n")
    y = next(n for n in d["nodes"] if n["id"] == "y")
    assert y["dtype"] == "int64" and all(isinstance(v, int) for v in y["value"])


def test_requires_grad_is_reported_without_a_backward_pass(pizza_text):
    r = evaluate(pizza_text, "pizza.cg", grad=False)
    d = to_dict(r.graph, r.run)
    flags = {n["id"]: n["requires_grad"] for n in d["nodes"]}
    assert flags["w"] and flags["z"] and not flags["y"]
    assert all(n["grad"] is None for n in d["nodes"])
