"""Folding of today's architectures (issue 17): blocks that read shared side inputs fold ×N, loops are
told from a module merely called twice, and folded labels carry the sum over what they stand for."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from cgviz.pytorch.load import Loaded
from cgviz.route.model import picture_model
from cgviz.plan.structure import build_picture

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
for p in (HERE, ROOT / "sample_graphs" / "models"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import twins  # noqa: E402


def _draw(model, inputs, depth=None, fold=True):
    return picture_model(Loaded("memory", model, "twin", tuple(inputs), {}), depth=depth, fold=fold)


def _folds(d):
    return {g.calls[0][-1].key: g for g in d.pic.groups.values() if g.style == "fold"}


def _loops(d):
    return {g.calls[0][-1].key: g for g in d.pic.groups.values() if g.style == "loop"}


def _scope_keys(d, node_id):
    return [f.key for f in d.graph[node_id].meta.get("scope") or ()]


def test_llama_layers_fold_with_the_rotary_inputs_drawn_once():
    n = 6
    d = _draw(twins.llama(layers=n), twins.inputs("llama"))
    folds = _folds(d)
    assert list(folds) == ["layers.0"] and folds["layers.0"].n == n
    dot = d.dot()
    assert dot.count(f"<B>layers.0 … layers.{n - 1}</B>  LlamaLayer  <B>×{n}</B>") == 1
    assert "layers.3/" not in dot                          # repetitions 2..N are not drawn
    # cos and sin are made once at the top, drawn once, and enter the folded frame by a few edges
    # (d.drawn: the picture's graph, where cos().to(dtype) of the same dtype is the cos itself)
    rotary = {i for m in d.drawn for i in m.inputs
              if _scope_keys(d, i)[:1] == ["rotary_emb"] and _scope_keys(d, m.id)[:1] == [f"layers.{n - 1}"]}
    assert len(rotary) == 2 and rotary <= set(d.pic.nodes)        # cos and sin, each drawn once
    into_frame = [e for e in d.pic.edges if e.src in rotary and _scope_keys(d, e.dst)[:1] == ["layers.0"]]
    assert 2 <= len(into_frame) <= 4 < 2 * n
    assert all(e.dst in d.pic.nodes for e in into_frame)
    # in the recording every layer reads them: the harp is only gone from the picture
    readers = [m for m in d.drawn if any(i in rotary for i in m.inputs)]
    assert len(readers) == 2 * n
    assert d.depth is None                                  # everything drawn, no automatic depth
    unfolded = build_picture(d.drawn, d.run, None, fold=False)
    assert len(unfolded.nodes) > 2.5 * len(d.pic.nodes)


def test_t5_folds_encoder_and_decoder_and_the_encoder_feeds_the_decoder_frame():
    d = _draw(twins.t5(layers=4), twins.inputs("t5"))
    folds = _folds(d)
    # block 0 of each stack owns the relative-position embedding, so it is drawn on its own
    assert set(folds) == {"encoder.block.1", "decoder.block.1"}
    assert folds["encoder.block.1"].n == folds["decoder.block.1"].n == 3
    enc_out = [i for i in d.pic.nodes if _scope_keys(d, i)[:2] == ["encoder", "encoder.final_layer_norm"]]
    into_decoder = {e.dst for e in d.pic.edges if e.src in enc_out}
    assert any(_scope_keys(d, i)[:2] == ["decoder", "decoder.block.1"] for i in into_decoder)
    assert any(_scope_keys(d, i)[:2] == ["decoder", "decoder.block.0"] for i in into_decoder)
    # the position bias made in block 0 enters the folded blocks once, not once per block
    bias = [e for e in d.pic.edges if _scope_keys(d, e.src)[:3] == ["encoder", "encoder.block.0",
                                                                     "encoder.block.0.self_attn"]
            and _scope_keys(d, e.dst)[:2] == ["encoder", "encoder.block.1"]]
    assert 1 <= len(bias) <= 2


def test_a_shared_relu_called_twice_is_not_a_loop():
    d = _draw(twins.resnet(blocks=3), twins.inputs("resnet"))
    assert _loops(d) == {}
    assert list(_folds(d)) == ["layer1.0"] and _folds(d)["layer1.0"].n == 3
    dot = d.dot()
    assert "time_step" not in dot and "rounded,dashed" not in dot


def test_a_real_loop_is_still_a_loop():
    import rnn_loop
    d = _draw(rnn_loop.model, rnn_loop.example_inputs)
    assert {k: g.n for k, g in _loops(d).items()} == {"cell": 20}


def test_a_skip_across_blocks_is_not_folded():
    class B(nn.Module):
        def __init__(s):
            super().__init__()
            s.fc = nn.Linear(8, 8)

        def forward(s, x, skip):
            return torch.tanh(s.fc(x)) + skip

    class UNetish(nn.Module):
        def __init__(s):
            super().__init__()
            s.blocks = nn.ModuleList(B() for _ in range(4))

        def forward(s, x):
            outs = [x, x * 2]
            for b in s.blocks:
                outs.append(b(outs[-1], outs[-2]))      # each block reads the one before and the one before that
            return outs[-1]

    torch.manual_seed(0)
    d = _draw(UNetish(), (torch.randn(2, 8),))
    assert _folds(d) == {}


def test_parallel_identical_layers_do_not_fold():
    class QKV(nn.Module):
        def __init__(s):
            super().__init__()
            s.q, s.k, s.v = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8)

        def forward(s, x):
            return s.q(x) * s.k(x) + s.v(x)

    torch.manual_seed(0)
    assert _folds(_draw(QKV(), (torch.randn(2, 8),))) == {}


@pytest.mark.parametrize("name, rep, n", [("tiny_gpt", "blocks.0", 4), ("llama", "layers.0", 4)])
def test_a_collapsed_fold_keeps_its_count_and_per_block_norms(name, rep, n):
    if name == "tiny_gpt":
        import tiny_gpt
        model, inputs = tiny_gpt.build(), (torch.randint(0, 64, (1, 16), generator=torch.Generator().manual_seed(0)),)
    else:
        model, inputs = twins.llama(layers=n), twins.inputs("llama")
    d = _draw(model, inputs, depth=1)       # the folded blocks are at depth 1: each is one box
    box = d.pic.nodes[rep]
    assert box.kind == "module"
    dot = d.dot()
    line = next(x for x in dot.splitlines() if x.startswith(f'  "{rep}" ['))
    assert f"×{n}</B>" in line
    norms = line.split("per block: ")[1].split("<")[0].split(", ")
    assert len(norms) == n
    grp = d.pic.groups[box.module]
    assert [float(x) for x in norms] == pytest.approx(grp.grad_norms, rel=1e-3)
    # the box's ‖∇θ‖ is over every block's parameters, and says so
    prefix = rep.rpartition(".")[0] + "."
    every = math.sqrt(sum(g.norm ** 2 for k, g in d.run.param_grads.items() if k.startswith(prefix) and g is not None))
    total = float(line.split("‖∇θ‖ = ")[1].split(" (all")[0])
    assert total == pytest.approx(every, rel=1e-3) and f"(all {n} blocks)" in line
    # its parameter count is one block's, with the whole stack's beside it
    per_block = sum(p.numel() for p in getattr(model, prefix[:-1])[0].parameters())
    assert "params each" in line and per_block * n == sum(p.numel() for p in getattr(model, prefix[:-1]).parameters())


def test_lstm_cell_loop_edges_agree_with_the_nodes_they_leave():
    model, (x,) = twins.lstm(), twins.inputs("lstm")
    d = _draw(model, (x,))
    assert {k: g.n for k, g in _loops(d).items()} == {"cell": 20}
    # plain PyTorch: x's gradient and the cell's parameter gradients, summed over the 20 steps
    xg = x.clone().requires_grad_(True)
    model.zero_grad()
    model(xg).sum().backward()
    x_norm = float(xg.grad.norm())
    assert d.run.grads["x"].norm == pytest.approx(x_norm, rel=1e-5)

    edges = {(e.src, e.dst, e.back): e for e in d.pic.edges}
    x_edge = next(e for (s, t, b), e in edges.items() if s == "x" and d.graph[t].op == "getitem")
    assert x_edge.grad.norm == pytest.approx(x_norm, rel=1e-5)          # not step 1's 1e-6
    assert "20" in x_edge.note
    # the getitem ×20 node and its edge into the cell agree with x
    getitem = x_edge.dst
    into_cell = next(e for (s, t, b), e in edges.items() if s == getitem and not b)
    assert into_cell.grad.norm == pytest.approx(x_norm, rel=1e-5) and into_cell.count == 20
    # the shared weights' edge carries their whole gradient, summed over the steps
    w = next(e for e in d.pic.edges if d.pic.nodes[e.src].kind == "params" and e.src.startswith("cell"))
    plain = math.sqrt(sum(float(p.grad.norm()) ** 2 for p in model.cell.parameters()))
    assert w.grad.norm == pytest.approx(plain, rel=1e-5)
    # the state (h, c) is handed from step to step: a dashed self-loop on the one-op body
    back = [e for e in d.pic.edges if e.back]
    assert len(back) == 1 and back[0].src == back[0].dst and d.graph[back[0].src].op == "lstm_cell"
    assert back[0].count == 19 and back[0].per_step == 2
    dot = d.dot()
    assert "next step" in dot and "(Σ 20 reads)" in dot
    # the JSON keeps every step
    assert sum(1 for n in d.graph if n.op == "lstm_cell") == 20


def test_a_folded_node_and_its_parameters_say_they_stand_for_every_block():
    d = _draw(twins.llama(layers=4), twins.inputs("llama"))
    dot = d.dot()
    line = next(x for x in dot.splitlines() if x.strip().startswith('"layers.0.mlp.down_proj/linear" ['))
    # the frame says once that every number inside is over all 4 blocks; its nodes and edges need not
    caption = next(x for x in dot.splitlines() if "<B>layers.0 … layers.3</B>" in x)
    assert "numbers inside: all 4 blocks together" in caption
    assert "(all 4 blocks)" not in line
    g = float(line.split("‖∂L/∂out‖ = ")[1].split("<")[0])
    each = [d.run.grads[m].norm for m in d.pic.nodes["layers.0.mlp.down_proj/linear"].members]
    assert len(each) == 4 and g == pytest.approx(math.sqrt(sum(x * x for x in each)), rel=1e-3)
    w = next(x for x in dot.splitlines() if x.strip().startswith('"layers.0.mlp.down_proj.weight" ['))
    assert "×4" in w and "(all 4 blocks)" in w
    norms = [d.run.param_grads[f"layers.{i}.mlp.down_proj.weight"].norm for i in range(4)]
    shown = float(w.split("‖∇‖ = ")[1].split(" ")[0])
    assert shown == pytest.approx(math.sqrt(sum(x * x for x in norms)), rel=1e-3)


def test_tiny_gpt_still_folds_as_before():
    import tiny_gpt
    d = _draw(tiny_gpt.build(), (torch.randint(0, 64, (1, 16), generator=torch.Generator().manual_seed(0)),))
    assert {k: g.n for k, g in _folds(d).items()} == {"blocks.0": 4}
    assert _loops(d) == {}
    assert len(d.pic.nodes) == 45


def test_a_folded_parameter_is_judged_in_every_block_not_only_the_first():
    """The last of 4 residual tanh blocks stops learning (its weight is 1e4 times too big, so its tanh
    saturates and its gradient is 0, while the blocks before it learn through the skip): the folded
    weight's box must say so, although block 0 is healthy."""
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(8, 8)

        def forward(self, x):
            return x + torch.tanh(self.lin(x))

    class Stack(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList(Block() for _ in range(4))

        def forward(self, x):
            for b in self.layers:
                x = b(x)
            return x

    from cgviz.pytorch.trace import TraceOptions
    torch.manual_seed(0)
    m = Stack()
    with torch.no_grad():
        m.layers[3].lin.weight.mul_(1e4)
    # a loss asked for by name: with the default sum, whose scale means nothing, no flags are drawn
    d = picture_model(Loaded("memory", m, "twin", (torch.randn(3, 8),), {}), TraceOptions(loss="mse"))
    assert {k: g.n for k, g in _folds(d).items()} == {"layers.0": 4}
    box = next(x for x in d.dot().splitlines() if x.strip().startswith('"layers.0.lin/params" ['))
    assert "⚠ vanishing: ‖g‖/‖w‖ = 0 " in box and "(layers.3.lin.weight; 1 of 4 blocks flagged)" in box
