"""The levels of the drill-down page (cgviz.plan.levels), without a browser: every op of the model
is drawn as itself at some level, which the search index knows; every repetition of a ×N block
lines up with the first; breadcrumbs name the ×N."""

from __future__ import annotations

import functools

import pytest

import cgviz
from cgviz.plan.levels import LEVEL_NODES, build_levels, index

MODELS = ["sample_graphs/models/tiny_t5.py", "sample_graphs/models/res_cnn.py", "sample_graphs/models/rnn_loop.py",
          "sample_graphs/models/tiny_llama.py", "tests/models/deep_gpt.py"]


@functools.cache          # one trace per model for the whole module
def _levels(spec: str):
    md = cgviz.draw(spec)._b.d
    return md, build_levels(md.shown, md.run, md.pic)


@pytest.mark.parametrize("spec", MODELS)
def test_every_recorded_node_is_found_at_a_level_that_draws_it(spec):
    md, levels = _levels(spec)
    found = index(levels)
    assert set(found) == {n.id for n in md.shown}
    for node_id, (key, drawn, k) in found.items():
        level = levels[key]
        view = level.reps[k] if level.reps else (level.graph, level.run, level.pic, None)
        _g, _r, pic, ids = view
        mine = ids[drawn] if ids else drawn         # the first repetition's box → this repetition's
        assert node_id in pic.nodes[mine].members, (node_id, key, k)
        assert pic.nodes[mine].kind not in ("module", "stub")


@pytest.mark.parametrize("spec", MODELS)
def test_levels_are_small_and_repetitions_line_up(spec):
    _md, levels = _levels(spec)
    root = next(iter(levels))
    for key, level in levels.items():
        if key != root:
            # a level past the limit is one whose every inner module is already a box
            assert len(level.pic.nodes) <= LEVEL_NODES or level.pic.depth == 1, (key, len(level.pic.nodes))
            assert level.parent in levels
        if level.reps is not None:
            assert all(r is not None for r in level.reps), key
            assert len(level.reps) == len(level.norms) == len(level.names) >= 2
            assert level.names[0] == key


def test_a_fold_is_one_level_with_its_blocks_and_a_breadcrumb_of_its_own():
    _md, levels = _levels("tests/models/deep_gpt.py")
    assert list(levels) == ["", "blocks.0", "blocks.0.attn", "blocks.0.mlp"]
    block, attn = levels["blocks.0"], levels["blocks.0.attn"]
    assert (block.label, block.word, len(block.reps)) == ("blocks ×24", "block", 24)
    assert (attn.label, attn.parent) == ("attn", "blocks.0")
    assert attn.names[17] == "blocks.17.attn"
    _g, _r, pic17, ids = attn.reps[17]
    assert ids["blocks.0.attn/softmax"] == "blocks.17.attn/softmax"
    assert len(set(block.norms)) == 24                      # each block's own gradient norm
    assert levels[""].opens["cluster_blocks.0"] == "blocks.0"
