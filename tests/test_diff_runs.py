"""cgviz.compare and `cgviz diff` on training records: two steps of one .cgw (`run.cgw@10`), two records
at a common step; the ranking of what moved, the first diverging step and module, NaN, the pictures,
clean errors (exit 2) and no torch on the way."""

from __future__ import annotations

import json

import pytest
from no_torch import cli_without_torch

import cgviz
from cgviz.diff.classify import ADDED, NUMBERS, REMOVED
from cgviz.diff.runs import RecordSpec, record_spec
from cgviz.watch.read import read_run
from conftest import ROOT
from watch_records import synthetic

TRAINED = ["2.weight", "2.bias", "4.weight", "4.bias"]


def _train(path, lr: float, steps: int = 30) -> None:
    """A 3-layer MLP recorded by cgviz.watch every 5 steps; layer 0 is frozen the way fine-tuning often
    does it, left out of the optimizer (it still has gradients, which the record keeps)."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 1))
    x = torch.randn(64, 8)
    y = x.sum(1, keepdim=True)
    opt = torch.optim.SGD([p for n, p in model.named_parameters() if not n.startswith("0.")], lr=lr)
    with cgviz.watch(model, path, every=5, loss=lambda out: F.mse_loss(out, y)) as w:
        for _ in range(steps):
            loss = F.mse_loss(model(x), y)
            loss.backward()
            w.step(loss)
            opt.step()
            opt.zero_grad(set_to_none=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("runs")
    _train(d / "slow.cgw", 0.01)
    _train(d / "fast.cgw", 0.05)
    return d / "slow.cgw", d / "fast.cgw"


@pytest.fixture(scope="module")
def nan_runs(tmp_path_factory):
    """Two synthetic records from one seed; in `bad` b.weight's gradient (and the loss) is NaN from step 5."""
    d = tmp_path_factory.mktemp("nan")
    params = {"a.weight": [4, 4], "b.weight": [4]}
    synthetic(d / "good.cgw", params, ["a", "act"], 8)
    synthetic(d / "bad.cgw", params, ["a", "act"], 8, nan_at=(5, "b.weight"))
    return d / "good.cgw", d / "bad.cgw"


# ---------------------------------------------------------------- two steps of one record

def test_frozen_layer_does_not_move_and_the_trained_ones_rank_by_how_much(runs):
    slow, _ = runs
    c = cgviz.compare(f"{slow}@first", f"{slow}@last")
    d = c.difference
    assert (d.a_step, d.b_step) == (0, 25) and d.records == 1 and d.curve is None
    frozen = c["0.weight"].changes["‖w‖"]
    assert not frozen.beyond and frozen.relative == 0
    assert {p.name for p in d.unmoved} == {"0.weight", "0.bias"}
    # the frozen layer still has a gradient, and it changed as the layers after it trained
    assert c["0.weight"].status == NUMBERS and c["0.weight"].changes["‖g‖"].beyond
    # the ranking is the record's own ‖w‖ ratios, most first
    run = read_run(slow)
    first, last = run.steps[0].params, run.steps[-1].params
    expected = sorted(TRAINED, key=lambda p: -abs(last[p].w - first[p].w) / first[p].w)
    assert [p.name for p in d.moved] == expected
    assert [p.name for p in c.moved] == expected
    assert any(line.startswith("moved most (‖w‖): " + expected[0]) for line in c.summary)
    assert any(line.startswith("‖w‖ unchanged: 0.weight, 0.bias") for line in c.summary)


def test_first_module_in_forward_order_whose_gradient_changed(runs):
    slow, _ = runs
    c = cgviz.compare(f"{slow}@0", f"{slow}@last")
    assert c.difference.forward_order
    assert [m.name for m in c.difference.modules] == ["0", "1", "2", "3", "4"]
    # layer 0 trains not, but the gradient reaching it comes through the trained layers
    assert c.first_divergence.name == "0" and c.first_divergence.op == "Linear"
    assert c.difference.loss.beyond and c.difference.loss.after < c.difference.loss.before


def test_same_step_is_the_same(runs):
    slow, _ = runs
    c = cgviz.compare(f"{slow}@10", f"{slow}@10")
    assert c.same and not c.difference.ranked and c.first_divergence is None


def test_picture_on_the_records_graph(runs, tmp_path):
    slow, _ = runs
    c = cgviz.compare(f"{slow}@first", f"{slow}@last")
    dot = c.dot
    assert "◆ first gradient divergence" in dot and "4.weight ‖w‖" in dot
    assert "‖∂L/∂out‖" in dot and "parameter or module" not in dot          # drawn on the graph, no table
    assert 'fillcolor="#ff' in dot                                          # changed boxes shaded orange
    for suffix in ("png", "svg", "pdf", "json", "html"):
        out = c.save(tmp_path / f"d.{suffix}")
        assert out.stat().st_size > 500, suffix
    doc = json.loads((tmp_path / "d.json").read_text())
    assert doc["format"] == "cgviz-run-diff" and doc["a"]["step"] == 0 and doc["b"]["step"] == 25
    assert doc["unmoved"] == ["0.weight", "0.bias"] and doc["first_gradient_divergence"] == "0"
    assert "<svg" in (tmp_path / "d.html").read_text()
    assert not list(tmp_path.glob("*.tmp*"))


# ---------------------------------------------------------------- two records

def test_two_learning_rates_part_at_the_first_step_after_the_start(runs):
    slow, fast = runs
    c = cgviz.compare(slow, fast)
    d = c.difference
    assert d.records == 2 and d.a_step == d.b_step == 25              # the last step both recorded
    a, b = read_run(slow), read_run(fast)
    assert a.steps[0].loss == b.steps[0].loss                          # one seed: step 0 is the same run
    assert d.curve == {"steps": 6, "first": 5, "a": a.steps[1].loss, "b": b.steps[1].loss}
    assert any("loss curves first differ beyond tolerance at step 5" in line for line in c.summary)
    # the higher rate moved every trained layer further
    for p in TRAINED:
        assert b.steps[-1].params[p].w != a.steps[-1].params[p].w
    assert not c.same


def test_two_records_at_a_chosen_step(runs):
    slow, fast = runs
    c = cgviz.compare(slow, fast, step=10)
    assert c.difference.a_step == c.difference.b_step == 10
    c0 = cgviz.compare(slow, fast, step=0)
    assert c0["2.weight"].changes["‖w‖"].beyond is False and not c0.difference.loss.beyond
    assert c0.difference.curve["first"] == 5 and not c0.same        # the curves part later all the same


def test_a_nan_appearing_in_one_run(nan_runs):
    good, bad = nan_runs
    c = cgviz.compare(good, bad)
    d = c.difference
    assert d.nonfinite == {"B": 5}
    assert d.curve["first"] == 5                # the same seed: the losses agree until the NaN
    nan = c["b.weight"].changes["NaN"]
    assert (nan.before, nan.after) == (0, 4) and nan.beyond
    assert c.difference.ranked[0].name == "b.weight"
    assert any("NaN/inf first recorded in B at step 5" in line for line in c.summary)
    json.loads(c.json())                        # NaN said as text: valid JSON
    # within the bad run: none up to step 4; from step 0 to the last, it appears at 5, on B's way
    assert cgviz.compare(f"{bad}@0", f"{bad}@4").difference.nonfinite == {}
    assert cgviz.compare(f"{bad}@first", f"{bad}@last").difference.nonfinite == {"B": 5}
    assert cgviz.compare(f"{bad}@6", f"{bad}@last").difference.nonfinite == {"A": 5}


def test_records_of_different_models(tmp_path):
    synthetic(tmp_path / "a.cgw", {"a.weight": [4, 4], "old.weight": [4]}, ["a"], 3)
    synthetic(tmp_path / "b.cgw", {"a.weight": [4, 4], "new.weight": [4]}, ["a", "extra"], 3)
    c = cgviz.compare(tmp_path / "a.cgw", tmp_path / "b.cgw")
    assert c["old.weight"].status == REMOVED and c["new.weight"].status == ADDED
    assert c["extra"].status == ADDED and c.first_divergence.name in ("a", "extra")
    assert any("only in A: old.weight; only in B: new.weight, extra" in line for line in c.summary)
    assert "parameter or module" in c.dot       # no graph recorded: the ranked table


# ---------------------------------------------------------------- the @ syntax

def test_record_spec():
    assert record_spec("run.cgw") == RecordSpec("run.cgw", None)
    assert record_spec("run.cgw@100") == RecordSpec("run.cgw", "100")
    assert record_spec("me@home/run.cgw") == RecordSpec("me@home/run.cgw", None)
    assert record_spec("me@home/run.cgw@last") == RecordSpec("me@home/run.cgw", "last")
    assert record_spec("net.py") is None and record_spec("a@b.cg") is None and record_spec(3) is None


def test_a_file_name_with_an_at_sign(tmp_path):
    d = tmp_path / "me@home"
    d.mkdir()
    synthetic(d / "run.cgw", {"a.weight": [4, 4]}, ["a"], 4)
    c = cgviz.compare(f"{d}/run.cgw@first", f"{d}/run.cgw")       # B: the whole record, at A's step
    assert c.same and c.difference.b_step == 0


# ---------------------------------------------------------------- the command

def test_cli_exit_0_1_and_the_picture(cli, runs, tmp_path):
    slow, fast = runs
    assert cli("diff", f"{slow}@5", f"{slow}@5", "-q").exit_code == 0
    r = cli("diff", f"{slow}@first", f"{slow}@last", "-o", tmp_path / "d.png")
    assert r.exit_code == 1, r.stderr
    assert "moved most (‖w‖)" in r.stdout and (tmp_path / "d.png").read_bytes()[:4] == b"\x89PNG"
    r = cli("diff", slow, fast, "--step", "10", "-o", tmp_path / "d.json")
    assert r.exit_code == 1 and json.loads((tmp_path / "d.json").read_text())["a"]["step"] == 10


@pytest.mark.parametrize("args, words", [
    (["{slow}@7", "{slow}@last"], "step 7 was not recorded ({slow} has 6 recorded steps, 0 to 25, every 5; "
                                  "nearest: 5 and 10)"),
    (["{slow}@x", "{slow}"], "after @ comes a step number, first or last, not 'x'"),
    (["{slow}@-1", "{slow}"], "not '-1'"),
    (["{slow}", "{fast}", "--step", "3"], "step 3 was not recorded"),
    (["{slow}@0", "{fast}@5", "--step", "5"], "--step 5 has nothing to choose"),
    (["{slow}", "{pizza}"], "is a training record and"),
    (["{slow}", "{slow}", "--both", "dtype=bfloat16"], "do not apply to training records"),
    (["{pizza}", "{pizza}", "--step", "3"], "--step chooses the step of training records"),
    (["{here}/missing.cgw", "{slow}"], "missing.cgw: no such file"),
    (["{here}/empty.cgw", "{slow}"], "no complete step record yet"),
    (["{slow}", "{here}/late.cgw"], "have no recorded step in common"),
])
def test_cli_exit_2_without_a_traceback(cli, runs, tmp_path, args, words):
    slow, fast = runs
    (tmp_path / "empty.cgw").write_text(slow.read_text().splitlines()[0] + "\n")
    lines = slow.read_text().splitlines()
    late = [lines[0]] + [json.dumps({**json.loads(x), "step": json.loads(x)["step"] + 1}) for x in lines[1:]
                         if '"step"' in x and '"event"' not in x]
    (tmp_path / "late.cgw").write_text("\n".join(late) + "\n")
    given = [a.format(slow=slow, fast=fast, here=tmp_path, pizza=ROOT / "sample_graphs" / "pizza.cg") for a in args]
    r = cli("diff", *given, "-o", tmp_path / "out.png")
    assert r.exit_code == 2, (r.stdout, r.stderr)
    assert words.format(slow=slow) in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out.png").exists()


def test_diffing_records_never_imports_torch(runs, tmp_path):
    slow, fast = runs
    out = tmp_path / "d.svg"
    cli_without_torch(["diff", f"{slow}@first", f"{fast}@last", "-o", out, "-q"], exit_code=1)
    assert "first gradient divergence" in out.read_text()


def test_the_rule_of_one_number():
    from cgviz.diff.runs import quantity
    assert not quantity(1.0, 1.00005, 1e-4, 1e-12).beyond and quantity(1.0, 1.0002, 1e-4, 1e-12).beyond
    assert quantity(2.0, 3.0, 1e-4, 1e-12).relative == 0.5
    nan = float("nan")
    assert not quantity(nan, nan, 1e-4, 1e-12).beyond and quantity(1.0, nan, 1e-4, 1e-12).distance == float("inf")
    assert quantity(None, None, 1e-4, 1e-12) is None
    assert quantity(0.1, None, 1e-4, 1e-12).beyond                 # a gradient on one side only is news
    assert not quantity(0.1, None, 1e-4, 1e-12, both=True).beyond  # an update after the last step is not


def test_the_last_step_of_a_run_has_no_update_and_that_is_no_change(tmp_path, cli):
    r = cli("train", ROOT / "sample_graphs" / "three_layer.cg", "--lr", "0.5", "--steps", "10", "-o",
            tmp_path / "t.cgw", "--curve", tmp_path / "loss.png", "-q")
    assert r.exit_code == 0, r.stderr
    run = read_run(tmp_path / "t.cgw")
    assert run.steps[-1].params["W1"].update is None and run.steps[0].params["W1"].update is not None
    c = cgviz.compare(f"{tmp_path / 't.cgw'}@first", f"{tmp_path / 't.cgw'}@last")
    assert not c["W1"].changes["update"].beyond and c["W1"].changes["‖w‖"].beyond
    assert not any("update" in line for line in c.summary)
    assert "bce" in c.dot and "loss 0.8452 → " in c.dot     # a program's graph, with the loss on its box


@pytest.fixture(scope="module")
def folded(tmp_path_factory):
    """Synthetic records on a folded graph (four identical blocks drawn once, as the recorder's header
    holds it); in `fb` blocks.2.fc.weight's gradient is NaN from step 6."""
    import torch
    from torch import nn

    from watch_models import SigmoidBlock as Block

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.Sequential(*[Block() for _ in range(4)]), nn.Linear(16, 1))
    doc = cgviz.draw(model, torch.randn(4, 8), loss="mean").to_dict()
    params = {n["name"]: n["shape"] for n in doc["nodes"] if n["kind"] == "param"}
    modules = ["0"] + [f"1.{i}.{m}" for i in range(4) for m in ("fc", "act")] + ["2"]
    d = tmp_path_factory.mktemp("folded")
    synthetic(d / "fa.cgw", params, modules, 10, graph=doc)
    synthetic(d / "fb.cgw", params, modules, 10, graph=doc, nan_at=(6, "1.2.fc.weight"))
    return d / "fa.cgw", d / "fb.cgw"


def test_picture_on_a_folded_graph(folded):
    fa, fb = folded
    c = cgviz.compare(fa, fb)
    assert c.difference.nonfinite == {"B": 6} and c.curve["first"] == 6
    assert c.difference.forward_order and c.difference.modules[0].name == "0"
    dot = c.dot
    assert "(×4 blocks)" in dot                                 # one box stands for the four blocks
    nan_edges = [line for line in dot.splitlines() if "->" in line and "‖g‖" in line and "NaN" in line]
    assert nan_edges and all('style="dotted"' in line for line in nan_edges), nan_edges
    assert "<svg" in c.svg()


def test_step_is_for_records_only():
    pizza = ROOT / "sample_graphs" / "pizza.cg"
    with pytest.raises(cgviz.CgvizError, match="step= chooses the step of training records"):
        cgviz.compare(pizza, pizza, step=3)
