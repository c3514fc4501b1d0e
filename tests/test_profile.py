"""`cgviz torch --profile`: the time goes to the node that spent it, sums add up, the picture is unchanged."""

from __future__ import annotations

import json
import re

import pytest

import torch

# The first convolution does ~140M multiply-adds forward (and twice that backward); the rest about
# a hundredth of that: it must come out on top by a margin wider than a busy machine's hiccups.
EXPENSIVE = '''
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.big = nn.Conv2d(3, 64, 9, padding=4)
        self.small = nn.Conv2d(64, 2, 1)
        self.fc = nn.Linear(2, 3)

    def forward(self, x):
        h = torch.relu(self.big(x))
        h = self.small(h).mean(dim=(2, 3))
        return self.fc(h)

torch.manual_seed(0)
model = Net()
example_inputs = (torch.randn(1, 3, 96, 96),)
'''

# Three identical blocks, each feeding the next: drawn once in a ×3 frame.
BLOCKS = '''
import torch
import torch.nn as nn

class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 8)

    def forward(self, x):
        return torch.tanh(self.lin(x))

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(4, 8)
        self.blocks = nn.Sequential(Block(), Block(), Block())
        self.out = nn.Linear(8, 1)

    def forward(self, x):
        return self.out(self.blocks(torch.relu(self.inp(x))))

torch.manual_seed(0)
model = Net()
example_inputs = (torch.randn(5, 4),)
'''


@pytest.fixture(autouse=True)
def one_thread():
    """Two intra-op threads on a shared CI machine make a tiny op wait for a busy core and take as
    long as a big one; with one thread the times are the work itself."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def expensive(tmp_path):
    p = tmp_path / "expensive.py"
    p.write_text(EXPENSIVE)
    return p


@pytest.fixture
def blocks(tmp_path):
    p = tmp_path / "blocks.py"
    p.write_text(BLOCKS)
    return p


def _json(cli, path, *extra):
    r = cli("torch", path, "--format", "json", "-o", "-", *extra)
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout), r


def _luminance(color: str) -> float:
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_the_expensive_convolution_is_the_top_row_and_the_darkest_node(cli, expensive, tmp_path):
    out = tmp_path / "net.dot"
    r = cli("torch", expensive, "--profile", "--profile-runs", "3", "-o", out)
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("profile (cpu, 3 measured runs averaged after a warm-up):")
    assert lines[1].split()[:2] == ["module", "op"]
    assert lines[2].split()[:3] == ["big", "Conv2d", "conv2d"], r.stdout
    assert lines[-1].startswith("not attributed to any node: ")
    dot = out.read_text()
    fills = {m.group(1): m.group(2) for m in re.finditer(r'^\s*"([^"]+)" \[.*?fillcolor="(#[0-9a-f]{6})"', dot, re.M)}
    ops = {k: v for k, v in fills.items() if k in ("big/conv2d", "relu", "small/conv2d", "mean", "fc/linear", "loss/sum")}
    assert len(ops) == 6, fills
    darkest = min(ops, key=lambda k: _luminance(ops[k]))
    assert darkest == "big/conv2d", ops
    assert all(_luminance(ops[k]) > _luminance(ops["big/conv2d"]) for k in ops if k != "big/conv2d")
    assert re.search(r"fwd [0-9.]+ (ms|µs) · bwd [0-9.]+ (ms|µs) · [0-9.]+ (kB|MB|B)", dot)
    assert "time share" in dot


def test_backward_time_goes_to_the_op_whose_gradient_it_computes(cli, expensive):
    doc, _ = _json(cli, expensive, "--profile", "--profile-runs", "3")
    prof = {n["id"]: n["profile"] for n in doc["nodes"] if n["kind"] == "op"}
    # the convolution's backward (grad of input and weight, ~20 ms) is by far the biggest backward;
    # its forward (~5 ms) is not compared: one lost time slice on a busy machine is as long
    assert max(prof, key=lambda k: prof[k]["bwd_ms"]) == "big/conv2d"
    assert prof["big/conv2d"]["fwd_ms"] > 0
    assert prof["big/conv2d"]["share"] > 0.3
    # its output, 64×96×96 float32, is allocated in forward (and its gradient in backward)
    assert prof["big/conv2d"]["mem_bytes"] >= 64 * 96 * 96 * 4


def test_attributed_and_unattributed_add_up_to_the_total(cli, expensive):
    doc, r = _json(cli, expensive, "--profile", "--profile-runs", "2")
    p = doc["profile"]
    assert p["runs"] == 2 and p["device"] == "cpu"
    nodes = [n["profile"] for n in doc["nodes"] if n["profile"] is not None]
    fwd = sum(n["fwd_ms"] for n in nodes)
    bwd = sum(n["bwd_ms"] for n in nodes)
    assert fwd == pytest.approx(p["fwd_ms"], rel=1e-9)
    assert bwd == pytest.approx(p["bwd_ms"], rel=1e-9)
    assert fwd + bwd + p["unattributed_ms"] == pytest.approx(p["total_ms"], rel=1e-9)
    assert 0 <= p["unattributed_ms"] < 0.5 * p["total_ms"]
    for n in nodes:
        assert n["share"] == pytest.approx((n["fwd_ms"] + n["bwd_ms"]) / p["total_ms"], rel=1e-9)
    assert sum(n["share"] for n in nodes) <= 1 + 1e-9
    # -o - keeps stdout for the JSON: the table went to stderr, with the same numbers' percentages
    assert "not attributed to any node: " in r.stderr
    pct = float(re.search(r"not attributed to any node: .*? \(([0-9.]+)%\)", r.stderr).group(1))
    assert pct == pytest.approx(100 * p["unattributed_ms"] / p["total_ms"], abs=0.051)


def test_profiling_changes_nothing_that_is_drawn(cli, expensive):
    plain, _ = _json(cli, expensive)
    prof, _ = _json(cli, expensive, "--profile", "--profile-runs", "2")
    assert "profile" not in plain and "profile" not in plain["nodes"][0]
    for n in prof["nodes"]:
        assert set(n["profile"]) == {"fwd_ms", "bwd_ms", "mem_bytes", "share"} if n["kind"] == "op" \
            else n["profile"] is None
        del n["profile"]
    del prof["profile"]
    assert prof == plain      # same nodes, values, gradients, edges, parameter gradient norms


def test_two_runs_have_the_same_structure(cli, blocks):
    a, _ = _json(cli, blocks, "--profile")
    b, _ = _json(cli, blocks, "--profile")
    assert set(a["profile"]) == set(b["profile"]) == {"total_ms", "fwd_ms", "bwd_ms", "unattributed_ms",
                                                      "runs", "device"}

    def shape(doc):
        return [(n["id"], None if n["profile"] is None else sorted(n["profile"])) for n in doc["nodes"]]
    assert shape(a) == shape(b)
    assert all(n["profile"]["fwd_ms"] > 0 for n in a["nodes"] if n["kind"] == "op")


def _traced(path, **kw):
    from cgviz.pytorch.load import load_model
    from cgviz.pytorch.trace import TraceOptions, trace
    return trace(load_model(str(path)), TraceOptions(profile=1, **kw))


def test_collapsed_modules_show_the_sum_of_what_they_contain(expensive):
    from cgviz.view.model_scene import DrawOptions, to_dot
    from cgviz.view.profile import Cost
    from cgviz.view.profile import cost_text
    from cgviz.plan.structure import build_picture
    t = _traced(expensive)
    prof = t.run.profile
    pic = build_picture(t.graph, t.run, depth=1)
    dot = to_dot(t.graph, t.run, pic, DrawOptions())
    modules = [dn for dn in pic.nodes.values() if dn.kind == "module"]
    assert {dn.id for dn in modules} == {"big", "small", "fc", "loss"}
    for dn in modules:
        expected = Cost()
        for n in t.graph:
            if n.kind == "op" and n.meta["module"] == dn.id:
                expected = expected + prof.nodes[n.id]
        assert expected.total_us > 0
        assert prof.cost(dn.members) == expected
        assert cost_text(expected) in dot
    # every op of the picture (at depth 1: the three boxes and the top-level relu, mean, sum)
    # together with what was not attributed makes the total
    drawn = sum(prof.cost(dn.members).total_us for dn in pic.nodes.values() if dn.kind in ("op", "module"))
    assert drawn + prof.unattributed_us == pytest.approx(prof.total_us, rel=1e-9)


def test_a_folded_block_shows_the_sum_over_its_repetitions(blocks):
    from cgviz.view.model_scene import DrawOptions, to_dot
    from cgviz.view.profile import Cost
    from cgviz.view.profile import cost_text
    from cgviz.plan.structure import build_picture
    t = _traced(blocks)
    prof = t.run.profile
    pic = build_picture(t.graph, t.run)
    (rep, grp), = pic.groups.items()
    assert grp.style == "fold" and grp.n == 3
    lin = pic.nodes["blocks.0.lin/linear"]          # stands for the three blocks' linears
    each = [prof.nodes[f"blocks.{i}.lin/linear"] for i in range(3)]
    assert prof.cost(lin.members) == each[0] + each[1] + each[2]
    total = Cost()
    for n in t.graph:
        if n.kind == "op" and n.meta["module"].startswith("blocks."):
            total = total + prof.nodes[n.id]
    dot = to_dot(t.graph, t.run, pic, DrawOptions())
    assert f"Σ {cost_text(total)}" in dot
    assert cost_text(prof.cost(lin.members)) in dot


def test_the_html_panel_shows_the_profile(cli, blocks, tmp_path):
    out = tmp_path / "b.html"
    r = cli("torch", blocks, "--profile", "-o", out, "-q")
    assert r.exit_code == 0, r.stderr
    assert r.stdout == ""        # -q: no table either
    assert re.search(r'"profile \(--profile\)", "fwd [^"]+ · bwd [^"]+ · [^"]+ \([0-9.]+% of the time\)"',
                     out.read_text())


def test_top_limits_the_table(cli, blocks, tmp_path):
    r = cli("torch", blocks, "--profile", "--top", "3", "-o", tmp_path / "b.dot")
    assert r.exit_code == 0, r.stderr
    assert len(r.stdout.splitlines()) == 2 + 3 + 1


@pytest.mark.parametrize("args, message", [
    (["--profile-runs", "2"], "--profile-runs and --top go with --profile"),
    (["--top", "3"], "--profile-runs and --top go with --profile"),
    (["--profile", "--view", "autograd"], "cannot be combined with --view autograd"),
    (["--profile", "--meta"], "cannot be combined with --meta"),
    (["--profile", "--profile-runs", "0"], "must be a whole number at least 1"),
])
def test_bad_combinations_are_usage_errors(cli, blocks, tmp_path, args, message):
    r = cli("torch", blocks, *args, "-o", tmp_path / "b.dot")
    assert r.exit_code == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "b.dot").exists()


def test_the_library_refuses_autograd_and_meta_too(blocks):
    from cgviz.core.errors import CgvizError
    with pytest.raises(CgvizError, match="view='autograd'"):
        _traced(blocks, view="autograd")
    with pytest.raises(CgvizError, match="meta=True"):
        _traced(blocks, meta=True)


def test_attribution_follows_sequence_numbers():
    """The rule itself, on a hand-made event tree: forward by range, backward by sequence number."""
    from cgviz.pytorch.profile import attribute

    class E:
        def __init__(self, name, us, parent=None, seq=-1, thread=1, fwd_thread=0, mem=0):
            self.name, self.self_cpu_time_total, self.cpu_parent = name, us, parent
            self.sequence_nr, self.thread, self.fwd_thread, self.self_cpu_memory_usage = seq, thread, fwd_thread, mem

    r1 = E("cgviz:0", 5)
    conv = E("aten::conv2d", 10, r1, seq=7, mem=100)
    inner = E("aten::mkldnn_convolution", 100, conv)
    r2 = E("cgviz:1", 2)
    relu = E("aten::relu", 3, r2, seq=8)
    stray = E("aten::ones_like", 1)
    b1 = E("autograd::engine::evaluate_function: ReluBackward0", 1, seq=8, fwd_thread=1)
    b1c = E("aten::threshold_backward", 4, b1, mem=50)
    b2 = E("autograd::engine::evaluate_function: ConvolutionBackward0", 2, seq=7, fwd_thread=1)
    b2c = E("aten::convolution_backward", 200, b2)
    acc = E("autograd::engine::evaluate_function: torch::autograd::AccumulateGrad", 7)
    prof = attribute([r1, conv, inner, r2, relu, stray, b1, b1c, b2, b2c, acc], runs=1,
                     names={"cgviz:0": "conv", "cgviz:1": "relu"})
    assert (prof.nodes["conv"].fwd_us, prof.nodes["conv"].bwd_us, prof.nodes["conv"].mem) == (115, 202, 100)
    assert (prof.nodes["relu"].fwd_us, prof.nodes["relu"].bwd_us, prof.nodes["relu"].mem) == (5, 5, 50)
    assert prof.total_us == 335 and prof.unattributed_us == 8
    assert prof.unattributed_by == [("torch::autograd::AccumulateGrad", 7), ("aten::ones_like", 1)]


def test_a_torch_export_program_is_profiled_too(cli, blocks, tmp_path):
    import runpy
    ns = runpy.run_path(str(blocks))
    program = tmp_path / "blocks.pt2"
    torch.export.save(torch.export.export(ns["model"], ns["example_inputs"]), str(program))
    doc, r = _json(cli, program, "--profile")
    ops = [n for n in doc["nodes"] if n["kind"] == "op"]
    assert len(ops) >= 8
    assert all(n["profile"]["fwd_ms"] > 0 for n in ops), [n["id"] for n in ops if not n["profile"]["fwd_ms"]]
    assert "were not seen in the measured run" not in r.stderr
    linears = [n for n in ops if n["op"] == "linear"]
    assert linears and all(n["profile"]["bwd_ms"] > 0 for n in linears)
