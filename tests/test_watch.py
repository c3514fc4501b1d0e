"""cgviz.watch records what plain PyTorch hooks compute, and leaves training exactly as it was."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import cgviz
from cgviz.core.errors import OptionError
from cgviz.watch.read import read_run

from conftest import ROOT
from watch_models import loop, relu_net, sigmoid_mlp


def close(a, b, rel=2e-3):
    """The file keeps 4 significant digits."""
    return a == b or math.isclose(a, b, rel_tol=rel, abs_tol=1e-30)


def _hist(g):
    """16 equal bins from the smallest element to the largest (one distinct value v: v ± |v|/2)."""
    lo, hi = g.min().item(), g.max().item()
    if lo == hi:
        lo, hi = lo - 0.5 * (abs(lo) or 1.0), hi + 0.5 * (abs(hi) or 1.0)
    return torch.histc(g, 16, lo, hi).tolist()


def _by_hand(make, opt_cls, lr, steps, every):
    """The numbers of the recorded steps, computed with plain PyTorch hooks on an unwatched run."""
    model, x, y, loss_fn = make()
    opt = opt_cls(model.parameters(), lr=lr)
    rows = []
    for k in range(steps):
        acts, hooks = {}, []
        if k % every == 0:
            for name, m in model.named_modules():
                if not name:
                    continue

                def fwd(mod, args, out, name=name):
                    d = acts[name] = {"mean": out.mean().item(), "std": out.std().item(), "in": args[0]}
                    if isinstance(mod, nn.ReLU):
                        d["dead"] = 1 - (out > 0).any(dim=0).float().mean().item()
                    if isinstance(mod, nn.Sigmoid):
                        d["saturated"] = ((out <= 0.01) | (out >= 0.99)).float().mean().item()
                    out.register_hook(lambda g: d.__setitem__("grad", g.norm().item()))
                hooks.append(m.register_forward_hook(fwd))
        loss = loss_fn(model(x), y)
        loss.backward()
        for h in hooks:
            h.remove()
        if k % every == 0:
            before = {n: p.detach().clone() for n, p in model.named_parameters()}
            params = {n: {"w": p.norm().item(), "g": p.grad.norm().item(), "hist": _hist(p.grad)}
                      for n, p in model.named_parameters()}
        opt.step()
        if k % every == 0:
            for n, p in model.named_parameters():
                params[n]["update"] = (p.detach() - before[n]).norm().item() / params[n]["w"]
            rows.append((k, loss.item(), params, acts))
        opt.zero_grad(set_to_none=True)
    return rows


@pytest.mark.parametrize("make, opt_cls, lr", [(relu_net, torch.optim.Adam, 0.1),
                                               (sigmoid_mlp, torch.optim.SGD, 0.5)])
def test_the_recorded_numbers_are_those_plain_hooks_compute(tmp_path, make, opt_cls, lr):
    steps, every = 23, 5
    expected = _by_hand(make, opt_cls, lr, steps, every)
    model, x, y, loss_fn = make()
    path = tmp_path / "run.cgw"
    with cgviz.watch(model, path, every=every, graph=False) as w:
        loop(model, x, y, loss_fn, opt_cls(model.parameters(), lr=lr), steps, w)
    run = read_run(path)
    assert [s.step for s in run.steps] == [k for k, *_ in expected] == [0, 5, 10, 15, 20]
    for s, (k, loss, params, acts) in zip(run.steps, expected):
        assert close(s.loss, loss)
        for n, want in params.items():
            got = s.params[n]
            assert close(got.w, want["w"]) and close(got.g, want["g"])
            assert close(got.ratio, want["g"] / want["w"])
            assert close(got.update, want["update"])
            assert got.hist_counts == [int(c) for c in want["hist"]], (k, n, got, want["hist"])
            assert got.nan == got.inf == 0
        assert set(s.modules) == set(acts)
        for m, want in acts.items():
            got = s.modules[m]
            assert close(got.mean, want["mean"]) and close(got.std, want["std"])
            assert close(got.grad, want["grad"])
            if "dead" in want:
                assert close(got.dead, want["dead"])
            if "saturated" in want:
                assert close(got.saturated, want["saturated"])
                assert close(got.input_range[0], want["in"].min().item())
                assert close(got.input_range[1], want["in"].max().item())
            else:
                assert got.saturated is None


class Noisy(nn.Module):
    """Dropout and BatchNorm: a forward that draws random numbers and updates buffers."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.3),
                                 nn.Linear(32, 32), nn.Tanh(), nn.Dropout(0.2), nn.Linear(32, 1))

    def forward(self, x):
        return self.net(x + 0.01 * torch.randn_like(x))


def _noisy_run(path=None, steps=12, every=1):
    torch.manual_seed(3)
    model = Noisy()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = torch.randn(32, 8), torch.randn(32, 1)
    if path is None:
        loop(model, x, y, F.mse_loss, opt, steps)
    else:
        with cgviz.watch(model, path, every=every) as w:     # the graph is drawn too
            loop(model, x, y, F.mse_loss, opt, steps, w)
    return model, torch.get_rng_state()


@pytest.mark.parametrize("every", [1, 5])
def test_a_watched_run_is_bit_identical_to_an_unwatched_one(tmp_path, every):
    plain, rng_plain = _noisy_run()
    watched, rng_watched = _noisy_run(tmp_path / "run.cgw", every=every)
    for (n, a), (_, b) in zip(plain.state_dict().items(), watched.state_dict().items()):
        assert torch.equal(a, b), n
    assert torch.equal(rng_plain, rng_watched)
    run = read_run(tmp_path / "run.cgw")
    assert run.graph["nodes"]
    assert len(run.steps) == len(range(0, 12, every))


def test_the_graph_is_the_model_drawing_folded_without_elements(tmp_path):
    _noisy_run(tmp_path / "run.cgw", steps=2)
    run = read_run(tmp_path / "run.cgw")
    g = run.graph
    ops = {n["op"] for n in g["nodes"] if n["kind"] == "op"}
    assert {"linear", "relu", "tanh"} <= ops
    assert all("value" not in n and "grad" not in n for n in g["nodes"])
    assert g["model"]["folded"] is True
    assert run.header["module_types"]["net.1"] == "BatchNorm1d"


def test_gradient_accumulation_records_the_summed_gradient_and_the_first_micro_batch(tmp_path):
    model, x, y, loss_fn = relu_net()
    path = tmp_path / "run.cgw"
    halves = [(x[:128], y[:128]), (x[128:], y[128:])]
    with cgviz.watch(model, path, every=1, graph=False) as w:
        first_out = None
        for xb, yb in halves:
            out = model(xb)
            first_out = out.detach() if first_out is None else first_out
            (loss_fn(out, yb) / 2).backward()
            loss = loss_fn(out, yb).detach()
        g = model[0].weight.grad.norm().item()
        w.step(loss)
    run = read_run(path)
    s = run.steps[0]
    assert close(s.params["0.weight"].g, g)
    assert close(s.modules["4"].mean, first_out.mean().item())


class BySGD:
    """A hand-written update, which torch.optim's step hook does not see."""

    def __init__(self, params, lr):
        self.params, self.lr = list(params), lr

    def step(self):
        with torch.no_grad():
            for p in self.params:
                p -= self.lr * p.grad

    def zero_grad(self, set_to_none=True):
        for p in self.params:
            p.grad = None


@pytest.mark.parametrize("optimizer", [torch.optim.SGD, BySGD])
def test_an_unrecorded_step_reads_no_tensor_value(tmp_path, monkeypatch, optimizer):
    """Reading a value (item, tolist, float, bool) is what waits for a GPU: none on unrecorded steps."""
    model, x, y, loss_fn = relu_net()
    opt = optimizer(model.parameters(), lr=1e-3)
    with cgviz.watch(model, tmp_path / "run.cgw", every=3, graph=False) as w:
        for k in range(7):
            loss = loss_fn(model(x), y)
            loss.backward()
            with monkeypatch.context() as m:
                if k % 3:
                    for name in ("item", "tolist", "__float__", "__int__", "__bool__", "cpu", "numpy"):
                        m.setattr(torch.Tensor, name, _refuse(name))
                w.step(loss)
                opt.step()
            opt.zero_grad(set_to_none=True)
    run = read_run(tmp_path / "run.cgw")
    assert [s.step for s in run.steps] == [0, 3, 6]
    for s in run.steps:       # the update of the last step, after which no step came, is not known
        u = s.params["0.weight"].update
        assert (u is None) if s.step == 6 and optimizer is BySGD else u > 0


def _refuse(name):
    def read(*args, **kwargs):
        raise AssertionError(f"Tensor.{name} on a step that is not recorded")
    return read


def test_a_parameter_without_gradient_is_recorded_as_none(tmp_path):
    model = nn.ModuleDict({"used": nn.Linear(3, 1), "unused": nn.Linear(3, 1)})
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with cgviz.watch(model, tmp_path / "run.cgw", every=1, graph=False) as w:
        for _ in range(3):
            loss = model["used"](torch.ones(2, 3)).sum()
            loss.backward()
            w.step(loss)
            opt.step()
            opt.zero_grad(set_to_none=True)
    s = read_run(tmp_path / "run.cgw").steps[1]
    assert s.params["unused.weight"].g is None and s.params["unused.weight"].update == 0.0
    assert s.params["used.weight"].g == pytest.approx(math.sqrt(12), rel=1e-3)


def test_a_grad_scaler_s_gradients_are_recorded_unscaled(tmp_path):
    model, x, y, loss_fn = relu_net()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    path = tmp_path / "run.cgw"
    with cgviz.watch(model, path, every=1, graph=False, scaler=scaler) as w:
        loss = loss_fn(model(x), y)
        scaler.scale(loss).backward()
        scaled = model[0].weight.grad.norm().item()
        w.step(loss)
        scaler.step(opt)
        scaler.update()
    s = read_run(path).steps[0]
    assert s.scaled is False
    assert close(s.params["0.weight"].g, scaled / 1024.0)


def test_without_the_scaler_scaled_gradients_are_not_unscaled(tmp_path):
    model, x, y, loss_fn = relu_net()
    with cgviz.watch(model, tmp_path / "run.cgw", every=1, graph=False) as w:
        loss_fn(model(x), y).mul(1024.0).backward()
        g = model[0].weight.grad.norm().item()
        w.step()
    assert close(read_run(tmp_path / "run.cgw").steps[0].params["0.weight"].g, g)


def test_a_compiled_model_s_parameters_are_recorded(tmp_path):
    model, x, y, loss_fn = relu_net()
    compiled = torch.compile(model, backend="aot_eager")
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    with cgviz.watch(compiled, tmp_path / "run.cgw", every=2) as w:
        loop(compiled, x, y, loss_fn, opt, 4, w)
    run = read_run(tmp_path / "run.cgw")
    assert [s.step for s in run.steps] == [0, 2]
    assert "0.weight" in run.steps[0].params            # the names the user knows, not _orig_mod.0.weight
    assert run.steps[0].params["0.weight"].update > 0
    assert "compile" in run.header["note"] and run.graph is not None


def test_bad_arguments_say_what_is_accepted(tmp_path):
    model = nn.Linear(2, 1)
    with pytest.raises(OptionError, match="every=0"):
        cgviz.watch(model, tmp_path / "r.cgw", every=0)
    with pytest.raises(OptionError, match="not a function"):
        cgviz.watch(lambda x: x, tmp_path / "r.cgw")
    with pytest.raises(OptionError, match="folder"):
        cgviz.watch(model, tmp_path)
    w = cgviz.watch(model, tmp_path / "r.cgw")
    with pytest.raises(OptionError, match="outside"):
        w.step()


KILLED = textwrap.dedent("""
    import sys, torch, torch.nn as nn, cgviz
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x = torch.randn(32, 64)
    with cgviz.watch(model, sys.argv[1], every=1, graph=False) as w:
        while True:
            loss = model(x).pow(2).mean()
            loss.backward()
            w.step(loss)
            opt.step()
            opt.zero_grad()
""")


def test_a_run_killed_with_sigkill_keeps_its_complete_records(tmp_path):
    path = tmp_path / "run.cgw"
    script = tmp_path / "loop.py"
    script.write_text(KILLED)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.Popen([sys.executable, str(script), str(path)], env=env)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and (not path.exists() or path.read_bytes().count(b"\n") < 20):
            time.sleep(0.05)
        run = read_run(path)            # readable while the run writes
        assert len(run.steps) >= 18
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    assert p.returncode == -signal.SIGKILL
    run = read_run(path)
    lines = path.read_bytes().split(b"\n")
    assert len(run.steps) >= len(lines) - 3           # the header, a torn line at most, and the last pending step
    assert [s.step for s in run.steps] == list(range(len(run.steps)))
    assert all(json.loads(line) for line in lines[:-1])


def test_the_graph_is_drawn_with_the_loss_given(tmp_path):
    model, x, y, loss_fn = relu_net()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    with cgviz.watch(model, tmp_path / "run.cgw", every=5, loss=nn.MSELoss(), targets=y) as w:
        loop(model, x, y, loss_fn, opt, 2, w)
    g = read_run(tmp_path / "run.cgw").graph
    assert g["model"]["loss"] == "MSELoss(out, targets)"
    assert g["model"]["loss_value"] == pytest.approx(F.mse_loss(relu_net()[0](x), y).item(), rel=1e-5)
    assert callable(cgviz.watch) and cgviz.watch.read.read_run is read_run
