"""`cgviz torch --focus MODULE`: the inside of one module with boundary stubs whose numbers are the
full graph's, a ×N block's member drawn with its own numbers, and an unknown name's suggestion."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

import cgviz
from cgviz.cli import main
from cgviz.core.errors import OptionError

MODEL = "tests/models/deep_gpt.py"        # 24 tiny GPT blocks, folded ×24
EDGE = re.compile(r'^\s*"((?:[^"\\]|\\.)*)" -> "((?:[^"\\]|\\.)*)" \[(.*)\]$')
LABEL = re.compile(r'label="((?:[^"\\]|\\.)*)"')


def _run(*args):
    return CliRunner().invoke(main, ["torch", MODEL, *args], catch_exceptions=False)


def _out(*args) -> str:
    r = _run(*args, "-o", "-")
    assert r.exit_code == 0, r.stderr
    return r.stdout


def _labels(dot: str) -> dict[tuple[str, str], list[str]]:
    """(src, dst) → the labels of the edges drawn between them, forward first."""
    out: dict = {}
    for line in dot.splitlines():
        m = EDGE.match(line)
        if m:
            label = LABEL.search(m.group(3))
            out.setdefault((m.group(1), m.group(2)), []).append(label.group(1) if label else "")
    return out


@pytest.fixture(scope="module")
def full():
    """Every op of every block, unfolded: each block's edges drawn with their own numbers."""
    return {"dot": _labels(_out("--format", "dot", "--no-fold", "--depth", "10")),
            "json": json.loads(_out("--format", "json"))}


@pytest.mark.parametrize("focus", ["blocks.5.attn", "blocks.17"])
def test_stubs_carry_the_numbers_of_the_full_graphs_edges(full, focus):
    dot = _out("--focus", focus, "--format", "dot")
    edges = _labels(dot)
    stubs = [(s, d) for s, d in edges if s.startswith("in:") or d.startswith("out:")]
    assert any(s.startswith("in:") for s, _ in stubs) and any(d.startswith("out:") for _, d in stubs), stubs
    for src, dst in stubs:
        # in:<producer> → inner op is the recorded producer → op; inner op → out:<consumer> likewise
        key = (src[3:], dst) if src.startswith("in:") else (src, dst[4:])
        assert key in full["dot"], key
        assert edges[(src, dst)] == full["dot"][key], (src, dst)
        assert any(re.search(r"\d", text) for text in edges[(src, dst)])       # numbers, not blanks
    # nothing from outside the module is drawn but the stubs (and no other block's op)
    nodes = set(re.findall(r'^\s*"([^"]+)" \[', dot, re.M))
    assert all(n.startswith(("in:", "out:", focus + ".", focus + "/")) for n in nodes), nodes


def test_stub_edges_in_the_json_are_the_recorded_edges(full):
    """The JSON's edges carry gradients (a value is its producer node's): an entering stub holds its
    producer's value, and every stub edge the gradient of the recorded edge it stands for."""
    doc = json.loads(_out("--focus", "blocks.5.attn", "--format", "json"))
    recorded = {(e["src"], e["dst"], e["arg"]): e for e in full["json"]["edges"]}
    nodes = {n["id"]: n for n in full["json"]["nodes"]}
    stubs = {n["id"]: n for n in doc["nodes"] if n["kind"] == "stub"}
    assert set(stubs) == {"in:blocks.5.ln1/layer_norm", "out:blocks.5/add"}, set(stubs)
    assert stubs["in:blocks.5.ln1/layer_norm"]["value_stats"] == nodes["blocks.5.ln1/layer_norm"]["value_stats"]
    entering = [e for e in doc["edges"] if e["src"].startswith("in:")]
    leaving = [e for e in doc["edges"] if e["dst"].startswith("out:")]
    assert entering and leaving
    for e in entering:
        twin = recorded[(e["src"][3:], e["dst"], e["arg"])]
        assert (e["grad_stats"], e["shape"]) == (twin["grad_stats"], twin["shape"]) and e["grad_stats"]
    for e in leaving:
        twins = [t for (s, d, _), t in recorded.items() if s == e["src"] and d == e["dst"][4:]]
        assert any((e["grad_stats"], e["shape"]) == (t["grad_stats"], t["shape"]) for t in twins) and e["grad_stats"]


def test_a_blocks_member_draws_that_repetitions_numbers(full):
    nodes = {n["id"]: n for n in full["json"]["nodes"]}
    seen = {}
    for k in (3, 19):
        doc = json.loads(_out("--focus", f"blocks.{k}", "--format", "json"))
        mine = {n["id"]: n for n in doc["nodes"]}
        op = f"blocks.{k}.attn/softmax"
        assert (mine[op]["value_stats"], mine[op]["grad_stats"]) == (nodes[op]["value_stats"], nodes[op]["grad_stats"])
        seen[k] = mine[op]["grad_stats"]
        dot = _out("--focus", f"blocks.{k}", "--format", "dot")
        assert f"block {k + 1} of 24" in dot
        assert f'"blocks.{k}.attn/softmax"' in dot and '"blocks.0.attn/softmax"' not in dot
    assert seen[3] != seen[19]


def test_an_unknown_module_suggests_the_nearest_names_and_exits_2():
    r = CliRunner().invoke(main, ["torch", MODEL, "--focus", "blocks.7.atn", "-o", "-", "--format", "dot"])
    assert r.exit_code == 2, r.output
    assert "no module 'blocks.7.atn'" in r.stderr and "did you mean blocks.7.attn" in r.stderr, r.stderr
    assert "Traceback" not in r.output
    with pytest.raises(OptionError, match="did you mean"):
        cgviz.draw(MODEL, focus="blocks.7.atn")


def test_focus_is_a_model_option():
    with pytest.raises(OptionError, match="focus"):
        cgviz.draw("param w = 2\nloss L = w * w\n", focus="w")


def test_depth_counts_from_the_focused_module():
    d = cgviz.draw(MODEL, focus="blocks.2", depth=1)
    drawn = d._b.d.pic.nodes.values()
    boxes = {dn.module[-1].key for dn in drawn if dn.kind == "module"}
    assert boxes == {"blocks.2.ln1", "blocks.2.attn", "blocks.2.ln2", "blocks.2.mlp"}, boxes


def test_a_focused_page_opens_at_the_module_and_drills_into_its_children():
    page = _out("--focus", "blocks.3", "--format", "html")
    data = json.loads(re.search(r'id="cgviz-data">(.*?)</script>', page, re.S).group(1))
    assert data["root"] == "blocks.3"
    first = data["levels"]["blocks.3"]
    svg = re.search(r"<svg.*?</svg>", page, re.S).group(0)
    titles = set(re.findall(r'<g id="node\d+" class="node">\s*<title>(.*?)</title>', svg))
    assert titles == set(first["nodes"]) and "in:blocks.2/add_2" in titles   # its panels are its boxes'
    assert first["opens"]["cluster_blocks.3.attn"] == "blocks.3.attn"
    assert data["levels"]["blocks.3.attn"]["crumbs"] == [["blocks.3", "blocks.3"], ["attn", "blocks.3.attn"]]
