"""cgviz.watch.analysis on runs that go wrong in known ways: the events and the diagnosis name the layer,
the step range and the cause."""

from __future__ import annotations

import math

import torch

import cgviz
from cgviz.core.fmt import num
from cgviz.watch.analysis import diagnosis, events
from cgviz.watch.read import read_run

from watch_models import log_net, loop, relu_net, sigmoid_mlp


def _run(tmp_path, make, opt, lr, steps, every):
    model, x, y, loss_fn = make()
    o = (torch.optim.SGD if opt == "sgd" else torch.optim.Adam)(model.parameters(), lr=lr)
    path = tmp_path / "run.cgw"
    with cgviz.watch(model, path, every=every, graph=False) as w:
        losses = loop(model, x, y, loss_fn, o, steps, w)
    return read_run(path), losses


def test_a_deep_sigmoid_mlp_s_early_layers_are_named_with_their_steps(tmp_path):
    run, _ = _run(tmp_path, sigmoid_mlp, "sgd", 0.5, 200, 10)
    vanishing = [e for e in events(run) if e.kind == "vanishing"]
    where = {e.where for e in vanishing}
    assert {"0", "2", "4"} <= where            # the first Linear layers
    assert "16" not in where                    # the last layer learns
    first = next(e for e in vanishing if e.where == "0")
    assert first.step_from == 0 and 50 <= first.step_to < 190     # it recovers before the end
    text = " ".join(diagnosis(run))
    assert "first 6 of 9 layers" in text and ("from step 0 to" in text or "at step 0:" in text)
    assert "sigmoid inputs" in text and "Kaiming" in text
    # the input range it quotes is the widest recorded at step 0 over the sigmoids
    lo = min(ms.input_range[0] for m, ms in run.steps[0].modules.items() if ms.input_range)
    assert lo < -5 and f"[{num(lo)}, " in text


def test_a_healthy_relu_net_has_no_event(tmp_path):
    run, _ = _run(tmp_path, relu_net, "adam", 1e-3, 60, 5)
    assert events(run) == []
    assert diagnosis(run) == []


def test_relu_units_die_after_a_too_large_learning_rate(tmp_path):
    run, _ = _run(tmp_path, relu_net, "adam", 0.1, 60, 5)
    assert run.steps[0].modules["3"].dead < 0.1
    dead = [e for e in events(run) if e.kind == "dead"]
    assert [e.where for e in dead] == ["3"]
    assert dead[0].step_from == next(s.step for s in run.steps if s.modules["3"].dead > 0.5) > 0
    assert dead[0].step_to == run.steps[-1].step
    text = " ".join(diagnosis(run))
    assert f"Dead ReLUs in 3 from step {dead[0].step_from}" in text
    assert "smaller learning rate" in text


def _first_nan_plain():
    model, x, y, loss_fn = log_net()
    o = torch.optim.SGD(model.parameters(), lr=0.5)
    losses = loop(model, x, y, loss_fn, o, 30)
    return next(i for i, v in enumerate(losses) if not math.isfinite(v))


def test_nan_is_found_at_its_step_and_op(tmp_path):
    k = _first_nan_plain()         # the step a plain, unwatched run first gives a NaN loss
    assert 1 < k < 29
    run, losses = _run(tmp_path, log_net, "sgd", 0.5, 30, 1)
    nan = [e for e in events(run) if e.kind == "nan"]
    assert len(nan) == 1
    assert (nan[0].step_from, nan[0].where) == (k, "1")
    assert "Log" in nan[0].text and f"step {k}" in nan[0].text
    assert diagnosis(run)[0].startswith(f"NaN or inf first appears at step {k} in 1 (Log)")


def test_nan_on_an_unrecorded_step_is_dated_exactly(tmp_path):
    k = _first_nan_plain()
    run, _ = _run(tmp_path, log_net, "sgd", 0.5, 30, 10)
    assert k % 10 != 0              # the step is not one that was recorded
    nan = [e for e in events(run) if e.kind == "nan"]
    assert nan[0].step_from == k
