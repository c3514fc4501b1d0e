"""cgviz.diff's parts on hand-made golden documents: matching, the number changes, and the picture's
collapsing of unchanged (and, past the box budget, changed) modules."""

from __future__ import annotations

import math

from cgviz.diff.classify import ADDED, NUMBERS, REMOVED, SAME, difference
from cgviz.diff.match import NAME, POSITION, STRUCTURE, match
from cgviz.diff.numbers import change, distance
from cgviz.diff.picture import boxes, to_dot


def _node(id, kind="op", op="linear", shape=(2, 2), module="", value=1.0, grad=1.0):
    return {"id": id, "kind": kind, "op": op if kind == "op" else None, "shape": list(shape), "module": module,
            "value": {"mean": value, "std": 0.1, "min": value - 0.2, "max": value + 0.2, "norm": 2 * abs(value)},
            "grad": {"mean": grad, "std": 0.1, "min": grad - 0.2, "max": grad + 0.2, "norm": 2 * abs(grad)}}


def _doc(nodes, chain=True):
    edges = [{"src": a["id"], "dst": b["id"], "arg": 0} for a, b in zip(nodes, nodes[1:])] if chain else []
    return {"format": "cgviz-snapshot", "version": 1, "nodes": nodes, "edges": edges, "output": nodes[-1]["id"]}


def test_match_by_name_then_structure_then_position():
    a = [_node("x", "input"), _node("l1/linear"), _node("l2/sigmoid", op="sigmoid"), _node("l3/linear", shape=(2, 3))]
    b = [_node("x", "input"), _node("k1/linear"), _node("l2/relu", op="relu"), _node("k3/linear", shape=(2, 3))]
    got = {(m.a, m.b): m.how for m in match(a, b)}
    assert got == {("x", "x"): NAME, ("l1/linear", "k1/linear"): STRUCTURE, ("l2/sigmoid", "l2/relu"): POSITION,
                   ("l3/linear", "k3/linear"): STRUCTURE}


def test_a_removed_node_sits_after_its_predecessor_and_its_edges_are_removed():
    a = [_node("x", "input"), _node("a", op="tanh"), _node("b", op="exp"), _node("out", op="sum", shape=())]
    b = [_node("x", "input"), _node("a", op="tanh"), _node("out", op="sum", shape=())]
    d = difference(_doc(a), _doc(b))
    assert [(n.id, n.status) for n in d.nodes] == [("x", SAME), ("a", SAME), ("b", REMOVED), ("out", SAME)]
    assert {(e.src, e.dst, e.status) for e in d.edges} == {("x", "a", SAME), ("a", "b", REMOVED),
                                                          ("b", "out", REMOVED), ("a", "out", ADDED)}
    assert not d.same


def test_changes_measure_the_relative_move_and_judge_it_by_the_snapshots_rule():
    c = change("w", [1.0, 2.0], [1.0, 2.2], 1e-4, 1e-12)
    assert c.beyond and math.isclose(c.distance, 0.1) and c.text("‖v‖") == "‖v‖ 2.236 → 2.417, +8.1%"      # √5 → √5.84
    assert not change("w", [1.0, 2.0], [1.0, 2.00001], 1e-4, 1e-12).beyond
    assert change("w", 0.5, -0.5, 1e-4, 1e-12).text("‖v‖") == "v 0.5 → -0.5, −200.0%"
    # a norm's change is relative to the norm, not to one element's size
    old = {"mean": 0.0, "std": 0.01, "min": -0.03, "max": 0.03, "norm": 30.0}
    new = dict(old, norm=30.3, std=0.0101)
    assert math.isclose(distance(old, new), 0.01, rel_tol=1e-9)
    assert change("w", None, [1.0], 1e-4, 1e-12) is None


def _model_doc(changed_block=None, blocks=12, per=8):
    nodes = [_node("x", "input")]
    for i in range(blocks):
        for k in range(per):
            v = 2.0 if i == changed_block and k == 0 else 1.0
            nodes.append(_node(f"h.{i}.mlp/op{k}", op=f"op{k}", module=f"h.{i}.mlp", value=v))
    nodes.append(_node("out", op="sum", shape=()))
    return _doc(nodes)


def test_unchanged_modules_collapse_and_the_changed_one_opens():
    d = difference(_model_doc(), _model_doc(changed_block=5))
    where, cut = boxes(d)
    assert cut is None
    drawn = set(where.values())
    assert "module:h.4" in drawn and "module:h.6" in drawn            # untouched blocks: one box each
    assert "h.5.mlp/op0" in drawn and "module:h.5" not in drawn      # the changed block, op by op
    assert len(drawn) == 1 + 11 + 8 + 1
    assert d.first_divergence.id == "h.5.mlp/op0"
    dot = to_dot(d)
    assert '"module:h.4"' in dot and "8 nodes, unchanged" in dot


def test_past_the_box_budget_changed_modules_collapse_a_level_at_a_time():
    old = _model_doc(blocks=12, per=8)
    new = _model_doc(blocks=12, per=8)
    for n in new["nodes"]:
        n["value"] = dict(n["value"], mean=n["value"]["mean"] + 1)         # everything changed
    d = difference(old, new)
    assert all(n.status == NUMBERS for n in d.nodes)
    where, cut = boxes(d, max_nodes=20)
    assert len(set(where.values())) <= 20 and cut is not None
    assert "collapsed into one box each, changed ones too" in to_dot(d, max_nodes=20)


def test_a_module_level_draws_its_inside_with_stubs_for_what_is_outside():
    d = difference(_model_doc(), _model_doc(changed_block=5))
    where, cut = boxes(d, root="h.4")
    assert cut is None and set(where) == {f"h.4.mlp/op{k}" for k in range(8)}
    assert set(where.values()) == {"module:h.4.mlp"}           # untouched inside too: one box, opened a level down
    where, _ = boxes(d, root="h.4.mlp")
    assert set(where.values()) == set(where)                  # at its own level every op is itself
    dot = to_dot(d, root="h.4.mlp")
    assert '"outside:h.3.mlp"' in dot and '"outside:h.5.mlp"' in dot       # the neighbours at its depth and "inside h.4.mlp" in dot
    # one side's picture: its own names, nothing only the other run has
    b = _model_doc(changed_block=5)
    b["nodes"].insert(3, _node("extra", op="tanh"))
    b["edges"] = [{"src": x["id"], "dst": y["id"], "arg": 0} for x, y in zip(b["nodes"], b["nodes"][1:])]
    d = difference(_model_doc(), b)
    assert '"extra"' in to_dot(d, side="b") and '"extra"' not in to_dot(d, side="a")


def test_a_module_of_one_node_is_drawn_as_that_node():
    nodes = [_node("x", "input"), _node("act/tanh", op="tanh", module="act"), _node("out", op="sum", shape=())]
    where, _ = boxes(difference(_doc(nodes), _doc(nodes)))
    assert where["act/tanh"] == "act/tanh"


def test_the_page_opens_at_the_shallowest_level_that_draws_the_first_divergence():
    from types import SimpleNamespace

    from cgviz.diff.page import levels
    d = difference(_model_doc(), _model_doc(changed_block=5))
    lv, start, home = levels(SimpleNamespace(difference=d, max_nodes=250))
    assert start == ""                                        # the whole model fits: the change is drawn at the top
    assert lv["h.4"]["parent"] == "" and lv["h.4"]["opens"] == {"module:h.4.mlp": "h.4.mlp"}
    assert lv["h.4.mlp"]["label"] == "mlp" and home["h.4.mlp/op0"] == "h.4.mlp"
    lv, start, home = levels(SimpleNamespace(difference=d, max_nodes=10))    # too many boxes: blocks collapse
    assert start == "h.5" and home[d.first_divergence.id] == "h.5"
    assert lv["h.5"]["parent"] == "h" and lv["h.5"]["label"] == "5" and lv["h"]["parent"] == ""
