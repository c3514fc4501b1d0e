"""`cgviz train` writes the watch record: for a model file (optimizer steps on its example inputs) and for
an expression program (-o run.cgw), through click's CliRunner."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import cgviz
from cgviz.watch.read import read_run

from conftest import ROOT

NET = """
import torch, torch.nn as nn
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
example_inputs = (torch.randn(16, 8),)
"""

LOG = """
import torch, torch.nn as nn
class Log(nn.Module):
    def forward(self, x):
        return torch.log(x)
lin = nn.Linear(4, 1)
with torch.no_grad():
    lin.weight.fill_(0.5); lin.bias.fill_(1.0)
model = nn.Sequential(lin, Log())
example_inputs = (torch.full((16, 4), 0.5),)
def loss(out):
    return out.mean()
"""


@pytest.fixture
def net(here):
    (here / "net.py").write_text(NET)
    torch.save(torch.randint(0, 4, (16,), generator=torch.Generator().manual_seed(1)), here / "labels.pt")
    return here


def test_a_model_overfits_one_batch_into_a_record(cli, net):
    r = cli("train", "net.py", "--loss", "ce", "--targets", "labels.pt", "--optimizer", "adam", "--lr", "1e-2",
            "--steps", "60", "--every", "20", "-o", "net.cgw")
    assert r.exit_code == 0, r.stderr
    printed = [float(line.split("loss ")[1]) for line in r.stdout.splitlines() if line.startswith("step ")]
    assert len(printed) == 60
    run = read_run(net / "net.cgw")
    assert [s.step for s in run.steps] == [0, 20, 40, 59]            # and the last
    assert [s.loss for s in run.steps] == pytest.approx([printed[k] for k in (0, 20, 40, 59)], rel=1e-3)
    assert run.steps[-1].loss < 0.2 * run.steps[0].loss               # it can overfit one batch
    assert run.graph["model"]["loss"] == "ce vs targets"            # drawn with the loss it trains with
    assert run.source == "net.py" and "0.weight" in run.params
    assert all(s.params["0.weight"].update > 0 for s in run.steps[:-1])
    assert "wrote net.cgw" in r.stderr
    assert not list(net.glob(".*part"))


def test_the_record_matches_a_plain_pytorch_run(cli, net):
    cli("train", "net.py", "--loss", "ce", "--targets", "labels.pt", "--lr", "0.1", "--steps", "3", "--every", "1",
        "-o", "net.cgw", "-q")
    ns = {}
    exec(NET, ns)
    model, (x,) = ns["model"], ns["example_inputs"]
    y = torch.load(net / "labels.pt")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    run = read_run(net / "net.cgw")
    for s in run.steps:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        assert s.loss == pytest.approx(loss.item(), rel=1e-3)
        assert s.params["2.weight"].g == pytest.approx(model[2].weight.grad.norm().item(), rel=1e-3)
        opt.step()
        opt.zero_grad()


def test_a_model_that_turns_nan_stops_with_its_record(cli, here):
    (here / "log.py").write_text(LOG)
    r = cli("train", "log.py", "--loss", "loss", "--lr", "0.5", "--steps", "50", "--every", "10", "-o", "log.cgw")
    assert r.exit_code == 1
    assert "the loss became nan at step" in r.stderr and "Wrote the record so far to log.cgw" in r.stderr
    run = read_run(here / "log.cgw")
    k = int(r.stderr.split("at step ")[1].split(".")[0])
    assert run.steps[-1].step == k and math.isnan(run.steps[-1].loss)
    from cgviz.watch.analysis import events
    assert [e.step_from for e in events(run) if e.kind == "nan"] == [k]


def test_options_that_do_not_fit_the_file_are_refused(cli, net):
    r = cli("train", "net.py", "--lr", "0.1", "--clip-norm", "1")
    assert r.exit_code == 2 and "--clip-norm goes with an expression file" in r.stderr
    r = cli("train", "net.py", "--lr", "0.1", "-o", "net.png")
    assert r.exit_code == 2 and "writes a .cgw record" in r.stderr
    r = cli("train", ROOT / "sample_graphs" / "pizza.cg", "--lr", "0.1", "--loss", "ce")
    assert r.exit_code == 2 and "--loss goes with a model file" in r.stderr
    assert not (net / "net.cgw").exists()


def test_a_program_s_training_writes_the_same_record(cli, here):
    r = cli("train", ROOT / "sample_graphs" / "three_layer.cg", "--lr", "0.5", "--steps", "25", "--every", "10",
            "-o", "three.cgw", "-q")
    assert r.exit_code == 0, r.stderr
    run = read_run(here / "three.cgw")
    assert [s.step for s in run.steps] == [0, 10, 20, 25]
    assert run.params == ["W1", "b1", "W2", "b2"] and run.modules == []
    d = cgviz.draw(str(ROOT / "sample_graphs" / "three_layer.cg"))
    w1 = run.steps[0].params["W1"]
    g = np.asarray(d["W1"].grad, dtype=float)
    assert w1.g == pytest.approx(float(np.linalg.norm(g)), rel=1e-3)
    assert w1.w == pytest.approx(float(np.linalg.norm(d["W1"].value)), rel=1e-3)
    assert w1.update == pytest.approx(0.5 * w1.ratio, rel=2e-3)      # plain gradient descent: lr·‖g‖/‖w‖
    assert sum(w1.hist_counts) == g.size
    assert run.graph["nodes"] and run.steps[-1].loss < run.steps[0].loss


def test_a_recorded_model_renders_as_its_page(cli, net):
    """The recorder's own file, not a synthesised one, is what the page (cgviz render run.cgw) reads."""
    cli("train", "net.py", "--loss", "ce", "--targets", "labels.pt", "--lr", "0.5", "--steps", "12", "--every", "4",
        "-o", "net.cgw", "-q")
    r = cli("render", "net.cgw", "-o", "net.html")
    assert r.exit_code == 0, r.stderr
    assert "4 recorded steps" in r.stderr
    page = (net / "net.html").read_text()
    assert "0.weight" in page and "2.weight" in page
