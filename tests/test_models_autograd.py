"""The autograd view: torchviz's node set, gradients equal to plain PyTorch's, stable ids."""

from __future__ import annotations

import re
import warnings
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cgviz.pytorch.autograd import AutogradRecorder

import torchviz


# ---- small models -------------------------------------------------------------------------------
class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(x + self.bn2(self.conv2(y)))


class ResCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.layers = nn.Sequential(Block(4), Block(4))
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        x = F.max_pool2d(self.layers(self.stem(x)), 2)
        return self.head(x.mean(dim=(2, 3)))


class Attention(nn.Module):
    def __init__(self, vocab=11, d=8):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, vocab)

    def forward(self, ids):
        h = self.emb(ids)
        q, k, v = self.qkv(h).chunk(3, dim=-1)      # one grad_fn with three outputs
        att = torch.softmax(q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5, dim=-1)
        h = self.norm(h + self.proj(att @ v))
        return self.out(h)


class Shared(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 3)

    def forward(self, x):
        return self.lin(torch.relu(self.lin(x)))


class Scale(torch.autograd.Function):
    """A custom Function: make_dot draws its saved tensors even without show_saved."""

    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return x * w

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        return g * w, (g * x).sum(0)


class Custom(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 3)
        self.w = nn.Parameter(torch.randn(3))

    def forward(self, x):
        return Scale.apply(self.lin(x), self.w)


def _mse(out):
    return F.mse_loss(out, torch.zeros_like(out))


CASES = {
    "mlp": (MLP, lambda: (torch.randn(5, 4),), _mse),
    "rescnn": (ResCNN, lambda: (torch.randn(2, 1, 6, 6),), lambda out: out.sum()),
    "attention": (Attention, lambda: (torch.randint(0, 11, (2, 5)),),
                  lambda out: F.cross_entropy(out.reshape(-1, 11), torch.arange(10) % 11)),
    "shared": (Shared, lambda: (torch.randn(4, 3),), lambda out: out.sum()),
    "custom": (Custom, lambda: (torch.randn(4, 3),), lambda out: out.sum()),
    # a one-number output taken as the loss, the way `compute_loss` does it: a view of the output
    "scalar": (MLP, lambda: (torch.randn(1, 4),), lambda out: out[:, :1].reshape(())),
}


def _run(case, seed=0):
    """Forward, hooks, backward: (model, loss, graph, run)."""
    cls, make_args, loss_fn = CASES[case]
    torch.manual_seed(seed)
    model = cls()
    args = make_args()
    loss = loss_fn(model(*args))
    rec = AutogradRecorder(loss, dict(model.named_parameters()), {"x": args[0]})
    loss.backward()
    graph, run = rec.result()
    return model, loss, graph, run


# ---- torchviz's picture, parsed -----------------------------------------------------------------
NODE = re.compile(r'^\t(\d+) \[label=(?:"((?:[^"\\]|\\.)*)"|([^\s\]]+))(?: fillcolor=(\w+))?', re.S)
EDGE = re.compile(r"^\t(\d+) -> (\d+)")


def _torchviz(loss, model):
    """make_dot's nodes (id → (label, fill colours)) and its number of edges.

    A tensor drawn twice (a parameter a custom Function also saved) is one node with two colours."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")       # torchviz imports distutils' LooseVersion
        dot = torchviz.make_dot(loss, params=dict(model.named_parameters()))
    nodes, edges = {}, 0
    for line in dot.body:
        if m := EDGE.match(line):
            edges += 1
        elif m := NODE.match(line):
            label = m.group(2) if m.group(2) is not None else m.group(3)
            nodes.setdefault(m.group(1), (label, set()))[1].add(m.group(4))
    return nodes, edges


def _leaf_vars(graph):
    """Our AccumulateGrad variables: the leaves an AccumulateGrad node reads."""
    return {n.inputs[0] for n in graph if n.op == "AccumulateGrad"}


@pytest.mark.parametrize("case", list(CASES))
def test_node_set_matches_torchviz(case):
    # make_dot reads the graph before backward frees its saved tensors
    cls, make_args, loss_fn = CASES[case]
    torch.manual_seed(0)
    model = cls()
    args = make_args()
    loss = loss_fn(model(*args))
    theirs, their_edges = _torchviz(loss, model)
    rec = AutogradRecorder(loss, dict(model.named_parameters()), {"x": args[0]})
    loss.backward()
    graph, _ = rec.result()

    their_fns = Counter(label for label, colors in theirs.values() if colors == {None})
    our_fns = Counter(n.op for n in graph if n.kind == "op" and n.op not in ("output", "base"))
    assert our_fns == their_fns
    their_params = {label.split("\n")[0] for label, colors in theirs.values() if "lightblue" in colors}
    our_params = {graph[i].name for i in _leaf_vars(graph) if graph[i].kind == "param"}
    assert our_params == their_params - {""}
    assert len(_leaf_vars(graph)) == sum("lightblue" in colors for _, colors in theirs.values())
    assert len(graph) == len(theirs)
    assert len(graph.edges()) == their_edges


@pytest.mark.parametrize("case", list(CASES))
def test_param_grads_equal_pytorch(case):
    model, _, graph, run = _run(case)
    for name, p in model.named_parameters():
        assert name in graph and graph[name].kind == "param"
        want = float(p.grad.norm())
        assert run.grads[name].norm == pytest.approx(want, rel=1e-5)
        assert run.param_grads[name].norm == pytest.approx(want, rel=1e-5)
        assert run.grads[f"{name}/AccumulateGrad"].norm == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("case", list(CASES))
def test_edge_grads_are_consistent(case):
    model, loss, graph, run = _run(case)
    consumers = graph.consumers()
    for acc in (n for n in graph if n.op == "AccumulateGrad"):
        grad = dict(model.named_parameters())[acc.inputs[0]].grad
        assert run.edge_grads[(acc.id, 0)].norm == pytest.approx(float(grad.norm()), rel=1e-5)
        uses = [run.edge_grads[(e.dst, e.arg)] for e in consumers[acc.id]]
        if len(uses) == 1:
            assert uses[0].norm == pytest.approx(float(grad.norm()), rel=1e-5)
        # several uses (the shared Linear): autograd's sum of the edges is what accumulated
        total = sum(u.values for u in uses)
        np.testing.assert_allclose(total, grad.numpy(), rtol=1e-5, atol=1e-7)
    root = graph.meta["root"]
    assert graph.output == "output" and graph["output"].inputs[0] == root
    assert loss.dim() == 0
    assert float(run.grads[root].values) == 1.0
    assert float(run.edge_grads[("output", 0)].values) == 1.0


def test_every_hooked_edge_got_its_gradient():
    _, _, graph, run = _run("attention")
    missing = [(n.id, k) for n in graph if n.kind == "op" and n.op not in ("output", "base")
               for k in range(len(n.inputs) - n.meta.get("saved", 0)) if run.edge_grads[(n.id, k)] is None]
    assert missing == []
    split = next(n for n in graph if n.op == "SplitBackward0")
    assert isinstance(run.values[split.id], list) and len(run.values[split.id]) == 3
    users = [n for n in graph if split.id in n.inputs]
    assert sorted({n.meta["out_index"][n.inputs.index(split.id)] for n in users}) == [0, 1, 2]


def test_ids_are_deterministic_and_readable():
    _, _, g1, _ = _run("rescnn", seed=0)
    _, _, g2, _ = _run("rescnn", seed=1)
    assert [(n.id, n.kind, n.op, n.inputs) for n in g1] == [(n.id, n.kind, n.op, n.inputs) for n in g2]
    assert g1.edges() == g2.edges()
    ids = [n.id for n in g1]
    assert "layers.0.conv1.weight" in ids and "layers.0.conv1.weight/AccumulateGrad" in ids
    assert "ConvolutionBackward0" in ids and "ConvolutionBackward0_2" in ids
    assert not any(re.search(r"0x[0-9a-f]{6,}|\d{9,}", i) for i in ids)
    assert ids[-1] == "output"
    # forward numbering: the stem convolution comes first
    assert g1["ConvolutionBackward0"].inputs == ("stem.weight/AccumulateGrad", "stem.bias/AccumulateGrad")


def test_topological_order_and_kinds():
    _, _, graph, run = _run("custom")
    seen = set()
    for n in graph:
        assert set(n.inputs) <= seen
        seen.add(n.id)
    kinds = {n.id: n.kind for n in graph}
    assert kinds["w"] == kinds["lin.weight"] == "param"
    scale = next(n for n in graph if n.op == "ScaleBackward")
    assert scale.meta["saved"] == 2 and "w" in scale.inputs     # the saved weight is the param's box
    assert all(n.meta["module"] == "" for n in graph if n.kind == "op")
    assert run.values["w"].shape == (3,)


def test_named_input_leaf():
    torch.manual_seed(0)
    model = MLP()
    x = torch.randn(2, 4, requires_grad=True)
    loss = model(x).sum()
    rec = AutogradRecorder(loss, dict(model.named_parameters()), {"x": x})
    loss.backward()
    graph, run = rec.result()
    assert graph["x"].kind == "input" and graph["x"].name == "x"
    assert run.grads["x"].norm == pytest.approx(float(x.grad.norm()), rel=1e-5)
    assert "x" not in run.param_grads


def test_unnamed_leaf_and_view_output():
    a = torch.randn(3, requires_grad=True)
    b = torch.randn(3, requires_grad=True)
    loss = (a * b).sum().reshape(())
    rec = AutogradRecorder(loss, {})
    loss.backward()
    graph, run = rec.result()
    assert [n.id for n in graph if n.kind != "op"] == ["leaf", "leaf_2"]
    assert graph["output"].inputs == ("ViewBackward0", "output/base")
    assert graph["output/base"].inputs == ("SumBackward0",)
    assert run.grads["leaf"].norm == pytest.approx(float(a.grad.norm()))


def test_leaf_loss():
    w = nn.Parameter(torch.tensor(2.0))
    rec = AutogradRecorder(w, {"w": w})
    w.backward()
    graph, run = rec.result()
    assert [n.id for n in graph] == ["w"] and graph.output == "w"
    assert float(run.param_grads["w"].values) == 1.0


def test_hooks_are_removed():
    torch.manual_seed(0)
    model = MLP()
    loss = model(torch.randn(2, 4)).sum()
    rec = AutogradRecorder(loss, dict(model.named_parameters()))
    loss.backward(retain_graph=True)
    _, run = rec.result()
    before = dict(run.edge_grads), dict(run.grads)
    loss.backward()
    assert all(run.edge_grads[k] is v for k, v in before[0].items())
    assert all(run.grads[k] is v for k, v in before[1].items())
