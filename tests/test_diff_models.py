"""cgviz.compare on pairs of models with a known answer: an activation swapped, a block inserted,
modules renamed, float32 against bfloat16, and the same model before and after 100 optimizer steps."""

from __future__ import annotations

import pytest

import torch

import cgviz  # noqa: E402
from cgviz.diff.classify import ADDED, CHANGED, REMOVED, SAME  # noqa: E402

MLP = """
import torch, torch.nn as nn
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.{name} = nn.Sequential({layers})
    def forward(self, x):
        return self.{name}(x)
def build():
    torch.manual_seed(0)
    return Net()
"""
THREE = "nn.Linear(4, 8), nn.{act}(), nn.Linear(8, 2)"


def _model(tmp_path, file: str, name: str = "layers", layers: str = THREE.format(act="Sigmoid")) -> str:
    path = tmp_path / file
    path.write_text(MLP.format(name=name, layers=layers))
    return f"{path}:build"


def test_an_activation_swapped_changes_one_node_and_the_numbers_after_it(tmp_path):
    a = _model(tmp_path, "a.py")
    b = _model(tmp_path, "b.py", layers=THREE.format(act="ReLU"))
    c = cgviz.compare(a, b, input_shape="3,4")
    changed = [n for n in c.nodes if n.status == CHANGED]
    assert [(n.a, n.b, n.facts) for n in changed] == [("layers.1/sigmoid", "layers.1/relu", ["op sigmoid → relu"])]
    assert not [n for n in c.nodes if n.status in (ADDED, REMOVED)]
    # upstream of the swap the values are the same; downstream they moved
    for name in ("x", "layers.0.weight", "layers.0/linear"):
        assert not c[name].value.beyond, name
    for name in ("layers.2/linear", "loss/sum"):
        assert c[name].value.beyond, name
    assert c.first_divergence.id == "layers.1/relu"
    assert not c.same
    assert any(line.startswith("first divergence (forward order): layers.1/relu (relu)") for line in c.summary)


def test_an_inserted_block_is_added_and_the_rest_matched(tmp_path):
    a = _model(tmp_path, "a.py")
    b = _model(tmp_path, "b.py", layers="nn.Linear(4, 8), nn.Sigmoid(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 2)")
    c = cgviz.compare(a, b, input_shape="3,4")
    added = {n.id for n in c.nodes if n.status == ADDED}
    assert added == {"layers.2.weight", "layers.2.bias", "layers.2/linear", "layers.3/tanh"}
    assert not [n for n in c.nodes if n.status == REMOVED]
    # A's last layer lines up with B's, two places further on, by its ops and shapes
    last = c["layers.4/linear"]
    assert last.a == "layers.2/linear" and "same op and shape" in last.reason
    assert c["layers.4.weight"].a == "layers.2.weight"
    assert "layers.2 in A ↔ layers.4 in B (same ops and shapes, 3 nodes)" in c.difference.renames
    added_edges = {(e.src, e.dst) for e in c.difference.edges if e.status == ADDED}
    assert ("layers.1/sigmoid", "layers.2/linear") in added_edges and ("layers.3/tanh", "layers.4/linear") in added_edges


def test_renamed_modules_with_the_same_structure_match_with_no_change(tmp_path):
    a = _model(tmp_path, "a.py")
    b = _model(tmp_path, "b.py", name="blocks")
    c = cgviz.compare(a, b, input_shape="3,4")
    assert c.same
    assert all(n.status == SAME and n.a and n.b for n in c.nodes)
    assert c["blocks.0/linear"].a == "layers.0/linear"
    assert "layers.0 in A ↔ blocks.0 in B (same ops and shapes, 3 nodes)" in c.difference.renames
    assert c.difference.to_dict()["counts"] == {"same": len(c.nodes), "numbers": 0, "changed": 0, "added": 0,
                                                "removed": 0}


BF16 = """
import torch, torch.nn as nn
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
    def forward(self, x):
        h = self.fc(x)
        big = h + 1000.0          # bfloat16 keeps 8 bits: 1000 + h loses h to rounding
        return (big - 1000.0) * 3
def build():
    torch.manual_seed(0)
    return Net()
"""


def test_float32_against_bfloat16_names_the_first_diverging_node(tmp_path):
    path = tmp_path / "net.py"
    path.write_text(BF16)
    # at a tolerance bfloat16's rounding passes (5%), the sum survives and the difference does not
    c = cgviz.compare(f"{path}:build", f"{path}:build", input_shape="2,4", b_options={"dtype": "bfloat16"},
                      rtol=0.05)
    first = c.first_divergence
    assert (first.id, first.op) == ("sub", "sub")
    assert not c["fc/linear"].value.beyond and not c["add"].value.beyond
    assert c["fc/linear"].facts == ["dtype float32 → bfloat16"]
    assert "first divergence (forward order): sub (sub)" in "\n".join(c.summary)
    # the picture says the dtype once, draws the linear layer quiet and marks the sub
    dot = c.dot
    assert "not marked on each): dtype float32 → bfloat16" in dot
    assert dot.count("⚑ dtype") == 0 and "◆ first divergence" in dot
    # at the snapshot's own tolerance, bfloat16's rounding is a divergence at once
    strict = cgviz.compare(f"{path}:build", f"{path}:build", input_shape="2,4", b_options={"dtype": "bfloat16"})
    assert strict.first_divergence.id == "fc/linear"


TRAIN = """
import torch, torch.nn as nn
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.frozen = nn.Linear(4, 8)
        self.slow = nn.Linear(8, 8)
        self.fast = nn.Linear(8, 1)
    def forward(self, x):
        return self.fast(torch.tanh(self.slow(torch.tanh(self.frozen(x)))))
def build():
    torch.manual_seed(0)
    return Net()
"""


def test_a_hundred_optimizer_steps_keep_the_structure_and_rank_the_layers_that_moved(tmp_path):
    path = tmp_path / "net.py"
    path.write_text(TRAIN)
    import importlib.util
    spec = importlib.util.spec_from_file_location("train_net", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model = mod.build()
    torch.save(model.state_dict(), tmp_path / "before.pt")
    model.frozen.requires_grad_(False)
    opt = torch.optim.SGD([{"params": model.slow.parameters(), "lr": 0.001},
                           {"params": model.fast.parameters(), "lr": 0.05}])
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(32, 4, generator=g), torch.randn(32, 1, generator=g)
    for _ in range(100):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    torch.save(model.state_dict(), tmp_path / "after.pt")
    c = cgviz.compare(f"{path}:build", f"{path}:build", input_shape="2,4",
                      a_options={"weights": str(tmp_path / "before.pt")},
                      b_options={"weights": str(tmp_path / "after.pt")})
    assert not [n for n in c.nodes if n.status in (ADDED, REMOVED, CHANGED)]
    assert all(n.how == "name" for n in c.nodes)
    ranked = [m for m, _ in c.difference.moved_modules()]
    assert ranked == ["fast", "slow"]                 # frozen did not move at all
    assert not c["frozen.weight"].value.beyond
    assert any(line.startswith("parameters moved most: fast (") for line in c.summary)


def test_drawing_diff_is_compare(tmp_path):
    a = cgviz.draw(_model(tmp_path, "a.py"), input_size=(3, 4))
    b = cgviz.draw(_model(tmp_path, "b.py", layers=THREE.format(act="ReLU")), input_size=(3, 4))
    c = a.diff(b)
    assert isinstance(c, cgviz.Comparison) and c.first_divergence.id == "layers.1/relu"
    assert a.diff(a).same
    bundle = c._repr_mimebundle_()
    assert "<svg" in bundle["image/svg+xml"] and "first divergence" in bundle["text/plain"]
    assert c._repr_svg_().lstrip().startswith("<?xml") or "<svg" in c._repr_svg_()


def test_two_exported_programs(tmp_path):
    from torch import nn
    for name, act in (("a", nn.Sigmoid()), ("b", nn.ReLU())):
        torch.manual_seed(0)
        m = nn.Sequential(nn.Linear(4, 8), act, nn.Linear(8, 2))
        torch.export.save(torch.export.export(m, (torch.randn(3, 4),)), tmp_path / f"{name}.pt2")
    c = cgviz.compare(tmp_path / "a.pt2", tmp_path / "b.pt2")
    assert [(n.id, n.facts) for n in c.nodes if n.status == CHANGED] == [("1/relu", ["op sigmoid → relu"])]
    assert c.first_divergence.id == "1/relu" and not c["0/linear"].value.beyond
