"""cgviz.pytorch.script: TorchScript graphs interpreted from Python match the compiled forward."""

from __future__ import annotations

import contextlib
import io
import math
from typing import Dict, List, Optional, Tuple, Union

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from cgviz.pytorch.script import run_script

# torch.jit is deprecated in favour of torch.export, and the tracer warns about Python-side values;
# neither is what these tests look at.
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")]


# ---- models ------------------------------------------------------------------------------------
class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 8)
        self.bn = nn.BatchNorm1d(8)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(self.act(self.bn(self.fc1(x))))


class Block(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + x)


class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.layers = nn.ModuleList([Block(8), Block(8)])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x)
        return self.fc(torch.flatten(self.pool(x), 1))


class Attention(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        hd = C // self.heads
        q = q.view(B, T, self.heads, hd).transpose(1, 2)
        k = k.view(B, T, self.heads, hd).transpose(1, 2)
        v = v.reshape(B, T, self.heads, hd).transpose(1, 2)
        att = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(hd)
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool, device=x.device), diagonal=1)
        att = F.softmax(att.masked_fill(mask, float("-inf")), dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.proj(y)


class Transformer(nn.Module):
    def __init__(self, vocab: int = 11, d: int = 16):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.ln1 = nn.LayerNorm(d)
        self.attn = Attention(d, 2)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.head = nn.Linear(d, vocab)

    def forward(self, idx):
        x = self.emb(idx)
        x = x + self.attn(self.ln1(x))
        x = x + self.mlp(self.ln2(x))
        return self.head(x)


class Cell(nn.Module):
    def __init__(self):
        super().__init__()
        self.ih = nn.Linear(4, 8)
        self.hh = nn.Linear(8, 8, bias=False)

    def forward(self, x, h):
        return torch.tanh(self.ih(x) + self.hh(h))


class RNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.cell = Cell()
        self.out = nn.Linear(8, 2)

    def forward(self, xs):
        h = torch.zeros(xs.size(1), 8, dtype=xs.dtype)
        outs: List[Tensor] = []
        for t in range(xs.size(0)):
            h = self.cell(xs[t], h)
            outs.append(h)
        return self.out(torch.stack(outs).mean(0))


class DictIn(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.Linear(4, 4)

    def forward(self, batch: Dict[str, Tensor]) -> Tuple[Tensor, Optional[Tensor], Tensor]:
        y = self.enc(batch["x"])
        if "mask" in batch:
            y = y * batch["mask"]
        aux: Optional[Tensor] = None
        if y.dtype == torch.float32 and y.device == batch["x"].device:
            aux = y.relu()
        return y, None, aux if aux is not None else y


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 4)

    def forward(self, x):
        if x.sum() > 0:
            return self.a(x).sigmoid()
        return self.b(x) * 2


def _seed(m: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    for p in m.parameters():
        nn.init.normal_(p, std=0.3)
    return m


CASES = {
    "mlp": (MLP, lambda: (torch.randn(5, 6),), {"linear", "batch_norm", "relu"}),
    "resnet": (ResNet, lambda: (torch.randn(2, 3, 8, 8),),
               {"batch_norm", "relu", "adaptive_avg_pool2d", "flatten", "linear", "add"}),
    "transformer": (Transformer, lambda: (torch.randint(0, 11, (2, 7)),),
                    {"embedding", "layer_norm", "matmul", "softmax", "masked_fill", "transpose",
                     "gelu", "linear", "triu"}),
    "rnn": (RNN, lambda: (torch.randn(20, 3, 4),), {"linear", "tanh", "stack", "mean", "add"}),
    "branch_pos": (Branchy, lambda: (torch.rand(3, 4),), {"linear", "sigmoid"}),
    "branch_neg": (Branchy, lambda: (-torch.rand(3, 4),), {"linear", "mul"}),
}


def _conv(how: str) -> str:
    """The tracer records convolutions as the lower-level _convolution; scripting keeps conv2d."""
    return "_convolution" if how.startswith("trace") else "conv2d"


# A trace bakes in the branch it saw and drops the test (`x.sum() > 0`) as dead code.
CONDITION = {"sum", "gt"}


# ---- helpers -----------------------------------------------------------------------------------
class Ops(TorchFunctionMode):
    """Every torch call, by short name (aten.conv2d.default → conv2d)."""

    def __init__(self):
        super().__init__()
        self.names: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.names.append((getattr(func, "__name__", None) or str(func)).split(".")[0])
        return func(*args, **(kwargs or {}))


def _compile(model: nn.Module, how: str, args):
    """how: script | trace, with "+load" for a round trip through torch.jit.save/torch.jit.load."""
    if how.startswith("trace"):
        compiled = torch.jit.trace(model, args, check_trace=False)
    else:
        compiled = torch.jit.script(model)
    if how.endswith("+load"):
        buf = io.BytesIO()
        torch.jit.save(compiled, buf)
        buf.seek(0)
        return torch.jit.load(buf)
    return compiled


def _total(out) -> Tensor:
    if isinstance(out, Tensor):
        return out.float().sum()
    return sum(_total(o) for o in out if o is not None)


def _grads(sm, run) -> dict[str, Tensor]:
    sm.zero_grad(set_to_none=True)
    _total(run()).backward()
    return {n: None if p.grad is None else p.grad.clone() for n, p in sm.named_parameters()}


def _eager_scopes(model: nn.Module, args) -> list[tuple[str, str]]:
    """What forward pre-hooks on the eager model see: the oracle for the scope callback."""
    seen, names = [], {id(m): n for n, m in model.named_modules()}
    hooks = [m.register_forward_pre_hook(lambda m, a: seen.append((names[id(m)], type(m).__name__)))
             for n, m in model.named_modules() if n]
    with torch.no_grad():
        model(*args)
    for h in hooks:
        h.remove()
    return seen


def _scope_log():
    log = []

    def scope(path, cls):
        log.append((path, cls))
        return contextlib.nullcontext()
    return log, scope


def _same(a, b):
    if isinstance(a, Tensor):
        assert isinstance(b, Tensor) and a.dtype == b.dtype and torch.allclose(a, b, atol=1e-5)
    elif isinstance(a, (tuple, list)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    else:
        assert a == b


# ---- tests -------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["script", "trace", "script+load", "trace+load"])
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("case", list(CASES))
def test_matches_compiled_forward(case, train, how):
    cls, make_args, ops = CASES[case]
    args = make_args()
    model = _seed(cls()).train(train)
    sm = _compile(model, how, args).train(train)
    # In training mode BatchNorm's running statistics move on every forward, but its output uses
    # the batch's own statistics, so repeated runs still agree.
    expected_grads = _grads(sm, lambda: sm(*args))
    expected = sm(*args)

    log, scope = _scope_log()
    mode = Ops()
    with mode:
        got = run_script(sm, args, scope=scope)
    _same(got, expected)
    got_grads = _grads(sm, lambda: run_script(sm, args))
    assert got_grads.keys() == expected_grads.keys()
    for n, g in expected_grads.items():
        # the branch not taken leaves its parameters without a gradient, in both runs
        assert (got_grads[n] is None) == (g is None), n
        assert g is None or torch.allclose(got_grads[n], g, atol=1e-5), n

    wanted = ops | ({_conv(how)} if case == "resnet" else set())
    wanted |= CONDITION if case.startswith("branch") and not how.startswith("trace") else set()
    assert wanted <= set(mode.names), wanted - set(mode.names)
    assert log == _eager_scopes(model, args)


def test_compiled_forward_hides_ops_from_the_mode():
    """Why the interpreter exists: the compiled forward runs in C++ where the mode cannot look."""
    sm = torch.jit.script(_seed(MLP()).eval())
    mode = Ops()
    with mode:
        sm(torch.randn(2, 6))
    assert "linear" not in mode.names


def test_rnn_loop_enters_the_cell_scope_per_step():
    sm = torch.jit.script(_seed(RNN()))
    assert any(n.kind() == "prim::Loop" for n in sm.graph.nodes())
    log, scope = _scope_log()
    run_script(sm, (torch.randn(20, 3, 4),), scope=scope)
    cell = [e for e in log if e[0].startswith("cell")]
    assert cell == [("cell", "Cell"), ("cell.ih", "Linear"), ("cell.hh", "Linear")] * 20
    assert log[-1] == ("out", "Linear")


def test_scope_paths_and_class_names_survive_save_and_load():
    sm = _compile(_seed(ResNet()).eval(), "script+load", None)
    log, scope = _scope_log()
    run_script(sm, (torch.randn(1, 3, 8, 8),), scope=scope)
    assert log[:4] == [("stem", "Conv2d"), ("layers.0", "Block"), ("layers.0.conv1", "Conv2d"),
                       ("layers.0.bn1", "BatchNorm2d")]


def test_dict_input_and_tuple_output_with_none():
    sm = torch.jit.script(_seed(DictIn()))
    batch = {"x": torch.randn(3, 4), "mask": torch.ones(3, 4)}
    y, none, aux = run_script(sm, (batch,))
    assert none is None
    _same((y, aux), tuple(o for o in sm(batch) if o is not None))
    expected = _grads(sm, lambda: sm(batch))
    got = _grads(sm, lambda: run_script(sm, (batch,)))
    assert all(torch.allclose(got[n], g) for n, g in expected.items())
    y, none, aux = run_script(sm, (), {"batch": {"x": torch.randn(3, 4)}})
    assert torch.equal(aux, y.relu())


def test_train_mode_updates_batchnorm_buffers_like_the_compiled_forward():
    sm = torch.jit.script(_seed(MLP()).train())
    run_script(sm, (torch.randn(5, 6),))
    assert int(sm.bn.num_batches_tracked) == 1
    assert not torch.equal(sm.bn.running_mean, torch.zeros(8))


def test_script_functions_and_exceptions():
    """prim::CallFunction into a script function, and prim::RaiseException from BatchNorm's check."""

    @torch.jit.script
    def double(x: Tensor, n: int) -> Tensor:
        for _ in range(n):
            x = x * 2
        return x

    class UsesFn(nn.Module):
        def forward(self, x):
            return double(x, 3)

    sm = torch.jit.script(UsesFn())
    assert torch.equal(run_script(sm, (torch.ones(2),)), torch.full((2,), 8.0))
    with pytest.raises(RuntimeError, match="expected 2D or 3D input"):
        run_script(torch.jit.script(MLP()), (torch.randn(2, 2, 2, 6),))


def test_unsupported_nodes_raise_not_implemented():
    class Forks(nn.Module):
        def forward(self, x):
            fut = torch.jit.fork(torch.neg, x)
            return torch.jit.wait(fut)

    with pytest.raises(NotImplementedError, match="TorchScript node prim::fork is not supported"):
        run_script(torch.jit.script(Forks()), (torch.ones(2),))


def test_argument_binding():
    class Two(nn.Module):
        def forward(self, x, y: Optional[Tensor] = None, k: int = 2):
            return x * k if y is None else x + y

    sm = torch.jit.script(Two())
    x = torch.ones(2)
    assert torch.equal(run_script(sm, (x,)), x * 2)
    assert torch.equal(run_script(sm, (x,), {"k": 5}), x * 5)
    assert torch.equal(run_script(sm, (x, x)), x * 2)
    with pytest.raises(TypeError):
        run_script(sm, (), {})


def test_recorder_attributes_ops_and_parameters_to_modules():
    """With cgviz's recorder: each op lands in its module, each weight is its named parameter."""
    from cgviz.pytorch.record import Recorder

    sm = _compile(_seed(ResNet()).eval(), "script+load", None)
    x = torch.randn(1, 3, 8, 8)
    rec = Recorder(dict(sm.named_parameters()), dict(sm.named_buffers()))
    rec.add_input("x", x)
    with rec:
        out = run_script(sm, (x,), scope=rec.scope)
        loss = out.sum()
    loss.backward()
    graph, run = rec.finish(rec.source_of(loss))
    ops = {(n.op, n.meta["module"]) for n in graph if n.kind == "op"}
    assert {("conv2d", "layers.0.conv1"), ("batch_norm", "layers.1.bn2"), ("linear", "fc"),
            ("adaptive_avg_pool2d", "pool")} <= ops
    params = {n.name for n in graph if n.kind == "param"}
    assert params == {n for n, _ in sm.named_parameters()}
    assert run.param_grads["fc.weight"].norm == pytest.approx(sm.fc.weight.grad.norm().item(), rel=1e-4)


class Odds(nn.Module):
    """Less common TorchScript: attribute writes, no_grad, while, list/tuple/dict ops, isinstance."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.last = torch.zeros(4)
        self.calls = 0

    def pick(self, v: Union[Tensor, List[Tensor]]) -> Tensor:
        if isinstance(v, Tensor):
            return v
        return torch.stack(v).sum(0)

    def forward(self, x):
        self.calls += 1
        ys = [self.lin(x), x * 2, x * 3, x]
        ys = ys[1:] + ys[:1]
        sizes = [3, 1, 2]
        sizes.sort()
        n = min(sizes.index(2), max(sizes)) + sizes.count(1)
        pair: Tuple[int, int, int] = (n, 5, 7)
        a, b = pair[1:]
        d = {"a": ys[0], "b": ys[1]}
        d["c"] = ys[2]
        i = 0
        while i < n:
            x = x + 1
            i += 1
        with torch.no_grad():
            frozen = x * 10
        w = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64).float()
        self.last = d["c"].detach()
        return self.pick([d["a"], d["b"]]) * a + self.pick(ys[3]) * b + frozen + w + x


def test_less_common_nodes_match_the_compiled_forward():
    sm = torch.jit.script(_seed(Odds()))
    kinds = {n.kind() for n in sm.graph.nodes()} | {n.kind() for n in sm.pick.graph.nodes()}
    assert {"prim::SetAttr", "prim::CreateObject", "prim::Enter",
            "prim::DictConstruct", "prim::isinstance", "prim::min", "prim::max"} <= kinds
    x = torch.randn(3, 4)
    expected = sm(x)
    assert torch.allclose(run_script(sm, (x,)), expected)
    assert sm.calls == 2 and torch.equal(sm.last, x)     # ys rotated: d["c"] is x itself
    expected_grads = _grads(sm, lambda: sm(x))
    got = _grads(sm, lambda: run_script(sm, (x,)))
    assert all(torch.allclose(got[n], g) for n, g in expected_grads.items())
    assert torch.is_grad_enabled()
