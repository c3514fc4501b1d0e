"""Honest words on folded and collapsed pictures (issue 24): branches are not blocks, a tied weight is
an input of every box that reads it, identical blocks fold wherever their inputs agree, a pooled label
names what it pools, a ×N frame says once that its numbers are over all N, a collapsed loss shows its
value, and an input the picture leaves out is named in it."""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from cgviz.pytorch.load import Loaded
from cgviz.route.model import picture_model

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import twins  # noqa: E402

NOTE = re.compile(r'label="[^"]*\(([^")]*)\)"')


def _draw(model, inputs, depth=None, **kw):
    return picture_model(Loaded("memory", model, "twin", tuple(inputs), {}), depth=depth, **kw)


def _folds(d) -> dict[str, int]:
    return {g.calls[0][-1].key: g.n for g in d.pic.groups.values() if g.style == "fold"}


def _keys(d, node_id) -> list[str]:
    dn = d.pic.nodes[node_id]
    return [f.key for f in (dn.module or dn.scope)]


def _red(d, e) -> str:
    """The red label of a drawn edge, as the DOT writes it."""
    from cgviz.view.model_scene import _edges
    from cgviz.view.model_scene import _edge_in_frame
    out = _edges(e, d.options(), None, _edge_in_frame(d.pic, e))
    return next((x.attrs.get("label", "") for x in out if x.attrs.get("dir") == "back"), "")


def _blue(d, e) -> str:
    from cgviz.view.model_scene import _edges
    return _edges(e, d.options())[0].attrs.get("label", "")


# --- 1. branches are not blocks ------------------------------------------------------------------

def test_convolutions_of_different_kernels_do_not_fold_though_their_outputs_agree():
    """Inception's 1×1 convolution from 16 channels and its 3×3 one from 4 give the same output
    shape; the second and third 3×3 of branch3 are the same block and do fold."""
    d = _draw(twins.inception(), twins.image_inputs())
    assert _folds(d) == {"blocks.0": 4, "blocks.0.branch3.1": 2}
    for grp in d.pic.groups.values():
        shapes = [[tuple(d.run.values[m.id].shape) for m in d.graph
                   if m.kind == "param" and m.name.startswith(c[-1].path + ".")] for c in grp.calls]
        assert all(s == shapes[0] for s in shapes), grp.calls


class Branchy(nn.Module):
    """Four parallel branches, two of which hold a stack of identical convolutions (a fold of their
    own): torchvision's InceptionC reads its input like this."""

    def __init__(self, c: int = 4):
        super().__init__()
        self.branch1 = twins.ConvBN(c, c)
        self.branch2 = nn.Sequential(twins.ConvBN(c, c, 3), twins.ConvBN(c, c, 3))
        self.branch3 = nn.Sequential(twins.ConvBN(c, c, 3), twins.ConvBN(c, c, 3), twins.ConvBN(c, c, 3))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), twins.ConvBN(c, c))

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class BranchyNet(nn.Module):
    def __init__(self, c: int = 4):
        super().__init__()
        self.stem = twins.ConvBN(3, c, 3)
        self.mixed = Branchy(c)
        self.fc = nn.Linear(4 * c, 3)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.mixed(self.stem(x)), 1), 1))


@pytest.mark.parametrize("depth", [1, 2])
def test_an_edge_into_parallel_branches_is_not_said_to_be_blocks(depth):
    torch.manual_seed(0)
    model = BranchyNet().eval()
    x = twins.image_inputs()[0]
    d = _draw(model, (x,), depth=depth)
    assert _folds(d) == {"mixed.branch2.0": 2, "mixed.branch3.0": 3}
    into = [e for e in d.pic.edges if _keys(d, e.src)[:1] == ["stem"] and _keys(d, e.dst)[:1] == ["mixed"]]
    assert into
    for e in into:
        assert "block" not in _red(d, e), _red(d, e)
    if depth == 1:
        # the one edge into the collapsed module carries the stem's output's whole gradient: 4 reads
        (e,) = into
        stem_out = model.stem(x).detach().requires_grad_(True)
        model.fc(torch.flatten(F.adaptive_avg_pool2d(model.mixed(stem_out), 1), 1)).sum().backward()
        assert e.grad.norm == pytest.approx(float(stem_out.grad.norm()), rel=1e-4)


# --- 2. a tied weight is an input of each box that reads it ---------------------------------------

def test_a_tied_weight_is_drawn_once_feeding_every_box_that_reads_it():
    """T5 ties lm_head to the shared embedding. Collapsed at depth 1 the weight was part of the first
    box that read it, which then seemed to hand it to the others as an output."""
    model, inputs = twins.t5(layers=4), twins.inputs("t5")
    assert model.lm_head.weight is model.shared.weight
    d = _draw(model, inputs, depth=1)
    assert d.pic.nodes["shared.weight"].kind == "param"
    from_weight = {e.dst: e for e in d.pic.edges if e.src == "shared.weight"}
    assert set(from_weight) == {"shared", "shared:2", "lm_head"}
    # nothing else carries a [64×32] tensor: no box hands the weight on
    assert all(e.value is None or tuple(e.value.shape) != (64, 32) for e in d.pic.edges if e.src != "shared.weight")
    # each edge carries its reader's gradient; they add up to the weight's whole gradient, as torch has it
    model.zero_grad()
    model(*inputs).sum().backward()
    total = model.shared.weight.grad.numpy()
    parts = [e.grad.values for e in from_weight.values()]
    assert np.allclose(sum(parts), total, rtol=1e-4, atol=1e-6)
    assert d.run.grads["shared.weight"].norm == pytest.approx(float(np.linalg.norm(total)), rel=1e-5)
    for e in from_weight.values():
        assert not e.note and not e.leaf           # its own reader's share, labelled, not "block 1 of 4"
    dot = d.dot()
    lm_head = next(x for x in dot.splitlines() if x.strip().startswith('"lm_head" ['))
    assert "reads shared.weight" in lm_head       # lm_head's parameter, though not its own
    encoder = next(x for x in dot.splitlines() if x.strip().startswith('"encoder" ['))
    assert "[64×32]" not in encoder


# --- 3. identical blocks fold with the side inputs they all read ----------------------------------

@pytest.mark.parametrize("depth", [None, 2])
def test_t5_decoder_folds_after_block_0_with_the_position_bias_as_an_input_of_the_fold(depth):
    """Block 0 of each stack owns the relative-position embedding and computes the bias (plus the
    causal mask) that blocks 1… read, so blocks 1–5 fold ×5 and block 0 is drawn on its own. The bias
    enters the ×5 fold as an input all five read: its gradient is their sum, and says so."""
    d = _draw(twins.t5(layers=6), twins.inputs("t5"), depth=depth)
    assert _folds(d) == {"encoder.block.1": 5, "decoder.block.1": 5}
    bias = [e for e in d.pic.edges if _keys(d, e.src)[:2] == ["decoder", "decoder.block.0"]
            and _keys(d, e.dst)[:2] == ["decoder", "decoder.block.1"] and e.value is not None
            and tuple(e.value.shape) == (1, 4, 6, 6)]
    assert len(bias) == 1
    (e,) = bias
    assert e.note == "Σ 5 blocks" and "(Σ 5 blocks)" in _red(d, e)
    # the five reads of blocks 1–5 and block 0's own read make the bias's whole gradient
    g = d.drawn

    def block(n):
        return [f.key for f in n.meta.get("scope") or ()][1:2]
    (producer,) = {i for m in g if m.kind == "op" and block(m) == ["decoder.block.1"]
                   for k, i in enumerate(m.inputs) if block(g[i]) == ["decoder.block.0"]
                   and tuple(d.run.edge_values[(m.id, k)].shape) == (1, 4, 6, 6)}
    reads = [(m.id, k) for m in g for k, i in enumerate(m.inputs) if i == producer]
    own = [(m, k) for m, k in reads if block(g[m]) == ["decoder.block.0"]]
    assert len(reads) - len(own) == 5
    whole = d.run.grads[producer].values
    assert np.allclose(e.grad.values, whole - sum(d.run.edge_grads[x].values for x in own), rtol=1e-4, atol=1e-7)
    assert not re.search(r"\b(block|step) 1 of\b|1's read", d.dot())


# --- 4. a pooled label names what it pools --------------------------------------------------------

def test_an_lstm_cells_parameter_edge_names_its_four_tensors_and_pools_only_their_norm():
    model, (x,) = twins.lstm(), twins.inputs("lstm")
    d = _draw(model, (x,))
    (e,) = [e for e in d.pic.edges if e.src == "cell/params"]
    assert e.parts == ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    assert _blue(d, e) == "weight_ih, weight_hh, bias_ih, bias_hh"       # not [64×8] with everyone's μ
    model.zero_grad()
    model(x).sum().backward()
    plain = math.sqrt(sum(float(p.grad.norm()) ** 2 for p in model.cell.parameters()))
    red = _red(d, e)
    assert red.startswith("‖g‖=") and "μ" not in red and "(4 tensors, each Σ 20 steps)" in red
    assert float(red.split("=")[1].split(" ")[0]) == pytest.approx(plain, rel=1e-3)


# --- 5. a ×N frame says once what its numbers are ------------------------------------------------

def test_numbers_inside_a_fold_are_said_once_to_be_over_all_blocks_and_they_are():
    d = _draw(twins.t5(layers=4), twins.inputs("t5"))
    dot = d.dot()
    captions = [x for x in dot.splitlines() if "T5Block  <B>×3</B>" in x]
    assert len(captions) == 2 and all("numbers inside: all 3 blocks together" in c for c in captions)
    inside = [e for e in d.pic.edges if _keys(d, e.src)[1:2] == _keys(d, e.dst)[1:2] == ["decoder.block.1"]
              and d.pic.nodes[e.src].kind == "op" and d.pic.nodes[e.dst].kind == "op"]
    assert inside
    for e in inside:
        assert e.note == "all 3 blocks" and "all 3 blocks" not in _red(d, e)
    # what "together" means: the drawn μ is over the three blocks' tensors (not block 1's alone)
    e = next(e for e in inside if e.value is not None and e.value.stats is not None and e.value.numel > 4)
    members = d.pic.nodes[e.dst].members
    vals = []
    for m in members:
        node = d.drawn[m]
        for k, i in enumerate(node.inputs):
            if i in d.pic.nodes[e.src].members:
                vals.append(d.run.edge_values[(m, k)])
    assert len(vals) == 3
    pooled = sum(v.stats["mean"] * v.numel for v in vals) / sum(v.numel for v in vals)
    assert e.value.stats["mean"] == pytest.approx(pooled, rel=1e-6, abs=1e-9)
    assert vals[0].stats["mean"] != pytest.approx(pooled, rel=1e-3)


# --- 6. a collapsed loss shows its value --------------------------------------------------------

def test_a_collapsed_loss_box_shows_the_loss():
    d = _draw(twins.resnet(), twins.inputs("resnet"), depth=1)
    box = next(x for x in d.dot().splitlines() if x.strip().startswith('"loss" ['))
    # the fallback loss (no loss given: the summed output) says so beside its value
    assert "→ scalar" in box and f"loss (sum, no loss given) = {d.run.loss:.4g}" in box.replace("−", "-")


# --- 7. inputs the picture leaves out are named in it --------------------------------------------

class MaskSkipper(nn.Module):
    """What Hugging Face does with an all-ones attention mask: test it, then leave it off the data
    path. `unused` is never read at all."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x, mask, unused):
        if mask.to(torch.bool).all():
            mask = None
        y = self.fc(x)
        return y if mask is None else y * mask[..., None]


def test_an_input_the_loss_does_not_depend_on_is_named_in_the_picture(cli, tmp_path):
    torch.manual_seed(0)
    ones = torch.ones(2, 3)
    d = _draw(MaskSkipper(), (torch.randn(2, 3, 4), ones, torch.zeros(2)))
    assert not any(n.kind == "input" and n.name in ("mask", "unused") for n in d.graph)
    assert d.remarks == [
        "mask (all ones): not drawn, no op on the way to the loss reads it; the model read it only in "
        "to → all = True",
        "unused (all zeros): not drawn, no op on the way to the loss reads it; the model never read it"]
    assert all(r in d.notes for r in d.remarks)
    dot = d.dot()
    assert "mask (all ones): not drawn" in dot and "unused (all zeros): not drawn" in dot
    doc = d.to_dict()
    assert doc["model"]["unread_inputs"] == {"mask": ["to", "all = True"], "unused": []}
    # a mask that is used is drawn, and nothing is said
    d = _draw(MaskSkipper(), (torch.randn(2, 3, 4), torch.tensor([[1.0, 1, 0], [1, 1, 1]]), torch.zeros(2)))
    assert any(n.kind == "input" and n.name == "mask" for n in d.graph)
    assert [r for r in d.remarks if r.startswith("mask")] == []
    # the command line says it too
    f = tmp_path / "skipper.py"
    f.write_text(f"import sys\nsys.path.insert(0, {str(HERE)!r})\nimport torch\nfrom test_labels import MaskSkipper\n"
                 "torch.manual_seed(0)\nmodel = MaskSkipper()\n"
                 "example_inputs = (torch.randn(2, 3, 4), torch.ones(2, 3), torch.zeros(2))\n")
    r = cli("torch", f, "-o", tmp_path / "out.json")
    assert r.exit_code == 0, r.stderr
    assert "note: mask (all ones): not drawn" in r.stderr
    assert json.loads((tmp_path / "out.json").read_text())["model"]["unread_inputs"]["mask"] == ["to", "all = True"]


class Pyramid(nn.Module):
    """A feature pyramid: `levels` maps of different sizes from one module into the next."""

    def __init__(self, levels: int):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(3, 4, 3, stride=2 ** i, padding=1) for i in range(levels))

    def forward(self, x):
        return [c(x) for c in self.convs]


class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, maps):
        return self.fc(torch.stack([m.mean((2, 3)) for m in maps], 1))


class PyramidNet(nn.Module):
    def __init__(self, levels: int):
        super().__init__()
        self.pyramid, self.head = Pyramid(levels), Head()

    def forward(self, x):
        return self.head(self.pyramid(x))


@pytest.mark.parametrize("levels", [3, 5])
def test_tensors_of_several_shapes_between_two_boxes_are_named_by_their_shapes(levels):
    """Up to three tensors between two boxes are an edge each; more (an FPN's five maps) are one edge
    that names the shapes it pools, instead of the first one's shape and everyone's μ, σ."""
    torch.manual_seed(0)
    d = _draw(PyramidNet(levels).eval(), (torch.randn(2, 3, 16, 16),), depth=1)
    edges = [e for e in d.pic.edges if (e.src, e.dst) == ("pyramid", "head")]
    if levels == 3:
        assert sorted(tuple(e.value.shape) for e in edges) == [(2, 4, 4, 4), (2, 4, 8, 8), (2, 4, 16, 16)]
        assert all(_blue(d, e).startswith(f"[{'×'.join(map(str, e.value.shape))}] float32") for e in edges)
        return
    (e,) = edges
    assert e.count == 5 and e.shapes == [(2, 4, 16, 16), (2, 4, 8, 8), (2, 4, 4, 4), (2, 4, 2, 2), (2, 4, 1, 1)]
    blue = _blue(d, e)
    assert blue.startswith("[2×4×16×16] … [2×4×1×1] float32 μ=") and blue.endswith("\n×5, pooled")
    assert "(5 tensors)" in _red(d, e)


def test_a_sum_that_cannot_be_computed_says_whose_gradient_is_shown():
    """cgviz keeps the values of tensors up to 4,096 elements: a [1×4×40×40] position bias read by
    block 0 and by the five folded blocks has per-read gradients without values, so the five reads'
    sum is unknown. The edge shows the first folded block's read and says so, not 'block 1 of 5'."""
    torch.manual_seed(0)
    model = twins.T5Twin(layers=6).eval()
    g = torch.Generator().manual_seed(0)
    d = _draw(model, (torch.randint(0, 64, (1, 40), generator=g), torch.randint(0, 64, (1, 40), generator=g)), depth=2)
    (e,) = [e for e in d.pic.edges if (e.src, e.dst) == ("encoder/encoder.block.0", "encoder/encoder.block.1")
            and tuple(e.value.shape) == (1, 4, 40, 40)]
    assert e.note == "block 1's read; all 5 blocks read it"
    first = next((m.id, k) for m in d.drawn for k, i in enumerate(m.inputs)
                 if [f.key for f in m.meta.get("scope") or ()][1:2] == ["encoder.block.1"]
                 and tuple(d.run.edge_values[(m.id, k)].shape) == (1, 4, 40, 40))
    assert e.grad.norm == pytest.approx(d.run.edge_grads[first].norm, rel=1e-6)
