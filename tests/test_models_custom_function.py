"""Custom autograd Functions in the ops view (cgviz.pytorch.record.Recorder.function): one op named by
the Function's class, whose input edges carry what the Function's own backward gave (not the
no-grad ops its forward ran), and torch.utils.checkpoint (reentrant and not) recorded once with
the gradients PyTorch computed. Every number is checked against plain PyTorch: the gradients the
Function's backward node sent (its grad_inputs, read off a hook on that node) and every parameter's."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from cgviz.pytorch.load import Loaded
from cgviz.route.model import picture_model
from cgviz.pytorch.trace import TraceOptions


# ---- Functions ----------------------------------------------------------------------------------

class StraightThrough(torch.autograd.Function):
    """round in forward, the identity in backward."""

    @staticmethod
    def forward(ctx, x):
        return x.round()

    @staticmethod
    def backward(ctx, g):
        return g


class GradReverse(torch.autograd.Function):
    """the identity in forward, -λ·g in backward."""

    @staticmethod
    def forward(ctx, x, lam):
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return -ctx.lam * g, None


class DoubleInPlace(torch.autograd.Function):
    """Writes its input in place (ctx.mark_dirty): x·2, backward 2·g."""

    @staticmethod
    def forward(ctx, x):
        x.mul_(2)
        ctx.mark_dirty(x)
        return x

    @staticmethod
    def backward(ctx, g):
        return 2 * g


class ScaleShift(torch.autograd.Function):
    """Two outputs, a non-tensor argument, a tensor argument with no gradient (None) and a clipped
    gradient for the other: (x·w, x + w), backward clamps x's gradient to ±0.05."""

    @staticmethod
    def forward(ctx, x, w, mode):
        ctx.save_for_backward(x, w)
        ctx.mode = mode
        return x * w, x + w

    @staticmethod
    def backward(ctx, g1, g2):
        x, w = ctx.saved_tensors
        gx = (g1 * w + g2).clamp(-0.05, 0.05) if ctx.mode == "clip" else g1 * w + g2
        return gx, None, None


# ---- models: each keeps the outputs of its Function calls (plain PyTorch hooks their grad_fn) ----

class SteNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 6), nn.Linear(6, 3)

    def forward(self, x):
        h = StraightThrough.apply(self.a(x) * 3)
        self.kept = [h]
        return self.b(h)


class ReverseNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.feat, self.head, self.adv = nn.Linear(4, 6), nn.Linear(6, 2), nn.Linear(6, 2)

    def forward(self, x):
        f = torch.tanh(self.feat(x))
        r = GradReverse.apply(f, 0.5)
        self.kept = [r]
        return self.head(f).sum() + (self.adv(r) ** 2).sum()


class TwoOutNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 5)
        self.w = nn.Parameter(torch.linspace(-1, 1, 5))

    def forward(self, x):
        p, s = ScaleShift.apply(self.a(x), self.w, "clip")
        self.kept = [p]
        return (p * s).sum() + (s ** 2).sum()


class DirtyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 6), nn.Linear(6, 3)

    def forward(self, x):
        h = self.a(x)
        y = DoubleInPlace.apply(h)
        self.kept = [y]
        return self.b(y) + h.sum()         # h, read after: the doubled tensor, drawn from the Function


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(6, 6)

    def forward(self, x):
        h = StraightThrough.apply(self.lin(x))
        self.kept = [h]
        return torch.tanh(h) + x


class BlockNet(nn.Module):
    def __init__(self, n=4):
        super().__init__()
        self.inp = nn.Linear(4, 6)
        self.blocks = nn.ModuleList(Block() for _ in range(n))

    def forward(self, x):
        h = self.inp(x)
        for b in self.blocks:
            h = b(h)
        self.kept = [k for b in self.blocks for k in b.kept]
        return h


class CheckpointNet(nn.Module):
    def __init__(self, reentrant):
        super().__init__()
        self.reentrant = reentrant
        self.a, self.b, self.c = nn.Linear(4, 6), nn.Linear(6, 6), nn.Linear(6, 3)

    def block(self, h):
        # dropout: the recomputation must draw the same random numbers as the forward did
        return torch.nn.functional.dropout(torch.tanh(self.b(h)), 0.3, self.training) * h

    def forward(self, x):
        h = self.a(x)
        h = checkpoint(self.block, h, use_reentrant=self.reentrant)
        self.kept = []
        return self.c(h)


def _x(seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(3, 4, generator=g) * 2


def _make(factory):
    torch.manual_seed(0)
    return factory()


# ---- plain PyTorch and cgviz ------------------------------------------------------------------

def _plain(model, x):
    """Plain PyTorch on a copy: each parameter's gradient, and for each kept Function output the
    grad_inputs its backward node sent (None where it sent none)."""
    model = copy.deepcopy(model)
    x = x.clone().requires_grad_(True)
    torch.manual_seed(0)
    out = model(x)
    sent = []
    for t in model.kept:
        got = {}
        sent.append(got)
        t.grad_fn.register_hook(lambda gi, go, got=got: got.update(gi=gi))
    out.sum().backward()
    return {n: p.grad for n, p in model.named_parameters()}, [g["gi"] for g in sent]


def _trace(model, x, view="ops", fold=False):
    d = picture_model(Loaded("memory", model, "test", (x,), {}), TraceOptions(view=view), fold=fold)
    return d


def _arr(info):
    assert info is not None and info.values is not None
    return np.asarray(info.values)


def _close(info, t):
    assert info is not None, "no gradient drawn where PyTorch sent one"
    np.testing.assert_allclose(_arr(info), t.detach().numpy(), rtol=1e-5, atol=1e-6)


def _function_nodes(graph):
    return [n for n in graph if n.kind == "op" and n.meta.get("custom_function")]


def _check_params(run, plain_params):
    for name, g in plain_params.items():
        if g is None:
            assert run.param_grads.get(name) is None, name
        else:
            _close(run.param_grads[name], g)


def _check_every_edge_against_its_consumer(graph, run):
    """No op of the picture ran under no_grad with gradients flowing around it: a float edge whose
    source and consumer both got a gradient carries one (the Function's inner round() would not)."""
    for node in graph:
        if node.kind != "op":
            continue
        for k, src in enumerate(node.inputs):
            v = run.edge_values.get((node.id, k))
            if v is None or not v.dtype.startswith("float"):
                continue
            if run.grads.get(src) is not None and run.grads.get(node.id) is not None:
                assert run.edge_grads.get((node.id, k)) is not None, (src, node.id, k)


CASES = {"straight-through": SteNet, "gradient reversal": ReverseNet, "two outputs": TwoOutNet,
         "in place": DirtyNet, "in a repeated block": BlockNet}


@pytest.mark.parametrize("case", list(CASES))
def test_a_custom_function_is_one_op_whose_edges_carry_what_its_backward_sent(case):
    model, x = _make(CASES[case]), _x()
    params, sent = _plain(model, x)
    d = _trace(model, x)
    graph, run = d.graph, d.run
    nodes = _function_nodes(graph)
    assert len(nodes) == len(sent)
    for node, gi in zip(nodes, sent):
        cls = node.op
        assert node.meta["custom_function"] == cls
        assert node.meta["defined"].startswith("test_models_custom_function.py:")
        tensors = [k for k in range(len(node.inputs))]
        # grad_inputs are per tensor argument, in order (a non-tensor argument has no entry)
        assert len(gi) == len(tensors)
        for k in tensors:
            if gi[k] is None:
                assert run.edge_grads.get((node.id, k)) is None
            else:
                _close(run.edge_grads.get((node.id, k)), gi[k])
    # what the forward ran inside is named on the node, not drawn: no `round` op without a gradient
    ops = {n.op for n in graph if n.kind == "op"}
    assert not ops & {"round", "view_as", "mul_"}
    _check_params(run, params)
    _check_every_edge_against_its_consumer(graph, run)


def test_the_straight_through_edge_is_the_identity_not_round_s_zero():
    model, x = _make(SteNet), _x()
    d = _trace(model, x)
    (node,) = _function_nodes(d.graph)
    assert node.op == "StraightThrough" and node.meta["forward_ops"] == ("round",)
    # identity backward: the gradient into the Function equals the gradient out of it
    _close(d.run.edge_grads[(node.id, 0)], torch.as_tensor(_arr(d.run.grads[node.id])))
    assert np.abs(_arr(d.run.edge_grads[(node.id, 0)])).sum() > 0        # round's own would be 0


def test_gradient_reversal_flips_the_sign_along_its_edge():
    model, x = _make(ReverseNet), _x()
    d = _trace(model, x)
    (node,) = _function_nodes(d.graph)
    into, out = _arr(d.run.edge_grads[(node.id, 0)]), _arr(d.run.grads[node.id])
    np.testing.assert_allclose(into, -0.5 * out, rtol=1e-6)
    assert np.abs(out).sum() > 0


def test_two_outputs_and_a_none_gradient():
    model, x = _make(TwoOutNet), _x()
    d = _trace(model, x)
    (node,) = _function_nodes(d.graph)
    assert node.inputs[1] == "w"                   # the parameter, whose gradient backward says is None
    assert d.run.edge_grads.get((node.id, 1)) is None and d.run.param_grads["w"] is None
    assert np.abs(_arr(d.run.edge_grads[(node.id, 0)])).max() <= 0.05 + 1e-7     # clipped
    consumers = {m.id: m.meta["out_index"] for m in d.graph if node.id in m.inputs}
    assert {i for idx in consumers.values() for i in idx} >= {0, 1}        # both outputs are drawn from it


@pytest.mark.parametrize("reentrant", [True, False])
def test_checkpoint_is_drawn_once_with_true_gradients(reentrant):
    model, x = _make(lambda: CheckpointNet(reentrant)), _x()
    params, _ = _plain(model, x)
    d = _trace(model, x)
    ops = [n.op for n in d.graph if n.kind == "op"]
    assert ops.count("tanh") == 1 and ops.count("linear") == 3       # the recomputation is not drawn
    assert "CheckpointFunction" not in ops
    _check_params(d.run, params)
    _check_every_edge_against_its_consumer(d.graph, d.run)
    # the edge into tanh carries the gradient PyTorch's recomputed block sent along it
    m = copy.deepcopy(model)
    torch.manual_seed(0)
    h = m.a(x.clone().requires_grad_(True))
    z = m.b(h)
    z.retain_grad()
    m.c(torch.nn.functional.dropout(torch.tanh(z), 0.3, True) * h).sum().backward()
    tanh = next(n for n in d.graph if n.op == "tanh")
    _close(d.run.edge_grads[(tanh.id, 0)], z.grad)


def test_reentrant_checkpoint_of_inputs_without_gradient_leaves_the_block_without_one():
    """PyTorch's own rule: a reentrant checkpoint whose inputs want no gradient gives its parameters
    none. The picture says so instead of drawing gradients PyTorch never computed."""
    class Frozen(nn.Module):
        def __init__(self):
            super().__init__()
            self.b, self.c = nn.Linear(4, 4), nn.Linear(4, 2)

        def forward(self, x):
            h = checkpoint(self.b, x.detach(), use_reentrant=True)
            self.kept = []
            return self.c(h)

    model, x = _make(Frozen), _x()
    with pytest.warns(UserWarning):
        params, _ = _plain(model, x)
    assert params["b.weight"] is None
    d = _trace(model, x)
    _check_params(d.run, params)
    assert any("use_reentrant=True (test_models_custom_function.py:" in n and "no gradient inside the block" in n
               for n in d.notes)


def test_a_folded_block_with_a_function_folds_and_keeps_its_numbers():
    model, x = _make(lambda: BlockNet(4)), _x()
    d = _trace(model, x, fold=True)
    folds = [g for g in d.pic.groups.values() if g.style == "fold"]
    assert len(folds) == 1 and folds[0].n == 4
    assert "StraightThrough" in d.dot()


@pytest.mark.parametrize("reentrant", [True, False])
def test_the_autograd_view_agrees_on_checkpoint(reentrant):
    """Both views give a checkpointed model's parameters the same gradients; the autograd view draws
    what autograd holds: one CheckpointFunctionBackward (reentrant) or the block's own nodes."""
    model, x = _make(lambda: CheckpointNet(reentrant)), _x()
    ops, ag = _trace(model, x), _trace(model, x, view="autograd")
    for name, g in ops.run.param_grads.items():
        np.testing.assert_allclose(_arr(ag.run.param_grads[name]), _arr(g), rtol=1e-6)
    back = {n.op for n in ag.graph}
    assert ("CheckpointFunctionBackward" in back) == reentrant and ("TanhBackward0" in back) != reentrant


def test_the_autograd_view_agrees():
    """`--view autograd` draws StraightThroughBackward, sending the same gradient as the ops view's
    edge into StraightThrough, and both views give the same parameter gradients."""
    model, x = _make(SteNet), _x()
    ops, ag = _trace(model, x), _trace(model, x, view="autograd")
    (node,) = _function_nodes(ops.graph)
    back = [n for n in ag.graph if n.op == "StraightThroughBackward"]
    assert len(back) == 1
    np.testing.assert_allclose(_arr(ag.run.edge_grads[(back[0].id, 0)]),
                               _arr(ops.run.edge_grads[(node.id, 0)]), rtol=1e-6)
    for name, g in ops.run.param_grads.items():
        np.testing.assert_allclose(_arr(ag.run.param_grads[name]), _arr(g), rtol=1e-6)


def test_the_node_says_what_it_is_and_profile_finds_it():
    from cgviz.pytorch.trace import trace
    model, x = _make(SteNet), _x()
    d = _trace(model, x)
    tip = next(line for line in d.dot().splitlines() if line.lstrip().startswith('"StraightThrough" ['))
    assert ("custom autograd.Function StraightThrough "
            "(test_models_custom_function.py:") in tip and "ran round under no_grad" in tip
    prof = trace(Loaded("memory", model, "test", (x,), {}), TraceOptions(profile=1)).run.profile
    assert "StraightThrough" in prof.nodes and "round" not in prof.nodes


def test_function_apply_is_given_back_even_when_forward_fails():
    from cgviz.core.errors import CgvizError
    real = torch.autograd.Function.__dict__["apply"]

    class Broken(nn.Module):
        def forward(self, x):
            StraightThrough.apply(x)
            raise ValueError("no")

    _trace(_make(SteNet), _x())
    assert torch.autograd.Function.__dict__["apply"] is real
    with pytest.raises(CgvizError):
        _trace(Broken(), _x())
    assert torch.autograd.Function.__dict__["apply"] is real
    # and a Function applied outside cgviz is plain PyTorch again
    x = torch.ones(2, requires_grad=True)
    assert type(StraightThrough.apply(x * 1.4).grad_fn).__name__ == "StraightThroughBackward"


def test_the_json_names_the_function_and_the_checkpointed_ops(tmp_path):
    import json

    from cgviz.view.export import to_json
    d = _trace(_make(SteNet), _x())
    doc = json.loads(to_json(d.graph, d.run))
    (item,) = [n for n in doc["nodes"] if n.get("custom_function")]
    assert item["op"] == "StraightThrough" and item["custom_function"]["forward_ops"] == ["round"]
    assert item["custom_function"]["defined"].startswith("test_models_custom_function.py:")
    d = _trace(_make(lambda: CheckpointNet(True)), _x())
    doc = json.loads(to_json(d.graph, d.run))
    assert sorted(n["op"] for n in doc["nodes"] if n.get("checkpoint") == "reentrant") == [
        "dropout", "linear", "mul", "tanh"]


def test_a_function_that_writes_its_input_in_place_is_where_later_reads_come_from():
    model, x = _make(DirtyNet), _x()
    d = _trace(model, x)
    (node,) = _function_nodes(d.graph)
    readers = [m.op for m in d.graph if node.id in m.inputs]
    assert sorted(readers) == ["linear", "sum"]          # b(y) and h.sum(): h is the doubled tensor
    # the edge into it shows h before it was doubled, the node h after
    np.testing.assert_allclose(2 * _arr(d.run.edge_values[(node.id, 0)]), _arr(d.run.values[node.id]), rtol=1e-6)
