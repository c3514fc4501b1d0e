"""Pass-through ops (eval-mode dropout, a no-op .to(), .contiguous(), a same-shape view) are left out
of a model's picture; the JSON keeps them, and the edge that bypasses one carries the recorded numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn as nn

import cgviz
from cgviz.pytorch.load import Loaded
from cgviz.route.model import picture_model
from cgviz.pytorch.trace import TraceOptions


class Net(nn.Module):
    """linear → relu → dropout → to(float32) → contiguous → view(same shape) → linear, plus the
    identity-looking ops that are not identities: to(float64), view to a new shape."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.fc = nn.Linear(4, 6)
        self.drop = nn.Dropout(p)
        self.fc2 = nn.Linear(6, 2)

    def forward(self, x):
        h = self.drop(torch.relu(self.fc(x)))
        h = h.to(torch.float32).contiguous().view(3, 6)
        wide = h.to(torch.float64).view(3, 2, 3).float()      # real changes: dtype, shape, dtype
        return self.fc2(wide.reshape(3, 6))


NET_FILE = """
import torch, torch.nn as nn
torch.manual_seed(0)
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 6)
        self.drop = nn.Dropout(0.5)
        self.fc2 = nn.Linear(6, 2)
    def forward(self, x):
        return self.fc2(self.drop(torch.relu(self.fc(x))).to(torch.float32).view(3, 6))
model = Net().eval()
example_inputs = (torch.randn(3, 4),)
"""


def _draw(model, *inputs, mode="eval", simplify=True, **kw):
    model.zero_grad(set_to_none=True)           # a module drawn twice starts from no .grad each time
    torch.manual_seed(0)
    loaded = Loaded("memory", model, "net", tuple(inputs), {})
    return picture_model(loaded, TraceOptions(mode=mode), simplify=simplify, **kw)


def _x(*shape):
    torch.manual_seed(1)
    return torch.randn(*shape)


def _drawn_ops(d) -> dict[str, str]:
    """Recorded op id → op name, for every recorded op some picture node stands for."""
    members = {m for dn in d.pic.nodes.values() for m in dn.members}
    return {n.id: n.op for n in d.graph if n.kind == "op" and n.id in members}


def _ops(d, name):
    return [n.id for n in d.graph if n.op == name]


def test_eval_dropout_is_merged_and_train_dropout_is_kept():
    ev = _draw(Net(), _x(3, 4), mode="eval")
    tr = _draw(Net(), _x(3, 4), mode="train")
    assert _ops(ev, "dropout") and _ops(tr, "dropout")           # both runs recorded it
    assert "dropout" not in _drawn_ops(ev).values()
    assert "dropout" in _drawn_ops(tr).values()                   # training: values change


def test_dropout_with_p_zero_is_merged_even_in_training():
    d = _draw(Net(p=0.0), _x(3, 4), mode="train")
    assert _ops(d, "dropout") and "dropout" not in _drawn_ops(d).values()


def test_to_the_same_dtype_is_merged_and_to_another_is_kept():
    d = _draw(Net(), _x(3, 4))
    same, other = _ops(d, "to")                     # to(float32) of a float32 tensor; to(float64)
    drawn = _drawn_ops(d)
    assert same not in drawn and other in drawn
    assert "float" in drawn.values()                # float64 → float32 changes the dtype back


def test_a_view_to_the_same_shape_is_merged_and_a_reshaping_view_is_kept():
    d = _draw(Net(), _x(3, 4))
    first, second = _ops(d, "view")                 # view(3, 6) of a [3×6]; view(3, 2, 3)
    drawn = _drawn_ops(d)
    assert first not in drawn and second in drawn
    assert not _ops(d, "contiguous")[0] in drawn
    assert _ops(d, "reshape")[0] in drawn           # [3×2×3] → [3×6]


def test_no_simplify_keeps_every_op():
    d = _draw(Net(), _x(3, 4), simplify=False)
    assert set(_drawn_ops(d)) == {n.id for n in d.graph if n.kind == "op"}
    assert d.drawn is d.graph


def test_the_recorded_graph_keeps_every_op():
    a = _draw(Net(), _x(3, 4))
    b = _draw(Net(), _x(3, 4), simplify=False)
    assert [n.id for n in a.graph] == [n.id for n in b.graph]
    assert a.to_dict()["nodes"] == b.to_dict()["nodes"]
    assert len(a.drawn) == len(a.graph) - 4         # dropout, to, contiguous, view


def test_bypass_edges_carry_the_recorded_value_and_gradient():
    d = _draw(Net(), _x(3, 4))
    g, run = d.graph, d.run
    drop, to, cont, view = _ops(d, "dropout")[0], _ops(d, "to")[0], _ops(d, "contiguous")[0], _ops(d, "view")[0]
    relu = g[drop].inputs[0]
    reader = next(n for n in g if view in n.inputs)          # to(float64) reads the view
    k = reader.inputs.index(view)
    # by construction, along the whole chain relu → dropout → to → contiguous → view → reader
    for a, b in ((drop, to), (to, cont), (cont, view)):
        assert np.array_equal(run.edge_values[(a, 0)].values, run.values[a].values)
        assert np.array_equal(run.edge_values[(b, 0)].values, run.values[a].values)
        assert np.array_equal(run.edge_grads[(a, 0)].values, run.grads[a].values)
    # the one drawn edge relu → reader
    [edge] = [e for e in d.pic.edges if e.src == relu and e.dst == reader.id]
    assert np.array_equal(edge.value.values, run.values[relu].values)
    assert np.array_equal(edge.value.values, run.edge_values[(drop, 0)].values)
    assert np.array_equal(edge.grad.values, run.edge_grads[(reader.id, k)].values)
    assert np.array_equal(edge.grad.values, run.edge_grads[(drop, 0)].values)
    assert np.array_equal(edge.grad.values, run.grads[relu].values)       # relu has no other reader
    assert edge.grad.norm == pytest.approx(float(np.linalg.norm(run.grads[drop].values)))


def test_large_tensors_compare_by_their_statistics():
    # 3 × 2000 elements: summaries keep statistics, not values
    model = nn.Sequential(nn.Linear(4, 2000), nn.Dropout(0.3), nn.Linear(2000, 1))
    ev = _draw(model, _x(3, 4), mode="eval")
    tr = _draw(model, _x(3, 4), mode="train")
    assert ev.run.values[_ops(ev, "dropout")[0]].values is None
    assert "dropout" not in _drawn_ops(ev).values() and "dropout" in _drawn_ops(tr).values()


def test_the_output_itself_is_never_merged():
    class Last(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 1)

        def forward(self, x):
            return self.fc(x).sum().view(())
    d = _draw(Last(), _x(3, 4))
    # the trace ends in a view of the scalar, itself a pass-through: it stays, the loss's box
    assert d.graph.output == "view" and d.graph[d.graph.output].inputs == ("sum",)
    assert set(_drawn_ops(d)) == {"fc/linear", "sum", "view"}


def test_the_caption_says_what_was_left_out():
    d = _draw(Net(), _x(3, 4))
    assert "4 pass-through ops not drawn (contiguous, dropout, to, view); --no-simplify draws them" in d.dot()
    assert "pass-through" not in _draw(Net(), _x(3, 4), simplify=False).dot()


def test_nothing_to_leave_out_leaves_the_picture_as_it_was():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 1))
    a, b = _draw(model, _x(2, 4)), _draw(model, _x(2, 4), simplify=False)
    assert a.drawn is a.graph and a.dot() == b.dot() and "pass-through" not in a.dot()


def test_the_autograd_view_is_not_simplified():
    torch.manual_seed(0)
    d = picture_model(Loaded("memory", Net(), "net", (_x(3, 4),), {}), TraceOptions(mode="eval", view="autograd"))
    assert d.drawn is d.graph


def test_the_command_line(cli, tmp_path):
    (tmp_path / "net.py").write_text(NET_FILE)
    net = tmp_path / "net.py"
    # a loss given, so that the only note there could be is the simplification's
    r = cli("torch", net, "--loss", "mean", "--format", "dot", "-o", tmp_path / "a.dot")
    assert r.exit_code == 0, r.stderr
    assert "note:" not in r.stderr                  # clutter removal: the caption says it, not the terminal
    simple = (tmp_path / "a.dot").read_text()
    r = cli("torch", net, "--no-simplify", "--format", "dot", "-o", tmp_path / "b.dot")
    assert r.exit_code == 0, r.stderr
    full = (tmp_path / "b.dot").read_text()
    assert "3 pass-through ops not drawn (dropout, to, view)" in simple and "pass-through" not in full
    assert "<B>dropout</B>" not in simple and "<B>dropout</B>" in full
    docs = []
    for extra in ((), ("--no-simplify",)):
        r = cli("torch", net, *extra, "--format", "json", "-o", "-")
        assert r.exit_code == 0, r.stderr
        docs.append(json.loads(r.stdout))
    assert docs[0] == docs[1]
    assert {"dropout", "to", "view"} <= {n.get("op") for n in docs[0]["nodes"]}


def test_draw_takes_simplify():
    a = cgviz.draw(Net().eval(), _x(3, 4))
    b = cgviz.draw(Net().eval(), _x(3, 4), simplify=False)
    assert "pass-through" in a.dot and "pass-through" not in b.dot
    assert len(a) == len(b)                         # the drawing's graph is the full record


def test_a_manifest_entry_takes_no_simplify(tmp_path):
    from cgviz.snapshot.runner import load_manifest
    (tmp_path / "net.py").write_text(NET_FILE)
    (tmp_path / "m.toml").write_text('[[entry]]\nmodel = "net.py"\nno_simplify = true\n')
    [entry] = load_manifest(tmp_path / "m.toml")
    assert entry.options == {"no_simplify": True}
