"""In-place ops in the ops view (cgviz.pytorch.record): every float edge that PyTorch gives a gradient
shows it, in-place or not, with the gradient that flowed along that edge; the edge into an in-place op
shows the tensor before the op overwrote it, the op's node the tensor after; the model's numbers and
gradients stay PyTorch's. Also the valid models that used to be refused: an in-place op on the input
and torch.autograd.grad inside forward."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import cgviz
from cgviz.pytorch.load import Loaded
from cgviz.route.model import picture_model

HERE = Path(__file__).resolve().parent
for p in (HERE / "models", HERE.parent / "sample_graphs" / "models"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import twins  # noqa: E402


def _trace(model, *inputs, view="ops"):
    from cgviz.pytorch.trace import TraceOptions
    d = picture_model(Loaded("memory", model, "test", tuple(inputs), {}), TraceOptions(view=view), fold=False)
    return d.graph, d.run


def _edges_without_gradient(graph, run):
    """Float edges that carry none though both ends received a gradient (so PyTorch sent one along:
    an edge into `h > 0` has a source with a gradient, but a comparison passes none back)."""
    out = []
    for node in graph:
        if node.kind != "op":
            continue
        for k, src in enumerate(node.inputs):
            v = run.edge_values.get((node.id, k))
            if (v is None or not v.dtype.startswith(("float", "bfloat")) or run.grads.get(src) is None
                    or run.grads.get(node.id) is None):
                continue
            if run.edge_grads.get((node.id, k)) is None:
                out.append((src, node.id, k))
    return out


def _arr(info):
    assert info is not None and info.values is not None
    return np.asarray(info.values)


# ---- the ResNet twin: torchvision's BasicBlock, ReLU(inplace=True) and out += identity ----------

def _plain_resnet(model, x):
    """The twin's forward out of place, in plain PyTorch, keeping each block's tensors: the block
    input, and the sum before the second ReLU (whose gradient is the skip edge's)."""
    x = x.clone().requires_grad_(True)
    h = F.relu(model.bn1(model.conv1(x)))
    kept = []
    for block in model.layer1:
        h.retain_grad()
        out = F.relu(block.bn1(block.conv1(h)))
        out = block.bn2(block.conv2(out))
        s = out + h
        s.retain_grad()
        kept.append((h, s))
        h = F.relu(s)
    loss = model.fc(torch.flatten(model.avgpool(h), 1)).sum()
    loss.backward()
    return kept


def test_resnet_twin_every_float_edge_with_a_gradient_shows_it_and_the_skip_outshines_the_convolutions():
    model, (x,) = twins.resnet(blocks=3), twins.inputs("resnet")
    graph, run = _trace(model, x)
    assert _edges_without_gradient(graph, run) == []
    kept = _plain_resnet(twins.resnet(blocks=3), x)
    for i, (h, s) in enumerate(kept):
        add = graph[f"layer1.{i}/add_"]
        conv1 = graph[f"layer1.{i}.conv1/conv2d"]
        relu2 = graph[f"layer1.{i}.relu:2/relu"]
        assert add.inputs[0] == f"layer1.{i}.bn2/batch_norm"
        skip = run.edge_grads[(add.id, 1)]                  # out += identity: the skip edge
        conv = run.edge_grads[(conv1.id, 0)]                # the block input into the convolutions
        assert add.inputs[1] == conv1.inputs[0]             # both leave the block's input
        # the lesson's case 7: the gradient along the skip path is brighter than through the convs
        assert skip.norm > 2 * conv.norm
        # the true gradients of each edge, as plain PyTorch computes them out of place
        np.testing.assert_array_equal(_arr(skip), s.grad.double().numpy())
        np.testing.assert_array_equal(_arr(run.edge_grads[(add.id, 0)]), s.grad.double().numpy())
        np.testing.assert_array_equal(_arr(run.edge_grads[(relu2.id, 0)]), s.grad.double().numpy())
        np.testing.assert_allclose(_arr(skip) + _arr(conv), h.grad.double().numpy(), rtol=1e-6, atol=1e-9)


def test_resnet_twin_edges_into_in_place_ops_show_the_tensor_before_and_the_node_after():
    model, (x,) = twins.resnet(blocks=1), twins.inputs("resnet")
    graph, run = _trace(model, x)
    relu = graph["layer1.0.relu/relu"]
    before, after = run.edge_values[(relu.id, 0)], run.values[relu.id]
    assert before.stats["min"] < 0 <= after.stats["min"]           # the BN output, then its ReLU
    assert before == run.values["layer1.0.bn1/batch_norm"]
    add = graph["layer1.0/add_"]
    bn2, identity = run.edge_values[(add.id, 0)], run.edge_values[(add.id, 1)]
    np.testing.assert_allclose(_arr(run.values[add.id]), _arr(bn2) + _arr(identity), rtol=1e-6)


def test_resnet_twin_numbers_are_plain_pytorchs_bit_for_bit():
    x = twins.inputs("resnet")[0]
    model = twins.resnet(blocks=3)
    graph, run = _trace(model, x)
    plain = twins.resnet(blocks=3)
    xp = x.clone().requires_grad_(True)
    loss = plain(xp).sum()
    loss.backward()
    assert run.loss == float(loss.detach())
    for name, p in plain.named_parameters():
        np.testing.assert_array_equal(_arr(run.param_grads[name]), p.grad.double().numpy())
    np.testing.assert_array_equal(_arr(run.grads["x"]), xp.grad.double().numpy())


def test_resnet_twin_in_the_autograd_view_every_edge_carries_its_gradient():
    graph, run = _trace(twins.resnet(blocks=2), *twins.inputs("resnet"), view="autograd")
    assert _edges_without_gradient(graph, run) == []
    adds = [n for n in graph if n.op == "AddBackward0"]
    assert len(adds) == 2 and all(run.edge_grads[(n.id, 1)] is not None for n in adds)


# ---- the kinds of in-place op -------------------------------------------------------------------

class SetItem(nn.Module):
    """x[i] = v with v needing a gradient, x += x, a masked_fill_, an in-place ReLU by keyword."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 6)
        self.b = nn.Linear(4, 6)

    def forward(self, x):
        h = self.a(x) * 1.0
        v = self.b(x)
        h[:, 1:3] = v[:, 1:3]            # __setitem__ with basic indexing: CopySlices
        h[torch.tensor([0, 4])] = v[torch.tensor([1, 2])] * 2   # advanced indexing: index_put_
        h += h                          # both edges from one tensor
        h.masked_fill_(h > 1.5, 0.0)
        F.relu(input=h, inplace=True)
        return h


def _plain_grads(model_cls, x):
    torch.manual_seed(0)
    m = model_cls()
    xp = x.clone().requires_grad_(True)
    m(xp).sum().backward()
    return m, xp


def test_setitem_iadd_masked_fill_and_keyword_inplace_keep_their_gradients():
    torch.manual_seed(0)
    model = SetItem()
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(1))
    graph, run = _trace(model, x)
    assert _edges_without_gradient(graph, run) == []
    iadd = next(n for n in graph if n.op == "add_")
    assert iadd.inputs[0] == iadd.inputs[1]
    np.testing.assert_array_equal(_arr(run.edge_grads[(iadd.id, 0)]), _arr(run.edge_grads[(iadd.id, 1)]))
    # h + h: each edge carries the gradient of the sum, and the two of them are what reaches h
    src = iadd.inputs[0]
    np.testing.assert_allclose(2 * _arr(run.edge_grads[(iadd.id, 0)]), _arr(run.grads[src]), rtol=1e-6)
    m, xp = _plain_grads(SetItem, x)
    for name, p in m.named_parameters():
        np.testing.assert_array_equal(_arr(run.param_grads[name]), p.grad.double().numpy())
    np.testing.assert_array_equal(_arr(run.grads["x"]), xp.grad.double().numpy())


class ViewWrite(nn.Module):
    """An in-place op on a view changes its base: what reads the base later reads the op's result."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 6)
        self.b = nn.Linear(6, 3)

    def forward(self, x):
        h = self.a(x) * 1.0
        h[:, :2].mul_(3.0)              # writes through a view into h
        return self.b(h)


def test_an_in_place_op_on_a_view_is_drawn_writing_into_its_base():
    torch.manual_seed(0)
    model = ViewWrite()
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(1))
    graph, run = _trace(model, x)
    mul_ = next(n for n in graph if n.op == "mul_")
    lin = graph["b/linear"]
    # b reads h as the mul_ left it: the base is mul_'s second output, and h before is its input
    assert lin.inputs[0] == mul_.id and lin.meta["out_index"][0] == 1
    assert mul_.inputs[-1] == "mul"            # h = a(x) * 1.0, before the write
    before, after = run.edge_values[(mul_.id, len(mul_.inputs) - 1)], run.values[mul_.id][1]
    np.testing.assert_allclose(_arr(after)[:, :2], 3 * _arr(before)[:, :2], rtol=1e-6)
    np.testing.assert_array_equal(_arr(after)[:, 2:], _arr(before)[:, 2:])
    # autograd sends the gradient to the base (CopySlices), and the picture says so
    g_base = run.edge_grads[(mul_.id, len(mul_.inputs) - 1)]
    torch.manual_seed(0)
    m = ViewWrite()
    h = m.a(x) * 1.0
    h.retain_grad()
    m.b(torch.cat([h[:, :2] * 3.0, h[:, 2:]], 1)).sum().backward()     # the same, out of place
    np.testing.assert_allclose(_arr(g_base), h.grad.double().numpy(), rtol=1e-6)
    for name, p in m.named_parameters():
        np.testing.assert_allclose(_arr(run.param_grads[name]), p.grad.double().numpy(), rtol=1e-6)


class OnInput(nn.Module):
    """Changes its input in place, as plain PyTorch allows when the input needs no gradient."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x.mul_(2)
        return self.fc(x).relu()


@pytest.mark.parametrize("view", ["ops", "autograd"])
def test_an_in_place_op_on_the_input_is_drawn(view):
    torch.manual_seed(0)
    model = OnInput()
    x = torch.randn(2, 4, generator=torch.Generator().manual_seed(1))
    keep = x.clone()
    graph, run = _trace(model, x, view=view)
    assert torch.equal(x, keep)                     # the caller's tensor is left as it was
    torch.manual_seed(0)
    plain = OnInput()
    xp = x.clone().requires_grad_(True)
    loss = plain(xp * 1.0).sum()                   # plain PyTorch on a non-leaf copy, as cgviz runs it
    loss.backward()
    assert run.loss == float(loss.detach())
    for name, p in plain.named_parameters():
        np.testing.assert_array_equal(_arr(run.param_grads[name]), p.grad.double().numpy())
    if view == "ops":
        mul_ = next(n for n in graph if n.op == "mul_")
        assert mul_.inputs == ("x",) and graph["fc/linear"].inputs[0] == mul_.id
        np.testing.assert_array_equal(_arr(run.grads["x"]), xp.grad.double().numpy())
        np.testing.assert_array_equal(_arr(run.edge_grads[(mul_.id, 0)]), xp.grad.double().numpy())
        assert _edges_without_gradient(graph, run) == []
    else:
        assert not any(n.op == "CloneBackward0" for n in graph)     # cgviz's own copy is not drawn
        assert any(n.op == "MulBackward0" for n in graph)


class Penalty(nn.Module):
    """A gradient penalty: torch.autograd.grad inside forward, with create_graph."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 1)

    def forward(self, x):
        y = self.fc(x).tanh().sum()
        (g,) = torch.autograd.grad(y, x, create_graph=True)
        return y + g.pow(2).sum()


def test_autograd_grad_inside_forward_is_drawn_with_plain_pytorchs_numbers():
    torch.manual_seed(0)
    model = Penalty()
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(1))
    d = cgviz.draw(model, x)
    doc = d.to_dict()
    grad = next(n for n in doc["nodes"] if n["op"] == "grad")
    assert sorted(grad["inputs"]) == sorted(["x", "sum"])
    assert any("torch.autograd.grad" in n and "does not draw" in n for n in d.notes)
    torch.manual_seed(0)
    plain = Penalty()
    xp = x.clone().requires_grad_(True)
    loss = plain(xp * 1.0)
    loss.backward()
    assert doc["model"]["loss_value"] == float(loss.detach())
    for name, p in plain.named_parameters():
        assert doc["param_grad_norms"][name] == pytest.approx(float(p.grad.norm()), rel=1e-6)
    x_node = next(n for n in doc["nodes"] if n["id"] == "x")
    np.testing.assert_allclose(np.asarray(x_node["grad"]), xp.grad.numpy(), rtol=1e-6)


def test_in_place_on_a_parameter_is_pytorchs_own_error():
    class Bad(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(3))

        def forward(self, x):
            self.w.mul_(2)
            return x * self.w

    with pytest.raises(cgviz.CgvizError, match="leaf Variable that requires grad"):
        cgviz.draw(Bad(), torch.ones(3))


def test_out_argument_under_no_grad_draws_the_written_tensor():
    class Out(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 3)

        def forward(self, x):
            buf = torch.zeros(2, 3)
            with torch.no_grad():
                torch.mul(x, 2.0, out=buf)
            return self.fc(buf)

    torch.manual_seed(0)
    x = torch.randn(2, 3, generator=torch.Generator().manual_seed(1))
    graph, run = _trace(Out(), x)
    mul = next(n for n in graph if n.op == "mul")
    assert graph["fc/linear"].inputs[0] == mul.id
    np.testing.assert_allclose(_arr(run.values[mul.id]), 2 * x.double().numpy(), rtol=1e-6)


@pytest.mark.parametrize("cls", [SetItem, ViewWrite, OnInput, Penalty], ids=lambda c: c.__name__)
def test_the_autograd_view_of_in_place_models_has_every_gradient(cls):
    torch.manual_seed(0)
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(1))
    graph, run = _trace(cls(), x, view="autograd")
    assert _edges_without_gradient(graph, run) == []
    if cls in (SetItem, ViewWrite):
        assert any(n.op == "CopySlices" for n in graph)        # autograd's own record of the write
