"""Learning-rate steps (`render --lr`) and gradient descent (`cgviz train`), checked against torch.optim."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cgviz.route.expression import evaluate
from cgviz.view.plots import loss_curve, spans_decades
from cgviz.lang.train import LARGE_STEP, step, suggest_lr, train
from conftest import ROOT

SAMPLES = ROOT / "sample_graphs"
PIZZA = SAMPLES / "pizza.cg"


def test_pizza_lr_step_shows_the_new_weight_and_warns(cli, tmp_path):
    out = tmp_path / "pizza.dot"
    r = cli("render", PIZZA, "--lr", "0.001", "-o", out)
    assert r.exit_code == 0, r.stderr
    assert "w goes 0.5 → -3.5" in r.stderr and "8× its size" in r.stderr
    assert "try --lr 1e-5" in r.stderr
    dot = out.read_text()
    assert "w: 0.5 → -3.5" in dot and "the step is 8× its size" in dot
    assert "w ← w − 0.001 · ∂L/∂w" in dot
    doc = json.loads(cli("render", PIZZA, "--lr", "0.001", "-f", "json", "-o", "-").stdout)
    assert doc["step"]["updated"] == {"w": -3.5} and doc["step"]["large"] == ["w"]
    assert doc["step"]["scale"] == 1.0 and doc["step"]["clip_norm"] is None


def test_a_small_step_does_not_warn(cli, tmp_path):
    r = cli("render", PIZZA, "--lr", "1e-5", "-o", tmp_path / "p.dot")
    # (pizza's w is still flagged as an exploding gradient, ‖g‖/‖w‖ = 8000: that is cgviz.diagnose.health's warning)
    assert r.exit_code == 0 and "its size" not in r.stderr and "too large" not in r.stderr
    assert "w: 0.5 → 0.46" in (tmp_path / "p.dot").read_text()


def test_lr_usage_mistakes_exit_2(cli):
    assert cli("render", PIZZA, "--lr", "0.1", "--no-grad", "-f", "dot").exit_code == 2
    assert cli("render", PIZZA, "--clip-norm", "1", "-f", "dot").exit_code == 2
    assert cli("render", PIZZA, "--lr", "-1", "-f", "dot").exit_code == 2
    assert cli("train", PIZZA, "--lr", "0").exit_code == 2


@pytest.mark.parametrize("clip", [None, 0.05])
def test_step_matches_torch_sgd_with_clip_grad_norm(clip):
    import torch
    from cgviz.check.torch_ops import torch_run

    res = evaluate((SAMPLES / "three_layer.cg").read_text(), "three_layer.cg")
    s = step(res.graph, res.run, 0.3, clip)
    _, grads = torch_run(res.graph)
    ids = [n.id for n in res.graph if n.kind == "param"]
    ps = [torch.tensor(res.run.values[i], dtype=torch.float64, requires_grad=True) for i in ids]
    for p, i in zip(ps, ids):
        p.grad = torch.tensor(grads[i])
    if clip is not None:
        total = torch.nn.utils.clip_grad_norm_(ps, clip)
        assert np.isclose(float(total), s.grad_norm) and s.clipped
    torch.optim.SGD(ps, lr=0.3).step()
    for p, i in zip(ps, ids):
        np.testing.assert_allclose(s.updated[i], p.detach().numpy(), rtol=1e-6, atol=1e-12)


def test_suggested_rate_gives_steps_near_a_tenth():
    res = evaluate(PIZZA.read_text(), "pizza.cg")
    s = step(res.graph, res.run, 0.001)
    lr = suggest_lr(s, res.run)
    assert lr == 1e-5
    gentle = step(res.graph, res.run, lr)
    assert not gentle.large and abs(gentle.delta["w"]) / 0.5 <= 0.1 + 1e-12
    # a zero param (a fresh bias) is never called "large": any step is infinite against 0
    res0 = evaluate("input x = 1\nparam b = 0\nloss L = (x + b)^2\n", "b.cg")
    assert step(res0.graph, res0.run, 10).large == [] and LARGE_STEP > 0


def test_train_pizza_follows_the_hand_computed_losses():
    """w ← w − lr · 2(200w − 90) · 200 while the ReLU is open: the loss shrinks by (1 − 0.8)² each step."""
    res = evaluate(PIZZA.read_text(), "pizza.cg")
    run, hist = train(res.graph, 1e-5, 5)
    w = 0.5
    expected = []
    for k in range(6):
        expected.append((200 * w - 90) ** 2)
        if k < 5:
            w -= 1e-5 * 2 * (200 * w - 90) * 200
    np.testing.assert_allclose(hist.losses, expected, rtol=1e-12)
    assert np.isclose(float(run.values["w"]), w) and hist.stopped is None


def test_train_command_writes_curve_and_graph(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = cli("train", PIZZA, "--lr", "1e-5", "--steps", "5")
    assert r.exit_code == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("step")]
    assert len(lines) == 5 and lines[0].startswith("step 1/5  loss 100  ‖∂L/∂θ‖ 4000")
    assert "loss 100 → 1.024e-5 in 5 steps" in r.stderr
    with Image.open(tmp_path / "pizza_loss.png") as im:
        im.verify()
    with Image.open(tmp_path / "pizza_trained.png") as im:
        assert im.format == "PNG"
    r = cli("train", PIZZA, "--lr", "1e-5", "--steps", "3", "-o", "t.dot", "--curve", "c.png", "-q")
    assert r.exit_code == 0 and r.stdout == ""
    assert "after 3 steps of gradient descent, lr 1e-5; loss 100 → 0.0064" in (tmp_path / "t.dot").read_text()


def test_clipping_is_applied_and_shown(cli, tmp_path):
    r = cli("train", SAMPLES / "three_layer.cg", "--lr", "1", "--steps", "20", "--clip-norm", "0.05",
            "-o", tmp_path / "t.dot", "--curve", tmp_path / "c.png")
    assert r.exit_code == 0, r.stderr
    assert "clipped ×" in r.stdout
    assert "clip-norm 0.05 (20 of 20 steps clipped)" in (tmp_path / "t.dot").read_text()


def test_a_diverging_run_stops_with_a_clear_message(cli, tmp_path):
    r = cli("train", SAMPLES / "exploding.cg", "--lr", "1", "--steps", "50", "-o", tmp_path / "g.dot",
            "--curve", tmp_path / "c.png")
    assert r.exit_code == 1
    assert "the loss became -inf before step 5" in r.stderr and "smaller --lr" in r.stderr
    assert "Traceback" not in r.stderr
    assert (tmp_path / "c.png").exists() and (tmp_path / "g.dot").exists()


def test_dead_relu_and_rising_loss_are_reported(cli, tmp_path):
    r = cli("train", PIZZA, "--lr", "0.001", "--steps", "5", "-o", tmp_path / "g.dot", "--curve",
            tmp_path / "c.png", "-q")
    assert r.exit_code == 0
    assert "the loss went up (100 → 8100)" in r.stderr and "the gradient is 0 from step 2" in r.stderr


def test_nothing_to_train_and_bad_curve_name(cli, tmp_path):
    f = tmp_path / "noparam.cg"
    f.write_text("input x = 2\nloss L = x^2\n")
    r = cli("train", f, "--lr", "0.1", "-o", tmp_path / "o.dot", "--curve", tmp_path / "c.png")
    assert r.exit_code == 1 and "no float param" in r.stderr
    assert cli("train", PIZZA, "--lr", "0.1", "--curve", tmp_path / "c.svg").exit_code == 2


def test_loss_curve_switches_to_log_scale_when_it_spans_decades():
    png, info = loss_curve([100, 4, 0.16, 0.0064], [False, True, False])
    assert info == {"points": 4, "log": True, "clipped": [1]}
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert not spans_decades([3, 2.5, 2]) and not spans_decades([1, -1, 0.001])
    _, info = loss_curve([1.0, float("nan")], stopped="NaN")
    assert info["points"] == 1 and not info["log"]


def test_the_page_keeps_every_step_up_to_sixty_then_spreads_them():
    from cgviz.lang.train import frame_steps
    assert frame_steps(5) == {0, 1, 2, 3, 4, 5}
    big = frame_steps(1000)
    assert len(big) == 60 and {0, 1000} <= big


def test_train_writes_a_page_with_a_step_slider(cli, tmp_path):
    r = cli("train", SAMPLES / "exploding.cg", "--lr", "1", "--steps", "50", "-o", tmp_path / "t.html",
            "--curve", tmp_path / "c.png")
    assert r.exit_code == 1                                  # diverged at step 5: the page still shows 0 … 4
    text = (tmp_path / "t.html").read_text()
    data = json.loads(text.split('id="cgviz-data">')[1].split("</script>")[0])
    assert [f["step"] for f in data["train"]["frames"]] == [0, 1, 2, 3, 4]
    assert data["train"]["frames"][-1]["loss"] == "loss L = -inf" and 'id="train-step"' in text


def test_a_step_that_overflows_stops_training_and_names_the_param(cli, tmp_path):
    # lr·g = 1e308 · 4000 overflows: w would become -inf, the ReLU would die and hide it (loss 8100, ∇ 0)
    r = cli("train", ROOT / "sample_graphs" / "pizza.cg", "--lr", "1e308", "--steps", "3",
            "-o", tmp_path / "t.svg", "--curve", tmp_path / "t.png")
    assert r.exit_code == 1 and "step 1 made w infinite" in r.stderr and "overflowed" in r.stderr
    assert "Warning" not in r.stderr and ".py:" not in r.stderr
    r = cli("render", ROOT / "sample_graphs" / "pizza.cg", "--lr", "1e308", "-o", tmp_path / "r.svg")
    assert r.exit_code == 0 and "the step makes w infinite" in r.stderr
