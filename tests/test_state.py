"""A module, its inputs and the process are given back exactly as they were after every cgviz call
(cgviz.pytorch.state), checked bit for bit by tests/state_oracle.py: parameters and buffers (bytes,
dtype, device, identity, version counter), .grad, requires_grad, train/eval flags, hooks, and the
global random generators; under every option of draw(), and through every entry point."""

from __future__ import annotations

import random
import sys
import textwrap
import types

import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.nn.utils import parametrizations

import cgviz
from cgviz.core.errors import CgvizError
from state_oracle import capture, differences


class Zoo(nn.Module):
    """Most of what holds state: an embedding tied to the head, an LSTM (its cached weight list), batch
    norm (running statistics), dropout (the random generator), a weight-norm parametrization."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 6)
        self.lstm = nn.LSTM(6, 6, batch_first=True)
        self.fc = nn.Linear(6, 6)
        self.bn = nn.BatchNorm1d(6)
        self.drop = nn.Dropout(0.5)
        self.norm = parametrizations.weight_norm(nn.Linear(6, 6))
        self.head = nn.Linear(6, 10)
        self.head.weight = self.emb.weight          # tied

    def forward(self, ids):
        x, _ = self.lstm(self.emb(ids))
        x = self.drop(self.bn(self.fc(x[:, -1])))
        return self.head(self.norm(x))


def zoo():
    """A Zoo as a user leaves it mid-training: moved statistics, gradients accumulated, one frozen
    parameter, mixed train/eval flags, the user's own module and tensor hooks."""
    torch.manual_seed(0)
    m = Zoo()
    ids = torch.randint(0, 10, (4, 5))
    for _ in range(2):
        m(ids).sum().backward()
    m.fc.bias.requires_grad_(False)
    m.fc.bias.grad = None
    m.drop.eval()
    calls = []
    m.fc.register_forward_hook(lambda mod, a, out: calls.append(1))
    m.head.bias.register_hook(lambda g: g * 1)
    m.head.bias.register_post_accumulate_grad_hook(lambda p: calls.append(2))
    return m, ids


OPTIONS = [
    {}, {"rankdir": "LR"}, {"vanish": 1e-6, "explode": 1e6}, {"max_elements": 1000}, {"timeout": 30},
    {"dtype": "bfloat16"}, {"dtype": "float64"}, {"dtype": "float16"}, {"mode": "train"}, {"mode": "eval"},
    {"meta": True}, {"loss": "ce"}, {"loss": "mse"}, {"loss": "mean"}, {"view": "autograd"}, {"depth": 1},
    {"fold": False}, {"focus": "lstm"}, {"grad": False}, {"simplify": False}, {"seed": 7},
    {"dtype": "float64", "mode": "train", "loss": "ce", "view": "autograd"},
    {"meta": True, "mode": "train", "dtype": "bfloat16"},
]


def _seeded_process():
    torch.manual_seed(1234)
    random.seed(5)
    np.random.seed(6)


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "defaults")
def test_draw_gives_the_module_inputs_and_process_back_bit_for_bit(options):
    m, ids = zoo()
    _seeded_process()
    before = capture([m], [ids])
    try:
        d = cgviz.draw(m, ids, **options)
    except CgvizError:          # a combination cgviz refuses (float16 LSTM on CPU …) must give back too
        d = None
    assert differences(before, capture([m], [ids])) == []
    if d is not None and not options.get("meta") and options.get("grad", True):
        assert any(d[n].grad is not None for n in d)     # the run had its own gradients all the same


def test_draw_with_input_size_and_forward_kwargs_gives_everything_back():
    m, ids = zoo()
    _seeded_process()
    before = capture([m], [ids])
    cgviz.draw(m, input_size="4,5:long", mode="train")
    cgviz.draw(m, forward_kwargs={"ids": ids}, dtype="float64")
    assert differences(before, capture([m], [ids])) == []


def test_the_issues_reproduction_bfloat16_leaves_the_weights_unrounded():
    m, x = nn.Linear(3, 3), torch.randn(2, 3)
    w = m.weight.detach().clone()
    cgviz.draw(m, x, dtype="bfloat16")
    assert m.weight.dtype == torch.float32 and torch.equal(m.weight, w)
    cgviz.gradient_health(m, x, dtype="float16")
    assert m.weight.dtype == torch.float32 and torch.equal(m.weight, w)


def test_draw_does_not_reseed_the_callers_random_generators():
    m, x = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5)), torch.randn(2, 3)
    torch.manual_seed(0), random.seed(0), np.random.seed(0)
    want = torch.rand(3), random.random(), np.random.rand()
    torch.manual_seed(0), random.seed(0), np.random.seed(0)
    cgviz.draw(m, x, mode="train", seed=0)
    assert torch.equal(torch.rand(3), want[0]) and random.random() == want[1] and np.random.rand() == want[2]


def test_batch_norm_statistics_do_not_move_in_train_mode():
    bn = nn.BatchNorm1d(3)
    cgviz.draw(bn, torch.randn(4, 3) + 5, mode="train")
    assert torch.equal(bn.running_mean, torch.zeros(3)) and torch.equal(bn.running_var, torch.ones(3))
    assert int(bn.num_batches_tracked) == 0


def test_a_graph_the_user_holds_still_runs_backward_after_a_draw():
    """No version counter of the user's tensors moves, so autograd does not see an in-place change."""
    m, x = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)).eval(), torch.randn(4, 3)
    loss = m(x).sum()
    cgviz.draw(m, x, dtype="bfloat16", mode="train")
    loss.backward()
    plain = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)).eval()
    plain.load_state_dict(m.state_dict())
    plain(x).sum().backward()
    assert torch.equal(m[0].weight.grad, plain[0].weight.grad)


def test_the_drawn_gradients_are_the_runs_own_not_the_accumulated_ones():
    m, x = nn.Linear(3, 2), torch.randn(4, 3)
    m.weight.grad = torch.full((2, 3), 100.0)
    fresh = nn.Linear(3, 2)
    fresh.load_state_dict(m.state_dict())
    fresh(x).sum().backward()
    d = cgviz.draw(m, x)
    assert d["weight"].grad.values == pytest.approx(fresh.weight.grad.numpy())
    rows = {r.name: r for r in cgviz.gradient_health(m, x).rows}
    assert rows["weight"].grad_norm == pytest.approx(float(fresh.weight.grad.norm()), rel=1e-6)
    assert torch.equal(m.weight.grad, torch.full((2, 3), 100.0))


def test_the_users_gradient_hooks_apply_to_the_drawn_gradient_but_post_accumulate_hooks_do_not_run():
    m, x = nn.Linear(3, 1), torch.randn(4, 3)
    seen = []
    m.bias.register_hook(lambda g: g * 10)
    m.bias.register_post_accumulate_grad_hook(lambda p: seen.append("stepped"))   # an optimizer in backward
    d = cgviz.draw(m, x)
    assert d["bias"].grad.values == pytest.approx([40.0])    # 4 rows, times 10 by the hook
    assert seen == [] and m.bias.grad is None


def test_a_function_gives_back_the_modules_and_tensors_it_closes_over():
    m = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    w = torch.randn(3, requires_grad=True)
    w.grad = torch.full((3,), 7.0)
    m[0].weight.grad = torch.ones(3, 3)
    x = torch.randn(4, 3)
    before = capture([m], [w, x])
    d = cgviz.draw(lambda x: (m(x) * w).sum(), x, mode="train", dtype="float64")
    assert differences(before, capture([m], [w, x])) == []
    # the function's modules are drawn by name, with their gradients
    assert d["m.0.weight"].grad is not None and d.graph["m.0.weight"].kind == "param"


def test_a_bound_method_and_a_partial_are_followed_to_their_modules():
    import functools
    m, x = nn.Linear(3, 3), torch.randn(2, 3)
    before = capture([m], [x])
    assert "self.weight" in cgviz.draw(m.forward, x)
    assert "arg0.weight" in cgviz.draw(functools.partial(lambda mod, x: mod(x), m), x)
    assert differences(before, capture([m], [x])) == []


def test_the_inputs_are_not_changed_by_a_forward_that_changes_them_in_place():
    class Counts(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 3)

        def forward(self, x, counts, cache):
            counts += 1                   # an integer tensor, changed in place
            cache.append(x.shape[0])      # a list a forward appends to, as a key-value cache does
            return self.fc(x)

    m, x, counts, cache = Counts(), torch.randn(2, 3), torch.zeros(3, dtype=torch.long), []
    before = capture([m], [x, counts])
    cgviz.draw(m, x, counts, cache)
    assert differences(before, capture([m], [x, counts])) == [] and cache == []


def test_a_lazy_module_stays_lazy_and_a_script_module_unchanged():
    lazy = nn.Sequential(nn.LazyLinear(3), nn.Tanh())
    cgviz.draw(lazy, torch.randn(2, 4))
    assert isinstance(lazy[0], nn.LazyLinear) and lazy[0].has_uninitialized_params()
    script = torch.jit.script(nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)))
    x = torch.randn(4, 3)
    before = capture([script], [x])
    cgviz.draw(script, x, dtype="float64", mode="train")
    assert differences(before, capture([script], [x])) == []


def test_a_failing_forward_gives_everything_back_too():
    class Fails(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.bn = nn.Linear(3, 3), nn.BatchNorm1d(3)

        def forward(self, x):
            self.bn(self.fc(x))
            raise ValueError("broken on purpose")

    m, x = Fails(), torch.randn(4, 3)
    _seeded_process()
    before = capture([m], [x])
    with pytest.raises(CgvizError, match="broken on purpose"):
        cgviz.draw(m, x, dtype="float64", mode="train")
    assert differences(before, capture([m], [x])) == []


# ---- item 12: a module on the meta device ----------------------------------------------------------
def test_a_module_built_on_the_meta_device_draws_as_the_advice_says():
    with torch.device("meta"):
        m = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    d = cgviz.draw(m, input_size=(2, 3))
    assert d.loss is None and d["0.weight"].value.shape == (4, 3)
    d = cgviz.draw(m, torch.randn(2, 3))          # a real input moves to the meta device with it
    assert d.graph["2/linear"].op == "linear"
    assert all(p.device.type == "meta" for p in m.parameters())


def test_meta_true_on_a_real_module_in_memory_draws_shapes_and_gives_the_weights_back():
    m, x = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)), torch.randn(2, 3)
    before = capture([m], [x])
    d = cgviz.draw(m, x, meta=True)
    assert d.loss is None and d["0.weight"].grad is None and len(d) > 3
    assert differences(before, capture([m], [x])) == []


def test_meta_with_a_dtype_converts_the_module_as_it_converts_the_inputs():
    m, x = nn.Sequential(Recurrent(), nn.Linear(4, 2)), torch.randn(3, 4)
    before = capture([m], [x])
    d = cgviz.draw(m, x, meta=True, dtype="bfloat16")
    assert d["1.weight"].value.dtype == "bfloat16"
    assert differences(before, capture([m], [x])) == []


class Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(4, 4, batch_first=True)

    def forward(self, x):
        return self.rnn(x.unsqueeze(1))[0][:, -1]


def test_the_meta_errors_of_other_commands_point_at_a_real_run():
    with torch.device("meta"):
        m = nn.Linear(3, 3)
    with pytest.raises(CgvizError, match="meta"):
        cgviz.gradient_health(m, input_size=(2, 3))


# ---- every other entry point -------------------------------------------------------------------------
def test_make_dot_leaves_no_hook_on_the_users_graph_even_when_it_fails(monkeypatch):
    from cgviz.pytorch import autograd
    made = []
    real = autograd.AutogradRecorder

    class Spy(real):
        def __init__(self, *a, **k):
            made.append(self)
            super().__init__(*a, **k)
    monkeypatch.setattr(autograd, "AutogradRecorder", Spy)

    class Refuses(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            raise RuntimeError("no backward here")

    w = torch.ones(2, requires_grad=True)
    with pytest.raises(CgvizError, match="no backward here"):
        cgviz.make_dot(Refuses.apply(w).sum(), params={"w": w})
    y = (w * w).sum()
    cgviz.make_dot(y, params={"w": w})
    assert made and all(not r.handles for r in made)
    y.backward()
    assert torch.equal(w.grad, torch.full((2,), 2.0))


def _shared_module_file(tmp_path, monkeypatch) -> tuple:
    """A model file that imports the user's live module (as `from mypackage import model` does)."""
    torch.manual_seed(3)
    shared = types.ModuleType("cgviz_test_shared")
    shared.model = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3), nn.Dropout(0.3), nn.Linear(3, 2))
    shared.model[0].weight.grad = torch.ones(3, 3)
    monkeypatch.setitem(sys.modules, "cgviz_test_shared", shared)
    path = tmp_path / "net.py"
    path.write_text(textwrap.dedent("""\
        import torch
        from cgviz_test_shared import model
        example_inputs = (torch.randn(4, 3),)
        """))
    return shared.model, path


def test_weights_load_into_copies_not_into_a_module_a_model_file_imports(tmp_path, monkeypatch):
    model, path = _shared_module_file(tmp_path, monkeypatch)
    other = {k: torch.full_like(v, 0.25) if v.is_floating_point() else v for k, v in model.state_dict().items()}
    torch.save(other, tmp_path / "weights.pt")
    before = capture([model])
    d = cgviz.draw(str(path), weights=str(tmp_path / "weights.pt"), mode="eval")
    assert d["0.weight"].value.stats["mean"] == pytest.approx(0.25)
    assert differences(before, capture([model])) == []


@pytest.mark.parametrize("call", ["draw", "gradient_health", "check_gradients", "explain", "train"])
def test_every_api_call_gives_back_a_module_it_reaches_and_the_process(call, tmp_path, monkeypatch):
    model, path = _shared_module_file(tmp_path, monkeypatch)
    _seeded_process()
    before = capture([model])
    pizza = "input x = 200\nparam w = randn(seed=3)\nconst y = 90\nloss L = (relu(w * x) - y)^2\n"
    {"draw": lambda: cgviz.draw(str(path), dtype="float64", mode="train", loss="mse"),
     "gradient_health": lambda: cgviz.gradient_health(str(path), dtype="bfloat16", mode="train"),
     "check_gradients": lambda: cgviz.check_gradients(str(path), mode="train", dtype="float64"),
     "explain": lambda: cgviz.explain(pizza),
     "train": lambda: cgviz.train(pizza, lr=1e-6, steps=3, format="dot")}[call]()
    assert differences(before, capture([model])) == []


def test_the_command_line_gives_back_a_live_module_under_profile(cli, tmp_path, monkeypatch):
    model, path = _shared_module_file(tmp_path, monkeypatch)
    _seeded_process()
    before = capture([model])
    for args in (["--train", "--dtype", "float64", "--profile"], ["--meta"], ["--view", "autograd", "--train"]):
        r = cli("torch", path, "-o", tmp_path / "out.json", *args)
        assert r.exit_code == 0, r.output
    r = cli("grads", path, "--dtype", "bfloat16", "-o", tmp_path / "g.png", "--hist", tmp_path / "h.png")
    assert differences(before, capture([model])) == []


def test_the_pytest_fixture_gives_the_module_back(pytester):
    pytester.syspathinsert(str(__import__("pathlib").Path(__file__).parent))
    pytester.makepyfile(test_fixture="""
        import torch, torch.nn as nn
        from state_oracle import capture, differences

        def test_it(graph_snapshot):
            torch.manual_seed(0)
            m, x = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)), torch.randn(4, 3)
            m[0].weight.grad = torch.ones(3, 3)
            before = capture([m], [x])
            graph_snapshot(m, x, dtype="float64", mode="train")
            assert differences(before, capture([m], [x])) == []
        """)
    pytester.runpytest_inprocess("-p", "no:cacheprovider", "--cgviz-update").assert_outcomes(passed=1)
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
