"""Models at the edges of size and kind (issue 29): deep chains and long loops that crashed with a
segfault, modules nested hundreds deep, thousands of sibling modules, and sparse and nested tensors.
Each is drawn, or refused with a message that names the limit; never a crash or exit 3."""

from __future__ import annotations

import json
import re
import resource
import subprocess
import sys

import pytest

import torch

from cgviz.core.errors import CgvizError  # noqa: E402
from cgviz.core.ir import Frame, Graph, Node, Scope  # noqa: E402
import cgviz  # noqa: E402
from test_hardening import CGVIZ  # noqa: E402



def draw_file(path: str, fmt: str, **options):
    """A model file through the library's one call, as `cgviz torch -f FMT` draws it: (bytes, nodes drawn)."""
    d = cgviz.draw(path, format=fmt, **options)
    return d.output(fmt), d.nodes(fmt)


CHAIN = """
import torch, torch.nn as nn
class Chain(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(4))
    def forward(self, x):
        for _ in range({n}):
            x = x * 0.9999 + 0.0001
        return (x * self.w).sum()
model = Chain()
example_inputs = (torch.randn(4),)
"""

ELMAN = """
import torch, torch.nn as nn
class Elman(nn.Module):
    def __init__(self):
        super().__init__()
        self.i2h = nn.Linear(4, 8)
        self.h2h = nn.Linear(8, 8)
    def forward(self, x):
        h = torch.zeros(1, 8)
        for t in range(x.shape[1]):
            h = torch.tanh(self.i2h(x[:, t]) + self.h2h(h))
        return h.sum()
model = Elman()
example_inputs = (torch.randn(1, {n}, 4),)
"""


def _small_stack():
    # 1 MB of C stack instead of 8: the crash of a 20,000-op chain comes at 2,000 ops
    resource.setrlimit(resource.RLIMIT_STACK, (1 << 20, resource.getrlimit(resource.RLIMIT_STACK)[1]))
    resource.setrlimit(resource.RLIMIT_AS, (4_000_000_000, resource.getrlimit(resource.RLIMIT_AS)[1]))


@pytest.mark.skipif(sys.platform != "linux", reason="the stack limit of a new process is set with setrlimit")
@pytest.mark.parametrize("source, n", [(CHAIN, 2000), (ELMAN, 400)], ids=["chain", "rnn"])
def test_a_long_chain_is_drawn_not_a_segfault(tmp_path, source, n):
    """A 20,000-op chain and an RNN over 8,000 steps ended in a segfault with no message: freed from
    the loss, autograd's chain of nodes, which the recorder's hooks had given Python objects, was
    destroyed recursively in C++. Scaled down with the stack (1 MB, where the same crash comes at
    2,000 ops); plain PyTorch runs both, and so must cgviz, to JSON with every op."""
    (tmp_path / "m.py").write_text(source.format(n=n))
    p = subprocess.run(CGVIZ + ["torch", "m.py", "--format", "json", "-o", "m.json"], cwd=tmp_path,
                       capture_output=True, text=True, preexec_fn=_small_stack, timeout=600)
    assert p.returncode == 0, (p.returncode, p.stderr[-800:])
    doc = json.loads((tmp_path / "m.json").read_text())
    assert sum(1 for node in doc["nodes"] if node["kind"] == "op") >= 2 * n


def test_grad_fns_lists_every_node_consumers_first():
    from cgviz.pytorch.run import grad_fns, release
    w = torch.ones(3, requires_grad=True)
    a = w * 2
    b = a + a.exp()                 # a diamond: `a` is read twice
    loss = (b * w).sum()
    fns = grad_fns(loss)
    names = [type(f).__name__ for f in fns]
    assert names[0] == "SumBackward0" and names.count("AccumulateGrad") == 1 and len(fns) == len(set(map(id, fns)))
    position = {id(f): i for i, f in enumerate(fns)}
    for f in fns:                   # each node before every node it reads
        assert all(position[id(g)] > position[id(f)] for g, _ in f.next_functions if g is not None)
    release(fns)
    assert fns == []


# ---------------------------------------------------------------- deep nesting (item 16)

NEST = """
import sys
import torch, torch.nn as nn
{limit}
class Wrap(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner
    def forward(self, x):
        return self.inner(x) + 1
m = nn.Linear(4, 4)
for _ in range({depth}):
    m = Wrap(m)
model = m
example_inputs = (torch.randn(2, 4),)
"""


def test_two_hundred_nested_modules_are_drawn(tmp_path):
    """200 nested modules ended in a RecursionError blamed on the model; plain PyTorch runs them.
    Each frame's id stays short however deep (the full path made names too long for Graphviz)."""
    (tmp_path / "nest.py").write_text(NEST.format(depth=200, limit=""))
    data, nodes = draw_file(str(tmp_path / "nest.py"), "dot")
    text = data.decode()
    assert nodes >= 200 and text.count("subgraph") >= 190
    assert max(len(line) for line in text.splitlines() if "subgraph" in line) < 2000


def test_nesting_past_python_s_limit_is_a_message_that_names_it(tmp_path):
    (tmp_path / "nest.py").write_text(NEST.format(depth=400, limit=""))
    with pytest.raises(CgvizError) as e:
        draw_file(str(tmp_path / "nest.py"), "dot")
    msg = str(e.value)
    assert "recursion limit of 1,000" in msg and "sys.setrecursionlimit" in msg
    assert re.search(r"module calls were nested [23]\d\d deep", msg)
    assert sys.getrecursionlimit() == 1000            # given back


def test_a_model_that_raises_the_limit_itself_is_drawn_however_deep(tmp_path):
    """The way out the message gives: the model file raises the limit, and every pass of the picture
    (clusters, DOT) follows it that deep."""
    (tmp_path / "nest.py").write_text(NEST.format(depth=600, limit="sys.setrecursionlimit(4000)"))
    old = sys.getrecursionlimit()
    try:
        data, nodes = draw_file(str(tmp_path / "nest.py"), "dot")
    finally:
        sys.setrecursionlimit(old)
    assert nodes >= 600 and data.decode().count("subgraph") >= 590


class CountingFrame(Frame):
    """A Frame that counts how often it is hashed: the work of every dict and set keyed by scopes."""

    hashes = 0

    def __hash__(self) -> int:
        CountingFrame.hashes += 1
        return self._hash


def _nested_graph(depth: int) -> tuple[Graph, object]:
    """The recorded graph of `depth` nested modules, each adding one op around the next, built as the
    recorder builds it (one Scope per call, shared by the call's ops)."""
    from cgviz.core.summary import RunSummary, TensorInfo
    g, run = Graph(), RunSummary()
    info = TensorInfo((2, 4), "float32", {"mean": 0.0, "std": 1.0, "min": -1.0, "max": 1.0, "norm": 2.0})
    scopes = [Scope()]
    for k in range(depth):
        scopes.append(scopes[-1].child(CountingFrame("inner" if k == 0 else scopes[-1][-1].path + ".inner", "Wrap")))
    g.add(Node("x", "input", name="x", meta={"scope": Scope()}))
    run.values["x"] = info
    prev = "x"
    for k in range(depth, 0, -1):               # the innermost op runs first
        nid = f"op{k}"
        g.add(Node(nid, "op", op="add", inputs=(prev,), meta={"scope": scopes[k], "out_index": (0,)}))
        run.values[nid] = info
        run.edge_values[(nid, 0)] = info
        run.grads[nid] = info
        run.edge_grads[(nid, 0)] = info
        prev = nid
    g.output = prev
    return g, run


def test_deep_nesting_costs_linear_work_not_cubic():
    """150 nested modules took 40 s, growing with the cube of the depth: every scope prefix was a new
    tuple hashed element by element. Counted in hashes of frames, a picture of a nesting twice as
    deep now costs about four times the work (its n × depth members), not eight."""
    from cgviz.view.model_scene import DrawOptions, scene
    from cgviz.plan.structure import build_picture, find_groups

    def work(depth: int) -> int:
        g, run = _nested_graph(depth)
        CountingFrame.hashes = 0
        pic = build_picture(g, run, None, True, find_groups(g, run))
        scene(g, run, pic, DrawOptions())
        return CountingFrame.hashes

    # Scopes hash once, when made: 40,000 would be one hash per (node, enclosing call); the tuples
    # of before hashed each prefix's every frame at every lookup, 2.7 million at depth 200
    assert work(100) <= 100 * 100 and work(200) <= 200 * 200


# ---------------------------------------------------------------- wide fan-out (item 17)

WIDE = """
import torch, torch.nn as nn
class Wide(nn.Module):
    def __init__(self):
        super().__init__()
        self.branches = nn.ModuleList(nn.Linear(4, 4) for _ in range({n}))
    def forward(self, x):
        return torch.stack([b(x) for b in self.branches]).sum()
model = Wide()
example_inputs = (torch.randn(4),)
"""


def test_a_label_does_not_grow_with_the_number_of_inputs(tmp_path):
    """10,000 sibling modules failed with "name too long for Graphviz": the `stack` label listed every
    input's shape. It says how many and of what shape instead."""
    (tmp_path / "wide.py").write_text(WIDE.format(n=300))
    text = draw_file(str(tmp_path / "wide.py"), "dot", depth=None)[0].decode()
    assert "300 inputs of [4] → [300×4]" in text
    assert max(map(len, text.splitlines())) < 3000


@pytest.mark.parametrize("shapes, expected", [
    (["[4]"], "[4]"), (["[4]", "[8]"], "[4], [8]"), (["[4]"] * 4, "[4], [4], [4], [4]"),
    (["[4]"] * 10_000, "10,000 inputs of [4]"),
    (["[4]"] * 3 + ["[8]"] * 2, "5 inputs: 3 of [4], 2 of [8]"),
    ([f"[{i}]" for i in range(6)], "6 inputs: 1 of [0], 1 of [1], 1 of [2], 3 more shapes")])
def test_shapes_text(shapes, expected):
    from cgviz.view.model_scene import shapes_text
    assert shapes_text(shapes, "inputs") == expected


class CountedList(list):
    """A list that counts the passes made over it."""

    passes = 0

    def __iter__(self):
        CountedList.passes += 1
        return super().__iter__()


def test_a_picture_of_many_boxes_reads_its_edges_a_fixed_number_of_times(tmp_path):
    """Each collapsed module's label scanned every edge of the picture for its inputs and outputs:
    quadratic in the number of sibling modules (minutes for 10,000)."""
    from cgviz.pytorch.load import load_model
    from cgviz.pytorch.trace import TraceOptions, trace
    from cgviz.view.model_scene import DrawOptions, scene
    from cgviz.plan.structure import build_picture

    def passes(n: int) -> int:
        (tmp_path / f"wide{n}.py").write_text(WIDE.format(n=n))
        t = trace(load_model(str(tmp_path / f"wide{n}.py")), TraceOptions())
        pic = build_picture(t.graph, t.run, depth=1)
        pic.edges = CountedList(pic.edges)
        CountedList.passes = 0
        scene(t.graph, t.run, pic, DrawOptions())
        return CountedList.passes

    assert passes(10) == passes(80)


# ---------------------------------------------------------------- sparse and nested tensors (item 10)

SPARSE_EMBEDDING = """
import torch, torch.nn as nn
torch.manual_seed(0)
class M(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4, sparse=True)
        self.fc = nn.Linear(4, 2)
    def forward(self, idx):
        return self.fc(self.emb(idx)).sum()
model = M()
example_inputs = (torch.tensor([[1, 2, 3, 2]]),)
"""

SPARSE_INPUT = """
import torch, torch.nn as nn
torch.manual_seed(0)
class M(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(4, 2))
    def forward(self, x):
        return torch.sparse.mm(x, self.w).sum()
model = M()
example_inputs = (torch.eye(4).to_sparse(),)
"""

NESTED = """
import torch, torch.nn as nn
torch.manual_seed(0)
class M(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)
    def forward(self, x):
        nt = torch.nested.nested_tensor([x[:2], x[2:]], layout=torch.{layout})
        y = self.fc(nt)
        return (y.values() if y.layout == torch.jagged else y.to_padded_tensor(0.0)).sum()
model = M()
example_inputs = (torch.randn(5, 4),)
"""

KINDS = {"sparse_embedding": SPARSE_EMBEDDING, "sparse_input": SPARSE_INPUT,
         "nested_jagged": NESTED.replace("{layout}", "jagged"), "nested_strided": NESTED.replace("{layout}", "strided")}


def _plain_norms(source: str) -> dict[str, float]:
    ns: dict = {}
    exec(compile(source, "m.py", "exec"), ns)
    model, args = ns["model"], ns["example_inputs"]
    model(*args).backward()
    return {n: float(p.grad.coalesce().to_dense().norm() if p.grad.is_sparse else p.grad.norm())
            for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("view", ["ops", "autograd"])
def test_sparse_and_nested_tensors_are_drawn_with_plain_pytorch_s_gradients(tmp_path, kind, view):
    """An `Embedding(sparse=True)`, a sparse input and nested tensors ended in exit 3 (a sparse tensor
    has no NumPy view) or in "the model's forward failed" (a view of a nested tensor). Plain PyTorch
    runs them: cgviz draws them, with the same parameter gradients."""
    from cgviz.pytorch.load import load_model
    from cgviz.pytorch.trace import TraceOptions, trace
    (tmp_path / "m.py").write_text(KINDS[kind])
    t = trace(load_model(str(tmp_path / "m.py")), TraceOptions(view=view))
    plain = _plain_norms(KINDS[kind])
    assert plain and set(plain) <= set(t.run.param_grads)
    for name, norm in plain.items():
        assert t.run.param_grads[name].norm == pytest.approx(norm, rel=1e-5), name
    data, _ = draw_file(str(tmp_path / "m.py"), "svg", view=view)
    assert b"<svg" in data


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("command", ["check", "grads"])
def test_check_and_grads_take_sparse_gradients(cli, here, command):
    (here / "m.py").write_text(SPARSE_EMBEDDING)
    r = cli(command, "m.py", *(["--no-plots"] if command == "grads" else []))
    assert r.exit_code == 0, r.stderr
    assert "emb.weight" in r.stdout


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_the_api_draws_a_module_with_a_sparse_embedding():
    import cgviz
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Embedding(10, 4, sparse=True), torch.nn.Linear(4, 2))
    d = cgviz.draw(m, torch.tensor([[1, 2, 3]]))
    assert "embedding" in d.dot and d.to_dict()["param_grad_norms"]["0.weight"] > 0
